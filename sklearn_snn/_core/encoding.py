"""Encoders: turn a (B, F) batch of feature values into input over time, (T, B, F').

Values are expected roughly in [0, 1] for the spike encoders (scale tabular data first, e.g.
``MinMaxScaler``); ``current`` accepts any real value.

- ``current``: the value is injected as a constant current every step (default; deterministic).
  Returned as an expanded view, so it costs no memory per step, and layers detect it to project
  the input once instead of once per step.
- ``rate``: Bernoulli spikes with probability ``clip(x, 0, 1)`` per step. Training draws from the
  estimator's generator. At inference the uniform numbers come from a hash of (value, step,
  feature), so a prediction depends only on the sample itself, not on its batch or position.
- ``latency``: one spike per feature at step ``round((1 - x) (T - 1))``; ``x <= 0`` never spikes.
- ``delta``: for time series (T, B, F): an ON spike when the signal rose by ``delta_threshold``
  since the last spike of that channel, an OFF spike when it fell by as much; output 2F channels.
- ``population``: each feature drives ``n_pop`` neurons with Gaussian receptive fields centred on
  a grid over [0, 1] (width = grid spacing); injected as constant current (F * n_pop channels).
"""

from __future__ import annotations

import torch

ENCODERS = ("current", "rate", "latency", "delta", "population")


def _hash_uniform(x, n_steps):
    """Deterministic pseudo-uniform numbers in [0, 1) from (value, step, feature), (T, B, F)."""
    B, F = x.shape
    t = torch.arange(n_steps, dtype=torch.float64, device=x.device).view(-1, 1, 1)
    f = torch.arange(F, dtype=torch.float64, device=x.device).view(1, 1, -1)
    z = x.to(torch.float64).unsqueeze(0) * 12.9898 + t * 78.233 + f * 37.719 + 0.5
    return torch.frac(torch.sin(z) * 43758.5453).abs().to(x.dtype)


def rate(x, n_steps, generator=None, train=True):
    """Bernoulli rate coding (see module docstring).

    Examples
    --------
    >>> import torch
    >>> s = rate(torch.tensor([[0.0, 1.0]]), 5, train=False)
    >>> s.shape, s[:, 0, 0].sum().item(), s[:, 0, 1].sum().item()
    (torch.Size([5, 1, 2]), 0.0, 5.0)
    """
    p = x.clamp(0.0, 1.0)
    if train:
        u = torch.rand((n_steps,) + tuple(x.shape), generator=generator, device=x.device, dtype=x.dtype)
    else:
        u = _hash_uniform(p, n_steps)
    return (u < p.unsqueeze(0)).to(x.dtype)


def latency(x, n_steps):
    """Time-to-first-spike coding: larger values spike earlier, one spike at most.

    Examples
    --------
    >>> import torch
    >>> latency(torch.tensor([[1.0, 0.5, 0.0]]), 3)[:, 0].tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    p = x.clamp(0.0, 1.0)
    t_spike = torch.round((1.0 - p) * (n_steps - 1)).long()
    steps = torch.arange(n_steps, device=x.device).view(-1, 1, 1)
    return ((steps == t_spike.unsqueeze(0)) & (p > 0).unsqueeze(0)).to(x.dtype)


def delta(x, threshold=0.1):
    """ON/OFF spikes at threshold crossings of a (T, B, F) signal -> (T, B, 2F).

    Examples
    --------
    >>> import torch
    >>> sig = torch.tensor([0.0, 0.05, 0.2, 0.2, 0.0]).view(5, 1, 1)
    >>> delta(sig, 0.1)[:, 0].tolist()
    [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    T = x.shape[0]
    ref = x[0].clone()
    out = x.new_zeros((T,) + tuple(x.shape[1:-1]) + (2 * x.shape[-1],))
    F = x.shape[-1]
    for t in range(1, T):
        d = x[t] - ref
        on, off = d >= threshold, d <= -threshold
        out[t, ..., :F] = on.to(x.dtype)
        out[t, ..., F:] = off.to(x.dtype)
        ref = torch.where(on | off, x[t], ref)
    return out


def population(x, n_steps, n_pop=8):
    """Gaussian receptive fields over [0, 1], as a constant current (T, B, F * n_pop).

    Examples
    --------
    >>> import torch
    >>> [round(v, 4) for v in population(torch.tensor([[0.0]]), 2, n_pop=3)[0, 0].tolist()]
    [1.0, 0.6065, 0.1353]
    """
    centres = torch.linspace(0.0, 1.0, n_pop, device=x.device, dtype=x.dtype)
    width = 1.0 / max(n_pop - 1, 1)
    act = torch.exp(-0.5 * ((x.unsqueeze(-1) - centres) / width) ** 2)
    act = act.reshape(x.shape[0], -1)
    return act.unsqueeze(0).expand(n_steps, *act.shape)


def current(x, n_steps):
    """Constant current injection as a zero-copy view (T, B, F).

    Examples
    --------
    >>> import torch
    >>> current(torch.ones(2, 3), 4).shape
    torch.Size([4, 2, 3])
    """
    return x.unsqueeze(0).expand(n_steps, *x.shape)


def is_static(x):
    """True when every step holds the same values through a stride-0 time axis (no copy)."""
    return x.dim() == 3 and x.shape[0] > 1 and x.stride(0) == 0


def encode(x, encoder, n_steps, generator=None, train=False, n_pop=8, delta_threshold=0.1):
    """Encode a (B, F) batch with the named encoder over ``n_steps``; (T, B, F') out.

    A (T, B, F) batch (time series / spike trains) passes through unchanged, except for
    ``delta``, which turns a continuous signal into ON/OFF spikes.
    """
    if x.dim() == 3:
        return delta(x, delta_threshold) if encoder == "delta" else x
    if encoder == "current":
        return current(x, n_steps)
    if encoder == "rate":
        return rate(x, n_steps, generator, train)
    if encoder == "latency":
        return latency(x, n_steps)
    if encoder == "population":
        return population(x, n_steps, n_pop)
    if encoder == "delta":
        # a 2D sample read as a sequence over its features is not meaningful: refuse clearly
        raise ValueError(
            "encoder='delta' turns a time series into spikes; pass 3D X of shape "
            "(n_samples, n_steps, n_features), or choose 'current', 'rate', 'latency' or 'population' "
            "for 2D X."
        )
    raise ValueError(f"Unknown encoder {encoder!r}; use one of {ENCODERS}.")


def encoded_width(encoder, n_features, n_pop=8):
    """Number of input channels after encoding."""
    if encoder == "population":
        return n_features * n_pop
    if encoder == "delta":
        return 2 * n_features
    return n_features
