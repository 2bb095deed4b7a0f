"""NIR export / import (sklearn_snn.nir): round trips through a file, against an independent
forward-Euler simulation of the NIR equations, and through snnTorch and Norse when installed."""

import json
import warnings

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from sklearn.exceptions import NotFittedError

from sklearn_snn import (
    ConvertedSNN,
    EvolvedSNN,
    SurrogateSNNClassifier,
    SurrogateSNNRegressor,
    load,
    save,
)
from sklearn_snn.nir import from_nir, graph_input, to_nir

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=48, f=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.8)
    return X, y


def _fit(**kw):
    X, y = _data()
    params = dict(hidden_layer_sizes=(7, 6), max_iter=2, random_state=0, reset="zero")
    params.update(kw)
    return SurrogateSNNClassifier(**params).fit(X, y), X, y


# --------------------------------------------------------------- an independent NIR simulator
def _chain(graph):
    """Nodes from Input to Output; recurrent weight nodes (a loop on a neuron) listed apart."""
    succ = {k: [b for a, b in graph.edges if a == k] for k in graph.nodes}
    rec = {k for k in graph.nodes if len(succ[k]) == 1 and k in succ[succ[k][0]]
           and type(graph.nodes[k]).__name__ in ("Linear", "Affine")}
    cur = next(k for k, n in graph.nodes.items() if isinstance(n, nir.Input))
    order = []
    while not isinstance(graph.nodes[cur], nir.Output):
        cur = next(o for o in succ[cur] if o not in rec)
        order.append(cur)
    return order[:-1], {succ[r][0]: r for r in rec}


def euler(graph, x, dt):
    """Simulate the graph's ODEs with forward-Euler steps of ``dt`` on ``x`` (B, T, *input_shape).

    Written from NIR's documented equations (not from the package): returns, per neuron node,
    its output over time (spikes, or the LI membrane) as (B, T, n)."""
    order, rec_of = _chain(graph)
    B, T = x.shape[:2]
    state, rec_prev, out = {}, {}, {k: [] for k in order}
    x = torch.as_tensor(x, dtype=torch.float64)
    t64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))
    for t in range(T):
        h = x[:, t]
        for k in order:
            n = graph.nodes[k]
            kind = type(n).__name__
            if kind in ("Affine", "Linear"):
                h = h @ t64(n.weight).T + (t64(n.bias) if kind == "Affine" else 0.0)
            elif kind == "Conv2d":
                h = torch.nn.functional.conv2d(h, t64(n.weight), t64(n.bias), tuple(n.stride), tuple(n.padding),
                                               tuple(n.dilation), int(n.groups))
            elif kind == "AvgPool2d":
                h = torch.nn.functional.avg_pool2d(h, tuple(n.kernel_size), tuple(n.stride), tuple(n.padding))
            elif kind == "Flatten":
                h = h.reshape(B, -1)
            else:
                if k in rec_of:
                    h = h + rec_prev.get(k, 0.0)
                meta = n.metadata or {}
                thr = t64(getattr(n, "v_threshold", 1.0))
                if k not in state:
                    v0 = float(meta.get("v_init", 0.0)) * thr if kind == "IF" else 0.0
                    state[k] = [torch.zeros_like(h) + v0, torch.zeros_like(h)]
                v, syn = state[k]
                if kind == "CubaLIF":
                    syn = syn + dt / t64(n.tau_syn) * (-syn + t64(n.w_in) * h)
                    v = v + dt / t64(n.tau_mem) * (t64(n.v_leak) - v + t64(n.r) * syn)
                elif kind in ("LIF", "LI"):
                    v = v + dt / t64(n.tau) * (t64(n.v_leak) - v + t64(n.r) * h)
                else:  # IF, I
                    v = v + dt * t64(n.r) * h
                if kind in ("LI", "I"):
                    h = v
                else:
                    z = (v > thr).to(v.dtype)
                    v = v - thr * z if meta.get("reset") == "subtract" else torch.where(z > 0, t64(n.v_reset), v)
                    h = z
                state[k] = [v, syn]
                if k in rec_of:
                    rec_prev[k] = h @ t64(graph.nodes[rec_of[k]].weight).T
            if k in out:
                out[k].append(h.reshape(B, -1))
    return {k: torch.stack(v, 1).numpy() for k, v in out.items()
            if type(graph.nodes[k]).__name__ not in ("Affine", "Linear", "Conv2d", "AvgPool2d", "Flatten")}


def _constant(X, n_steps):
    return np.repeat(np.asarray(X, dtype=np.float64)[:, None], n_steps, axis=1)


