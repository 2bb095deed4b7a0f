"""Fused time loops: the neuron scan with a hand-written backward pass.

``spiking_scan`` runs a population of spiking neurons over all time steps of precomputed input
currents ``x`` of shape ``(T, B, H)``. Autograd sees one node instead of ~10 per step: the forward
keeps only the membrane before reset (float) and the spikes (bool) -- plus the adaptation
variable for ``alif`` -- and the backward pass walks the adjoint recurrence of
:mod:`~sklearn_snn._core.neurons` in reverse. Everything that does not depend on the reverse
recurrence (surrogate derivatives, reset coefficients, weight and parameter gradients) is computed
for all steps at once, so the per-step work is one fused op for the feed-forward LIF case.

The adjoint (``g*`` = gradient of the loss w.r.t. that quantity, ``sg_t`` the surrogate derivative at
``u_t - theta_t``)::

    gs_t   = dL/ds_t + (gi_{t+1} W_rec^T) + ga_t + [not detach_reset] gv_t * dv_t/ds_t
    gu_t   = gv_t * dv_t/du_t + gs_t * sg_t
    ga_t-1 = rho * ga_t - adapt * gs_t * sg_t                     (alif)
    gsyn_t = gu_t + alpha * gsyn_{t+1};  gi_t = gsyn_t            (cuba; else gi_t = gu_t)
    gv_t-1 = beta * gu_t

``reference_scan`` is the plain per-step autograd version built from ``neurons.neuron_step``; the
tests hold the two equal for every model, reset mode, surrogate and recurrence option.

Backends. ``_ScanTorch`` runs the loops above with torch ops (any device, any dtype). On CPU
float32/float64 tensors, when numba is installed (optional: ``pip install numba``), the compiled
``_ScanCompiled`` runs each loop over time as one call -- the forward scan and the adjoint
recurrence parallel over the batch, named surrogates evaluated inside the loop, the recurrent
input of binary spikes summed from the rows of the neurons that spiked, eight rows per pass -- and
stores only the membrane, the spikes (the layer's output, which the next layer keeps anyway) and,
for ``alif``, the adaptation. A recurrent layer's adjoint is the exception: its recurrent term
``gi_{t+1} W_rec^T`` is dense, so the backward pass steps through time from Python with one BLAS
matmul for the whole batch per step between kernel calls (a per-sample product in the kernel was
3x slower). The kernels use numpy's error model (no zero-division check), without which the
surrogate's division keeps the lane loops from vectorising (2.3x slower backward). The backend
is chosen per call (``backend='auto'``); ``SKLEARN_SNN_NUMBA=0`` disables the compiled one.
:func:`sparse_linear` is the input projection for mostly-zero inputs (spike trains).
"""

from __future__ import annotations

import os as _os
import sys as _sys
import threading as _threading
import types as _types

import torch

from . import buffers as _buffers
from .neurons import NeuronSpec, neuron_step
from .surrogate import get_surrogate, spike


def _is_tensor(v):
    return isinstance(v, torch.Tensor)


def _scale_add(x, y, k, out=None):
    """``x + k * y`` for a float or a tensor ``k`` in one op."""
    if _is_tensor(k):
        return torch.addcmul(x, y, k, out=out) if out is not None else torch.addcmul(x, y, k)
    return torch.add(x, y, alpha=k, out=out) if out is not None else torch.add(x, y, alpha=k)


def _reduce_to(grad, like):
    """Sum a gradient over broadcast dimensions down to the shape of ``like``."""
    if not _is_tensor(like):
        return None
    g = grad
    while g.dim() > like.dim():
        g = g.sum(0)
    for i, n in enumerate(like.shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g.reshape(like.shape)


class _ScanTorch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, deriv, slope, inplace, record):
        T, B, H = x.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        # inplace: the membrane overwrites the input current (step t reads x[t] before writing U[t])
        U = x.detach() if inplace else torch.empty_like(x)
        Sb = torch.empty((T, B, H), dtype=torch.bool, device=x.device)
        A = torch.empty_like(x) if alif else None
        neg_thr = -thr if _is_tensor(thr) else torch.tensor(-thr, dtype=x.dtype, device=x.device)
        v, syn, a, s_prev = v0, syn0, a0, s0
        for t in range(T):
            xt = x[t]
            if rec:
                xt = torch.addmm(xt, s_prev, w_rec)
            if cuba:
                syn = _scale_add(xt, syn, alpha)
                xt = syn
            u = _scale_add(xt, v, beta, out=U[t])
            if alif:
                A[t] = a
                torch.ge(u, a * spec.adapt + thr, out=Sb[t])
            else:
                torch.ge(u, thr, out=Sb[t])
            s = Sb[t]
            v = torch.addcmul(u, s, neg_thr) if spec.reset == "subtract" else u.masked_fill(s, 0.0)
            if alif:
                a = torch.add(a * spec.rho, s)
            if rec:
                s_prev = s.to(x.dtype)
        S = Sb.to(x.dtype)
        ctx.spec, ctx.deriv, ctx.slope = spec, deriv, slope
        ctx.params = (beta, alpha, thr)
        ctx.set_materialize_grads(False)      # no (T, B, H) zeros for the membrane's unused gradient
        ctx.save_for_backward(w_rec, U, Sb, A, v0, syn0, a0, s0)
        final = tuple(f.detach().clone() for f in (v, syn if cuba else v0, a if alif else v0,
                                                    s_prev if rec else S[-1]))
        ctx.mark_non_differentiable(U, *final)
        return (S, U) + final

    @staticmethod
    def backward(ctx, gS, gU, *g_final):
        w_rec, U, Sb, A, v0, syn0, a0, s0 = ctx.saved_tensors
        spec, deriv, slope = ctx.spec, ctx.deriv, ctx.slope
        beta, alpha, thr = ctx.params
        T, B, H = U.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract, dr = spec.reset == "subtract", spec.detach_reset
        if gS is None:
            gS = torch.zeros_like(U)
        S = Sb.to(U.dtype)
        theta = (A * spec.adapt + thr) if alif else thr
        SG = deriv(U - theta, slope)
        # dv_t/du_t and (without detach) dv_t/ds_t, for all steps at once
        q = 1.0 if subtract else 1.0 - S
        r = (-thr if subtract else -U) if not dr else None
        D = q + r * SG if not dr else q
        GU = torch.empty_like(U)
        need_gs = alif or rec or (not dr) or ctx.needs_input_grad[4]

        if not (rec or alif):
            C = gS * SG
            gu = torch.zeros_like(U[0])
            if isinstance(D, float) and not _is_tensor(beta):
                for t in range(T - 1, -1, -1):
                    gu = torch.add(C[t], gu, alpha=beta, out=GU[t])
            else:
                DB = torch.as_tensor(D, dtype=U.dtype, device=U.device) * beta
                DB = DB.expand_as(U) if DB.dim() < 3 else DB
                for t in range(T - 1, -1, -1):
                    gu = torch.addcmul(C[t], DB[t], gu, out=GU[t])
            GS = None
        else:
            GS = torch.empty_like(U) if need_gs else None
            gu = torch.zeros_like(U[0])
            ga = torch.zeros_like(U[0]) if alif else None
            gi_next = None
            gsyn = torch.zeros_like(U[0]) if cuba else None
            GI = torch.empty_like(U) if cuba and rec else None
            for t in range(T - 1, -1, -1):
                gv = gu * beta
                G = gS[t]
                if rec and gi_next is not None:
                    G = torch.addmm(G, gi_next, w_rec.t())
                if alif:
                    G = G + ga
                if dr:
                    gs = G
                else:
                    gs = G + gv * (r[t] if _is_tensor(r) and r.dim() == 3 else r)
                if GS is not None:
                    GS[t] = gs
                gsg = gs * SG[t]
                if subtract:
                    gu = torch.add(gsg, gv, out=GU[t])
                else:
                    gu = torch.addcmul(gsg, gv, q[t], out=GU[t])
                if alif:
                    ga = torch.add(ga * spec.rho, gsg, alpha=-spec.adapt)
                if rec:
                    if cuba:
                        gsyn = _scale_add(gu, gsyn, alpha)
                        GI[t] = gsyn
                        gi_next = gsyn
                    else:
                        gi_next = gu
        # synaptic filter: gi_t = gu_t + alpha * gi_{t+1}
        if cuba:
            if rec:
                GX = GI
            else:
                GX = torch.empty_like(U)
                g = torch.zeros_like(U[0])
                for t in range(T - 1, -1, -1):
                    g = _scale_add(GU[t], g, alpha, out=GX[t])
        else:
            GX = GU

        grads = [None] * 14
        grads[0] = GX if ctx.needs_input_grad[0] else None
        if rec and ctx.needs_input_grad[1]:
            S_prev = torch.cat([s0.unsqueeze(0), S[:-1]], 0)
            grads[1] = S_prev.reshape(T * B, H).t() @ GX.reshape(T * B, H)
        if any(ctx.needs_input_grad[2:5]):
            if GS is None and ctx.needs_input_grad[4]:
                GV = torch.cat([GU[1:] * beta, torch.zeros_like(U[:1])], 0)
                GS = gS if dr else gS + GV * r
            grads[2:5] = _param_grads(ctx.needs_input_grad, U, S, GU, GX, GS, SG, v0, syn0,
                                      beta, alpha, thr, cuba, subtract)
        return tuple(grads)


