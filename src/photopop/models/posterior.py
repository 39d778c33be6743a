"""Conditional normalising flow over stellar-population labels given an SED: the posterior network.

``PosteriorNet`` models p(theta | SED) for theta = (log age, [Z/H], optionally A_V, ...) in
standardised label units. The SED is embedded by the paper's 1D CNN (`photopop.models.sed_cnn.SEDCNN`,
its convolutions and dense layers, with the last layer's width ``embed_dim``; with a presence-mask
channel when missing bands are allowed); the standardised log10 magnitude errors and, where given, the
redshift are appended to the embedding, and a small trunk MLP maps that context to per-object flow
parameters.

The flow (built from `zuko` parts: `zuko.flows.Flow`, `ElementWiseTransform` with monotonic
rational-quadratic splines, Durkan et al. 2019) alternates per-object triangular affine maps and
per-object element-wise splines. Every transform's parameters depend on the context only, never on
the other label coordinates, so the expensive part (the CNN and the hypernetworks) runs once per
object and drawing samples costs a few element-wise operations and a D x D matrix product per sample:
this is what makes 1000 samples per object at catalogue speed possible. Affine maps mix the
coordinates, so the posteriors can be correlated (the age-metallicity degeneracy), skewed or
bimodal along each mixed axis.

Inputs (``x``): one row per object, ``n_bands`` standardised SED features, then ``n_err`` standardised
log magnitude errors, then ``n_extra`` further context values (redshift); with ``in_channels == 2`` the
rows come as (n, 2, width) from `photopop.training.fit.mask_channels` (values with missing = 0, and
the presence mask); errors of missing bands are zeroed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import torch
import zuko
from torch import nn
from torch.distributions import Transform, constraints

from ..errors import InputError
from .sed_cnn import SEDCNN, SEDCNNConfig

#: log-diagonal clamp of the affine maps (standardised units)
LOGDIAG_MIN, LOGDIAG_MAX = -9.0, 5.0


@dataclass
class FlowConfig:
    """Shape of the flow: `n_layers` (affine + spline) pairs, then a final affine map.

    bins: spline bins per coordinate; bound: spline domain [-bound, bound] in standardised units
    (identity outside); trunk_units: width of the context MLP; hyper_units: hidden widths of each
    spline's hypernetwork.
    """

    n_layers: int = 3
    bins: int = 8
    bound: float = 5.0
    trunk_units: int = 64
    hyper_units: tuple[int, ...] = (64,)

    def validate(self) -> None:
        """Raise InputError for out-of-range settings."""
        if int(self.n_layers) < 0 or int(self.bins) < 2 or int(self.trunk_units) < 1 or not self.bound > 0:
            raise InputError(f"flow needs n_layers >= 0, bins >= 2, trunk_units >= 1 and bound > 0, got {self}")


@dataclass
class PosteriorNetConfig:
    """Architecture of `PosteriorNet`: the CNN embedding (``embedding``, its last dense width is replaced
    by ``embed_dim``) and the flow."""

    embedding: SEDCNNConfig = field(default_factory=lambda: SEDCNNConfig(dense_units=(128, 64)))
    embed_dim: int = 32
    flow: FlowConfig = field(default_factory=FlowConfig)

    def validate(self) -> None:
        """Raise InputError for inconsistent settings."""
        self.embedding.validate()
        self.flow.validate()
        if int(self.embed_dim) < 1:
            raise InputError(f"embed_dim must be >= 1, got {self.embed_dim}")


class TriangularAffine(Transform):
    """y = L x + b per object, L lower triangular with positive diagonal; inverse by a precomputed L^-1.

    L, Linv: (n, D, D); b: (n, D). Inputs broadcast as (..., n, D) (e.g. samples first).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, L: torch.Tensor, b: torch.Tensor, log_diag: torch.Tensor, **kwargs) -> None:
        super().__init__(**kwargs)
        self.L, self.b, self.log_diag = L, b, log_diag
        eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand_as(L)
        self.Linv = torch.linalg.solve_triangular(L, eye, upper=False)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ij,...j->...i", self.L, x) + self.b

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        r = y - self.b
        d = r.shape[-1]
        if d > 4:
            return torch.einsum("...ij,...j->...i", self.Linv, r)
        # a few coordinates: L^-1 r by multiply-adds on (..., n) slices, cheaper than a batched matmul
        cols = [r[..., j] for j in range(d)]
        rows = []
        for i in range(d):
            acc = cols[0] * self.Linv[..., i, 0]
            for j in range(1, i + 1):
                acc = acc + cols[j] * self.Linv[..., i, j]
            rows.append(acc)
        return torch.stack(rows, dim=-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.log_diag.sum(dim=-1).expand_as(x[..., 0])


class SortedRQS(zuko.transforms.MonotonicRQSTransform):
    """zuko's monotonic rational-quadratic spline, with a sampling fast path.

    Drawing S samples per object inverts splines with per-object knots (*batch, K) at values
    (S, *batch). zuko broadcasts the knots to (S, *batch, K) to find each value's bin; here the values
    are laid out as (*batch, S), the bin is found by binary search (`torch.searchsorted`) and the knots
    are gathered without broadcasting. The arithmetic is zuko's (tests check the two agree); other
    shapes (training batches) take zuko's own path.
    """

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        batch = tuple(self.horizontal.shape[:-1])
        nb = len(batch)
        if not (nb and y.dim() > nb and tuple(y.shape[y.dim() - nb:]) == batch):
            return super()._inverse(y)
        lead = y.shape[:y.dim() - nb]
        v = y.reshape(-1, *batch).movedim(0, -1).contiguous()  # (*batch, S)
        return spline_inverse(self._bin_coefficients(), v, self.bins).movedim(-1, 0).reshape(*lead, *batch)

    def _bin_coefficients(self) -> torch.Tensor:
        """Per bin (*batch, 7, K): y0, x0, A, B, C, 4 s and 2 dy of zuko's inverse quadratic (below)."""
        hs, vs, ds = self.horizontal, self.vertical, self.derivatives
        x0, x1, y0, y1, d0, d1 = hs[..., :-1], hs[..., 1:], vs[..., :-1], vs[..., 1:], ds[..., :-1], ds[..., 1:]
        dy = y1 - y0
        s = dy / (x1 - x0)
        return torch.stack([y0, x0, dy * (s - d0), dy * d0, d0 + d1 - 2 * s, 4 * s, 2 * dy], dim=-2)


def spline_inverse(coef: torch.Tensor, v: torch.Tensor, bins: int) -> torch.Tensor:
    """Inverse of a monotonic rational-quadratic spline at values v (*batch, S); coef from `_bin_coefficients`.

    zuko's root of a x^2 + b x + c = 0 with, for u = v - y0, a = A + C u, b = B - C u, c = -s u (A = dy (s - d0),
    B = dy d0, C = d0 + d1 - 2 s): x = x0 + w 2c / (-b - sqrt(b^2 - 4ac)) = x0 + 2 dy u / (b + sqrt(b^2 + 4 s a u))
    (w s = dy). The bin is the number of knots below v minus one (what `torch.searchsorted` gives, counted
    with one comparison per knot, cheaper for a few knots); values outside the knots pass unchanged.
    """
    y0 = coef[..., 0, :]
    knots = torch.cat([y0, coef[..., 0, -1:] + coef[..., 6, -1:] / 2], dim=-1)  # y0..yK
    count = torch.zeros(v.shape, dtype=torch.uint8, device=v.device)
    for j in range(bins + 1):
        count.add_(v > knots[..., j:j + 1])
    inside = (count >= 1) & (count <= bins)
    k = (count.long() - 1).clamp_(0, bins - 1)
    y0_, x0_, a0, b0, cc, s4, dy2 = (coef[..., i, :].gather(-1, k) for i in range(7))
    u = v - y0_
    cu = cc * u
    a = a0.add_(cu)
    b = b0.sub_(cu)
    disc = b * b
    disc.addcmul_(a.mul_(s4), u)
    den = disc.sqrt_().add_(b)
    x = dy2.mul_(u).div_(den).add_(x0_)
    return torch.where(inside, x, v)


class ContextAffine(zuko.flows.LazyTransform):
    """Lazy `TriangularAffine` whose L and b come from a linear map of the context (starts at identity)."""

    def __init__(self, features: int, context: int) -> None:
        super().__init__()
        self.d = int(features)
        self.rows, self.cols = torch.tril_indices(self.d, self.d, offset=-1)
        self.head = nn.Linear(context, 2 * self.d + self.rows.numel())
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, c: torch.Tensor) -> Transform:
        d = self.d
        p = self.head(c)
        b, log_diag, off = p[..., :d], p[..., d:2 * d].clamp(LOGDIAG_MIN, LOGDIAG_MAX), p[..., 2 * d:]
        L = torch.diag_embed(torch.exp(log_diag))
        if off.shape[-1]:
            L = _fill_lower(L, off, self.rows, self.cols)
        return TriangularAffine(L, b, log_diag)


