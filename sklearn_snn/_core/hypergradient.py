"""Hypergradient descent: a learning rate that learns itself (Baydin et al. 2018).

After step ``t-1`` moved the parameters by ``-lr * u_{t-1}`` (``u`` = the plain gradient for SGD,
the bias-corrected Adam direction ``m_hat / (sqrt(v_hat) + eps)`` for Adam), the derivative of the
loss at the new point with respect to the learning rate used for that step is

.. math:: \\frac{\\partial f(\\theta_t)}{\\partial \\mathrm{lr}} = -\\nabla f(\\theta_t) \\cdot u_{t-1},

so before each step the learning rate takes one gradient step of its own (the *hypergradient*):

- additive rule (the paper's SGD-HD / Adam-HD):
  ``lr <- lr + hypergrad_lr * g_t . u_{t-1}``;
- multiplicative rule (``multiplicative=True``, the paper's scale-free variant):
  ``lr <- lr * (1 + hypergrad_lr * cos(g_t, u_{t-1}))``, which changes the rate by at most a
  factor ``1 +- hypergrad_lr`` per step whatever the scale of the gradients.

Successive directions that agree (the rate is too small to make progress) raise the rate;
directions that flip (the iterate overshoots and oscillates) lower it. The dot product runs over
all parameters of a parameter group, so each group has its own rate, kept in ``group['lr']``
like any torch optimizer (learning-rate schedulers compose with it).

The update directions and the optimizer bookkeeping are those of :mod:`.optimizers` (Adam's
``adam_direction``, SGD's ``momentum_direction``, the ``PlainOptimizer`` base, which does not
import torch's compiler): with ``hypergrad_lr=0`` the steps are ``torch.optim.Adam``'s and
``torch.optim.SGD``'s (``tests/test_warm_up_optimizers.py``).

Nothing here imports scikit-learn.
"""

from __future__ import annotations

import math

import torch

from .optimizers import PlainOptimizer, adam_direction, momentum_direction

__all__ = ["HypergradientOptimizer"]

_DEFAULT_HYPERGRAD_LR = {("sgd", False): 1e-3, ("adam", False): 1e-7, ("sgd", True): 0.02, ("adam", True): 0.02}


class HypergradientOptimizer(PlainOptimizer):
    """SGD or Adam whose learning rate is adapted online by hypergradient descent.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups, as for any :class:`torch.optim.Optimizer`.
    lr : float, default=1e-3
        Initial learning rate.
    base : {'adam', 'sgd'}, default='adam'
        The underlying update direction.
    weight_decay : float, default=0.0
        L2 penalty added to the gradient (as in ``torch.optim.Adam``/``SGD``); the hypergradient
        sees the penalised gradient.
    hypergrad_lr : float or None, default=None
        Step size of the learning-rate update. ``None``: 0.02 for the multiplicative rule, the
        paper's values (1e-3 for SGD, 1e-7 for Adam) for the additive rule.
    multiplicative : bool, default=True
        Use the normalised multiplicative rule (scale-free, the default because the gradient
        scale of a spiking network is not known in advance); ``False`` uses the additive rule.
    betas, eps : Adam's constants.
    momentum : float, default=0.0
        Heavy-ball momentum for ``base='sgd'`` (the direction ``u`` is then the momentum buffer).
    lr_bounds : (float, float), default=(1e-8, 10.0)
        The learning rate is clipped to this interval after every update.

    Attributes
    ----------
    lr : float
        Current learning rate of the first parameter group (``param_groups[i]['lr']`` for the
        others).
    lr_history : list of float
        The first group's learning rate used at each step.

    Examples
    --------
    >>> import torch
    >>> x = torch.nn.Parameter(torch.tensor([5.0]))
    >>> opt = HypergradientOptimizer([x], lr=1e-3, base="sgd")
    >>> for _ in range(50):
    ...     opt.zero_grad(); (0.5 * x ** 2).sum().backward(); opt.step()
    >>> opt.lr > 1e-3          # successive gradients agreed: the rate grew
    True
    """

    def __init__(self, params, lr=1e-3, base="adam", weight_decay=0.0, hypergrad_lr=None, multiplicative=True,
                 betas=(0.9, 0.999), eps=1e-8, momentum=0.0, lr_bounds=(1e-8, 10.0)):
        if base not in ("adam", "sgd"):
            raise ValueError(f"base must be 'adam' or 'sgd', got {base!r}.")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}.")
        if hypergrad_lr is None:
            hypergrad_lr = _DEFAULT_HYPERGRAD_LR[(base, bool(multiplicative))]
        if hypergrad_lr < 0:
            raise ValueError(f"hypergrad_lr must be >= 0, got {hypergrad_lr}.")
        defaults = {"lr": lr, "weight_decay": weight_decay, "hypergrad_lr": hypergrad_lr, "betas": betas, "eps": eps,
                    "momentum": momentum}
        super().__init__(params, defaults)
        self.base, self.multiplicative, self.lr_bounds = base, bool(multiplicative), tuple(lr_bounds)
        self.lr_history = []

    @property
    def lr(self):
        return float(self.param_groups[0]["lr"])

    def _direction(self, g, state, group):
        """The step direction u (the update is ``-lr * u``), updating the optimizer state."""
        if self.base == "sgd":
            return momentum_direction(g, state, group["momentum"]) if group["momentum"] else g
        return adam_direction(g, state, group["betas"], group["eps"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        lo, hi = self.lr_bounds
        for group in self.param_groups:
            wd = group["weight_decay"]
            grads = [(p, p.grad.add(p, alpha=wd) if wd else p.grad) for p in self._with_grads(group)]
            if not grads:
                continue
            # hypergradient from this gradient and the previous direction
            dot, gg, uu, have_prev = 0.0, 0.0, 0.0, False
            for p, g in grads:
                prev = self.state[p].get("prev_direction")
                if prev is not None:
                    have_prev = True
                    dot += float(torch.sum(g * prev))
                    if self.multiplicative:
                        gg += float(torch.sum(g * g))
                        uu += float(torch.sum(prev * prev))
            if have_prev:
                h = group["hypergrad_lr"]
                if self.multiplicative:
                    norm = math.sqrt(gg * uu)
                    cos = dot / norm if norm > 0 else 0.0
                    new_lr = group["lr"] * (1.0 + h * cos)
                else:
                    new_lr = group["lr"] + h * dot
                if math.isfinite(new_lr):
                    group["lr"] = min(max(new_lr, lo), hi)
            lr = group["lr"]
            for p, g in grads:
                state = self.state[p]
                u = self._direction(g, state, group)
                p.add_(u, alpha=-lr)
                state["prev_direction"] = u.detach().clone()
        self.lr_history.append(self.lr)
        return loss