# --------------------------------------------------------------------------- round trips
CONFIGS = [
    dict(),
    dict(neuron="cuba"),
    dict(recurrent=True),
    dict(neuron="if"),
    dict(readout="spike_count"),
    dict(readout="membrane_last", learn_tau=True, learn_threshold=True),
    dict(reset="subtract", neuron="cuba", recurrent=True),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "lif")
def test_file_round_trip_identical_spikes_and_predictions(kw, tmp_path):
    clf, X, y = _fit(**kw)
    path = tmp_path / "net.nir"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        to_nir(clf, dt=1e-3, path=path)
    est = from_nir(path)
    a, b = clf.simulate(X), est.simulate(X)
    assert len(a["spikes"]) == len(b["spikes"])
    for s1, s2 in zip(a["spikes"], b["spikes"]):
        np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(a["output"], b["output"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), est.predict(X))
    assert est.score(X, y) == clf.score(X, y)
    np.testing.assert_array_equal(est.classes_, clf.classes_)
    # the imported estimator persists in the safe format
    save(est, tmp_path / "est.skops")
    np.testing.assert_array_equal(load(tmp_path / "est.skops").predict(X), clf.predict(X))


@pytest.mark.parametrize("kw", CONFIGS[:5] + [dict(reset="subtract", neuron="cuba", recurrent=True)],
                         ids=["lif", "cuba", "recurrent", "if", "spike_count", "subtract-cuba-rec"])
@pytest.mark.parametrize("unit_r", [False, True])
def test_graph_equations_reproduce_package_spikes(kw, unit_r):
    """An Euler simulation of NIR's equations (written here from the spec) gives the package's spikes."""
    clf, X, _ = _fit(**kw)
    dt = 2e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        g = to_nir(clf, dt=dt, unit_r=unit_r)
    sim = clf.simulate(X)
    ref = euler(g, _constant(X, clf.n_steps), dt)
    neurons = [k for k in ref if k.endswith("_neuron")]
    for k, s in zip(neurons, sim["spikes"]):
        np.testing.assert_array_equal(ref[k], s, err_msg=k)
    if clf.readout in ("auto", "membrane_max"):
        # simulate returns float32 membranes
        np.testing.assert_allclose(ref["output_layer_neuron"], sim["membrane"][-1], rtol=1e-6, atol=1e-6)
    assert sum(s.sum() for s in sim["spikes"]) > 0


@pytest.mark.parametrize("encoder", ["rate", "latency", "population"])
def test_spike_encoders_export_with_their_encoded_input(encoder):
    clf, X, y = _fit(encoder=encoder, input_scaling=None, n_steps=8)
    g = to_nir(clf, dt=1e-3)
    meta = json.loads(g.metadata["sklearn_snn"])
    assert meta["input"] == "encoded" and meta["encoder"] == encoder
    inputs = graph_input(clf, X)
    assert inputs.shape == (len(X), 8, g.nodes["hidden_0_affine"].weight.shape[1])
    ref = euler(g, inputs, 1e-3)
    for k, s in zip([k for k in ref if k.endswith("_neuron")], clf.simulate(X)["spikes"]):
        np.testing.assert_array_equal(ref[k], s, err_msg=k)
    est = from_nir(g)  # the graph takes encoded spike trains: a 3D estimator
    assert est.input_ndim_ == 3
    np.testing.assert_array_equal(est.predict(inputs), clf.predict(X))


def test_time_constants_in_seconds():
    clf, X, _ = _fit(tau_mem=10.0, neuron="cuba", tau_syn=5.0)
    g = to_nir(clf, dt=1e-3)
    lif = g.nodes["hidden_0_neuron"]
    beta, alpha = np.exp(-1 / 10), np.exp(-1 / 5)
    np.testing.assert_allclose(lif.tau_mem, 1e-3 / (1 - beta))      # 10.508 ms: (tau_steps + ~0.5) * dt
    np.testing.assert_allclose(lif.tau_syn, 1e-3 / (1 - alpha))
    np.testing.assert_allclose(lif.r, 1 / (1 - beta))
    np.testing.assert_allclose(lif.w_in, 1 / (1 - alpha))
    assert abs(float(lif.tau_mem[0]) - 10.5e-3) < 0.05e-3
    np.testing.assert_allclose(g.nodes["output_layer_neuron"].tau, 1e-3 / (1 - beta))
    meta = json.loads(g.metadata["sklearn_snn"])
    assert meta["dt"] == 1e-3 and meta["n_steps"] == clf.n_steps and meta["readout"] == "membrane_max"
    # scaling folded into the first Affine: the graph takes raw features
    W = g.nodes["hidden_0_affine"].weight
    np.testing.assert_allclose(W, clf.module_.hidden[0].weight.detach().double().numpy() / clf.input_scale_,
                               rtol=1e-12)
    # the same network read with another dt changes nothing (dt only names the unit of time)
    g2 = to_nir(clf, dt=5e-2)
    est = from_nir(g2, dt=5e-2)
    np.testing.assert_array_equal(est.predict(X), clf.predict(X))


