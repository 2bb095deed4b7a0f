"""The neuron scan in torch ops: the reference backend and the adjoint math all backends share.

``ScanTorch`` runs a population of spiking neurons over all time steps of precomputed input
currents ``x`` of shape ``(T, B, H)`` with torch ops (any device, any dtype). Autograd sees one node
instead of ~10 per step: the forward keeps only the membrane before reset and the spikes (its own
output, written as floats by the comparison) -- plus the adaptation variable for ``alif`` -- and the
backward pass walks the adjoint recurrence of :mod:`~sklearn_snn._core.neurons` in reverse.
Everything that does not depend on the reverse recurrence (surrogate derivatives, reset
coefficients, weight and parameter gradients) is computed for all steps at once, so the per-step
work is three ops forward (membrane, spike, reset) and one fused op backward for the feed-forward
case with a detached reset; that backward builds ``dL/ds * surrogate`` in one buffer (in place for
the fast sigmoid) and runs the adjoint over it in place. A recurrent layer adds one product
``gi_{t+1} W_rec^T`` per step, written into one reused buffer (two in-place ops per step besides it
for a detached subtractive reset), and the ``W_rec`` gradient as one product over all steps after
the loop, read from the stored spikes without a shifted copy. On CPU, while training, the
whole-sequence buffers come from the reuse pool of :mod:`~sklearn_snn._core.buffers` (a fresh
buffer costs its page faults on first touch, as much as the loop itself).

The adjoint (``g*`` = gradient of the loss w.r.t. that quantity, ``sg_t`` the surrogate derivative at
``u_t - theta_t``)::

    gs_t   = dL/ds_t + (gi_{t+1} W_rec^T) + ga_t + [not detach_reset] gv_t * dv_t/ds_t
    gu_t   = gv_t * dv_t/du_t + gs_t * sg_t
    ga_t-1 = rho * ga_t - adapt * gs_t * sg_t                     (alif)
    gsyn_t = gu_t + alpha * gsyn_{t+1};  gi_t = gsyn_t            (cuba; else gi_t = gu_t)
    gv_t-1 = beta * gu_t

:func:`param_grads` turns the stored trajectory and these adjoints into the gradients of the
decays and the threshold (for every backend). ``reference_scan`` is the plain per-step autograd
version built from ``neurons.neuron_step``; the tests hold the backends equal to it for every
model, reset mode, surrogate and recurrence option. ``LeakyTorch`` is the non-spiking leaky
integrator. The entry points that choose a backend are in :mod:`~sklearn_snn._core.kernels`.
"""

from __future__ import annotations

import torch

from . import buffers
from .neurons import NeuronSpec, neuron_step
from .surrogate import SURROGATES, spike

__all__ = ["LeakyTorch", "ScanTorch", "is_tensor", "param_grads", "reduce_to", "reference_scan", "scale_add",
           "seq_empty", "surrogate_times"]


def is_tensor(v):
    return isinstance(v, torch.Tensor)


def scale_add(x, y, k, out=None):
    """``x + k * y`` for a float or a tensor ``k`` in one op."""
    if is_tensor(k):
        return torch.addcmul(x, y, k, out=out) if out is not None else torch.addcmul(x, y, k)
    return torch.add(x, y, alpha=k, out=out) if out is not None else torch.add(x, y, alpha=k)


def membrane_input(xt, s_prev, w_rec, syn, alpha, v, beta, out):
    """One step's pre-reset membrane ``out`` and synaptic current: the recurrent input
    ``s_prev @ w_rec`` (when ``w_rec`` is given), the synaptic filter (when ``alpha`` is given, CuBa)
    and the leak ``v * beta``. Returns ``(u, syn)``."""
    if w_rec is not None:
        xt = torch.addmm(xt, s_prev, w_rec)
    if alpha is not None:
        syn = scale_add(xt, syn, alpha)
        xt = syn
    return scale_add(xt, v, beta, out=out), syn


