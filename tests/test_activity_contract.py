"""One activity contract: every estimator's ``simulate(X)`` returns the same structure, and the
metrics and displays read nothing else.

The contract (see :func:`sklearn_snn.metrics.record_activity`): a dict with ``spikes`` (list per
spiking layer of 0/1 arrays (n_samples, n_steps, n_units)), ``membrane`` (list per layer with a
membrane, same layout), ``output`` (n_samples, n_outputs), ``layers`` (names, ``spikes[i]`` and
``membrane[i]`` belong to ``layers[i]``), ``n_steps`` (the time axis, axis 1), and the operation
counts ``synops``, ``macs`` (n_samples, n_layers), ``ann_macs`` (n_layers,), ``input_spikes``
(n_samples,).
"""

import pathlib
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import sklearn_snn  # noqa: E402
from sklearn_snn.metrics import final_estimator, record_activity, spike_stats  # noqa: E402
from sklearn_snn.plotting import FiringRateDisplay, MembraneTraceDisplay, SpikeRasterDisplay  # noqa: E402
from sklearn_snn.utils import all_estimators, fast_instance  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = all_estimators()
IDS = [name for name, _ in ESTIMATORS]
N_SIM = 7
T_3D = 6
REQUIRED = {"spikes", "membrane", "output", "layers", "n_steps", "synops", "macs", "ann_macs", "input_spikes"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _iris():
    X, y = load_iris(return_X_y=True)
    idx = np.r_[0:12, 50:62, 100:112]
    X = MinMaxScaler().fit_transform(X[idx])
    return X, y[idx]


def _spike_trains(X):
    rng = np.random.RandomState(0)
    return (rng.rand(X.shape[0], T_3D, X.shape[1]) < X[:, None, :]).astype(np.float64)


def _fit(cls, X, y):
    est = fast_instance(cls)
    target = y.astype(float) if issubclass(cls, RegressorMixin) else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, target)


def _accepts_3d(cls):
    return fast_instance(cls).__sklearn_tags__().input_tags.three_d_array


def _inputs(cls):
    X, y = _iris()
    out = [("2d", X, y, fast_instance(cls).get_params()["n_steps"])]
    if _accepts_3d(cls):
        # 3D input keeps its own time axis; EventProp simulates past its end up to its n_steps grid
        t = max(T_3D, out[0][3]) if cls.__name__ == "EventPropClassifier" else T_3D
        out.append(("3d", _spike_trains(X), y, t))
    return out


