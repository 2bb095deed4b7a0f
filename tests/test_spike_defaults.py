"""Defaults that learn spike timing (#19 item 5): ``neuron``, ``tau_mem``, ``tau_syn`` and
``readout`` default to 'auto', resolved at fit for the input layout into ``neuron_``,
``tau_mem_``, ``tau_syn_`` and ``readout_``: the LIF network of old for 2D input, a current-based
('cuba') network with time constants of a fifth of the sequence (at least 5 steps) and a mean
readout for 3D spike trains.

(The scikit-learn estimator checks of the surrogate estimators run in tests/test_surrogate.py.)
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_snn import SurrogateSNNClassifier, SurrogateSNNRegressor, load, save
from sklearn_snn.datasets import make_randman

FAST = dict(hidden_layer_sizes=(16,), max_iter=2, random_state=0)
OLD = dict(neuron="lif", tau_mem=10.0, tau_syn=5.0, readout="membrane_max")
AUTO = ("neuron", "tau_mem", "tau_syn", "readout")


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.fixture(scope="module")
def spikes():
    return make_randman(n_samples=60, n_classes=3, n_units=8, n_steps=50, random_state=0)


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _resolved(est):
    return (est.neuron_, est.tau_mem_, est.tau_syn_, est.readout_)


def test_auto_resolves_by_input_layout(spikes, tabular):
    clf3 = _quiet(lambda: SurrogateSNNClassifier(**FAST).fit(*spikes))
    assert _resolved(clf3) == ("cuba", 10.0, 10.0, "membrane_mean")
    layer = clf3.module_.layers[0]
    assert layer.spec.model == "cuba"
    assert layer.spec.beta == pytest.approx(np.exp(-1 / 10)) and layer.spec.alpha == pytest.approx(np.exp(-1 / 10))
    assert clf3.module_.readout == "membrane_mean"
    clf2 = _quiet(lambda: SurrogateSNNClassifier(**FAST).fit(*tabular))
    assert _resolved(clf2) == ("lif", 10.0, 5.0, "membrane_max")
    assert clf2.module_.layers[0].spec.model == "lif" and clf2.module_.readout == "membrane_max"
    # the constructor parameters are never touched (sklearn's check_dont_overwrite_parameters)
    for clf in (clf3, clf2):
        assert all(clf.get_params()[k] == "auto" for k in AUTO)


@pytest.mark.parametrize("n_steps, tau", [(10, 5.0), (100, 20.0), (300, 60.0)])
def test_3d_time_constants_follow_the_sequence_length(n_steps, tau):
    X = np.zeros((6, n_steps, 3), dtype=np.uint8)
    X[np.arange(6), np.arange(6) % n_steps, np.arange(6) % 3] = 1
    clf = _quiet(lambda: SurrogateSNNClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
                 .fit(X, np.arange(6) % 2))
    assert (clf.tau_mem_, clf.tau_syn_) == (tau, tau)
    assert clf.module_.layers[0].spec.alpha == pytest.approx(np.exp(-1 / tau))


def test_regressor_resolves_the_same_way(spikes, tabular):
    X, y = spikes
    reg3 = _quiet(lambda: SurrogateSNNRegressor(**FAST).fit(X, y.astype(float)))
    assert _resolved(reg3) == ("cuba", 10.0, 10.0, "membrane_mean")
    reg2 = _quiet(lambda: SurrogateSNNRegressor(**FAST).fit(tabular[0], tabular[0][:, 0]))
    assert _resolved(reg2) == ("lif", 10.0, 5.0, "membrane_mean")


def test_explicit_values_are_used_as_given(spikes):
    clf = _quiet(lambda: SurrogateSNNClassifier(neuron="alif", tau_mem=15.0, tau_syn=3.0,
                                                readout="membrane_last", **FAST).fit(*spikes))
    assert _resolved(clf) == ("alif", 15.0, 3.0, "membrane_last")
    assert clf.module_.layers[0].spec.model == "alif"
    assert clf.module_.layers[0].spec.beta == pytest.approx(np.exp(-1 / 15))


def test_2d_defaults_are_the_old_lif_network(tabular):
    """'auto' on 2D input is exactly the previous default network (same predictions)."""
    a = _quiet(lambda: SurrogateSNNClassifier(**FAST).fit(*tabular))
    b = _quiet(lambda: SurrogateSNNClassifier(**OLD, **FAST).fit(*tabular))
    np.testing.assert_array_equal(a.predict_proba(tabular[0]), b.predict_proba(tabular[0]))


def test_clone_and_get_params_round_trip(spikes):
    clf = _quiet(lambda: SurrogateSNNClassifier(**FAST).fit(*spikes))
    c = clone(clf)
    assert c.get_params() == clf.get_params()
    assert not hasattr(c, "neuron_")
    # a clone refitted on 2D data resolves again, for its own input
    X2 = np.random.RandomState(0).normal(size=(30, 4))
    c = _quiet(lambda: c.fit(X2, np.arange(30) % 2))
    assert c.neuron_ == "lif" and c.get_params()["neuron"] == "auto"
    c.set_params(neuron="cuba")
    assert c.get_params()["neuron"] == "cuba" and c.neuron_ == "lif"  # until the next fit


@pytest.mark.parametrize("param, value", [("neuron", "fast"), ("tau_mem", "long"), ("tau_syn", -1.0),
                                          ("readout", "membrane_median")])
def test_invalid_values_are_refused(spikes, param, value):
    with pytest.raises(InvalidParameterError, match=param):
        SurrogateSNNClassifier(**{**FAST, param: value}).fit(*spikes)


def test_persistence_keeps_the_resolved_network(spikes, tmp_path):
    X, y = spikes
    clf = _quiet(lambda: SurrogateSNNClassifier(**FAST).fit(X, y))
    path = tmp_path / "clf.skops"
    save(clf, path)
    back = load(path)
    assert _resolved(back) == ("cuba", 10.0, 10.0, "membrane_mean")
    assert back.get_params()["neuron"] == "auto"
    assert back.module_.layers[0].spec.model == "cuba"
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-12)


def test_defaults_learn_spike_timing_where_the_lif_defaults_do_not():
    """A small random-manifold task: the defaults reach 0.9 held out; the old LIF defaults,
    trained the same way in the same run, stay well below."""
    X, y = make_randman(n_samples=400, n_classes=5, n_units=30, n_steps=50, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    kw = dict(hidden_layer_sizes=(64,), max_iter=30, batch_size=50, random_state=0)
    new = _quiet(lambda: SurrogateSNNClassifier(**kw).fit(Xtr, ytr)).score(Xte, yte)
    old = _quiet(lambda: SurrogateSNNClassifier(**OLD, **kw).fit(Xtr, ytr)).score(Xte, yte)
    assert new >= 0.9, new
    assert old <= new - 0.15, (old, new)
