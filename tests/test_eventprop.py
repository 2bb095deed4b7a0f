"""EventProp: exact gradients (finite differences, fine-step BPTT), memory, Yin-Yang, estimator."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_snn._core import eventprop as ep
from sklearn_snn._yinyang import make_yinyang
from sklearn_snn.eventprop import EventPropClassifier

F64 = torch.float64


def _net(seed, F=4, hidden=(6,), O=3, B=3, rec=False, dt=1.5, n_steps=30, output="ttfs", out_mean=2.0):
    g = torch.Generator().manual_seed(seed)
    spec = ep.EventPropSpec(dt=dt, n_steps=n_steps, output=output)
    times = torch.rand(B, F, generator=g, dtype=F64) * 20
    x = ep.SpikeEvents.from_times(times, spec.dt, spec.n_steps)
    W, recurrent, n_pre = [], [], F
    for h in hidden:
        W.append(torch.randn(h, n_pre, generator=g, dtype=F64) * 1.5 + 2.5)
        if rec:
            W.append(torch.randn(h, h, generator=g, dtype=F64) * 0.5)
        recurrent.append(rec)
        n_pre = h
    W.append(torch.randn(O, n_pre, generator=g, dtype=F64) * 1.5 + out_mean)
    c = torch.randn(B, O, generator=g, dtype=F64)
    return spec, x, W, tuple(recurrent), c


def _fd_check(spec, x, W, recurrent, c, eps=1e-6):
    Wg = [w.clone().requires_grad_() for w in W]
    out = ep.eventprop(spec, x, Wg, recurrent)
    (out * c).sum().backward()
    ref = ep.simulate(spec, x, W, recurrent)
    errs = []
    for wi, w in enumerate(W):
        num = torch.zeros_like(w)
        for idx in range(w.numel()):
            vals = []
            for sgn in (1, -1):
                Wp = [v.clone() for v in W]
                Wp[wi].view(-1)[idx] += sgn * eps
                res = ep.simulate(spec, x, Wp, recurrent)
                # the check is only valid where no spike appears or disappears
                assert res["n_spikes"] == ref["n_spikes"]
                assert torch.equal(res["spiked"], ref["spiked"])
                vals.append(float((res["out"] * c).sum()))
            num.view(-1)[idx] = (vals[0] - vals[1]) / (2 * eps)
        assert num.abs().sum() > 0, "degenerate check: no gradient at all"
        errs.append(float((num - Wg[wi].grad).norm() / num.norm()))
    return errs, ref


@pytest.mark.parametrize("output", ["ttfs", "voltage"])
@pytest.mark.parametrize("rec", [False, True])
def test_gradient_matches_finite_differences(output, rec):
    spec, x, W, recurrent, c = _net(0, rec=rec, output=output)
    errs, ref = _fd_check(spec, x, W, recurrent, c)
    assert ref["n_spikes"][0] > 5  # hidden layer is active
    assert max(errs) < 1e-4, errs


def test_gradient_two_hidden_layers_finite_differences():
    spec, x, W, recurrent, c = _net(1, hidden=(5, 4), B=2, n_steps=40)
    errs, ref = _fd_check(spec, x, W, recurrent, c)
    assert min(ref["n_spikes"][:2]) > 3
    assert max(errs) < 1e-4, errs


def test_silent_output_gets_pseudo_time_and_exact_gradient():
    # weak output weights: some output neurons never reach threshold
    spec, x, W, recurrent, c = _net(3, out_mean=0.8)
    ref = ep.simulate(spec, x, W, recurrent)
    silent = ~ref["spiked"]
    assert silent.any() and ref["spiked"].any()
    assert torch.all(ref["out"][silent] > spec.t_end)
    assert torch.all(ref["out"][~silent] < spec.t_end)
    errs, _ = _fd_check(spec, x, W, recurrent, c)
    assert max(errs) < 1e-4, errs
    # the loss on a silent correct neuron pulls its weights up (towards firing)
    b, o = [int(v) for v in silent.nonzero()[0]]
    Wg = [w.clone().requires_grad_() for w in W]
    t = ep.eventprop(spec, x, Wg, recurrent)
    t[b, o].backward()
    assert Wg[-1].grad[o].sum() < 0  # descending raises the weights into neuron o


def test_spike_time_is_exact_and_grid_independent():
    # one input spike at t_in through weight w: V(t) = w kappa(t - t_in) crosses theta once
    w, t_in = 8.0, 1.3
    times = []
    for dt in (1.0, 0.37, 0.05):
        spec = ep.EventPropSpec(dt=dt, n_steps=int(math.ceil(30 / dt)))
        x = ep.SpikeEvents.from_times(torch.tensor([[t_in]], dtype=F64), dt, spec.n_steps)
        W = [torch.tensor([[w]], dtype=F64), torch.tensor([[0.0]], dtype=F64)]
        res = ep.simulate(spec, x, W)
        ev = res["events"][0]
        assert len(ev) == 1
        t_s = float(ev.step[0]) * dt + float(ev.offset[0])
        assert abs(w * float(spec.kappa(torch.tensor(t_s - t_in, dtype=F64))) - 1.0) < 1e-12
        times.append(t_s)
    assert max(times) - min(times) < 1e-10


def _bptt_reference(W, times, spec, h):
    """Euler-discretised network with linearly interpolated spike times, differentiated by autograd
    (no surrogate: the gradient flows through the interpolated times). Converges as h -> 0."""
    tm, ts, th = spec.tau_mem, spec.tau_syn, spec.threshold
    n = int(round(spec.t_end / h))
    W1, W2 = W
    B = times.shape[0]
    V1 = I1 = torch.zeros(B, W1.shape[0], dtype=F64)
    V2 = I2 = torch.zeros(B, W2.shape[0], dtype=F64)
    t_first = torch.full((B, W2.shape[0]), math.inf, dtype=F64)
    for g in range(1, n + 1):
        tg = g * h
        a_in = ((times > tg - h) & (times <= tg)).to(F64)
        d_in = (tg - times).clamp(min=0) * a_in
        V1n = V1 + h / tm * (-V1 + I1) + (a_in * d_in / tm) @ W1.T
        I1n = I1 * (1 - h / ts) + (a_in * (1 - d_in / ts)) @ W1.T
        s1 = (V1n >= th).to(F64)
        t1 = tg - h + h * (th - V1) / (V1n - V1).clamp(min=1e-12)
        d1 = (tg - t1) * s1
        V1n = V1n - s1 * th * (1 - d1 / tm)
        V2n = V2 + h / tm * (-V2 + I2) + (s1 * d1 / tm) @ W2.T
        I2n = I2 * (1 - h / ts) + (s1 * (1 - d1 / ts)) @ W2.T
        s2 = V2n >= th
        t2 = tg - h + h * (th - V2) / (V2n - V2).clamp(min=1e-12)
        t_first = torch.where(s2 & torch.isinf(t_first), t2, t_first)
        V2n = V2n - s2.to(F64) * th
        V1, I1, V2, I2 = V1n, I1n, V2n, I2n
    return t_first


def test_agrees_with_fine_step_bptt_as_step_shrinks():
    g = torch.Generator().manual_seed(3)
    spec = ep.EventPropSpec(dt=0.5, n_steps=60)
    times = torch.rand(2, 3, generator=g, dtype=F64) * 8
    W = [torch.randn(4, 3, generator=g, dtype=F64) + 4.0, torch.randn(2, 4, generator=g, dtype=F64) + 3.0]
    c = torch.randn(2, 2, generator=g, dtype=F64)
    Wg = [w.clone().requires_grad_() for w in W]
    out = ep.eventprop(spec, ep.SpikeEvents.from_times(times, spec.dt, spec.n_steps), Wg)
    assert torch.isfinite(out).all() and out.max() < spec.t_end  # all outputs spike
    (out * c).sum().backward()
    exact = torch.cat([w.grad.flatten() for w in Wg])
    errs = []
    for h in (0.1, 0.03, 0.01):
        Wr = [w.clone().requires_grad_() for w in W]
        t = _bptt_reference(Wr, times, spec, h)
        assert torch.isfinite(t).all()
        (t * c).sum().backward()
        approx = torch.cat([w.grad.flatten() for w in Wr])
        errs.append(float((approx - exact).norm() / exact.norm()))
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.02, errs


def test_backward_memory_grows_with_spikes_not_steps():
    spec, x, W, recurrent, c = _net(0, B=4)
    saved = []
    for k in (1, 10):
        sp = ep.EventPropSpec(dt=spec.dt / k, n_steps=spec.n_steps * k)
        xe = ep.SpikeEvents.from_times(torch.rand(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 20,
                                       sp.dt, sp.n_steps)
        res = ep.simulate(sp, xe, W, recurrent)
        saved.append((ep.saved_bytes(res["events"]), sum(res["n_spikes"])))
    (b1, n1), (b10, n10) = saved
    assert n10 == pytest.approx(n1, rel=0.1)
    assert b10 < 1.5 * b1


def test_spike_events_round_trip():
    spikes = torch.zeros(5, 2, 3)
    spikes[1, 0, 2] = spikes[4, 1, 0] = spikes[1, 1, 1] = 1
    ev = ep.SpikeEvents.from_dense(spikes)
    assert len(ev) == 3 and ev.ptr == [0, 0, 2, 2, 2, 3]
    m, o = ev.dense(1, torch.float32)
    assert torch.equal(m, spikes[1]) and float(o.abs().sum()) == 0
    with pytest.raises(ValueError, match="tau_mem != tau_syn"):
        ep.EventPropSpec(tau_mem=5.0, tau_syn=5.0)


# --- Yin-Yang ---------------------------------------------------------------------------------
def test_yinyang_balance_and_geometry():
    X, y = make_yinyang(3001, random_state=0)
    assert X.shape == (3001, 4)
    assert np.bincount(y).tolist() == [1001, 1000, 1000]
    np.testing.assert_allclose(X[:, 2], 1 - X[:, 0])
    np.testing.assert_allclose(X[:, 3], 1 - X[:, 1])
    r = np.hypot(X[:, 0] - 0.5, X[:, 1] - 0.5)
    assert r.max() <= 0.5
    # dots: within r_small of (0.25, 0.5) or (0.75, 0.5), and everything there is a dot
    d = np.minimum(np.hypot(X[:, 0] - 0.25, X[:, 1] - 0.5), np.hypot(X[:, 0] - 0.75, X[:, 1] - 0.5))
    assert np.all((d < 0.1) == (y == 2))
    # far from the S-curve, the upper half is yin (1) and the lower half yang (0)
    far = (y != 2) & (np.abs(X[:, 0] - 0.5) > 0.0) & (np.hypot(X[:, 0] - 0.25, X[:, 1] - 0.5) > 0.25) & \
        (np.hypot(X[:, 0] - 0.75, X[:, 1] - 0.5) > 0.25)
    assert np.all(y[far & (X[:, 1] > 0.5)] == 1) and np.all(y[far & (X[:, 1] < 0.5)] == 0)
    # the point mirrored through the centre swaps yin and yang
    Xm, ym = make_yinyang(10, random_state=1)
    X2, y2 = make_yinyang(10, random_state=1)
    np.testing.assert_array_equal(Xm, X2)
    np.testing.assert_array_equal(ym, y2)
    from sklearn_snn._yinyang import _yinyang_class

    keep = y != 2
    assert np.all(_yinyang_class(1 - X[keep, 0], 1 - X[keep, 1], 0.1, 0.5) == 1 - y[keep])
    with pytest.raises(ValueError):
        make_yinyang(10, r_small=0.3)


# --- estimator ----------------------------------------------------------------------------------
# a fast configuration for the API checks (the defaults' own check_classifiers_train is
# test_defaults_pass_check_classifiers_train): a short window with time constants to match
FAST = dict(hidden_layer_sizes=(12,), n_steps=12, dt=2.0, tau_mem=10.0, tau_syn=2.5, max_iter=10, batch_size=32,
            learning_rate_init=5e-2, lr_schedule="constant", random_state=0)

_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data": "float32 training: rounding differences between weighted "
                                                     "and repeated samples are amplified by spike times past rtol=1e-7",
}


@parametrize_with_checks([EventPropClassifier(**FAST)], expected_failed_checks=lambda est: _XFAIL)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.fixture(scope="module")
def yinyang_small():
    X, y = make_yinyang(500, random_state=0)
    Xt, yt = make_yinyang(300, random_state=1)
    return X, y, Xt, yt


def test_learns_yinyang(yinyang_small):
    X, y, Xt, yt = yinyang_small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = EventPropClassifier(hidden_layer_sizes=(40,), max_iter=6, n_steps=25, random_state=0).fit(X, y)
    assert clf.score(Xt, yt) > 0.6  # chance is 1/3; the benchmark reaches >= 0.97 with the defaults
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    p = clf.predict_proba(Xt[:5])
    np.testing.assert_allclose(p.sum(1), 1.0)
    sim = clf.simulate(Xt[:4])
    assert sim["spikes"][0].shape == (4, 25, 40) and sim["output"].shape == (4, 3)
    assert np.all(sim["spike_offsets"][0] < 1.0) and np.all(sim["spike_offsets"][0] >= 0)
    # the class is the output neuron that spikes first
    np.testing.assert_array_equal(clf.predict(Xt[:4]), clf.classes_[sim["output"].argmin(1)])


def test_safe_save_load_round_trip(tmp_path):
    from sklearn_snn.persistence import load, save

    X, y = make_yinyang(60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = EventPropClassifier(hidden_layer_sizes=(8,), n_steps=10, dt=1.5, max_iter=1, random_state=0).fit(X, y)
    save(clf, tmp_path / "ep.pt")
    np.testing.assert_allclose(load(tmp_path / "ep.pt").predict_proba(X), clf.predict_proba(X))


def test_silent_network_trains_without_nan(yinyang_small):
    X, y, _, _ = yinyang_small
    clf = EventPropClassifier(hidden_layer_sizes=(10,), n_steps=10, dt=1.5, threshold=50.0, max_iter=2,
                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[:100], y[:100])
    assert all(np.isfinite(clf.loss_curve_))
    p = clf.predict_proba(X[:10])
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_voltage_loss_recurrent_3d_and_partial_fit():
    rng = np.random.RandomState(0)
    X3 = (rng.rand(60, 8, 3) < 0.2).astype(np.float32)
    y = np.arange(60) % 2
    X3[y == 1, :2, 0] = 1  # class 1: early spikes on channel 0
    clf = EventPropClassifier(hidden_layer_sizes=(8,), loss="voltage", recurrent=True, n_steps=12,
                              max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X3, y)
    assert clf.input_ndim_ == 3 and clf.n_features_in_ == 3
    assert clf.predict(X3).shape == (60,)
    with pytest.raises(ValueError, match="2D"):
        clf.predict(X3[:, 0])
    with pytest.raises(ValueError, match="features"):
        clf.predict(X3[:, :, :2])
    pf = EventPropClassifier(**{**FAST, "max_iter": 5})
    pf.partial_fit(X3[:30], y[:30], classes=[0, 1])
    pf.partial_fit(X3[30:], y[30:])
    assert pf.n_iter_ == 2


def test_bad_parameters():
    X, y = make_yinyang(30, random_state=0)
    with pytest.raises(InvalidParameterError):
        EventPropClassifier(loss="mse").fit(X, y)
    with pytest.raises(InvalidParameterError):
        EventPropClassifier(dt=0.0).fit(X, y)
    with pytest.raises(ValueError, match="tau_mem != tau_syn"):
        EventPropClassifier(tau_mem=5.0, tau_syn=5.0, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="class"):
        EventPropClassifier(max_iter=1).fit(X, np.zeros(30))


# --- compiled loops, defaults that learn, spike input ---------------------------------------------
@pytest.fixture(autouse=False)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("kw", [{}, {"hidden": (5, 4), "B": 2, "n_steps": 40}, {"out_mean": 0.8},
                                {"output": "voltage"}, {"B": 6, "F": 5, "hidden": (20,), "n_steps": 25},
                                # long silence after the last input (t < 20): hidden layers go quiet and the
                                # compiled forward skips them; the adjoint starts at the last event
                                {"hidden": (5, 4), "B": 4, "n_steps": 70}])
def test_compiled_loops_match_torch_reference(kw):
    if ep.numba_loops() is None:
        pytest.skip("numba is not installed")
    spec, x, W, recurrent, c = _net(2, **kw)
    res = {}
    for backend in ("torch", "auto"):
        Wg = [w.clone().requires_grad_() for w in W]
        out = ep.eventprop(spec, x, Wg, recurrent, backend=backend)
        (out * c).sum().backward()
        res[backend] = (out.detach(), [w.grad for w in Wg])
    ref = ep.simulate(spec, x, W, recurrent)
    st = ep.forward_numba(ep.numba_loops(), spec, x, W, early_exit=False)
    assert ref["n_spikes"] == st["n_spikes"].tolist() and ref["n_spikes"][0] > 3
    np.testing.assert_array_equal(ref["spiked"].numpy(), st["spiked"])
    # the same spikes: (layer, step, neuron) and the offsets inside the step
    hidden = ref["events"][0]
    sample = np.repeat(np.arange(x.batch_size), np.diff(st["ev_ptr"]))
    sel = st["ev_l"] == 0
    ours = sorted(zip(sample[sel].tolist(), st["ev_k"][sel].tolist(), st["ev_i"][sel].tolist(),
                      st["ev_u"][sel].tolist()))
    theirs = sorted(zip(hidden.batch.tolist(), hidden.step.tolist(), hidden.neuron.tolist(), hidden.offset.tolist()))
    assert len(ours) == len(theirs)
    np.testing.assert_array_equal(np.array(ours)[:, :3], np.array(theirs)[:, :3])
    np.testing.assert_allclose(np.array(ours)[:, 3], np.array(theirs)[:, 3], atol=1e-11)
    np.testing.assert_allclose(res["auto"][0].numpy(), res["torch"][0].numpy(), atol=1e-10)
    for ga, gt in zip(res["auto"][1], res["torch"][1]):
        np.testing.assert_allclose(ga.numpy(), gt.numpy(), atol=1e-9 * float(gt.abs().max()))


@pytest.mark.usefixtures("_quiet")
def test_recurrent_and_env_fall_back_to_torch(monkeypatch):
    _, _, W, recurrent, _ = _net(0, rec=True)
    assert ep.compiled_backend("auto", W, recurrent) is None  # recurrent layers: the torch loops
    X, y = _iris_std()
    kw = {"hidden_layer_sizes": (10,), "max_iter": 2, "random_state": 0}
    a = EventPropClassifier(**kw).fit(X, y)
    monkeypatch.setenv("SKLEARN_SNN_NUMBA", "0")
    assert ep.numba_loops() is None
    b = EventPropClassifier(**kw).fit(X, y)
    # float32 torch loops vs float64 compiled loops: the same training up to rounding
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-3)


def _iris_std():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.usefixtures("_quiet")
def test_defaults_learn_small_tabular_problems():
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import cross_val_score

    X, y = _iris_std()
    assert cross_val_score(EventPropClassifier(random_state=0), X, y, cv=3).mean() > 0.9
    Xb, yb = make_blobs(150, random_state=0)
    assert cross_val_score(EventPropClassifier(random_state=0), Xb, yb, cv=3).mean() > 0.85


def test_defaults_pass_check_classifiers_train():
    from sklearn.utils.estimator_checks import check_classifiers_train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_classifiers_train("EventPropClassifier", EventPropClassifier(random_state=0))


@pytest.mark.usefixtures("_quiet")
def test_spike_array_input_learns_randman_and_keeps_dtype():
    from sklearn_snn.datasets import make_randman

    X, y = make_randman(240, n_classes=3, n_units=12, n_steps=30, random_state=0)
    X = X.astype(np.uint8)
    clf = EventPropClassifier(max_iter=15, random_state=0)
    ev = clf.set_params().fit(X[:180], y[:180])._encode(torch.as_tensor(X[:4]))
    assert ev.n_neurons == 13 and ev.n_steps == 30
    assert len(ev) == int((X[:4] > 0).sum()) + 4  # every spike at its own step, plus the bias spikes
    np.testing.assert_array_equal(ev.offset.numpy(), 0.0)
    assert clf.loss_ == "voltage" and clf.tau_mem_ == 20.0 and clf.tau_syn_ == 5.0  # 30 steps: the floor of 20
    assert clf.score(X[180:], y[180:]) > 0.75  # chance: 1/3
    Xb = X.astype(bool)
    np.testing.assert_array_equal(clf.predict(Xb[180:]), clf.predict(X[180:]))


@pytest.mark.usefixtures("_quiet")
def test_max_iter_auto_resolves_by_input_kind():
    """'auto' runs 35 epochs on 2D input and 40 on spike arrays; the parameter stays 'auto' and
    the schedule spans the resolved count (the cosine rate reaches its floor at the last epoch)."""
    from sklearn_snn.datasets import make_randman

    X, y = _iris_std()
    small = dict(hidden_layer_sizes=(8,), n_steps=12, dt=2.0, tau_mem=10.0, tau_syn=2.5, random_state=0)
    clf = EventPropClassifier(**small).fit(X[::3], y[::3])
    assert clf.max_iter == "auto" and clf.max_iter_ == 35 and clf.n_iter_ == 35
    assert len(clf.loss_curve_) == 35
    Xs, ys = make_randman(60, n_classes=2, n_units=6, n_steps=12, random_state=0)
    clf3 = EventPropClassifier(**small).fit(Xs, ys)
    assert clf3.max_iter_ == 40 and clf3.n_iter_ == 40
    fixed = EventPropClassifier(**small, max_iter=3).fit(X[::3], y[::3])
    assert fixed.max_iter_ == 3 and fixed.n_iter_ == 3


@pytest.mark.usefixtures("_quiet")
def test_bad_input_is_refused_clearly():
    X, y = _iris_std()
    clf = EventPropClassifier(hidden_layer_sizes=(5,), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="NaN|nan|infinity"):
        clf.fit(np.where(X > 1.5, np.nan, X), y)
    with pytest.raises(InvalidParameterError, match="input_encoding"):
        EventPropClassifier(input_encoding="rate").fit(X, y)
