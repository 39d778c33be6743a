"""Likelihood weighting of a library of noise-free model fluxes: posterior means, spreads and percentiles.

For an object with fluxes d_b and 1-sigma errors sigma_b (Gaussian in flux, as the mock adds its noise;
weights w_b = 1 / sigma_b^2) and a library entry with noise-free fluxes m_b, the free normalisation s (the
object's brightness: bin mass x distance dimming) enters linearly, so with

    A = sum_b w m^2,   B = sum_b w d m,   C = sum_b w d^2,   s_hat = B / A,   chi2_min = C - B^2 / A

the likelihood in s is exactly Gaussian, exp(-chi2_min / 2) exp(-(s - s_hat)^2 A / 2). Two treatments:

* ``scale="free"`` (default): the amplitude is marginalised with the scale-invariant (Jeffreys, log-uniform)
  prior p(s) ~ 1/s, the only prior independent of how each library entry happens to be normalised. By
  Laplace's method in u = ln s (relative error ~ (sigma_s / s_hat)^2, i.e. 1 / (total S/N)^2, below 0.5 per
  cent for the mock's spaxels) the marginal likelihood is

      L = exp(-chi2_min / 2) * sigma_u,   sigma_u = sigma_s / s_hat = sqrt(A) / B.

  The sigma_u factor is the Occam factor that the profile (best-fit-scale) likelihood exp(-chi2_min / 2)
  lacks: it is the Bayes marginal, the profile is not. With ``scale_kernel_dex`` = h > 0 the library's own
  absolute scale is used as well: p(u | entry) = N(u; ln s_entry, h ln 10) (a kernel density of the prior's
  joint law of brightness and SED shape; the entry's own scale is 1 since its fluxes are absolute), giving
  L = exp(-chi2_min / 2) sigma_u / sqrt(sigma_u^2 + h'^2) exp(-(ln s_hat)^2 / (2 (sigma_u^2 + h'^2))).
  h -> infinity recovers the brightness-free marginal; h -> 0 the exact prior (with a tiny effective sample).
* ``scale="fixed"``: no amplitude at all, L = exp(-chi2 / 2) with chi2 = sum_b w (d - m)^2.

Weights are library-entry likelihoods times the library's prior (entries drawn from the prior all weigh the
same), so the posterior mean of a label y is sum_i L_i y_i / sum_i L_i -- the Bayes estimate under squared
loss when the library is drawn from the prior. Computed in blocks of (objects x library entries) with
running log-sum-exp accumulators (bounded memory, any library size); percentiles from per-object weighted
histograms on a fine label grid (n_bins bins over the library's label range; interpolated within a bin).
Non-finite fluxes or errors, or errors <= 0, get weight 0 (the band is left out).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import InputError

LN10 = np.log(10.0)


class LikelihoodWeighting:
    """Posterior summaries of library labels for many objects (see the module docstring for the maths)."""

    def __init__(self, fluxes: np.ndarray, labels: np.ndarray, label_names: Sequence[str], *,
                 scale: str = "free", scale_kernel_dex: float = 0.0,
                 quantiles: Sequence[float] = (0.16, 0.5, 0.84), n_bins: int = 512,
                 max_block_pairs: int = 2**21):
        m = np.asarray(fluxes, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
            raise InputError(f"library fluxes must be (n_entries, n_bands), got shape {m.shape}")
        if y.shape[0] != m.shape[0] or y.shape[1] != len(label_names):
            raise InputError(f"library labels must be ({m.shape[0]}, {len(label_names)}), got {y.shape}")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(y))):
            raise InputError("library fluxes and labels must be finite")
        if scale not in ("free", "fixed"):
            raise InputError(f"scale must be 'free' or 'fixed', got {scale!r}")
        if scale == "free" and np.any(m < 0):
            raise InputError("library fluxes must be >= 0 for a free positive amplitude")
        if not scale_kernel_dex >= 0:
            raise InputError(f"scale_kernel_dex must be >= 0, got {scale_kernel_dex}")
        q = np.asarray(quantiles, dtype=np.float64)
        if np.any((q <= 0) | (q >= 1)):
            raise InputError(f"quantiles must lie in (0, 1), got {q.tolist()}")
        self.scale = scale
        self.kernel = float(scale_kernel_dex) * LN10
        if scale == "free":
            norm = m.mean(axis=1)
            if np.any(norm <= 0):
                raise InputError("a library entry has zero flux in every band")
            self.m = m / norm[:, None]          # unit mean flux: numerically tame products
            self.log_norm = np.log(norm)        # ln of the entry's absolute scale factor
        else:
            self.m = m
            self.log_norm = np.zeros(m.shape[0])
        self.m2 = self.m * self.m
        self.y = y
        self.names = list(label_names)
        self.quantiles = q
        self.n_bins = int(n_bins)
        self.max_block_pairs = int(max_block_pairs)
        lo, hi = y.min(axis=0), y.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1e-9)
        self.edges = [np.linspace(lo[j], hi[j], self.n_bins + 1) for j in range(y.shape[1])]
        n = m.shape[0]
        self.onehot = []
        for j in range(y.shape[1]):
            b = np.clip(np.searchsorted(self.edges[j], y[:, j], side="right") - 1, 0, self.n_bins - 1)
            self.onehot.append(sparse.csr_matrix((np.ones(n), (np.arange(n), b)), shape=(n, self.n_bins)))

    @property
    def n_entries(self) -> int:
        return self.m.shape[0]

    def log_likelihood(self, flux: np.ndarray, sigma: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """(n_objects, n_entries) log marginal likelihoods (up to a per-object constant) of library `rows`."""
        d, w, log_fn = self._prepare(flux, sigma)
        sl = rows if rows is not None else slice(0, self.n_entries)
        return self._loglike(d, w, log_fn, sl)

    def predict(self, flux: np.ndarray, sigma: np.ndarray) -> pd.DataFrame:
        """Per object: <label>_mean, <label>_std, <label>_p<100 q> for each quantile, ess, chi2_min."""
        d, w, log_fn = self._prepare(flux, sigma)
        n, nl = d.shape[0], self.n_entries
        bl = min(nl, 32768)
        bs = max(1, self.max_block_pairs // bl)
        nt = self.y.shape[1]
        out_mean = np.empty((n, nt))
        out_std = np.empty((n, nt))
        out_q = np.empty((n, nt, self.quantiles.size))
        ess = np.empty(n)
        chi2_min = np.empty(n)
        for s0 in range(0, n, bs):
            s1 = min(n, s0 + bs)
            ds, ws, ls = d[s0:s1], w[s0:s1], log_fn[s0:s1]
            k = s1 - s0
            mx = np.full(k, -np.inf)
            s_1 = np.zeros(k)
            s_2 = np.zeros(k)
            sy = np.zeros((k, nt))
            syy = np.zeros((k, nt))
            hist = [np.zeros((k, self.n_bins)) for _ in range(nt)]
            cmin = np.full(k, np.inf)
            for l0 in range(0, nl, bl):
                sl = slice(l0, min(nl, l0 + bl))
                ll, chi2 = self._loglike(ds, ws, ls, sl, return_chi2=True)
                cmin = np.minimum(cmin, chi2.min(axis=1))
                new = np.maximum(mx, ll.max(axis=1))
                new_safe = np.where(np.isfinite(new), new, 0.0)
                f = np.exp(np.where(np.isfinite(mx), mx - new_safe, -np.inf))
                e = np.exp(ll - new_safe[:, None])
                s_1 = s_1 * f + e.sum(axis=1)
                s_2 = s_2 * f * f + (e * e).sum(axis=1)
                yb = self.y[sl]
                sy = sy * f[:, None] + e @ yb
                syy = syy * f[:, None] + e @ (yb * yb)
                for j in range(nt):
                    hist[j] = hist[j] * f[:, None] + np.asarray((self.onehot[j][sl].T @ e.T).T)
                mx = new
            if np.any(~(s_1 > 0)):
                bad = int(np.sum(~(s_1 > 0)))
                raise InputError(f"{bad} object(s) have zero likelihood under every library entry "
                                 f"(no positive amplitude fits); check their fluxes")
            mean = sy / s_1[:, None]
            out_mean[s0:s1] = mean
            out_std[s0:s1] = np.sqrt(np.clip(syy / s_1[:, None] - mean**2, 0.0, None))
            for j in range(nt):
                out_q[s0:s1, j] = _hist_quantiles(hist[j], self.edges[j], self.quantiles)
            ess[s0:s1] = s_1**2 / s_2
            chi2_min[s0:s1] = cmin
        cols: dict[str, np.ndarray] = {}
        for j, name in enumerate(self.names):
            cols[f"{name}_mean"] = out_mean[:, j]
            cols[f"{name}_std"] = out_std[:, j]
            for i, q in enumerate(self.quantiles):
                cols[f"{name}_p{_qname(q)}"] = out_q[:, j, i]
        cols["ess"] = ess
        cols["chi2_min"] = chi2_min
        return pd.DataFrame(cols)

    # -- internals -------------------------------------------------------------------------
    def _prepare(self, flux: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
        e = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
        nb = self.m.shape[1]
        if f.ndim != 2 or f.shape[1] != nb:
            raise InputError(f"fluxes must be (n_objects, {nb}) to match the library, got {f.shape}")
        if e.shape != f.shape:
            raise InputError(f"errors shape {e.shape} differs from fluxes shape {f.shape}")
        good = np.isfinite(f) & np.isfinite(e) & (e > 0)
        if np.any(~good.any(axis=1)):
            raise InputError(f"{int(np.sum(~good.any(axis=1)))} object(s) have no band with a finite flux "
                             f"and a positive error")
        f = np.where(good, f, 0.0)
        if self.scale == "free":
            # per-object scale for numerics (chi2 and sigma_u do not depend on it; the kernel term gets it back)
            fn = np.abs(f).sum(axis=1) / good.sum(axis=1)
            fn = np.where(fn > 0, fn, 1.0)
        else:
            fn = np.ones(f.shape[0])
        d = f / fn[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(good, (fn[:, None] / np.where(good, e, 1.0)) ** 2, 0.0)
        return d, w, np.log(fn)

    def _loglike(self, d, w, log_fn, sl, return_chi2: bool = False):
        m, m2 = self.m[sl], self.m2[sl]
        c = np.einsum("ij,ij->i", w * d, d)
        if self.scale == "fixed":
            chi2 = c[:, None] - 2.0 * (w * d) @ m.T + w @ m2.T
            chi2 = np.clip(chi2, 0.0, None)
            ll = -0.5 * chi2
            return (ll, chi2) if return_chi2 else ll
        a = w @ m2.T
        b = (w * d) @ m.T
        pos = (a > 0) & (b > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = np.where(pos, np.clip(c[:, None] - b * b / a, 0.0, None), c[:, None])
            log_su = np.where(pos, 0.5 * np.log(a) - np.log(b), -np.inf)
            ll = -0.5 * chi2 + log_su
            if self.kernel > 0:
                var = np.exp(2 * log_su) + self.kernel**2
                # ln of the amplitude relative to the entry's absolute fluxes (true value 0 under the prior)
                ln_s = np.log(b) - np.log(a) + log_fn[:, None] - self.log_norm[sl][None, :]
                ll = ll - 0.5 * np.log(var) - 0.5 * ln_s**2 / var
        ll = np.where(pos, ll, -np.inf)
        return (ll, chi2) if return_chi2 else ll


def _qname(q: float) -> str:
    """0.16 -> '16', 0.5 -> '50', 0.025 -> '2.5'."""
    v = 100.0 * q
    return f"{v:g}"


def _hist_quantiles(hist: np.ndarray, edges: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles (n, n_q) of per-row weighted histograms (n, n_bins), linear within a bin."""
    cdf = np.cumsum(hist, axis=1)
    tot = cdf[:, -1:]
    cdf = cdf / np.where(tot > 0, tot, 1.0)
    out = np.empty((hist.shape[0], q.size))
    width = edges[1] - edges[0]
    for i, qq in enumerate(q):
        k = np.argmax(cdf >= qq, axis=1)
        prev = np.where(k > 0, cdf[np.arange(cdf.shape[0]), k - 1], 0.0)
        here = cdf[np.arange(cdf.shape[0]), k]
        frac = np.where(here > prev, (qq - prev) / np.where(here > prev, here - prev, 1.0), 0.5)
        out[:, i] = edges[k] + frac * width
    return out
