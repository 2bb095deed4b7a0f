"""The recurrent layer's two sparse sums, alone, row by row against column blocks (issue 20, item 4).

A recurrent layer's step adds, for every sample, the rows of ``W_rec`` of the neurons that spiked
at the previous step (the recurrent input of the forward scan), and its weight gradient adds, for
every neuron, the gradient rows of the samples in which it spiked (``sum_t s_{t-1}^T g_t``). At the
S2-rec shape (T=100, B=64, H=256, 12.8% of the neurons spiking per step, random spikes of that
rate) this times, on one thread:

- ``recurrent input, row by row``: the rows added eight at a time into each sample's row
  (``numba_loops.add_rows``, the package's design until 2026-12-05);
- ``recurrent input, column blocks``: ``W_rec`` copied block-major once, then each 128-byte column
  block of every sample's row summed from it (``numba_loops.add_row_blocks``, what the forward
  kernel runs now), the copy included;
- ``W_rec gradient, row by row``: per step and neuron, the samples read off bit masks and their
  gradient rows added eight at a time (the package's design until 2026-12-05);
- ``W_rec gradient, column blocks``: the same lists over a few steps, the steps' gradient rows
  copied block-major and summed with ``add_row_blocks`` (``numba_loops.rec_wgrad``, what the
  package runs now).

Both sums are checked against ``numpy.einsum``. Arrays are torch-allocated (64-byte aligned), as in
a training step. Run: ``python benchmarks/recurrent_sums.py`` (``--repeats 15``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recurrent_chain import median_ms  # the sibling benchmark's timing helper

T, B, H, RATE = 100, 64, 256, 0.128


def kernels():
    from numba import njit

    from sklearn_snn._core.numba_loops import (
        ROW_BLOCK_BYTES,
        add_row_blocks,
        add_rows,
        cttz,
    )

    add8 = njit(inline="always", nogil=True, error_model="numpy")(
        add_rows.py_func if hasattr(add_rows, "py_func") else add_rows)

    @njit(nogil=True, error_model="numpy")
    def input_rows(S, W, U):
        buf = np.empty(H + 1, np.int32)
        for t in range(1, S.shape[0]):
            for b in range(S.shape[1]):
                k = 0
                r = S[t - 1, b]
                for j in range(H):
                    buf[k] = j
                    k += r[j] != 0
                add8(U[t, b], W, buf, 0, k)

    @njit(nogil=True, error_model="numpy")
    def input_blocks(S, W, U):
        L = ROW_BLOCK_BYTES // W.itemsize
        NB = H // L
        P = np.empty((NB, H, L), W.dtype)
        for c in range(NB):
            for j in range(H):
                for q in range(L):
                    P[c, j, q] = W[j, c * L + q]
        lists = np.empty((S.shape[1], H + 1), np.int32)
        counts = np.empty(S.shape[1], np.int64)
        for t in range(1, S.shape[0]):
            for b in range(S.shape[1]):
                k = 0
                r, li = S[t - 1, b], lists[b]
                for j in range(H):
                    li[k] = j
                    k += r[j] != 0
                counts[b] = k
            for c in range(NB):
                for b in range(S.shape[1]):
                    add_row_blocks(U[t, b], P[c], lists[b], 0, counts[b], c * L)

    @njit(nogil=True, error_model="numpy")
    def wgrad_rows(Q, q0, GX, gw, nchunks):
        # gw = sum_t s_(t-1)^T GX_t for uint8 spikes Q (T, B, H) of 0s and 1s (q0 at t = 0), each
        # thread taking a range of J rows of gw. For each step the spikes of its rows are first
        # turned into bit masks over the samples (M[w, j]: bit i for sample 64 w + i; a branch-free
        # pass over contiguous bytes that vectorises); the samples in which j spiked are then read
        # off the set bits (one tzcnt each, so the cost follows the spike count, not B) and their
        # rows of GX_t summed into gw[j] eight at a time. The rows are added in increasing sample
        # order, as the branch-free listing over b did (3.6 -> 2.65 ms for S2-rec on one core).
        T, B, H = GX.shape
        NW = (B + 63) // 64
        step = (H + nchunks - 1) // nchunks
        for c in range(nchunks):
            j0 = c * step
            J = max(0, min(H, j0 + step) - j0)
            lst = np.empty(B + 1, np.int32)
            M = np.empty((NW, J), np.uint64)
            for t in range(T):
                sp = Q[t - 1] if t > 0 else q0
                for w in range(NW):
                    mw = M[w]
                    for j in range(J):
                        mw[j] = 0
                for b in range(B):
                    r = sp[b, j0:j0 + J]
                    mw = M[b >> 6]
                    bit = np.uint64(1) << np.uint64(b & 63)
                    for j in range(J):         # a local range from 0: with a range from j0 it does not vectorise
                        mw[j] |= bit * np.uint64(r[j])
                gx = GX[t]
                for j in range(J):
                    k = 0
                    for w in range(NW):
                        m = M[w, j]
                        k0 = k
                        while m != 0:
                            lst[k] = cttz(m)
                            k += 1
                            m &= m - np.uint64(1)
                        if w > 0:
                            for q in range(k0, k):
                                lst[q] += 64 * w
                    if k > 0:
                        add8(gw[j0 + j], gx, lst, 0, k)

    return input_rows, input_blocks, wgrad_rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    print("command: python benchmarks/recurrent_sums.py --repeats", a.repeats)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    from sklearn_snn._core.numba_backend import numba_kernels

    nb = numba_kernels()
    if nb is None:
        sys.exit("numba is needed for this benchmark")
    input_rows, input_blocks, wgrad_rows = kernels()
    rng = np.random.default_rng(0)
    rows = []
    for dtype in (torch.float32, torch.float64):
        S = (torch.rand(T, B, H, generator=torch.Generator().manual_seed(1)) < RATE).to(dtype).numpy()
        W = torch.randn(H, H, dtype=dtype).numpy()
        U = torch.zeros(T, B, H, dtype=dtype).numpy()
        ref = np.zeros((T, B, H))
        ref[1:] = np.einsum("tbj,jh->tbh", S[:-1].astype(np.float64), W.astype(np.float64))
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        for name, f in (("recurrent input, row by row", input_rows), ("recurrent input, column blocks", input_blocks)):
            def run(f=f, S=S, W=W, U=U):
                U[:] = 0
                f(S, W, U)
            ms = median_ms(run, a.repeats)
            err = float(np.abs(U - ref).max())
            if err > tol * float(np.abs(ref).max()):
                sys.exit(f"{name}: differs from einsum by {err:.1e}")
            rows.append((f"{name}, {str(dtype)[6:]}", ms))
        Q = S.astype(np.uint8)
        q0 = (rng.random((B, H)) < RATE).astype(np.uint8)
        GX = torch.randn(T, B, H, dtype=dtype).numpy()
        gw = torch.zeros(H, H, dtype=dtype).numpy()
        prev = np.concatenate([q0[None], Q[:-1]]).astype(np.float64)
        ref = np.einsum("tbj,tbk->jk", prev, GX.astype(np.float64))
        for name, f in (("W_rec gradient, row by row", wgrad_rows), ("W_rec gradient, column blocks", nb.ser.rec_wgrad)):
            def run(f=f, Q=Q, q0=q0, GX=GX, gw=gw):
                gw[:] = 0
                f(Q, q0, GX, gw, 1)
            ms = median_ms(run, a.repeats)
            err = float(np.abs(gw - ref).max())
            if err > tol * float(np.abs(ref).max()):
                sys.exit(f"{name}: differs from einsum by {err:.1e}")
            rows.append((f"{name}, {str(dtype)[6:]}", ms))
    print(f"\nS2-rec shape (T={T}, B={B}, H={H}, {RATE:.1%} spiking), one thread, median of {a.repeats}:")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} ms |")


if __name__ == "__main__":
    main()
