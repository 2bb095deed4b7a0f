"""The one trainer: the iteration loop every iterative estimator of the package runs on.

A training method supplies only its *iteration* (a callable that runs one pass and returns a dict
of what it measured): an epoch of gradient steps (:func:`run_epochs` builds it), one generation of
an evolution strategy, one plasticity pass, one meta-batch. :func:`run_iterations` does the rest:
the loop, stopping by a monitored value with MLP semantics (:class:`Stopping`), verbose lines and a
tqdm bar for long runs, per-iteration callbacks (``callback(iteration, info) -> stop``; pruning,
checkpoints), a clean stop on ``KeyboardInterrupt`` (recorded in the state; the caller re-raises
it after keeping the last good state) and a hook that runs when training ends for any reason.

The gradient epoch adds the optimizer and its learning-rate schedule, shuffled minibatches from
the estimator's generator, a guard that stops on a non-finite loss or gradient with the weights of
the start of the epoch restored (:class:`DivergedError`), and early stopping on a validation score
with the best weights restored.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import buffers as _buffers
from . import optimizers
from .kernels import fit_work


class StopTraining(Exception):  # noqa: N818 (a signal, like StopIteration)
    """Raised by an iteration that has nothing more to do (e.g. an exhausted stream of tasks):
    training ends normally before that iteration, as if a stopping rule had fired."""


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
    best: float | None = None          # the monitored value's best (loss or validation score)
    improved: bool = False
    stopped_early: bool = False
    stopped_by_callback: bool = False
    interrupted: bool = False


def make_optimizer(module, cfg: TrainConfig, params=None):
    """Adam (default), AdamW, SGD (Nesterov momentum) or Adam with hypergradient learning rate."""
    params = list(module.parameters()) if params is None else params
    lr, wd = cfg.learning_rate_init, cfg.alpha
    # the package's own optimisers (_core/optimizers.py): torch.optim's updates (the fused Adam
    # step on CPU), without the import of torch's compiler that torch.optim's first use costs
    # (about 1.1 s of the first fit of a process)
    if cfg.solver == "adam":
        return optimizers.Adam(params, lr=lr, weight_decay=wd)
    if cfg.solver == "adamw":
        return optimizers.AdamW(params, lr=lr, weight_decay=wd)
    if cfg.solver == "sgd":
        return optimizers.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=wd)
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


@dataclass
class Stopping:
    """Stop after more than ``patience`` iterations without a ``tol`` gain of ``info[key]``
    (MLPClassifier's rule); ``higher`` says which way is better."""

    key: str
    higher: bool = False
    tol: float = 1e-4
    patience: int = 10

    def update(self, state, value) -> bool:
        """Records ``value`` in ``state`` (``best``, ``no_improve``); True when training should stop.
        Also returns whether ``value`` is the best so far in ``state.improved``."""
        best = state.best
        sign = 1.0 if self.higher else -1.0
        if best is None or math.isnan(best):
            gained, improved = True, True
        else:
            gained = sign * (value - best) > self.tol
            improved = sign * (value - best) > 0
        state.no_improve = 0 if gained else state.no_improve + 1
        if improved:
            state.best = value
        state.improved = improved
        return state.no_improve > self.patience


@dataclass
class LoopState:
    """What :func:`run_iterations` carries across calls (``partial_fit``, ``warm_start``)."""

    n_iter: int = 0
    best: float | None = None
    no_improve: int = 0
    improved: bool = False
    stopped_early: bool = False
    stopped_by_callback: bool = False
    interrupted: bool = False


def run_iterations(iteration, n_iterations, state, *, stopping=None, callback=None, on_end=None, verbose=0,
                   describe=None, log=None, progress_unit="iterations", long_run=False):
    """Run ``iteration()`` up to ``n_iterations`` times; returns ``state`` (updated in place).

    Parameters
    ----------
    iteration : callable
        ``iteration() -> dict`` runs one pass and returns what it measured (floats). Exceptions
        propagate (a :class:`DivergedError` after the iteration restored its last good state).
    state : LoopState (or an object with its fields)
    stopping : Stopping, optional
        Stopping rule on ``info[stopping.key]``; ``state.improved`` tells the callback whether the
        iteration was the best so far.
    callback : callable, optional
        ``callback(n_iter, info) -> bool`` after every iteration; truthy stops training.
    on_end : callable, optional
        ``on_end(state)`` when the loop ends for any reason (also on an exception).
    describe : callable, optional
        ``describe(n_iter, info) -> str``: the verbose line of an iteration.
    long_run : bool
        Show a progress bar (tqdm, when installed) with ``verbose=1`` too.
    """
    log = log or (lambda msg: print(msg, file=sys.stdout, flush=True))
    bar = None
    if verbose >= 2 or (verbose and long_run):
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_iterations, desc=progress_unit, leave=False)
        except ImportError:  # the bar is a nicety; the lines still print
            bar = None
    state.stopped_early = state.stopped_by_callback = state.interrupted = False
    try:
        for _ in range(n_iterations):
            t0 = time.perf_counter()
            try:
                info = dict(iteration())
            except StopTraining:
                state.stopped_early = True
                break
            state.n_iter += 1
            info["epoch"] = state.n_iter
            info["time"] = time.perf_counter() - t0
            stop = stopping.update(state, info[stopping.key]) if stopping is not None else False
            if verbose and describe is not None:
                log(describe(state.n_iter, info))
            if bar is not None:
                bar.update(1)
            if callback is not None and callback(state.n_iter, info):
                state.stopped_by_callback = True
                break
            if stop:
                state.stopped_early = True
                break
    except KeyboardInterrupt:
        state.interrupted = True
    finally:
        if bar is not None:
            bar.close()
        if on_end is not None:
            on_end(state)
    return state


