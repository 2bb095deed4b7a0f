"""Feed-forward and recurrent spiking stacks with a readout, BPTT and truncated BPTT.

Readouts turn the output layer's activity over time into one vector per sample:

- ``spike_count``: spiking output layer, logits = number of spikes;
- ``first_spike``: spiking output layer, logits = minus the number of steps before the first
  spike (``sum_t prod_{s<=t} (1 - s_s)``, differentiable through the surrogate);
- ``membrane_max`` / ``membrane_last`` / ``membrane_mean``: non-spiking leaky integrators,
  logits = the maximum / last / mean membrane over time.
"""

from __future__ import annotations

import torch
from torch import nn

from .kernels import calls_per_step
from .layers import LeakyReadout, SpikingLinear
from .neurons import NeuronSpec

READOUTS = ("spike_count", "first_spike", "membrane_max", "membrane_last", "membrane_mean")
SPIKING_READOUTS = ("spike_count", "first_spike")


class SNN(nn.Module):
    """A stack of :class:`SpikingLinear` layers and a readout.

    Examples
    --------
    >>> import torch
    >>> net = SNN(4, (8,), 3, NeuronSpec(), generator=torch.Generator().manual_seed(0))
    >>> logits, spikes = net(torch.rand(10, 2, 4))
    >>> logits.shape, spikes[0].shape
    (torch.Size([2, 3]), torch.Size([10, 2, 8]))
    """

    def __init__(self, n_in, hidden_layer_sizes, n_out, spec: NeuronSpec, surrogate="fast_sigmoid", slope=10.0,
                 recurrent=False, readout="membrane_max", learn_tau=False, learn_threshold=False,
                 normalization=None, n_steps=None, generator=None, dtype=torch.float32, gain=1.0):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}.")
        self.readout = readout
        sizes = (n_in,) + tuple(hidden_layer_sizes)
        self.hidden = nn.ModuleList(
            SpikingLinear(a, b, spec, surrogate, slope, recurrent=recurrent, learn_tau=learn_tau,
                          learn_threshold=learn_threshold, normalization=normalization, n_steps=n_steps,
                          generator=generator, dtype=dtype, gain=gain)
            for a, b in zip(sizes[:-1], sizes[1:])
        )
        if readout in SPIKING_READOUTS:
            self.out = SpikingLinear(sizes[-1], n_out, spec, surrogate, slope, learn_tau=learn_tau,
                                     learn_threshold=learn_threshold, generator=generator, dtype=dtype, gain=gain)
        else:
            self.out = LeakyReadout(sizes[-1], n_out, beta=spec.beta if spec.model != "if" else 1.0,
                                    learn_tau=learn_tau, generator=generator, dtype=dtype)

    @property
    def layers(self):
        return list(self.hidden) + [self.out]

    def run(self, x, states=None):
        """Simulate over (T, B, F); returns (output sequence, hidden spikes, membranes, states)."""
        states = states if states is not None else [None] * (len(self.hidden) + 1)
        spikes, mems, new_states = [], [], []
        h = x
        for layer, st in zip(self.hidden, states[:-1]):
            h, u, st = layer(h, st)
            spikes.append(h)
            mems.append(u)
            new_states.append(st)
        if self.readout in SPIKING_READOUTS:
            out, u, st = self.out(h, states[-1])
            spikes.append(out)
        else:
            out, st = self.out(h, states[-1])
            u = out
        mems.append(u)
        new_states.append(st)
        return out, spikes, mems, new_states

    def aggregate(self, out, n_total=None):
        r = self.readout
        if r == "spike_count":
            return out.sum(0)
        if r == "first_spike":
            return -(1.0 - out).cumprod(0).sum(0)
        if r == "membrane_max":
            return out.max(0).values
        if r == "membrane_last":
            return out[-1]
        return out.sum(0) / (n_total or out.shape[0])

    def forward(self, x):
        out, spikes, _, _ = self.run(x)
        return self.aggregate(out), spikes

    def tbptt_backward(self, x, loss_fn, window, reg_fn=None):
        """Truncated BPTT in windows of ``window`` steps; gradients accumulate in ``.grad``.

        A first pass without a graph simulates the whole input, keeps each window's initial
        state and gives the loss and its gradient w.r.t. the readout. The second pass re-runs each
        window from its saved (detached) state and backpropagates that gradient through the window
        only, so memory holds one window's graph. Gradients do not cross window boundaries.
        Returns ``(loss, reg)`` as floats.
        """
        if self.readout == "first_spike":
            raise ValueError("readout='first_spike' cannot be split into windows; use bptt_window=None.")
        T = x.shape[0]
        starts = list(range(0, T, window))
        with calls_per_step(2 * len(starts)):    # the fit's work, for the compiled-kernel rule
            return self._tbptt_windows(x, loss_fn, window, starts, reg_fn)

    def _tbptt_windows(self, x, loss_fn, window, starts, reg_fn):
        T = x.shape[0]
        saved, parts = [], []
        with torch.no_grad():
            states = None
            for b in starts:
                saved.append(states)
                out, _, _, states = self.run(x[b:b + window], states)
                parts.append(self._partial(out))
            logits = self._combine(parts, T)
        leaf = logits.detach().requires_grad_()
        loss = loss_fn(leaf)
        loss.backward()
        g = leaf.grad
        reg_total = 0.0
        for k, (b, st) in enumerate(zip(starts, saved)):
            out, spikes, _, _ = self.run(x[b:b + window], st)
            part = self._partial(out)
            if self.readout == "membrane_max":
                obj = (part * g * (part == logits).to(part.dtype)).sum()
            elif self.readout == "membrane_last":
                obj = (part * g).sum() if k == len(starts) - 1 else part.sum() * 0.0
            elif self.readout == "membrane_mean":
                obj = (part * g).sum() / T
            else:
                obj = (part * g).sum()
            if reg_fn is not None:
                reg = reg_fn(spikes) / len(starts)
                reg_total += float(reg)
                obj = obj + reg
            obj.backward()
        return float(loss.detach()), reg_total

    def _partial(self, out):
        r = self.readout
        if r == "membrane_max":
            return out.max(0).values
        if r == "membrane_last":
            return out[-1]
        return out.sum(0)

    def _combine(self, parts, T):
        r = self.readout
        if r == "membrane_max":
            return torch.stack(parts).max(0).values
        if r == "membrane_last":
            return parts[-1]
        total = torch.stack(parts).sum(0)
        return total / T if r == "membrane_mean" else total


