"""e-prop (Bellec et al. 2020): eligibility traces forward in time times a learning signal.

``eprop_step(module, x, loss_fn)`` computes, for an :class:`~sklearn_snn._core.network.SNN` with
spiking hidden layers and a :class:`~sklearn_snn._core.layers.LeakyReadout`, the e-prop weight
updates and *adds* them to each parameter's ``.grad`` (as ``loss.backward()`` would), so any
optimizer and the shared epoch loop can use it unchanged. Nothing is stored per time step: memory
is that of a chunk of ``chunk`` steps, whatever the length ``T`` of the input.

**Equations** (hidden neuron ``j``, presynaptic input ``z_i`` = the layer's input or, for
recurrent weights, the layer's own spikes of the previous step; ``psi_t`` the surrogate
derivative at ``u_t - theta_t``, notation of :mod:`~sklearn_snn._core.neurons`)::

    eps_t   = beta eps_{t-1} + z_t                        (lif / if; bias: z = 1)
    syn:    epsS_t = alpha epsS_{t-1} + z_t,  eps_t = beta eps_{t-1} + epsS_t      (cuba)
    e_t     = psi_t eps_t                                 (eligibility trace)
    alif:   e_t = psi_t (eps_t - adapt epsA_{t-1}),  epsA_t = rho epsA_{t-1} + e_t
    grad W_ji = sum_t L_{t,j} e_{t,ji}                    (summed over the batch)

``eps`` depends on the presynaptic neuron only (one (B, F) trace per layer); only ``alif`` needs
a per-synapse trace ``epsA`` (B, H, F), still independent of ``T``.

**Learning signal.** The loss reads an aggregate of the readout membrane ``V_t`` over time
(``membrane_max``/``membrane_mean``/``membrane_last``), so the error of step ``t`` is
``G_t = dL/dV_t``: ``g = dL/dlogits`` placed at the step of the maximum (per sample and output),
``g / T`` at every step, or ``g`` at the last step. It is known only once the aggregate is, so a
first pass runs the network forward without keeping anything but running aggregates (O(1) memory
in ``T``) to get the logits, the loss and ``g``; the second pass recomputes the same forward chunk
by chunk and accumulates the updates. Bellec et al. filter the eligibility traces with the
readout's leak ``kappa`` and multiply by ``L_t = G_t W_out``. We use the identical sum in the
other order, ``sum_t G_t F_kappa(e)_t = sum_t (sum_{t'>=t} kappa^{t'-t} G_t') e_t``: the
*discounted* error ``Ghat_t`` has a closed form from the first pass (``g kappa^(t*-t)`` for
``t <= t*`` with ``t*`` the step of the maximum; ``g kappa^(T-1-t)`` for the last step; a
geometric sum for the mean), so it costs O(B x outputs) instead of filtered per-synapse traces
(B x H x F). The learning signal of the top hidden layer is ``L_t = Ghat_t W_out`` (the true
``dL/ds_t`` through the readout); a lower layer gets the one of the layer above sent back through
its weights at the same step, ``L^{l-1}_t = (L^l_t psi^l_t) W_l`` (no credit through time in the
upper layer).

**What e-prop drops** (relative to BPTT through the same network): the paths through other
neurons' future spikes -- the recurrent weights ``W_rec`` -- and, between layers, through the
upper layers' membranes over time; the reset's derivative (BPTT drops it too with the default
``detach_reset=True``). So for **one feed-forward hidden layer** (lif, if, cuba or alif,
``reset='subtract'``, ``detach_reset=True``) with a LeakyReadout, e-prop's updates equal the
BPTT gradient exactly (the alif adaptation path is inside the eligibility trace). The readout's
own gradients are always exact.

``reg_fn(spikes)`` (e.g. :func:`~sklearn_snn._core.network.activity_penalty`) must depend on the
spike trains only through the spike counts per sample and neuron: it is evaluated on the counts
from the first pass (spread evenly over the steps) and its gradient joins the learning signal.
"""

from __future__ import annotations

import torch

from .kernels import leaky_integrate
from .layers import LeakyReadout, SpikingLinear
from .surrogate import get_surrogate

__all__ = ["eprop_step", "check_eprop_support", "EpropUnsupportedError"]


class EpropUnsupportedError(ValueError):
    """The network uses a feature e-prop does not cover here (a spiking readout, reset='zero',
    learned neuron parameters, normalization); the message names it and what to use instead."""


def check_eprop_support(module):
    """Raise :class:`EpropUnsupportedError` for a network e-prop does not cover here."""
    if not isinstance(module.out, LeakyReadout):
        raise EpropUnsupportedError("e-prop needs a non-spiking leaky readout: use readout='membrane_max', "
                                  "'membrane_mean' or 'membrane_last'.")
    if module.out.learn_tau:
        raise EpropUnsupportedError("e-prop does not learn the readout's time constant; set learn_tau=False.")
    for layer in module.hidden:
        if not isinstance(layer, SpikingLinear):
            raise EpropUnsupportedError(f"e-prop supports SpikingLinear hidden layers, got {type(layer).__name__}.")
        if layer.learn_tau or layer.learn_threshold or layer.norm is not None:
            raise EpropUnsupportedError("e-prop does not support learn_tau, learn_threshold or normalization.")
        if layer.spec.reset != "subtract":
            raise EpropUnsupportedError("e-prop here supports reset='subtract' (with reset-to-zero the membrane "
                                      "trace would depend on the postsynaptic neuron).")


