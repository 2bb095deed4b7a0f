"""The `sklearn-snn benchmark` main job end to end (quick mode)."""
import os

from sklearn_snn.cli import main


def test_benchmark_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["benchmark", "--quick", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    printed = capsys.readouterr().out
    for model in ("SurrogateSNN (SNN)", "ConvertedSNN (SNN)", "EvolvedSNN (SNN)", "EventProp (SNN)",
                  "STDP+LogReg (SNN)", "LogisticRegression", "SVC", "MLPClassifier", "RandomForest"):
        assert model in report, model
    assert "[20/" in printed or "[21/" in printed  # progress lines
    # SNN rows carry firing rate, SynOps and energy columns
    snn_row = next(line for line in report.splitlines() if "| digits | SurrogateSNN (SNN)" in line)
    cells = [c.strip() for c in snn_row.strip("|").split("|")]
    assert all(cells[4:]), snn_row
    assert os.path.exists(out / "benchmark.png")


def test_benchmark_on_user_csv_writes_both_reports(tmp_path, capsys):
    """``sklearn-snn benchmark --data file.csv``: progress lines, Markdown + HTML report, closing line."""
    import pandas as pd
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["species"] = frame.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    data = tmp_path / "iris.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "report"
    assert main(["benchmark", "--data", str(data), "--target", "species", "--models", "SurrogateSNN",
                 "LogisticRegression", "--cv", "3", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[1/2] SurrogateSNN" in printed and "[2/2] LogisticRegression" in printed
    closing = next(line for line in printed.splitlines() if line.startswith("Best SNN: SurrogateSNN"))
    assert "best classical model: LogisticRegression" in closing
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert closing in md and closing in html
    assert "| SurrogateSNN | SNN |" in md and "| LogisticRegression | classical |" in md
    assert "--data " + str(data) in md and "3-fold stratified cross-validation" in md
    assert html.count("data:image/png;base64,") == 3
    results = pd.read_csv(out / "results.csv")
    assert results.loc[results["model"] == "LogisticRegression", "accuracy"].item() > 0.9


def test_benchmark_on_user_spikes_with_search(tmp_path, capsys):
    """3D spikes in .npz: the spiking model and a classical model on spike counts, each tuned (nested)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    rates = rng.uniform(0.05, 0.6, size=(2, 6))
    X = (rng.random((40, 10, 6)) < rates[y][:, None, :]).astype(np.uint8)
    np.savez(tmp_path / "spikes.npz", X=X, y=y)
    out = tmp_path / "report"
    assert main(["benchmark", "--data", str(tmp_path / "spikes.npz"), "--models",
                 "SurrogateSNN-spikes,LogisticRegression-counts", "--cv", "2", "--search", "2", "--quick",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 Optuna trials per fold" in printed
    results = pd.read_csv(out / "results.csv")
    assert list(results["model"]) == ["SurrogateSNN-spikes", "LogisticRegression-counts"]
    assert "logisticregression__C" in results.loc[1, "params"]
    assert results.loc[1, "accuracy"] > 0.8 and results.loc[0, "synops"] > 0
