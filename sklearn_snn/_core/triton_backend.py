"""The Triton backend (optional): the fused neuron scan for CUDA tensors.

``ScanTriton`` runs the forward scan and its adjoint each as one kernel launch over all time steps
(:mod:`~sklearn_snn._core.triton_kernels`: one program per block of neurons, the time loop inside,
float32 state), the way the compiled CPU scan of :mod:`~sklearn_snn._core.numba_backend` runs
them on CPU: the forward pass stores the membrane before reset, the spikes and (``alif``) the
adaptation, the backward pass walks the adjoint recurrence of
:mod:`~sklearn_snn._core.scan_torch` back in time with the named surrogates evaluated inline. A
recurrent layer runs one kernel launch per step with one torch matmul for the recurrent term in
between, forward (``s_{t-1} W_rec``) and backward (``gi_{t+1} W_rec^T``). Inputs may be float32,
float16 or bfloat16; the state and the arithmetic are float32, the outputs have the input's dtype.
The decay and threshold gradients come from :func:`~sklearn_snn._core.scan_torch.param_grads`,
as for the other backends. ``LeakyTriton`` is the non-spiking leaky integrator (the membrane
readout), one launch forward and one backward.

:data:`TRITON` holds the registration settings: :mod:`~sklearn_snn._core.kernels` registers
``ScanTriton`` and ``LeakyTriton`` as the ``'triton'`` backends of ``'scan'`` and ``'leaky'``,
which ``backend='auto'`` picks for CUDA tensors when ``triton`` imports (CUDA builds of torch
ship it). Nothing here imports triton until
a kernel runs. On CPU, the kernels run in Triton's interpreter when ``TRITON_INTERPRET=1`` was set
before triton was imported; CPU tensors are accepted only with ``SKLEARN_SNN_TRITON_CPU=1`` as
well (how the tests check the kernels on machines without a GPU), so ``'auto'`` never sends CPU
tensors to the interpreter otherwise.
"""

from __future__ import annotations

import functools
import os

import torch

from .scan_torch import is_tensor, param_grads

