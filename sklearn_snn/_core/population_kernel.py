"""The compiled population kernel of :class:`~sklearn_snn._core.evolution.PopulationSNN`, as plain
Python (numba compiles it on first use).

Imported only by :func:`~sklearn_snn._core.evolution.compiled_kernels`, once the numba backend
(:func:`~sklearn_snn._core.numba_backend.numba_kernels`) is available, so importing the package
does not import numba. Compiled twice there: a parallel build for the main thread and a serial one
for calls from other threads (see :mod:`~sklearn_snn._core.threads`). Without numba this module
still imports (:func:`population_kernel` is then plain Python, its ``prange`` a ``range``).
"""

from __future__ import annotations

try:
    from numba import prange
except ImportError:  # the backend is unavailable; keep the module importable (e.g. for doctests)
    prange = range

__all__ = ["population_kernel"]


def population_kernel(cur0, W, p_base, n_p, lay, fpar, consts, ipar, logits, spk, counts,
                       V_, S_, SYN_, A_, ACC_, VO_, AGG_, SURV_, CNT_):
    """Every individual ``p_base + p`` (p < n_p) of the population over all steps and layers.

    ``cur0`` (n_p * H0, Tc * B): first-layer currents (bias included) of the chunk, column
    ``t * B + b`` (``Tc == 1``: the same current every step). ``W`` (P, n_weights): effective
    weights. ``lay`` (L, 8) per layer: weight offset, bias offset, n_out, n_in, offset of its
    units in the state (-1: leaky readout), synaptic current, adaptation, subtractive reset.
    ``fpar`` (L, 6): beta, alpha, threshold, adapt, rho of the layer. ``consts``: one, zero,
    n_steps. ``ipar``: n_steps, readout code, save spikes, count spikes, static input.
    The state of one individual, (units, B) per array, lives in the ``*_[c]`` scratch of the
    chunk ``c`` of individuals that one thread walks; the lanes of the inner loops are the
    samples of the minibatch.
    """
    B, O = logits.shape[1], logits.shape[2]
    T, rcode, save, count, static = ipar[0], ipar[1], ipar[2] != 0, ipar[3] != 0, ipar[4] != 0
    one, zero, fT = consts[0], consts[1], consts[2]
    L = lay.shape[0]
    H0 = lay[0, 2]
    nchunks = V_.shape[0]
    step = (n_p + nchunks - 1) // nchunks
    for c in prange(nchunks):
        V, S, SYN, A, ACC = V_[c], S_[c], SYN_[c], A_[c], ACC_[c]
        VO, AGG, SURV, CNT = VO_[c], AGG_[c], SURV_[c], CNT_[c]
        for p in range(c * step, min(n_p, (c + 1) * step)):
            pg = p_base + p
            V[:] = zero
            SYN[:] = zero
            A[:] = zero
            VO[:] = zero
            AGG[:] = zero
            SURV[:] = one
            CNT[:] = zero
            for t in range(T):
                col = 0 if static else t * B
                for k in range(L):
                    w_off, b_off, n_out, n_in, h_off = lay[k, 0], lay[k, 1], lay[k, 2], lay[k, 3], lay[k, 4]
                    if k > 0:
                        # ACC = bias + W_k @ spikes of layer k-1, two outputs x four inputs per pass
                        prev = lay[k - 1, 4]
                        for o in range(n_out):
                            bo = W[pg, b_off + o]
                            for b in range(B):
                                ACC[o, b] = bo
                        o = 0
                        while o < n_out:
                            o2 = o + 1 if o + 1 < n_out else o
                            two = o2 > o
                            base0 = w_off + o * n_in
                            base1 = w_off + o2 * n_in
                            j = 0
                            while j + 4 <= n_in:
                                w00 = W[pg, base0 + j]
                                w01 = W[pg, base0 + j + 1]
                                w02 = W[pg, base0 + j + 2]
                                w03 = W[pg, base0 + j + 3]
                                w10 = W[pg, base1 + j] if two else zero
                                w11 = W[pg, base1 + j + 1] if two else zero
                                w12 = W[pg, base1 + j + 2] if two else zero
                                w13 = W[pg, base1 + j + 3] if two else zero
                                j0 = prev + j
                                for b in range(B):
                                    x0 = S[j0, b]
                                    x1 = S[j0 + 1, b]
                                    x2 = S[j0 + 2, b]
                                    x3 = S[j0 + 3, b]
                                    ACC[o, b] += w00 * x0 + w01 * x1 + w02 * x2 + w03 * x3
                                    ACC[o2, b] += w10 * x0 + w11 * x1 + w12 * x2 + w13 * x3
                                j += 4
                            while j < n_in:
                                w00 = W[pg, base0 + j]
                                w10 = W[pg, base1 + j] if two else zero
                                for b in range(B):
                                    x0 = S[prev + j, b]
                                    ACC[o, b] += w00 * x0
                                    ACC[o2, b] += w10 * x0
                                j += 1
                            o += 2
                    if h_off >= 0:
                        beta, alpha, thr, adapt, rho = fpar[k, 0], fpar[k, 1], fpar[k, 2], fpar[k, 3], fpar[k, 4]
                        cuba, alif, subtract = lay[k, 5] != 0, lay[k, 6] != 0, lay[k, 7] != 0
                        for h in range(n_out):
                            row = p * H0 + h
                            q = h_off + h
                            if not cuba and not alif and subtract:      # the common case, kept lean
                                if k == 0:
                                    for b in range(B):
                                        u = beta * V[q, b] + cur0[row, col + b]
                                        s = one if u >= thr else zero
                                        S[q, b] = s
                                        V[q, b] = u - thr * s
                                else:
                                    for b in range(B):
                                        u = beta * V[q, b] + ACC[h, b]
                                        s = one if u >= thr else zero
                                        S[q, b] = s
                                        V[q, b] = u - thr * s
                            else:
                                for b in range(B):
                                    cx = cur0[row, col + b] if k == 0 else ACC[h, b]
                                    if cuba:
                                        cx = alpha * SYN[q, b] + cx
                                        SYN[q, b] = cx
                                    u = beta * V[q, b] + cx
                                    th = thr + adapt * A[q, b] if alif else thr
                                    s = one if u >= th else zero
                                    S[q, b] = s
                                    if subtract:
                                        V[q, b] = u - thr * s
                                    else:
                                        V[q, b] = u * (one - s)
                                    if alif:
                                        A[q, b] = rho * A[q, b] + s
                            if save:
                                for b in range(B):
                                    spk[t, pg, q, b] = S[q, b] != zero
                            if count:
                                for b in range(B):
                                    CNT[b] += S[q, b]
                        if k == L - 1:            # spiking readout
                            for o in range(n_out):
                                q = h_off + o
                                if rcode == 0:
                                    for b in range(B):
                                        AGG[o, b] += S[q, b]
                                else:
                                    for b in range(B):
                                        SURV[o, b] = SURV[o, b] * (one - S[q, b])
                                        AGG[o, b] += SURV[o, b]
                    else:                         # leaky (non-spiking) readout
                        beta = fpar[k, 0]
                        for o in range(n_out):
                            if rcode == 2:
                                for b in range(B):
                                    v = beta * VO[o, b] + ACC[o, b]
                                    VO[o, b] = v
                                    # NaN propagates as in torch's max
                                    if t == 0 or v > AGG[o, b] or v != v:
                                        AGG[o, b] = v
                            elif rcode == 3:
                                for b in range(B):
                                    VO[o, b] = beta * VO[o, b] + ACC[o, b]
                                if t == T - 1:
                                    for b in range(B):
                                        AGG[o, b] = VO[o, b]
                            else:
                                for b in range(B):
                                    v = beta * VO[o, b] + ACC[o, b]
                                    VO[o, b] = v
                                    AGG[o, b] += v
            for o in range(O):
                for b in range(B):
                    v = AGG[o, b]
                    if rcode == 4:
                        v = v / fT
                    elif rcode == 1:
                        v = -v
                    logits[pg, b, o] = v
            if count:
                for b in range(B):
                    counts[pg, b] = CNT[b]
