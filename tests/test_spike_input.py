"""Issue #19, item 1 ("input as it comes"): 3D spike input keeps its dtype (bool, uint8, int8,
integer counts) and memory (no copy, memmaps stay on disk) through validation, and fit, predict
and the early-stopping split convert one batch at a time: the same fitted model as from the same
spikes as float32, without a float copy of the whole set."""

import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn._core.training import (
    ArrayBatches,
    TrainConfig,
    gradient_epochs,
    new_state,
    run_method,
)
from sklearn_snn.validation import validate_snn_input


def _spikes(n=60, steps=20, features=30, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, steps, features)) < density, rng.integers(0, 3, n)


def _fit(X, y, **kw):
    params = {"hidden_layer_sizes": (16,), "max_iter": 2, "random_state": 0, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning after 2 epochs
        return SurrogateSNNClassifier(**params).fit(X, y)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.int64, np.float64])
def test_compact_dtypes_fit_the_same_model_as_float32(dtype):
    X, y = _spikes()
    ref = _fit(X.astype(np.float32), y)
    clf = _fit(X.astype(dtype), y)
    assert clf.loss_curve_ == ref.loss_curve_
    for name, p in ref.module_.state_dict().items():
        assert torch.equal(clf.module_.state_dict()[name], p), name
    np.testing.assert_array_equal(clf.predict_proba(X.astype(dtype)), ref.predict_proba(X.astype(np.float32)))


def test_early_stopping_split_with_bool_input_matches_float32():
    X, y = _spikes(n=80)
    ref = _fit(X.astype(np.float32), y, early_stopping=True, max_iter=3, batch_size=16)
    clf = _fit(X, y, early_stopping=True, max_iter=3, batch_size=16)
    assert clf.validation_scores_ == ref.validation_scores_
    assert clf.loss_curve_ == ref.loss_curve_
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X.astype(np.float32)))


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.int32, np.float32, np.float64])
def test_validation_keeps_dtype_and_memory(dtype):
    X, y = _spikes()
    X = X.astype(dtype)
    Xv, _ = validate_snn_input(SurrogateSNNClassifier(), X, y, reset=True)
    assert Xv.dtype == X.dtype
    assert np.shares_memory(Xv, X)


def test_memmap_is_not_copied_and_trains_like_the_array(tmp_path):
    X, y = _spikes()
    np.save(tmp_path / "spikes.npy", X)
    M = np.load(tmp_path / "spikes.npy", mmap_mode="r")
    Xv, _ = validate_snn_input(SurrogateSNNClassifier(), M, y, reset=True)
    assert Xv.dtype == np.bool_ and np.shares_memory(Xv, M) and not Xv.flags.writeable
    ref = _fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)   # e.g. torch's "non-writable array"
        clf = _fit(M, y)
        proba = clf.predict_proba(M)
    np.testing.assert_array_equal(proba, ref.predict_proba(X))
    assert clf.loss_curve_ == ref.loss_curve_


@pytest.mark.parametrize("X", [
    np.zeros((4, 3, 2), dtype=np.complex64),
    np.full((4, 3, 2), "a"),
    np.zeros((4, 3, 2), dtype="datetime64[s]"),
], ids=["complex", "str", "datetime"])
def test_unsupported_3d_dtype_is_refused(X):
    with pytest.raises(ValueError, match=r"3D X .* as bool or integer spikes .* got dtype"):
        SurrogateSNNClassifier(max_iter=1).fit(X, np.arange(4) % 2)


