"""The compiled recurrent step against plain products: the weight gradient (bit masks over the
samples), the blocked adjoint product of the backward pass, and the whole scan's gradients."""
import functools

import numpy as np
import pytest
import torch

from sklearn_snn._core import numba_backend, numba_loops
from sklearn_snn._core.kernels import reference_scan, spiking_scan
from sklearn_snn._core.neurons import NeuronSpec

HAVE_NUMBA = numba_backend.numba_kernels() is not None
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")


def _python_cttz(x):
    # the fallback's definition, kept here so that it is tested with numba installed too
    x = int(x)
    return (x & -x).bit_length() - 1


@pytest.mark.parametrize("x,expected", [(1, 0), (2, 1), (12, 2), (1 << 40, 40), ((1 << 63) | 8, 3), (1 << 63, 63)])
def test_lowest_set_bit(x, expected):
    assert _python_cttz(x) == expected
    if HAVE_NUMBA:
        import numba

        f = numba.njit(lambda v: numba_loops.cttz(v))
        assert f(np.uint64(x)) == expected


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,H,density,nchunks", [(1, 5, 0.3, 1), (3, 7, 1.0, 2), (64, 9, 0.1, 1), (65, 16, 0.05, 3),
                                                 (130, 11, 0.5, 4), (200, 33, 0.0, 2), (97, 1, 0.9, 1)])
def test_recurrent_weight_gradient_equals_product(B, H, density, nchunks, dtype):
    # gw = sum_t s_(t-1)^T GX_t (q0 at t = 0), for sample counts off and over a 64-bit word, dense,
    # sparse and no spikes, more chunks than fit evenly; both the serial and the parallel copy
    nbk = numba_backend.numba_kernels()
    rng = np.random.default_rng(B * 100 + H)
    T = 6
    Q = (rng.random((T, B, H)) < density).astype(np.uint8)
    q0 = (rng.random((B, H)) < 0.5).astype(np.uint8)
    GX = rng.standard_normal((T, B, H)).astype(dtype)
    prev = np.concatenate([q0[None], Q[:-1]]).astype(np.float64)
    ref = np.einsum("tbj,tbk->jk", prev, GX.astype(np.float64)) + 0.25
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for mod in (nbk.ser, nbk.par):
        gw = np.full((H, H), 0.25, dtype)
        mod.rec_wgrad(Q, q0, GX, gw, nchunks)
        np.testing.assert_allclose(gw, ref, rtol=tol, atol=tol)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N,K,M,i0,i1", [(8, 256, 256, 0, 8), (7, 9, 5, 0, 7), (11, 6, 3, 2, 11), (5, 1, 4, 1, 2),
                                         (9, 4, 8, 3, 3), (70, 23, 17, 35, 70)])
