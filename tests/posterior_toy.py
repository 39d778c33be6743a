"""A linear-Gaussian toy for posterior tests: the exact posterior is Gaussian with known mean and covariance.

theta = (log_age, zh) ~ N(m0, diag(s0^2)); each of 8 'bands' measures x_b = a_b . theta + N(0, sigma^2). Then
p(theta | x) = N(mu, S) with S = (P0 + A^T A / sigma^2)^-1, mu = S (P0 m0 + A^T x / sigma^2), P0 = diag(s0^-2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

M0 = np.array([9.5, -0.2])
S0 = np.array([0.4, 0.3])
SIGMA = 0.3
N_BANDS = 8
BANDS = [f"b{i}" for i in range(N_BANDS)]


def design() -> np.ndarray:
    """(8, 2): every band sees age and metallicity with slowly changing weights (a degeneracy)."""
    t = np.linspace(0.0, 1.0, N_BANDS)
    return np.stack([1.0 - 0.8 * t, 0.2 + 1.2 * t], axis=1)


def exact_posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(means (n, 2), covariance (2, 2)) of p(theta | x) for rows x (n, 8)."""
    a = design()
    p0 = np.diag(S0 ** -2)
    cov = np.linalg.inv(p0 + a.T @ a / SIGMA ** 2)
    mu = (cov @ (p0 @ M0[:, None] + a.T @ np.asarray(x).T / SIGMA ** 2)).T
    return mu, cov


def toy_frame(n: int, seed: int, rows_per_galaxy: int = 20) -> pd.DataFrame:
    """n rows with mag_<b>, magerr_<b>, log_age, zh, galaxy_id, spaxel_id."""
    rng = np.random.default_rng(seed)
    theta = M0 + S0 * rng.normal(size=(n, 2))
    x = 20.0 + theta @ design().T + SIGMA * rng.normal(size=(n, N_BANDS))
    df = pd.DataFrame({f"mag_{b}": x[:, j] for j, b in enumerate(BANDS)})
    for b in BANDS:
        df[f"magerr_{b}"] = SIGMA
    df["log_age"], df["zh"] = theta[:, 0], theta[:, 1]
    df["galaxy_id"] = np.arange(n) // rows_per_galaxy
    df["spaxel_id"] = np.arange(n) % rows_per_galaxy
    return df


def magnitudes(df: pd.DataFrame) -> np.ndarray:
    """The rows' x (magnitudes minus the 20 mag offset) for `exact_posterior`."""
    return df[[f"mag_{b}" for b in BANDS]].to_numpy() - 20.0


def small_config(seed: int = 0, max_epochs: int = 40, **kw):
    """A small, fast SEDPosteriorConfig for tests."""
    from photopop.models.posterior import FlowConfig, PosteriorNetConfig
    from photopop.models.sed_cnn import SEDCNNConfig
    from photopop.training.fit import TrainConfig
    from photopop.training.posterior_fit import SEDPosteriorConfig

    arch = PosteriorNetConfig(embedding=SEDCNNConfig(conv_filters=(4, 8), kernel_sizes=(3, 3), pool_size=2,
                                                     dense_units=(32,)),
                              embed_dim=8, flow=FlowConfig(n_layers=2, bins=6, trunk_units=32, hyper_units=(32,)))
    return SEDPosteriorConfig(architecture=arch, train=TrainConfig(max_epochs=max_epochs, patience=10, batch_size=256,
                                                                   learning_rate=5e-3, seed=seed), **kw)


def survey_frame(n: int, seed: int, rows_per_galaxy: int = 20) -> pd.DataFrame:
    """Like `toy_frame`, with what made the mock's OOD score fail: brightness and galaxy-level noise.

    Every row gets a brightness offset (a galaxy's +-2 mag plus +-1 mag within it, added to every band)
    and errors that grow with faintness (0.03 mag x 10^(0.2 offset)); each galaxy's noise is scaled by a
    heavy-tailed factor (log-normal, sd 0.6 in ln), so a few in-domain galaxies are far out in the minor
    directions of the input space while a constant shift moves along the dominant (brightness) one.
    """
    rng = np.random.default_rng(seed)
    gal = np.arange(n) // rows_per_galaxy
    n_gal = int(gal.max()) + 1
    theta = M0 + S0 * rng.normal(size=(n, 2))
    offset = rng.uniform(-2, 2, n_gal)[gal] + rng.uniform(-1, 1, n)
    err = 0.03 * 10 ** (0.2 * offset)
    scale = np.exp(0.6 * rng.normal(size=n_gal))[gal]
    x = 20.0 + offset[:, None] + theta @ design().T + (err * scale)[:, None] * rng.normal(size=(n, N_BANDS))
    df = pd.DataFrame({f"mag_{b}": x[:, j] for j, b in enumerate(BANDS)})
    for b in BANDS:
        df[f"magerr_{b}"] = err
    df["log_age"], df["zh"] = theta[:, 0], theta[:, 1]
    df["galaxy_id"] = gal
    df["spaxel_id"] = np.arange(n) % rows_per_galaxy
    return df