@dataclass
class Method:
    """What a training method hands the loop: its iteration and how to read it."""

    iteration: object                   # () -> dict, one pass
    stopping: Stopping | None = None
    describe: object = None             # (n_iter, info) -> str, the verbose line
    on_end: object = None               # (state) -> None, when training ends for any reason
    long_run: bool = False              # show a progress bar with verbose=1 too


def run_method(method: Method, n_iterations, state, *, callback=None, verbose=0, log=None):
    """:func:`run_iterations` over a :class:`Method`."""
    return run_iterations(method.iteration, n_iterations, state, stopping=method.stopping, callback=callback,
                          on_end=method.on_end, verbose=verbose, describe=method.describe, log=log,
                          long_run=method.long_run)


def run_epochs(module, state: TrainState, X, y, step, cfg: TrainConfig, n_epochs, *,
               generator=None, sample_weight=None, validate=None, epoch_callback=None, log=None):
    """Train ``module`` for up to ``n_epochs`` epochs of :func:`gradient_epochs`; returns ``state``.

    ``epoch_callback(epoch, info) -> bool``: truthy stops training; exceptions propagate (e.g.
    ``optuna.TrialPruned``). ``log``: where verbose lines go (default ``print``).
    """
    method = gradient_epochs(module, state, X, y, step, cfg, n_epochs, generator=generator,
                             sample_weight=sample_weight, validate=validate)
    return run_method(method, n_epochs, state, callback=epoch_callback, verbose=cfg.verbose, log=log)


_TORCH_DTYPE = {np.dtype(np.bool_): torch.bool, np.dtype(np.uint8): torch.uint8, np.dtype(np.int32): torch.int32,
                np.dtype(np.int64): torch.int64, np.dtype(np.float32): torch.float32,
                np.dtype(np.float64): torch.float64}
_GATHER_DTYPES = frozenset(_TORCH_DTYPE)


