"""`ImageSurveyConfig`: every setting of the mock imaging survey (`photopop.simulate.images`).

Saved as config.toml with every run; `validate` names the first bad setting. The band order of the
rendered images is `RENDER_BANDS` (g, r, i); the catalogue has all of SDSS ugriz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from .colour_table import BANDS_UGRIZ
from .mzr import LabelConfig

#: bands rendered into the images (axis 1 of the `images` dataset)
RENDER_BANDS = ("g", "r", "i")
#: positions of RENDER_BANDS in BANDS_UGRIZ
RENDER_INDEX = [BANDS_UGRIZ.index(b) for b in RENDER_BANDS]


@dataclass
class ImageSurveyConfig:
    """Settings of the mock imaging survey (saved as config.toml with every run)."""

    n_galaxies: int = 1000
    seed: int = 0
    image_size: int = 128                       # output pixels per side
    pixel_scale_arcsec: float = 0.296           # output (cutout) pixel scale
    native_pixel_scale_arcsec: float = 0.396    # SDSS camera pixel scale
    redshift_range: tuple[float, float] = (0.02, 0.2)
    logm_range: tuple[float, float] = (8.5, 11.8)
    r_petro_limit: float = 17.77                # SDSS main-sample spectroscopic limit
    psf_kind: str = "kolmogorov"                # or "moffat"
    psf_fwhm_arcsec: float = 1.4                # median r-band seeing
    psf_fwhm_scatter: float = 0.2               # per-galaxy (field) scatter, arcsec
    psf_band_jitter: float = 0.03               # fractional per-band scatter on top of FWHM ∝ lambda^-0.2
    moffat_beta: float = 3.5
    sky_mag_arcsec2: tuple[float, ...] = (22.1, 21.0, 20.2, 19.6, 18.7)  # u g r i z, AB mag / arcsec^2
    gain: tuple[float, ...] = (1.6, 3.9, 4.7, 5.1, 4.8)                  # e-/DN, u g r i z
    dark_variance_dn: tuple[float, ...] = (9.0, 1.4, 1.2, 1.6, 1.0)      # DN^2 per native pixel
    exposure_s: float = 53.9
    collecting_area_m2: float = 3.58            # 2.5 m primary minus central obstruction
    saturation_electrons: float = 1.7e5         # full well: point sources saturate at r ~ 14
    calibration_floor_mag: float = 0.01         # photometric calibration floor of catalogue magnitudes
    disc_h_over_r: float = 0.12                 # disc scale height / scale length (InclinedExponential)
    disc_intrinsic_q: float = 0.15              # edge-on axis ratio used for projected q
    neighbour_rate: float = 0.3                 # mean number of neighbour galaxies per cutout
    star_rate: float = 0.02                     # fraction of cutouts with a bright star
    trail_rate: float = 0.005                   # fraction with a satellite trail (one band)
    bad_column_rate: float = 0.005              # fraction with a dead/hot column (one band)
    rgb_q: float = 8.0                          # Lupton asinh softening Q
    rgb_stretch: float = 0.4                    # linear stretch (nanomaggies per pixel)
    rgb_scales: tuple[float, float, float] = (1.0, 1.3, 2.2)  # multipliers of i, r, g before the stretch
    rgb_jpeg_quality: int = 75                  # JPEG quality of the irg composites, as the SDSS cutouts the paper
                                                # used are JPEGs (75 = PIL's default); 0 = no JPEG step
    png: bool = False                           # also write cutouts/<id>.png
    compression: str = ""                       # HDF5 compression ('', 'gzip', 'lzf')
    chunk_size: int = 16                        # galaxies per worker task
    folding_threshold: float = 5e-3             # GalSim accuracy (default 5e-3)
    add_noise: bool = True                      # False: noise-free images (diagnostics, calibration tests)
    labels: LabelConfig = field(default_factory=LabelConfig)

    def validate(self) -> None:
        """Raise InputError naming the first bad setting."""
        if self.n_galaxies < 1:
            raise InputError("n_galaxies must be >= 1")
        if self.image_size < 8:
            raise InputError("image_size must be >= 8 pixels")
        if not (0 < self.pixel_scale_arcsec and 0 < self.native_pixel_scale_arcsec):
            raise InputError("pixel scales must be > 0")
        z0, z1 = self.redshift_range
        if not 0.005 <= z0 < z1 <= 0.25:
            raise InputError(f"redshift_range must lie within 0.005-0.25 (colour table), got {self.redshift_range}")
        m0, m1 = self.logm_range
        if not 7.0 <= m0 < m1 <= 12.5:
            raise InputError(f"logm_range must lie within 7-12.5, got {self.logm_range}")
        for name in ("sky_mag_arcsec2", "gain", "dark_variance_dn"):
            if len(getattr(self, name)) != 5:
                raise InputError(f"{name} needs 5 values (u, g, r, i, z)")
        if self.psf_kind not in ("kolmogorov", "moffat"):
            raise InputError(f"psf_kind must be 'kolmogorov' or 'moffat', got {self.psf_kind!r}")
        if len(self.rgb_scales) != 3:
            raise InputError("rgb_scales needs 3 values (i, r, g)")
        if self.compression not in ("", "gzip", "lzf"):
            raise InputError("compression must be '', 'gzip' or 'lzf'")
        for name in ("neighbour_rate", "star_rate", "trail_rate", "bad_column_rate"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0")
        for name in ("star_rate", "trail_rate", "bad_column_rate"):
            if getattr(self, name) > 1:
                raise InputError(f"{name} is a fraction and must be <= 1")
        if not 0 <= self.rgb_jpeg_quality <= 95:
            raise InputError(f"rgb_jpeg_quality must be 0 (no JPEG) or 1-95, got {self.rgb_jpeg_quality}")
        if self.chunk_size < 1:
            raise InputError("chunk_size must be >= 1")
        self.labels.validate()



__all__ = ["RENDER_BANDS", "RENDER_INDEX", "ImageSurveyConfig"]
