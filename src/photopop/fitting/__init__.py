"""Full-spectrum fitting with pPXF: stellar kinematics and population labels of real spectra.

Layer: after `populations` (imports errors, io, photometry, populations only). `fit_labels` is the API;
`photopop labels` (cli/labels.py) runs it resumably over files (`run.run_labels`).
"""

from .config import LabelFitConfig
from .labels import LABEL_COLUMNS, fit_labels, load_ssp
from .spectra import FitSpectrum, SpectrumSet, read_fit_spectra, read_spectrum_set, write_spectrum_set

__all__ = ["LabelFitConfig", "LABEL_COLUMNS", "fit_labels", "load_ssp", "FitSpectrum", "SpectrumSet",
           "read_fit_spectra", "read_spectrum_set", "write_spectrum_set"]
