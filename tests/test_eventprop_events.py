"""EventProp on event streams: exact event times without binning, errors for bad events."""

import copy
import math
import warnings

import numpy as np
import pytest
import torch

from sklearn_snn._core import eventprop as ep
from sklearn_snn._core.eventprop_events import (
    EventSet,
    check_event_streams,
    is_event_stream,
)
from sklearn_snn.eventprop import EventPropClassifier

EV = [("t", "f8"), ("x", "i4")]
KW = {"hidden_layer_sizes": (16,), "max_iter": 2, "batch_size": 16, "random_state": 0}


def _events(X, dt=1.0, shift=0.0):
    """3D spike array -> event streams, one event per spike at the start of its step (+ shift)."""
    out = []
    for s in X:
        k, f = np.nonzero(s)
        out.append(np.array(list(zip(k * dt + shift, f)), dtype=EV))
    return out


@pytest.fixture(scope="module")
def spikes():
    from sklearn_snn.datasets import make_randman

    X, y = make_randman(48, n_classes=2, n_units=8, n_steps=20, random_state=0)
    X = X.astype(np.uint8)
    X[:, -1, 0] = 1  # every sample has a spike in the last step: the same duration learned from events
    return X, y


@pytest.fixture(scope="module")
def fitted(spikes):
    X, y = spikes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EventPropClassifier(**KW).fit(X, y)


def test_events_on_the_grid_equal_binned_input(spikes, fitted):
    X, y = spikes
    E = _events(X)
    assert is_event_stream(E) and not is_event_stream(X)
    # predicting on events = predicting on the binned array, exactly
    np.testing.assert_array_equal(fitted.decision_function(E), fitted.decision_function(X))
    # training on events = training on the binned array
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = EventPropClassifier(**KW).fit(E, y)
    assert b.n_features_in_ == 8 and b.n_steps_in_ == 20 and b.input_ndim_ == 3 and b.loss_ == "voltage"
    assert b.loss_curve_ == fitted.loss_curve_
    np.testing.assert_array_equal(b.predict(E), fitted.predict(X))
    sim = b.simulate(E[:3])
    assert sim["spikes"][0].shape == (3, 25, 16)  # max(n_steps, n_steps_in_)


def test_time_within_a_bin_counts(spikes, fitted):
    X, _ = spikes
    base = fitted.decision_function(_events(X[:6]))
    # every event 0.4 steps later: the same bins, another output (binning would not see it)
    late = fitted.decision_function(_events(X[:6], shift=0.4))
    assert np.abs(late - base).max() > 1e-3
    # the same times in other units: time_scale converts them
    us = [np.array(list(zip(e["t"] * 1000.0, e["x"])), dtype=EV) for e in _events(X[:6], shift=0.4)]
    in_us = copy.deepcopy(fitted).set_params(time_scale=1000.0)
    np.testing.assert_allclose(in_us.decision_function(us), late, rtol=1e-12)


def test_exact_spike_time_from_an_event():
    # one event at t_in through weight w: the hidden neuron fires where w kappa(t - t_in) = theta
    w, t_in = 8.0, 1.3
    spec = ep.EventPropSpec(dt=1.0, n_steps=30)
    x = EventSet(np.array([t_in]), np.array([0]), np.array([0, 1])).encode(n_units=1, dt=1.0, n_steps=30)
    W = [torch.tensor([[w, 0.0]], dtype=torch.float64), torch.tensor([[0.0]], dtype=torch.float64)]
    ev = ep.simulate(spec, x, W)["events"][0]
    t_s = float(ev.step[0]) + float(ev.offset[0])
    assert len(ev) == 1 and t_s > t_in
    assert abs(w * float(spec.kappa(torch.tensor(t_s - t_in, dtype=torch.float64))) - 1.0) < 1e-12


def test_several_events_of_a_unit_in_one_step_compiled_and_torch_agree():
    # unit 0 fires three times within step 1 in sample 0: all three count, in both loops
    s0 = np.array([(1.1, 0), (1.5, 0), (1.9, 0), (0.2, 1), (3.3, 1)], dtype=EV)
    s1 = np.array([(0.5, 1), (0.7, 1), (2.0, 0)], dtype=EV)
    es = check_event_streams([s0, s1], name="t")
    x = es.encode(n_units=2, dt=1.0, n_steps=25)
    assert len(ep.SpikeEvents.dense_groups(x, 1, torch.float64)) == 3
    spec = ep.EventPropSpec(dt=1.0, n_steps=25, tau_mem=10.0, tau_syn=2.5)
    g = torch.Generator().manual_seed(0)
    W = [torch.rand(5, 3, generator=g, dtype=torch.float64) * 1.5 + 0.5,
         torch.rand(2, 5, generator=g, dtype=torch.float64) + 0.5]
    res = {}
    compiled = ep.numba_loops() is not None  # SKLEARN_SNN_NUMBA=0: the torch loops only
    for backend in ("torch", "auto") if compiled else ("torch",):
        Wg = [w.clone().requires_grad_() for w in W]
        out = ep.eventprop(spec, x, Wg, (), backend=backend)
        (out * torch.tensor([[1.0, -2.0], [0.5, 1.5]], dtype=torch.float64)).sum().backward()
        res[backend] = (out.detach(), [w.grad for w in Wg])
    assert float(res["torch"][1][0].abs().sum()) > 0
    if compiled:
        np.testing.assert_allclose(res["auto"][0].numpy(), res["torch"][0].numpy(), atol=1e-10)
        for a, b in zip(res["auto"][1], res["torch"][1]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-9 * float(b.abs().max()))
    # the three events differ from one event at 1.1 (nothing was merged)
    one = check_event_streams([s0[[0, 3, 4]], s1], name="t").encode(n_units=2, dt=1.0, n_steps=25)
    assert not torch.equal(ep.simulate(spec, one, W)["out"], res["torch"][0])


