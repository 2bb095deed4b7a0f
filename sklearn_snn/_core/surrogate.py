"""Spike functions: an exact Heaviside step forward, a smooth pseudo-derivative backward.

Every surrogate is written as its derivative ``d(x; k)`` of the membrane distance to threshold
``x = u - threshold`` with a slope (sharpness) ``k``. The forward pass is always the step
``H(x) = 1[x >= 0]``; only the gradient is replaced.

=================  ==============================================  ========================
name               pseudo-derivative ``d(x; k)``                     reference
=================  ==============================================  ========================
fast_sigmoid       ``1 / (1 + k |x|)^2``                             SuperSpike (Zenke & Ganguli 2018)
sigmoid            ``k s (1 - s)``, ``s = sigmoid(k x)``             Zenke & Vogels 2021
arctan             ``(k / 2) / (1 + (pi k x / 2)^2)``                Fang et al. 2021
triangle           ``k * max(0, 1 - k |x|)``                         Esser et al. 2016, Bellec 2018
gaussian           ``k / sqrt(2 pi) * exp(-(k x)^2 / 2)``            Yin et al. 2021
exponential        ``(k / 2) * exp(-k |x|)``                         Shrestha & Orchard 2018
straight_through   ``1``                                             Bengio et al. 2013
=================  ==============================================  ========================

A user callable ``f(x, k) -> derivative`` is accepted wherever a name is.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SurrogateFn = Callable[[torch.Tensor, float], torch.Tensor]


def _fast_sigmoid(x, k):
    return (1.0 + k * x.abs()).reciprocal().square()


def _sigmoid(x, k):
    s = torch.sigmoid(k * x)
    return k * s * (1.0 - s)


def _arctan(x, k):
    return (0.5 * k) / (1.0 + (0.5 * math.pi * k * x).square())


def _triangle(x, k):
    return k * (1.0 - k * x.abs()).clamp(min=0.0)


def _gaussian(x, k):
    return (k / math.sqrt(2.0 * math.pi)) * torch.exp(-0.5 * (k * x).square())


def _exponential(x, k):
    return (0.5 * k) * torch.exp(-k * x.abs())


def _straight_through(x, k):
    return torch.ones_like(x)


SURROGATES: dict[str, SurrogateFn] = {
    "fast_sigmoid": _fast_sigmoid,
    "sigmoid": _sigmoid,
    "arctan": _arctan,
    "triangle": _triangle,
    "gaussian": _gaussian,
    "exponential": _exponential,
    "straight_through": _straight_through,
}


def get_surrogate(surrogate) -> SurrogateFn:
    """Return the pseudo-derivative function ``f(x, slope)`` for a name or a callable.

    Examples
    --------
    >>> import torch
    >>> d = get_surrogate("fast_sigmoid")
    >>> float(d(torch.tensor(0.0), 10.0))
    1.0
    """
    if callable(surrogate):
        return surrogate
    try:
        return SURROGATES[surrogate]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown surrogate {surrogate!r}; use one of {sorted(SURROGATES)} "
            "or a callable f(x, slope) returning the pseudo-derivative."
        ) from None


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, derivative, slope):
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.derivative(x, ctx.slope), None, None


def spike(x: torch.Tensor, surrogate="fast_sigmoid", slope: float = 10.0) -> torch.Tensor:
    """Heaviside step ``1[x >= 0]`` whose backward pass uses a surrogate derivative.

    Parameters
    ----------
    x : Tensor
        Membrane potential minus threshold.
    surrogate : str or callable
        Name from :data:`SURROGATES` or ``f(x, slope) -> derivative``.
    slope : float
        Sharpness ``k`` of the surrogate.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    >>> s = spike(x, "fast_sigmoid", 2.0)
    >>> s.tolist()
    [0.0, 1.0, 1.0]
    >>> s.sum().backward()
    >>> [round(g, 4) for g in x.grad.tolist()]
    [0.25, 1.0, 0.25]
    """
    return _SpikeFunction.apply(x, get_surrogate(surrogate), float(slope))
