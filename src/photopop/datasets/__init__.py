"""photopop.datasets: the spaxel-table schema (`SEDTable`) and readers that produce it."""

from .sed_table import (
    GALAXY_COLUMNS,
    LABEL_COLUMNS,
    SEDTable,
    bands_from_columns,
    load_sed_table,
    mag_columns,
    read_sed_table,
    validate_galaxies,
    validate_spaxels,
    write_sed_table,
)

__all__ = [
    "GALAXY_COLUMNS",
    "LABEL_COLUMNS",
    "SEDTable",
    "bands_from_columns",
    "load_sed_table",
    "mag_columns",
    "read_sed_table",
    "read_ifu_cube",
    "validate_galaxies",
    "validate_spaxels",
    "write_sed_table",
]


def __getattr__(name: str):
    # the IFU reader pulls in photometry + FITS handling; import it only when asked for
    if name == "read_ifu_cube":
        from .ifu import read_ifu_cube

        return read_ifu_cube
    raise AttributeError(name)