def _param_grads(needs, U, S, GU, GX, GS, SG, v0, syn0, beta, alpha, thr, cuba, subtract):
    """Gradients of the decays and the threshold from the stored trajectory (both backends).

    ``GU``/``GX`` are the adjoints of the pre-reset membrane and of the input current, ``GS`` the
    total gradient reaching the spikes and ``SG`` the surrogate derivative, all (T, B, H).
    """
    gbeta = galpha = gthr = None
    # post-reset membrane v_t, needed for the decay and synapse gradients
    V = U - thr * S if subtract else U * (1.0 - S)
    V_prev = torch.cat([v0.unsqueeze(0), V[:-1]], 0)
    if needs[2]:
        gbeta = _reduce_to((GU * V_prev).sum((0, 1)), beta)
    if cuba and needs[3]:
        SYN = U - beta * V_prev
        SYN_prev = torch.cat([syn0.unsqueeze(0), SYN[:-1]], 0)
        galpha = _reduce_to((GX * SYN_prev).sum((0, 1)), alpha)
    if needs[4]:
        g = -(GS * SG)
        if subtract:
            GV = torch.cat([GU[1:] * beta, torch.zeros_like(U[:1])], 0)
            g = g - GV * S
        gthr = _reduce_to(g.sum((0, 1)), thr)
    return [gbeta, galpha, gthr]


# ----------------------------------------------------------------------------------------------
# Compiled backend (optional): numba loops over time for the elementwise scan on CPU tensors.
#
# One call runs the whole forward scan (parallel over the batch: the rows are independent, even
# with recurrent weights), one call the whole adjoint recurrence, with the named surrogates
# evaluated inside the loop so nothing of size (T, B, H) is built besides the outputs. The
# kernels are written once as plain Python and compiled lazily on first use (and cached on disk),
# so importing the package does not import numba. Without numba, for CUDA tensors, for dtypes
# other than float32/float64 or for per-neuron parameters not broadcastable to (H,), the
# pure-torch ``_ScanTorch`` runs instead: it computes the same values.
# ----------------------------------------------------------------------------------------------

_SURROGATE_CODES = {"fast_sigmoid": 0, "sigmoid": 1, "arctan": 2, "triangle": 3, "gaussian": 4,
                    "exponential": 5, "straight_through": 6}
# fpar slots: 0 adapt, 1 rho, 2 one, 3 zero, 4 k, 5..6 surrogate constants
_NPAR = 8


def _surrogate_code(deriv):
    from .surrogate import SURROGATES

    for name, fn in SURROGATES.items():
        if fn is deriv:
            return _SURROGATE_CODES[name]
    return -1


def _surrogate_consts(code, k):
    import math

    if code == 2:
        return 0.5 * k, 0.5 * math.pi * k
    if code == 4:
        return k / math.sqrt(2.0 * math.pi), 0.5
    if code == 5:
        return 0.5 * k, 0.0
    return 0.0, 0.0


