"""Fingerprints of what a run predicts with: the resume key of every prediction output.

`saved_model_hash` hashes a model object (the same in memory and after save/load, so either may
resume the other's run), `folder_hash` the files of a model folder (for predictors that bring no
hash of their own), `predictor_hash` reads the fingerprint a predictor carries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import InputError

#: meta.json entries that change what a SED model predicts (the rest is provenance)
PREDICTION_META = ("bands", "filter_system", "targets", "input_kind", "ref_band", "nan_policy", "loss", "sigma_scale",
                   "mag_range")


def folder_hash(path: str | Path) -> str:
    """sha256 over the names and bytes of every non-hidden file in a model folder (recursively)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(str(rel).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def saved_model_hash(model: Any) -> str:
    """sha256 of what a `SavedSEDModel` predicts with: architecture, weights, normalisation, bands/targets.

    The same for the model in memory and after save/load, so either may resume the other's run. An
    ensemble hashes its members' hashes in order, with its own sigma scale.
    """
    members = getattr(model, "members", None)
    if members is not None:
        h = hashlib.sha256()
        for member in members:
            h.update(saved_model_hash(member).encode())
        h.update(json.dumps(model.meta.get("sigma_scale"), sort_keys=True, default=str).encode())
        return h.hexdigest()
    h = hashlib.sha256()
    h.update(repr(model.network.config).encode())
    for name, tensor in sorted(model.network.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    meta = {k: model.meta.get(k) for k in PREDICTION_META}
    h.update(json.dumps({"in": model.input_norm.to_dict(), "out": model.target_norm.to_dict(), "meta": meta},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def predictor_hash(predictor: Any) -> str:
    """The predictor's ``model_hash``; InputError if it has none (the resume fingerprint needs it)."""
    value = getattr(predictor, "model_hash", None)
    if not value:
        raise InputError(f"the {type(predictor).__name__} has no model_hash attribute; resumable output "
                         "needs a fingerprint of the model (set predictor.model_hash)")
    return str(value)
