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
try:  # the ``docs`` extra installs it; without it the pages still build, plainly
    import pydata_sphinx_theme  # noqa: F401
    html_theme = "pydata_sphinx_theme"
except ImportError:
    html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["sknas.css"]
html_title = f"sknas {release}"
html_theme_options = {} if html_theme == "alabaster" else {
    # the repository has no public URL to link to, so no icon links or edit buttons
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_show_sourcelink = False
# The guide is one level deep: its pages are in the top bar (the rest under
# "More"), so the left sidebar would be empty; leave it out everywhere.
if html_theme != "alabaster":
    html_sidebars = {"**": []}

# "fit()" rather than "MLPNASClassifier.fit()" in the page's table of contents.
toc_object_entries_show_parents = "hide"

# Members are listed explicitly in api.rst: the inherited scikit-learn methods
# (score, get_params, set_*_request) refer to labels of the scikit-learn docs.
autodoc_default_options = {}
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Members without a docstring section (``__init__`` etc.) must not fail the build.
numpydoc_validation_checks = set()