_FWD_TEMPLATE = '''
import numpy as np
import numba
from numba import prange

REC, CUBA, ALIF, SUBTRACT, SAVEQ, INPLACE = {rec}, {cuba}, {alif}, {subtract}, {saveq}, {inplace}
{add_rows}

@numba.njit(cache=True, nogil=True, error_model="numpy"{par})
def forward(t0, t1, x, wrec, beta, alpha, thr, fpar, U, S, Q, A, v, syn, a, sp, nchunks):
    # Steps t0..t1-1. v, syn, a, sp: (B, H) state, current on entry, updated on exit. The batch is
    # split into nchunks blocks (one per thread); each walks time in the outer loop so memory
    # streams. U may be x itself (the membrane overwrites the current it was computed from); Q is
    # a uint8 copy of the spikes, written only when the backward pass needs them. The recurrent
    # input s_(t-1) @ wrec is a sum of the rows of the neurons that spiked: their indices are
    # listed without branches and the rows added eight at a time (one accumulator pass per eight).
    T, B, H = x.shape
    adapt, rho, one, zero = fpar[0], fpar[1], fpar[2], fpar[3]
    step = (B + nchunks - 1) // nchunks
    for c in {loop}(nchunks):
        buf = np.empty(H + 1, np.int32)
        for t in range(t0, t1):
            for b in range(c * step, min(B, (c + 1) * step)):
                vb, synb, ab, spb = v[b], syn[b], a[b], sp[b]
                ur, sr = U[t, b], S[t, b]
                if INPLACE:
                    xr = ur
                else:
                    xr = x[t, b]
                if REC:
                    k = 0
                    for j in range(H):
                        buf[k] = j
                        k += spb[j] != zero
                    if not INPLACE:
                        for h in range(H):
                            ur[h] = xr[h]
                        xr = ur
                    add_rows(ur, wrec, buf, 0, k)
                if ALIF:
                    ar = A[t, b]
                if SAVEQ:
                    qr = Q[t, b]
                for h in range(H):
                    xt = xr[h]
                    if CUBA:
                        xt = alpha[h] * synb[h] + xt
                        synb[h] = xt
                    u = beta[h] * vb[h] + xt
                    ur[h] = u
                    if ALIF:
                        ar[h] = ab[h]
                        s = one if u >= thr[h] + adapt * ab[h] else zero
                    else:
                        s = one if u >= thr[h] else zero
                    sr[h] = s
                    if SAVEQ:
                        qr[h] = 1 if s != zero else 0
                    if SUBTRACT:
                        vb[h] = u - thr[h] * s
                    else:
                        vb[h] = u * (one - s)
                    if ALIF:
                        ab[h] = rho * ab[h] + s
                    spb[h] = s
'''

_SURR_SRC = {
    -1: "sg = sgr[h]",
    0: "q = one / (one + k * abs(d))\n{ind}sg = q * q",
    1: "q = one / (one + np.exp(-(k * d)))\n{ind}sg = k * q * (one - q)",
    2: "q = c2 * d\n{ind}sg = c1 / (one + q * q)",
    3: "q = one - k * abs(d)\n{ind}sg = k * (q if q > zero else zero)",
    4: "q = k * d\n{ind}sg = c1 * np.exp(-(c2 * (q * q)))",
    5: "sg = c1 * np.exp(-(k * abs(d)))",
    6: "sg = one",
}

_BWD_TEMPLATE = '''
import numpy as np
import numba
from numba import prange

REC, CUBA, ALIF, SUBTRACT, DETACH = {rec}, {cuba}, {alif}, {subtract}, {detach}
NEED_GU, NEED_GS, HAS_GS, INPLACE = {need_gu}, {need_gs}, {has_gs}, {inplace}

@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def lane(t, b, H, gS, U, Q, A, SG, beta, alpha, thr, rt, gu, ga, gsyn, GX, GU, GS, fpar):
    # Q: the spikes as uint8. With INPLACE the input gradient overwrites the membrane it was
    # computed from (each element is read before it is written), so GX is U.
    adapt, rho, one, zero, k, c1, c2 = fpar[0], fpar[1], fpar[2], fpar[3], fpar[4], fpar[5], fpar[6]
    ur = U[t, b]
    if INPLACE:
        gxr = ur
    else:
        gxr = GX[t, b]
    if HAS_GS:
        gsr = gS[t, b]
    if REC:
        rtr = rt[b]
    if ALIF:
        ar = A[t, b]
    if not SUBTRACT:
        sr = Q[t, b]
    if NEED_GS:
        gso = GS[t, b]
    if NEED_GU:
        guo = GU[t, b]
    if {code} < 0:
        sgr = SG[t, b]
    for h in range(H):
        gv = gu[h] * beta[h]
        if HAS_GS:
            G = gsr[h]
        else:
            G = zero
        if REC:
            G = G + rtr[h]
        if ALIF:
            G = G + ga[h]
        u = ur[h]
        if DETACH:
            gs = G
        elif SUBTRACT:
            gs = G + gv * (-thr[h])
        else:
            gs = G + gv * (-u)
        if NEED_GS:
            gso[h] = gs
        if ALIF:
            d = u - (ar[h] * adapt + thr[h])
        else:
            d = u - thr[h]
        {surrogate}
        gsg = gs * sg
        if SUBTRACT:
            g = gsg + gv
        else:
            g = gsg + (zero if sr[h] != 0 else gv)
        gu[h] = g
        if NEED_GU:
            guo[h] = g
        if ALIF:
            ga[h] = ga[h] * rho - adapt * gsg
        if CUBA:
            g = g + alpha[h] * gsyn[h]
            gsyn[h] = g
        gxr[h] = g


@numba.njit(cache=True, nogil=True, error_model="numpy"{par})
def backward(t_hi, t_lo, gS, U, Q, A, SG, beta, alpha, thr, fpar, GX, GU, GS, gu, ga, gsyn, rt, nchunks):
    # Steps t_hi-1 down to t_lo. gu, ga, gsyn: (B, H) adjoint state, carried between calls. A
    # recurrent layer calls this one step at a time, with rt = (the next step's input adjoint)
    # @ W_rec^T computed by one matmul over the whole batch in between.
    B = U.shape[1]
    H = U.shape[2]
    step = (B + nchunks - 1) // nchunks
    for c in {loop}(nchunks):
        for t in range(t_hi - 1, t_lo - 1, -1):
            for b in range(c * step, min(B, (c + 1) * step)):
                lane(t, b, H, gS, U, Q, A, SG, beta, alpha, thr, rt, gu[b], ga[b], gsyn[b], GX, GU, GS, fpar)
'''


def _cache_dir():
    d = _os.environ.get("SKLEARN_SNN_KERNEL_CACHE")
    if not d:
        base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
        d = _os.path.join(base, "sklearn_snn", "kernels")
    try:
        _os.makedirs(d, exist_ok=True)
        if not _os.access(d, _os.W_OK):
            raise OSError
    except OSError:
        import tempfile

        d = _os.path.join(tempfile.gettempdir(), f"sklearn_snn_kernels_{_os.getuid() if hasattr(_os, 'getuid') else 0}")
        _os.makedirs(d, exist_ok=True)
    return d


_MODULES = {}
_MODULE_LOCK = _threading.Lock()


