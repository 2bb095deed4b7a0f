"""Adam, AdamW and SGD for the trainer, without torch's compiler machinery.

``torch.optim``'s optimisers import ``torch._dynamo`` (torch's compiler front end) the first time
one is built or stepped: their ``add_param_group``, ``zero_grad``, ``state_dict`` and ``step`` are
marked to be skipped by the compiler, and the marker imports the compiler on its first call. That
import is about 1.1 s of the first ``fit`` of every process (measured with
``benchmarks/first_call.py``), more than the whole training of a small data set.

The optimisers here are subclasses of :class:`torch.optim.Optimizer` (learning-rate schedulers,
``state_dict`` and parameter groups work as usual) that never reach those markers: their step
calls torch's fused update ops directly -- the ops ``torch.optim.Adam(fused=True)`` and ``AdamW``
run, on CPU and CUDA tensors -- or, on other devices, a per-tensor update of the same formulas.
They agree with ``torch.optim``'s to float rounding (``tests/test_warm_up_optimizers.py``).
The per-tensor update directions (:func:`adam_direction`, :func:`momentum_direction`) and the
base class are shared with the hypergradient optimizer (``hypergradient.py``) and the
meta-learner's outer step (``sklearn_snn/meta.py``), so no part of the package builds a
``torch.optim`` optimiser.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

__all__ = ["SGD", "Adam", "AdamW", "PlainOptimizer", "adam_direction", "momentum_direction"]

_BASE = torch.optim.Optimizer


def _plain(fn):
    """The function under torch's compiler-skipping wrapper (the wrapper imports the compiler)."""
    return getattr(fn, "__wrapped__", fn)


_ADD_PARAM_GROUP = _plain(_BASE.add_param_group)
_STATE_DICT = _plain(_BASE.state_dict)
_LOAD_STATE_DICT = _plain(_BASE.load_state_dict)


