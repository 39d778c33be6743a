"""The published numbers of Liew-Cain et al. (2021), MNRAS 506, 1972 (put beside photopop's in metrics.json)."""

from __future__ import annotations

from typing import Any

#: the published numbers (Liew-Cain et al. 2021, MNRAS 506, 1972), as quoted in the text, tables and figures
PAPER: dict[str, Any] = {
    "reference": "Liew-Cain, Kawata, Sanchez-Blazquez, Ferreras & Symeonidis 2021, MNRAS 506, 1972",
    "set_a": {
        "log_age": {"robust_sigma": 0.03, "gradient_robust_sigma": 0.02, "pcc_residuals": -0.24},
        "zh": {"robust_sigma": 0.03, "gradient_robust_sigma": 0.02, "pcc_residuals": -0.24},
    },
    "set_b": {
        "log_age": {"robust_sigma": 0.14, "robust_sigma_text": 0.16, "gradient_robust_sigma": 0.15,
                    "pcc_residuals": -0.24},
        "zh": {"robust_sigma": 0.16, "gradient_robust_sigma": 0.16, "pcc_residuals": -0.24},
    },
    "notes": {
        "set_b_age": "Fig. 8 caption and Table 1 give 0.14 dex for age in Set B; the text of Sect. 4.3 says 0.16.",
        "data": "190 CALIFA galaxies (44 early, 146 late), 19 727 spectra, 34 J-PAS bands (photopop: 37, see docs/photometry.md); labels from STECKMAP fits.",
    },
    # Table 1: robust sigma (dex); morphology[target][application set][training set]
    "morphology": {
        "log_age": {"early": {"early": 0.10, "late": 0.14}, "late": {"early": 0.16, "late": 0.15},
                    "all": {"all": 0.14}},
        "zh": {"early": {"early": 0.12, "late": 0.13}, "late": {"early": 0.19, "late": 0.17},
               "all": {"all": 0.16}},
    },
    "training_size": {
        "fractions": [0.05, 0.75],
        "n_train_set_a": {"0.05": 986, "0.75": 14795},
        "n_train_galaxies_set_b": {"0.05": 10, "0.75": 157},
        "repeats": 100,
        "set_a_5pc_minus_set_b_75pc": -0.07,
        "description": ("Age only. Set B's robust sigma rises as the training set shrinks and its spread grows; "
                        "Set A changes by only ~1 sigma between 5 and 75 per cent; Set A at 5 per cent is ~0.07 dex "
                        "below Set B at 75 per cent; both lie below the random-prediction line."),
    },
    "property_dependence": ("Sect. 4.4: the per-galaxy robust sigma rises slightly with specific SFR; no trend of "
                            "the median or the robust sigma with inclination, A_V or bulge fraction."),
    "mass_gradients": ("Sect. 4.6, Fig. 14: Set A gradients follow the spectroscopic ones against stellar mass; "
                       "Set B differs markedly, for individual galaxies and bin means."),
}


__all__ = ["PAPER"]