def _filter(z, decay, init):
    """``y_t = decay * y_{t-1} + z_t`` over the first axis, from ``y_{-1} = init``."""
    W = z.shape[0]
    y = leaky_integrate(z.contiguous() if z.stride(0) == 0 else z, decay)
    if init is not None:
        k = torch.arange(1, W + 1, dtype=z.dtype, device=z.device).view(-1, *([1] * (z.dim() - 1)))
        y = y + (decay ** k) * init
    return y


def _discounted_error(readout, g, t0, n, T, kappa, argmax):
    """``Ghat_t`` for the steps ``t0 .. t0+n-1`` (see the module docstring), (n, B, O)."""
    t = torch.arange(t0, t0 + n, dtype=g.dtype, device=g.device).view(-1, 1, 1)
    if readout == "membrane_max":
        lag = argmax.to(g.dtype).unsqueeze(0) - t
        return torch.where(lag >= 0, g * kappa ** lag.clamp(min=0), torch.zeros_like(lag))
    if readout == "membrane_last":
        return g * kappa ** (T - 1 - t)
    # membrane_mean: (g / T) * sum_{t'=t}^{T-1} kappa^(t'-t)
    if kappa == 1.0:
        return g / T * (T - t)
    return g / T * (1.0 - kappa ** (T - t)) / (1.0 - kappa)


def _add_grad(p, g):
    if not p.requires_grad:
        return
    g = g.reshape(p.shape).to(p.dtype)
    p.grad = g.clone() if p.grad is None else p.grad + g


def eprop_step(module, x, loss_fn, reg_fn=None, chunk=64):
    """e-prop updates of one minibatch, accumulated into ``.grad``; returns ``(loss, reg)``.

    Parameters
    ----------
    module : sklearn_snn._core.network.SNN
        Spiking hidden layers (feed-forward or recurrent; lif, if, cuba or alif;
        ``reset='subtract'``) and a LeakyReadout (``membrane_max``, ``membrane_mean`` or
        ``membrane_last``).
    x : Tensor (T, B, F)
        Encoded input.
    loss_fn : callable
        ``loss_fn(logits) -> scalar tensor`` on the readout aggregate (B, O).
    reg_fn : callable, optional
        ``reg_fn(hidden_spikes) -> scalar tensor``, a function of the spike counts only.
    chunk : int, default=64
        Steps simulated at once; memory is O(chunk), independent of ``T``.

    Returns
    -------
    loss, reg : float

    Examples
    --------
    >>> import torch
    >>> from sklearn_snn._core.network import SNN
    >>> from sklearn_snn._core.neurons import NeuronSpec
    >>> net = SNN(4, (8,), 2, NeuronSpec(), generator=torch.Generator().manual_seed(0))
    >>> x = (torch.rand(20, 3, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    >>> y = torch.tensor([0, 1, 1])
    >>> loss, reg = eprop_step(net, x, lambda z: torch.nn.functional.cross_entropy(z, y))
    >>> net.out.weight.grad.shape, reg
    (torch.Size([2, 8]), 0.0)
    """
    check_eprop_support(module)
    T = x.shape[0]
    readout = module.readout
    kappa = float(module.out.beta0)
    starts = list(range(0, T, chunk))
    n_hidden = len(module.hidden)

    # pass 1: running aggregates only
    with torch.no_grad():
        states, run_max, argmax, total, last = None, None, None, None, None
        counts = [None] * n_hidden
        for b in starts:
            out, spikes, _, states = module.run(x[b:b + chunk], states)
            if readout == "membrane_max":
                m, i = out.max(0)
                if run_max is None:
                    run_max, argmax = m, i + b
                else:
                    better = m > run_max
                    run_max = torch.where(better, m, run_max)
                    argmax = torch.where(better, i + b, argmax)
            elif readout == "membrane_mean":
                s = out.sum(0)
                total = s if total is None else total + s
            last = out[-1]
            for l, s in enumerate(spikes[:n_hidden]):
                c = s.sum(0)
                counts[l] = c if counts[l] is None else counts[l] + c
        logits = run_max if readout == "membrane_max" else (total / T if readout == "membrane_mean" else last)
    with torch.enable_grad():
        leaf = logits.detach().requires_grad_()
        loss = loss_fn(leaf)
        g = torch.autograd.grad(loss, leaf)[0]
        reg_value, dreg = 0.0, [None] * n_hidden
        if reg_fn is not None:
            leaves = [(c / T).detach().requires_grad_() for c in counts]
            reg = reg_fn([c.unsqueeze(0).expand(T, *c.shape) for c in leaves])
            reg_value = float(reg.detach())
            if reg.requires_grad:
                grads = torch.autograd.grad(reg, leaves, allow_unused=True)
                dreg = [None if gr is None else gr / T for gr in grads]

    # pass 2: the same forward, chunk by chunk, with the traces
    hid = list(module.hidden)
    acc = {id(p): torch.zeros_like(p) for p in module.parameters()}
    traces = [dict() for _ in hid]
    with torch.no_grad():
        states = None
        for b in starts:
            xw = x[b:b + chunk]
            n = xw.shape[0]
            out, spikes, mems, new_states = module.run(xw, states)
            ghat = _discounted_error(readout, g, b, n, T, kappa, argmax)
            top = spikes[n_hidden - 1]
            acc[id(module.out.weight)] += torch.einsum("tbo,tbh->oh", ghat, top)
            acc[id(module.out.bias)] += ghat.sum((0, 1))
            L = ghat @ module.out.weight  # (n, B, H_top)
            for l in range(n_hidden - 1, -1, -1):
                layer, S, U = hid[l], spikes[l], mems[l]
                if dreg[l] is not None:
                    L = L + dreg[l]
                st = states[l] if states is not None else None
                z = xw if l == 0 else spikes[l - 1]
                psi, L_below = _layer_update(layer, z, S, U, L, st, traces[l], acc)
                L = L_below
            states = new_states
    for p in module.parameters():
        if p.requires_grad:
            _add_grad(p, acc[id(p)])
    return float(loss.detach()), reg_value