class PlainOptimizer(_BASE):
    """A :class:`torch.optim.Optimizer` whose bookkeeping (``add_param_group``, ``zero_grad``,
    ``state_dict``, ``load_state_dict``) does not import torch's compiler: the base of the
    optimisers here, for any other optimiser of the package (write its ``step`` under
    ``torch.no_grad()``).

    Examples
    --------
    >>> import torch
    >>> class Halve(PlainOptimizer):
    ...     @torch.no_grad()
    ...     def step(self, closure=None):
    ...         for p in self.param_groups[0]["params"]:
    ...             p.mul_(0.5)
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> Halve([w], {}).step()
    >>> w.tolist()
    [0.5, 0.5]
    """

    def add_param_group(self, param_group):
        _ADD_PARAM_GROUP(self, param_group)

    def state_dict(self):
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict):
        _LOAD_STATE_DICT(self, state_dict)

    @staticmethod
    def _evaluate(closure):
        """``closure()`` under autograd (for a ``step`` under ``torch.no_grad()``), or None."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    def _with_grads(self, group):
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients; use dense parameters.")
        return params


def _by_device_dtype(params):
    out = defaultdict(list)
    for p in params:
        out[p.device, p.dtype].append(p)
    return out.items()


def _adam_state(state, p):
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def adam_direction(grad, state, betas=(0.9, 0.999), eps=1e-8):
    """Adam's step direction: update the moments in ``state`` (a parameter's optimizer state,
    created on first use) with ``grad`` and return ``m_hat / (sqrt(v_hat) + eps)``; the
    update is ``-lr`` times it. Shared by :class:`Adam` (off its fused path) and the
    hypergradient optimizer, which needs the direction itself.

    Examples
    --------
    >>> import torch
    >>> state = {}
    >>> adam_direction(torch.tensor([2.0, -0.5]), state).tolist()   # first step: sign(grad)
    [1.0, -1.0]
    >>> float(state["step"])
    1.0
    """
    _adam_state(state, grad)
    state["step"] += 1
    n = float(state["step"])
    beta1, beta2 = betas
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.lerp_(grad, 1.0 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    denom = (v.sqrt() / math.sqrt(1.0 - beta2 ** n)).add_(eps)
    return (m / (1.0 - beta1 ** n)).div_(denom)


def momentum_direction(grad, state, momentum, dampening=0.0):
    """The heavy-ball buffer ``b <- momentum b + (1 - dampening) grad`` (``grad`` itself on the
    first step), kept in ``state['momentum_buffer']`` and returned, as ``torch.optim.SGD``.

    Examples
    --------
    >>> import torch
    >>> state = {}
    >>> momentum_direction(torch.tensor([1.0]), state, 0.9).tolist()
    [1.0]
    >>> momentum_direction(torch.tensor([1.0]), state, 0.9).tolist()
    [1.899999976158142]
    """
    buf = state.get("momentum_buffer")
    if buf is None:
        buf = state["momentum_buffer"] = grad.detach().clone()
    else:
        buf.mul_(momentum).add_(grad, alpha=1.0 - dampening)
    return buf


def _fused_ok(device, dtype):
    return device.type in ("cpu", "cuda") and dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Adam(PlainOptimizer):
    """Adam (Kingma & Ba) with L2 (``decoupled_weight_decay=False``) or decoupled weight decay.

    The same updates as ``torch.optim.Adam(params, lr, betas, eps, weight_decay, fused=True)``
    (``torch.optim.AdamW`` with ``decoupled_weight_decay=True``), without importing torch's
    compiler on the first use.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups (dicts with ``params`` and any option below).
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    weight_decay : float, default=0.0
    decoupled_weight_decay : bool, default=False
        Shrink the parameters by ``lr * weight_decay`` (AdamW) instead of adding
        ``weight_decay * param`` to the gradient.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adam([w], lr=0.1)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 4)
    0.9
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False):
        if not lr >= 0.0 or not eps >= 0.0 or not weight_decay >= 0.0:
            raise ValueError(f"Adam needs lr, eps and weight_decay >= 0; got lr={lr}, eps={eps}, "
                             f"weight_decay={weight_decay}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Adam needs both betas in [0, 1); got {betas}.")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "decoupled_weight_decay": decoupled_weight_decay, "differentiable": False})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns ``closure()``'s loss if given."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            for (device, dtype), params in _by_device_dtype(self._with_grads(group)):
                states = [_adam_state(self.state[p], p) for p in params]
                if _fused_ok(device, dtype):
                    self._fused(group, params, states)
                else:
                    self._per_tensor(group, params, states)
        return loss

    @staticmethod
    def _fused(group, params, states):
        steps = [st["step"] for st in states]
        torch._foreach_add_(steps, 1)
        op = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        beta1, beta2 = group["betas"]
        op(params, [p.grad for p in params], [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states],
           [], steps, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
           eps=group["eps"], amsgrad=False, maximize=False)

    @staticmethod
    def _per_tensor(group, params, states):
        lr, wd = group["lr"], group["weight_decay"]
        for p, st in zip(params, states):
            g = p.grad
            if wd:
                if group["decoupled_weight_decay"]:
                    p.mul_(1.0 - lr * wd)
                else:
                    g = g.add(p, alpha=wd)
            p.add_(adam_direction(g, st, group["betas"], group["eps"]), alpha=-lr)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): :class:`Adam` with
    ``decoupled_weight_decay=True``, as ``torch.optim.AdamW``.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 4)
    0.85
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=True)


class SGD(PlainOptimizer):
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay, the updates of
    ``torch.optim.SGD`` without importing torch's compiler on the first use.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float, default=1e-3
    momentum : float, default=0.0
    dampening : float, default=0.0
    weight_decay : float, default=0.0
    nesterov : bool, default=False
        Needs ``momentum > 0`` and ``dampening == 0``.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD([w], lr=0.1, momentum=0.9, nesterov=True)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 4)
    0.62
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if not lr >= 0.0 or not momentum >= 0.0 or not weight_decay >= 0.0:
            raise ValueError(f"SGD needs lr, momentum and weight_decay >= 0; got lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay}.")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD with nesterov=True needs momentum > 0 and dampening = 0.")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "differentiable": False})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns ``closure()``'s loss if given."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, mom, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            for _, params in _by_device_dtype(self._with_grads(group)):
                grads = [p.grad for p in params]
                if wd:
                    grads = torch._foreach_add(grads, params, alpha=wd)
                if mom:
                    bufs = [momentum_direction(g, self.state[p], mom, damp) for p, g in zip(params, grads)]
                    if group["nesterov"]:
                        grads = torch._foreach_add(grads, bufs, alpha=mom)
                    else:
                        grads = bufs
                torch._foreach_add_(params, grads, alpha=-lr)
        return loss
