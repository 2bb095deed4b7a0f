"""The compiled loops of the numba backend, as plain Python (numba compiles them on first use).

Imported only by :func:`~sklearn_snn._core.numba_backend.numba_kernels` (so importing the package
does not import numba). :data:`KERNELS` are the top-level kernels, each compiled twice by the
backend: a parallel build for the main thread and a serial one for calls from other threads
(see :mod:`~sklearn_snn._core.threads`). The helpers they call (:func:`add_rows`,
:func:`sparse_wgrad`, :func:`add_row_blocks`) and :func:`pack_bits` are compiled here, once, when
numba is importable; without numba this module still imports (its functions are then plain
Python) and the backend reports itself unavailable. :func:`rows_times` is also inlined into the
scan kernels rendered from the templates of the backend, and the recurrent forward kernel calls
:func:`add_row_blocks` (an LLVM intrinsic: summed 64-byte vectors).
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import prange
except ImportError:  # the backend is unavailable; keep the module importable (e.g. for doctests)
    numba = None
    prange = range

__all__ = ["KERNELS", "ROW_BLOCK_BYTES", "add_row_blocks", "add_row_blocks_python", "add_rows", "cttz", "pack_bits", "rows_times",
           "sparse_wgrad"]

ROW_BLOCK_BYTES = 128
"""The width of the column blocks :func:`add_row_blocks` sums (32 float32 or 16 float64: two
512-bit vectors)."""



def add_row_blocks_python(acc, P, idx, a, e, h0):
    """``acc[h0:h0+L] += P[idx[a:e], :L].sum(0)``, ``L = ROW_BLOCK_BYTES // P.itemsize``: what the
    compiled :func:`add_row_blocks` computes (it runs in its place without numba)."""
    L = ROW_BLOCK_BYTES // P.itemsize
    acc[h0:h0 + L] += P[idx[a:e], :L].sum(0)


if numba is not None:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

    @intrinsic
    def cttz(typingctx, x):
        # the index of the lowest set bit of a nonzero integer (LLVM's cttz: one tzcnt instruction)
        def codegen(context, builder, sig, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

        return x(x), codegen

    @intrinsic
    def add_row_blocks(typingctx, acc, P, idx, a, e, h0):
        # acc[h0:h0+L] += P[idx[a]] + ... + P[idx[e-1]] for a packed column block P (rows of L
        # contiguous values, L * itemsize = ROW_BLOCK_BYTES), summed in registers: LLVM vectors of
        # 64 bytes, two per row, four rows per pass into four partial sums, so each row costs two
        # vector loads and adds and nothing else (no alias checks, no stores until the end). Written
        # as IR because numba's loops over such short rows spend more on their set-up than on the
        # adds. P rows packed contiguously keep a block in L1: rows of W_rec 1 KB apart map to a
        # sixteenth of L1's sets.
        def codegen(context, builder, sig, args):
            acc_a = context.make_array(sig.args[0])(context, builder, args[0])
            p_a = context.make_array(sig.args[1])(context, builder, args[1])
            idx_a = context.make_array(sig.args[2])(context, builder, args[2])
            fty = context.get_data_type(sig.args[1].dtype)
            size = context.get_abi_sizeof(fty)
            vty = ir.VectorType(fty, 64 // size)
            nv = ROW_BLOCK_BYTES // 64
            i64 = ir.IntType(64)
            a_, e_, h0_ = (context.cast(builder, v, t, types.int64) for v, t in zip(args[3:], sig.args[3:]))
            rowb = builder.extract_value(p_a.strides, 0)
            base = builder.ptrtoint(p_a.data, i64)
            accp = builder.add(builder.ptrtoint(acc_a.data, i64), builder.mul(h0_, ir.Constant(i64, size)))
            sums = [[cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in range(nv)] for _ in range(4)]
            q = cgutils.alloca_once_value(builder, a_)

            def add_row(qv, part):
                j = builder.sext(builder.load(builder.gep(idx_a.data, [qv])), i64)
                row = builder.add(base, builder.mul(j, rowb))
                for v in range(nv):
                    ptr = builder.inttoptr(builder.add(row, ir.Constant(i64, 64 * v)), vty.as_pointer())
                    slot = sums[part][v]
                    builder.store(builder.fadd(builder.load(slot), builder.load(ptr, align=size)), slot)

            head, body4, tail, body1, done = (builder.append_basic_block(n) for n in ("head", "by4", "tail", "by1", "done"))
            builder.branch(head)
            builder.position_at_end(head)
            builder.cbranch(builder.icmp_signed("<=", builder.add(builder.load(q), ir.Constant(i64, 4)), e_), body4, tail)
            builder.position_at_end(body4)
            qv = builder.load(q)
            for u in range(4):
                add_row(builder.add(qv, ir.Constant(i64, u)), u)
            builder.store(builder.add(qv, ir.Constant(i64, 4)), q)
            builder.branch(head)
            builder.position_at_end(tail)
            builder.cbranch(builder.icmp_signed("<", builder.load(q), e_), body1, done)
            builder.position_at_end(body1)
            qv = builder.load(q)
            add_row(qv, 0)
            builder.store(builder.add(qv, ir.Constant(i64, 1)), q)
            builder.branch(tail)
            builder.position_at_end(done)
            for v in range(nv):
                tot = builder.fadd(builder.fadd(builder.load(sums[0][v]), builder.load(sums[1][v])),
                                   builder.fadd(builder.load(sums[2][v]), builder.load(sums[3][v])))
                ptr = builder.inttoptr(builder.add(accp, ir.Constant(i64, 64 * v)), vty.as_pointer())
                builder.store(builder.fadd(builder.load(ptr, align=size), tot), ptr, align=size)
            return context.get_dummy_value()

        if not (isinstance(acc, types.Array) and isinstance(P, types.Array) and acc.dtype == P.dtype
                and P.dtype in (types.float32, types.float64) and isinstance(idx, types.Array)
                and idx.dtype == types.int32):
            return None
        return types.none(acc, P, idx, a, e, h0), codegen
else:
    def cttz(x):
        """The index of the lowest set bit of a nonzero integer (plain Python without numba)."""
        x = int(x)
        return (x & -x).bit_length() - 1

    add_row_blocks = add_row_blocks_python


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
    # gw += sum_t s_(t-1)^T GX_t for uint8 spikes Q (T, B, H) of 0s and 1s (q0 at t = 0). Each
    # thread takes a block of the samples (its own sum, added into gw at the end), TC steps at a
    # time. For each step the spikes of its samples are first turned into bit masks over them
    # (M[i, w, j]: bit b for sample b0 + 64 w + b; a branch-free pass over contiguous bytes that
    # vectorises); the samples in which j spiked are then read off the set bits (one tzcnt each, so
    # the cost follows the spike count, not B) into one list per row j over the TC steps. The TC
    # steps' rows of GX are copied column block by column block into P (P[c, i Bc + b] =
    # GX[t0 + i, b0 + b, c L:(c+1) L], at most 32 KB a block), and each row j of the sum adds its
    # listed rows from one block at a time (add_row_blocks): the block stays in L1 while all H rows
    # read it. Columns past NB L are summed row by row.
    T, B, H = GX.shape
    L = ROW_BLOCK_BYTES // GX.itemsize
    NB = H // L
    step = (B + nchunks - 1) // nchunks
    nch = (B + step - 1) // step
    part = np.zeros((max(nch - 1, 0), H, H), gw.dtype)
    for c in prange(nch):
        acc = gw if c == 0 else part[c - 1]
        b0 = c * step
        Bc = min(B, b0 + step) - b0
        NW = (Bc + 63) // 64
        TC = max(1, min(T, 32768 // (Bc * ROW_BLOCK_BYTES)))
        lst = np.empty(TC * Bc * H + 1, np.int32)
        off = np.empty(H + 1, np.int64)
        M = np.empty((TC, NW, H), np.uint64)
        P = np.empty((max(NB, 1), TC * Bc, L), GX.dtype)
        for ta in range(0, T, TC):
            te = min(T, ta + TC)
            for t in range(ta, te):
                sp = Q[t - 1] if t > 0 else q0
                Mt = M[t - ta]
                for w in range(NW):
                    mw = Mt[w]
                    for j in range(H):
                        mw[j] = 0
                for b in range(Bc):
                    r = sp[b0 + b]
                    mw = Mt[b >> 6]
                    bit = np.uint64(1) << np.uint64(b & 63)
                    for j in range(H):
                        mw[j] |= bit * np.uint64(r[j])
            k = 0
            for j in range(H):
                off[j] = k
                for t in range(ta, te):
                    for w in range(NW):
                        m = M[t - ta, w, j]
                        base = (t - ta) * Bc + 64 * w
                        while m != 0:
                            lst[k] = cttz(m) + base
                            k += 1
                            m &= m - np.uint64(1)
            off[H] = k
            if k == 0:
                continue
            for t in range(ta, te):
                for b in range(Bc):
                    g = GX[t, b0 + b]
                    n = (t - ta) * Bc + b
                    for cb in range(NB):
                        pr = P[cb, n]
                        for q in range(L):
                            pr[q] = g[cb * L + q]
            for cb in range(NB):
                Pc = P[cb]
                for j in range(H):
                    if off[j + 1] > off[j]:
                        add_row_blocks(acc[j], Pc, lst, off[j], off[j + 1], cb * L)
            if NB * L < H:
                for j in range(H):
                    gr = acc[j]
                    for q in range(off[j], off[j + 1]):
                        n = lst[q]
                        g = GX[ta + n // Bc, b0 + n % Bc]
                        for h in range(NB * L, H):
                            gr[h] += g[h]
    for c in range(nch - 1):
        pc = part[c]
        for j in range(H):
            gj, pj = gw[j], pc[j]
            for h in range(H):
                gj[h] += pj[h]


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
