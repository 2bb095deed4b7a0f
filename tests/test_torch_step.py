"""The pure-torch training step's input path (issue 20, item 5): minibatches of sequences come
back time-major from ``ArrayBatches.take`` (a reused buffer on CPU), so that spike input reaches the
sparse torch projection without a copy."""

import warnings

import numpy as np
import pytest
import torch

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn._core import buffers, projections
from sklearn_snn._core.training import ArrayBatches


@pytest.fixture(autouse=True)
def _empty_pool():
    yield
    buffers.release()        # nothing pooled here outlives its test


def _spikes(n=12, t=5, f=7, seed=0, dtype=np.bool_):
    rng = np.random.default_rng(seed)
    return (rng.random((n, t, f)) < 0.3).astype(dtype)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.float32, np.float64, np.uint16])
@pytest.mark.parametrize("rows", [None, np.array([9, 2, 4, 11, 0, 7])])
def test_take_is_exact_and_time_major(dtype, rows):
    X = _spikes(dtype=dtype) * (3 if dtype != np.bool_ else 1)
    src = ArrayBatches(X, rows=rows)
    idx = np.array([5, 0, 3, 1]) if rows is not None else np.array([10, 2, 7, 3, 11])
    out = src.take(idx)
    sel = X if rows is None else X[rows]
    assert out.dtype == torch.float32 and tuple(out.shape) == (len(idx), 5, 7)
    np.testing.assert_array_equal(out.numpy(), sel[idx].astype(np.float32))
    # the network reads out.transpose(0, 1): contiguous, no copy before the projection
    assert out.transpose(0, 1).is_contiguous()


def test_take_from_memmap_is_exact(tmp_path):
    X = _spikes(dtype=np.uint8)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=X.shape)
    mm[:] = X
    mm.flush()
    out = ArrayBatches(np.load(tmp_path / "x.npy", mmap_mode="r")).take(np.array([8, 1, 6]))
    np.testing.assert_array_equal(out.numpy(), X[[8, 1, 6]].astype(np.float32))
    assert out.transpose(0, 1).is_contiguous()


def test_reused_batch_buffers_never_overwrite_a_live_batch(monkeypatch):
    """Batches come from the reuse pool: a batch still referenced keeps its values while later
    batches (of the same and of other sizes) are taken; a freed one is handed out again."""
    monkeypatch.setattr(buffers, "MIN_BYTES", 0)          # pool even these small batches
    X = _spikes(n=40, t=6, f=9, dtype=np.float32)
    src = ArrayBatches(X)
    a = src.take(np.arange(0, 16))
    a_ref = a.clone()
    b = src.take(np.arange(16, 32))
    c = src.take(np.arange(32, 40))                        # a last, smaller batch
    assert torch.equal(a, a_ref)
    np.testing.assert_array_equal(b.numpy(), X[16:32])
    np.testing.assert_array_equal(c.numpy(), X[32:40])
    ptr = a.data_ptr()
    del a, a_ref
    d = src.take(np.arange(20, 36)[::-1].copy())
    np.testing.assert_array_equal(d.numpy(), X[np.arange(20, 36)[::-1]])
    assert d.data_ptr() == ptr                             # a's buffer, reused
    assert torch.equal(b, torch.from_numpy(X[16:32]))      # b untouched by the reuse


def test_spike_fit_takes_the_sparse_torch_projection_and_matches_dense(monkeypatch):
    """Without the compiled backend, 3D spike input reaches the sparse torch projection (before,
    the transposed minibatch was not contiguous and every step ran the dense product); training
    matches the dense product's to float rounding."""
    monkeypatch.setenv("SKLEARN_SNN_NUMBA", "0")
    rng = np.random.default_rng(1)
    X = rng.random((48, 12, 40)) < 0.1
    y = rng.integers(0, 3, 48)
    calls = []
    apply = projections.TorchSparseLinear.apply

    def counted(*a):
        calls.append(a[0].shape)
        return apply(*a)

    def fit():
        clf = SurrogateSNNClassifier(hidden_layer_sizes=(128,), max_iter=2, batch_size=16, random_state=0,
                                     readout="spike_count")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # e.g. the convergence warning of 2 epochs
            clf.fit(X, y)
        return clf

    monkeypatch.setattr(projections.TorchSparseLinear, "apply", counted)
    monkeypatch.setattr(buffers, "MIN_BYTES", 0)          # pool every buffer, the batches too
    buffers.release()
    sparse = fit()
    assert len(calls) == 2 * 3 and all(s == (12 * 16, 40) for s in calls)
    assert buffers.POOL.nbytes() == 0        # the reused batch buffers do not outlive the fit
    monkeypatch.setattr(projections, "TORCH_SPARSE_MIN_OUT", 10 ** 9)   # the dense product
    calls.clear()
    dense = fit()
    assert not calls
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-5)
    for a, b in zip(sparse.module_.state_dict().values(), dense.module_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

