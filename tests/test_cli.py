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
