"""Compiled EventProp loops (numba): the exact forward pass and the adjoint of
:mod:`sklearn_snn._core.eventprop`, one sample at a time, without Python per step.

The same model and the same grid rules as the torch reference (``simulate`` / ``adjoint``):
threshold tested at the end of each step, crossing located by bracketed Newton on the exact
within-step trajectory, reset by ``theta``, output layer keeping its first spikes only.
Feed-forward networks only (recurrent layers run on the torch reference). Everything is
computed in float64.

Input: per-sample CSR of input spikes sorted by (sample, step): ``in_ptr`` (B * T + 1,) and
``in_j``, ``in_o`` (neuron, offset). Weights: one (n_post, n_pre) float64 array per layer,
passed as a tuple.

The forward pass stores, per spike, (sample, layer, step, neuron, offset, current) in arrays
that grow with the number of spikes (doubling), and nothing per time step; the backward pass
reads them back. Memory therefore grows with the spikes, not with ``n_steps``.

Two exact shortcuts: a hidden layer that gets no more input (past the sample's last input
spike, or the layer below is quiet) and whose neurons all have ``V < theta`` and ``I < theta``
after a step can never spike again (``V`` relaxes towards ``I``, which decays), so the forward
pass stops updating it; the adjoint of a sample, zero after its last stored spike and its last
output voltage maximum, starts there.

This module imports numba at import time; :func:`sklearn_snn._core.eventprop.numba_loops`
imports it lazily (``None`` without numba or with ``SKLEARN_SNN_NUMBA=0``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_OPTS)
def _grow(a, n):
    out = np.empty(max(2 * a.shape[0], n), a.dtype)
    out[: a.shape[0]] = a
    return out


@numba.njit(**_OPTS)
def _locate(V0, I0, Wrow, js, os_, xs, xm, npre, theta, dt, tm, ts, max_newton, tol, u_tol, V1):
    """Crossing offset and current there for one neuron (inputs ``js[:npre]`` at ``os_[:npre]``;
    ``xs``, ``xm``: their ``exp(o / tau_syn)``, ``exp(o / tau_mem)``)."""
    c = ts / (tm - ts)
    lo, hi = 0.0, dt
    den = V1 - V0
    u = dt * (theta - V0) / den if den > 0 else dt
    u = min(max(u, 0.0), dt)
    for _ in range(max_newton):
        ss, sm = 0.0, 0.0
        for q in range(npre):
            if u > os_[q]:
                w = Wrow[js[q]]
                ss += w * xs[q]
                sm += w * xm[q]
        eus, eum = math.exp(-u / ts), math.exp(-u / tm)
        cur = eus * (I0 + ss)
        V = V0 * eum + c * (eum * (I0 + sm) - eus * (I0 + ss))
        g = V - theta
        if abs(g) <= tol or hi - lo <= u_tol:
            break
        if g < 0:
            lo = u
        else:
            hi = u
        slope = (cur - V) / tm
        un = u - g / slope if slope > 0 else -1.0
        if slope <= 0 or un < lo or un > hi or not math.isfinite(un):
            u = 0.5 * (lo + hi)
        else:
            u = un
    ss = 0.0
    for q in range(npre):
        if u > os_[q]:
            ss += Wrow[js[q]] * xs[q]
    return u, math.exp(-u / ts) * (I0 + ss)


@numba.njit(**_OPTS)
def forward(in_ptr, in_j, in_o, weights, B, T, theta, dt, tm, ts, ttfs, max_newton, tol, u_tol, early_exit):
    """Returns (out, spiked, k_max, v_max, ev_ptr, ev_l, ev_k, ev_i, ev_u, ev_I, n_spikes).

    ``early_exit`` (``ttfs`` only): a sample stops once every output neuron has spiked; nothing
    later changes the first spike times, and the adjoint is zero after the last of them, so the
    output and the gradients are the same (only ``n_spikes`` and the stored events stop there).
    """
    L1 = len(weights)
    c = ts / (tm - ts)
    em_dt, es_dt = math.exp(-dt / tm), math.exp(-dt / ts)
    k_dt = c * (em_dt - es_dt)
    H = 0
    for W in weights:
        H = max(H, W.shape[0])
    O = weights[L1 - 1].shape[0]
    Hx = max(H, weights[0].shape[1])
    out = np.empty((B, O))
    spiked = np.zeros((B, O), np.bool_)
    k_max = np.zeros((B, O), np.int64)
    v_max = np.empty((B, O))
    cap = 1024
    ev_l = np.empty(cap, np.int64)
    ev_k = np.empty(cap, np.int64)
    ev_i = np.empty(cap, np.int64)
    ev_u = np.empty(cap)
    ev_I = np.empty(cap)
    ev_ptr = np.zeros(B + 1, np.int64)
    n_spikes = np.zeros(L1, np.int64)
    n = 0
    V = np.zeros((L1, H))
    I = np.zeros((L1, H))
    t_first = np.empty(O)
    # spikes of the layer below in the current step (neuron, offset)
    pj = np.empty(Hx, np.int64)
    po = np.empty(Hx)
    aI = np.empty(Hx)
    aV = np.empty(Hx)
    xs = np.empty(Hx)
    xm = np.empty(Hx)
    cj = np.empty(H, np.int64)
    co = np.empty(H)
    dead = np.zeros(L1, np.bool_)
    for b in range(B):
        V[:] = 0.0
        I[:] = 0.0
        t_first[:] = np.inf
        v_max[b, :] = -np.inf
        n_first = 0
        dead[:] = False
        last_in = -1
        for k in range(T):
            if in_ptr[b * T + k + 1] > in_ptr[b * T + k]:
                last_in = k
        for k in range(T):
            a0, z0 = in_ptr[b * T + k], in_ptr[b * T + k + 1]
            npre = z0 - a0
            for q in range(npre):
                pj[q] = in_j[a0 + q]
                po[q] = in_o[a0 + q]
            # no input reaches the layer after this step (layer 0: past the last input spike)
            quiet_below = k >= last_in
            for l in range(L1):
                W = weights[l]
                h = W.shape[0]
                spiking = l < L1 - 1 or ttfs
                ncur = 0
                if l < L1 - 1 and dead[l]:
                    # a hidden layer without input whose neurons all have V < theta and I < theta
                    # can never spike again (V relaxes towards I, which decays): skip it
                    npre = 0
                    continue
                all_low = True
                # each arrival's effect on I and V at the end of the step (shared by all neurons)
                for q in range(npre):
                    rem = dt - po[q]
                    es, em = math.exp(-rem / ts), math.exp(-rem / tm)
                    aI[q] = es
                    aV[q] = c * (em - es)
                    xs[q] = math.exp(po[q] / ts)
                    xm[q] = math.exp(po[q] / tm)
                for i in range(h):
                    V0, I0 = V[l, i], I[l, i]
                    V1 = V0 * em_dt + I0 * k_dt
                    I1 = I0 * es_dt
                    for q in range(npre):
                        w = W[i, pj[q]]
                        I1 += w * aI[q]
                        V1 += w * aV[q]
                    if l == L1 - 1 and V1 > v_max[b, i]:
                        v_max[b, i] = V1
                        k_max[b, i] = k
                    if spiking and V1 >= theta:
                        u, Ic = _locate(V0, I0, W[i], pj, po, xs, xm, npre, theta, dt, tm, ts, max_newton, tol,
                                        u_tol, V1)
                        n_spikes[l] += 1
                        V1 -= theta * math.exp(-(dt - u) / tm)
                        cj[ncur] = i
                        co[ncur] = u
                        ncur += 1
                        keep = True
                        if l == L1 - 1:
                            keep = not math.isfinite(t_first[i])
                            if keep:
                                t_first[i] = k * dt + u
                                n_first += 1
                        if keep:
                            if n >= ev_l.shape[0]:
                                ev_l = _grow(ev_l, n + 1)
                                ev_k = _grow(ev_k, n + 1)
                                ev_i = _grow(ev_i, n + 1)
                                ev_u = _grow(ev_u, n + 1)
                                ev_I = _grow(ev_I, n + 1)
                            ev_l[n] = l
                            ev_k[n] = k
                            ev_i[n] = i
                            ev_u[n] = u
                            ev_I[n] = Ic
                            n += 1
                    V[l, i] = V1
                    I[l, i] = I1
                    if V1 >= theta or I1 >= theta:
                        all_low = False
                if l < L1 - 1:
                    dead[l] = quiet_below and all_low
                    quiet_below = dead[l]
                npre = ncur
                for q in range(ncur):
                    pj[q] = cj[q]
                    po[q] = co[q]
            if ttfs and early_exit and n_first == O:
                break
        ev_ptr[b + 1] = n
        for i in range(O):
            if ttfs:
                if math.isfinite(t_first[i]):
                    spiked[b, i] = True
                    out[b, i] = t_first[i]
                else:
                    out[b, i] = T * dt + tm * (theta - v_max[b, i]) / theta
            else:
                out[b, i] = v_max[b, i]
    return out, spiked, k_max, v_max, ev_ptr, ev_l[:n], ev_k[:n], ev_i[:n], ev_u[:n], ev_I[:n], n_spikes


@numba.njit(**_OPTS)
def _kappa(u, tm, ts):
    return ts / (tm - ts) * (math.exp(-u / tm) - math.exp(-u / ts))


@numba.njit(**_OPTS)
def backward(in_ptr, in_j, in_o, weights, grads, B, T, theta, dt, tm, ts, ttfs, min_slope, spiked, k_max,
             grad_out, ev_ptr, ev_l, ev_k, ev_i, ev_u, ev_I):
    """Accumulates d(sum grad_out * out)/dW into ``grads`` (one float64 array per layer)."""
    L1 = len(weights)
    c = ts / (tm - ts)
    em_dt, es_dt = math.exp(-dt / tm), math.exp(-dt / ts)
    k_dt = c * (em_dt - es_dt)
    ms = min_slope * theta / tm
    H = 0
    for W in weights:
        H = max(H, W.shape[0])
    O = weights[L1 - 1].shape[0]
    lv = np.zeros((L1, H))
    li = np.zeros((L1, H))
    lv0 = np.empty(H)
    li0 = np.empty(H)
    Hx = max(H, weights[0].shape[1])
    g_above = np.zeros(Hx)
    g_new = np.zeros(Hx)
    start = np.empty((T, L1 + 1), np.int64)
    delta = np.empty(H)
    pj = np.empty(Hx, np.int64)
    po = np.empty(Hx)
    for b in range(B):
        lv[:] = 0.0
        li[:] = 0.0
        g_above[:] = 0.0
        # events of this sample by (step, layer): start[k, l]:start[k, l + 1] (appended in that order)
        e0, e1 = ev_ptr[b], ev_ptr[b + 1]
        q = e0
        for k in range(T):
            for l in range(L1):
                start[k, l] = q
                while q < e1 and ev_k[q] == k and ev_l[q] == l:
                    q += 1
            start[k, L1] = q
        # the adjoint is zero after the last stored spike and the last voltage maximum: start there
        k_hi = -1
        for e in range(e0, e1):
            k_hi = max(k_hi, ev_k[e])
        for i in range(O):
            k_hi = max(k_hi, k_max[b, i])
        for k in range(k_hi, -1, -1):
            g_above[:] = 0.0
            for l in range(L1 - 1, -1, -1):
                W = weights[l]
                G = grads[l]
                h = W.shape[0]
                if l == L1 - 1:
                    for i in range(O):
                        if k_max[b, i] == k:
                            if not ttfs:
                                lv[l, i] += grad_out[b, i]
                            elif not spiked[b, i]:
                                lv[l, i] += -grad_out[b, i] * tm / theta
                for i in range(h):
                    lv0[i] = lv[l, i] * em_dt
                    li0[i] = li[l, i] * es_dt + lv[l, i] * k_dt
                a, z = start[k, l], start[k, l + 1]
                for e in range(a, z):
                    i, u, Ic = ev_i[e], ev_u[e], ev_I[e]
                    gts = g_above[i]
                    if l == L1 - 1 and spiked[b, i]:
                        gts += grad_out[b, i]
                    slope = max((Ic - theta) / tm, ms)
                    lvp = lv[l, i] * math.exp(-(dt - u) / tm)
                    d = (theta / tm * lvp - gts) / slope
                    delta[e - a] = d
                    lv0[i] += math.exp(-u / tm) * d
                    li0[i] += _kappa(u, tm, ts) * d
                # presynaptic arrivals of this step
                if l == 0:
                    pa, pz = in_ptr[b * T + k], in_ptr[b * T + k + 1]
                    npre = pz - pa
                    for q in range(npre):
                        pj[q] = in_j[pa + q]
                        po[q] = in_o[pa + q]
                else:
                    pa, pz = start[k, l - 1], start[k, l]
                    npre = pz - pa
                    for q in range(npre):
                        pj[q] = ev_i[pa + q]
                        po[q] = ev_u[pa + q]
                for q in range(npre):
                    j, o = pj[q], po[q]
                    rem = dt - o
                    es, em = math.exp(-rem / ts), math.exp(-rem / tm)
                    aI, aV = es, c * (em - es)
                    sI, sV = 0.0, 0.0
                    for i in range(h):
                        G[i, j] += li[l, i] * aI + lv[l, i] * aV
                        sI += li[l, i] * W[i, j]
                        sV += lv[l, i] * W[i, j]
                    gt = aI * sI / ts + (aV / ts - em / tm) * sV
                    for e in range(a, z):
                        i, u = ev_i[e], ev_u[e]
                        if u > o:
                            du = u - o
                            kd = _kappa(du, tm, ts)
                            G[i, j] += kd * delta[e - a]
                            gt += W[i, j] * (kd / ts - math.exp(-du / tm) / tm) * delta[e - a]
                    g_new[j] = gt
                for i in range(h):
                    lv[l, i] = lv0[i]
                    li[l, i] = li0[i]
                # the gradient w.r.t. the spike times of the layer below, at its spikes of this step
                g_above[:] = 0.0
                for q in range(npre):
                    g_above[pj[q]] = g_new[pj[q]]
                    g_new[pj[q]] = 0.0