def _specialised(kind, **flags):
    """The module of kernels compiled for these flags (constants, so dead branches vanish).

    Each flag combination is rendered from a template into a small source file in a cache
    directory (``SKLEARN_SNN_KERNEL_CACHE``, default ``~/.cache/sklearn_snn/kernels``) and imported
    from there, so numba's on-disk cache keeps the machine code between processes.
    """
    import hashlib
    import importlib.util

    key = (kind,) + tuple(sorted(flags.items()))
    mod = _MODULES.get(key)
    if mod is not None:
        return mod
    with _MODULE_LOCK:
        mod = _MODULES.get(key)
        if mod is not None:
            return mod
        parallel = flags.pop("parallel")
        fmt = dict(flags, par=", parallel=True" if parallel else "", loop="prange" if parallel else "range",
                   add_rows=_add_rows_src())
        if kind == "fwd":
            src = _FWD_TEMPLATE.format(**fmt)
        else:
            fmt["surrogate"] = _SURR_SRC[fmt["code"]].format(ind=" " * 8)
            src = _BWD_TEMPLATE.format(**fmt)
        digest = hashlib.sha1(src.encode()).hexdigest()[:16]
        name = f"snn_{kind}_{digest}"
        path = _os.path.join(_cache_dir(), name + ".py")
        if not _os.path.exists(path):
            tmp = f"{path}.{_os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(src)
            _os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        _sys.modules[name] = mod      # numba's cache pickles functions by module name
        spec.loader.exec_module(mod)
        _MODULES[key] = mod
        return mod


def _nb_leaky(x, beta, V, reverse):
    T, B, H = x.shape
    for b in prange(B):
        for h in range(H):
            V[T - 1 if reverse else 0, b, h] = x[T - 1 if reverse else 0, b, h]
        for i in range(1, T):
            t = T - 1 - i if reverse else i
            tp = t + 1 if reverse else t - 1
            for h in range(H):
                V[t, b, h] = x[t, b, h] + beta[h] * V[tp, b, h]


def _nb_sparse_count(x, counts, other):
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


def _nb_sparse_project(x, wT, bias, indptr, indices, values, out, binary, nchunks):
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
                _nb_add_rows(acc, wT, buf, 0, k)
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


def _add_rows_src():
    """The source of :func:`_nb_add_rows` as the templates' inlined ``add_rows`` (one definition;
    numba's disk cache needs the package's source files anyway)."""
    import inspect

    src = inspect.getsource(_nb_add_rows.py_func if hasattr(_nb_add_rows, "py_func") else _nb_add_rows)
    return ('\n\n@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")\n'
            + src.replace("def _nb_add_rows(", "def add_rows(", 1))


def _nb_add_rows(acc, M, idx, a, e):
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


def _nb_sparse_wgrad(indptr, indices, values, G, dst, r0, r1, binary, block):
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
                _nb_add_rows(dst[f], G, rows, start[f], start[f + 1])


def _nb_sparse_wgrad_par(indptr, indices, values, G, gwT, nchunks, binary, block):
    # gwT = x.T @ G with the rows of x split between the threads, each summing into its own (F, H)
    # buffer (the first into gwT itself), then the buffers added column block by column block
    N, H = G.shape
    F = gwT.shape[0]
    extra = np.zeros((nchunks - 1, F, H), gwT.dtype)
    step = (N + nchunks - 1) // nchunks
    for c in prange(nchunks):
        dst = gwT if c == 0 else extra[c - 1]
        _nb_sparse_wgrad(indptr, indices, values, G, dst, c * step, min(N, (c + 1) * step), binary, block)
    fstep = (F + nchunks - 1) // nchunks
    for c in prange(nchunks):
        for f in range(c * fstep, min(F, (c + 1) * fstep)):
            row = gwT[f]
            for k in range(nchunks - 1):
                other = extra[k, f]
                for h in range(H):
                    row[h] += other[h]


