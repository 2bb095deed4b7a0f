"""EventBinner (sklearn_snn.preprocessing): event streams -> (n_samples, n_steps, n_channels) uint8 counts.

The binner is not a spiking network, so ``sklearn_snn.utils.all_estimators`` leaves it out and it is
tested here on its own.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman, make_randman_events
from sklearn_snn.preprocessing import EventBinner

EV = np.dtype([("t", np.float64), ("channel", np.int64)])
EVP = np.dtype([("t", np.float64), ("x", np.int64), ("p", np.int8)])


def _ev(rows, dtype=EV):
    return np.array(rows, dtype=dtype)


@pytest.fixture
def two_samples():
    # sample 0 lasts until t=0.9, sample 1 until t=0.25; unsorted times in sample 0 on purpose
    X = [_ev([(0.9, 1), (0.0, 0), (0.05, 0), (0.45, 2), (0.5, 2)]),
         _ev([(0.25, 1), (0.1, 0)])]
    expected = np.zeros((2, 4, 3), dtype=np.uint8)
    expected[0, 0, 0] = 2   # 0.0 and 0.05 in [0, 0.25)
    expected[0, 1, 2] = 1   # 0.45 in [0.25, 0.5)
    expected[0, 2, 2] = 1   # 0.5 in [0.5, 0.75)
    expected[0, 3, 1] = 1   # 0.9 in [0.75, 1.0)
    expected[1, 0, 0] = 1   # 0.1
    expected[1, 1, 1] = 1   # 0.25 opens step 1
    return X, expected


def test_exact_counts_on_hand_built_example(two_samples):
    X, expected = two_samples
    binner = EventBinner(bin_width=0.25).fit(X)
    assert (binner.n_steps_, binner.bin_width_, binner.duration_) == (4, 0.25, 1.0)
    assert (binner.n_channels_in_, binner.n_channels_out_) == (3, 3)
    out = binner.transform(X)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    # the same events as plain (time, channel) arrays, and as a 1-D object array, give the same counts
    plain = [np.column_stack([s["t"], s["channel"]]) for s in X]
    np.testing.assert_array_equal(binner.transform(plain), expected)
    obj = np.empty(2, dtype=object)
    obj[:] = X
    np.testing.assert_array_equal(binner.transform(obj), expected)
    # 'x' as the channel field name works too
    xs = [np.array([(t, c, 1) for t, c in s], dtype=EVP) for s in X]
    np.testing.assert_array_equal(binner.transform(xs), expected)


def test_one_fixed_grid_for_samples_of_different_lengths(two_samples):
    X, _ = two_samples
    out = EventBinner(n_steps=4, duration=1.0).fit_transform(X)
    # the short sample is padded with empty steps, not stretched over the grid
    assert out.shape == (2, 4, 3)
    assert out[1, 2:].sum() == 0 and out[1, :2].sum() == 2
    # transforming one short sample alone uses the fitted grid as well
    binner = EventBinner(n_steps=4).fit(X)
    np.testing.assert_array_equal(binner.transform(X[1:]), binner.transform(X)[1:])


def test_n_steps_and_bin_width_are_equivalent():
    rng = np.random.default_rng(0)
    X = [_ev(list(zip(rng.uniform(0, 2.0, 30), rng.integers(0, 5, 30)))) for _ in range(4)]
    a = EventBinner(n_steps=8, duration=2.0).fit(X)
    b = EventBinner(bin_width=0.25, duration=2.0).fit(X)
    assert (a.n_steps_, a.bin_width_) == (b.n_steps_, b.bin_width_) == (8, 0.25)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    # learned duration on integer time stamps 0..T-1: bin_width=1 and n_steps=T agree
    Xi = [np.array([[0, 0], [3, 1], [9, 2]]), np.array([[5, 0], [5, 0]])]
    c = EventBinner(bin_width=1).fit(Xi)
    d = EventBinner(n_steps=10).fit(Xi)
    assert c.n_steps_ == d.n_steps_ == 10 and c.duration_ == d.duration_ == 10.0
    np.testing.assert_array_equal(c.transform(Xi), d.transform(Xi))
    assert c.transform(Xi)[1, 5, 0] == 2
    # n_steps=1 counts every training event
    e = EventBinner(n_steps=1).fit(Xi)
    np.testing.assert_array_equal(e.transform(Xi)[:, 0], [[1, 1, 1], [2, 0, 0]])


def test_polarity_split():
    X = [_ev([(0.1, 0, 1), (0.2, 0, 0), (0.3, 1, 1), (0.6, 1, -1)], dtype=EVP)]
    merged = EventBinner(bin_width=0.5, duration=1.0).fit_transform(X)
    np.testing.assert_array_equal(merged[0], [[1 + 1, 1], [0, 1]])
    binner = EventBinner(bin_width=0.5, duration=1.0, polarity="split").fit(X)
    assert binner.n_channels_out_ == 4
    # OFF block [0, 2), ON block [2, 4)
    np.testing.assert_array_equal(binner.transform(X)[0], [[1, 0, 1, 1], [0, 1, 0, 0]])
    # plain (time, channel, polarity) arrays
    plain = [np.array([[0.1, 0, 1], [0.2, 0, 0], [0.3, 1, 1], [0.6, 1, -1]])]
    np.testing.assert_array_equal(binner.transform(plain), binner.transform(X))
    with pytest.raises(ValueError, match=r"sample 0 has no polarity field 'p'"):
        EventBinner(bin_width=0.5, polarity="split").fit([_ev([(0.1, 0)])])
    with pytest.raises(ValueError, match=r"sample 0 has no polarity \(column 2, field 'p'\)"):
        EventBinner(bin_width=0.5, polarity="split").fit([np.array([[0.1, 0]])])


def test_channel_pooling_sums_adjacent_channels():
    rng = np.random.default_rng(1)
    X = [np.column_stack([rng.uniform(0, 1, 200), rng.integers(0, 11, 200)]) for _ in range(3)]
    full = EventBinner(bin_width=0.1, duration=1.0, n_channels=11).fit_transform(X).astype(int)
    pooled = EventBinner(bin_width=0.1, duration=1.0, n_channels=11, channel_pool=5).fit(X)
    assert pooled.n_channels_out_ == 3  # 5 + 5 + the remaining 1
    out = pooled.transform(X).astype(int)
    np.testing.assert_array_equal(out[..., 0], full[..., 0:5].sum(-1))
    np.testing.assert_array_equal(out[..., 1], full[..., 5:10].sum(-1))
    np.testing.assert_array_equal(out[..., 2], full[..., 10])
    assert out.sum() == 600
    # pooling then split: 700 channels with 5 -> 140, doubled
    b = EventBinner(bin_width=1.0, n_channels=700, channel_pool=5, polarity="split").fit([np.array([[0.0, 699, 1]])])
    assert b.n_channels_out_ == 280
    assert b.transform([np.array([[0.0, 699, 1]])])[0, 0].nonzero()[0].tolist() == [279]


def test_counts_saturate_at_255():
    X = [np.column_stack([np.zeros(300), np.zeros(300)])]
    assert EventBinner(bin_width=1.0).fit_transform(X)[0, 0, 0] == 255


def test_events_past_the_grid_are_dropped_with_one_warning(two_samples):
    X, expected = two_samples
    binner = EventBinner(bin_width=0.25).fit(X)  # grid [0, 1)
    late = [_ev([(1.0, 0), (2.5, 1), (0.3, 2)]), _ev([(0.1, 0)]), _ev([(7.0, 2)])]
    with pytest.warns(UserWarning, match=r"dropped 3 event\(s\) in 2 of 3 sample\(s\)") as rec:
        out = binner.transform(late)
    assert len([w for w in rec if issubclass(w.category, UserWarning)]) == 1
    assert out.sum() == 2 and out[0, 1, 2] == 1 and out[1, 0, 0] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(binner.transform(X), expected)  # nothing dropped: no warning


def test_empty_samples_are_zeros():
    X = [_ev([(0.5, 1)]), _ev([]), np.zeros((0, 2)), np.array([])]
    out = EventBinner(bin_width=0.5).fit_transform(X)
    assert out.shape == (4, 2, 2)
    assert out[1:].sum() == 0 and out[0, 1, 1] == 1


@pytest.mark.parametrize("X, match", [
    ([_ev([(0.1, 0)]), _ev([(-0.5, 1)])], r"sample 1, field 't': time -0.5 lies before t_start=0"),
    ([_ev([(0.1, 0)]), _ev([(np.nan, 1)])], r"sample 1, field 't': time nan is not finite"),
    ([_ev([(0.1, 0), (np.inf, 0)])], r"sample 0, field 't': time inf is not finite"),
    ([_ev([(0.1, 0)]), _ev([(0.2, -1)])], r"sample 1, field 'channel': channel -1 is negative"),
    ([np.array([[0.1, 0.0]]), np.array([[0.2, 1.5]])], r"sample 1, field 'channel \(column 1\)': channel 1.5 is not an"),
    ([np.array([[0.1, 0.0]]), np.array([[0.2, np.nan]])], r"sample 1, field 'channel \(column 1\)': channel nan"),
    ([np.array([(0.1, 0)], dtype=[("time", float), ("channel", int)])], r"sample 0 has no time field 't'"),
    ([np.array([(0.1, 0)], dtype=[("t", float), ("ch", int)])], r"sample 0 needs exactly one channel field"),
    ([np.array([(0.1, 0, 0)], dtype=[("t", float), ("x", int), ("channel", int)])], r"exactly one channel field"),
    ([np.array([(0.1, 0, 0)], dtype=[("t", float), ("x", int), ("y", int)])], r"sample 0 has fields 'x' and 'y'"),
    ([_ev([(0.1, 0)]), np.ones((3, 4))], r"sample 1 has shape \(3, 4\)"),
    ([np.array([["a", "b"]])], r"sample 0, field 't \(column 0\)' has dtype <U1"),
    ([], r"empty list of samples"),
    (np.ones((3, 2)), r"one event array per sample; got an ndarray of shape \(3, 2\)"),
    (_ev([(0.1, 0)]), r"Wrap a single sample in a list"),
    ("events", r"one event array per sample; got str"),
])
def test_bad_events_raise_naming_sample_and_field(X, match):
    with pytest.raises(ValueError, match=match):
        EventBinner(bin_width=0.1).fit(X)


def test_channel_out_of_range():
    binner = EventBinner(bin_width=0.1).fit([_ev([(0.1, 0), (0.2, 3)])])
    assert binner.n_channels_in_ == 4
    with pytest.raises(ValueError, match=r"sample 1, field 'channel': channel 4 is out of range for n_channels=4 "
                                         r"\(learned in fit"):
        binner.transform([_ev([(0.1, 0)]), _ev([(0.1, 4)])])
    with pytest.raises(ValueError, match=r"sample 0, field 'channel': channel 5 is out of range for n_channels=2"):
        EventBinner(bin_width=0.1, n_channels=2).fit([_ev([(0.1, 5)])])


def test_t_start_shifts_the_grid():
    X = [np.array([[100.0, 0], [100.4, 1], [101.2, 1]])]
    binner = EventBinner(bin_width=0.5, t_start=100.0).fit(X)
    assert binner.n_steps_ == 3
    np.testing.assert_array_equal(binner.transform(X)[0], [[1, 1], [0, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"sample 0, field 't \(column 0\)': time 99.9 lies before t_start=100"):
        binner.transform([np.array([[99.9, 0]])])


def test_parameter_validation():
    X = [_ev([(0.1, 0)])]
    with pytest.raises(ValueError, match="exactly one of bin_width and n_steps"):
        EventBinner().fit(X)
    with pytest.raises(ValueError, match="exactly one of bin_width and n_steps"):
        EventBinner(bin_width=0.1, n_steps=3).fit(X)
    for params in (dict(bin_width=0.0), dict(n_steps=0), dict(bin_width=1, duration=-1.0),
                   dict(bin_width=1, polarity="both"), dict(bin_width=1, channel_pool=0), dict(bin_width=1, n_channels=0)):
        with pytest.raises(InvalidParameterError):
            EventBinner(**params).fit(X)
    for bad in (np.nan, np.inf):
        with pytest.raises(InvalidParameterError, match="'t_start' parameter"):
            EventBinner(bin_width=1, t_start=bad).fit(X)
    with pytest.raises(ValueError, match="cannot learn n_channels"):
        EventBinner(bin_width=1, duration=1.0).fit([_ev([])])
    with pytest.raises(ValueError, match="cannot learn duration"):
        EventBinner(n_steps=3).fit([_ev([(0.0, 0)])])
    # given duration and n_channels: no events needed
    assert EventBinner(n_steps=3, duration=1.0, n_channels=2).fit_transform([_ev([])]).shape == (1, 3, 2)


def test_clone_get_set_params_round_trip(two_samples):
    X, _ = two_samples
    binner = EventBinner(bin_width=0.25, duration=1.0, n_channels=3, polarity="merge", channel_pool=2, t_start=0.0)
    params = binner.get_params()
    assert params == dict(bin_width=0.25, n_steps=None, duration=1.0, n_channels=3, polarity="merge",
                          channel_pool=2, t_start=0.0)
    twin = clone(binner)
    assert twin.get_params() == params and not hasattr(twin, "n_steps_")
    assert twin.set_params(bin_width=0.5) is twin and twin.bin_width == 0.5
    np.testing.assert_array_equal(clone(binner.fit(X)).fit_transform(X), binner.transform(X))
    assert "EventBinner(" in repr(binner)


def test_randman_events_match_dense_randman():
    kw = dict(n_samples=12, n_classes=3, n_units=7, n_steps=20, random_state=3)
    events, y = make_randman_events(duration=2.0, **kw)
    X, y_dense = make_randman(**kw)
    np.testing.assert_array_equal(y, y_dense)
    assert len(events) == 12 and all(e.dtype.names == ("t", "channel") and e.size == 7 for e in events)
    assert all(np.all(np.diff(e["t"]) >= 0) for e in events)
    out = EventBinner(bin_width=0.1, duration=2.0).fit_transform(events)
    np.testing.assert_array_equal(out, X.astype(np.uint8))
    out = EventBinner(n_steps=20, duration=2.0).fit_transform(events)
    np.testing.assert_array_equal(out, X.astype(np.uint8))
    # seeded
    again, _ = make_randman_events(duration=2.0, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(events, again))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_grid_search_over_bin_width():
    events, y = make_randman_events(n_samples=24, n_classes=2, n_units=6, n_steps=10, random_state=0)
    pipe = Pipeline([("bin", EventBinner(bin_width=0.1, duration=1.0)),
                     ("clf", SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0))])
    for X in (events, np.array(events + [None], dtype=object)[:-1]):  # a list and a 1-D object array
        search = GridSearchCV(pipe, {"bin__bin_width": [0.1, 0.25]}, cv=2, error_score="raise").fit(X, y)
        assert set(search.cv_results_["param_bin__bin_width"]) == {0.1, 0.25}
        assert search.best_estimator_.named_steps["bin"].n_steps_ in (10, 4)
        assert search.predict(X).shape == (24,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = clone(pipe).set_params(bin__bin_width=0.25).fit(events, y)
    assert fitted.named_steps["clf"].n_features_in_ == 6
    assert fitted.named_steps["bin"].n_steps_ == 4


def test_no_feature_names_and_no_set_output():
    binner = EventBinner(bin_width=0.5)
    assert not hasattr(binner, "get_feature_names_out")
    assert not hasattr(binner, "set_output")
    tags = binner.__sklearn_tags__()
    assert tags.input_tags.two_d_array is False and tags.requires_fit
