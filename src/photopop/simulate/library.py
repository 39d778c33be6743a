"""Libraries of noise-free model spaxels in band space: the mock's own prior, and broad uniform priors.

Two libraries, both (n_entries, n_bands) noise-free band fluxes in maggies plus labels:

* `draw_prior_library` -- spaxels drawn from the mock IFU simulator's OWN generative model: whole galaxies
  from `plan_survey` (sample, geometry, per-galaxy SFH family, bulge + disc + burst mixtures, chemical
  evolution, sloped Calzetti dust with birth clouds, nebular lines, alpha tweak, redshift, bin masses) with
  a seed of their own, photometry through the very function the survey uses (`_galaxy_photometry`), and the
  survey's S/N selection of bins. This is the prior of the information floor (`photopop.models.floor`).
* `draw_uniform_library` -- composites of the same model FAMILY with every parameter drawn from broad,
  independent uniform priors (documented in `UniformPriorConfig`), observed at a set of redshifts: the
  template library of the classical chi-square fit (`photopop.models.template_fit`). It is deliberately not
  the mock's prior (otherwise the template fit would be the floor).

Both are vectorised (one `compose_bands`/`iter_compose` pass per chunk of entries) with bounded memory, and
seeded by their own `numpy.random.SeedSequence`; the same arguments give the same library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..photometry.filters import FilterSystem
from ..photometry.synth import band_weights
from ..populations.compose import compose_bands
from ..populations.labels import Labels
from ..populations.nebular import NebularLines
from ..populations.sfh import Combined, DelayedTau, Exponential, with_burst
from ..populations.ssp import SSPGrid
from .ifu import (
    IFUSurveyConfig,
    SlopedCalzetti,
    _galaxy_photometry,
    _mass_kind,
    _observe,
    plan_survey,
)

#: labels every library carries (the SED-table label columns)
LIBRARY_LABELS = ("log_age", "zh", "log_age_mw", "zh_mw", "a_v", "log_ssfr")
#: a tag mixed into the library's seed sequence so that it can never replay the survey's streams
_LIBRARY_TAG = 0x4C1B


@dataclass
class SpaxelLibrary:
    """Noise-free library entries: fluxes (n, n_bands) maggies, labels, and where they came from.

    fluxes keep their absolute scale (bin mass x distance dimming for the prior library; per unit mass
    formed at 10 pc for the uniform one). For a uniform library observed at several redshifts, `fluxes`
    is (n_redshifts, n, n_bands) and `redshifts` lists them; for the prior library `redshifts` is the
    per-entry redshift (n,).
    """

    fluxes: np.ndarray
    labels: pd.DataFrame
    bands: list[str]
    redshifts: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select_bands(self, bands: Sequence[str]) -> "SpaxelLibrary":
        """The library restricted to / reordered as `bands` (InputError naming the missing ones)."""
        bands = list(bands)
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise InputError(f"library has no band(s) {missing}; it has {self.bands}")
        idx = [self.bands.index(b) for b in bands]
        return dataclasses.replace(self, fluxes=self.fluxes[..., idx], bands=bands)


def _labels_frame(lab: Labels, mass_kind: str) -> pd.DataFrame:
    per = lab.stellar_mass if mass_kind == "surviving" else lab.mass_formed
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ssfr = np.maximum(np.log10(lab.sfr_100 / per), -14.0)
    return pd.DataFrame({"log_age": lab.log_age, "zh": lab.zh, "log_age_mw": lab.log_age_mw, "zh_mw": lab.zh_mw,
                         "a_v": lab.a_v, "log_ssfr": log_ssfr})


def library_seed(survey_seed: int, seed: int | None = None) -> int:
    """The prior library's seed: `seed` if given, else derived from the survey's; never the survey's own."""
    if seed is None or seed < 0:
        ss = np.random.SeedSequence([int(survey_seed), _LIBRARY_TAG])
        seed = int(ss.generate_state(1)[0] & 0x7FFFFFFF)
    if int(seed) == int(survey_seed):
        raise InputError(f"the floor library's seed ({seed}) must differ from the survey's seed")
    return int(seed)


