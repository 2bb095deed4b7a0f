"""The compiled loops of the numba backend, as plain Python (numba compiles them on first use).

Imported only by :func:`~sklearn_snn._core.numba_backend.numba_kernels` (so importing the package
does not import numba). :data:`KERNELS` are the top-level kernels, each compiled twice by the
backend: a parallel build for the main thread and a serial one for calls from other threads
(see :mod:`~sklearn_snn._core.threads`). The helpers they call (:func:`add_rows`,
:func:`sparse_wgrad`) and :func:`pack_bits` are compiled here, once, when numba is importable;
without numba this module still imports (its functions are then plain Python) and the backend
reports itself unavailable. :func:`add_rows` and :func:`rows_times` are also inlined into the scan
kernels rendered from the templates of the backend.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import prange
except ImportError:  # the backend is unavailable; keep the module importable (e.g. for doctests)
    numba = None
    prange = range

__all__ = ["KERNELS", "add_rows", "cttz", "pack_bits", "rows_times", "sparse_wgrad"]


if numba is not None:
    from llvmlite import ir
    from numba.core.extending import intrinsic

    @intrinsic
    def cttz(typingctx, x):
        # the index of the lowest set bit of a nonzero integer (LLVM's cttz: one tzcnt instruction)
        def codegen(context, builder, sig, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

        return x(x), codegen
else:
    def cttz(x):
        """The index of the lowest set bit of a nonzero integer (plain Python without numba)."""
        x = int(x)
        return (x & -x).bit_length() - 1


def _jit(**opts):
    if numba is None:
        return lambda fn: fn
    return numba.njit(cache=True, nogil=True, error_model="numpy", **opts)


def leaky(x, beta, V, reverse):
    T, B, H = x.shape
    for b in prange(B):
        for h in range(H):
            V[T - 1 if reverse else 0, b, h] = x[T - 1 if reverse else 0, b, h]
        for i in range(1, T):
            t = T - 1 - i if reverse else i
            tp = t + 1 if reverse else t - 1
            for h in range(H):
                V[t, b, h] = x[t, b, h] + beta[h] * V[tp, b, h]


def sparse_count(x, counts, other):
    # counts[n]: nonzeros of row n; other[n]: how many of them are not 1 (0 for spike trains)
    N, F = x.shape
    for n in prange(N):
        c = 0
        o = 0
        for f in range(F):
            v = x[n, f]
            c += v != 0
            o += (v != 0) & (v != 1)
        counts[n] = c
        other[n] = o


def sparse_project(x, wT, bias, indptr, indices, values, out, binary, nchunks):
    # CSR form of x (values only when x is not binary) and out = x @ wT + bias, row by row. The
    # nonzero columns of a row are found without branches (every column index is written, the
    # position advances only past nonzeros) and the rows of wT are summed eight at a time, so the
    # accumulator is read and written once per eight nonzeros.
    N, F = x.shape
    H = wT.shape[1]
    step = (N + nchunks - 1) // nchunks
    for c in prange(nchunks):
        buf = np.empty(F + 1, np.int32)
        acc = np.empty(H, out.dtype)
        for n in range(c * step, min(N, (c + 1) * step)):
            xr = x[n]
            k = 0
            for f in range(F):
                buf[k] = f
                k += xr[f] != 0
            p0 = indptr[n]
            for q in range(k):
                indices[p0 + q] = buf[q]
            for h in range(H):
                acc[h] = bias[h]
            if binary:
                add_rows(acc, wT, buf, 0, k)
            else:
                for q in range(k):
                    f = buf[q]
                    v = xr[f]
                    values[p0 + q] = v
                    r0 = wT[f]
                    for h in range(H):
                        acc[h] += v * r0[h]
            o = out[n]
            for h in range(H):
                o[h] = acc[h]



@_jit(inline="always")
def add_rows(acc, M, idx, a, e):
    # acc += M[idx[a]] + ... + M[idx[e-1]], eight (then four) rows per pass over acc
    q = a
    while q + 8 <= e:
        r0, r1, r2, r3 = M[idx[q]], M[idx[q + 1]], M[idx[q + 2]], M[idx[q + 3]]
        r4, r5, r6, r7 = M[idx[q + 4]], M[idx[q + 5]], M[idx[q + 6]], M[idx[q + 7]]
        for h in range(acc.shape[0]):
            acc[h] += ((r0[h] + r1[h]) + (r2[h] + r3[h])) + ((r4[h] + r5[h]) + (r6[h] + r7[h]))
        q += 8
    while q + 4 <= e:
        r0, r1, r2, r3 = M[idx[q]], M[idx[q + 1]], M[idx[q + 2]], M[idx[q + 3]]
        for h in range(acc.shape[0]):
            acc[h] += (r0[h] + r1[h]) + (r2[h] + r3[h])
        q += 4
    while q < e:
        r0 = M[idx[q]]
        for h in range(acc.shape[0]):
            acc[h] += r0[h]
        q += 1



@_jit(inline="always")
def rows_times(X, W, out, i0, i1):
    # out[i] = X[i] @ W for the rows i0..i1-1 (a recurrent layer's adjoint product, one thread's
    # block of the batch). Four rows at a time, four rows of W per pass over the four output rows:
    # 16 multiply-adds per 8 loads and 4 stores, and W read from L2 once per four rows (a plain
    # row-by-row product is load-bound at half this speed; this one matches MKL on one core for
    # 64 x 256 @ 256 x 256, benchmarks/recurrent_chain.py). Then the remaining rows one at a time.
    K, N = W.shape
    K4 = K - K % 4
    i = i0
    while i + 4 <= i1:
        o0, o1, o2, o3 = out[i], out[i + 1], out[i + 2], out[i + 3]
        x0, x1, x2, x3 = X[i], X[i + 1], X[i + 2], X[i + 3]
        for j in range(N):
            o0[j] = 0
            o1[j] = 0
            o2[j] = 0
            o3[j] = 0
        for k in range(0, K4, 4):
            w0, w1, w2, w3 = W[k], W[k + 1], W[k + 2], W[k + 3]
            a00, a01, a02, a03 = x0[k], x0[k + 1], x0[k + 2], x0[k + 3]
            a10, a11, a12, a13 = x1[k], x1[k + 1], x1[k + 2], x1[k + 3]
            a20, a21, a22, a23 = x2[k], x2[k + 1], x2[k + 2], x2[k + 3]
            a30, a31, a32, a33 = x3[k], x3[k + 1], x3[k + 2], x3[k + 3]
            for j in range(N):
                p0, p1, p2, p3 = w0[j], w1[j], w2[j], w3[j]
                o0[j] += a00 * p0 + a01 * p1 + a02 * p2 + a03 * p3
                o1[j] += a10 * p0 + a11 * p1 + a12 * p2 + a13 * p3
                o2[j] += a20 * p0 + a21 * p1 + a22 * p2 + a23 * p3
                o3[j] += a30 * p0 + a31 * p1 + a32 * p2 + a33 * p3
        for k in range(K4, K):
            w0 = W[k]
            a0, a1, a2, a3 = x0[k], x1[k], x2[k], x3[k]
            for j in range(N):
                p0 = w0[j]
                o0[j] += a0 * p0
                o1[j] += a1 * p0
                o2[j] += a2 * p0
                o3[j] += a3 * p0
        i += 4
    while i < i1:
        o0, x0 = out[i], X[i]
        for j in range(N):
            o0[j] = 0
        for k in range(K):
            w0 = W[k]
            a0 = x0[k]
            for j in range(N):
                o0[j] += a0 * w0[j]
        i += 1


@_jit()
def sparse_wgrad(indptr, indices, values, G, dst, r0, r1, binary, block):
    # dst (F, H) += x[r0:r1].T @ G[r0:r1] for x in CSR form. Spikes (binary x): a block of rows at a
    # time, the block's nonzeros are regrouped by column (a counting sort), and each row of dst gets
    # the G rows of its column summed eight at a time -- dst is read and written once per block and
    # column instead of once per nonzero, and the block of G stays in cache.
    F = dst.shape[0]
    if not binary:
        for n in range(r0, r1):
            g = G[n]
            for p in range(indptr[n], indptr[n + 1]):
                row = dst[indices[p]]
                val = values[p]
                for h in range(g.shape[0]):
                    row[h] += val * g[h]
        return
    most = 0
    for a in range(r0, r1, block):
        most = max(most, indptr[min(r1, a + block)] - indptr[a])
    start = np.empty(F + 1, np.int64)
    pos = np.empty(F, np.int64)
    rows = np.empty(most, np.int32)
    for a in range(r0, r1, block):
        e = min(r1, a + block)
        start[:] = 0
        for p in range(indptr[a], indptr[e]):
            start[indices[p] + 1] += 1
        for f in range(F):
            start[f + 1] += start[f]
            pos[f] = start[f]
        for n in range(a, e):
            for p in range(indptr[n], indptr[n + 1]):
                f = indices[p]
                rows[pos[f]] = n
                pos[f] += 1
        for f in range(F):
            if start[f + 1] > start[f]:
                add_rows(dst[f], G, rows, start[f], start[f + 1])


def sparse_wgrad_par(indptr, indices, values, G, gwT, nchunks, binary, block):
    # gwT = x.T @ G with the rows of x split between the threads, each summing into its own (F, H)
    # buffer (the first into gwT itself), then the buffers added column block by column block
    N, H = G.shape
    F = gwT.shape[0]
    extra = np.zeros((nchunks - 1, F, H), gwT.dtype)
    step = (N + nchunks - 1) // nchunks
    for c in prange(nchunks):
        dst = gwT if c == 0 else extra[c - 1]
        sparse_wgrad(indptr, indices, values, G, dst, c * step, min(N, (c + 1) * step), binary, block)
    fstep = (F + nchunks - 1) // nchunks
    for c in prange(nchunks):
        for f in range(c * fstep, min(F, (c + 1) * fstep)):
            row = gwT[f]
            for k in range(nchunks - 1):
                other = extra[k, f]
                for h in range(H):
                    row[h] += other[h]


def rec_wgrad(Q, q0, GX, gw, nchunks):
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
    for c in prange(nchunks):
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
                    add_rows(gw[j0 + j], gx, lst, 0, k)


def narrow_gx(G, W, out, nchunks):
    # out = G @ W for a narrow G (N, K), K small: row by row, each output row accumulated from the
    # K rows of W it mixes (MKL's GEMM is slow for this tall, thin shape: 5.6 ms vs 1.35 ms for
    # 16000 x 10 @ 10 x 128 on one core)
    N, K = G.shape
    H = W.shape[1]
    step = (N + nchunks - 1) // nchunks
    for c in prange(nchunks):
        for n in range(c * step, min(N, (c + 1) * step)):
            o = out[n]
            g = G[n]
            w = W[0]
            g0 = g[0]
            for h in range(H):
                o[h] = g0 * w[h]
            for k in range(1, K):
                gk = g[k]
                w = W[k]
                for h in range(H):
                    o[h] += gk * w[h]


@_jit()
def pack_bits(x, P):
    # bit i of P[n, j] = (x[n, 8j + i] != 0), when every entry of x is 0 or 1 (spikes); False after
    # the first row with another value. A row is first written as bytes 0/1 (branch-free, so it
    # vectorises); eight of them, read as one little-endian uint64, are gathered into the top byte
    # of a product with 0x0102040810204080 (the partial products never overlap, so bit i of that
    # byte is byte i of the word)
    N, F = x.shape
    J = P.shape[1]
    q = np.zeros(8 * J, np.uint8)
    w = q.view(np.uint64)
    M = np.uint64(0x0102040810204080)
    for n in range(N):
        xr, pr = x[n], P[n]
        other = False
        for f in range(F):
            v = xr[f]
            q[f] = np.uint8(v != 0)
            other |= (v != 0) & (v != 1)
        if other:
            return False
        for j in range(J):
            pr[j] = np.uint8((w[j] * M) >> np.uint64(56))
    return True


def bits_wgrad(P, G, gw, nchunks):
    # gw (K, H) += sum_n G_n^T x_n for binary rows x_n packed in P (see pack_bits): four rows
    # at a time are unpacked into floats and added in one pass over gw's rows (a quarter of the
    # loads and stores of gw); rows of P split between threads, each with its own (K, H) sum
    N, K = G.shape
    H = gw.shape[1]
    part = np.zeros((nchunks, K, H), G.dtype)
    step = (N + nchunks - 1) // nchunks
    for c in prange(nchunks):
        acc = part[c]
        r = np.empty((4, H), G.dtype)
        n, n1 = c * step, min(N, (c + 1) * step)
        while n < n1:
            m = min(4, n1 - n)
            for i in range(4):
                ri = r[i]
                if i < m:
                    pr = P[n + i]
                    for h in range(H):
                        ri[h] = (pr[h >> 3] >> (h & 7)) & 1
                else:
                    ri[:] = 0
            r0, r1, r2, r3 = r[0], r[1], r[2], r[3]
            g0, g1, g2, g3 = G[n], G[n + min(1, m - 1)], G[n + min(2, m - 1)], G[n + min(3, m - 1)]
            for k in range(K):
                a = acc[k]
                c0, c1, c2, c3 = g0[k], g1[k], g2[k], g3[k]
                for h in range(H):
                    a[h] += c0 * r0[h] + c1 * r1[h] + c2 * r2[h] + c3 * r3[h]
            n += m
    for c in range(nchunks):
        for k in range(K):
            for h in range(H):
                gw[k, h] += part[c, k, h]



KERNELS = {"leaky": leaky, "sparse_count": sparse_count, "sparse_project": sparse_project,
           "sparse_wgrad": sparse_wgrad_par, "narrow_gx": narrow_gx, "rec_wgrad": rec_wgrad, "bits_wgrad": bits_wgrad}
"""The top-level kernels by name, uncompiled (the backend builds a parallel and a serial copy)."""
