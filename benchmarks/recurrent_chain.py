"""The recurrent backward's chain of adjoint products, alone, in three designs (issue 20, item 4).

A recurrent layer's backward pass needs, at every step, ``g_t = G_t + c * (g_(t+1) @ W_rec)``: T
dependent products of (B x H) @ (H x H), each waiting for the last. This times 100 of them at the
S2-rec shape (B=64, H=256, float32) as

- ``torch``: one ``torch.mm`` per step over the whole batch (what the package runs), on 1 and 2
  torch threads;
- ``numba-blas``: one numba kernel, each thread walking time for its half of the batch with no
  per-step synchronisation, calling BLAS (``np.dot``: scipy's OpenBLAS) per step;
- ``numba-own``: the same, with the product written in the kernel as a plain row-by-row loop;
- ``numba-blocked``: the same, with the package's blocked product
  (``sklearn_snn._core.numba_loops.rows_times``: four rows and four rows of ``W`` per pass), on 1
  and 2 threads: the design the compiled recurrent backward runs since 2026-12-05.

All four compute the same chain (checked against ``torch`` to float32 rounding). OpenBLAS prints a
warning on every call from a numba-parallel region; it is silenced here by redirecting stderr.

Run: ``python benchmarks/recurrent_chain.py`` (``--repeats 20``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

T, B, H, C = 100, 64, 256, np.float32(0.01)


def torch_chain(G, W):
    Gt, Wt = torch.from_numpy(G), torch.from_numpy(W)
    g = Gt[-1].clone()
    tmp = torch.empty_like(g)
    for t in range(T - 2, -1, -1):
        torch.mm(g, Wt, out=tmp)
        g = torch.add(Gt[t], tmp, alpha=float(C))
    return g.numpy()


def numba_chains():
    from numba import njit, prange

    from sklearn_snn._core.numba_loops import rows_times

    @njit(parallel=True, nogil=True, fastmath={"contract"})
    def chain(G, W, out, nch, own_product):
        # each thread walks time for its block of the batch; the product by BLAS (0), written here
        # row by row (1) or blocked (2, the package's rows_times)
        step = (B + nch - 1) // nch
        for c in prange(nch):
            b0, b1 = c * step, min(B, (c + 1) * step)
            g = np.ascontiguousarray(G[T - 1, b0:b1])
            tmp = np.empty((b1 - b0, H), np.float32)
            for t in range(T - 2, -1, -1):
                if own_product == 2:
                    rows_times(g, W, tmp, 0, b1 - b0)
                elif own_product == 1:
                    tmp[:] = 0
                    for i in range(b1 - b0):
                        for k in range(H):
                            a = g[i, k]
                            for j in range(H):
                                tmp[i, j] += a * W[k, j]
                else:
                    np.dot(g, W, tmp)
                for i in range(b1 - b0):
                    for j in range(H):
                        g[i, j] = G[t, b0 + i, j] + C * tmp[i, j]
            out[b0:b1] = g

    return chain


def median_ms(f, repeats):
    f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    print("command: python benchmarks/recurrent_chain.py --repeats", a.repeats)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((H, H)) / H ** 0.5).astype(np.float32)
    G = rng.standard_normal((T, B, H)).astype(np.float32)
    ref = torch_chain(G, W)
    rows = []
    for n in (1, 2):
        torch.set_num_threads(n)
        rows.append((f"torch.mm per step, {n} thread(s)", median_ms(lambda: torch_chain(G, W), a.repeats)))
    chain = numba_chains()
    out = np.empty((B, H), np.float32)
    for name, own, nch in (("numba, half the batch per thread, OpenBLAS per step (2 threads)", 0, 2),
                           ("numba, half the batch per thread, own row-by-row product (2 threads)", 1, 2),
                           ("numba, the package's blocked product, 1 thread", 2, 1),
                           ("numba, the package's blocked product, half the batch per thread (2 threads)", 2, 2)):
        saved = os.dup(2)
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                ms = median_ms(lambda own=own, nch=nch: chain(G, W, out, nch, own), a.repeats)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        err = float(np.abs(out - ref).max() / np.abs(ref).max())
        if err > 1e-4:
            sys.exit(f"{name}: differs from torch by {err:.1e}")
        rows.append((name, ms))
    print(f"\n{T} dependent products (B={B}) @ ({H} x {H}), float32, median of {a.repeats}:")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} ms |")


if __name__ == "__main__":
    main()
