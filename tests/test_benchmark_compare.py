"""The benchmark on the user's data (issue #24): ``sklearn_snn.benchmark`` from Python.

Tiny data and quick training budgets (``quick=True``: a few epochs), so the file runs in well under
a minute. The command line on top of it is tested in tests/test_cli.py and
tests/test_cli_arguments.py.
"""
import math
import os

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from sklearn.datasets import load_iris  # noqa: E402

from sklearn_snn.benchmark import (  # noqa: E402
    COLUMNS,
    REPORT_FILES,
    DeadlineCallback,
    bin_events,
    check_data,
    compare,
    count_spikes,
    flatten_time,
    load_data,
    select_models,
    summary_line,
    write_report,
)


def _spikes(n=90, n_steps=12, n_channels=8, seed=0):
    """Spike trains whose per-channel firing rates depend on the class: the counts carry the label."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    rates = rng.uniform(0.05, 0.6, size=(3, n_channels))
    X = (rng.random((n, n_steps, n_channels)) < rates[y][:, None, :]).astype(np.uint8)
    return X, y


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


# ------------------------------------------------------------------------------------ compare


def test_compare_2d_rows_intervals_and_spike_columns(iris):
    X, y = iris
    df = compare(X, y, models=["SurrogateSNN", "LogisticRegression", "RandomForest"], cv=3, quick=True)
    assert list(df.columns) == list(COLUMNS)
    assert list(df["model"]) == ["SurrogateSNN", "LogisticRegression", "RandomForest"]
    assert list(df["snn"]) == [True, False, False]
    assert (df["n_folds"] == 3).all() and not df["budget_hit"].any()
    for _, r in df.iterrows():
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert r["fit_time"] > 0 and r["predict_time"] > 0
    logreg = df.set_index("model").loc["LogisticRegression"]
    assert logreg["accuracy"] > 0.9
    assert logreg["macs"] == 4 * 3  # one multiply-accumulate per feature and class
    snn = df.set_index("model").loc["SurrogateSNN"]
    assert snn["synops"] > 0 and snn["energy_nj"] > 0 and snn["ann_energy_nj"] > 0
    assert 0 < snn["firing_rate"] < 1
    forest = df.set_index("model").loc["RandomForest"]
    assert pd.isna(forest["synops"]) and pd.isna(forest["energy_nj"])
    assert df.attrs["summary"].startswith("Best SNN: SurrogateSNN")
    assert "best classical model: LogisticRegression" in df.attrs["summary"] or \
        "best classical model: RandomForest" in df.attrs["summary"]


def test_compare_interval_is_the_student_t_interval(iris, monkeypatch):
    """Exactly mean +- t(0.975, k-1) * s / sqrt(k) over the fold scores, as cross_val_score gives them."""
    from scipy.stats import t
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = iris
    df = compare(X, y, models="LogisticRegression", cv=4, quick=True, random_state=3)
    est = select_models(2, "LogisticRegression")[0].make(True, 3)
    scores = cross_val_score(est, X, y, cv=StratifiedKFold(4, shuffle=True, random_state=3))
    half = t.ppf(0.975, 3) * scores.std(ddof=1) / 2
    r = df.iloc[0]
    assert r["accuracy"] == pytest.approx(scores.mean())
    assert r["ci_low"] == pytest.approx(max(0.0, scores.mean() - half))
    assert r["ci_high"] == pytest.approx(min(1.0, scores.mean() + half))


def test_compare_3d_memmap_spikes(tmp_path):
    X, y = _spikes()
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    lines = []
    df = compare(Xm, y, models=["SurrogateSNN-spikes", "RandomForest-counts", "LogisticRegression-flat"], cv=3,
                 quick=True, progress=lines.append)
    assert list(df["model"]) == ["SurrogateSNN-spikes", "RandomForest-counts", "LogisticRegression-flat"]
    assert df.set_index("model").loc["RandomForest-counts", "accuracy"] > 0.8
    assert df.loc[0, "synops"] > 0
    assert df.loc[2, "macs"] == 12 * 8 * 3  # flattened: one weight per step, channel and class
    # a head line, a line per fold as it finishes, a line per model, the closing line
    assert len(lines) == 1 + 3 * (3 + 1) + 1
    assert lines[1].startswith("    SurrogateSNN-spikes fold 1/3: accuracy ")
    assert lines[4].startswith("[1/3] SurrogateSNN-spikes") and "acc " in lines[4]
    assert lines[-1] == df.attrs["summary"]


def test_compare_parallel_folds_give_the_same_scores(iris):
    X, y = iris
    kw = {"models": "LogisticRegression,RandomForest", "cv": 3, "quick": True}
    serial, parallel = compare(X, y, **kw), compare(X, y, n_jobs=2, **kw)
    assert list(serial["accuracy"]) == list(parallel["accuracy"])


def test_feature_transforms_are_exact():
    X = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(flatten_time(X), X.reshape(2, 12).astype(np.float32))
    assert np.array_equal(count_spikes(X), X.sum(axis=1).astype(np.float32))
    assert count_spikes(X).dtype == np.float32


def test_compare_nested_search_tunes_inside_each_fold(iris):
    X, y = iris
    df = compare(X, y, models=["LogisticRegression", "SurrogateSNN"], cv=2, search=2, quick=True)
    logreg = df.set_index("model").loc["LogisticRegression"]
    assert set(logreg["params"]) == {"logisticregression__C"}
    assert 1e-3 <= logreg["params"]["logisticregression__C"] <= 1e2
    from sklearn_snn import SurrogateSNNClassifier

    snn_params = df.set_index("model").loc["SurrogateSNN", "params"]
    assert snn_params and set(snn_params) <= set(SurrogateSNNClassifier.default_search_space())
    assert df.attrs["search"] == 2


def test_search_of_converted_snn_runs_without_pruning(iris):
    """ConvertedSNN reports epochs while its ANN trains, before any SNN exists: no pruning for it."""
    X, y = iris
    df = compare(X, y, models="ConvertedSNN", cv=2, search=2, quick=True)
    assert df.loc[0, "n_folds"] == 2 and pd.isna(df.loc[0, "notes"]) and df.loc[0, "accuracy"] > 0.6
    assert "activation" in df.loc[0, "params"]


def test_compare_time_budget_skips_folds_and_stops_training(iris):
    X, y = iris
    df = compare(X, y, models=["LogisticRegression"], cv=2, time_budget=1e-9, quick=True)
    r = df.iloc[0]
    assert r["n_folds"] == 0 and bool(r["budget_hit"]) and math.isnan(r["accuracy"])
    assert "time budget" in r["notes"]
    assert df.attrs["summary"] == "No model finished; see the notes column."
    from sklearn_snn import SurrogateSNNClassifier

    clf = SurrogateSNNClassifier(max_iter=20, random_state=0).fit(X, y, epoch_callback=DeadlineCallback(0.0))
    assert clf.n_iter_ == 1  # the budget is checked after every epoch


def test_compare_failing_model_does_not_sink_the_others(iris, monkeypatch):
    from sklearn_snn.benchmark import models as models_mod

    X, y = iris
    real = models_mod.available_models

    def broken():
        specs = real()
        return [s if s.name != "SVC" else models_mod.ModelSpec("SVC", False, s.ndims, _explode) for s in specs]

    monkeypatch.setattr(models_mod, "available_models", broken)
    df = compare(X, y, models=["SVC", "LogisticRegression"], cv=2, quick=True)
    assert df.loc[0, "n_folds"] == 0 and "failed: RuntimeError: boom" in df.loc[0, "notes"]
    assert df.loc[1, "accuracy"] > 0.9


def _explode(quick, random_state):
    raise RuntimeError("boom")


# ------------------------------------------------------------------------------ model choice


def test_select_models_by_shape_and_names():
    two = [m.name for m in select_models(2)]
    assert {"SurrogateSNN", "ConvertedSNN", "EvolvedSNN", "EventProp", "STDP+LogReg"} <= set(two)
    assert {"LogisticRegression", "RandomForest", "MLPClassifier", "HistGradientBoosting"} <= set(two)
    three = [m.name for m in select_models(3)]
    assert "ConvertedSNN" not in three and "SurrogateSNN-spikes" in three
    assert {"RandomForest-counts", "LogisticRegression-flat"} <= set(three)
    assert all(m.snn for m in select_models(3, "snn")) and not any(m.snn for m in select_models(2, "classical"))
    assert [m.name for m in select_models(2, " RandomForest, svc ,randomforest")] == ["RandomForest", "SVC"]
    with pytest.raises(ValueError, match=r"Unknown model name\(s\) 'Nope'.*Models for 2D data: SurrogateSNN"):
        select_models(2, ["Nope"])
    with pytest.raises(ValueError, match="'RandomForest-counts' does not take 2D data"):
        select_models(2, ["RandomForest-counts"])


@pytest.mark.parametrize("name", ["LogisticRegression", "SVC", "MLPClassifier", "RandomForest",
                                  "HistGradientBoosting", "LogisticRegression-counts", "RandomForest-flat",
                                  "HistGradientBoosting-counts"])
def test_classical_spaces_name_real_parameters_and_hold_the_defaults(name):
    spec = next(m for m in select_models(3 if "-" in name else 2, name))
    est = spec.make(False, 0)
    params = est.get_params()
    space = spec.space()
    assert space and set(space) <= set(params)
    for key, dist in space.items():  # the library default lies inside the space: a search cannot hurt
        default = params[key]
        if hasattr(dist, "choices"):
            continue
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert dist.low <= default <= dist.high, (key, default)


# ------------------------------------------------------------------------------------- data


def test_check_data_refusals():
    X = np.zeros((6, 2))
    with pytest.raises(ValueError, match="single class"):
        check_data(X, [1] * 6)
    with pytest.raises(ValueError, match=r"Class 'b' has only 2 sample\(s\), fewer than the 3 cross-validation"):
        check_data(X, ["a"] * 4 + ["b"] * 2, cv=3)
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"missing \(NaN\).*in column\(s\) height"):
        check_data(bad, [0, 1] * 3, cv=2, feature_names=["width", "height"])
    with pytest.raises(ValueError, match="look like a regression target"):
        check_data(X, np.linspace(0, 1, 6), cv=2)
    with pytest.raises(ValueError, match="X has 6 samples but y has 5"):
        check_data(X, [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="too few for a search"):
        check_data(np.zeros((4, 2)), [0, 0, 1, 1], cv=2, search=3)
    with pytest.raises(ValueError, match="Non-numeric feature column"):
        compare(pd.DataFrame({"a": [1.0] * 6, "b": list("xyzxyz")}), [0, 1] * 3, cv=2)


def test_load_tables(tmp_path, iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"]).assign(species=np.array(["a", "b", "c"])[y])
    frame.to_csv(tmp_path / "d.csv", index=False)
    X2, y2, info = load_data(tmp_path / "d.csv")  # the last column is the target by default
    assert np.allclose(X2, X) and list(y2[:1]) == ["a"] and info.feature_names == ["sl", "sw", "pl", "pw"]
    frame.drop(columns="species").assign(kind=y).to_csv(tmp_path / "n.csv", index=False)
    X3, y3, info = load_data(tmp_path / "n.csv", target="sl")  # any column can be the target
    assert np.allclose(X3, np.c_[X[:, 1:], y]) and np.allclose(y3, X[:, 0])
    assert info.feature_names == ["sw", "pl", "pw", "kind"]
    with pytest.raises(ValueError, match="Column 'label' is not in .*Its columns are: sl, sw, pl, pw, species"):
        load_data(tmp_path / "d.csv", target="label")
    with pytest.raises(ValueError, match=r"Non-numeric feature column\(s\) .*species.*Encode them"):
        load_data(tmp_path / "d.csv", target="pw")
    pytest.importorskip("pyarrow")
    frame.to_parquet(tmp_path / "d.parquet")
    X4, y4, _ = load_data(tmp_path / "d.parquet", target="species")
    assert np.allclose(X4, X) and np.array_equal(y4, y2)


def test_load_arrays_npz_npy_folder(tmp_path):
    X, y = _spikes(n=12)
    np.savez(tmp_path / "s.npz", X=X, y=y)
    X1, y1, _ = load_data(tmp_path / "s.npz")
    assert np.array_equal(X1, X) and np.array_equal(y1, y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    X2, y2, _ = load_data(tmp_path / "X.npy", target=str(tmp_path / "y.npy"))
    assert np.array_equal(y2, y)
    assert isinstance(X2, np.memmap) and np.array_equal(X2, X)
    X3, _, info = load_data(tmp_path)  # a folder with X.npy and y.npy
    assert isinstance(X3, np.memmap) and "memory-mapped" in info.description
    with pytest.raises(ValueError, match="pass the labels as a second .npy"):
        load_data(tmp_path / "X.npy")
    np.savez(tmp_path / "other.npz", data=X)
    with pytest.raises(ValueError, match="holds the arrays data; a benchmark needs 'X' and 'y'"):
        load_data(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="does not exist"):
        load_data(tmp_path / "missing.csv")
    (tmp_path / "d.xlsx").write_text("")
    with pytest.raises(ValueError, match="Unknown data format '.xlsx'"):
        load_data(tmp_path / "d.xlsx")


def test_events_are_binned_like_event_binner(tmp_path):
    from sklearn_snn.preprocessing import EventBinner

    rng = np.random.default_rng(1)
    n_events, n = 300, 10
    t, ch, sample = rng.uniform(0, 1, n_events), rng.integers(0, 5, n_events), rng.integers(0, n, n_events)
    X = bin_events(t, ch, sample, n, n_steps=8)
    ev = np.dtype([("t", float), ("channel", np.int64)])
    per_sample = [np.array(list(zip(t[sample == i], ch[sample == i])), dtype=ev) for i in range(n)]
    assert np.array_equal(X, EventBinner(n_steps=8).fit_transform(per_sample))
    assert X.sum() == n_events
    df = compare(per_sample, np.arange(n) % 2, models="LogisticRegression-counts", cv=2, quick=True)
    assert df.attrs["shape"] == (n, 100, 5)  # event lists are binned on 100 steps
    np.savez(tmp_path / "ev.npz", t=t, channel=ch, sample=sample, y=np.arange(n) % 2)
    X2, y2, info = load_data(tmp_path / "ev.npz", n_steps=8)
    assert np.array_equal(X2, X) and len(y2) == n and "EventBinner" in info.description


def test_hdf5_spike_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    from sklearn_snn import datasets

    if not hasattr(datasets, "load_spike_hdf5"):
        pytest.skip("sklearn_snn.datasets.load_spike_hdf5 is not there yet")
    rng = np.random.default_rng(0)
    n = 6
    with h5py.File(tmp_path / "shd.h5", "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            k = int(rng.integers(5, 20))
            times[i] = np.sort(rng.uniform(0, 1, k)).astype(np.float32)
            units[i] = rng.integers(0, 7, k).astype(np.uint16)
        f.create_dataset("labels", data=np.arange(n) % 2)
    X, y, info = load_data(tmp_path / "shd.h5", n_steps=10)
    assert X.ndim == 3 and X.shape[:2] == (n, 10) and len(y) == n
    assert "SHD/SSC" in info.description


def test_hdf5_goes_through_load_spike_hdf5_with_the_agreed_signature(tmp_path, monkeypatch):
    """The plumbing alone, with a stand-in loader (works before and after datasets.load_spike_hdf5 lands)."""
    from sklearn_snn import datasets

    calls = []

    def fake(path, *, return_events=False, n_steps=None, bin_width=None, duration=None, max_samples=None):
        calls.append((str(path), n_steps, bin_width))
        if n_steps == 99:
            raise KeyError("spikes/times")
        return np.zeros((4, n_steps or 5, 3), dtype=np.uint8), np.array([0, 1, 0, 1])

    monkeypatch.setattr(datasets, "load_spike_hdf5", fake, raising=False)
    (tmp_path / "d.h5").write_bytes(b"")
    X, _, _ = load_data(tmp_path / "d.h5", n_steps=7)
    assert X.shape == (4, 7, 3) and calls == [(str(tmp_path / "d.h5"), 7, None)]
    with pytest.raises(ValueError, match="not in the SHD/SSC layout.*spikes/times"):
        load_data(tmp_path / "d.h5", n_steps=99)
    with pytest.raises(ValueError, match="target applies to tables"):
        load_data(tmp_path / "d.h5", target="label")


# ------------------------------------------------------------------------------------ report


def _row(model, snn, acc, lo, hi):
    row = dict.fromkeys(COLUMNS)
    row.update(model=model, snn=snn, accuracy=acc, ci_low=lo, ci_high=hi, std=0.01, n_folds=5, fit_time=1.0,
               predict_time=0.1, params={}, budget_hit=False)
    if snn:
        row.update(synops=1000.0, energy_nj=0.9, ann_energy_nj=4.0, firing_rate=0.1)
    return row


def test_summary_line_names_best_snn_and_classical():
    df = pd.DataFrame([_row("S1", True, 0.80, 0.75, 0.85), _row("S2", True, 0.90, 0.88, 0.92),
                       _row("C1", False, 0.70, 0.65, 0.75)])
    line = summary_line(df)
    assert line.startswith("Best SNN: S2, accuracy 0.900 (95% CI 0.880 – 0.920); best classical model: C1, 0.700")
    assert line.endswith("S2 (SNN) leads by 20.0 points; the intervals do not overlap.")
    assert summary_line(df[df["snn"]]).endswith("no classical model was run.")
    failed = df.copy()
    failed.loc[2, ["accuracy", "n_folds"]] = [float("nan"), 0]
    assert summary_line(failed).endswith("no classical model finished.")


def test_write_report_files_and_closing_line(tmp_path):
    df = pd.DataFrame([_row("S1", True, 0.80, 0.75, 0.85), _row("C1", False, 0.82, 0.78, 0.86)])
    df.attrs["summary"] = summary_line(df)
    paths = write_report(df, str(tmp_path / "out"), meta={"command": "sklearn-snn benchmark --data x.csv"},
                         log=lambda m: None)
    for name in REPORT_FILES:
        assert os.path.exists(tmp_path / "out" / name), name
    assert set(paths) == set(REPORT_FILES)
    md = (tmp_path / "out" / "report.md").read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    closing = "C1 (classical) leads by 2.0 points; the intervals overlap"
    assert closing in md.splitlines()[-1] and closing in html
    assert "| S1 | SNN | 0.800 | 0.750 – 0.850 |" in md and "sklearn-snn benchmark --data x.csv" in md
    assert html.count("data:image/png;base64,") == 3  # plots embedded: one file to share
    assert "<img" in html and 'src="accuracy' not in html
    back = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(back["model"]) == ["S1", "C1"]
