"""SurrogateSNNClassifier / SurrogateSNNRegressor: the sklearn contract and behaviour."""
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_snn import SurrogateSNNClassifier, SurrogateSNNRegressor
from sklearn_snn.datasets import make_randman

FAST = dict(hidden_layer_sizes=(16,), n_steps=4, max_iter=30, random_state=0)


def _expected_failures(est):
    return {
        # Spiking outputs are piecewise constant in the weights: tiny data + the subset-of-steps
        # sample-weight equivalence of sklearn's check is not exact for a minibatch SNN.
        "check_sample_weight_equivalence_on_dense_data": "minibatch SGD on spiking (discontinuous) units "
        "is not exactly equivalent to duplicated samples",
    }


@parametrize_with_checks(
    [SurrogateSNNClassifier(**FAST),
     SurrogateSNNRegressor(**{**FAST, "hidden_layer_sizes": (32,), "max_iter": 60, "learning_rate_init": 5e-3})],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600], X[600:900], y[600:900]


def test_classifier_learns_digits(digits):
    X, y, Xt, yt = digits
    clf = SurrogateSNNClassifier(max_iter=25, random_state=0).fit(X, y)
    assert clf.score(Xt, yt) > 0.85
    assert clf.n_iter_ == 25 and len(clf.loss_curve_) == 25
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] * 0.3


def test_string_labels_and_proba(digits):
    X, y, Xt, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = SurrogateSNNClassifier(max_iter=5, random_state=0).fit(X, names[y])
    assert set(clf.predict(Xt)) <= set(names)
    p = clf.predict_proba(Xt)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert list(clf.classes_) == sorted(names)


def test_3d_input_randman():
    X, y = make_randman(n_samples=300, n_classes=3, n_units=20, n_steps=40, random_state=0)
    clf = SurrogateSNNClassifier(hidden_layer_sizes=(64,), max_iter=80, random_state=0, learning_rate_init=5e-3)
    clf.fit(X[:240], y[:240])
    assert clf.n_features_in_ == 20 and clf.n_steps_in_ == 40 and clf.input_ndim_ == 3
    assert clf.score(X[240:], y[240:]) > 0.9
    with pytest.raises(ValueError, match="fitted on 3D"):
        clf.predict(X[:5, 0, :])
    with pytest.raises(ValueError, match="20 features"):
        clf.predict(X[:5, :, :10])


def test_2d_fit_refuses_3d(digits):
    X, y, _, _ = digits
    clf = SurrogateSNNClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="fitted on 2D"):
        clf.predict(np.zeros((2, 3, 64)))


def test_pandas_feature_names(digits):
    pd = pytest.importorskip("pandas")
    X, y, _, _ = digits
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    clf = SurrogateSNNClassifier(**FAST).fit(df, y)
    assert list(clf.feature_names_in_) == list(df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X[:3])


def test_pipeline_gridsearch_n_jobs(digits):
    X, y, _, _ = digits
    pipe = make_pipeline(StandardScaler(), SurrogateSNNClassifier(**FAST))
    gs = GridSearchCV(pipe, {"surrogatesnnclassifier__n_steps": [2, 4]}, cv=2, n_jobs=2)
    gs.fit(X[:200], y[:200])
    assert gs.best_score_ > 0.5
    assert gs.best_params_["surrogatesnnclassifier__n_steps"] in (2, 4)


def test_cross_val_predict_proba(digits):
    X, y, _, _ = digits
    p = cross_val_predict(SurrogateSNNClassifier(**FAST), X[:200], y[:200], cv=3, method="predict_proba")
    assert p.shape == (200, 10)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert (p.argmax(1) == y[:200]).mean() > 0.5


def test_pickle_roundtrip_and_determinism(digits):
    X, y, Xt, _ = digits
    a = SurrogateSNNClassifier(**FAST).fit(X, y)
    b = SurrogateSNNClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.predict_proba(Xt), c.predict_proba(Xt))


def test_no_global_rng_change(digits):
    X, y, _, _ = digits
    state = torch.random.get_rng_state()
    SurrogateSNNClassifier(**FAST, encoder="rate").fit(X[:100], y[:100]).predict(X[:10])
    assert torch.equal(state, torch.random.get_rng_state())


