"""EventProp: exact gradients of a current-based LIF network (Wunderlich & Pehle 2021).

The model (continuous time, one population, ``W`` the input weights)::

    tau_mem dV/dt = -V + I        tau_syn dI/dt = -I
    I -> I + W[:, j]  when presynaptic neuron j spikes (at its exact time)
    V -> 0            when V reaches the threshold theta (the neuron spikes)

Hidden layers may be recurrent: a hidden spike reaches the same layer through ``W_rec`` one
time step ``dt`` later, at the same offset inside the step (a small axonal delay, which keeps
every step's input known before the step is simulated). The output layer either spikes
(``output='ttfs'``: the result is each output neuron's first spike time) or never spikes
(``output='voltage'``: the result is each output neuron's maximum membrane potential over the
grid times ``dt, 2 dt, ...``).

Forward: the dynamics are linear between events, so the state is advanced over each step
*exactly* (exponential propagators; input spikes arriving inside the step enter through the
PSP kernel at their exact offset). The threshold is tested at the end of every step; where it
was crossed, the crossing time is found by a bracketed Newton iteration (bisection fallback) on
the exact within-step trajectory, started from the linear interpolation between the two grid
values. Root finding rather than a closed form, because with ``tau_mem != 2 tau_syn`` the
crossing is the root of a sum of exponentials with no closed form (``tau_mem = 4 tau_syn`` in
the paper's setting); it converges quadratically to machine precision in a few iterations and
runs only on the neurons that crossed. Limits of a grid test: a crossing that enters and
leaves within one step is missed, and a neuron spikes at most once per step (one still above
threshold after its reset spikes at the start of the next step, a degenerate event whose
gradient is not exact); these vanish as ``dt`` shrinks, and the gradient is exact for the
forward function as computed.

Backward: the adjoint equations, integrated backwards step by step with the transposed
propagators, with the EventProp jump of ``lambda_V`` at each spike. For a spike at ``t_s``
with ``Vdot^- = (I - theta) / tau_mem`` and ``Vdot^+ = I / tau_mem`` (before and after the reset)::

    lambda_V^- = (Vdot^+ / Vdot^-) lambda_V^+ - (dL/dt_s) / Vdot^-,    lambda_I continuous,
    dL/dt_s    = direct loss term + sum_k W[k, s] (lambda_I,k / tau_syn - lambda_V,k / tau_mem)(t_s),
    dL/dW[k, s] = sum over the spikes of s of lambda_I,k(t_s).

Here ``lambda = dL/d(V, I)`` (the paper's adjoints up to sign and time-constant factors).
Within a step, ``lambda`` at an input arrival is the end-of-step value propagated back
(separable, so it is a matmul for the whole layer) plus, for arrivals before the neuron's own
spike in that step, a sparse correction from the jump. ``Vdot^-`` is floored at
``min_slope * theta / tau_mem`` so that near-tangential crossings cannot blow the gradient up
(this is the only place where the gradient departs from exact, and only for such crossings).

The backward needs only the spikes (step, sample, neuron, offset, current at the spike), so
its memory grows with the number of spikes and not with the number of time steps; dense
tensors live one step at a time.

Two implementations of the same loops: the torch functions below (:func:`simulate`,
:func:`adjoint`; any device, recurrent layers, the reference) and compiled ones
(:mod:`sklearn_snn._core.eventprop_numba`, feed-forward networks on the CPU, loaded lazily by
:func:`numba_loops`), which :func:`eventprop` picks by default.

No autograd runs through the time loop: :class:`EventPropFunction` is a
``torch.autograd.Function`` whose backward is the adjoint, so a loss on its output (first
spike times or maximum voltages) is trained with an ordinary ``loss.backward()``.

Output neurons that never spike (``output='ttfs'``) get a finite pseudo spike time
``t_end + tau_mem (theta - V_max) / theta`` from their maximum membrane potential on the
grid: it joins the real spike times continuously at ``V_max = theta`` and its gradient (through
the adjoint jump at the time of the maximum) raises a silent neuron's voltage towards threshold.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

OUTPUTS = ("ttfs", "voltage")


@dataclass(frozen=True)
class EventPropSpec:
    """Constants of an EventProp network (times in the same unit as ``dt``, e.g. ms).

    Examples
    --------
    >>> EventPropSpec(dt=0.5, n_steps=100).t_end
    50.0
    """

    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    dt: float = 0.5
    n_steps: int = 100
    output: str = "ttfs"
    root_tol: float | None = None
    max_newton: int = 50
    min_slope: float = 1e-3

    def __post_init__(self):
        if self.tau_mem <= 0 or self.tau_syn <= 0:
            raise ValueError("tau_mem and tau_syn must be > 0.")
        if abs(self.tau_mem - self.tau_syn) < 1e-6 * self.tau_mem:
            raise ValueError("EventProp's PSP kernel needs tau_mem != tau_syn.")
        if self.threshold <= 0 or self.dt <= 0 or self.n_steps < 1:
            raise ValueError("threshold and dt must be > 0 and n_steps >= 1.")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}.")

    @property
    def t_end(self) -> float:
        return self.dt * self.n_steps

    # propagator pieces (tensors in, tensors out; u is an elapsed time >= 0)
    def em(self, u):
        return torch.exp(-u / self.tau_mem)

    def es(self, u):
        return torch.exp(-u / self.tau_syn)

    def kappa(self, u):
        """V(u) for V(0) = 0, I(0) = 1 (the PSP of a unit weight)."""
        c = self.tau_syn / (self.tau_mem - self.tau_syn)
        return c * (torch.exp(-u / self.tau_mem) - torch.exp(-u / self.tau_syn))

    def kappa_peak(self) -> float:
        tm, ts = self.tau_mem, self.tau_syn
        t_pk = math.log(tm / ts) * tm * ts / (tm - ts)
        return ts / (tm - ts) * (math.exp(-t_pk / tm) - math.exp(-t_pk / ts))


class SpikeEvents:
    """Spikes on a time grid as a sparse list, at most one per (step, sample, neuron).

    ``step``, ``batch``, ``neuron`` (int64) and ``offset`` (time since the start of the step,
    in ``[0, dt)``) are 1-D tensors sorted by ``step``; ``ptr[k]:ptr[k+1]`` is step ``k``.

    Examples
    --------
    >>> import torch
    >>> ev = SpikeEvents.from_times(torch.tensor([[0.25, float("inf")]]), dt=0.5, n_steps=4)
    >>> ev.step.tolist(), ev.neuron.tolist(), ev.offset.tolist()
    ([0], [0], [0.25])
    """

    def __init__(self, step, batch, neuron, offset, n_steps, batch_size, n_neurons):
        self.step, self.batch, self.neuron, self.offset = step, batch, neuron, offset
        self.n_steps, self.batch_size, self.n_neurons = int(n_steps), int(batch_size), int(n_neurons)
        counts = torch.bincount(step, minlength=self.n_steps)[: self.n_steps] if step.numel() else \
            torch.zeros(self.n_steps, dtype=torch.long)
        self.ptr = [0] + torch.cumsum(counts, 0).tolist()

    @classmethod
    def from_times(cls, times, dt, n_steps):
        """(B, F) spike times, ``inf``/``nan`` or outside ``[0, n_steps dt)`` for no spike."""
        B, F = times.shape
        ok = torch.isfinite(times) & (times >= 0) & (times < dt * n_steps)
        b, f = ok.nonzero(as_tuple=True)
        t = times[b, f]
        k = torch.clamp(torch.floor(t / dt).long(), 0, n_steps - 1)
        order = torch.argsort(k, stable=True)
        k, b, f, t = k[order], b[order], f[order], t[order]
        off = (t - k.to(t.dtype) * dt).clamp(min=0.0)
        return cls(k, b, f, off, n_steps, B, F)

    @classmethod
    def from_dense(cls, spikes, dtype=torch.float32):
        """(T, B, F) spike array (any non-zero is one spike at the start of its step)."""
        T, B, F = spikes.shape
        k, b, f = (spikes != 0).nonzero(as_tuple=True)
        off = torch.zeros(k.shape, dtype=dtype, device=spikes.device)
        return cls(k, b, f, off, T, B, F)

    @classmethod
    def concat_steps(cls, chunks, n_steps, batch_size, n_neurons, device, dtype):
        """Build from per-step ``(k, b, i, offset)`` chunks appended in step order."""
        if chunks:
            k = torch.cat([c[0] for c in chunks])
            b = torch.cat([c[1] for c in chunks])
            i = torch.cat([c[2] for c in chunks])
            o = torch.cat([c[3] for c in chunks])
        else:
            k = b = i = torch.zeros(0, dtype=torch.long, device=device)
            o = torch.zeros(0, dtype=dtype, device=device)
        return cls(k, b, i, o, n_steps, batch_size, n_neurons)

    def __len__(self):
        return int(self.step.numel())

    def slice(self, k):
        a, z = (self.ptr[k], self.ptr[k + 1]) if k < self.n_steps else (0, 0)
        return slice(a, z)

    def dense(self, k, dtype):
        """(mask, offset) of step ``k`` as dense (B, N) tensors."""
        sl = self.slice(k)
        mask = torch.zeros(self.batch_size, self.n_neurons, dtype=dtype, device=self.offset.device)
        off = torch.zeros_like(mask)
        if sl.stop > sl.start:
            b, i = self.batch[sl], self.neuron[sl]
            mask[b, i] = 1.0
            off[b, i] = self.offset[sl].to(dtype)
        return mask, off

    def dense_groups(self, k, dtype):
        """Step ``k`` as a list of dense (mask, offset) pairs: one pair unless a (sample, neuron)
        spikes more than once in the step (exact event times), whose later spikes go to further
        pairs (the torch loops sum the pairs; the compiled loops take the sparse list as it is)."""
        sl = self.slice(k)
        if sl.stop - sl.start < 2:
            return [self.dense(k, dtype)]
        b, i = self.batch[sl], self.neuron[sl]
        key = b * self.n_neurons + i
        order = torch.argsort(key, stable=True)
        ks = key[order]
        rank = torch.empty_like(key)
        rank[order] = torch.arange(ks.numel(), device=ks.device) - torch.searchsorted(ks, ks)
        n_groups = int(rank.max()) + 1
        if n_groups == 1:
            return [self.dense(k, dtype)]
        out = []
        for r in range(n_groups):
            sel = rank == r
            mask = torch.zeros(self.batch_size, self.n_neurons, dtype=dtype, device=self.offset.device)
            off = torch.zeros_like(mask)
            mask[b[sel], i[sel]] = 1.0
            off[b[sel], i[sel]] = self.offset[sl][sel].to(dtype)
            out.append((mask, off))
        return out

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in (self.step, self.batch, self.neuron, self.offset))


def _arrival_terms(spec, mask, off, with_em=False):
    """Per presynaptic spike, its effect on I and V at the end of the step (and exp(-rem/tau_mem))."""
    rem = spec.dt - off
    es, em = spec.es(rem), spec.em(rem)
    c = spec.tau_syn / (spec.tau_mem - spec.tau_syn)
    aI, aV = mask * es, mask * (c * (em - es))
    return (aI, aV, mask * em) if with_em else (aI, aV)


def _locate(spec, V0, I0, groups, V1, dtype):
    """Crossing times (offset in the step) and currents there for the rows of ``V0``/``I0``.

    ``groups``: list of (Wc, sc, oc), each (n, P): weights of the crossing neurons' inputs,
    presynaptic spike masks and offsets of this step.
    """
    theta, dt = spec.threshold, spec.dt
    f64 = dtype == torch.float64
    tol = spec.root_tol if spec.root_tol is not None else (1e-13 if f64 else 1e-5) * theta
    u_tol = (1e-15 if f64 else 1e-7) * dt
    c = spec.tau_syn / (spec.tau_mem - spec.tau_syn)
    # exp(-(u - o)/tau) = exp(-u/tau) exp(o/tau): per-input factors once, then masked sums per iterate
    pre = [(W * s * torch.exp(o / spec.tau_syn), W * s * torch.exp(o / spec.tau_mem), o) for W, s, o in groups]

    def trajectory(u):
        eu_s, eu_m = spec.es(u), spec.em(u)
        sum_s = torch.zeros_like(u)
        sum_m = torch.zeros_like(u)
        for As, Am, oc in pre:
            act = (u.unsqueeze(1) > oc).to(dtype)
            sum_s = sum_s + (act * As).sum(1)
            sum_m = sum_m + (act * Am).sum(1)
        I = eu_s * (I0 + sum_s)
        V = V0 * eu_m + c * (eu_m * (I0 + sum_m) - eu_s * (I0 + sum_s))
        return V, I

    lo = torch.zeros_like(V0)
    hi = torch.full_like(V0, dt)
    denom = V1 - V0
    u = torch.where(denom > 0, dt * (theta - V0) / denom.clamp(min=1e-30), hi).clamp(0.0, dt)
    for _ in range(spec.max_newton):
        V, I = trajectory(u)
        g = V - theta
        if bool(((g.abs() <= tol) | (hi - lo <= u_tol)).all()):
            break
        lo = torch.where(g < 0, u, lo)
        hi = torch.where(g >= 0, u, hi)
        slope = (I - V) / spec.tau_mem
        un = u - g / torch.where(slope > 0, slope, torch.ones_like(slope))
        bad = (slope <= 0) | (un < lo) | (un > hi) | ~torch.isfinite(un)
        u = torch.where(bad, 0.5 * (lo + hi), un)
    else:
        V, I = trajectory(u)
    return u, I


def _layers(weights, recurrent):
    """Split the flat weight tuple into per-layer (W_ff, W_rec or None).

    ``recurrent``: one bool per hidden layer; ``None`` or empty = no recurrence.
    """
    if not recurrent:
        recurrent = (False,) * (len(weights) - 1)
    out, i = [], 0
    n_hidden = len(recurrent)
    for l in range(n_hidden):
        Wf = weights[i]
        i += 1
        Wr = None
        if recurrent[l]:
            Wr = weights[i]
            i += 1
        out.append((Wf, Wr))
    out.append((weights[i], None))
    if i + 1 != len(weights):
        raise ValueError("Weight list does not match the layer structure.")
    return out


@torch.no_grad()
def simulate(spec: EventPropSpec, inputs: SpikeEvents, weights, recurrent=None, record=False):
    """Run the exact forward pass; returns a dict.

    Keys: ``out`` (B, O) first spike times (pseudo times for silent outputs) or maximum
    voltages; ``events`` one :class:`SpikeEvents` per spiking layer (``current`` attached:
    the synaptic current at each spike; the output layer keeps first spikes only);
    ``spiked`` (B, O) bool; ``v_max``/``k_max`` (B, O); ``n_spikes`` per layer (all spikes);
    with ``record``: ``spikes``, ``offsets`` (spike time minus step start) and ``voltages``
    (end of step, after reset), dense (T, B, H) per layer, for inspection.
    """
    layers = _layers(weights, tuple(recurrent or ()))
    L = len(layers) - 1
    dtype = layers[0][0].dtype
    device = layers[0][0].device
    B, T = inputs.batch_size, spec.n_steps
    theta, dt = spec.threshold, spec.dt
    sizes = [W.shape[0] for W, _ in layers]
    V = [torch.zeros(B, h, dtype=dtype, device=device) for h in sizes]
    I = [torch.zeros(B, h, dtype=dtype, device=device) for h in sizes]
    rec_prev = [None] * (L + 1)
    chunks = [[] for _ in range(L + 1)]
    currents = [[] for _ in range(L + 1)]
    n_spikes = [0] * (L + 1)
    O = sizes[-1]
    t_first = torch.full((B, O), math.inf, dtype=dtype, device=device)
    v_max = torch.full((B, O), -math.inf, dtype=dtype, device=device)
    k_max = torch.zeros((B, O), dtype=torch.long, device=device)
    rec_s = [[] for _ in range(L + 1)] if record else None
    rec_v = [[] for _ in range(L + 1)] if record else None
    rec_o = [[] for _ in range(L + 1)] if record else None
    em_dt = math.exp(-dt / spec.tau_mem)
    es_dt = math.exp(-dt / spec.tau_syn)
    k_dt = float(spec.kappa(torch.tensor(dt, dtype=torch.float64)))
    out_spiking = spec.output == "ttfs"
    for k in range(T):
        pre_groups = inputs.dense_groups(k, dtype)
        for l, (Wf, Wr) in enumerate(layers):
            groups = [(Wf, m, o) for m, o in pre_groups]
            if Wr is not None and rec_prev[l] is not None:
                groups.append((Wr, rec_prev[l][0], rec_prev[l][1]))
            V0, I0 = V[l], I[l]
            V1 = V0 * em_dt + I0 * k_dt
            I1 = I0 * es_dt
            for W, m, o in groups:
                aI, aV = _arrival_terms(spec, m, o)
                I1 = I1 + aI @ W.T
                V1 = V1 + aV @ W.T
            spiking = l < L or out_spiking
            if l == L:
                upd = V1 > v_max
                v_max = torch.where(upd, V1, v_max)
                k_max = torch.where(upd, torch.full_like(k_max, k), k_max)
            mask = torch.zeros_like(V1)
            off = torch.zeros_like(V1)
            if spiking:
                b, i = (V1 >= theta).nonzero(as_tuple=True)
                if b.numel():
                    sel = [(W[i], m[b], o[b]) for W, m, o in groups]
                    u, Ic = _locate(spec, V0[b, i], I0[b, i], sel, V1[b, i], dtype)
                    n_spikes[l] += int(b.numel())
                    V1 = V1.index_put((b, i), V1[b, i] - theta * spec.em(dt - u))
                    mask[b, i] = 1.0
                    off[b, i] = u
                    keep = torch.ones_like(b, dtype=torch.bool)
                    if l == L:
                        keep = ~torch.isfinite(t_first[b, i])
                        t_first[b[keep], i[keep]] = k * dt + u[keep]
                    kk = torch.full_like(b[keep], k)
                    chunks[l].append((kk, b[keep], i[keep], u[keep]))
                    currents[l].append(Ic[keep])
            if record:
                rec_s[l].append(mask.clone())
                rec_o[l].append(off.clone())
                rec_v[l].append(V1.clone())
            V[l], I[l] = V1, I1
            if Wr is not None:
                rec_prev[l] = (mask, off)
            pre_groups = [(mask, off)]
    events = []
    for l in range(L + 1):
        if l == L and not out_spiking:
            events.append(None)
            continue
        ev = SpikeEvents.concat_steps(chunks[l], T, B, sizes[l], device, dtype)
        ev.current = torch.cat(currents[l]) if currents[l] else torch.zeros(0, dtype=dtype, device=device)
        events.append(ev)
    spiked = torch.isfinite(t_first)
    if out_spiking:
        pseudo = spec.t_end + spec.tau_mem * (theta - v_max) / theta
        out = torch.where(spiked, t_first, pseudo)
    else:
        out = v_max
    res = {"out": out, "events": events, "spiked": spiked, "v_max": v_max, "k_max": k_max, "n_spikes": n_spikes}
    if record:
        res["spikes"] = [torch.stack(s) for s in rec_s]
        res["voltages"] = [torch.stack(v) for v in rec_v]
        res["offsets"] = [torch.stack(o) for o in rec_o]
    return res


@torch.no_grad()
def adjoint(spec: EventPropSpec, inputs: SpikeEvents, weights, recurrent, fwd, grad_out):
    """Gradients of ``sum(grad_out * out)`` w.r.t. every weight, by the adjoint method."""
    layers = _layers(weights, tuple(recurrent or ()))
    L = len(layers) - 1
    dtype = layers[0][0].dtype
    device = layers[0][0].device
    B, T = inputs.batch_size, spec.n_steps
    theta, dt, tm, ts = spec.threshold, spec.dt, spec.tau_mem, spec.tau_syn
    sizes = [W.shape[0] for W, _ in layers]
    events = fwd["events"]
    out_spiking = spec.output == "ttfs"
    lam_V = [torch.zeros(B, h, dtype=dtype, device=device) for h in sizes]
    lam_I = [torch.zeros(B, h, dtype=dtype, device=device) for h in sizes]
    pending_rec = [torch.zeros(B, h, dtype=dtype, device=device) for h in sizes]
    gW = [(torch.zeros_like(Wf), None if Wr is None else torch.zeros_like(Wr)) for Wf, Wr in layers]
    grad_out = grad_out.to(dtype)
    # voltage jumps at the grid time of the maximum: voltage output, or silent ttfs outputs
    if out_spiking:
        gV = torch.where(fwd["spiked"], torch.zeros_like(grad_out), -grad_out * tm / theta)
        g_first = torch.where(fwd["spiked"], grad_out, torch.zeros_like(grad_out))
    else:
        gV, g_first = grad_out, None
    k_max = fwd["k_max"]
    em_dt, es_dt = math.exp(-dt / tm), math.exp(-dt / ts)
    k_dt = float(spec.kappa(torch.tensor(dt, dtype=torch.float64)))
    min_slope = spec.min_slope * theta / tm
    for k in range(T - 1, -1, -1):
        g_above = None
        for l in range(L, -1, -1):
            Wf, Wr = layers[l]
            if l == L:
                lam_V[l] = lam_V[l] + torch.where(k_max == k, gV, torch.zeros_like(gV))
            lv1, li1 = lam_V[l], lam_I[l]
            lv0 = lv1 * em_dt
            li0 = li1 * es_dt + lv1 * k_dt
            ev = events[l]
            n_c = 0
            if ev is not None:
                sl = ev.slice(k)
                n_c = sl.stop - sl.start
            if n_c:
                b, i, u, Ic = ev.batch[sl], ev.neuron[sl], ev.offset[sl], ev.current[sl]
                gts = pending_rec[l][b, i]
                if g_above is not None:
                    gts = gts + g_above[b, i]
                if l == L:
                    gts = gts + g_first[b, i]
                slope = ((Ic - theta) / tm).clamp(min=min_slope)
                lvp = lv1[b, i] * spec.em(dt - u)
                delta = (theta / tm * lvp - gts) / slope
                lv0 = lv0.index_put((b, i), spec.em(u) * delta, accumulate=True)
                li0 = li0.index_put((b, i), spec.kappa(u) * delta, accumulate=True)
            # presynaptic arrivals of this step: feed-forward, then recurrent (from step k-1)
            pre_ff = inputs.dense_groups(k, dtype) if l == 0 else [events[l - 1].dense(k, dtype)]
            groups = [(Wf, g, 0, l > 0) for g in pre_ff]
            if Wr is not None:
                groups.append((Wr, events[l].dense(k - 1, dtype) if k > 0 else None, 1, True))
            new_above, new_rec = None, torch.zeros_like(pending_rec[l])
            for W, pre, slot, need_t in groups:
                if pre is None:
                    continue
                m, o = pre
                aI, aV, aM = _arrival_terms(spec, m, o, with_em=True)
                g = gW[l][slot]
                g += li1.T @ aI + lv1.T @ aV
                if need_t:
                    lIW, lVW = li1 @ W, lv1 @ W
                    gt = aI * lIW / ts + (aV / ts - aM / tm) * lVW
                if n_c:
                    oc, mc = o[b], m[b]
                    du = u.unsqueeze(1) - oc
                    act = mc * (du > 0).to(dtype)
                    du = du.clamp(min=0.0)
                    kd = act * spec.kappa(du)
                    g.index_add_(0, i, kd * delta.unsqueeze(1))
                    if need_t:
                        corr = W[i] * (kd / ts - act * spec.em(du) / tm) * delta.unsqueeze(1)
                        gt = gt.index_add(0, b, corr)
                if need_t:
                    if slot == 0:
                        new_above = gt
                    else:
                        new_rec = gt
            lam_V[l], lam_I[l] = lv0, li0
            pending_rec[l] = new_rec
            g_above = new_above
    flat = []
    for l in range(L + 1):
        flat.append(gW[l][0])
        if gW[l][1] is not None:
            flat.append(gW[l][1])
    return flat


def numba_loops():
    """The compiled loops (:mod:`sklearn_snn._core.eventprop_numba`), or ``None`` without numba
    or with the environment variable ``SKLEARN_SNN_NUMBA=0`` (the torch loops run instead)."""
    if os.environ.get("SKLEARN_SNN_NUMBA", "1") == "0":
        return None
    try:
        from . import eventprop_numba
    except ImportError:
        return None
    return eventprop_numba


def compiled_backend(backend, weights, recurrent):
    """The compiled loops to use for this network (:func:`numba_loops`), or ``None`` for torch:
    ``backend='torch'``, recurrent layers or weights off the CPU.

    Examples
    --------
    >>> import torch
    >>> W = [torch.zeros(3, 2), torch.zeros(2, 3)]
    >>> compiled_backend("torch", W, ()) is None, compiled_backend("auto", W, (True,)) is None
    (True, True)
    """
    if backend == "torch" or any(recurrent or ()) or weights[0].device.type != "cpu":
        return None
    return numba_loops()


def input_csr(inputs):
    """Input spikes as a per-sample CSR sorted by (sample, step): ``(ptr, neuron, offset)`` numpy."""
    T, B = inputs.n_steps, inputs.batch_size
    key = inputs.batch * T + inputs.step
    order = torch.argsort(key, stable=True)
    ptr = torch.zeros(B * T + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(key.cpu(), minlength=B * T), 0)
    return (ptr.numpy(), inputs.neuron[order].cpu().numpy().astype(np.int64),
            inputs.offset[order].cpu().numpy().astype(np.float64))


def _tol(spec):
    tol = spec.root_tol if spec.root_tol is not None else 1e-13 * spec.threshold
    return tol, 1e-15 * spec.dt


def forward_numba(nb, spec, inputs, weights, early_exit=True):
    """The compiled forward pass; returns the state the compiled backward needs (numpy).

    ``early_exit``: a ``ttfs`` sample stops once all its output neurons have spiked (same output
    and gradients; fewer stored spikes)."""
    ptr, j, o = input_csr(inputs)
    Ws = tuple(np.ascontiguousarray(W.detach().cpu().numpy(), dtype=np.float64) for W in weights)
    tol, u_tol = _tol(spec)
    res = nb.forward(ptr, j, o, Ws, inputs.batch_size, spec.n_steps, spec.threshold, spec.dt, spec.tau_mem,
                     spec.tau_syn, spec.output == "ttfs", spec.max_newton, tol, u_tol, early_exit)
    names = ("out", "spiked", "k_max", "v_max", "ev_ptr", "ev_l", "ev_k", "ev_i", "ev_u", "ev_I", "n_spikes")
    st = dict(zip(names, res))
    st.update(csr=(ptr, j, o), Ws=Ws)
    return st


def backward_numba(nb, spec, inputs, st, grad_out):
    """The compiled adjoint: gradients (float64 numpy, one per weight) of ``sum(grad_out * out)``."""
    grads = tuple(np.zeros_like(W) for W in st["Ws"])
    ptr, j, o = st["csr"]
    nb.backward(ptr, j, o, st["Ws"], grads, inputs.batch_size, spec.n_steps, spec.threshold, spec.dt,
                spec.tau_mem, spec.tau_syn, spec.output == "ttfs", spec.min_slope, st["spiked"], st["k_max"],
                np.ascontiguousarray(grad_out.detach().cpu().numpy(), dtype=np.float64), st["ev_ptr"], st["ev_l"],
                st["ev_k"], st["ev_i"], st["ev_u"], st["ev_I"])
    return grads


class EventPropFunction(torch.autograd.Function):
    """``apply(spec, inputs, recurrent, backend, *weights) -> out`` with the adjoint as backward.

    Only the spike lists (and the (B, O) output bookkeeping) are kept for the backward pass.
    ``backend``: 'auto' (the compiled loops for feed-forward networks on the CPU when numba is
    installed, else torch) or 'torch'.
    """

    @staticmethod
    def forward(ctx, spec, inputs, recurrent, backend, *weights):
        ctx.spec, ctx.inputs, ctx.recurrent = spec, inputs, tuple(recurrent or ())
        ctx.nb = compiled_backend(backend, weights, recurrent)
        ctx.save_for_backward(*weights)
        if ctx.nb is not None:
            st = forward_numba(ctx.nb, spec, inputs, weights)
            ctx.fwd = st
            return torch.as_tensor(st["out"]).to(dtype=weights[0].dtype, device=weights[0].device)
        fwd = simulate(spec, inputs, weights, recurrent)
        keep = {k: fwd[k] for k in ("events", "spiked", "k_max")}
        ctx.fwd = keep
        return fwd["out"]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        weights = ctx.saved_tensors
        if ctx.nb is not None:
            gs = backward_numba(ctx.nb, ctx.spec, ctx.inputs, ctx.fwd, grad_out)
            grads = [torch.as_tensor(g).to(dtype=w.dtype, device=w.device) for g, w in zip(gs, weights)]
        else:
            grads = adjoint(ctx.spec, ctx.inputs, weights, ctx.recurrent, ctx.fwd, grad_out)
        return (None, None, None, None, *grads)


def eventprop(spec: EventPropSpec, inputs: SpikeEvents, weights, recurrent=None, backend="auto"):
    """Differentiable forward: (B, O) first spike times (``ttfs``) or maximum voltages.

    ``backend='auto'`` runs the compiled loops (:func:`numba_loops`) for feed-forward networks
    on the CPU when numba is installed, the torch loops otherwise; ``'torch'`` forces the latter.

    Examples
    --------
    >>> import torch
    >>> spec = EventPropSpec(dt=1.0, n_steps=40)
    >>> x = SpikeEvents.from_times(torch.tensor([[0.0, 2.0]]), spec.dt, spec.n_steps)
    >>> W1 = torch.full((3, 2), 4.0, requires_grad=True)
    >>> W2 = torch.full((2, 3), 3.0, requires_grad=True)
    >>> t = eventprop(spec, x, [W1, W2])
    >>> t.shape, bool(t[0, 0] < spec.t_end)
    (torch.Size([1, 2]), True)
    >>> t.sum().backward()
    >>> bool(W1.grad.abs().sum() > 0)
    True
    """
    return EventPropFunction.apply(spec, inputs, tuple(recurrent or ()), backend, *weights)


def saved_bytes(events_list):
    """Bytes held by a list of :class:`SpikeEvents` (what the backward pass keeps)."""
    total = 0
    for ev in events_list:
        if ev is not None:
            total += ev.nbytes() + ev.current.numel() * ev.current.element_size()
    return total


def ttfs_loss(t, y, tau0=0.5, tau1=6.4, reg=3e-3, t_cap=None, sample_weight=None):
    """Time-to-first-spike cross-entropy of Wunderlich & Pehle (2021), eq. for Yin-Yang.

    ``-log softmax(-t / tau0)[y] + reg * (exp(t_y / tau1) - 1)``, averaged over the batch
    (weighted by ``sample_weight``). The regulariser pushes the correct neuron to fire early;
    ``t_cap`` bounds the time inside the exponential (pseudo times of silent neurons can be
    large). Returns (loss, regulariser).

    Examples
    --------
    >>> import torch
    >>> loss, r = ttfs_loss(torch.tensor([[1.0, 50.0]]), torch.tensor([0]), reg=0.0)
    >>> round(float(loss), 6)
    0.0
    """
    logp = torch.log_softmax(-t / tau0, dim=1)
    nll = -logp.gather(1, y.view(-1, 1)).squeeze(1)
    ty = t.gather(1, y.view(-1, 1)).squeeze(1)
    if t_cap is not None:
        ty = ty.clamp(max=t_cap)
    r = reg * (torch.exp(ty / tau1) - 1.0)
    per = nll + r
    if sample_weight is None:
        return per.mean(), r.mean()
    w = sample_weight / sample_weight.sum()
    return (per * w).sum(), (r * w).sum()


def voltage_loss(v, y, sample_weight=None):
    """Cross-entropy on the maximum voltages (softmax over output neurons).

    Examples
    --------
    >>> import torch
    >>> round(float(voltage_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))), 4)
    0.6931
    """
    per = torch.nn.functional.cross_entropy(v, y, reduction="none")
    if sample_weight is None:
        return per.mean()
    return (per * sample_weight).sum() / sample_weight.sum()