def _nb_rec_wgrad(Q, q0, GX, gw, nchunks):
    # gw = sum_t s_(t-1)^T GX_t for uint8 spikes Q (T, B, H) (q0 at t = 0), each thread taking a
    # range of rows j of gw: for each step the samples in which j spiked are listed without
    # branches and their rows of GX_t summed into gw[j] eight at a time
    T, B, H = GX.shape
    step = (H + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lst = np.empty(B + 1, np.int32)
        for t in range(T):
            sp = Q[t - 1] if t > 0 else q0
            gx = GX[t]
            for j in range(c * step, min(H, (c + 1) * step)):
                k = 0
                for b in range(B):
                    lst[k] = b
                    k += sp[b, j] != 0
                if k > 0:
                    _nb_add_rows(gw[j], gx, lst, 0, k)


def _nb_narrow_gx(G, W, out, nchunks):
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


def _nb_pack_bits(x, P):
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


def _nb_bits_wgrad(P, G, gw, nchunks):
    # gw (K, H) += sum_n G_n^T x_n for binary rows x_n packed in P (see _nb_pack_bits): four rows
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


_NB = None          # compiled kernels (a namespace) once built, False when numba is unavailable
np = None           # numpy, bound when the compiled backend loads
prange = range      # numba.prange once the compiled backend loads


def _numba_kernels():
    """The compiled kernels, or ``None`` when numba is not installed (or disabled)."""
    global _NB, np, prange
    if _NB is None:
        try:
            if _os.environ.get("SKLEARN_SNN_NUMBA", "1") == "0":
                raise ImportError
            import numba
            import numpy

            np, prange = numpy, numba.prange
            opts = dict(cache=True, nogil=True)
            g = globals()
            g["_nb_add_rows"] = numba.njit(**opts, error_model="numpy", inline="always")(_nb_add_rows)
            g["_nb_sparse_wgrad"] = numba.njit(**opts, error_model="numpy")(_nb_sparse_wgrad)
            g["_nb_pack_bits"] = numba.njit(**opts, error_model="numpy")(_nb_pack_bits)
            par = dict(opts, parallel=True)
            fns = dict(leaky=_nb_leaky, sparse_count=_nb_sparse_count, sparse_project=_nb_sparse_project,
                       sparse_wgrad=_nb_sparse_wgrad_par, narrow_gx=_nb_narrow_gx,
                       rec_wgrad=_nb_rec_wgrad, bits_wgrad=_nb_bits_wgrad)
            # parallel kernels for the main thread; serial ones (compiled only if used) for calls
            # from other threads, so no threading layer ever sees nested or concurrent launches
            _start_thread_pool(numba)
            _NB = _types.SimpleNamespace(
                numba=numba,
                par=_types.SimpleNamespace(**{k: numba.njit(**par)(_variant(f, "par")) for k, f in fns.items()}),
                ser=_types.SimpleNamespace(**{k: numba.njit(**opts)(_variant(f, "ser")) for k, f in fns.items()}),
            )
        except ImportError:
            _NB = False
    return _NB or None


def _variant(fn, tag):
    """A copy of ``fn`` under its own name: numba's disk cache is keyed by the function's name and
    line, not by its compile options, so the parallel and the serial build of one function would
    share (and load each other's) cache entries."""
    f = _types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_{tag}", fn.__defaults__, fn.__closure__)
    f.__qualname__ = f"{fn.__qualname__}_{tag}"
    f.__module__ = fn.__module__
    return f


def _start_thread_pool(numba):
    """Start numba's worker threads with a passive wait policy.

    Numba's default threading layer is an OpenMP runtime separate from the one torch uses. With
    the default (active) policy its idle workers spin for milliseconds after each kernel and take
    the cores from torch's next op -- a training step alternates both many times (measured on
    S2: 109 ms per step instead of 56 ms). ``OMP_WAIT_POLICY`` is read once, when that runtime
    loads, so it is set only around that moment (unless the user chose a policy) and restored.
    """
    key = "OMP_WAIT_POLICY"
    had = key in _os.environ
    if not had:
        _os.environ[key] = "PASSIVE"
    n_torch = torch.get_num_threads()
    try:
        from numba.np.ufunc import parallel as _parallel

        _parallel._launch_threads()
    except Exception:  # noqa: BLE001 -- a pool that cannot start leaves the serial kernels usable
        pass
    finally:
        if not had:
            _os.environ.pop(key, None)
        # starting an OpenMP pool can reset the process-wide thread count torch reads
        if torch.get_num_threads() != n_torch:
            torch.set_num_threads(n_torch)


def _kernels():
    """The compiled kernels to use from this thread, numba's thread count set to torch's, and
    whether they run in parallel (only from the main thread, so no threading layer ever sees
    nested or concurrent launches)."""
    nb = _numba_kernels()
    n = max(1, min(torch.get_num_threads(), nb.numba.config.NUMBA_NUM_THREADS))
    if n == 1 or _threading.current_thread() is not _threading.main_thread():
        return nb.ser, 1
    nb.numba.set_num_threads(n)
    return nb.par, n


def _np(t):
    return t.detach().numpy()


_buf = _buffers.empty       # a CPU buffer for the kernels: from the reuse pool while training (pooled)


def _per_neuron(p, H, like):
    """A parameter as a contiguous (H,) tensor, or None when it does not broadcast to (H,)."""
    t = torch.as_tensor(p, dtype=like.dtype, device=like.device).detach()
    if t.dim() > 1 and any(n != 1 for n in t.shape[:-1]):
        return None
    t = t.reshape(-1) if t.dim() else t.reshape(1)
    if t.numel() not in (1, H):
        return None
    return t.expand(H).contiguous()


_PN_CACHE = {}


def _pn(p, H, like):
    """:func:`_per_neuron` as a numpy array for the kernels; constants are built once."""
    if _is_tensor(p):
        return _np(_per_neuron(p, H, like))
    key = (float(p), H, like.dtype)
    a = _PN_CACHE.get(key)
    if a is None:
        if len(_PN_CACHE) > 256:
            _PN_CACHE.clear()
        a = _PN_CACHE[key] = _np(_per_neuron(p, H, like))
    return a


def _compiled_ok(x, w_rec, params):
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.dim() != 3:
        return False
    if w_rec is not None and (w_rec.device.type != "cpu" or w_rec.dtype != x.dtype):
        return False
    return all(not _is_tensor(p) or (p.device.type == "cpu" and _per_neuron(p, x.shape[2], x) is not None)
               for p in params)


class _ScanCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, deriv, slope, inplace, record):
        _, n = _kernels()
        T, B, H = x.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract = spec.reset == "subtract"
        bt, at, tt = (_pn(p, H, x) for p in (beta, alpha, thr))
        xc = x.detach()
        inplace = bool(inplace) and xc.is_contiguous()
        if not inplace:
            xc = xc.contiguous()
        # a graph is recorded (record: grad mode was on outside; needs_input_grad alone also says
        # True under no_grad for parameters): then the whole-sequence buffers come from the reuse
        # pool (see buffers.py), and the spikes are kept for the backward pass where it reads them
        train = record and any(ctx.needs_input_grad[:5])
        U = xc if inplace else _buf((T, B, H), xc.dtype, train)
        S = _buf((T, B, H), xc.dtype, train)
        # the backward pass reads the spikes only for zero reset, recurrent weights and the
        # parameter gradients; then they are kept as uint8 (a quarter of the float copy)
        need_params = any(ctx.needs_input_grad[2:5])
        save_q = train and (not subtract or rec or need_params)
        Q = _buf((T, B, H), torch.uint8, train) if save_q else torch.empty((1, 1, 1), dtype=torch.uint8)
        A = _buf((T, B, H), xc.dtype, train) if alif else xc.new_empty((1, 1, 1))
        fin = [s.detach().to(x.dtype, copy=True).contiguous() for s in (v0, syn0, a0, s0)]
        fpar = _fpar(spec, x.dtype, slope, -1)
        wr = w_rec.detach().contiguous() if rec else _dummy(xc.dtype, 2)
        mod = _specialised("fwd", rec=rec, cuba=cuba, alif=alif, subtract=subtract, saveq=save_q,
                           inplace=inplace, parallel=n > 1)
        mod.forward(0, T, _np(xc), _np(wr), bt, at, tt, fpar, *(_np(a) for a in (U, S, Q, A, *fin)), min(n, B))
        ctx.spec, ctx.deriv, ctx.slope = spec, deriv, slope
        ctx.params = (beta, alpha, thr)
        ctx.set_materialize_grads(False)      # no (T, B, H) zeros for the membrane's unused gradient
        ctx.inplace, ctx.consumed = inplace, False
        ctx.save_for_backward(w_rec, U, Q if save_q else None, A if alif else None, v0, syn0, a0, s0)
        final = tuple(fin)
        ctx.mark_non_differentiable(U, *final)
        return (S, U) + final

    @staticmethod
    def backward(ctx, gS, gU, *g_final):
        if ctx.consumed:
            raise RuntimeError(
                "This spiking layer's backward pass already ran and reused its stored membrane for the "
                "gradient (to save memory), so it cannot run twice (retain_graph=True). Run the "
                "forward pass again for a second backward pass.")
        _, n = _kernels()
        w_rec, U, Q, A, v0, syn0, a0, s0 = ctx.saved_tensors
        spec, deriv, slope = ctx.spec, ctx.deriv, ctx.slope
        beta, alpha, thr = ctx.params
        T, B, H = U.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract = spec.reset == "subtract"
        need_params = any(ctx.needs_input_grad[2:5])
        code = _surrogate_code(deriv)
        SG = _dummy(U.dtype, 3)
        if code < 0 or need_params:
            theta = (A * spec.adapt + thr) if alif else thr
            SG = deriv(U - theta, slope).contiguous()
            code = -1
        bt, at, tt = (_pn(p, H, U) for p in (beta, alpha, thr))
        need_gu = cuba and need_params
        need_gs = bool(ctx.needs_input_grad[4])
        # the input gradient may take the membrane's buffer when the membrane is not needed
        # afterwards (the parameter gradients read it) and the caller handed it over (inplace)
        inplace = ctx.inplace and not need_params
        GX = U if inplace else _buf((T, B, H), U.dtype)
        GU = _buf((T, B, H), U.dtype) if need_gu else _dummy(U.dtype, 3)
        GS = _buf((T, B, H), U.dtype) if need_gs else _dummy(U.dtype, 3)
        has_gs = gS is not None
        gSc = gS.contiguous() if has_gs else _dummy(U.dtype, 3)
        Ac = A if alif else _dummy(U.dtype, 3)
        Qc = Q if Q is not None else torch.empty((1, 1, 1), dtype=torch.uint8)
        fpar = _fpar(spec, U.dtype, slope, code)
        mod = _specialised("bwd", rec=rec, cuba=cuba, alif=alif, subtract=subtract, detach=spec.detach_reset,
                           code=code, need_gu=need_gu, need_gs=need_gs, has_gs=has_gs, inplace=inplace,
                           parallel=n > 1 and not rec)
        gu, ga, gsyn = (torch.zeros((B, H), dtype=U.dtype) for _ in range(3))
        rt = torch.zeros((B, H), dtype=U.dtype) if rec else _dummy(U.dtype, 2)
        arrs = [_np(a) for a in (gSc, U, Qc, Ac, SG)]
        tail = [_np(a) for a in (GX, GU, GS, gu, ga, gsyn, rt)]
        if not rec:
            mod.backward(T, 0, *arrs, bt, at, tt, fpar, *tail, min(n, B))
        else:
            # one step at a time: the recurrent adjoint of the whole batch as one matmul between the
            # step kernels (BLAS, on torch's threads)
            bwd = mod.backward
            src = gsyn if cuba else gu
            wT = w_rec.detach().t()
            for t in range(T - 1, -1, -1):
                if t < T - 1:
                    torch.mm(src, wT, out=rt)
                bwd(t + 1, t, *arrs, bt, at, tt, fpar, *tail, 1)
        grads = [None] * 14
        if rec and ctx.needs_input_grad[1]:
            # sum_t s_(t-1)^T gi_t from the stored uint8 spikes, after the loop: the rows of W_rec
            # split between the threads (q0: the initial spikes, for t = 0)
            nb, _ = _kernels()
            q0 = (s0.detach() != 0).to(torch.uint8).expand(B, H).contiguous()
            gw = torch.zeros((H, H), dtype=U.dtype)
            nb.rec_wgrad(_np(Q), _np(q0), _np(GX), _np(gw), max(1, min(n, H)))
            grads[1] = gw
        ctx.consumed = inplace
        if not cuba:
            GU = GX
        grads[0] = GX if ctx.needs_input_grad[0] else None
        if need_params:
            S = Q.to(U.dtype)
            grads[2:5] = _param_grads(ctx.needs_input_grad, U, S, GU, GX, GS, SG, v0, syn0,
                                      beta, alpha, thr, cuba, subtract)
        return tuple(grads)