def test_partial_fit_continues_learning(digits):
    X, y, _, _ = digits
    clf = SurrogateSNNClassifier(hidden_layer_sizes=(32,), random_state=0)
    losses = []
    for _ in range(6):
        clf.partial_fit(X, y, classes=np.arange(10))
        losses.append(clf.loss_curve_[-1])
    assert clf.n_iter_ == 6
    assert losses[-1] < losses[0] * 0.7
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :10], y)
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X[:5], np.array([11] * 5))


def test_partial_fit_needs_classes(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="classes must be passed"):
        SurrogateSNNClassifier(**FAST).partial_fit(X, y)


def test_bad_input_errors(digits):
    X, y, _, _ = digits
    clf = SurrogateSNNClassifier(**FAST)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, y)
    with pytest.raises(ValueError, match="class"):
        clf.fit(X[:10], np.zeros(10))
    with pytest.raises(ValueError, match="4D"):
        clf.fit(np.zeros((4, 2, 2, 2)), np.arange(4) % 2)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SurrogateSNNClassifier().predict(X)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="64 features"):
        clf.predict(X[:, :5])


@pytest.mark.parametrize("kw", [
    dict(neuron="cuba"), dict(neuron="alif"), dict(neuron="if", reset="zero"), dict(recurrent=True),
    dict(recurrent=True, grad_clip=0.5),
    dict(readout="spike_count"), dict(readout="first_spike"), dict(readout="membrane_last"),
    dict(encoder="rate"), dict(encoder="latency", n_steps=12, threshold=0.3), dict(encoder="population"),
    dict(surrogate="arctan"), dict(credit_assignment="tbptt", bptt_window=3, n_steps=8), dict(credit_assignment="eprop"), dict(normalization="bntt"),
    dict(normalization="tdbn"), dict(learn_tau=True, learn_threshold=True),
])
def test_options_learn(digits, kw):
    X, y, Xt, yt = digits
    params = {**FAST, "max_iter": 15, "hidden_layer_sizes": (32,), **kw}
    clf = SurrogateSNNClassifier(**params).fit(X, y)
    assert clf.score(Xt, yt) > 0.5, kw


def test_tbptt_gradient_equals_bptt_when_window_covers_input(digits):
    X, y, _, _ = digits
    a = SurrogateSNNClassifier(**{**FAST, "max_iter": 3, "n_steps": 6}).fit(X[:100], y[:100])
    b = SurrogateSNNClassifier(**{**FAST, "max_iter": 3, "n_steps": 6, "credit_assignment": "tbptt", "bptt_window": 6}).fit(X[:100], y[:100])
    np.testing.assert_allclose(a.predict_proba(X[:20]), b.predict_proba(X[:20]), rtol=1e-4, atol=1e-5)


def test_learned_parameters_stay_valid(digits):
    X, y, _, _ = digits
    clf = SurrogateSNNClassifier(**{**FAST, "neuron": "cuba", "learn_tau": True, "learn_threshold": True,
                                    "learning_rate_init": 0.05}).fit(X, y)
    p = clf.learned_neuron_parameters()[0]
    assert np.all((p["beta"] > 0) & (p["beta"] < 1)) and np.all((p["alpha"] > 0) & (p["alpha"] < 1))
    assert np.all(p["threshold"] > 0)
    assert np.ptp(p["beta"]) > 0 and np.ptp(p["threshold"]) > 0  # they were trained, per neuron


def test_regularisation_lowers_rate(digits):
    X, y, Xt, yt = digits
    base = SurrogateSNNClassifier(**{**FAST, "max_iter": 20}).fit(X, y)
    reg = SurrogateSNNClassifier(**{**FAST, "max_iter": 20, "spike_l2": 0.2}).fit(X, y)
    r0 = base.simulate(Xt)["spikes"][0].mean()
    r1 = reg.simulate(Xt)["spikes"][0].mean()
    assert r1 < 0.75 * r0
    assert reg.score(Xt, yt) > base.score(Xt, yt) - 0.1
    assert reg.reg_curve_[0] > 0


def test_simulate_shapes(digits):
    X, y, _, _ = digits
    clf = SurrogateSNNClassifier(**FAST).fit(X, y)
    sim = clf.simulate(X[:7])
    assert sim["spikes"][0].shape == (7, 4, 16)
    assert sim["membrane"][-1].shape == (7, 4, 10)
    np.testing.assert_allclose(sim["output"], clf.decision_function(X[:7]))
    assert set(np.unique(sim["spikes"][0])) <= {0.0, 1.0}