class ArrayBatches:
    """A training set left as the array it came as, handed out one minibatch at a time.

    ``take(indices)`` returns the rows ``indices`` (in that order) as a ``dtype`` tensor on
    ``device``: the rows are gathered in increasing order (one forward pass over the array; a
    memmap reads its file in order; an array in memory is gathered by torch into a reused buffer),
    kept in the array's dtype (bool / uint8 spikes: 1 byte an entry) until they reach the device,
    and converted there. Sequences (3D and up) come back as a ``(B, T, ...)`` view of a
    time-major buffer, so that the network's ``(T, B, ...)`` input is contiguous (on CPU the
    buffer is reused from batch to batch). Memory is one batch, whatever the
    size of the set: no float copy of the whole set is ever made. ``rows`` (optional) selects a
    subset of the array's first axis without copying it (e.g. the training part of a
    validation split).

    Parameters
    ----------
    array : ndarray (or memmap), first axis = samples
    rows : array of int, optional
    dtype : torch.dtype
    device : torch.device or str, optional (CPU)
    """

    def __init__(self, array, rows=None, dtype=torch.float32, device=None):
        self.array = array
        self.rows = None if rows is None else np.asarray(rows)
        self.dtype = dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)

    def __len__(self):
        return self.array.shape[0] if self.rows is None else len(self.rows)

    @property
    def shape(self):
        return (len(self), *self.array.shape[1:])

    def take(self, indices) -> torch.Tensor:
        idx = indices.cpu().numpy() if torch.is_tensor(indices) else np.asarray(indices)
        if self.rows is not None:
            idx = self.rows[idx]
        A = self.array
        if (A.ndim >= 3 and self.device.type == "cpu" and type(A) is np.ndarray and A.dtype in _GATHER_DTYPES
                and A.flags.c_contiguous and A.flags.writeable):
            # an array in memory: one gather by torch into a reused buffer (a fresh numpy gather
            # costs the page faults of its first touch, several times the copy itself)
            src = torch.index_select(torch.from_numpy(A), 0, torch.from_numpy(idx.astype(np.int64, copy=False)),
                                     out=_buffers.empty((len(idx), *A.shape[1:]), _TORCH_DTYPE[A.dtype]))
            rows = src
        else:
            order = np.argsort(idx, kind="stable")
            rows = A[idx[order]]
            if not np.array_equal(order, np.arange(len(order))):
                rows = rows[np.argsort(order)]   # back to the order asked for (exact: a gather)
            rows = np.ascontiguousarray(rows)
            if rows.dtype.kind == "u" and rows.dtype.itemsize > 1:
                rows = rows.astype(np.float64)   # torch's own unsigned types are recent and partial
            src = torch.from_numpy(rows)
            if rows.ndim < 3:
                return src.to(self.device).to(self.dtype)
        # sequences (B, T, ...) come back as a (B, T, ...) view of a time-major (T, B, ...) buffer:
        # the network's (T, B, ...) input is then contiguous (no copy before the projection, and
        # the sparse projection can take it). One pass writes it, converted to ``dtype``; on CPU the
        # buffer comes from the reuse pool (a fresh one costs its page faults on first touch)
        shape = (rows.shape[1], rows.shape[0], *rows.shape[2:])
        if self.device.type == "cpu":
            out = _buffers.empty(shape, self.dtype)
        else:
            out = torch.empty(shape, dtype=self.dtype, device=self.device)
            src = src.to(self.device)
        dst = out.transpose(0, 1)
        dst.copy_(src)
        return dst