def reduce_to(grad, like):
    """Sum a gradient over broadcast dimensions down to the shape of ``like``."""
    if not is_tensor(like):
        return None
    g = grad
    while g.dim() > like.dim():
        g = g.sum(0)
    for i, n in enumerate(like.shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g.reshape(like.shape)


class ScanTorch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, deriv, slope, inplace, record):
        T = x.shape[0]
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract = spec.reset == "subtract"
        # inplace: the membrane overwrites the input current (step t reads x[t] before writing U[t])
        # while training, the whole-sequence buffers on CPU come from the reuse pool (buffers.py):
        # a fresh one costs its page faults on first touch, as much as the loop itself
        pool = record and any(ctx.needs_input_grad[:5])
        U = x.detach() if inplace else seq_empty(x, pool)
        # the spikes are written as floats by the comparison itself (no bool copy to convert), and
        # the per-step views are taken once (unbind) instead of indexing every step
        S = seq_empty(x, pool)
        A = seq_empty(x, pool) if alif else None
        thr_c = thr if is_tensor(thr) else torch.tensor(thr, dtype=x.dtype, device=x.device)
        xs, us, ss = x.detach().unbind(0), U.unbind(0), S.unbind(0)
        vb = torch.empty_like(xs[0])          # the post-reset membrane, overwritten every step
        v, syn, a, s_prev = v0, syn0, a0, s0
        for t in range(T):
            u, syn = membrane_input(xs[t], s_prev, w_rec if rec else None, syn, alpha if cuba else None,
                                    v, beta, us[t])
            s = ss[t]
            if alif:
                A[t] = a
                torch.ge(u, a * spec.adapt + thr, out=s)
            else:
                torch.ge(u, thr_c, out=s)
            if not subtract:
                v = torch.addcmul(u, u, s, value=-1.0, out=vb)           # u (1 - s), exactly
            elif is_tensor(thr):
                v = torch.addcmul(u, s, thr, value=-1.0, out=vb)
            else:
                v = torch.sub(u, s, alpha=thr, out=vb)
            if alif:
                a = torch.add(a * spec.rho, s)
            s_prev = s
        ctx.spec, ctx.deriv, ctx.slope = spec, deriv, slope
        ctx.params = (beta, alpha, thr)
        ctx.set_materialize_grads(False)      # no (T, B, H) zeros for the membrane's unused gradient
        ctx.save_for_backward(w_rec, U, S, A, v0, syn0, a0, s0)
        final = tuple(f.detach().clone() for f in (v, syn if cuba else v0, a if alif else v0, s_prev))
        ctx.mark_non_differentiable(U, *final)
        return (S, U) + final

    @staticmethod
    def backward(ctx, gS, gU, *g_final):
        w_rec, U, S, A, v0, syn0, _, s0 = ctx.saved_tensors
        spec, deriv, slope = ctx.spec, ctx.deriv, ctx.slope
        beta, alpha, thr = ctx.params
        T, B, H = U.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract, dr = spec.reset == "subtract", spec.detach_reset
        need_params = any(ctx.needs_input_grad[2:5])
        if gS is None:
            gS = torch.zeros_like(U)
        theta = (A * spec.adapt + thr) if alif else thr
        simple = not (rec or alif) and dr and not need_params
        # dv_t/du_t and (without detach) dv_t/ds_t, for all steps at once
        q = 1.0 if subtract else 1.0 - S
        r = (-thr if subtract else -U) if not dr else None

        if simple:
            # feed-forward with a detached reset: gu_t = gS_t sg_t + beta q_t gu_{t+1}; the
            # product gS sg is built in one buffer that then takes the adjoint in place
            GU = surrogate_times(gS, U, theta, deriv, slope)
            SG = None
            if isinstance(q, float) and not is_tensor(beta):
                gus = GU.unbind(0)
                gu = gus[T - 1]
                for t in range(T - 2, -1, -1):
                    gu = torch.add(gus[t], gu, alpha=beta, out=gus[t])
            else:
                DB = (q * beta) if not isinstance(q, float) else torch.as_tensor(beta, dtype=U.dtype).expand(B, H)
                DB = DB.expand_as(U) if DB.dim() < 3 else DB
                gus, dbs = GU.unbind(0), DB.unbind(0)
                gu = gus[T - 1]
                for t in range(T - 2, -1, -1):
                    gu = torch.addcmul(gus[t], dbs[t], gu, out=gus[t])
            GS = None
        else:
            SG = deriv(U - theta, slope)
            D = q + r * SG if not dr else q
            GU = seq_empty(U, True)
            GS = None

        if simple:
            pass
        elif not (rec or alif):
            C = gS * SG
            gu = torch.zeros_like(U[0])
            if isinstance(D, float) and not is_tensor(beta):
                for t in range(T - 1, -1, -1):
                    gu = torch.add(C[t], gu, alpha=beta, out=GU[t])
            else:
                DB = torch.as_tensor(D, dtype=U.dtype, device=U.device) * beta
                DB = DB.expand_as(U) if DB.dim() < 3 else DB
                for t in range(T - 1, -1, -1):
                    gu = torch.addcmul(C[t], DB[t], gu, out=GU[t])
        else:
            GS = seq_empty(U, True) if ctx.needs_input_grad[4] else None   # read by the threshold gradient only
            gu = torch.zeros_like(U[0])
            ga = torch.zeros_like(U[0]) if alif else None
            gi_next = None
            gsyn = torch.zeros_like(U[0]) if cuba else None
            GI = seq_empty(U, True) if cuba and rec else None
            # the recurrent adjoint of each step into one reused buffer; the common case (detached
            # subtractive reset, no adaptation, a scalar decay) updates gu in two in-place ops
            gbuf = torch.empty_like(U[0]) if rec else None
            lean = subtract and dr and not alif and not is_tensor(beta)
            for t in range(T - 1, -1, -1):
                G = gS[t]
                if rec and gi_next is not None:
                    G = torch.addmm(G, gi_next, w_rec.t(), out=gbuf)
                if lean:
                    if GS is not None:
                        GS[t] = G
                    gu = torch.mul(G, SG[t], out=GU[t]).add_(gu, alpha=beta)   # gs sg + beta gu_t+1
                else:
                    gv = gu * beta
                    if alif:
                        G = G + ga
                    if dr:
                        gs = G
                    else:
                        gs = G + gv * (r[t] if is_tensor(r) and r.dim() == 3 else r)
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
                        gsyn = scale_add(gu, gsyn, alpha)
                        GI[t] = gsyn
                        gi_next = gsyn
                    else:
                        gi_next = gu
        # synaptic filter: gi_t = gu_t + alpha * gi_{t+1} (in place over GU when nothing reads it after)
        if cuba:
            if rec:
                GX = GI
            else:
                GX = GU if simple else seq_empty(U, True)
                gus, gxs = GU.unbind(0), GX.unbind(0)
                g = gus[T - 1] if simple else torch.zeros_like(U[0])
                for t in range(T - 2 if simple else T - 1, -1, -1):
                    g = scale_add(gus[t], g, alpha, out=gxs[t])
        else:
            GX = GU

        grads = [None] * 14
        grads[0] = GX if ctx.needs_input_grad[0] else None
        if rec and ctx.needs_input_grad[1]:
            # sum_t s_(t-1)^T gi_t: the initial spikes with step 0, the stored spikes with steps 1.. (no copy)
            grads[1] = s0.expand(B, H).t() @ GX[0]
            if T > 1:
                grads[1].addmm_(S[:-1].reshape((T - 1) * B, H).t(), GX[1:].reshape((T - 1) * B, H))
        if need_params:
            if GS is None and ctx.needs_input_grad[4]:
                GV = torch.cat([GU[1:] * beta, torch.zeros_like(U[:1])], 0)
                GS = gS if dr else gS + GV * r
            grads[2:5] = param_grads(ctx.needs_input_grad, U, S, GU, GX, GS, SG, v0, syn0,
                                      beta, alpha, thr, cuba, subtract)
        return tuple(grads)