def _layer_update(layer, z, S, U, L, state, tr, acc):
    """Accumulate one layer's e-prop updates over a chunk; returns (psi, learning signal below)."""
    spec = layer.spec
    n, B, H = S.shape
    dt = S.dtype
    beta, alpha, thr = float(spec.beta), float(spec.alpha), float(spec.threshold)
    deriv = get_surrogate(layer.surrogate)
    if state is None:
        zero = S.new_zeros((B, H))
        a0, s0 = zero, zero
    else:
        a0, s0 = state[2].to(dt), state[3].to(dt)
    if spec.adaptive:
        A = _filter(S, spec.rho, a0)
        A_prev = torch.cat([a0.unsqueeze(0), A[:-1]], 0)
        theta = thr + spec.adapt * A_prev
    else:
        theta = thr
    psi = deriv(U - theta, layer.slope)
    # presynaptic traces (per presynaptic neuron): input, bias (z = 1), recurrent (own spikes t-1)
    zs = {"in": z, "bias": torch.ones((n, 1, 1), dtype=dt, device=S.device)}
    if layer.w_rec is not None:
        zs["rec"] = torch.cat([s0.unsqueeze(0), S[:-1]], 0)
    eps = {}
    for key, zk in zs.items():
        if spec.uses_synapse:
            syn = _filter(zk, alpha, tr.get(key + "_syn"))
            tr[key + "_syn"] = syn[-1]
            zk = syn
        e = _filter(zk, beta, tr.get(key))
        tr[key] = e[-1]
        eps[key] = e
    if not spec.adaptive:
        delta = L * psi  # (n, B, H)
        d2 = delta.reshape(n * B, H)
        ein = eps["in"].expand(n, B, eps["in"].shape[-1]) if eps["in"].shape[1] != B else eps["in"]
        acc[id(layer.weight)] += d2.t() @ ein.reshape(n * B, -1)
        acc[id(layer.bias)] += (delta * eps["bias"]).sum((0, 1))
        if layer.w_rec is not None:
            acc[id(layer.w_rec)] += eps["rec"].reshape(n * B, H).t() @ d2
    else:
        # per-synapse adaptation traces epsA (B, H, pre), stepped through the chunk
        keys = [("in", layer.weight, False), ("bias", layer.bias, None)]
        if layer.w_rec is not None:
            keys.append(("rec", layer.w_rec, True))
        for key, p, transposed in keys:
            epsA = tr.get(key + "_A")
            e_pre = eps[key]
            if key == "bias":
                e_pre = e_pre.expand(n, B, 1)
            elif e_pre.shape[1] != B:
                e_pre = e_pre.expand(n, B, e_pre.shape[-1])
            if epsA is None:
                epsA = S.new_zeros((B, H, e_pre.shape[-1]))
            g = S.new_zeros((H, e_pre.shape[-1]))
            for t in range(n):
                e_t = psi[t].unsqueeze(-1) * (e_pre[t].unsqueeze(1) - spec.adapt * epsA)
                g += torch.einsum("bh,bhi->hi", L[t], e_t)
                epsA = spec.rho * epsA + e_t
            tr[key + "_A"] = epsA
            if key == "bias":
                acc[id(p)] += g[:, 0]
            elif transposed:
                acc[id(p)] += g.t()
            else:
                acc[id(p)] += g
    L_below = (L * psi) @ layer.weight
    return psi, L_below
