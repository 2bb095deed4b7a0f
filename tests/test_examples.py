"""Run every gallery example (examples/plot_*.py) in quick mode (SKLEARN_SNN_QUICK=1)."""

import contextlib
import io
import runpy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


def test_examples_found():
    assert len(EXAMPLES) >= 10


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_quick_mode(path, monkeypatch):
    monkeypatch.setenv("SKLEARN_SNN_QUICK", "1")
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(path), run_name="__main__")
    finally:
        plt.close("all")
    text = out.getvalue()
    if "Skipping this example" in text:
        pytest.skip(text.strip().splitlines()[-1])
    assert text.strip(), f"{path.name} printed nothing"


def test_gallery_and_docs_cover_every_estimator():
    utils = pytest.importorskip("sklearn_snn.utils")
    root = Path(__file__).resolve().parents[1]
    examples = "".join(p.read_text() for p in EXAMPLES)
    api = (root / "doc" / "api.rst").read_text()
    guide = "".join(p.read_text() for p in (root / "doc" / "user_guide").glob("*.rst"))
    names = [name for name, _ in utils.all_estimators()]
    assert "SurrogateSNNClassifier" in names
    for name in names:
        assert name in examples, f"no gallery example uses {name}"
        assert name in api, f"{name} is missing from doc/api.rst"
        assert name in guide, f"the user guide does not mention {name}"