def seq_empty(like, pool):
    """``torch.empty_like(like)``, from the CPU reuse pool of :mod:`~sklearn_snn._core.buffers`
    when ``pool`` (training) and ``like`` is on CPU."""
    if pool and like.device.type == "cpu":
        return buffers.empty(like.shape, like.dtype)
    return torch.empty(like.shape, dtype=like.dtype, device=like.device)


def surrogate_times(g, U, theta, deriv, slope):
    """``g * deriv(U - theta, slope)`` in one new buffer (in-place passes for the fast sigmoid)."""
    D = torch.sub(U, theta, out=seq_empty(U, True))
    if deriv is SURROGATES["fast_sigmoid"]:
        # g / (1 + k |d|)^2: four in-place passes, no temporaries
        D.abs_().mul_(slope).add_(1.0)
        D.square_()
        return torch.div(g, D, out=D)
    return torch.mul(deriv(D, slope), g, out=D)


def param_grads(needs, U, S, GU, GX, GS, SG, v0, syn0, beta, alpha, thr, cuba, subtract):
    """Gradients of the decays and the threshold from the stored trajectory (both backends).

    ``GU``/``GX`` are the adjoints of the pre-reset membrane and of the input current, ``GS`` the
    total gradient reaching the spikes and ``SG`` the surrogate derivative, all (T, B, H).
    """
    gbeta = galpha = gthr = None
    # post-reset membrane v_t, needed for the decay and synapse gradients
    V = U - thr * S if subtract else U * (1.0 - S)
    V_prev = torch.cat([v0.unsqueeze(0), V[:-1]], 0)
    if needs[2]:
        gbeta = reduce_to((GU * V_prev).sum((0, 1)), beta)
    if cuba and needs[3]:
        SYN = U - beta * V_prev
        SYN_prev = torch.cat([syn0.unsqueeze(0), SYN[:-1]], 0)
        galpha = reduce_to((GX * SYN_prev).sum((0, 1)), alpha)
    if needs[4]:
        g = -(GS * SG)
        if subtract:
            GV = torch.cat([GU[1:] * beta, torch.zeros_like(U[:1])], 0)
            g = g - GV * S
        gthr = reduce_to(g.sum((0, 1)), thr)
    return [gbeta, galpha, gthr]