_DUMMIES = {}


def _dummy(dtype, ndim):
    """A tiny placeholder array for kernel arguments a specialisation never reads."""
    key = (dtype, ndim)
    d = _DUMMIES.get(key)
    if d is None:
        d = _DUMMIES[key] = torch.zeros((1,) * ndim, dtype=dtype)
    return d


_FPAR_CACHE = {}


def _fpar(spec, dtype, slope, code):
    key = (spec.adapt, spec.rho, dtype, slope, code)
    a = _FPAR_CACHE.get(key)
    if a is None:
        import numpy

        c1, c2 = _surrogate_consts(code, slope)
        nd = numpy.float32 if dtype == torch.float32 else numpy.float64
        if len(_FPAR_CACHE) > 256:
            _FPAR_CACHE.clear()
        a = _FPAR_CACHE[key] = numpy.array([spec.adapt, spec.rho, 1.0, 0.0, slope, c1, c2, 0.0], dtype=nd)
    return a


class _LeakyCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta):
        nb, _ = _kernels()
        bt = _per_neuron(beta, x.shape[2], x)
        xc = x.detach().contiguous()
        V = torch.empty_like(xc)
        nb.leaky(_np(xc), _np(bt), _np(V), False)
        ctx.beta = beta
        ctx.save_for_backward(V if _is_tensor(beta) else None, bt)
        return V

    @staticmethod
    def backward(ctx, gV):
        nb, _ = _kernels()
        V, bt = ctx.saved_tensors
        G = torch.empty_like(gV, memory_format=torch.contiguous_format)
        nb.leaky(_np(gV.contiguous()), _np(bt), _np(G), True)
        gbeta = None
        if _is_tensor(ctx.beta) and ctx.needs_input_grad[1]:
            V_prev = torch.cat([torch.zeros_like(V[:1]), V[:-1]], 0)
            gbeta = _reduce_to((G * V_prev).sum((0, 1)), ctx.beta)
        return G, gbeta


def _leaky_ok(x, beta):
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.dim() == 3
            and (not _is_tensor(beta) or (beta.device.type == "cpu" and _per_neuron(beta, x.shape[2], x) is not None)))


# ---- sparse input projection ----------------------------------------------------------------

SPARSE_DENSITY = 0.25
"""Inputs with at most this fraction of nonzeros take the sparse projection path."""

SPARSE_MIN_OUT = 48
"""Projections into fewer neurons stay dense: finding the nonzeros costs more than the product
(measured, forward and backward, 10-20% spikes: 128 -> 10 dense 0.56 ms vs sparse 1.37 ms, 256 -> 32
equal, 256 -> 64 sparse 1.3x faster, 700 -> 256 sparse 2.6x faster)."""

WGRAD_BLOCK = 256
"""Rows per block in the sparse weight gradient (a block of the output gradient stays in cache)."""


