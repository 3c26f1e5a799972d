"""The package version (read by setuptools and exposed as ``__version__``)."""

__version__ = "0.1.0"
