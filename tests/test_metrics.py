"""Tests for sklearn_snn.metrics: spike counts, rates, SynOps and energy against hand counts."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_snn import ConvertedSNN, SurrogateSNNClassifier
from sklearn_snn.metrics import ENERGY_PER_OP, ann_macs, spike_stats

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

T, F, H, C = 6, 3, 4, 2


def _crafted():
    """A 3 -> 4 -> 2 network whose hidden spikes copy the input spikes (weights set by hand).

    Hidden weights: input 0 -> neuron 0, input 1 -> neuron 1, input 2 -> neurons 2 and 3, all
    1.0 with threshold 1 and reset by subtraction, no bias: an input spike takes the membrane to
    exactly 1 (spike, back to 0), no spike leaves it at 0. Output weights 0.1 except one 0.
    """
    rng = np.random.RandomState(0)
    X = (rng.rand(12, T, F) < 0.4).astype(np.float32)
    y = np.arange(12) % C
    clf = SurrogateSNNClassifier((H,), neuron="lif", max_iter=1, device="cpu", random_state=0).fit(X, y)
    with torch.no_grad():
        W = torch.zeros(H, F)
        W[0, 0] = W[1, 1] = W[2, 2] = W[3, 2] = 1.0
        clf.module_.hidden[0].weight.copy_(W)
        clf.module_.hidden[0].bias.zero_()
        Wo = torch.full((C, H), 0.1)
        Wo[0, 0] = 0.0
        clf.module_.out.weight.copy_(Wo)
    return clf, X


def test_hand_counted_spikes_synops_and_energy():
    clf, X = _crafted()
    stats = spike_stats(clf, X)
    in_counts = X.sum(1)  # (n, F) input spikes per channel
    hidden = np.stack([in_counts[:, 0], in_counts[:, 1], in_counts[:, 2], in_counts[:, 2]], 1)
    # the hidden layer really copies the input (checked on the simulation itself)
    np.testing.assert_array_equal(clf.simulate(X)["spikes"][0].sum(1), hidden)
    assert stats.layers == ["hidden_0", "output"]
    np.testing.assert_array_equal(stats.n_neurons, [H, C])
    assert stats.n_samples == 12 and stats.n_steps == T
    assert stats.input_spikes == pytest.approx(X.sum((1, 2)).mean())
    assert stats.spike_counts[0] == pytest.approx(hidden.sum(1).mean())
    assert np.isnan(stats.spike_counts[1]) and np.isnan(stats.firing_rates[1])  # leaky readout
    assert stats.firing_rates[0] == pytest.approx(hidden.sum(1).mean() / (H * T))
    np.testing.assert_allclose(stats.neuron_firing_rates[0], hidden.mean(0) / T)
    # SynOps = spikes x fan-out: input 2 reaches two neurons, hidden 0 one output (one weight is 0)
    syn_hidden = (in_counts[:, 0] + in_counts[:, 1] + 2 * in_counts[:, 2]).mean()
    syn_out = (hidden[:, 0] * (C - 1) + hidden[:, 1:].sum(1) * C).mean()
    np.testing.assert_allclose(stats.synops, [syn_hidden, syn_out])
    np.testing.assert_array_equal(stats.snn_macs, [0.0, 0.0])  # all input is spikes
    # the equivalent ANN evaluates every non-zero weight once per step of 3D input
    np.testing.assert_allclose(stats.ann_macs, [4 * T, (H * C - 1) * T])
    assert stats.snn_energy == pytest.approx((syn_hidden + syn_out) * 0.9e-12)
    assert stats.ann_energy == pytest.approx((4 + H * C - 1) * T * 4.6e-12)
    assert stats.energy_ratio == pytest.approx(stats.ann_energy / stats.snn_energy)


def test_table_rows_and_totals():
    clf, X = _crafted()
    stats = spike_stats(clf, X)
    table = stats.as_table()
    assert table["layer"] == ["hidden_0", "output", "total"]
    assert table["synops"][-1] == pytest.approx(sum(table["synops"][:-1]))
    assert table["ann_energy"][-1] == pytest.approx(stats.ann_energy)
    assert table["n_neurons"] == [H, C, H + C]
    assert list(stats.as_table(total=False)["layer"]) == ["hidden_0", "output"]
    frame = stats.to_frame()
    assert frame.loc["total", "spikes"] == pytest.approx(stats.total_spikes)


def test_custom_costs_and_ann_steps():
    clf, X = _crafted()
    base = spike_stats(clf, X)
    stats = spike_stats(clf, X, energy_per_op={"mac": 2.0, "ac": 1.0}, ann_steps=1)
    assert stats.snn_energy == pytest.approx(base.total_synops)
    np.testing.assert_allclose(stats.ann_macs, base.ann_macs / T)
    assert stats.ann_energy == pytest.approx(2.0 * stats.total_ann_macs)
    with pytest.raises(ValueError, match="'mac' and 'ac'"):
        spike_stats(clf, X, energy_per_op={"mac": 1.0})
    with pytest.raises(ValueError, match="ann_steps"):
        spike_stats(clf, X, ann_steps=0)
    assert ENERGY_PER_OP == {"mac": 4.6e-12, "ac": 0.9e-12}


def test_analog_input_counts_macs_once():
    X, y = load_iris(return_X_y=True)
    X = X.copy()
    X[:, 1] = 0.0  # one silent feature: it costs nothing
    clf = SurrogateSNNClassifier((5,), n_steps=8, input_scaling=None, max_iter=1, device="cpu",
                                 random_state=0).fit(X, y)
    stats = spike_stats(clf, X[:30])
    nz = (X[:30] != 0).sum(1).mean()
    # a constant current is projected once per sample, each non-zero value to all 5 neurons
    assert stats.snn_macs[0] == pytest.approx(nz * 5)
    assert stats.synops[0] == 0.0 and np.isnan(stats.input_spikes)
    np.testing.assert_allclose(stats.ann_macs, [4 * 5, 5 * 3])
    spikes = clf.simulate(X[:30])["spikes"][0]
    assert stats.synops[1] == pytest.approx(spikes.sum((1, 2)).mean() * 3)


def test_rate_encoder_and_recurrent_and_spiking_readout():
    X, y = load_digits(return_X_y=True)
    clf = SurrogateSNNClassifier((12,), n_steps=5, encoder="rate", recurrent=True, readout="spike_count",
                                 max_iter=1, device="cpu", random_state=0).fit(X[:100], y[:100])
    stats = spike_stats(clf, X[:40])
    sim = clf.simulate(X[:40])
    h, o = sim["spikes"][0].sum(1), sim["spikes"][1].sum(1)
    assert stats.spike_counts[1] == pytest.approx(o.sum(1).mean())  # spiking output layer
    fan_rec = (clf.module_.hidden[0].w_rec != 0).sum(0).numpy()
    fan_out = (clf.module_.out.weight != 0).sum(0).numpy()
    assert stats.synops[0] > 0 and stats.snn_macs[0] == 0  # rate-coded input: spikes, no MACs
    hidden_in = stats.synops[0] - (h @ fan_rec).mean()
    assert hidden_in == pytest.approx(stats.input_spikes * 12)  # dense input weights
    assert stats.synops[1] == pytest.approx((h @ fan_out).mean())


def test_pipeline_and_search_are_unwrapped():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(MinMaxScaler(), SurrogateSNNClassifier((6,), max_iter=1, input_scaling=None,
                                                                device="cpu", random_state=0)).fit(X, y)
    direct = spike_stats(pipe[-1], pipe[0].transform(X[:20]))
    via = spike_stats(pipe, X[:20])
    np.testing.assert_allclose(via.synops, direct.synops)

    class Search:
        best_estimator_ = pipe

    assert spike_stats(Search(), X[:20]).total_spikes == pytest.approx(direct.total_spikes)


def test_converted_snn_counts():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    clf = ConvertedSNN(hidden_layer_sizes=(16,), max_iter=10, n_steps=8, random_state=0, device="cpu")
    clf.fit(X[:300], y[:300])
    stats = spike_stats(clf, X[:50])
    assert stats.layers == ["1:ReLU", "output"]
    rate = clf.firing_rates(X[:50])["1:ReLU"]
    assert stats.firing_rates[0] == pytest.approx(rate)
    assert stats.spike_counts[0] == pytest.approx(rate * 16 * 8)
    nnz_in = float((clf.module_.layers[0].module.weight != 0).sum())
    nnz_out = float((clf.module_.layers[2].module.weight != 0).sum())
    np.testing.assert_allclose(stats.ann_macs, [nnz_in, nnz_out])
    fan = (clf.module_.layers[2].module.weight != 0).sum(0).double().numpy()
    counts = clf.simulate(X[:50])["spikes"][0].sum(1)
    assert stats.synops[1] == pytest.approx((counts @ fan).mean())
    assert stats.synops[0] == 0 and stats.snn_macs[0] > 0  # analog input to the first layer


def test_eventprop_counts_if_available():
    ep = pytest.importorskip("sklearn_snn.eventprop")
    X, y = load_iris(return_X_y=True)
    clf = ep.EventPropClassifier(hidden_layer_sizes=(5,), n_steps=20, max_iter=1, device="cpu",
                                 input_encoding="single", random_state=0).fit(X, y)
    stats = spike_stats(clf, X[:20])
    sim = clf.simulate(X[:20])
    assert stats.spike_counts[0] == pytest.approx(sim["n_spikes"][:, 0].mean())
    assert stats.input_spikes == pytest.approx(F + 2)  # 4 features + the bias spike, all in the window
    fan = (clf.module_.weights[0] != 0).sum(0).double().numpy()
    assert stats.synops[0] == pytest.approx(fan.sum())


def test_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(TypeError, match="simulate"):
        spike_stats(LogisticRegression().fit(X, y), X)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        spike_stats(SurrogateSNNClassifier(), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((7,), max_iter=5, random_state=0).fit(X, y)
    assert ann_macs(mlp) == 4 * 7 + 7 * 3
    with pytest.raises(TypeError, match="coefs_"):
        ann_macs(LogisticRegression().fit(X, y))


def test_stdp_and_evolved_if_available():
    stdp = pytest.importorskip("sklearn_snn.stdp")
    X, y = load_digits(return_X_y=True)
    est = stdp.STDPTransformer(n_components=6, n_steps=10, max_iter=1, random_state=0).fit(X[:60])
    stats = spike_stats(est, X[:30])
    assert stats.layers == ["wta"]
    assert stats.spike_counts[0] == pytest.approx(est.transform(X[:30]).sum(1).mean())
    assert stats.total_ann_macs == pytest.approx(float((est.module_.weight != 0).sum()))
    evo = pytest.importorskip("sklearn_snn.evolution")
    Xi, yi = load_iris(return_X_y=True)
    ev = evo.EvolvedSNN((5,), population_size=8, max_iter=2, random_state=0).fit(Xi, yi)
    s = spike_stats(ev, Xi[:20])
    assert s.spike_counts[0] == pytest.approx(ev.simulate(Xi[:20])["spikes"][0].sum((1, 2)).mean())


def test_pipeline_measures_the_spiking_step_before_a_classical_head():
    stdp = pytest.importorskip("sklearn_snn.stdp")
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(MinMaxScaler(), stdp.STDPTransformer(n_components=5, n_steps=8, max_iter=1, random_state=0),
                         LogisticRegression(max_iter=200)).fit(X[:80], y[:80])
    stats = spike_stats(pipe, X[:20])
    assert stats.layers == ["wta"]
    assert stats.spike_counts[0] == pytest.approx(pipe[1].transform(pipe[0].transform(X[:20])).sum(1).mean())