def _fill_lower(L: torch.Tensor, off: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    L = L.clone()
    L[..., rows, cols] = off
    return L


class PosteriorNet(nn.Module):
    """p(theta | SED, errors, redshift) as a conditional flow over `n_targets` standardised labels."""

    def __init__(self, n_bands: int, n_targets: int, n_err: int = 0, n_extra: int = 0,
                 config: PosteriorNetConfig | None = None, in_channels: int = 1) -> None:
        super().__init__()
        self.config = config or PosteriorNetConfig()
        self.config.validate()
        if n_bands < 1 or n_targets < 1 or n_err < 0 or n_extra < 0:
            raise InputError(f"need n_bands >= 1, n_targets >= 1, n_err, n_extra >= 0; got "
                             f"{n_bands}, {n_targets}, {n_err}, {n_extra}")
        if n_err not in (0, n_bands):
            raise InputError(f"n_err must be 0 or n_bands ({n_bands}), got {n_err}")
        self.n_bands, self.n_targets, self.n_err, self.n_extra = int(n_bands), int(n_targets), int(n_err), int(n_extra)
        emb = replace(self.config.embedding, in_channels=int(in_channels))
        self.embedding = SEDCNN(self.n_bands, int(self.config.embed_dim), emb)
        fc = self.config.flow
        width = int(self.config.embed_dim) + self.n_err + self.n_extra
        self.trunk = nn.Sequential(nn.Linear(width, int(fc.trunk_units)), nn.ReLU())
        ctx = int(fc.trunk_units)
        d = self.n_targets
        transforms: list[zuko.flows.LazyTransform] = []
        for _ in range(int(fc.n_layers)):
            transforms.append(ContextAffine(d, ctx))
            transforms.append(zuko.flows.ElementWiseTransform(
                d, ctx, univariate=functools.partial(SortedRQS, bound=float(fc.bound)),  # picklable (Dask)
                shapes=[(int(fc.bins),), (int(fc.bins),), (int(fc.bins) - 1,)],
                hidden_features=tuple(int(u) for u in fc.hyper_units)))
        transforms.append(ContextAffine(d, ctx))
        base = zuko.flows.UnconditionalDistribution(zuko.distributions.DiagNormal, torch.zeros(d), torch.ones(d),
                                                    buffer=True)
        self.flow = zuko.flows.Flow(transforms, base)

    @property
    def in_channels(self) -> int:
        return int(self.embedding.in_channels)

    @property
    def width(self) -> int:
        """Columns of the input rows: bands, errors, extra context."""
        return self.n_bands + self.n_err + self.n_extra

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """CNN embedding of the SED part of `x` (n, embed_dim)."""
        nb = self.n_bands
        sed = x[:, :, :nb] if x.dim() == 3 else x[:, :nb]
        return self.embedding(sed)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The vector the flow is conditioned on (before the trunk): embedding, errors, extra values."""
        nb = self.n_bands
        parts = [self.embed(x)]
        vals = x[:, 0] if x.dim() == 3 else x
        if self.n_err:
            err = vals[:, nb:nb + self.n_err]
            if x.dim() == 3:
                err = err * x[:, 1, :nb]  # no error information for a missing band
            parts.append(err)
        if self.n_extra:
            parts.append(vals[:, nb + self.n_err:])
        return torch.cat(parts, dim=1)

    def ood_features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """What the out-of-domain score compares with the training rows: the input row itself (values;
        missing = 0) and its CNN embedding, so both odd inputs (a band, or errors, inconsistent with the
        rest) and odd features are seen."""
        vals = x[:, 0] if x.dim() == 3 else x
        emb = context[:, :int(self.config.embed_dim)] if context is not None else self.embed(x)
        return torch.cat([vals, emb], dim=1)

    def distribution(self, x: torch.Tensor) -> torch.distributions.Distribution:
        """The conditional flow p(theta | x) for a batch of rows (batch shape (n,))."""
        return self.flow(self.trunk(self.context(x)))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(y | x) per row (standardised label units)."""
        return self.distribution(x).log_prob(y)

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[None, torch.Tensor]:
        """What `photopop.training.fit.train_network` minimises: (no mean error, -log p(y | x) as (n, 1))."""
        return None, -self.log_prob(x, y).unsqueeze(1)

    def sample(self, x: torch.Tensor, n_samples: int, generator: torch.Generator | None = None,
               context: torch.Tensor | None = None) -> torch.Tensor:
        """(n_samples, n, n_targets) draws from p(theta | x) in standardised units.

        The base draws come from `generator` (not the global torch RNG, so threads sharing a process,
        e.g. Dask workers, cannot disturb each other's streams) and pass through the flow's inverse.
        """
        dist = self.flow(self.trunk(self.context(x) if context is None else context))
        z = torch.randn((int(n_samples), x.shape[0], self.n_targets), generator=generator, device=x.device,
                        dtype=next(self.parameters()).dtype)
        return dist.transform.inv(z)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