def _check_structure(sim, n, n_steps):
    assert isinstance(sim, dict)
    assert REQUIRED <= set(sim), f"missing keys {REQUIRED - set(sim)}"
    layers = sim["layers"]
    assert isinstance(layers, list) and all(isinstance(name, str) for name in layers)
    assert len(set(layers)) == len(layers)
    assert isinstance(sim["n_steps"], int) and sim["n_steps"] == n_steps
    spikes, membrane = sim["spikes"], sim["membrane"]
    assert isinstance(spikes, list) and isinstance(membrane, list)
    assert 1 <= len(spikes) <= len(layers) and 1 <= len(membrane) <= len(layers)
    for i, s in enumerate(spikes):
        assert isinstance(s, np.ndarray) and s.ndim == 3, (i, getattr(s, "shape", None))
        assert s.shape[:2] == (n, n_steps)
        assert np.isin(s, (0.0, 1.0)).all(), f"spikes of layer {layers[i]} are not binary"
    for i, v in enumerate(membrane):
        assert isinstance(v, np.ndarray) and v.shape[:2] == (n, n_steps)
        assert np.isfinite(v).all()
        if i < len(spikes):  # a layer's membrane and spikes have the same units
            assert v.shape == spikes[i].shape
    out = sim["output"]
    assert isinstance(out, np.ndarray) and out.ndim == 2 and out.shape[0] == n
    n_layers = len(layers)
    assert sim["synops"].shape == (n, n_layers) and sim["macs"].shape == (n, n_layers)
    assert sim["ann_macs"].shape == (n_layers,) and (sim["ann_macs"] > 0).all()
    assert (sim["synops"] >= 0).all() and (sim["macs"] >= 0).all()
    assert sim["input_spikes"].shape == (n,)


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_simulate_structure(name, cls):
    for kind, X, y, n_steps in _inputs(cls):
        est = _fit(cls, X, y)
        sim = est.simulate(X[:N_SIM])
        _check_structure(sim, N_SIM, n_steps)
        assert sim["spikes"][0].sum() > 0 or kind == "3d", f"{name}: a silent first layer tests nothing"


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_output_matches_public_predictions(name, cls):
    X, y = _iris()
    est = _fit(cls, X, y)
    out = est.simulate(X[:N_SIM])["output"]
    if issubclass(cls, TransformerMixin) and not issubclass(cls, ClassifierMixin):
        np.testing.assert_allclose(out, est.transform(X[:N_SIM]), rtol=1e-5)
    elif hasattr(est, "decision_function"):
        # the readout orders the classes as decision_function does (EventProp's ttfs output holds
        # first spike times: the earliest wins)
        sign = -1.0 if getattr(est, "loss_", None) == "ttfs" else 1.0
        decision = est.decision_function(X[:N_SIM])
        if decision.ndim == 2:
            np.testing.assert_array_equal(np.argmax(sign * out, 1), np.argmax(decision, 1))
        if cls.__name__ != "EventPropClassifier":
            np.testing.assert_allclose(out, est.decision_function(X[:N_SIM]), rtol=1e-4, atol=1e-5)
    elif issubclass(cls, RegressorMixin):
        # the readout is the prediction in the scaled target space: an exact affine relation
        pred = np.ravel(est.predict(X[:N_SIM]))
        A = np.c_[out.ravel(), np.ones(N_SIM)]
        coef, *_ = np.linalg.lstsq(A, pred, rcond=None)
        np.testing.assert_allclose(A @ coef, pred, atol=1e-6)
        assert abs(coef[0]) > 0
    else:
        pytest.fail(f"no public method to check the output of {name} against")


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_simulate_is_batched(name, cls):
    X, y = _iris()
    est = _fit(cls, X, y)
    full = est.simulate(X)
    # simulate runs in batches of inference_batch_size (512 by default): 4 gives 9 batches here
    est.inference_batch_size = 4
    small = est.simulate(X)
    for key in ("spikes", "membrane"):
        for a, b in zip(full[key], small[key]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full["synops"], small["synops"])
    np.testing.assert_allclose(full["ann_macs"], small["ann_macs"])


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_spike_stats_reads_the_contract(name, cls):
    for kind, X, y, n_steps in _inputs(cls):
        est = _fit(cls, X, y)
        sim = est.simulate(X[:N_SIM])
        stats = spike_stats(est, X[:N_SIM])
        assert stats.layers == sim["layers"], kind
        assert stats.n_steps == n_steps
        for i, s in enumerate(sim["spikes"]):
            assert stats.spike_counts[i] == pytest.approx(s.sum((1, 2)).mean())
            assert stats.firing_rates[i] == pytest.approx(s.mean())
        np.testing.assert_allclose(stats.synops, sim["synops"].mean(0))
        np.testing.assert_allclose(stats.snn_macs, sim["macs"].mean(0))
        ann_steps = n_steps if kind == "3d" else 1
        np.testing.assert_allclose(stats.ann_macs, sim["ann_macs"] * ann_steps)
        assert stats.notes == []
        # the hidden spikes feed the next layer: synops of layer 1 are the spikes times the fan-out
        assert stats.total_synops + np.nansum(stats.snn_macs) > 0


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_displays_read_the_contract(name, cls):
    for kind, X, y, _ in _inputs(cls):
        est = _fit(cls, X, y)
        sim = est.simulate(X[2:3])
        raster = SpikeRasterDisplay.from_estimator(est, X, sample=2)
        assert raster.layer_names == sim["layers"][: len(sim["spikes"])], kind
        for scatter, s in zip(raster.scatters_, sim["spikes"]):
            assert len(scatter.get_offsets()) == int(s[0].sum())
        trace = MembraneTraceDisplay.from_estimator(est, X, sample=2, layer=0, neurons=[0, 1])
        for k, line in enumerate(trace.lines_):
            np.testing.assert_allclose(line.get_ydata(), sim["membrane"][0][0, :, k], rtol=1e-6)
            assert len(line.get_xdata()) == sim["n_steps"]
        rates = FiringRateDisplay.from_estimator(est, X[:N_SIM])
        assert [int(c.sum()) for c in rates.counts_] == [s.shape[2] for s in est.simulate(X[:N_SIM])["spikes"]]


