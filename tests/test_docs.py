"""Build the documentation (``doc/``) with warnings as errors, without running the gallery.

The gallery examples themselves run in tests/test_examples.py. The build takes one to a few
minutes, so it only runs when asked: set ``SKLEARN_SNN_TEST_DOCS=1`` with the ``doc``
extra installed (CI does, after the suite: see ``.ci/run``).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "doc"


@pytest.mark.skipif(os.environ.get("SKLEARN_SNN_TEST_DOCS") != "1",
                    reason="the documentation build takes minutes; set SKLEARN_SNN_TEST_DOCS=1 to run it")
def test_doc_builds_without_warnings(tmp_path):
    for mod in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(mod, reason=f"{mod} is not installed (pip install '.[doc]')")
    env = dict(os.environ, SKLEARN_SNN_DOC_NOPLOT="1", MPLBACKEND="Agg")
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(tmp_path / "doctrees"),
         str(DOC), str(tmp_path / "html")],
        capture_output=True, text=True, env=env, cwd=DOC,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert (tmp_path / "html" / "api.html").exists()
    assert (tmp_path / "html" / "user_guide" / "surrogate.html").exists()