def draw_prior_library(survey: IFUSurveyConfig, n_spaxels: int = 100_000, seed: int | None = None,
                       batch_galaxies: int = 200, progress: Callable[[str], None] | None = None) -> SpaxelLibrary:
    """At least `n_spaxels` noise-free spaxels from the mock survey's own generative model.

    Galaxies are drawn in batches of `batch_galaxies` (each batch a survey plan with the same config and a
    seed spawned from the library's seed), their spaxels composed one galaxy at a time by the survey's own
    photometry function, and bins below the survey's noise-free S/N cut (`noise.min_snr`) dropped as the
    survey drops them. Whole galaxies are kept, so the library may hold a few more than `n_spaxels` entries.
    Labels are the true (noise-free) labels with the survey's light weighting.
    """
    if int(n_spaxels) < 1:
        raise InputError(f"the floor library needs >= 1 spaxel, got {n_spaxels}")
    if int(batch_galaxies) < 1:
        raise InputError(f"batch_galaxies must be >= 1, got {batch_galaxies}")
    seed = library_seed(survey.seed, seed)
    say = progress or (lambda msg: None)
    root = np.random.SeedSequence([seed, _LIBRARY_TAG])
    fluxes, labels, zs, gids = [], [], [], []
    n = 0
    batch = 0
    bands: list[str] = []
    while n < n_spaxels:
        bseed = int(root.spawn(1)[0].generate_state(1)[0] & 0x7FFFFFFF)
        if bseed == int(survey.seed):  # pragma: no cover - a 2^-31 coincidence, refused rather than replayed
            continue
        cfg = dataclasses.replace(survey, seed=bseed,
                                  sample=dataclasses.replace(survey.sample, n_galaxies=int(batch_galaxies)))
        plan = plan_survey(cfg)
        bands = list(plan.system.bands)
        noise_rng = np.random.default_rng(root.spawn(1)[0])
        zmap = plan.galaxies.set_index("galaxy_id")["redshift"]
        for gid in plan.galaxies["galaxy_id"].to_numpy():
            rows = plan.galaxy_rows(int(gid))
            if rows.size == 0:
                continue
            maggies, lab = _galaxy_photometry(plan, int(gid))
            area = plan.spaxels["spacing_arcsec"].to_numpy()[rows] ** 2
            if np.isinf(survey.noise.snr_scale):
                keep = np.ones(rows.size, dtype=bool)
            else:
                _, _, snr = _observe(maggies, area, plan.depth_mag, survey.noise, noise_rng)
                keep = np.median(snr, axis=1) >= survey.noise.min_snr
            fluxes.append(maggies[keep])
            labels.append(_labels_frame(lab, _mass_kind(plan))[keep])
            zs.append(np.full(int(keep.sum()), float(zmap.loc[gid])))
            gids.append(np.full(int(keep.sum()), batch * int(batch_galaxies) + int(gid)))
            n += int(keep.sum())
            if n >= n_spaxels:
                break
        batch += 1
        say(f"floor library: {n} / {n_spaxels} spaxels")
    lab_df = pd.concat(labels, ignore_index=True)
    meta = {"kind": "mock-prior", "seed": seed, "survey_seed": int(survey.seed), "n": int(lab_df.shape[0]),
            "light_weighting": survey.light_weighting, "galaxy_id": np.concatenate(gids)}
    return SpaxelLibrary(np.concatenate(fluxes), lab_df, bands, np.concatenate(zs), meta)