@pytest.mark.parametrize(("name", "cls"), ESTIMATORS, ids=IDS)
def test_pipeline_is_simulated_through_its_steps(name, cls):
    X, y = _iris()
    X = X * 10.0
    est = fast_instance(cls)
    steps = [MinMaxScaler(), est] + ([LogisticRegression()] if issubclass(cls, TransformerMixin) else [])
    target = y.astype(float) if issubclass(cls, RegressorMixin) else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(*steps).fit(X, target)
    last, Xt = final_estimator(pipe, X[:N_SIM])
    assert last is pipe[1]
    via = record_activity(pipe, X[:N_SIM])
    direct = pipe[1].simulate(pipe[0].transform(X[:N_SIM]))
    for a, b in zip(via["spikes"], direct["spikes"]):
        np.testing.assert_array_equal(a, b)
    assert spike_stats(pipe, X[:N_SIM]).total_spikes == pytest.approx(spike_stats(pipe[1], Xt).total_spikes)


def test_converted_refuses_3d_input():
    cls = dict(ESTIMATORS).get("ConvertedSNN")
    if cls is None:
        pytest.skip("no ConvertedSNN")
    X, y = _iris()
    est = _fit(cls, X, y)
    with pytest.raises(ValueError):
        est.simulate(_spike_trains(X))


def test_third_party_simulate_with_spikes_only():
    class Minimal(BaseEstimator):
        def fit(self, X, y=None):
            self.fitted_ = True
            return self

        def simulate(self, X):
            n = np.asarray(X).shape[0]
            s = np.zeros((n, 5, 3))
            s[:, ::2, 0] = 1.0
            return {"spikes": [s], "output": s.sum(1)}

    X = np.ones((4, 2))
    est = Minimal().fit(X)
    act = record_activity(est, X)
    assert act["layers"] == ["layer_0"] and act["n_steps"] == 5
    stats = spike_stats(est, X)
    assert stats.spike_counts[0] == pytest.approx(3.0) and stats.notes
    raster = SpikeRasterDisplay.from_estimator(est, X)
    assert len(raster.scatters_[0].get_offsets()) == 3


def test_no_simulate_is_refused():
    X, y = _iris()
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(TypeError, match="simulate"):
        record_activity(clf, X)
    with pytest.raises(TypeError, match="simulate"):
        SpikeRasterDisplay.from_estimator(clf, X)


def test_metrics_and_plotting_use_only_the_public_contract():
    root = pathlib.Path(sklearn_snn.__file__).parent
    sources = {"metrics.py": (root / "metrics.py").read_text()}
    for path in sorted((root / "plotting").glob("*.py")):
        sources[f"plotting/{path.name}"] = path.read_text()
    private_call = re.compile(r"\b(?:est|estimator|self\.estimator)\._(?!_)\w+")
    for name, text in sources.items():
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith((">>>", "...")))
        assert not private_call.search(code), f"{name} calls a private estimator method"
        for word in ("_encode", "_scale(", "_batched", "_validated", "SpikingNetwork", "WTALayer", "isinstance(module"):
            assert word not in code, f"{name} uses {word}"
        if name.startswith("plotting"):
            assert not re.search(r"from \.\.metrics import [^\n]*\b_\w", code), f"{name} imports a private name of metrics"
    for path in (root / "plotting").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 800, path.name
