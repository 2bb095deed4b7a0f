"""The Triton kernels of the neuron scan (imported only by :mod:`~sklearn_snn._core.triton_backend`).

Each program owns a block of ``BLOCK`` neurons of the flattened (B, H) population and runs the
whole time loop over them with the state in float32 registers: :func:`scan_forward` stores the
membrane before reset, the spikes and (``alif``) the adaptation before the step -- what the adjoint
needs -- and :func:`scan_backward` walks the adjoint recurrence of
:mod:`~sklearn_snn._core.scan_torch` back in time, evaluating the named surrogates inline (or
reading precomputed derivatives for a user callable). Both take a step range ``[t0, t1)`` and keep
their state in (B, H) float32 buffers between calls, so a recurrent layer runs one step per call
with one torch matmul for the recurrent term in between (``HAS_RIN`` / ``HAS_RT``). Inputs and
outputs may be float32, float16 or bfloat16; the arithmetic is float32, rounded to nearest (even)
when stored in half precision (Triton 3.9's interpreter truncates to bfloat16 instead: one unit in
the last place, which the tests allow). :func:`leaky_scan` is the non-spiking leaky integrator and,
run backward, its adjoint.

Importing this module imports ``triton``; with ``TRITON_INTERPRET=1`` set before that import the
kernels run on CPU tensors in Triton's interpreter (how the tests run them without a GPU).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["SURROGATE_CODES", "leaky_scan", "scan_backward", "scan_forward"]

# the surrogates computed inside the backward kernel; -1: derivatives precomputed by torch
SURROGATE_CODES = {"fast_sigmoid": 0, "sigmoid": 1, "arctan": 2, "triangle": 3, "gaussian": 4,
                   "exponential": 5, "straight_through": 6}


@triton.jit
def scan_forward(x_ptr, rin_ptr, u_ptr, s_ptr, a_ptr, v_ptr, syn_ptr, ad_ptr, sp_ptr,
                 beta_ptr, alpha_ptr, thr_ptr, adapt, rho, n_steps, N, H,
                 CUBA: tl.constexpr, ALIF: tl.constexpr, SUBTRACT: tl.constexpr, HAS_RIN: tl.constexpr,
                 BLOCK: tl.constexpr):
    # n_steps steps (the pointers point at the first) of N = B * H neurons; v, syn, ad
    # (adaptation), sp (last spikes): (B, H) float32 state, read on entry and written on exit.
    # u_ptr may be x_ptr (in place: each element of the current is read before the membrane is
    # written over it, by the same program).
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    h = offs % H
    beta = tl.load(beta_ptr + h, mask=m, other=0.0)
    thr = tl.load(thr_ptr + h, mask=m, other=1.0)
    v = tl.load(v_ptr + offs, mask=m, other=0.0)
    s = tl.load(sp_ptr + offs, mask=m, other=0.0)
    if CUBA:
        alpha = tl.load(alpha_ptr + h, mask=m, other=0.0)
        syn = tl.load(syn_ptr + offs, mask=m, other=0.0)
    if ALIF:
        a = tl.load(ad_ptr + offs, mask=m, other=0.0)
    if HAS_RIN:
        rin = tl.load(rin_ptr + offs, mask=m, other=0.0)
    p = offs.to(tl.int64)          # 64-bit offsets: T * B * H may pass 2**31
    for _ in range(n_steps):
        xt = tl.load(x_ptr + p, mask=m, other=0.0).to(tl.float32)
        if HAS_RIN:
            xt = xt + rin
        if CUBA:
            syn = alpha * syn + xt
            xt = syn
        u = beta * v + xt
        tl.store(u_ptr + p, u.to(u_ptr.dtype.element_ty), mask=m)
        if ALIF:
            tl.store(a_ptr + p, a, mask=m)
            s = tl.where(u >= thr + adapt * a, 1.0, 0.0)
        else:
            s = tl.where(u >= thr, 1.0, 0.0)
        tl.store(s_ptr + p, s.to(s_ptr.dtype.element_ty), mask=m)
        if SUBTRACT:
            v = u - thr * s
        else:
            v = u * (1.0 - s)
        if ALIF:
            a = rho * a + s
        p += N
    tl.store(v_ptr + offs, v, mask=m)
    tl.store(sp_ptr + offs, s, mask=m)
    if CUBA:
        tl.store(syn_ptr + offs, syn, mask=m)
    if ALIF:
        tl.store(ad_ptr + offs, a, mask=m)


@triton.jit
def _surrogate(d, k, CODE: tl.constexpr):
    if CODE == 0:      # fast sigmoid
        q = 1.0 / (1.0 + k * tl.abs(d))
        sg = q * q
    elif CODE == 1:    # sigmoid
        q = 1.0 / (1.0 + tl.exp(-(k * d)))
        sg = k * q * (1.0 - q)
    elif CODE == 2:    # arctan
        q = (0.5 * 3.141592653589793 * k) * d
        sg = (0.5 * k) / (1.0 + q * q)
    elif CODE == 3:    # triangle
        sg = k * tl.maximum(1.0 - k * tl.abs(d), 0.0)
    elif CODE == 4:    # gaussian
        q = k * d
        sg = (k * 0.3989422804014327) * tl.exp(-0.5 * (q * q))
    elif CODE == 5:    # exponential
        sg = (0.5 * k) * tl.exp(-(k * tl.abs(d)))
    else:              # straight through
        sg = d * 0.0 + 1.0
    return sg


@triton.jit
def scan_backward(gs_ptr, u_ptr, s_ptr, a_ptr, sg_ptr, rt_ptr, gx_ptr, gu_ptr, gso_ptr,
                  gu_st, ga_st, gsyn_st, beta_ptr, alpha_ptr, thr_ptr, adapt, rho, k, n_steps, last, N, H,
                  CUBA: tl.constexpr, ALIF: tl.constexpr, SUBTRACT: tl.constexpr, DETACH: tl.constexpr,
                  CODE: tl.constexpr, HAS_GS: tl.constexpr, HAS_RT: tl.constexpr, NEED_GU: tl.constexpr,
                  NEED_GS: tl.constexpr, BLOCK: tl.constexpr):
    # n_steps steps, the last first (at element offset last = (n_steps - 1) * N of the
    # pointers). gu_st, ga_st, gsyn_st: (B, H) float32 adjoint state carried between calls; rt:
    # the recurrent term gi_{t+1} W_rec^T of the (single) step of this call. gx_ptr may be u_ptr
    # (each membrane element is read before its gradient is written over it).
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    h = offs % H
    beta = tl.load(beta_ptr + h, mask=m, other=0.0)
    thr = tl.load(thr_ptr + h, mask=m, other=1.0)
    gu = tl.load(gu_st + offs, mask=m, other=0.0)
    if CUBA:
        alpha = tl.load(alpha_ptr + h, mask=m, other=0.0)
        gsyn = tl.load(gsyn_st + offs, mask=m, other=0.0)
    if ALIF:
        ga = tl.load(ga_st + offs, mask=m, other=0.0)
    if HAS_RT:
        rt = tl.load(rt_ptr + offs, mask=m, other=0.0)
    p = offs.to(tl.int64) + last
    for _ in range(n_steps):
        gv = gu * beta
        if HAS_GS:
            G = tl.load(gs_ptr + p, mask=m, other=0.0).to(tl.float32)
        else:
            G = gv * 0.0
        if HAS_RT:
            G = G + rt
        if ALIF:
            G = G + ga
        u = tl.load(u_ptr + p, mask=m, other=0.0).to(tl.float32)
        if DETACH:
            gs = G
        elif SUBTRACT:
            gs = G + gv * (-thr)
        else:
            gs = G + gv * (-u)
        if NEED_GS:
            tl.store(gso_ptr + p, gs, mask=m)
        if CODE < 0:
            sg = tl.load(sg_ptr + p, mask=m, other=0.0).to(tl.float32)
        elif ALIF:
            a = tl.load(a_ptr + p, mask=m, other=0.0)
            sg = _surrogate(u - (a * adapt + thr), k, CODE)
        else:
            sg = _surrogate(u - thr, k, CODE)
        gsg = gs * sg
        if SUBTRACT:
            g = gsg + gv
        else:
            s = tl.load(s_ptr + p, mask=m, other=0.0)
            g = gsg + tl.where(s != 0, 0.0, gv)
        gu = g
        if NEED_GU:
            tl.store(gu_ptr + p, g, mask=m)
        if ALIF:
            ga = ga * rho - adapt * gsg
        if CUBA:
            g = g + alpha * gsyn
            gsyn = g
        tl.store(gx_ptr + p, g.to(gx_ptr.dtype.element_ty), mask=m)
        p -= N
    tl.store(gu_st + offs, gu, mask=m)
    if CUBA:
        tl.store(gsyn_st + offs, gsyn, mask=m)
    if ALIF:
        tl.store(ga_st + offs, ga, mask=m)


@triton.jit
def leaky_scan(x_ptr, v_ptr, beta_ptr, n_steps, last, N, H, BLOCK: tl.constexpr, REVERSE: tl.constexpr):
    # v_t = beta v_{t-1} + x_t over n_steps steps of N = B * H values (REVERSE: from the last step
    # back, v_t = beta v_{t+1} + x_t, the adjoint of the forward recurrence), float32 accumulator
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    beta = tl.load(beta_ptr + offs % H, mask=m, other=0.0)
    v = tl.zeros([BLOCK], dtype=tl.float32)
    p = offs.to(tl.int64)
    if REVERSE:
        p += last
    for _ in range(n_steps):
        v = beta * v + tl.load(x_ptr + p, mask=m, other=0.0).to(tl.float32)
        tl.store(v_ptr + p, v.to(v_ptr.dtype.element_ty), mask=m)
        if REVERSE:
            p -= N
        else:
            p += N
