"""Seed ensembles of image regressors (Lakshminarayanan et al. 2017): mean and total sigma from K models.

For member means mu_i and sigmas s_i (each already combined over the D4 views when ``tta``):

    mu      = mean_i mu_i
    sigma^2 = mean_i s_i^2  (aleatoric)  +  var_i mu_i  (epistemic; ddof 0, the mixture variance)

Plain ('rmse') members contribute s_i = 0, i.e. only the spread. Member sigmas enter uncalibrated;
an optional per-target `sigma_scale` (from `photopop.evaluation.calibration.fit_sigma_scale` on
held-out rows) multiplies the total, as for `photopop.models.ensemble.SEDEnsemble`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InputError, MismatchError
from .image_regressor import ImageRegressor, mixture_moments


def image_ensemble_predict(models: Sequence[ImageRegressor], images: Any, bands: Sequence[str] | None = None,
                           tta: bool = True, batch_size: int = 64, device: str | torch.device | None = None,
                           amp: bool | None = None, indices: Any = None,
                           sigma_scale: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) (n, n_targets) in label units from a seed ensemble of image models.

    Every model must predict the same targets; each checks the images' bands, size and pixel kind
    itself (`ImageRegressor.predict_with_sigma`). A single plain model has no sigma: InputError.
    """
    models = list(models)
    if not models:
        raise InputError("an ensemble needs at least one image model")
    targets = models[0].targets
    for k, m in enumerate(models[1:], start=1):
        if m.targets != targets:
            raise MismatchError(f"ensemble member {k} predicts {m.targets}, member 0 {targets}")
    if len(models) == 1 and not models[0].heteroscedastic:
        raise InputError("one plain ('rmse') image model gives no sigma: train with loss='gaussian_nll' "
                         "or use several seeds")
    mus, sigs = [], []
    for m in models:
        mu, s = m.predict_with_sigma(images, bands, tta=tta, batch_size=batch_size, device=device, amp=amp,
                                     indices=indices, calibrated=False)
        mus.append(mu)
        sigs.append(np.zeros_like(mu) if s is None else s)
    mu, sigma = mixture_moments(np.stack(mus), np.stack(sigs), axis=0)
    if sigma_scale is not None:
        scale = np.asarray(sigma_scale, dtype=np.float64).ravel()
        if scale.shape != (len(targets),) or not np.all(np.isfinite(scale) & (scale > 0)):
            raise InputError(f"sigma_scale must be {len(targets)} finite positive factors, got {list(scale)}")
        sigma = sigma * scale
    return mu, sigma
