"""photopop.experiments: recipes tying the stages together (`sed_cv.run_sed_cv`: Set A / Set B cross-prediction)."""