def gradient_epochs(module, state: TrainState, X, y, step, cfg: TrainConfig, n_epochs, *,
                    generator=None, sample_weight=None, validate=None) -> Method:
    """The gradient method: each iteration is one epoch of minibatch steps on ``module``.

    Parameters
    ----------
    X : Tensor or ArrayBatches
        Training inputs, first axis = samples: a tensor (already on the module's device) or a
        batch source (``len(X)`` and ``X.take(indices) -> Tensor`` on the module's device, e.g.
        :class:`ArrayBatches`) that gathers and converts one minibatch at a time. Both give the
        same minibatches: the same shuffled order, gathered once per epoch from a tensor, per
        batch from a source.
    y : Tensor
        Training targets (on the module's device).
    step : callable
        ``step(module, xb, yb, wb) -> (loss, reg)`` for one minibatch; it runs forward and
        ``backward`` (gradients accumulate in ``.grad``) and returns Python floats.
    validate : callable, optional
        ``validate() -> float`` score (higher is better) computed after each epoch
        (required for ``cfg.early_stopping``).
    """
    source = X if not torch.is_tensor(X) and hasattr(X, "take") else None
    n = len(source) if source is not None else X.shape[0]
    bs = resolve_batch_size(cfg.batch_size, n)
    opt = state.optimizer
    if cfg.early_stopping and validate is not None:
        stopping = Stopping("val_score", higher=True, tol=cfg.tol, patience=cfg.n_iter_no_change)
        state.best = None if math.isinf(state.best_validation_score) else state.best_validation_score
    else:
        stopping = Stopping("loss", higher=False, tol=cfg.tol, patience=cfg.n_iter_no_change)
        state.best = None if math.isinf(state.best_loss) else state.best_loss

    n_batches = math.ceil(n / bs)

    def epoch():
        # the fit's minibatch steps: what the compiled-kernel rule weighs against compiling
        # (kernels.worth_compiling: fits too small to repay it run the torch loops)
        with fit_work(max(1, n_epochs) * n_batches):
            return _epoch()

    def _epoch():
        good = _snapshot(module)
        module.train()
        if source is None:
            order = torch.randperm(n, generator=generator).to(X.device) if cfg.shuffle else torch.arange(n, device=X.device)
            # the epoch's order applied once (one gather per epoch), minibatches are then slices
            Xe = X[order]
            batch = lambda start, end: Xe[start:end]  # noqa: E731
        else:
            # the same order (the same draw from the generator); the inputs are gathered and
            # converted per minibatch (memory: one batch), targets and weights per epoch
            order_cpu = torch.randperm(n, generator=generator) if cfg.shuffle else torch.arange(n)
            order_np = order_cpu.numpy()
            order = order_cpu.to(y.device)
            batch = lambda start, end: source.take(order_np[start:end])  # noqa: E731
        total, total_reg = 0.0, 0.0
        ye = y[order]
        we = None if sample_weight is None else sample_weight[order]
        for start in range(0, n, bs):
            end = min(n, start + bs)
            wb = None if we is None else we[start:end]
            xb = batch(start, end)
            opt.zero_grad(set_to_none=True)
            loss, reg = step(module, xb, ye[start:end], wb)
            del xb  # a source's batch is freed before the next one is built
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
        info = {"loss": total / n, "reg": total_reg / n}
        state.loss_curve.append(info["loss"])
        state.reg_curve.append(info["reg"])
        state.best_loss = min(state.best_loss, info["loss"])
        if stopping.key == "val_score":
            info["val_score"] = float(validate())
            state.validation_scores.append(info["val_score"])
            if info["val_score"] > state.best_validation_score:
                state.best_validation_score = info["val_score"]
                state.best_params = _snapshot(module)
        if state.scheduler is not None:
            if isinstance(state.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                state.scheduler.step(-info["val_score"] if "val_score" in info else info["loss"])
            else:
                state.scheduler.step()
        return info

    def describe(n_iter, info):
        msg = f"Iteration {n_iter}, loss = {info['loss']:.8f}"
        if info["reg"]:
            msg += f", reg = {info['reg']:.6f}"
        if "val_score" in info:
            msg += f", validation score = {info['val_score']:.6f}"
        return msg + f" ({info['time']:.2f}s)"

    def on_end(state):
        # the kernels' reused whole-sequence buffers do not outlive training
        _buffers.release()
        # the kernels this fit loaded go on the list the next process's warm-up loads
        from .numba_backend import note_kernels

        note_kernels()
        if stopping.key == "val_score" and state.best_params is not None:
            module.load_state_dict(state.best_params)

    return Method(epoch, stopping=stopping, describe=describe, on_end=on_end,
                  long_run=n_epochs * math.ceil(n / bs) > 2000)
