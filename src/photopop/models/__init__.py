"""photopop.models: the SED CNN, model folders (`ModelMeta`, `open_model`), baselines and the chi-square template fit.

Names are imported lazily so that `import photopop.models.baselines` does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SEDCNN": "sed_cnn", "SEDCNNConfig": "sed_cnn",
    "SavedSEDModel": "saved", "SEDEnsemble": "ensemble",
    "ModelMeta": "meta", "open_model": "registry", "register_model_kind": "registry",
    "read_model_folder": "folder", "write_model_folder": "folder",
    "Standardiser": "normalise", "make_features": "normalise",
    "ConstantBaseline": "baselines", "RandomDrawBaseline": "baselines", "RandomForestBaseline": "baselines",
    "RandomForestConfig": "baselines",
    "TemplateFitter": "template_fit", "TemplateFitResult": "template_fit", "TemplateGrid": "template_fit",
    "TemplateGridConfig": "template_fit", "build_template_grid": "template_fit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