def test_regressor_and_evolved_export():
    X, y = _data()
    reg = SurrogateSNNRegressor((6,), max_iter=2, random_state=0, reset="zero").fit(X, X[:, 0])
    meta = json.loads(to_nir(reg).metadata["sklearn_snn"])
    np.testing.assert_allclose(meta["output_offset"], np.atleast_1d(reg.y_mean_))
    assert meta["readout"] == "membrane_mean"
    evo = EvolvedSNN((6,), population_size=8, max_iter=2, random_state=0, reset="zero").fit(X, y)
    est = from_nir(to_nir(evo))
    np.testing.assert_array_equal(est.predict(X), evo.predict(X))
    for s1, s2 in zip(evo.simulate(X)["spikes"], est.simulate(X)["spikes"]):
        np.testing.assert_array_equal(s1, s2)


def test_from_nir_3d_input_and_classes():
    clf, X, _ = _fit(readout="spike_count")
    g = to_nir(clf)
    g.metadata = {}  # a foreign graph: no n_steps, no classes
    est = from_nir(g, classes=["a", "b", "c"])
    assert est.input_ndim_ == 3
    X3 = _constant(X, clf.n_steps)  # the scaling is folded into the first Affine
    pred = est.predict(X3)
    assert set(pred) <= {"a", "b", "c"}
    np.testing.assert_array_equal(pred, np.array(["a", "b", "c"])[np.searchsorted(clf.classes_, clf.predict(X))])
    with pytest.raises(ValueError, match="3 outputs"):
        from_nir(g, classes=[0, 1])
    est2 = from_nir(g, n_steps=clf.n_steps)
    np.testing.assert_array_equal(est2.predict(X), clf.predict(X))


def test_sequence_input_round_trip():
    rng = np.random.default_rng(3)
    X = (rng.random((40, 12, 6)) < 0.3).astype(np.uint8)
    y = (X[:, :6, 0].sum(1) > X[:, 6:, 0].sum(1)).astype(int)
    clf = SurrogateSNNClassifier((8,), max_iter=2, random_state=0, reset="zero").fit(X, y)
    est = from_nir(to_nir(clf))
    assert est.input_ndim_ == 3
    assert json.loads(to_nir(clf).metadata["sklearn_snn"])["input"] == "sequence"
    np.testing.assert_array_equal(est.predict(X), clf.predict(X))
    for s1, s2 in zip(clf.simulate(X)["spikes"], est.simulate(X)["spikes"]):
        np.testing.assert_array_equal(s1, s2)


def test_converted_mlp_and_cnn_follow_the_graph_equations():
    from sklearn.datasets import load_digits
    from torch import nn

    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16.0, y[:200]
    mlp = ConvertedSNN(hidden_layer_sizes=(16,), max_iter=30, n_steps=6, random_state=0).fit(X, y)
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(48, 10))
    conv = ConvertedSNN(cnn, input_shape=(1, 8, 8), n_steps=6).fit(X, y)
    for est, shape in ((mlp, (64,)), (conv, (1, 8, 8))):
        with pytest.warns(UserWarning, match="reset by subtraction"):
            g = to_nir(est, dt=1e-3)
        inputs = graph_input(est, X[:20])
        assert inputs.shape == (20, est.n_steps, *shape)
        ref = euler(g, inputs, 1e-3)
        sim = est.simulate(X[:20])
        ifs = [k for k in ref]
        assert len(ifs) == len(sim["spikes"]) >= 1
        for k, s in zip(ifs, sim["spikes"]):
            np.testing.assert_array_equal(ref[k], s, err_msg=k)
        assert sum(s.sum() for s in sim["spikes"]) > 0
        # its readout is a current (no neuron node): from_nir says so
        with pytest.raises(ValueError, match="trailing Affine|Conv2d"):
            from_nir(g)
    pool = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 10))
    est = ConvertedSNN(pool, input_shape=(1, 8, 8), n_steps=4).fit(X, y)
    with pytest.raises(ValueError, match="max-pool.*AvgPool2d"):
        to_nir(est)