# -- broad uniform priors over the same model family (the template fit's library) ------------------
@dataclass
class UniformPriorConfig:
    """Independent uniform priors of the template library (ages in Gyr, lookback; log = log10).

    The family is the mock's: bulge (exponential) + disc (exponential or delayed-tau, 50/50) + optional
    recent burst, chemical evolution [Z/H](age) = zh_final - chem_slope * min(age / t_start, 1), Calzetti
    dust tilted by (lambda/5500)**dust_slope with birth clouds (stars < 10 Myr see birth_factor x A_V) and
    nebular lines (BC03 CLOUDY grids) at log_u. The ranges contain the mock's and go beyond them (zh_final
    to +0.5 is clipped at the grid's top, +0.4; A_V to 2.5). Dust slope, birth factor and log_u are shared
    by `chunk` consecutive entries (one dust model per compose pass), drawn anew per chunk.
    """

    disc_start_gyr: tuple[float, float] = (0.5, 13.5)
    log_tau_gyr: tuple[float, float] = (-1.0, 1.3)
    bulge_share: tuple[float, float] = (0.0, 1.0)
    bulge_start_gyr: tuple[float, float] = (8.0, 13.5)
    bulge_log_tau_gyr: tuple[float, float] = (-1.0, 0.0)
    burst_probability: float = 0.5
    burst_log_fraction: tuple[float, float] = (-3.5, -1.0)
    burst_log_age_gyr: tuple[float, float] = (-2.0, 0.3)
    zh_final: tuple[float, float] = (-1.5, 0.5)
    chem_slope: tuple[float, float] = (0.0, 0.6)
    a_v: tuple[float, float] = (0.0, 2.5)
    dust_slope: tuple[float, float] = (-0.6, 0.6)
    birth_factor: tuple[float, float] = (1.0, 4.0)
    log_u: tuple[float, float] = (-3.8, -2.2)
    nebular: bool = True
    line_sigma_kms: float = 60.0
    light_weighting: str = "attenuated"
    chunk: int = 256

    def check(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and not v[0] <= v[1]:
                raise InputError(f"uniform prior {f.name} must be (low, high) with low <= high, got {v}")
        if not 0 <= self.burst_probability <= 1:
            raise InputError(f"burst_probability must be in [0, 1], got {self.burst_probability}")
        if self.light_weighting not in ("intrinsic", "attenuated"):
            raise InputError(f"light_weighting must be 'intrinsic' or 'attenuated', got {self.light_weighting!r}")
        if self.chunk < 1:
            raise InputError(f"chunk must be >= 1, got {self.chunk}")


def _u(rng: np.random.Generator, lo_hi: tuple[float, float], size: int | None = None) -> np.ndarray:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * rng.random(size)


def draw_uniform_library(system: FilterSystem, n: int, seed: int, redshifts: Sequence[float],
                         prior: UniformPriorConfig | None = None, grid: SSPGrid | None = None) -> SpaxelLibrary:
    """`n` composites from the broad uniform priors, observed through `system` at each of `redshifts`.

    Returns fluxes (n_redshifts, n, n_bands) in maggies per M_sun formed at 10 pc (the amplitude is free in
    a fit) and the labels. One band matrix stacks every redshift, so each chunk is composed once.
    """
    from astropy import units as u

    prior = prior or UniformPriorConfig()
    prior.check()
    if int(n) < 1:
        raise InputError(f"template library size must be >= 1, got {n}")
    zs = np.atleast_1d(np.asarray(redshifts, dtype=np.float64))
    if zs.size < 1 or np.any(~np.isfinite(zs)) or np.any(zs <= -1):
        raise InputError(f"template redshifts must be finite and > -1, got {zs.tolist()}")
    lo = float(np.min(system.wavelength_ranges)) / (1 + zs.max()) / 1.01
    hi = float(np.max(system.wavelength_ranges)) / (1 + zs.min()) * 1.01
    g = grid if grid is not None else SSPGrid.bc03(wave_range=(min(lo, 5400.0), max(hi, 5600.0)))
    wave = g.wavelength_aa
    # f_lambda in L_sun/A per M_sun -> erg/s/cm^2/A at 10 pc, band-integrated to Jy, then maggies
    to_flux = (1.0 * u.L_sun / u.AA).to(u.erg / u.s / u.AA).value / (4 * np.pi * (10 * u.pc).to(u.cm).value ** 2)
    mats = [band_weights(wave * (1 + z), system, "flambda").matrix * to_flux / (1 + z) for z in zs]
    B = np.vstack(mats) / 3631.0
    nb = len(system.bands)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _LIBRARY_TAG, 1]))
    t_max = float(g.ages_yr.max()) / 1e9
    out = np.empty((zs.size, int(n), nb))
    parts = []
    age_gyr = g.ages_yr / 1e9
    for start in range(0, int(n), prior.chunk):
        m = min(prior.chunk, int(n) - start)
        t0 = np.minimum(_u(rng, prior.disc_start_gyr, m), t_max)
        tau = 10.0 ** _u(rng, prior.log_tau_gyr, m)
        share = _u(rng, prior.bulge_share, m)
        fam_exp = rng.random(m) < 0.5
        disc = Combined([Exponential(age_start_gyr=t0, tau_gyr=tau, mass=(1 - share) * fam_exp),
                         DelayedTau(age_start_gyr=t0, tau_gyr=tau, mass=(1 - share) * ~fam_exp)])
        bulge = Exponential(age_start_gyr=np.minimum(_u(rng, prior.bulge_start_gyr, m), t_max),
                            tau_gyr=10.0 ** _u(rng, prior.bulge_log_tau_gyr, m), mass=share)
        frac = np.where(rng.random(m) < prior.burst_probability, 10.0 ** _u(rng, prior.burst_log_fraction, m), 0.0)
        burst_age = 10.0 ** _u(rng, prior.burst_log_age_gyr, m)
        sfh = with_burst(Combined([bulge, disc]), burst_age, frac)
        zh_final = _u(rng, prior.zh_final, m)
        chem = _u(rng, prior.chem_slope, m)
        zh_age = zh_final[:, None] - chem[:, None] * np.clip(age_gyr[None, :] / t0[:, None], 0.0, 1.0)
        a_v = _u(rng, prior.a_v, m)
        dust = SlopedCalzetti(slope=float(_u(rng, prior.dust_slope)), birth_factor=float(_u(rng, prior.birth_factor)))
        neb = NebularLines(log_u=float(_u(rng, prior.log_u)), sigma_kms=prior.line_sigma_kms) if prior.nebular else None
        res = compose_bands(g, sfh, zh_age, a_v, dust, band_matrix=B, per_unit_mass="formed", outside="clip",
                            z_outside="clip", light=prior.light_weighting, mass="surviving", nebular=neb)
        out[:, start:start + m] = res.values.reshape(m, zs.size, nb).transpose(1, 0, 2)
        parts.append(_labels_frame(res.labels, "surviving"))
    labels = pd.concat(parts, ignore_index=True)
    meta = {"kind": "uniform", "seed": int(seed), "n": int(n), "prior": dataclasses.asdict(prior)}
    return SpaxelLibrary(out, labels, list(system.bands), zs, meta)