def reference_scan(x, spec: NeuronSpec, surrogate="fast_sigmoid", slope=10.0, w_rec=None,
                   beta=None, alpha=None, threshold=None, state=None):
    """The same computation as :func:`~sklearn_snn._core.kernels.spiking_scan` as a plain per-step autograd loop."""
    T, B, H = x.shape
    z = x.new_zeros((B, H))
    v, syn, a, s = state if state is not None else (z, z, z, z)
    st = (v, syn, a)
    fn = lambda d: spike(d, surrogate, slope)
    spikes, mems = [], []
    for t in range(T):
        xt = x[t] if w_rec is None else x[t] + s @ w_rec
        s, u, st = neuron_step(spec, xt, st, fn, beta=beta, alpha=alpha, threshold=threshold)
        spikes.append(s)
        mems.append(u)
    return torch.stack(spikes), torch.stack(mems), (st[0], st[1], st[2], s)


class LeakyTorch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta):
        V = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            v = scale_add(x[t], v, beta, out=V[t])
        ctx.beta = beta
        if is_tensor(beta):
            ctx.save_for_backward(V)
        return V

    @staticmethod
    def backward(ctx, gV):
        beta = ctx.beta
        G = torch.empty_like(gV)
        g = torch.zeros_like(gV[0])
        for t in range(gV.shape[0] - 1, -1, -1):
            g = scale_add(gV[t], g, beta, out=G[t])
        gbeta = None
        if is_tensor(beta) and ctx.needs_input_grad[1]:
            (V,) = ctx.saved_tensors
            V_prev = torch.cat([torch.zeros_like(V[:1]), V[:-1]], 0)
            gbeta = reduce_to((G * V_prev).sum((0, 1)), beta)
        return G, gbeta


# ---- hard winner-take-all forward (H1, issue #18; used by spiking_scan(wta=True)) ------------

def wta_scan(x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec: NeuronSpec):
    """The scan of :class:`ScanTorch` with hard winner-take-all, forward only (no gradient).

    Every step, at most one neuron per sample spikes: the one furthest above its threshold
    (``u - theta``; the first on ties), and only if it is at or above it. Its own reset follows
    ``spec.reset``, then the winner resets every membrane of its sample to 0 (lateral
    inhibition). Everything else (recurrence, synapse, adaptation, per-neuron parameters) is the
    scan's. Returns ``(S, U, v, syn, a, s)`` like ``ScanTorch.forward``.
    """
    if torch.is_grad_enabled() and any(is_tensor(p) and p.requires_grad for p in (x, w_rec, beta, alpha, thr)):
        raise ValueError("spiking_scan(wta=True) runs forward only (the winner choice has no gradient): call it "
                         "under torch.no_grad() or pass tensors that do not require grad.")
    with torch.no_grad():
        T, B, H = x.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        U, S = torch.empty_like(x), torch.empty_like(x)
        # the first of the maxima has the largest rank (H .. 1). Only float ops into reused buffers
        # in the loop: on CPU, argmax, comparisons to bool and bool-to-float conversions are ~10x
        # slower than these, and fresh (B, H) tensors every step cost page faults.
        rank = torch.arange(H, 0, -1, dtype=x.dtype, device=x.device)
        z, key = x.new_empty((B, H)), x.new_empty((B, H))
        top, fire, keep = (x.new_empty((B, 1)) for _ in range(3))
        v, a = v0.clone(), a0.clone() if alif else a0
        syn, s = syn0, s0
        for t in range(T):
            u, syn = membrane_input(x[t], s, w_rec if rec else None, syn, alpha if cuba else None, v, beta, U[t])
            if alif:
                torch.sub(u, torch.mul(a, spec.adapt, out=z).add_(thr), out=z)
            else:
                torch.sub(u, thr, out=z)
            torch.amax(z, -1, keepdim=True, out=top)
            torch.sign(top, out=fire).add_(1.0).clamp_(max=1.0)        # 1 where top >= 0 (a winner)
            torch.sign(z.sub_(top), out=key).add_(1.0).mul_(rank)      # rank where z == top, else 0
            key.sub_(torch.amax(key, -1, keepdim=True, out=top))
            s = torch.mul(torch.sign(key, out=key).add_(1.0), fire, out=S[t])   # one-hot, first maximum
            # the winner's own reset (zero or subtract) is overwritten: it resets its whole sample
            torch.mul(u, torch.neg(fire, out=keep).add_(1.0), out=v)
            if alif:
                a.mul_(spec.rho).add_(s)
        return S, U, v, syn if cuba else v0, a if alif else v0, s
# ---- end of the hard winner-take-all forward ------------------------------------------------