# --------------------------------------------------------------------------------- errors
def test_errors_name_the_problem(tmp_path):
    with pytest.raises(NotFittedError):
        to_nir(SurrogateSNNClassifier())
    with pytest.raises(ValueError, match="'hidden_0'.*alif"):
        to_nir(_fit(neuron="alif")[0])
    with pytest.raises(ValueError, match="'hidden_0'.*normalization='bntt'"):
        to_nir(_fit(normalization="bntt")[0])
    with pytest.raises(ValueError, match="input_scaling=None"):
        to_nir(_fit(encoder="rate")[0])
    with pytest.raises(ValueError, match="positive number"):
        to_nir(_fit()[0], dt=0)
    with pytest.warns(UserWarning, match=r"\['hidden_0', 'hidden_1', 'output_layer'\] reset by subtraction"):
        to_nir(_fit(reset="subtract", readout="spike_count")[0])
    # an unknown node in the chain is named
    g = to_nir(_fit()[0])
    nodes = dict(g.nodes)
    nodes["thr"] = nir.Threshold(threshold=np.ones(7))
    edges = [e for e in g.edges if e != ("hidden_0_neuron", "hidden_1_affine")]
    edges += [("hidden_0_neuron", "thr"), ("thr", "hidden_1_affine")]
    bad = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)
    with pytest.raises(ValueError, match="'thr' is a Threshold"):
        from_nir(bad)
    with pytest.raises(TypeError, match="NIRGraph or the path"):
        from_nir(42)
    mixed = to_nir(_fit()[0])
    mixed.nodes["hidden_1_neuron"] = nir.IF(r=np.full(6, 1e3), v_threshold=np.ones(6))
    with pytest.raises(ValueError, match="mixes neuron models"):
        from_nir(mixed)
    leak = to_nir(_fit()[0])
    leak.nodes["hidden_0_neuron"].v_leak = np.full(7, 0.1)
    with pytest.raises(ValueError, match="'hidden_0_neuron'.*v_leak"):
        from_nir(leak)
    with pytest.raises(ValueError, match="shorter than dt"):
        from_nir(to_nir(_fit()[0], dt=1e-3), dt=1.0)


# ------------------------------------------------------------------- other simulators
def _run_steps(net, x, n_steps, stateful):
    outs, state = [], None
    with torch.no_grad():
        for _ in range(n_steps):
            if stateful:
                o, state = net(x, state)
            else:
                o = net(x)
            outs.append((o[0] if isinstance(o, tuple) else o).clone())
    return torch.stack(outs, 1).numpy()


@pytest.mark.parametrize("neuron", ["lif", "cuba"])
def test_snntorch_runs_the_exported_graph(neuron):
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    clf, X, _ = _fit(neuron=neuron, readout="spike_count")
    # snnTorch's importer assumes dt = 1e-4 s (and has no LI node: use a spiking readout)
    net = import_from_nir(to_nir(clf, dt=1e-4))
    for m in net.modules():
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    out = _run_steps(net, torch.tensor(X, dtype=torch.float32), clf.n_steps, stateful=False)
    ref = clf.simulate(X)["spikes"][-1]
    np.testing.assert_array_equal(out, ref)
    assert ref.sum() > 0


@pytest.mark.parametrize("neuron,unit_r", [("lif", True), ("cuba", False), ("cuba", True), ("if", False)])
def test_norse_runs_the_exported_graph(neuron, unit_r):
    norse = pytest.importorskip("norse.torch")
    clf, X, _ = _fit(neuron=neuron, readout="spike_count")
    # Norse's LIF ignores r (export with unit_r=True); its IF integrates v += I whatever r and dt
    net = norse.from_nir(to_nir(clf, dt=1e-3, unit_r=unit_r), dt=1e-3, ignore_warnings=True)
    out = _run_steps(net, torch.tensor(X, dtype=torch.float32), clf.n_steps, stateful=True)
    ref = clf.simulate(X)["spikes"][-1]
    np.testing.assert_array_equal(out, ref)
    assert ref.sum() > 0


@pytest.mark.parametrize("recurrent", [False, True])
def test_graph_exported_by_snntorch_predicts_its_labels(recurrent):
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    # per-neuron beta / threshold vectors: nir 1.0.8's type inference needs shaped parameters
    kw = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)
    if recurrent:
        hidden = snn.RLeaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16), linear_features=16, **kw)
    else:
        hidden = snn.Leaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16), **kw)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), hidden, torch.nn.Linear(16, 3),
                              snn.Leaky(beta=torch.full((3,), 0.8), threshold=torch.ones(3), output=True, **kw))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    g = export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0])
    X = np.random.default_rng(1).normal(size=(100, 5)).astype(np.float32)
    n_steps = 12
    for m in net.modules():
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    if recurrent:
        hidden.spk, hidden.mem = torch.zeros(1), torch.zeros(1)
    spikes = _run_steps(net, torch.tensor(X), n_steps, stateful=False)
    est = from_nir(g, dt=1e-4, n_steps=n_steps)
    np.testing.assert_array_equal(est.simulate(X)["spikes"][-1], spikes)
    np.testing.assert_array_equal(est.predict(X), np.argmax(spikes.sum(1), axis=1))
    assert len(np.unique(est.predict(X))) > 1
