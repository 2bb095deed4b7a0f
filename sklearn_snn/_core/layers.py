"""Layers: synapses + neurons over whole sequences (T, B, F).

A feed-forward layer projects the input of *all* steps in one matmul (one matmul in total when
the input is a constant current, detected through its stride-0 time axis), then runs the fused
neuron scan of :mod:`~sklearn_snn._core.kernels`. Recurrent weights live inside the scan.

Learned neuron parameters (per neuron) are parametrised so they stay valid: decays are
``sigmoid(raw)`` in (0, 1), thresholds ``softplus(raw) + 1e-3`` > 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .encoding import is_static
from .kernels import leaky_integrate, spiking_scan
from .neurons import NeuronSpec


def _uniform(shape, bound, generator, dtype):
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2.0 - 1.0) * bound


def _logit(p):
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _softplus_inv(y):
    return y + math.log(-math.expm1(-y))


class TimeBatchNorm(nn.Module):
    """Batch norm adapted to time, applied to the synaptic current (T, B, H).

    ``mode='bntt'`` (Kim & Panda 2021): separate statistics and scale for every time step.
    ``mode='tdbn'`` (Zheng et al. 2021): statistics over time and batch together; the normalised
    current is scaled by ``alpha * threshold`` so it is comparable with the threshold.
    In eval mode both use running statistics (momentum 0.1, like ``nn.BatchNorm1d``).
    """

    def __init__(self, n, n_steps, mode="bntt", threshold=1.0, alpha=1.0, eps=1e-5, momentum=0.1):
        super().__init__()
        self.mode, self.eps, self.momentum = mode, eps, momentum
        steps = n_steps if mode == "bntt" else 1
        self.weight = nn.Parameter(torch.ones(steps, 1, n))
        self.bias = nn.Parameter(torch.zeros(steps, 1, n))
        self.register_buffer("running_mean", torch.zeros(steps, 1, n))
        self.register_buffer("running_var", torch.ones(steps, 1, n))
        self.scale = alpha * threshold if mode == "tdbn" else 1.0

    def forward(self, x):
        T = x.shape[0]
        if self.mode == "bntt" and T != self.weight.shape[0]:
            raise ValueError(
                f"normalization='bntt' keeps statistics per time step and was built for "
                f"{self.weight.shape[0]} steps; got input with {T} steps. Use the same n_steps, or "
                "normalization='tdbn'."
            )
        dims = (1,) if self.mode == "bntt" else (0, 1)
        if self.training:
            mean = x.mean(dims, keepdim=True)
            var = x.var(dims, keepdim=True, unbiased=False)
            with torch.no_grad():
                n = x.shape[1] * (1 if self.mode == "bntt" else T)
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        else:
            mean, var = self.running_mean, self.running_var
        xhat = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * (xhat * self.weight + self.bias)


class SpikingLinear(nn.Module):
    """Dense synapses followed by a population of spiking neurons, optionally recurrent.

    Parameters
    ----------
    n_in, n_out : int
    spec : NeuronSpec
    surrogate, slope :
        Surrogate derivative for the backward pass.
    recurrent : bool
        Add all-to-all recurrent weights (spikes of step t-1 feed step t).
    learn_tau, learn_threshold : bool
        Make the decays / thresholds per-neuron learnable parameters.
    normalization : None, 'bntt' or 'tdbn'
    n_steps : int
        Needed by ``'bntt'`` (statistics per step).
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(self, n_in, n_out, spec: NeuronSpec, surrogate="fast_sigmoid", slope=10.0, recurrent=False,
                 learn_tau=False, learn_threshold=False, normalization=None, n_steps=None, generator=None,
                 dtype=torch.float32, gain=1.0):
        super().__init__()
        self.spec, self.surrogate, self.slope = spec, surrogate, slope
        bound = gain / math.sqrt(n_in)
        self.weight = nn.Parameter(_uniform((n_out, n_in), bound, generator, dtype))
        self.bias = nn.Parameter(_uniform((n_out,), bound, generator, dtype))
        self.w_rec = (nn.Parameter(_uniform((n_out, n_out), 1.0 / math.sqrt(n_out), generator, dtype))
                      if recurrent else None)
        self.learn_tau, self.learn_threshold = learn_tau, learn_threshold
        if learn_tau:
            self.beta_raw = nn.Parameter(torch.full((n_out,), _logit(spec.beta), dtype=dtype))
            if spec.uses_synapse:
                self.alpha_raw = nn.Parameter(torch.full((n_out,), _logit(spec.alpha), dtype=dtype))
        if learn_threshold:
            self.thr_raw = nn.Parameter(torch.full((n_out,), _softplus_inv(spec.threshold - 1e-3), dtype=dtype))
        self.norm = (TimeBatchNorm(n_out, n_steps, normalization, threshold=spec.threshold)
                     if normalization else None)

    # learned neuron parameters, always in their valid ranges
    def neuron_params(self):
        beta = torch.sigmoid(self.beta_raw) if self.learn_tau and self.spec.model != "if" else None
        alpha = torch.sigmoid(self.alpha_raw) if self.learn_tau and self.spec.uses_synapse else None
        thr = nn.functional.softplus(self.thr_raw) + 1e-3 if self.learn_threshold else None
        return beta, alpha, thr

    def project(self, x):
        """Synaptic current for all steps: one matmul (once only for a static input).

        A mostly-zero input (spike trains: encoded data or a previous layer's spikes) takes the
        sparse path of :func:`~sklearn_snn._core.kernels.sparse_linear` on CPU, which touches only
        the nonzero entries in the forward pass and in the weight gradient.
        """
        from .kernels import sparse_linear

        if is_static(x):
            cur = nn.functional.linear(x[0], self.weight, self.bias)
            return cur.unsqueeze(0).expand(x.shape[0], *cur.shape)
        return sparse_linear(x, self.weight, self.bias)

    def forward(self, x, state=None):
        cur = self.project(x)
        # the projected current is this layer's own intermediate (unless it is the expanded view
        # of a static input): the scan may keep the membrane in its buffer
        inplace = not is_static(x)
        if self.norm is not None:
            cur = self.norm(cur)
            inplace = False
        beta, alpha, thr = self.neuron_params()
        return spiking_scan(cur, self.spec, self.surrogate, self.slope, w_rec=self.w_rec,
                            beta=beta, alpha=alpha, threshold=thr, state=state, inplace=inplace)


class LeakyReadout(nn.Module):
    """Dense synapses into non-spiking leaky integrators: ``v_t = beta v_{t-1} + W x_t + b``."""

    def __init__(self, n_in, n_out, beta=0.9, learn_tau=False, generator=None, dtype=torch.float32):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(_uniform((n_out, n_in), bound, generator, dtype))
        self.bias = nn.Parameter(_uniform((n_out,), bound, generator, dtype))
        self.beta0, self.learn_tau = beta, learn_tau
        if learn_tau:
            self.beta_raw = nn.Parameter(torch.full((n_out,), _logit(beta), dtype=dtype))

    def forward(self, x, state=None):
        cur = nn.functional.linear(x, self.weight, self.bias)
        beta = torch.sigmoid(self.beta_raw) if self.learn_tau else self.beta0
        if state is not None:
            # continue from a carried membrane (truncated BPTT): add its decayed contribution
            k = torch.arange(1, cur.shape[0] + 1, dtype=cur.dtype, device=cur.device).view(-1, 1, 1)
            decay = torch.as_tensor(beta, dtype=cur.dtype, device=cur.device) ** k
            V = leaky_integrate(cur, beta) + decay * state.detach()
        else:
            V = leaky_integrate(cur, beta)
        return V, V[-1].detach()