__all__ = ["TRITON", "LeakyTriton", "ScanTriton", "cpu_allowed", "leaky_ok", "scan_ok", "triton_available",
           "triton_kernels"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def triton_kernels():
    """The kernel module (imports ``triton``); ``None`` when triton cannot be imported."""
    try:
        from . import triton_kernels as mod
    except ImportError:
        return None
    return mod


def triton_available():
    """Whether the backend can run: triton imports (``SKLEARN_SNN_TRITON=0`` disables it).

    Examples
    --------
    >>> isinstance(triton_available(), bool)
    True
    """
    if os.environ.get("SKLEARN_SNN_TRITON", "1") == "0":
        return False
    return triton_kernels() is not None


def cpu_allowed():
    """Whether CPU tensors go to the kernels: Triton's interpreter is on (``TRITON_INTERPRET=1``)
    and ``SKLEARN_SNN_TRITON_CPU=1`` asks for it (for tests on machines without a GPU)."""
    return os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("SKLEARN_SNN_TRITON_CPU") == "1"


def _per_neuron_ok(p, H):
    if not is_tensor(p):
        return True
    if p.dim() > 1 and any(n != 1 for n in p.shape[:-1]):
        return False
    return p.numel() in (1, H)


def scan_ok(x, w_rec, params):
    """Whether the kernels run these arguments: CUDA (or, see :func:`cpu_allowed`, CPU) tensors
    of float32/float16/bfloat16, per-neuron parameters broadcastable to (H,).

    Examples
    --------
    >>> import torch
    >>> scan_ok(torch.zeros(2, 1, 3, dtype=torch.float64), None, (0.9, 0.8, 1.0))
    False
    """
    if x.dim() != 3 or x.dtype not in _DTYPES:
        return False
    dev = x.device
    if dev.type != "cuda" and not (dev.type == "cpu" and cpu_allowed()):
        return False
    if w_rec is not None and (w_rec.device != dev or w_rec.dim() != 2):
        return False
    return all(not is_tensor(p) or (p.device == dev and _per_neuron_ok(p, x.shape[2])) for p in params)


TRITON = {"available": triton_available, "priority": 20,
          "needs": "triton (pip install triton; CUDA builds of torch ship it)",
          "accepts": "CUDA float32/float16/bfloat16 tensors with per-neuron parameters (CPU tensors "
                     "only in Triton's interpreter: TRITON_INTERPRET=1 and SKLEARN_SNN_TRITON_CPU=1)"}
"""Registration settings of the backend (``available``, ``priority``, ``needs``, ``accepts``)."""


def _vec(p, H, like):
    """A parameter as a contiguous float32 (H,) tensor on ``like``'s device."""
    if not is_tensor(p):
        return torch.full((H,), float(p), dtype=torch.float32, device=like.device)
    return p.detach().to(torch.float32).reshape(-1).expand(H).contiguous()


def _block(N):
    import triton

    return max(16, min(256, triton.next_power_of_2(max(N, 1))))


def _code(deriv):
    from .surrogate import SURROGATES

    codes = triton_kernels().SURROGATE_CODES
    for name, fn in SURROGATES.items():
        if fn is deriv:
            return codes[name]
    return -1


class ScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, deriv, slope, inplace, record):
        K = triton_kernels()
        T, B, H = x.shape
        N = B * H
        f32 = torch.float32
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        xc = x.detach()
        inplace = bool(inplace) and xc.is_contiguous()
        if not inplace:
            xc = xc.contiguous()
        U = xc if inplace else torch.empty_like(xc)
        S = torch.empty_like(xc)
        dummy = torch.zeros(1, dtype=f32, device=x.device)
        A = torch.empty((T, B, H), dtype=f32, device=x.device) if alif else None
        v, syn, a, sp = (t.detach().to(f32).expand(B, H).contiguous().clone() for t in (v0, syn0, a0, s0))
        bt, at, tt = (_vec(p, H, x) for p in (beta, alpha, thr))
        consts = {"CUBA": cuba, "ALIF": alif, "SUBTRACT": spec.reset == "subtract", "BLOCK": _block(N)}
        grid = (-(-N // consts["BLOCK"]),)
        args = (v, syn, a, sp, bt, at, tt, float(spec.adapt), float(spec.rho))
        if T and N:
            if not rec:
                K.scan_forward[grid](xc, dummy, U, S, A if alif else dummy, *args, T, N, H,
                                     HAS_RIN=False, **consts)
            else:
                w = w_rec.detach().to(f32)
                rin = torch.empty((B, H), dtype=f32, device=x.device)
                for t in range(T):
                    torch.mm(sp, w, out=rin)
                    K.scan_forward[grid](xc[t], rin, U[t], S[t], A[t] if alif else dummy, *args, 1, N, H,
                                         HAS_RIN=True, **consts)
        ctx.spec, ctx.deriv, ctx.slope = spec, deriv, slope
        ctx.params = (beta, alpha, thr)
        ctx.set_materialize_grads(False)
        ctx.inplace, ctx.consumed = inplace, False
        ctx.save_for_backward(w_rec, U, S, A, v0, syn0, a0, s0)
        final = tuple(f.to(x.dtype) for f in (v, syn, a, sp))
        ctx.mark_non_differentiable(U, *final)
        return (S, U) + final

    @staticmethod
    def backward(ctx, gS, gU, *g_final):
        if ctx.consumed:
            raise RuntimeError(
                "This spiking layer's backward pass already ran and reused its stored membrane for the "
                "gradient (to save memory), so it cannot run twice (retain_graph=True). Run the "
                "forward pass again for a second backward pass.")
        K = triton_kernels()
        w_rec, U, S, A, v0, syn0, _, s0 = ctx.saved_tensors
        spec, deriv, slope = ctx.spec, ctx.deriv, ctx.slope
        beta, alpha, thr = ctx.params
        needs = ctx.needs_input_grad
        T, B, H = U.shape
        N = B * H
        f32 = torch.float32
        dev = U.device
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract = spec.reset == "subtract"
        need_params = any(needs[2:5])
        dummy = torch.zeros(1, dtype=f32, device=dev)
        bt, at, tt = (_vec(p, H, U) for p in (beta, alpha, thr))
        code = _code(deriv)
        SG = dummy
        if code < 0 or need_params:
            theta = (A * spec.adapt + tt) if alif else tt
            SG = deriv(U.to(f32) - theta, slope).to(f32).contiguous()
            code = -1
        need_gu = cuba and need_params
        need_gs = bool(needs[4])
        inplace = ctx.inplace and not need_params
        GX = U if inplace else torch.empty_like(U)
        GU = torch.empty((T, B, H), dtype=f32, device=dev) if need_gu else None
        GS = torch.empty((T, B, H), dtype=f32, device=dev) if need_gs else None
        has_gs = gS is not None
        gSc = gS.contiguous() if has_gs else None
        gu, ga, gsyn = (torch.zeros((B, H), dtype=f32, device=dev) for _ in range(3))
        consts = {"CUBA": cuba, "ALIF": alif, "SUBTRACT": subtract, "DETACH": bool(spec.detach_reset), "CODE": code,
                  "HAS_GS": has_gs, "NEED_GU": need_gu, "NEED_GS": need_gs, "BLOCK": _block(N)}
        grid = (-(-N // consts["BLOCK"]),)
        state = (gu, ga, gsyn, bt, at, tt, float(spec.adapt), float(spec.rho), float(slope))

        def at_t(buf, t):
            return dummy if buf is None or buf.dim() == 1 else (buf if t is None else buf[t])

        if T and N:
            if not rec:
                K.scan_backward[grid](at_t(gSc, None), U, S, at_t(A, None), at_t(SG, None), dummy, GX,
                                      at_t(GU, None), at_t(GS, None), *state, T, (T - 1) * N, N, H,
                                      HAS_RT=False, **consts)
            else:
                # one step per launch: the recurrent adjoint of the whole batch as one matmul in between
                rt = torch.zeros((B, H), dtype=f32, device=dev)
                wT = w_rec.detach().to(f32).t()
                src = gsyn if cuba else gu
                for t in range(T - 1, -1, -1):
                    if t < T - 1:
                        torch.mm(src, wT, out=rt)
                    K.scan_backward[grid](at_t(gSc, t), U[t], S[t], at_t(A, t), at_t(SG, t), rt, GX[t],
                                          at_t(GU, t), at_t(GS, t), *state, 1, 0, N, H, HAS_RT=True, **consts)
        grads = [None] * 14
        if rec and needs[1]:
            S_prev = torch.cat([s0.to(f32).expand(B, H).unsqueeze(0), S[:-1].to(f32)], 0)
            grads[1] = (S_prev.reshape(T * B, H).t() @ GX.to(f32).reshape(T * B, H)).to(w_rec.dtype)
        ctx.consumed = inplace
        grads[0] = GX if needs[0] else None
        if need_params:
            GXf = GX.to(f32)
            # parameters flattened to (H,) or (1,): reduce_to sums (H,) gradients down to those
            pf = [p.detach().to(f32).reshape(-1) if is_tensor(p) else p for p in (beta, alpha, thr)]
            g = param_grads(needs, U.to(f32), S.to(f32), GU if cuba else GXf, GXf, GS, SG,
                            v0.to(f32), syn0.to(f32), *pf, cuba, subtract)
            grads[2:5] = [None if gi is None else gi.reshape(p.shape).to(p.dtype)
                          for gi, p in zip(g, (beta, alpha, thr))]
        return tuple(grads)


def leaky_ok(x, beta):
    """Whether :class:`LeakyTriton` runs ``x`` with decay ``beta`` (as :func:`scan_ok`)."""
    return scan_ok(x, None, (beta,))


def _leaky(K, src, beta, H, reverse):
    T, B, _ = src.shape
    out = torch.empty_like(src)
    N = B * H
    if T and N:
        block = _block(N)
        K.leaky_scan[(-(-N // block),)](src, out, _vec(beta, H, src), T, (T - 1) * N, N, H, BLOCK=block,
                                        REVERSE=reverse)
    return out


class LeakyTriton(torch.autograd.Function):
    """The non-spiking leaky integrator ``v_t = beta v_{t-1} + x_t`` in one kernel launch each way."""

    @staticmethod
    def forward(ctx, x, beta):
        V = _leaky(triton_kernels(), x.detach().contiguous(), beta, x.shape[2], False)
        ctx.beta = beta
        ctx.save_for_backward(V if is_tensor(beta) else None)
        return V

    @staticmethod
    def backward(ctx, gV):
        G = _leaky(triton_kernels(), gV.contiguous(), ctx.beta, gV.shape[2], True)
        gbeta = None
        if is_tensor(ctx.beta) and ctx.needs_input_grad[1]:
            (V,) = ctx.saved_tensors
            V_prev = torch.cat([torch.zeros_like(V[:1]), V[:-1]], 0).to(torch.float32)
            gbeta = (G.to(torch.float32) * V_prev).sum((0, 1))
            gbeta = (gbeta.sum() if ctx.beta.numel() == 1 else gbeta).reshape(ctx.beta.shape).to(ctx.beta.dtype)
        return G, gbeta
