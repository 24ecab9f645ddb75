"""The version of mlgate (its own module, so no part of the package imports the package root)."""

__version__ = "0.1.0"