def test_bad_events_are_refused_clearly(spikes, fitted):
    X, _ = spikes
    E = _events(X[:4])
    bad_t = [e.copy() for e in E]
    bad_t[2]["t"][0] = -1.0
    with pytest.raises(ValueError, match="sample 2 has the negative event time -1"):
        fitted.predict(bad_t)
    bad_t[2]["t"][0] = np.nan
    with pytest.raises(ValueError, match="sample 2 .*must be finite"):
        fitted.predict(bad_t)
    bad_u = [e.copy() for e in E]
    bad_u[1]["x"][0] = 8
    with pytest.raises(ValueError, match=r"sample 1 has the unit 8, out of range; units must lie in \[0, 8\): the "
                                         "estimator was fitted on 8 input units"):
        fitted.predict(bad_u)
    with pytest.raises(ValueError, match="sample 1 of the event stream is a ndarray, not a structured array"):
        fitted.predict([E[0], np.zeros(3)])
    with pytest.raises(ValueError, match="needs a time field 't' and one unit field 'x'"):
        fitted.predict([np.zeros(2, dtype=[("time", "f8"), ("x", "i4")])])
    with pytest.raises(ValueError, match="2-D sensor events"):
        fitted.predict([np.zeros(2, dtype=[("t", "f8"), ("x", "i4"), ("y", "i4")])])
    with pytest.raises(ValueError, match="field 'x' has dtype float64; units must be integers"):
        fitted.predict([np.zeros(2, dtype=[("t", "f8"), ("x", "f8")])])
    with pytest.raises(ValueError, match="field 't' has dtype <U3; event times must be integers or floats"):
        fitted.predict([np.zeros(2, dtype=[("t", "U3"), ("x", "i4")])])
    late = [e.copy() for e in E]
    late[0]["t"][0] = 25.0
    with pytest.warns(UserWarning, match="1 events of 1 samples lie at or after the end"):
        fitted.predict(late)
    with pytest.raises(ValueError, match="fitted on 2D"):
        EventPropClassifier(**KW).fit(np.random.RandomState(0).rand(20, 3), np.arange(20) % 2).predict(E)
    with pytest.raises(ValueError, match="4 event streams but y has 3 labels"):
        EventPropClassifier(**KW).fit(E, [0, 1, 0])


def test_partial_fit_and_early_stopping_on_events(spikes):
    X, y = spikes
    E = _events(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf = EventPropClassifier(**KW)
        pf.partial_fit(E[:24], y[:24], classes=[0, 1])
        pf.partial_fit(E[24:], y[24:])
        es = EventPropClassifier(**{**KW, "early_stopping": True, "max_iter": 2}).fit(E, y)
        assert pf.n_iter_ == 2
        pf.set_params(warm_start=True, max_iter=1).fit(E, y)  # continues the weights and the history
    assert pf.n_iter_ == 3 and len(pf.loss_curve_) == 3 and len(es.validation_scores_) == 2
    assert math.isfinite(pf.loss_curve_[-1])


def test_weighted_early_stopped_fit_on_events_equals_binned_input(spikes):
    # event streams go through the shared fit (base.GradientSNNMixin._fit and its input hooks):
    # sample weights and the validation split treat them exactly as the binned array
    X, y = spikes
    w = np.linspace(0.5, 2.0, len(y))
    kw = {**KW, "early_stopping": True, "validation_fraction": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = EventPropClassifier(**kw).fit(_events(X), y, sample_weight=w)
        b = EventPropClassifier(**kw).fit(X, y, sample_weight=w)
    assert a.loss_curve_ == b.loss_curve_ and a.validation_scores_ == b.validation_scores_
    assert a.input_offset_ is None and a.input_scale_ is None
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        EventPropClassifier(**KW).fit(_events(X), y, sample_weight=-w)
