"""Band lists given on the command line: ``J0400,J0410,gSDSS`` or a filter-system name (``jpas-califa``)."""

from __future__ import annotations

from ..errors import InputError
from .filters import load_filter_system, same_filter_family

__all__ = ["resolve_band_list"]


def resolve_band_list(spec: str, filter_system: str) -> tuple[str, tuple[str, ...]]:
    """(filter system, bands) for `spec`: a comma-separated list of bands of `filter_system`, or a filter
    system. A system of `filter_system`'s family (``jpas-califa`` for ``jpas``) gives its bands within
    `filter_system`; another system (``sdss``) replaces it with all its bands. Unknown bands raise
    InputError naming them."""
    text = str(spec).strip()
    if not text:
        raise InputError("the band list is empty")
    names = [b.strip() for b in text.split(",") if b.strip()]
    parent = load_filter_system(filter_system)
    if len(names) > 1 or names[0] in parent:
        parent.select(names)  # InputError naming unknown bands
        return filter_system, tuple(names)
    try:
        system = load_filter_system(names[0])
    except InputError as exc:
        raise InputError(f"--bands {text!r}: neither a band of {filter_system!r} nor a filter system ({exc})") from exc
    if same_filter_family(system.name, filter_system):
        parent.select(system.bands)
        return filter_system, tuple(system.bands)
    return names[0], tuple(system.bands)
