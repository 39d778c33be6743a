"""`ModelMeta`: the typed ``meta.json`` of every model folder (single SED models, ensembles, posteriors, images).

A model folder says what it is in ``meta.json``. The fields every kind shares are typed attributes:

``kind``              meta.json ``kind`` ('sed-ensemble', 'sed-posterior', ...; absent for single SED
                      networks and image models, whose kind follows from ``input_kind``: `model_kind`)
``bands``             the input bands, in the model's order
``filter_system``     the filter system the bands belong to (None: undeclared)
``targets``           the predicted labels, in order
``input_kind``        'mag', 'colour', 'flux' (SED networks) or 'image'
``nan_policy``        'refuse' or 'mask' (trained with a presence-mask channel)
``loss``              'mse', 'gaussian_nll' (then ``<target>_sigma`` is predicted), 'flow_nll', 'rmse', ...
``sigma_scale``       {target: factor} recalibrating predicted sigmas (optional)
``photopop_version``  the version that wrote the folder
``data_hash``         sha256 of the training rows (meta.json key ``train_table_hash``)

Everything else (``ref_band``, ``mag_range``, ``n_members``, ``ood_threshold``, training history
numbers, ...) is kept in ``extras``, in the order it came. `ModelMeta.from_dict` validates what a
loader relies on and names the folder and the key in its `InputError`; `ModelMeta.to_dict` gives back
exactly the keys (and their order) it was built from, so a folder written by any earlier photopop reads
back and rewrites to the same meta.json.

`ModelMeta` is also a mutable mapping over those meta.json keys (``meta["bands"]``, ``meta.get("loss")``,
``meta["sigma_scale"] = {...}``), so code that reads a model's ``.meta`` as a dict keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from .normalise import INPUT_KINDS

SED_KIND = "sed"
ENSEMBLE_KIND = "sed-ensemble"
POSTERIOR_KIND = "sed-posterior"
IMAGE_KIND = "image"
NAN_POLICIES = ("refuse", "mask")  # 'mask': trained with a presence-mask channel, accepts NaN bands

#: attribute -> meta.json key, where the two differ
_JSON_KEYS = {"data_hash": "train_table_hash"}
#: optional string entries (typed or extra) every kind must give as strings when present
_STRING_KEYS = ("kind", "filter_system", "input_kind", "ref_band", "nan_policy", "loss", "photopop_version",
                "train_table_hash")


def model_kind(meta: Mapping[str, Any]) -> str:
    """The kind of a model folder from its meta.json: ``kind`` if present, else from ``input_kind``."""
    if meta.get("kind"):
        return str(meta["kind"])
    return IMAGE_KIND if meta.get("input_kind") == IMAGE_KIND else SED_KIND


@dataclass(eq=False)
class ModelMeta(MutableMapping[str, Any]):
    """The typed contents of a model folder's ``meta.json`` (see the module docstring)."""

    kind: str | None = None
    bands: list[str] | None = None
    filter_system: str | None = None
    targets: list[str] | None = None
    input_kind: str | None = None
    nan_policy: str | None = None
    loss: str | None = None
    sigma_scale: dict[str, float] | None = None
    photopop_version: str | None = None
    data_hash: str | None = None
    #: kind-specific entries (mag_range, ref_band, n_members, ood_threshold, ...), meta.json key -> value
    extras: dict[str, Any] = field(default_factory=dict)
    #: the meta.json keys present, in order (typed fields set to a value are added when built)
    _keys: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        clash = [k for k in self.extras if k in _TYPED_KEYS]
        if clash:
            raise TypeError(f"extras must not hold the typed meta.json key(s) {clash}")
        self._keys = [key for attr, key in _TYPED_ATTRS.items() if getattr(self, attr) is not None]
        self._keys += list(self.extras)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        keys = self.__dict__.get("_keys")
        if keys is not None and value is not None and name in _TYPED_ATTRS and _TYPED_ATTRS[name] not in keys:
            keys.append(_TYPED_ATTRS[name])

    # -- reading and writing meta.json -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | Path | None = None, *,
                  kind: str | None = None) -> "ModelMeta":
        """Validate a meta.json object and type it; InputError naming `path` (the meta.json) and the key.

        Checks every kind: ``kind`` and the other names are strings; ``bands`` and ``targets`` are non-empty
        lists of distinct names (required except for ensembles, whose members carry them); ``nan_policy``
        is one of `NAN_POLICIES`; ``sigma_scale`` maps targets to numbers; ``mag_range`` is [lo, hi].
        Single SED networks also need ``input_kind`` in `photopop.models.normalise.INPUT_KINDS` and a
        ``ref_band`` among the bands; ensembles an integer ``n_members``; image models an integer
        ``image_size``. `kind`: the kind the caller opens (`require_kind`).
        """
        where = str(path) if path is not None else "model meta"
        if not isinstance(d, Mapping):
            raise InputError(f"{where}: expected a JSON object, got a JSON {type(d).__name__}")
        d = dict(d)
        for key in _STRING_KEYS:
            if d.get(key) is not None and not isinstance(d[key], str):
                raise InputError(f"{where}: {key!r} must be a string, got {d[key]!r}")
        folder_kind = model_kind(d)
        required = folder_kind != ENSEMBLE_KIND
        for key in ("bands", "targets"):
            if required or d.get(key) is not None:
                d[key] = _name_list(d.get(key), key, where)
        if d.get("nan_policy") is not None and d["nan_policy"] not in NAN_POLICIES:
            raise InputError(f"{where}: unsupported nan_policy {d['nan_policy']!r}; known: {list(NAN_POLICIES)}")
        scale = d.get("sigma_scale")
        if scale is not None and not (isinstance(scale, Mapping) and all(_is_number(v) for v in scale.values())):
            raise InputError(f"{where}: 'sigma_scale' must map targets to numbers, got {scale!r}")
        rng = d.get("mag_range")
        if rng is not None and not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(map(_is_number, rng))):
            raise InputError(f"{where}: 'mag_range' must be [lo, hi], got {rng!r}")
        check = _KIND_CHECKS.get(folder_kind)
        if check is not None:
            check(d, where)
        meta = cls._build(d)
        if kind is not None:
            meta.require_kind(kind, path)
        return meta

    @classmethod
    def _build(cls, d: Mapping[str, Any]) -> "ModelMeta":
        """A ModelMeta holding exactly the keys of `d`, in order (no checks)."""
        typed = {attr: d[key] for attr, key in _TYPED_ATTRS.items() if key in d}
        meta = cls(**typed, extras={k: v for k, v in d.items() if k not in _TYPED_KEYS})
        meta._keys = list(d)
        return meta

    def to_dict(self) -> dict[str, Any]:
        """The meta.json object: the keys this meta was built from (and those set since), in order."""
        return {key: self[key] for key in self._keys}

    def copy(self) -> "ModelMeta":
        """A shallow copy (as ``dict.copy``)."""
        return self._build(self.to_dict())

    # -- what loaders ask --------------------------------------------------------------------------------------
    @property
    def model_kind(self) -> str:
        """The registry kind of the folder (`model_kind`): 'sed', 'sed-ensemble', 'sed-posterior', 'image', ..."""
        return model_kind(self)

    def require_kind(self, kind: str, path: str | Path | None = None) -> None:
        """InputError naming `path` unless this meta is of `kind` (a loader opening a folder of another kind)."""
        if self.model_kind != kind:
            where = str(path) if path is not None else "model meta"
            raise InputError(f"{where}: kind is {self.get('kind', self.model_kind)!r}, not {kind!r}")

    # -- the mapping over meta.json keys -----------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        attr = _TYPED_KEYS.get(key)
        return getattr(self, attr) if attr is not None else self.extras[key]

    def __setitem__(self, key: str, value: Any) -> None:
        attr = _TYPED_KEYS.get(key)
        if attr is not None:
            object.__setattr__(self, attr, value)
        else:
            self.extras[key] = value
        if key not in self._keys:
            self._keys.append(key)

    def __delitem__(self, key: str) -> None:
        if key not in self._keys:
            raise KeyError(key)
        self._keys.remove(key)
        attr = _TYPED_KEYS.get(key)
        if attr is not None:
            object.__setattr__(self, attr, None)
        else:
            del self.extras[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def __len__(self) -> int:
        return len(self._keys)


#: typed attribute -> its meta.json key, and back
_TYPED_ATTRS = {f.name: _JSON_KEYS.get(f.name, f.name) for f in fields(ModelMeta) if f.name not in ("extras", "_keys")}
_TYPED_KEYS = {key: attr for attr, key in _TYPED_ATTRS.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name_list(value: Any, key: str, where: str) -> list[str]:
    """A non-empty list of distinct non-empty names (a tuple given in memory becomes a list)."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{where}: {key!r} must be a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise InputError(f"{where}: {key!r} repeats names: {sorted({v for v in value if value.count(v) > 1})}")
    return value if isinstance(value, list) else list(value)


def _check_sed(d: dict[str, Any], where: str) -> None:
    if d.get("input_kind") not in INPUT_KINDS:
        raise InputError(f"{where}: 'input_kind' must be one of {list(INPUT_KINDS)}, got {d.get('input_kind')!r}")
    if d.get("ref_band") and d["ref_band"] not in d["bands"]:
        raise InputError(f"{where}: 'ref_band' {d['ref_band']!r} is not one of the bands")


def _check_ensemble(d: dict[str, Any], where: str) -> None:
    n = d.get("n_members", 0)
    if not isinstance(n, int) or isinstance(n, bool):
        raise InputError(f"{where}: 'n_members' must be an integer, got {n!r}")


def _check_image(d: dict[str, Any], where: str) -> None:
    size = d.get("image_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise InputError(f"{where}: 'image_size' must be an integer, got {size!r}")


#: the kind-specific checks of `ModelMeta.from_dict` (kinds without an entry get the shared checks only)
_KIND_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    SED_KIND: _check_sed, ENSEMBLE_KIND: _check_ensemble, IMAGE_KIND: _check_image,
}
