"""offpkg: carry Python and conda environments onto machines with no internet."""

__version__ = "0.1.0"
