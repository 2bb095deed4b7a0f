"""Bad ``sklearn-snn`` arguments are refused up front (issues #26, #24).

Every refusal must happen while parsing: exit status 2, a one-line ``error:``
on stderr that names the option, no output folder or file created and no
training started. The functions that do the work are replaced by ones that
fail the test if they are ever called.
"""
import math
import os

import pytest

from sklearn_snn import _cli_tune, cli

_original_run_tune = _cli_tune.run_tune


def _forbidden(*args, **kwargs):
    raise AssertionError("the job started although the arguments are invalid")


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Run in an empty folder, with the benchmark and the search disabled."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "run_benchmark", _forbidden)
    monkeypatch.setattr(cli, "run_data_benchmark", _forbidden)
    monkeypatch.setattr(_cli_tune, "run_tune", _forbidden)
    monkeypatch.setattr(_cli_tune, "load_dataset", _forbidden)
    return tmp_path


def _refused(argv, capsys, *needles):
    """Run ``main(argv)``; check exit status 2 and that stderr names the problem."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _deny_write(monkeypatch, denied):
    """Pretend ``denied`` is read-only (``os.access`` is always true for root)."""
    real_access = os.access
    denied = os.path.abspath(denied)

    def access(path, mode, *args, **kwargs):
        if os.path.abspath(path) == denied and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


# ------------------------------------------------------------------ benchmark


@pytest.mark.parametrize("folds", ["0", "1", "-3", "two"])
def test_benchmark_refuses_fewer_than_two_folds(no_work, capsys, folds):
    out = no_work / "report"
    _refused(["benchmark", "--quick", "--folds", folds, "--out", str(out)], capsys, "--folds")
    assert not out.exists()
    assert os.listdir(no_work) == []


def test_benchmark_refuses_out_that_is_a_file(no_work, capsys):
    out = no_work / "report"
    out.write_text("keep me")
    _refused(["benchmark", "--out", str(out)], capsys, "--out", str(out), "file")
    assert out.read_text() == "keep me"


def test_benchmark_refuses_default_out_that_is_a_file(no_work, capsys):
    (no_work / "sklearn_snn_report").write_text("keep me")
    _refused(["benchmark", "--quick"], capsys, "--out", "sklearn_snn_report")


@pytest.mark.parametrize("name", ["report.md", "benchmark.png"])
def test_benchmark_refuses_output_file_that_is_a_folder(no_work, capsys, name):
    out = no_work / "report"
    (out / name).mkdir(parents=True)
    _refused(["benchmark", "--out", str(out)], capsys, "--out", name, "folder")
    assert os.listdir(out) == [name]


def test_benchmark_refuses_out_below_a_file(no_work, capsys):
    (no_work / "plain").write_text("")
    out = no_work / "plain" / "report"
    _refused(["benchmark", "--out", str(out)], capsys, "--out", "cannot create")
    assert os.listdir(no_work) == ["plain"]


def test_benchmark_refuses_out_in_read_only_folder(no_work, capsys, monkeypatch):
    _deny_write(monkeypatch, no_work)
    out = no_work / "report"
    _refused(["benchmark", "--out", str(out)], capsys, "--out", "not writable")
    assert not out.exists()


def test_benchmark_refuses_read_only_out(no_work, capsys, monkeypatch):
    out = no_work / "report"
    out.mkdir()
    _deny_write(monkeypatch, out)
    _refused(["benchmark", "--out", str(out)], capsys, "--out", "not writable")
    assert os.listdir(out) == []


def test_benchmark_valid_arguments_reach_the_job(no_work, monkeypatch):
    """The checks create nothing and let good arguments through."""
    seen = {}
    monkeypatch.setattr(cli, "run_benchmark", lambda **kw: seen.update(kw))
    out = no_work / "new" / "report"
    assert cli.main(["benchmark", "--quick", "--folds", "2", "--out", str(out)]) == 0
    assert seen == {"quick": True, "out": str(out), "folds": 2}
    assert os.listdir(no_work) == []  # run_benchmark creates the folder, not the parser


def test_run_benchmark_checks_before_creating_the_folder(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(ValueError, match="folds"):
        cli.run_benchmark(quick=True, out=str(out), folds=1)
    assert not out.exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        cli.run_benchmark(quick=True, out=str(tmp_path / "file"))


# --------------------------------------------------------- benchmark --data (issue #24)
# Bad data is refused before any training: exit status 2 and a message saying what is wrong and
# what to do; no output folder is created.


def _table(folder, name="d.csv", **columns):
    import pandas as pd

    base = {"a": [0.1, 0.5, 0.2, 0.9, 0.3, 0.7, 0.4, 0.8, 0.0, 0.6],
            "b": [1.0, 2.0, 1.5, 2.5, 1.2, 2.2, 1.1, 2.1, 1.3, 2.4],
            "label": ["x", "y"] * 5}
    base.update(columns)
    path = folder / name
    pd.DataFrame(base).to_csv(path, index=False)
    return str(path)


def test_data_refuses_missing_file(no_work, capsys):
    _refused(["benchmark", "--data", "nope.csv", "--out", "rep"], capsys, "'nope.csv' does not exist")
    assert os.listdir(no_work) == []


def test_data_refuses_unknown_column_and_lists_the_columns(no_work, capsys):
    path = _table(no_work)
    _refused(["benchmark", "--data", path, "--target", "species", "--out", "rep"], capsys,
             "Column 'species' is not in", "Its columns are: a, b, label")
    assert sorted(os.listdir(no_work)) == ["d.csv"]


def test_data_refuses_non_numeric_features_with_a_hint(no_work, capsys):
    path = _table(no_work, color=["red", "blue"] * 5)
    _refused(["benchmark", "--data", path, "--target", "label", "--out", "rep"], capsys,
             "Non-numeric feature column(s)", "color", "Encode them as numbers", "get_dummies")


def test_data_refuses_a_single_class(no_work, capsys):
    path = _table(no_work, label=["x"] * 10)
    _refused(["benchmark", "--data", path, "--out", "rep"], capsys, "single class")


def test_data_refuses_too_few_samples_per_class_for_the_folds(no_work, capsys):
    path = _table(no_work, label=["x"] * 7 + ["y"] * 3)
    _refused(["benchmark", "--data", path, "--cv", "5", "--out", "rep"], capsys,
             "Class 'y' has only 3 sample(s), fewer than the 5 cross-validation folds", "--cv")


def test_data_refuses_unknown_model_names_and_lists_the_valid_ones(no_work, capsys):
    path = _table(no_work)
    _refused(["benchmark", "--data", path, "--models", "SurrogateSNN", "Forest", "--out", "rep"], capsys,
             "Unknown model name(s) 'Forest'", "Models for 2D data:", "RandomForest", "SurrogateSNN")


def test_data_refuses_a_model_of_the_wrong_shape(no_work, capsys):
    import numpy as np

    np.savez(no_work / "s.npz", X=np.zeros((10, 4, 3), dtype=np.uint8), y=[0, 1] * 5)
    _refused(["benchmark", "--data", str(no_work / "s.npz"), "--cv", "2", "--models", "ConvertedSNN"], capsys,
             "'ConvertedSNN' does not take 3D data", "SurrogateSNN-spikes")


def test_data_refuses_report_file_that_is_a_folder(no_work, capsys):
    path = _table(no_work)
    (no_work / "rep" / "report.html").mkdir(parents=True)
    _refused(["benchmark", "--data", path, "--out", str(no_work / "rep")], capsys, "report.html", "folder")


@pytest.mark.parametrize("option, value", [("--search", "-1"), ("--search", "x"), ("--time-budget", "0"),
                                           ("--n-jobs", "0"), ("--cv", "1"), ("--n-steps", "0")])
def test_data_refuses_bad_numbers(no_work, capsys, option, value):
    path = _table(no_work)
    _refused(["benchmark", "--data", path, option, value], capsys, option)


@pytest.mark.parametrize("option, value", [("--target", "y"), ("--models", "SVC"), ("--search", "3"),
                                           ("--seed", "1"), ("--time-budget", "5")])
def test_data_options_without_data_are_refused(no_work, capsys, option, value):
    _refused(["benchmark", "--quick", option, value], capsys, f"{option} applies only with --data")
    assert os.listdir(no_work) == []


def test_data_valid_arguments_reach_the_job(no_work, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run_data_benchmark", lambda **kw: seen.update(kw))
    path = _table(no_work)
    argv = ["benchmark", "--data", path, "--models", "SurrogateSNN,LogisticRegression", "RandomForest", "--cv", "3",
            "--search", "4", "--n-jobs", "2", "--time-budget", "30", "--seed", "7", "--out", "rep"]
    assert cli.main(argv) == 0
    assert seen["models"] == ["SurrogateSNN", "LogisticRegression", "RandomForest"]
    assert (seen["cv"], seen["search"], seen["n_jobs"], seen["time_budget"], seen["random_state"]) == (3, 4, 2, 30.0, 7)
    assert seen["X"].shape == (10, 2) and list(seen["y"][:2]) == ["x", "y"] and seen["out"] == "rep"
    assert seen["command"].startswith(f"sklearn-snn benchmark --data {path} ")
    assert sorted(os.listdir(no_work)) == ["d.csv"]  # the job creates the folder, not the checks


# ----------------------------------------------------------------------- tune


@pytest.mark.parametrize("option, value", [
    ("--max-iter", "0"), ("--max-iter", "-1"),
    ("--n-trials", "0"),
    ("--cv", "1"), ("--cv", "0"),
    ("--timeout", "0"), ("--timeout", "-5"), ("--timeout", "nan"), ("--timeout", "inf"),
    ("--n-samples", "0"),
    ("--n-jobs", "0"),
    ("--torch-num-threads", "0"),
    ("--max-iter", "1.5"),
])
def test_tune_refuses_bad_numbers(no_work, capsys, option, value):
    _refused(["tune", "digits", "--storage", "memory", option, value], capsys, option)
    assert os.listdir(no_work) == []


def test_tune_refuses_bad_numbers_in_the_default_storage_setup(no_work, capsys):
    """With the default SQLite storage no database file appears either."""
    _refused(["tune", "digits", "--max-iter", "0"], capsys, "--max-iter")
    assert os.listdir(no_work) == []


def test_tune_refuses_output_in_a_missing_folder(no_work, capsys):
    missing = no_work / "results"
    err = _refused(["tune", "digits", "--output", str(missing / "best.json")], capsys,
                   "--output", str(missing), "does not exist")
    assert "create" in err
    assert os.listdir(no_work) == []


def test_tune_refuses_output_that_is_a_folder(no_work, capsys):
    (no_work / "best.json").mkdir()
    _refused(["tune", "digits", "--output", str(no_work / "best.json")], capsys, "--output", "folder")
    assert os.listdir(no_work) == ["best.json"]


def test_tune_refuses_output_below_a_file(no_work, capsys):
    (no_work / "plain").write_text("")
    _refused(["tune", "digits", "--output", str(no_work / "plain" / "best.json")], capsys,
             "--output", "not a folder")


def test_tune_refuses_output_in_read_only_folder(no_work, capsys, monkeypatch):
    _deny_write(monkeypatch, no_work)
    _refused(["tune", "digits", "--output", "best.json"], capsys, "--output", "not writable")
    assert os.listdir(no_work) == []


def test_tune_refuses_read_only_output_file(no_work, capsys, monkeypatch):
    target = no_work / "old.json"
    target.write_text("{}")
    _deny_write(monkeypatch, target)
    _refused(["tune", "digits", "--output", str(target)], capsys, "--output", "not writable")
    assert target.read_text() == "{}"


def test_tune_stand_alone_entry_point_validates_too(no_work, capsys):
    with pytest.raises(SystemExit) as exc:
        _cli_tune.main(["digits", "--cv", "1"])
    assert exc.value.code == 2
    assert "--cv" in capsys.readouterr().err


def test_tune_valid_arguments_reach_the_search(no_work, monkeypatch):
    seen = {}
    monkeypatch.setattr(_cli_tune, "run_tune", lambda args: seen.update(vars(args)) or 0)
    argv = ["tune", "digits", "--max-iter", "1", "--n-trials", "1", "--cv", "2", "--timeout", "0.5",
            "--n-samples", "1", "--n-jobs", "-1", "--torch-num-threads", "1", "--output", "best.json"]
    assert cli.main(argv) == 0
    assert (seen["max_iter"], seen["n_trials"], seen["cv"], seen["n_jobs"]) == (1, 1, 2, -1)
    assert math.isclose(seen["timeout"], 0.5) and seen["output"] == "best.json"
    assert os.listdir(no_work) == []


def test_run_tune_checks_output_before_the_search(no_work):
    """Called directly with a hand-made namespace, run_tune still checks first."""
    import argparse

    parser = argparse.ArgumentParser()
    _cli_tune.add_tune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tune", "digits", "--storage", "memory"])
    args.output = str(no_work / "missing" / "best.json")
    with pytest.raises(ValueError, match="does not exist"):
        _original_run_tune(args)  # load_dataset is disabled: the check must come first


def test_int_at_least_helper():
    import argparse

    parse = cli.int_at_least(2)
    assert parse("2") == 2 and parse(" 7 ") == 7
    for bad in ("1", "-2", "x", "2.0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