class _SparseLinear(torch.autograd.Function):
    """``x @ W.T + b`` for a mostly-zero ``x`` (N, F): touches only the nonzeros.

    The forward pass reads each row once, accumulates ``W[:, f]`` for its nonzero entries and
    keeps them in CSR form for the weight gradient ``G.T @ x``; the input gradient (when the input
    needs one, e.g. the spikes of a previous layer) is the dense ``G @ W``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, counts, binary, pool):
        nb, n = _kernels()
        N, F = x.shape
        H = weight.shape[0]
        indptr = torch.zeros(N + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=indptr[1:])
        nnz = int(indptr[-1])
        indices = _buf((nnz,), torch.int32, pool)
        values = _buf((0 if binary else nnz,), x.dtype, pool)   # spikes: all ones, not stored
        out = _buf((N, H), x.dtype, pool)
        wT = weight.detach().t().contiguous()
        b = bias.detach() if bias is not None else x.new_zeros(H)
        nb.sparse_project(_np(x), _np(wT), _np(b.contiguous()), _np(indptr), _np(indices), _np(values), _np(out),
                          binary, max(1, min(n, N)))
        ctx.binary = binary
        ctx.save_for_backward(indptr, indices, values, weight)
        ctx.shape = (N, F)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, G):
        nb, n = _kernels()
        indptr, indices, values, weight = ctx.saved_tensors
        G = G.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.mm(G, weight.detach(), out=_buf(ctx.shape, G.dtype))
        if ctx.needs_input_grad[1]:
            F = ctx.shape[1]
            gwT = torch.zeros((F, G.shape[1]), dtype=G.dtype)
            # each extra thread sums into its own (F, H) buffer: at most one per 4F nonzeros, so
            # adding the buffers up costs at most a quarter of the work it splits
            chunks = max(1, min(n, G.shape[0], int(indptr[-1]) // (4 * F)))
            nb.sparse_wgrad(_np(indptr), _np(indices), _np(values), _np(G), _np(gwT), chunks, ctx.binary, WGRAD_BLOCK)
            gw = gwT.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb, None, None, None


NARROW_MAX_OUT = 20
"""Dense projections into at most this many neurons (readout layers) take :class:`_NarrowLinear`."""

NARROW_MIN_ROWS = 4096


class _NarrowLinear(torch.autograd.Function):
    """``x @ W.T + b`` into few outputs (a readout layer over all steps): the forward pass is a BLAS
    matmul; the input gradient ``G @ W`` (N x K times K x H with small K) is the compiled row
    kernel, which beats BLAS for this shape once N is large. Spike inputs (every entry 0 or 1) are
    kept for the weight gradient packed eight to a byte (a 32nd of the float32 copy, so the float
    spikes of the layer below are freed after the forward pass), and the weight gradient adds the
    rows of ``G`` at the set bits; other inputs are kept as they are (BLAS weight gradient)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        out = _linear_into(x, weight, bias, _buf((x.shape[0], weight.shape[0]), x.dtype))
        keep, packed = x, False
        if ctx.needs_input_grad[1]:
            P = _buf((x.shape[0], (x.shape[1] + 7) // 8), torch.uint8)
            if _nb_pack_bits(_np(x.contiguous()), _np(P)):
                keep, packed = P, True
        ctx.save_for_backward(keep, weight)
        ctx.packed, ctx.has_bias, ctx.n_in = packed, bias is not None, x.shape[1]
        return out

    @staticmethod
    def backward(ctx, G):
        x, weight = ctx.saved_tensors
        nb, n = _kernels()
        G = G.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _buf((G.shape[0], weight.shape[1]), G.dtype)
            nb.narrow_gx(_np(G), _np(weight.detach().contiguous()), _np(gx), max(1, min(n, G.shape[0])))
        if ctx.needs_input_grad[1]:
            if ctx.packed:
                gw = torch.zeros((G.shape[1], ctx.n_in), dtype=G.dtype)
                nb.bits_wgrad(_np(x), _np(G), _np(gw), max(1, min(n, G.shape[0] // 1024)))
            else:
                gw = G.t() @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb


def _linear_into(x, weight, bias, out):
    """``x @ weight.T + bias`` (2D ``x``) written into ``out``, no autograd."""
    w = weight.detach().t()
    if bias is None:
        return torch.mm(x.detach(), w, out=out)
    return torch.addmm(bias.detach(), x.detach(), w, out=out)


class _DenseLinear(torch.autograd.Function):
    """``x @ W.T + b`` (2D ``x``) with its output in a pooled buffer; the gradients as autograd's."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)
        ctx.has_bias = bias is not None
        return _linear_into(x, weight, bias, _buf((x.shape[0], weight.shape[0]), x.dtype))

    @staticmethod
    def backward(ctx, G):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.mm(G, weight.detach(), out=_buf((G.shape[0], weight.shape[1]), G.dtype))
        if ctx.needs_input_grad[1]:
            gw = G.t() @ x.detach()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb


def _dense_linear(x, weight, bias, cpu):
    """``linear`` for a CPU training step: the whole-sequence output from the reuse pool."""
    training = cpu and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if not training or x.numel() // max(x.shape[-1], 1) * weight.shape[0] * x.element_size() < _buffers.MIN_BYTES:
        return torch.nn.functional.linear(x, weight, bias)
    x2 = x.reshape(-1, x.shape[-1])
    return _DenseLinear.apply(x2, weight, bias).reshape(*x.shape[:-1], weight.shape[0])


def sparse_linear(x, weight, bias=None, max_density=None):
    """``torch.nn.functional.linear`` that exploits a mostly-zero input (e.g. spikes) on CPU.

    Falls back to the dense ``linear`` when the compiled backend is unavailable, the tensors are
    not CPU float32/float64, or more than ``max_density`` (default :data:`SPARSE_DENSITY`) of the
    input is nonzero. Both paths compute the same values (up to summation order).

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(4, 6); x[0, 1] = x[3, 5] = 1.0
    >>> w, b = torch.randn(3, 6), torch.randn(3)
    >>> torch.allclose(sparse_linear(x, w, b), torch.nn.functional.linear(x, w, b), atol=1e-6)
    True
    """
    max_density = SPARSE_DENSITY if max_density is None else max_density
    nb = None
    cpu = (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
           and weight.device.type == "cpu" and x.dim() >= 2)
    if (cpu and weight.shape[0] <= NARROW_MAX_OUT and x.requires_grad and torch.is_grad_enabled()
            and x.numel() >= NARROW_MIN_ROWS * x.shape[-1] and _numba_kernels() is not None):
        x2 = x.reshape(-1, x.shape[-1])
        return _NarrowLinear.apply(x2, weight, bias).reshape(*x.shape[:-1], weight.shape[0])
    if cpu and x.shape[-1] >= 16 and weight.shape[0] >= SPARSE_MIN_OUT and max_density > 0:
        nb = _numba_kernels()
    if nb is None:
        return _dense_linear(x, weight, bias, cpu and _numba_kernels() is not None)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    if not x2.is_contiguous():
        return torch.nn.functional.linear(x, weight, bias)
    # a dense input (e.g. the scaled features of the first layer) is recognised from its first rows,
    # without the full counting pass
    probe = x2[:256]
    if int(torch.count_nonzero(probe)) > 2 * max_density * probe.numel():
        return _dense_linear(x, weight, bias, True)
    nb, _ = _kernels()
    counts = torch.empty(x2.shape[0], dtype=torch.int64)
    other = torch.empty(x2.shape[0], dtype=torch.int64)
    nb.sparse_count(_np(x2), _np(counts), _np(other))
    if int(counts.sum()) > max_density * x2.numel():
        return _dense_linear(x, weight, bias, True)
    training = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    out = _SparseLinear.apply(x2, weight, bias, counts, not bool(other.any()), training)
    return out.reshape(*lead, weight.shape[0])


def _as_param(value, like):
    if _is_tensor(value):
        return value.to(dtype=like.dtype)
    return float(value)


def _use_compiled(backend, ok):
    if backend not in ("auto", "torch", "numba"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numba', got {backend!r}.")
    if backend == "torch":
        return False
    if backend == "numba" and _numba_kernels() is None:
        raise ImportError("backend='numba' needs numba (pip install numba).")
    if not ok():
        if backend == "numba":
            raise ValueError("backend='numba' runs CPU float32/float64 tensors with per-neuron parameters only.")
        return False
    return _numba_kernels() is not None


def spiking_scan(x, spec: NeuronSpec, surrogate="fast_sigmoid", slope=10.0, w_rec=None,
                 beta=None, alpha=None, threshold=None, state=None, backend="auto", inplace=False):
    """Run a spiking population over all steps of the input currents ``x`` (T, B, H).

    Parameters
    ----------
    x : Tensor of shape (T, B, H)
        Input current per step (already projected through the feed-forward weights).
    spec : NeuronSpec
    surrogate, slope :
        Surrogate derivative used in the backward pass.
    w_rec : Tensor of shape (H, H), optional
        Recurrent weights: step ``t`` receives ``s_{t-1} @ w_rec``.
    beta, alpha, threshold : float or Tensor broadcastable to (H,), optional
        Override the spec (learned neuron parameters; gradients flow to tensors).
    state : tuple, optional
        ``(v, syn, a, s)`` to start from (no gradient flows into it), e.g. from the previous
        window in truncated BPTT.
    backend : {'auto', 'torch', 'numba'}
        ``'auto'`` runs the compiled loops when numba is installed and the tensors are on CPU
        (float32/float64), the torch loops otherwise (e.g. on CUDA); both compute the same.
    inplace : bool
        Memory saving for callers that own ``x`` (an intermediate such as a layer's projected
        current): the membrane is written over ``x``, and the compiled backward pass writes the
        input gradient over the stored membrane. ``x`` (and the returned membrane) must not be
        read after the backward pass, and that backward pass can run only once.

    Returns
    -------
    spikes : Tensor (T, B, H)
    membrane : Tensor (T, B, H)
        Membrane before reset (no gradient).
    state : tuple
        Final ``(v, syn, a, s)``, detached.

    Examples
    --------
    >>> import torch
    >>> spec = NeuronSpec("lif", beta=0.5)
    >>> s, u, _ = spiking_scan(torch.full((3, 1, 1), 0.8), spec)
    >>> s.flatten().tolist(), [round(v, 2) for v in u.flatten().tolist()]
    ([0.0, 1.0, 0.0], [0.8, 1.2, 0.9])
    """
    T, B, H = x.shape
    beta = _as_param(spec.beta if beta is None else beta, x)
    alpha = _as_param(spec.alpha if alpha is None else alpha, x)
    thr = _as_param(spec.threshold if threshold is None else threshold, x)
    if state is None:
        z = x.new_zeros((B, H))
        state = (z, z, z, z)
    v0, syn0, a0, s0 = (x.new_zeros((B, H)) if t is None else t.detach().to(x.dtype) for t in state)
    fn = _ScanCompiled if _use_compiled(backend, lambda: _compiled_ok(x, w_rec, (beta, alpha, thr))) else _ScanTorch
    inplace = bool(inplace) and x.is_contiguous()
    out = fn.apply(x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, get_surrogate(surrogate), float(slope),
                   inplace, torch.is_grad_enabled())
    return out[0], out[1], tuple(out[2:])


def reference_scan(x, spec: NeuronSpec, surrogate="fast_sigmoid", slope=10.0, w_rec=None,
                   beta=None, alpha=None, threshold=None, state=None):
    """The same computation as :func:`spiking_scan` as a plain per-step autograd loop."""
    T, B, H = x.shape
    z = x.new_zeros((B, H))
    v, syn, a, s = state if state is not None else (z, z, z, z)
    st = (v, syn, a)
    fn = lambda d: spike(d, surrogate, slope)  # noqa: E731
    spikes, mems = [], []
    for t in range(T):
        xt = x[t] if w_rec is None else x[t] + s @ w_rec
        s, u, st = neuron_step(spec, xt, st, fn, beta=beta, alpha=alpha, threshold=threshold)
        spikes.append(s)
        mems.append(u)
    return torch.stack(spikes), torch.stack(mems), (st[0], st[1], st[2], s)


def leaky_integrate(x, beta, backend="auto"):
    """Non-spiking leaky integrator ``v_t = beta v_{t-1} + x_t`` over (T, B, O) in a fused loop.

    Examples
    --------
    >>> import torch
    >>> leaky_integrate(torch.ones(3, 1, 1), 0.5).flatten().tolist()
    [1.0, 1.5, 1.75]
    """
    beta = _as_param(beta, x)
    if _use_compiled(backend, lambda: _leaky_ok(x, beta)):
        return _LeakyCompiled.apply(x, beta)
    return _Leaky.apply(x, beta)


class _Leaky(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta):
        V = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            v = _scale_add(x[t], v, beta, out=V[t])
        ctx.beta = beta
        if _is_tensor(beta):
            ctx.save_for_backward(V)
        return V

    @staticmethod
    def backward(ctx, gV):
        beta = ctx.beta
        G = torch.empty_like(gV)
        g = torch.zeros_like(gV[0])
        for t in range(gV.shape[0] - 1, -1, -1):
            g = _scale_add(gV[t], g, beta, out=G[t])
        gbeta = None
        if _is_tensor(beta) and ctx.needs_input_grad[1]:
            (V,) = ctx.saved_tensors
            V_prev = torch.cat([torch.zeros_like(V[:1]), V[:-1]], 0)
            gbeta = _reduce_to((G * V_prev).sum((0, 1)), beta)
        return G, gbeta
