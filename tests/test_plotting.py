"""Tests for sklearn_snn.plotting: every Display draws on Agg with the expected artists."""

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits, load_iris  # noqa: E402

from sklearn_snn import ConvertedSNN, SurrogateSNNClassifier  # noqa: E402
from sklearn_snn._core.surrogate import get_surrogate  # noqa: E402
from sklearn_snn.plotting import (  # noqa: E402
    FiringRateDisplay,
    FitnessCurveDisplay,
    LossCurveDisplay,
    MembraneTraceDisplay,
    ReceptiveFieldDisplay,
    SpikeRasterDisplay,
    StepsCurveDisplay,
    SurrogateDisplay,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits_clf():
    X, y = load_digits(return_X_y=True)
    clf = SurrogateSNNClassifier((16, 8), n_steps=12, max_iter=3, early_stopping=True, validation_fraction=0.2,
                                 device="cpu", random_state=0).fit(X[:300], y[:300])
    return clf, X[300:340]


def test_spike_raster_points_equal_spikes(digits_clf):
    clf, X = digits_clf
    disp = SpikeRasterDisplay.from_estimator(clf, X, sample=5)
    sim = clf.simulate(X[5:6])["spikes"]
    assert disp.layer_names == ["hidden_0", "hidden_1"]
    assert len(disp.scatters_) == len(disp.axes_) == 2
    for sc, s in zip(disp.scatters_, sim):
        assert len(sc.get_offsets()) == int(s.sum()) > 0
        t, n = np.nonzero(s[0])
        np.testing.assert_array_equal(np.asarray(sc.get_offsets()), np.c_[t, n])
    one = SpikeRasterDisplay.from_estimator(clf, X, sample=5, layers="hidden_1")
    assert len(one.scatters_) == 1 and len(one.scatters_[0].get_offsets()) == int(sim[1].sum())
    with pytest.raises(ValueError, match="Unknown layer"):
        SpikeRasterDisplay.from_estimator(clf, X, layers="nope")
    fig, axes = plt.subplots(2, 1)
    d = SpikeRasterDisplay.from_estimator(clf, X, ax=axes)
    assert d.ax_ is axes[0] and d.figure_ is fig
    with pytest.raises(ValueError, match="2 panel"):
        SpikeRasterDisplay.from_estimator(clf, X, ax=axes[0])


def test_raster_from_converted_and_from_spikes():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    clf = ConvertedSNN(hidden_layer_sizes=(16,), max_iter=10, n_steps=10, random_state=0).fit(X[:300], y[:300])
    disp = SpikeRasterDisplay.from_estimator(clf, X[:3], sample=1)
    rate = clf.firing_rates(X[1:2])["1:ReLU"]
    assert len(disp.scatters_[0].get_offsets()) == round(rate * 16 * 10)
    from sklearn_snn.datasets import make_randman

    Xr, _ = make_randman(n_samples=3, n_units=7, n_steps=15, random_state=0)
    d = SpikeRasterDisplay.from_spikes(Xr[0], layer_names=["input"])
    assert len(d.scatters_[0].get_offsets()) == 7


def test_membrane_traces_match_simulation(digits_clf):
    clf, X = digits_clf
    disp = MembraneTraceDisplay.from_estimator(clf, X, sample=2, layer=0, neurons=[1, 4])
    sim = clf.simulate(X[2:3])
    v, s = sim["membrane"][0][0], sim["spikes"][0][0]
    assert len(disp.lines_) == 2 and disp.threshold_line_ is not None
    for line, n in zip(disp.lines_, [1, 4]):
        np.testing.assert_allclose(line.get_ydata(), v[:, n])
    assert sum(len(m.get_xdata()) for m in disp.spike_markers_) == int(s[:, [1, 4]].sum())
    readout = MembraneTraceDisplay.from_estimator(clf, X, layer=-1, neurons=[0])
    assert readout.threshold_line_ is None and readout.spike_markers_ == []
    assert readout.layer_name == "output"
    auto = MembraneTraceDisplay.from_estimator(clf, X)
    assert 1 <= len(auto.lines_) <= 5
    with pytest.raises(ValueError, match="neurons"):
        MembraneTraceDisplay.from_estimator(clf, X, neurons=[99])


def test_firing_rate_histogram_counts_neurons(digits_clf):
    clf, X = digits_clf
    disp = FiringRateDisplay.from_estimator(clf, X, bins=10)
    assert [int(c.sum()) for c in disp.counts_] == [16, 8]
    assert len(disp.patches_) == 2 and len(disp.bins_) == 11
    from sklearn_snn.metrics import spike_stats

    rates = spike_stats(clf, X).neuron_firing_rates
    np.testing.assert_allclose(disp.rates[0], rates[0])


def test_steps_curve_from_converted():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    clf = ConvertedSNN(hidden_layer_sizes=(16,), max_iter=10, n_steps=10, random_state=0).fit(X[:300], y[:300])
    disp = StepsCurveDisplay.from_estimator(clf, X[300:400], y[300:400], steps=[1, 4, 16])
    curve = clf.score_curve(X[300:400], y[300:400], steps=[1, 4, 16])
    np.testing.assert_allclose(disp.line_.get_ydata(), curve.accuracy)
    assert float(disp.ann_line_.get_ydata()[0]) == pytest.approx(curve.ann_accuracy)
    with pytest.raises(TypeError, match="score_curve"):
        StepsCurveDisplay.from_estimator(SurrogateSNNClassifier(), X, y)


def test_receptive_fields():
    W = np.arange(5 * 64, dtype=float).reshape(5, 64)

    class Fitted:
        learned_weights_ = torch.tensor(W)

    disp = ReceptiveFieldDisplay.from_estimator(Fitted())
    assert len(disp.images_) == 5 and disp.axes_.size == 6  # 2 x 3 grid, one cell off
    assert not disp.axes_.flat[5].axison
    np.testing.assert_array_equal(disp.images_[2].get_array(), W[2].reshape(8, 8))
    assert len(ReceptiveFieldDisplay(W, (4, 16)).plot(max_fields=2).images_) == 2
    with pytest.raises(ValueError, match="image_shape"):
        ReceptiveFieldDisplay(W, (3, 3))
    with pytest.raises(TypeError, match="learned_weights_"):
        ReceptiveFieldDisplay.from_estimator(SurrogateSNNClassifier())


def test_receptive_fields_from_stdp_if_available():
    stdp = pytest.importorskip("sklearn_snn.stdp")
    X, _ = load_digits(return_X_y=True)
    est = stdp.STDPTransformer(n_components=4, n_steps=10, max_iter=1, random_state=0).fit(X[:50])
    disp = ReceptiveFieldDisplay.from_estimator(est, image_shape=(8, 8))
    assert len(disp.images_) == 4
    np.testing.assert_allclose(disp.images_[3].get_array(), est.learned_weights_[3].reshape(8, 8))
    tiled = ReceptiveFieldDisplay.from_estimator(est, image_shape=(8, 8), tiled=True)
    assert len(tiled.images_) == 1 and tiled.images_[0].get_array().shape == (17, 17)


def test_fitness_and_loss_curves(digits_clf):
    class Fitted:
        fitness_curve_ = np.array([[0.1, 0.05], [0.3, 0.2], [0.5, 0.3]])

    disp = FitnessCurveDisplay.from_estimator(Fitted())
    assert len(disp.lines_) == 2
    np.testing.assert_array_equal(disp.lines_[0].get_xdata(), [1, 2, 3])
    with pytest.raises(TypeError, match="fitness_curve_"):
        FitnessCurveDisplay.from_estimator(SurrogateSNNClassifier())
    clf, _ = digits_clf
    loss = LossCurveDisplay.from_estimator(clf)
    np.testing.assert_allclose(loss.loss_line_.get_ydata(), clf.loss_curve_)
    np.testing.assert_allclose(loss.validation_line_.get_ydata(), clf.validation_scores_)
    assert loss.ax_validation_ is not None and len(loss.lines_) == 2
    no_val = LossCurveDisplay([1.0, 0.5]).plot()
    assert no_val.validation_line_ is None


def test_surrogate_display_values():
    disp = SurrogateDisplay.from_names(["fast_sigmoid", "gaussian"], slope=3.0, n_points=11, show_step=True)
    x = torch.tensor(disp.x)
    for name, line in disp.lines_.items():
        np.testing.assert_allclose(line.get_ydata(), get_surrogate(name)(x, 3.0).numpy())
    assert disp.step_line_ is not None
    est = SurrogateDisplay.from_estimator(SurrogateSNNClassifier(surrogate="triangle", surrogate_slope=2.0))
    assert list(est.lines_) == ["triangle"] and est.slope == 2.0
    straight = SurrogateDisplay.from_names(["straight_through"], n_points=5)
    np.testing.assert_array_equal(straight.lines_["straight_through"].get_ydata(), np.ones(5))


def test_missing_matplotlib_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="requires matplotlib"):
        LossCurveDisplay([1.0]).plot()


def test_fitness_curve_from_evolved_if_available():
    evo = pytest.importorskip("sklearn_snn.evolution")
    X, y = load_iris(return_X_y=True)
    est = evo.EvolvedSNN((6,), population_size=8, max_iter=3, random_state=0).fit(X, y)
    disp = FitnessCurveDisplay.from_estimator(est)
    np.testing.assert_allclose(disp.lines_[0].get_ydata(), est.fitness_curve_)