def test_blocked_adjoint_product_equals_matmul(N, K, M, i0, i1, dtype):
    # rows_times: out[i0:i1] = X[i0:i1] @ W, four rows and four of W's rows at a time, with row and
    # inner-dimension remainders; the rows outside [i0, i1) (another thread's) are left alone
    rng = np.random.default_rng(N * K + M)
    X = rng.standard_normal((N, K)).astype(dtype)
    W = rng.standard_normal((K, M)).astype(dtype)
    out = np.full((N, M), 7.0, dtype)
    numba_loops.rows_times(X, W, out, i0, i1)
    ref = X.astype(np.float64) @ W.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out[i0:i1], ref[i0:i1], rtol=tol, atol=tol * K)
    assert (out[:i0] == 7.0).all() and (out[i1:] == 7.0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k,h0", [(0, 0), (1, 32), (3, 0), (4, 64), (7, 32), (9, 0), (40, 96)])
def test_row_block_sums_equal_numpy(k, h0, dtype):
    # acc[h0:h0+L] += P[idx[a:e]].sum(0) for a packed block of L = ROW_BLOCK_BYTES / itemsize
    # columns: counts on, under and over the four-row passes, offsets into the accumulator; the
    # rest of the accumulator and the rows not listed are left alone. The compiled intrinsic and
    # the plain-Python definition both (the latter is what runs without numba).
    L = numba_loops.ROW_BLOCK_BYTES // np.dtype(dtype).itemsize
    rng = np.random.default_rng(k + h0)
    P = rng.standard_normal((50, L)).astype(dtype)
    idx = np.concatenate([[49], rng.integers(0, 49, k), [48]]).astype(np.int32)   # idx[0], idx[-1] unread
    acc0 = rng.standard_normal(h0 + L + 5).astype(dtype)
    ref = acc0.astype(np.float64)
    ref[h0:h0 + L] += P[idx[1:k + 1]].astype(np.float64).sum(0)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    fns = [numba_loops.add_row_blocks_python]
    if HAVE_NUMBA:
        import numba

        fns.append(numba.njit(lambda acc, P, idx, a, e, h0: numba_loops.add_row_blocks(acc, P, idx, a, e, h0)))
    for fn in fns:
        acc = acc0.copy()
        fn(acc, P, idx, 1, k + 1, h0)
        np.testing.assert_allclose(acc, ref, rtol=tol, atol=tol)
        assert (acc[:h0] == acc0[:h0]).all() and (acc[h0 + L:] == acc0[h0 + L:]).all()


@needs_numba
@pytest.mark.parametrize("H", [32, 40, 70])
def test_recurrent_scan_float32_matches_torch(H):
    # float32 takes column blocks of 32 (64 for float64): hidden sizes on a block, over it, and
    # with two blocks and a remainder; spikes equal, gradients to float32 rounding
    spec = NeuronSpec("lif", beta=0.85, reset="subtract")
    g = torch.Generator().manual_seed(H)
    B, T = 9, 12
    x = (torch.randn(T, B, H, generator=g) * 0.4 + 0.25).requires_grad_()
    w = (torch.randn(H, H, generator=g) * 0.25).requires_grad_()
    weight = torch.randn(T, B, H, generator=g)
    out = []
    for backend in ("numba", "torch"):
        s, _, _ = spiking_scan(x, spec, "fast_sigmoid", 3.0, w_rec=w, backend=backend)
        (s * weight).sum().backward()
        out.append((s.detach(), x.grad.clone(), w.grad.clone()))
        x.grad = w.grad = None
    assert 0 < float(out[0][0].mean()) < 0.6
    torch.testing.assert_close(out[0][0], out[1][0], rtol=0, atol=0)
    for a, b in zip(out[0][1:], out[1][1:]):      # sums of T * B terms: rounding relative to the largest
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5 * float(b.abs().max()))


@needs_numba
@pytest.mark.parametrize("B,H", [(1, 24), (70, 24), (9, 23)])
@pytest.mark.parametrize("model", ["lif", "cuba"])
def test_recurrent_scan_gradients_match_torch(model, B, H):
    # the compiled backward walks time per block of the batch with its own adjoint product
    # (rows_times): batch sizes under, over and off a block of four, hidden sizes on and off it
    spec = NeuronSpec(model, beta=0.85, alpha=0.6, reset="subtract")
    g = torch.Generator().manual_seed(B)
    T = 15
    gain = 0.5 if model == "lif" else 0.15
    x = ((torch.randn(T, B, H, generator=g, dtype=torch.float64) * 0.5 + 0.2) * gain / 0.5).requires_grad_()
    w = (torch.randn(H, H, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    weight = torch.randn(T, B, H, generator=g, dtype=torch.float64)
    out = []
    for fn in (functools.partial(spiking_scan, backend="numba"), functools.partial(spiking_scan, backend="torch"),
               reference_scan):
        s, _, _ = fn(x, spec, "fast_sigmoid", 3.0, w_rec=w)
        (s * weight).sum().backward()
        out.append((s.detach(), x.grad.clone(), w.grad.clone()))
        x.grad = w.grad = None
    assert 0 < float(out[0][0].mean()) < 0.6
    for other in out[1:]:
        for a, b in zip(out[0], other):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)
    assert float(out[0][2].abs().sum()) > 0


@needs_numba
def test_recurrent_backward_kernel_goes_on_the_warm_up_list():
    # the kernels a process compiled are what the next processes warm up: the recurrent backward
    # (a kernel of its own since it walks time in one call) must be among them after a recurrent fit
    spec = NeuronSpec("lif", beta=0.9, reset="subtract")
    x = torch.rand(5, 3, 8, dtype=torch.float32, requires_grad=True)
    w = (torch.randn(8, 8) * 0.3).requires_grad_()
    s, _, _ = spiking_scan(x, spec, "fast_sigmoid", 3.0, w_rec=w, backend="numba")
    s.sum().backward()
    names = {name for _, name, _ in numba_backend._compiled(numba_backend.numba_kernels())}
    assert "backward_rec" in names and "forward" in names
