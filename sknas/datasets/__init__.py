"""Bundled data sets."""

from ._wine import load_wine_quality

__all__ = ["load_wine_quality"]