def test_early_stopping_restores_best(digits):
    X, y, _, _ = digits
    clf = SurrogateSNNClassifier(**{**FAST, "max_iter": 60, "early_stopping": True, "n_iter_no_change": 3}).fit(X, y)
    assert clf.n_iter_ < 60
    assert clf.best_validation_score_ == max(clf.validation_scores_)


@pytest.mark.parametrize("regress", [False, True])
def test_validation_score_of_training_module_equals_score(digits, regress):
    # early stopping scores the module being trained, on inputs scaled and converted once; that
    # path must give what score() gives on the same samples
    X, y, Xv, yv = digits
    if regress:
        y, yv = y + 0.1 * X[:, 10], yv + 0.1 * Xv[:, 10]
    est = (SurrogateSNNRegressor if regress else SurrogateSNNClassifier)(**FAST).fit(X, y)
    logits = est._training_logits(est._to_tensor(est._scale(Xv)))
    assert est.module_.training      # the mode is restored for the next epoch
    assert est._validation_score(logits, yv) == pytest.approx(est.score(Xv, yv), abs=1e-5)
    if not regress:
        assert 0.5 < est._validation_score(logits, yv) < 1.0


def test_epoch_callback_stops(digits):
    X, y, _, _ = digits
    seen = []
    clf = SurrogateSNNClassifier(**FAST).fit(X, y, epoch_callback=lambda est, ep, info: seen.append(ep) or ep >= 3)
    assert seen == [1, 2, 3] and clf.n_iter_ == 3


def test_diverging_training_raises_and_keeps_weights(digits):
    from sklearn_snn.base import DivergedError

    class Faulty(SurrogateSNNClassifier):
        calls = 0

        def _loss(self, logits, yb, wb):
            Faulty.calls += 1
            loss = super()._loss(logits, yb, wb)
            return loss * float("nan") if Faulty.calls > 4 else loss

    X, y, _, _ = digits
    clf = Faulty(**{**FAST, "max_iter": 1}).fit(X, y)  # 3 batches: fine
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    clf.set_params(warm_start=True, max_iter=5)
    with pytest.raises(DivergedError, match="diverged at epoch 2"):
        clf.fit(X, y)
    after = clf.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert clf.predict(X[:3]).shape == (3,)


def test_regressor_learns():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (300, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    reg = SurrogateSNNRegressor(max_iter=60, random_state=0).fit(X[:240], y[:240])
    assert reg.score(X[240:], y[240:]) > 0.7
    Y2 = np.c_[y, -y]
    reg2 = SurrogateSNNRegressor(max_iter=30, random_state=0).fit(X, Y2)
    assert reg2.predict(X[:4]).shape == (4, 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_finite_loss_with_non_finite_gradient_stops_training(bad):
    # the loss is finite, one gradient entry is not: no optimiser step is taken with it, the
    # epoch's starting weights come back, and the error says so
    from sklearn_snn._core.training import (
        DivergedError,
        TrainConfig,
        new_state,
        run_epochs,
    )

    module = torch.nn.Linear(3, 2)
    start = {k: v.clone() for k, v in module.state_dict().items()}
    X, y = torch.randn(8, 3), torch.zeros(8)
    calls = []

    def step(m, xb, yb, wb):
        loss = m(xb).sum()
        loss.backward()
        calls.append(1)
        if len(calls) == 2:
            m.bias.grad[0] = bad
        return float(loss), 0.0

    cfg = TrainConfig(batch_size=4, max_iter=3)
    state = new_state(module, cfg)
    with pytest.raises(DivergedError, match="a gradient is not"):
        run_epochs(module, state, X, y, step, cfg, 3)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in start.items())


def test_public_inference_dtype():
    """``inference_dtype`` (a documented attribute, not a parameter) chooses the dtype of predict:
    float64 on the CPU by default, float32 when set (the search scores its pruning epochs so)."""
    import torch
    from sklearn.datasets import load_iris

    from sklearn_snn import SurrogateSNNClassifier

    X, y = load_iris(return_X_y=True)
    clf = SurrogateSNNClassifier(hidden_layer_sizes=(16,), n_steps=6, max_iter=5, random_state=0).fit(X, y)
    assert clf.inference_dtype is None and "inference_dtype" not in clf.get_params()
    p64 = clf.predict_proba(X)
    clf.inference_dtype = torch.float32
    p32 = clf.predict_proba(X)
    assert np.allclose(p32, p64, atol=1e-4) and not np.array_equal(p32, p64)
    del clf.inference_dtype
    assert np.array_equal(clf.predict_proba(X), p64)
