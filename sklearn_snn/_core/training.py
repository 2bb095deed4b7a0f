"""The one epoch loop every gradient-trained estimator shares.

An estimator hands over a module, a ``step`` function (forward + loss + backward for one
minibatch, returning the loss and the regularisation term) and optional validation scoring; this
module does the rest: shuffled minibatches from the estimator's generator, the optimizer and its
learning-rate schedule, early stopping with MLP semantics, verbose epoch lines (and a tqdm bar
for long fits), a guard that stops on a non-finite loss with the last good weights restored, a
clean stop on ``KeyboardInterrupt`` and a per-epoch hook (pruning, checkpoints, callbacks).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field

import torch

from . import buffers as _buffers


class DivergedError(FloatingPointError):
    """Training produced a non-finite loss or gradient; the last good weights were restored."""


@dataclass
class TrainConfig:
    max_iter: int = 200
    batch_size: int | str = "auto"
    learning_rate_init: float = 1e-3
    alpha: float = 1e-4
    solver: str = "adam"
    momentum: float = 0.9
    lr_schedule: str = "constant"
    early_stopping: bool = False
    n_iter_no_change: int = 10
    tol: float = 1e-4
    verbose: int = 0
    shuffle: bool = True
    grad_clip: float | None = None


@dataclass
class TrainState:
    """Everything the loop carries across epochs (and across ``partial_fit`` calls)."""

    optimizer: torch.optim.Optimizer
    scheduler: object = None
    n_iter: int = 0
    t: int = 0
    loss_curve: list = field(default_factory=list)
    reg_curve: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    no_improve: int = 0
    best_params: dict | None = None
    stopped_early: bool = False
    interrupted: bool = False


def make_optimizer(module, cfg: TrainConfig, params=None):
    """Adam (default), AdamW, SGD (Nesterov momentum) or Adam with hypergradient learning rate."""
    params = list(module.parameters()) if params is None else params
    lr, wd = cfg.learning_rate_init, cfg.alpha
    if cfg.solver in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.solver == "adam" else torch.optim.AdamW
        # the fused step (one kernel for all parameters: 148 -> 48 us a step for a 64-128-10
        # network on CPU) where this torch has it for these tensors (CPU from torch 2.4), the
        # per-tensor step otherwise; the two agree to float rounding
        try:
            return cls(params, lr=lr, weight_decay=wd, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return cls(params, lr=lr, weight_decay=wd)
    if cfg.solver == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=wd)
    if cfg.solver in ("adam-hd", "sgd-hd"):
        from .hypergradient import HypergradientOptimizer

        return HypergradientOptimizer(params, lr=lr, base=cfg.solver[:-3], weight_decay=wd,
                                      momentum=cfg.momentum if cfg.solver == "sgd-hd" else 0.0)
    raise ValueError(f"Unknown solver {cfg.solver!r}; use 'adam', 'adamw', 'sgd', 'adam-hd' or 'sgd-hd'.")


def make_scheduler(optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "constant":
        return None
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.max_iter, 1))
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(cfg.n_iter_no_change // 2, 1))
    raise ValueError(f"Unknown lr_schedule {cfg.lr_schedule!r}; use 'constant', 'cosine' or 'plateau'.")


def new_state(module, cfg: TrainConfig, params=None) -> TrainState:
    opt = make_optimizer(module, cfg, params)
    return TrainState(optimizer=opt, scheduler=make_scheduler(opt, cfg))


def resolve_batch_size(batch_size, n_samples):
    if batch_size == "auto":
        return min(200, n_samples)
    return max(1, min(int(batch_size), n_samples))


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _finite_grads(module):
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return True
    # one fused pass over all gradients: the mixed-precision scaler's check (it flags any NaN or
    # inf; the unscale by 1.0 leaves the gradients as they are), then one sync. Half the time of
    # a norm per tensor on a digits fit; the norms remain the fallback (mixed devices or dtypes)
    try:
        found = torch.zeros(1, device=grads[0].device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=found.device))
        return not bool(found)
    except (RuntimeError, AttributeError):   # e.g. gradients on several devices
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


def run_epochs(module, state: TrainState, X, y, step, cfg: TrainConfig, n_epochs, *,
               generator=None, sample_weight=None, validate=None, epoch_callback=None, log=None):
    """Train ``module`` for up to ``n_epochs`` epochs; returns ``state`` (updated in place).

    Parameters
    ----------
    X, y : Tensor
        Training data, first axis = samples (already on the module's device).
    step : callable
        ``step(module, xb, yb, wb) -> (loss, reg)`` for one minibatch; it runs forward and
        ``backward`` (gradients accumulate in ``.grad``) and returns Python floats.
    validate : callable, optional
        ``validate() -> float`` score (higher is better) computed after each epoch
        (required for ``cfg.early_stopping``).
    epoch_callback : callable, optional
        ``epoch_callback(epoch, info) -> bool``; truthy stops training. Exceptions propagate
        (e.g. ``optuna.TrialPruned``).
    log : callable, optional
        Where verbose lines go (default ``print``).
    """
    log = log or (lambda msg: print(msg, file=sys.stdout, flush=True))
    n = X.shape[0]
    bs = resolve_batch_size(cfg.batch_size, n)
    opt = state.optimizer
    bar = None
    if cfg.verbose >= 2 or (cfg.verbose and n_epochs * math.ceil(n / bs) > 2000):
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_epochs, desc="epochs", leave=False)
        except ImportError:  # the bar is a nicety; epoch lines still print
            bar = None
    try:
        for _ in range(n_epochs):
            t0 = time.perf_counter()
            good = _snapshot(module)
            module.train()
            order = torch.randperm(n, generator=generator).to(X.device) if cfg.shuffle else torch.arange(n, device=X.device)
            total, total_reg = 0.0, 0.0
            # the epoch's order applied once (one gather per epoch), minibatches are then slices
            Xe, ye = X[order], y[order]
            we = None if sample_weight is None else sample_weight[order]
            for start in range(0, n, bs):
                end = min(n, start + bs)
                wb = None if we is None else we[start:end]
                opt.zero_grad(set_to_none=True)
                loss, reg = step(module, Xe[start:end], ye[start:end], wb)
                if not (math.isfinite(loss) and math.isfinite(reg)) or not _finite_grads(module):
                    module.load_state_dict(good)
                    raise DivergedError(
                        f"Training diverged at epoch {state.n_iter + 1}: the loss became "
                        f"{loss if not math.isfinite(loss) else 'finite but a gradient is not'}. "
                        "The weights from the start of that epoch were restored and the estimator "
                        "stays usable. Lower learning_rate_init, scale the inputs (e.g. "
                        "StandardScaler) or set a larger threshold."
                    )
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                opt.step()
                state.t += 1
                total += loss * (end - start)
                total_reg += reg * (end - start)
            state.n_iter += 1
            epoch_loss = total / n
            state.loss_curve.append(epoch_loss)
            state.reg_curve.append(total_reg / n)
            info = {"epoch": state.n_iter, "loss": epoch_loss, "reg": total_reg / n, "time": time.perf_counter() - t0}
            stop = _early_stopping_update(module, state, cfg, epoch_loss, validate, info)
            if state.scheduler is not None:
                if isinstance(state.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    state.scheduler.step(-info["val_score"] if "val_score" in info else epoch_loss)
                else:
                    state.scheduler.step()
            if cfg.verbose:
                msg = f"Iteration {state.n_iter}, loss = {epoch_loss:.8f}"
                if total_reg:
                    msg += f", reg = {total_reg / n:.6f}"
                if "val_score" in info:
                    msg += f", validation score = {info['val_score']:.6f}"
                log(msg + f" ({info['time']:.2f}s)")
            if bar is not None:
                bar.update(1)
            if epoch_callback is not None and epoch_callback(state.n_iter, info):
                break
            if stop:
                state.stopped_early = True
                break
    except KeyboardInterrupt:
        state.interrupted = True
    finally:
        if bar is not None:
            bar.close()
        # the kernels' reused whole-sequence buffers do not outlive training
        _buffers.release()
    if cfg.early_stopping and state.best_params is not None and (state.stopped_early or state.interrupted
                                                                 or state.n_iter > 0):
        module.load_state_dict(state.best_params)
    return state


def _early_stopping_update(module, state, cfg, epoch_loss, validate, info):
    """MLP semantics: stop after more than ``n_iter_no_change`` epochs without a ``tol`` gain."""
    if cfg.early_stopping and validate is not None:
        score = float(validate())
        info["val_score"] = score
        state.validation_scores.append(score)
        if score > state.best_validation_score + cfg.tol:
            state.no_improve = 0
        else:
            state.no_improve += 1
        if score > state.best_validation_score:
            state.best_validation_score = score
            state.best_params = _snapshot(module)
    else:
        if epoch_loss > state.best_loss - cfg.tol:
            state.no_improve += 1
        else:
            state.no_improve = 0
        if epoch_loss < state.best_loss:
            state.best_loss = epoch_loss
    return state.no_improve > cfg.n_iter_no_change


def copy_state(state: TrainState) -> TrainState:
    return copy.copy(state)