def activity_penalty(spikes, spike_l1=0.0, spike_l2=0.0, target_rate=None, rate_penalty=0.0):
    """Temporal regularisers on hidden spike trains (a list of (T, B, H) tensors).

    - ``spike_l1``: mean spike count per neuron and sample;
    - ``spike_l2``: mean squared spike count per neuron and sample;
    - ``target_rate=(low, high)`` with ``rate_penalty``: per-neuron firing rate (spikes per step,
      averaged over the batch) kept inside the band by ``relu(low - r)^2 + relu(r - high)^2``
      (Zenke & Vogels 2021; Cramer et al. 2022).

    Examples
    --------
    >>> import torch
    >>> s = torch.zeros(4, 1, 2); s[:, 0, 0] = 1.0   # neuron 0 fires every step, neuron 1 never
    >>> float(activity_penalty([s], spike_l1=1.0))
    2.0
    >>> float(activity_penalty([s], target_rate=(0.1, 0.5), rate_penalty=1.0))
    0.26
    """
    total = spikes[0].new_zeros(())
    for s in spikes:
        counts = s.sum(0)
        if spike_l1:
            total = total + spike_l1 * counts.mean()
        if spike_l2:
            total = total + spike_l2 * counts.square().mean()
        if target_rate is not None and rate_penalty:
            low, high = target_rate
            r = counts.mean(0) / s.shape[0]
            total = total + rate_penalty * (torch.relu(low - r).square() + torch.relu(r - high).square()).sum()
    return total
