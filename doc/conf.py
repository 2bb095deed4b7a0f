"""Sphinx configuration of the sklearn-snn documentation.

Build with ``make -C doc html`` (runs the gallery), ``make -C doc html-quick`` (gallery in quick
mode, ``SKLEARN_SNN_QUICK=1``) or ``make -C doc html-noplot`` (gallery not executed).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MPLBACKEND", "Agg")

import sklearn_snn  # noqa: E402

project = "sklearn-snn"
author = "the sklearn-snn developers"
copyright = "the sklearn-snn developers"
version = release = sklearn_snn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "dev", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Cross-project links need the network; turn them on where it is reachable.
if os.environ.get("SKLEARN_SNN_DOC_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "joblib": ("https://joblib.readthedocs.io/en/latest", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "optuna": ("https://optuna.readthedocs.io/en/stable", None),
    }
else:
    intersphinx_mapping = {}

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-snn {version}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}

# The gallery: examples honour SKLEARN_SNN_QUICK (set by `make html-quick`).
sphinx_gallery_conf = {
    "doc_module": "sklearn_snn",
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "backreferences_dir": "generated",
    "reference_url": {"sklearn_snn": None},
    "filename_pattern": r"/plot_",
    "plot_gallery": "True",
    "remove_config_comments": True,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "write_computation_times": False,
}
if os.environ.get("SKLEARN_SNN_DOC_NOPLOT") == "1":
    sphinx_gallery_conf["plot_gallery"] = "False"


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn generates set_<method>_request for metadata routing; its docstrings refer to
    # sklearn's own glossary and are not part of this package's API
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
