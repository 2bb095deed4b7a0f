"""Neuron models as pure step functions over explicit state.

All models share one discrete-time update (one time step, ``x_t`` the synaptic input current):

.. math::

    \\text{syn}_t &= \\alpha\\, \\text{syn}_{t-1} + x_t
        \\quad (\\text{cuba only; otherwise } \\text{syn}_t = x_t) \\\\
    u_t &= \\beta\\, v_{t-1} + \\text{syn}_t \\\\
    \\vartheta_t &= \\vartheta + b\\, a_{t-1} \\quad (\\text{alif only; otherwise } \\vartheta_t = \\vartheta) \\\\
    s_t &= H(u_t - \\vartheta_t) \\\\
    v_t &= u_t - \\vartheta s_t \\ (\\text{reset='subtract'}) \\quad\\text{or}\\quad
           v_t = u_t (1 - s_t) \\ (\\text{reset='zero'}) \\\\
    a_t &= \\rho\\, a_{t-1} + s_t \\quad (\\text{alif only})

``u_t`` is the membrane before reset (what the spike is decided on), ``v_t`` after reset.
``beta = exp(-dt / tau_mem)`` and ``alpha = exp(-dt / tau_syn)`` are decay factors; ``if`` is
``lif`` with ``beta = 1`` (no leak). ``alif`` is the adaptive-threshold LIF of Bellec et al.
(2018): each spike raises the threshold by ``adapt`` and the raise decays with ``rho``.
With ``detach_reset`` the reset term carries no gradient (Zenke & Vogels 2021 found this helps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NEURON_MODELS = ("lif", "cuba", "alif", "if")
RESET_MODES = ("subtract", "zero")


def decay_from_tau(tau: float, dt: float = 1.0) -> float:
    """Decay factor ``exp(-dt / tau)`` for a time constant given in time steps.

    A value in (0, 1] passed as ``tau`` is *not* converted: see :func:`as_decay`.

    Examples
    --------
    >>> round(decay_from_tau(10.0), 4)
    0.9048
    """
    if tau <= 0:
        raise ValueError(f"A time constant must be > 0, got {tau}.")
    if math.isinf(tau):
        return 1.0
    return math.exp(-dt / tau)


def as_decay(value: float) -> float:
    """Accept a time constant in steps (> 1) or a decay factor in (0, 1].

    Examples
    --------
    >>> as_decay(0.9)
    0.9
    >>> round(as_decay(5.0), 4)
    0.8187
    """
    if value <= 0:
        raise ValueError(f"A time constant or decay factor must be > 0, got {value}.")
    return float(value) if value <= 1.0 else decay_from_tau(value)


@dataclass(frozen=True)
class NeuronSpec:
    """Parameters of one population of spiking neurons (see the module docstring).

    Examples
    --------
    >>> NeuronSpec(model="cuba", beta=0.9, alpha=0.8).uses_synapse
    True
    """

    model: str = "lif"
    beta: float = 0.9
    alpha: float = 0.8
    threshold: float = 1.0
    reset: str = "subtract"
    rho: float = 0.97
    adapt: float = 0.2
    detach_reset: bool = True

    def __post_init__(self):
        if self.model not in NEURON_MODELS:
            raise ValueError(f"neuron must be one of {NEURON_MODELS}, got {self.model!r}.")
        if self.reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {self.reset!r}.")
        if self.model == "if" and self.beta != 1.0:
            object.__setattr__(self, "beta", 1.0)

    @property
    def uses_synapse(self) -> bool:
        return self.model == "cuba"

    @property
    def adaptive(self) -> bool:
        return self.model == "alif"


def init_state(spec: NeuronSpec, shape, device=None, dtype=torch.float32):
    """Zero state ``(v, syn, a)``; entries a model does not use are ``None``."""
    z = lambda: torch.zeros(shape, device=device, dtype=dtype)  # noqa: E731
    return (z(), z() if spec.uses_synapse else None, z() if spec.adaptive else None)


def neuron_step(spec: NeuronSpec, x, state, spike_fn, beta=None, alpha=None, threshold=None):
    """Advance one time step; works on any leading dimensions ``(..., H)``.

    Parameters
    ----------
    spec : NeuronSpec
    x : Tensor
        Input current of this step.
    state : tuple
        ``(v, syn, a)`` as returned by :func:`init_state` or a previous step.
    spike_fn : callable
        ``spike_fn(u - threshold) -> spikes`` (e.g. ``surrogate.spike`` with a name bound).
    beta, alpha, threshold : Tensor or float, optional
        Override the spec's values (learned per-neuron parameters).

    Returns
    -------
    spikes, u, new_state
        Spikes and the membrane before reset of this step, and the state after it.

    Examples
    --------
    >>> import torch
    >>> spec = NeuronSpec("lif", beta=0.5, threshold=1.0)
    >>> st = init_state(spec, (1,))
    >>> fn = lambda z: (z >= 0).float()
    >>> out = []
    >>> for _ in range(3):
    ...     s, u, st = neuron_step(spec, torch.tensor([0.8]), st, fn)
    ...     out.append((round(float(u), 2), int(s)))
    >>> out
    [(0.8, 0), (1.2, 1), (0.9, 0)]
    """
    beta = spec.beta if beta is None else beta
    alpha = spec.alpha if alpha is None else alpha
    thr = spec.threshold if threshold is None else threshold
    v, syn, a = state
    if spec.uses_synapse:
        syn = alpha * syn + x
        x = syn
    u = beta * v + x
    th = thr + spec.adapt * a if spec.adaptive else thr
    s = spike_fn(u - th)
    s_reset = s.detach() if spec.detach_reset else s
    if spec.reset == "subtract":
        v = u - thr * s_reset
    else:
        v = u * (1.0 - s_reset)
    if spec.adaptive:
        a = spec.rho * a + s
    return s, u, (v, syn, a)
