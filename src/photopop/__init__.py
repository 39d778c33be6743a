"""photopop: stellar-population measurements from photometric survey data with neural networks."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("photopop")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
