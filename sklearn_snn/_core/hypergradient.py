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

Nothing here imports scikit-learn.
"""

from __future__ import annotations

import math

import torch

__all__ = ["HypergradientOptimizer"]

_DEFAULT_HYPERGRAD_LR = {("sgd", False): 1e-3, ("adam", False): 1e-7, ("sgd", True): 0.02, ("adam", True): 0.02}


class HypergradientOptimizer(torch.optim.Optimizer):
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
        defaults = dict(lr=lr, weight_decay=weight_decay, hypergrad_lr=hypergrad_lr, betas=betas, eps=eps,
                        momentum=momentum)
        super().__init__(params, defaults)
        self.base, self.multiplicative, self.lr_bounds = base, bool(multiplicative), tuple(lr_bounds)
        self.lr_history = []

    @property
    def lr(self):
        return float(self.param_groups[0]["lr"])

    def _direction(self, p, g, state, group):
        """The step direction u (the update is ``-lr * u``) and the new optimizer state."""
        if self.base == "sgd":
            mu = group["momentum"]
            if mu:
                buf = state.get("momentum_buffer")
                buf = g.clone() if buf is None else buf.mul_(mu).add_(g)
                state["momentum_buffer"] = buf
                return buf
            return g
        b1, b2 = group["betas"]
        t = state["step"] = state.get("step", 0) + 1
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v / (1 - b2 ** t)).sqrt_().add_(group["eps"])
        return (m / (1 - b1 ** t)) / denom

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lo, hi = self.lr_bounds
        for group in self.param_groups:
            grads = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                grads.append((p, g))
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
                u = self._direction(p, g, state, group)
                p.add_(u, alpha=-lr)
                state["prev_direction"] = u.detach().clone()
        self.lr_history.append(self.lr)
        return loss
