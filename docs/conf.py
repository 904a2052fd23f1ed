"""Sphinx configuration of the sknas documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sknas  # noqa: E402

project = "sknas"
author = "the sknas authors"
copyright = "2025, the sknas authors"
version = release = sknas.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

exclude_patterns = ["_build"]
templates_path = []
html_theme = "alabaster"
html_static_path = []

# Members are listed explicitly in api.rst: the inherited scikit-learn methods
# (score, get_params, set_*_request) refer to labels of the scikit-learn docs.
autodoc_default_options = {}
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Members without a docstring section (``__init__`` etc.) must not fail the build.
numpydoc_validation_checks = set()