def test_float16_and_nan_float_input():
    X, y = _spikes()
    Xv, _ = validate_snn_input(SurrogateSNNClassifier(), X.astype(np.float16), y, reset=True)
    assert Xv.dtype == np.float32
    Xn = X.astype(np.float32)
    Xn[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SurrogateSNNClassifier(max_iter=1).fit(Xn, y)


@pytest.mark.parametrize("rows", [None, np.arange(3, 57)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_gradient_epochs_batch_source_equals_tensor_path(rows, shuffle):
    """The whole-tensor path (one gather per epoch) and the batch-source path (a gather per
    minibatch from the numpy array) give the same minibatches: bit-identical training."""
    rng = np.random.default_rng(3)
    X = (rng.random((60, 5, 7)) < 0.3).astype(np.float64)
    y = torch.as_tensor(rng.normal(size=60), dtype=torch.float32)
    w = torch.as_tensor(rng.random(60), dtype=torch.float32)
    sel = np.arange(60) if rows is None else rows

    def train(source):
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(35, 8), torch.nn.Tanh(),
                                     torch.nn.Linear(8, 1))
        cfg = TrainConfig(max_iter=3, batch_size=16, shuffle=shuffle)
        state = new_state(module, cfg)
        seen = []

        def step(m, xb, yb, wb):
            seen.append(xb.clone())
            loss = ((m(xb).squeeze(1) - yb) ** 2 * wb).mean()
            loss.backward()
            return float(loss.detach()), 0.0

        method = gradient_epochs(module, state, source, y[sel], step, cfg, 3, generator=torch.Generator().manual_seed(7),
                                 sample_weight=w[sel])
        run_method(method, 3, state)
        return module, state, seen

    m1, s1, seen1 = train(torch.tensor(X[sel], dtype=torch.float32))
    m2, s2, seen2 = train(ArrayBatches(X, rows=rows))
    assert s1.loss_curve == s2.loss_curve
    assert len(seen1) == len(seen2) and all(torch.equal(a, b) for a, b in zip(seen1, seen2))
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


def test_array_batches_take():
    X = np.arange(24, dtype=np.uint16).reshape(6, 2, 2)
    src = ArrayBatches(X, rows=np.array([5, 0, 3, 1]))
    assert len(src) == 4 and src.shape == (4, 2, 2)
    out = src.take(np.array([2, 0, 3]))
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), X[[3, 5, 1]].astype(np.float32))


def _shd_like(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = np.empty((n, 100, 700), dtype=np.bool_)
    for i in range(0, n, 50):
        X[i:i + 50] = rng.random((min(50, n - i), 100, 700), dtype=np.float32) < 0.02
    return X, rng.integers(0, 5, n)


def test_fit_and_predict_on_bool_spikes_make_no_whole_set_numpy_copy():
    """numpy allocations (traced by tracemalloc) while fitting and predicting 400 x 100 x 700 bool
    spikes (2% active, 28 MB): before, a float64 copy by validation and another of the training
    set (16x the input); now one batch at a time (measured 2.5x: a batch's copies)."""
    X, y = _shd_like()
    tracemalloc.start()
    try:
        clf = _fit(X, y, hidden_layer_sizes=(256,), max_iter=1)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        clf.inference_batch_size = 50
        clf.predict_proba(X)
        _, predict_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fit_peak < 6 * X.nbytes, fit_peak / X.nbytes
    assert predict_peak < 4 * X.nbytes, predict_peak / X.nbytes


_RSS_CHILD = textwrap.dedent("""
    import sys, warnings
    sys.path.insert(0, sys.argv[1])
    from test_spike_input import _shd_like
    from sklearn_snn import SurrogateSNNClassifier
    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    X, y = _shd_like()
    warnings.simplefilter("ignore")
    clf = SurrogateSNNClassifier(hidden_layer_sizes=(256,), max_iter=1, random_state=0)
    clf.fit(X[:20], y[:20])                            # kernels compiled, allocator warm
    open("/proc/self/clear_refs", "w").write("5")      # peak RSS := current RSS
    before = rss("VmRSS")
    clf.fit(X, y)
    print((rss("VmHWM") - before) / (4 * X.nbytes))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_peak_rss_of_fitting_bool_spikes_is_bounded():
    """Peak RSS increase of fitting 400 x 100 x 700 bool spikes, in units of the float32 size of
    the input (112 MB): 5.0 before (float64 copies of the set plus a float32 tensor of it and its
    per-epoch gather), 1.6 now (one float32 batch and the network's buffers)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("no /proc/self/clear_refs to reset the peak RSS")
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(Path(__file__).parent)], capture_output=True,
                         text=True, check=True, timeout=600)
    ratio = float(out.stdout.strip().splitlines()[-1])
    assert ratio < 3.0, ratio


def test_cross_validation_with_joblib_memmapping_matches_one_process():
    """cross_val_score(n_jobs=2) hands each worker a read-only memmap of a large bool array
    (joblib's automatic memmapping above 1 MB); validation keeps it as it is (no per-worker float
    copy) and the scores equal those of one process."""
    from sklearn.model_selection import cross_val_score

    X, y = _spikes(n=160, steps=40, features=200, density=0.05, seed=3)
    assert X.nbytes > 1_000_000            # above joblib's max_nbytes: memmapped in the workers
    est = SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = cross_val_score(est, X, y, cv=2, n_jobs=1)
        two = cross_val_score(est, X, y, cv=2, n_jobs=2)
    np.testing.assert_array_equal(one, two)
