"""`bins_photometry` (the synthetic photometry of `ifu table`) handles bad pixels as `photopop photometry` does:
a short masked run inside a band is interpolated and flagged, a long one voids the band.

The spectrum is linear in wavelength, so linear interpolation over a masked run is exact: the interpolated
magnitude must equal the unmasked one to rounding, whatever the masked pixels hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from photopop.datasets.ifu_table import bins_photometry
from photopop.fitting.spectra import SpectrumSet

BANDS = ["J0450", "J0470", "J0500"]


def _set(bad_runs: list[tuple[float, float]]) -> SpectrumSet:
    wave = np.arange(3700.0, 7500.0, 1.25)
    flux = np.vstack([2.0 + 1e-4 * (wave - 5000.0), 1.0 - 5e-5 * (wave - 5000.0)])  # two bins, linear spectra
    bad = np.zeros(flux.shape, bool)
    for lo, hi in bad_runs:
        bad[:, (wave >= lo) & (wave <= hi)] = True
    flux = np.where(bad, 1e3, flux)  # garbage under the mask: must not leak into the magnitudes
    ivar = np.where(bad, 0.0, 1e4)
    n = flux.shape[0]
    return SpectrumSet(wavelength_aa=wave, flux=flux, ivar=ivar, bad=bad, fwhm_aa=np.full(wave.size, 6.0),
                       ids=np.array(["1_0", "1_1"]), galaxy_id=np.ones(n, np.int64), spaxel_id=np.arange(n),
                       redshift=np.full(n, 0.01), medium="air", flux_unit="1e-16 erg / (s cm2 Angstrom)")


def test_short_masked_run_is_interpolated_exactly_and_flagged():
    b0, mag0, _, cov0 = bins_photometry(_set([]), "jpas", BANDS)
    assert b0 == BANDS and (cov0 == "full").all()
    _, mag, err, cov = bins_photometry(_set([(4700.0, 4705.0)]), "jpas", BANDS)  # a 5 A run inside J0470
    j = BANDS.index("J0470")
    assert (cov[:, j] == "interpolated").all()
    assert (np.delete(cov, j, axis=1) == "full").all()
    np.testing.assert_allclose(mag, mag0, rtol=0, atol=1e-9)
    assert np.isfinite(err).all()


def test_masked_run_beyond_the_share_voids_the_band():
    # ~100 A of J0470's ~150 A: far more than the default 10% of its response
    _, mag, _, cov = bins_photometry(_set([(4650.0, 4750.0)]), "jpas", BANDS)
    j = BANDS.index("J0470")
    assert np.isnan(mag[:, j]).all() and (cov[:, j] == "none").all()
    assert np.isfinite(np.delete(mag, j, axis=1)).all()
    # with a larger allowed share the same run is interpolated (and exact for linear spectra)
    _, mag_all, _, cov_all = bins_photometry(_set([(4650.0, 4750.0)]), "jpas", BANDS, max_interpolated=0.9)
    _, mag0, _, _ = bins_photometry(_set([]), "jpas", BANDS)
    assert (cov_all[:, j] == "interpolated").all()
    np.testing.assert_allclose(mag_all, mag0, rtol=0, atol=1e-9)


def test_band_outside_the_cube_is_refused():
    from photopop.errors import InputError

    with pytest.raises(InputError, match="J1007"):  # the cube ends at 7500 A
        bins_photometry(_set([]), "jpas", ["J0470", "J1007"])
