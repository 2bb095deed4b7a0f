"""STDPTransformer and the STDP core: rule equations, bounds, homeostasis, sklearn contract."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_snn._core import stdp as core
from sklearn_snn.stdp import STDPTransformer, plot_receptive_fields


def _pairing(rule, pre_times, post_times, T=12):
    """STDP of one pre and one post neuron with the given spike times (core.stdp_updates)."""
    x = torch.tensor([1.0 if t in pre_times else 0.0 for t in range(T)], dtype=torch.float64).reshape(T, 1, 1)
    y = torch.tensor([1.0 if t in post_times else 0.0 for t in range(T)], dtype=torch.float64).reshape(T, 1, 1)
    ltp, ltd = core.stdp_updates(rule, x, y)
    return float(ltp), float(ltd)


@pytest.mark.parametrize("d", [1, 3, 7])
def test_pair_rule_amounts(d):
    rule = core.STDPRule(rule="pair", a_plus=0.3, a_minus=0.2, tau_plus=5.0, tau_minus=9.0)
    ltp, ltd = _pairing(rule, {2}, {2 + d})      # pre before post
    assert ltp == pytest.approx(0.3 * math.exp(-d / 5.0), rel=1e-12) and ltd == 0.0
    ltp, ltd = _pairing(rule, {2 + d}, {2})      # post before pre
    assert ltd == pytest.approx(0.2 * math.exp(-d / 9.0), rel=1e-12) and ltp == 0.0
    ltp, ltd = _pairing(rule, {4}, {4})          # simultaneous spikes do not pair
    assert ltp == 0.0 and ltd == 0.0


def test_all_to_all_versus_nearest():
    kw = dict(a_plus=1.0, a_minus=1.0, tau_plus=4.0, tau_minus=4.0)
    all_ltp, _ = _pairing(core.STDPRule(trace="all-to-all", **kw), {0, 1}, {3})
    near_ltp, _ = _pairing(core.STDPRule(trace="nearest", **kw), {0, 1}, {3})
    assert all_ltp == pytest.approx(math.exp(-3 / 4) + math.exp(-2 / 4), rel=1e-12)
    assert near_ltp == pytest.approx(math.exp(-2 / 4), rel=1e-12)


def test_triplet_rule_amounts():
    rule = core.STDPRule(rule="triplet", a_plus=0.1, a_minus=0.2, a3_plus=0.5, a3_minus=0.3,
                         tau_plus=5.0, tau_minus=8.0, tau_x=20.0, tau_y=30.0)
    # post at 0, pre at 3, post at 5: LTD at the pre spike, triplet LTP at the second post spike
    ltp, ltd = _pairing(rule, {3}, {0, 5})
    assert ltd == pytest.approx(math.exp(-3 / 8) * 0.2, rel=1e-12)  # r2 was 0 before the pre spike
    assert ltp == pytest.approx(math.exp(-2 / 5) * (0.1 + 0.5 * math.exp(-5 / 30)), rel=1e-12)
    # pre at 0 and 2, post at 4: the second pre spike's LTD sees o1 = 0 (no post spike yet)
    ltp, ltd = _pairing(rule, {0, 2}, {4})
    assert ltd == 0.0
    assert ltp == pytest.approx(0.1 * (math.exp(-4 / 5) + math.exp(-2 / 5)), rel=1e-12)  # o2 = 0: pair term


def test_multiplicative_update_and_bounds():
    rule = core.STDPRule(weight_dependence="multiplicative", w_max=2.0)
    W = torch.tensor([[0.5, 1.5]])
    new = core.apply_stdp(W, torch.tensor([[0.1, 0.0]]), torch.tensor([[0.0, 0.2]]), torch.tensor([1.0]), rule)
    assert torch.allclose(new, torch.tensor([[0.5 + 1.5 * 0.1, 1.5 - 1.5 * 0.2]]))
    # huge random updates, with and without normalisation: always inside [0, w_max]
    g = torch.Generator().manual_seed(0)
    for wd in ("additive", "multiplicative"):
        rule = core.STDPRule(weight_dependence=wd, w_max=0.7)
        W = torch.rand(5, 8, generator=g) * 0.7
        for norm in (None, 0.3):
            for _ in range(20):
                ltp, ltd = torch.rand(5, 8, generator=g) * 5, torch.rand(5, 8, generator=g) * 5
                W = core.apply_stdp(W, ltp, ltd, torch.ones(5), rule, weight_norm=norm)
                assert float(W.min()) >= 0.0 and float(W.max()) <= 0.7


def test_per_neuron_batch_average():
    # a neuron's update is the mean over the samples in which it fired, independent of batch size
    spec = core.WTASpec(inhibition="soft", inhibition_strength=0.0, homeostasis_rate=0.0)
    rule = core.STDPRule(a_plus=1e-3, a_minus=0.0)
    W = torch.full((2, 3), 0.5)
    x1 = (torch.rand(20, 1, 3, generator=torch.Generator().manual_seed(0)) < 0.8).float()
    W1, _, c1 = core.train_batch(x1, W, torch.zeros(2), spec, rule)
    W3, _, c3 = core.train_batch(x1.repeat(1, 3, 1), W, torch.zeros(2), spec, rule)
    assert c1.sum() > 0
    assert torch.allclose(W1, W3, atol=1e-6) and not torch.equal(W1, W)


def test_hard_wta_one_spike_per_step():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 8, 6, generator=g) < 0.5).float()
    W = torch.rand(5, 6, generator=g)
    spec = core.WTASpec(inhibition="hard")
    counts, _, _ = core.run_wta(x, W, torch.zeros(5), spec)
    assert counts.sum() > 0 and bool((counts.sum(1) <= 30).all())


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def test_homeostasis_keeps_rates_in_band(digits):
    X = digits[0][:400]
    band = (0.01, 0.04)
    kw = dict(n_components=16, n_steps=30, target_rate=band, max_iter=8, random_state=0)
    on = STDPTransformer(homeostasis_rate=0.2, **kw).fit(X)
    off = STDPTransformer(homeostasis_rate=0.0, **kw).fit(X)
    assert np.all((on.firing_rates_ >= band[0]) & (on.firing_rates_ <= band[1]))
    assert np.mean((off.firing_rates_ < band[0]) | (off.firing_rates_ > band[1])) >= 0.5
    assert on.thresholds_.std() > 0  # thresholds adapted per neuron


def test_learns_useful_features_in_pipeline(digits):
    X, y = digits
    X, y = X[:600], y[:600]
    pipe = make_pipeline(MinMaxScaler(), STDPTransformer(n_components=100, n_steps=30, max_iter=2, random_state=0),
                         LogisticRegression(max_iter=1000))
    score = cross_val_score(pipe, X, y, cv=3).mean()
    assert score > 0.85
    # receptive fields are not the random initialisation: each neuron prefers some digit pixels
    st = pipe.fit(X, y)[1]
    assert st.learned_weights_.shape == (100, 64)
    assert float(np.min(st.learned_weights_)) >= 0.0 and float(np.max(st.learned_weights_)) <= st.w_max
    np.testing.assert_allclose(st.learned_weights_.sum(1), 0.1 * 64, rtol=1e-4)


@pytest.mark.parametrize("rule,trace,wd,inh", [("pair", "nearest", "additive", "soft"),
                                                 ("triplet", "all-to-all", "multiplicative", "hard")])
def test_variants_fit_and_determinism(digits, rule, trace, wd, inh):
    X = digits[0][:200]
    kw = dict(n_components=12, n_steps=20, max_iter=2, rule=rule, trace=trace, weight_dependence=wd,
              inhibition=inh, random_state=3)
    a, b = STDPTransformer(**kw).fit(X), STDPTransformer(**kw).fit(X)
    np.testing.assert_array_equal(a.learned_weights_, b.learned_weights_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert a.transform(X).sum() > 0
    c = STDPTransformer(**{**kw, "random_state": 4}).fit(X)
    assert not np.array_equal(a.learned_weights_, c.learned_weights_)


def test_partial_fit_continues_and_pickles(digits):
    X = digits[0][:200]
    st = STDPTransformer(n_components=10, n_steps=15, random_state=0)
    st.partial_fit(X)
    w1 = st.learned_weights_.copy()
    st.partial_fit(X)
    assert st.n_iter_ == 2 and not np.array_equal(w1, st.learned_weights_)
    clone = pickle.loads(pickle.dumps(st))
    np.testing.assert_array_equal(clone.transform(X), st.transform(X))
    clone.partial_fit(X)  # the generator is rebuilt after unpickling
    assert clone.n_iter_ == 3
    with pytest.raises(ValueError, match="features"):
        st.partial_fit(X[:, :10])


def test_outputs_names_set_output_and_rates(digits):
    pd = pytest.importorskip("pandas")
    X = digits[0][:100]
    st = STDPTransformer(n_components=5, n_steps=10, max_iter=1, random_state=0, output="rates").fit(X)
    out = st.transform(X)
    assert out.shape == (100, 5) and out.dtype == np.float64 and out.max() <= 1.0
    assert list(st.get_feature_names_out()) == [f"stdptransformer{i}" for i in range(5)]
    df = st.set_output(transform="pandas").transform(X)
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(st.get_feature_names_out())
    assert st.set_output(transform="default").transform(X.astype(np.float32)).dtype == np.float32


def test_spike_train_input_3d():
    g = np.random.RandomState(0)
    X = (g.rand(30, 25, 6) < 0.3).astype(np.float32)
    st = STDPTransformer(n_components=4, max_iter=2, random_state=0).fit(X)
    assert st.transform(X).shape == (30, 4) and st.n_steps_in_ == 25
    with pytest.raises(ValueError, match="3D"):
        st.transform(X[:, 0])


def test_plot_receptive_fields(digits):
    import matplotlib

    matplotlib.use("Agg")
    st = STDPTransformer(n_components=6, n_steps=10, max_iter=1, random_state=0).fit(digits[0][:100])
    ax = plot_receptive_fields(st, (8, 8), n_cols=3)
    assert ax.images[0].get_array().shape == (2 * 9 - 1, 3 * 9 - 1)
    with pytest.raises(ValueError, match="pixels"):
        plot_receptive_fields(st, (7, 7))


def test_bad_parameters(digits):
    X = digits[0][:20]
    with pytest.raises(InvalidParameterError):
        STDPTransformer(rule="quadruplet").fit(X)
    with pytest.raises(ValueError, match="target_rate"):
        STDPTransformer(target_rate=(0.5, 0.1), n_components=3, n_steps=5).fit(X)


FAST = dict(n_components=6, n_steps=10, max_iter=2, batch_size=16, random_state=0)


@parametrize_with_checks([STDPTransformer(**FAST)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)
