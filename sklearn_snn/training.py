"""The scikit-learn side of the one trainer (:mod:`sklearn_snn._core.training`).

Every iterative estimator's ``fit`` ends in :func:`run_training`: it hands the method's iteration
(an epoch of gradient steps, a generation, a plasticity pass, a meta-batch) to the core loop and
adds what an estimator owes its user, the same for every method:

* ``epoch_callback``: a callable ``cb(estimator, iteration, info) -> bool`` (truthy stops
  training) or a list of them. The estimator's history (``n_iter_``, ``loss_curve_``, ...) is
  brought up to date before each call, so a callback that saves the estimator saves its whole
  state. A callback with an ``on_train_end(estimator, info)`` method is told when training ends,
  for any reason (``info['reason']``: ``'max_iter'``, ``'converged'``, ``'callback'``,
  ``'interrupted'``, ``'diverged'`` or ``'error'``) -- :class:`~sklearn_snn.callbacks.Checkpoint`
  writes its last file there.
* ``KeyboardInterrupt``: the estimator keeps its last good state (what that is, each method says),
  its history is brought up to date, and the interrupt is raised again, so that one Ctrl-C reaches
  the caller (a notebook, ``cross_val_score``, a search) and stops it too.
* A :class:`~sklearn.exceptions.ConvergenceWarning` when ``max_iter`` was reached without the
  stopping rule firing (as ``MLPClassifier`` warns).
"""

from __future__ import annotations

import warnings

from sklearn.exceptions import ConvergenceWarning

from ._core.training import DivergedError, Method, run_method

__all__ = ["as_callback_list", "run_training"]


def as_callback_list(epoch_callback):
    """``None``, a callable or a list / tuple of callables -> a list of callables."""
    if epoch_callback is None:
        return []
    callbacks = list(epoch_callback) if isinstance(epoch_callback, (list, tuple)) else [epoch_callback]
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"epoch_callback must be a callable cb(estimator, epoch, info) -> bool or a list of "
                            f"them; got {type(cb).__name__}.")
    return callbacks


def run_training(estimator, method: Method, n_iterations, state, *, epoch_callback=None, sync=None,
                 incremental=False, what="Training", keeps="the state reached so far", converge_message=None,
                 log=None):
    """Run ``iteration`` on the core loop for ``estimator``; see the module documentation.

    Parameters
    ----------
    estimator : the estimator being fitted (passed to the callbacks)
    method : ``_core.training.Method``
        The iteration (one pass), its stopping rule, verbose line and end of training.
    n_iterations : int
    state : ``LoopState`` or ``TrainState``
    sync : callable, optional
        ``sync(state)`` copies the loop's history onto the estimator's fitted attributes.
    what, keeps : str
        Words of the interrupt message: "<what> interrupted after N iteration(s); <Est> keeps <keeps>."
    converge_message : str, optional
        The ConvergenceWarning when ``n_iterations`` ran out without a stop (none if None or
        ``incremental``).
    """
    callbacks = as_callback_list(epoch_callback)

    def callback(n_iter, info):
        if sync is not None:
            sync(state)
        return any([bool(cb(estimator, n_iter, info)) for cb in callbacks])  # noqa: C419 (all run)

    reason = "error"
    try:
        run_method(method, n_iterations, state, callback=callback if callbacks else None,
                   verbose=int(getattr(estimator, "verbose", 0) or 0), log=log)
        if state.interrupted:
            reason = "interrupted"
        elif state.stopped_by_callback:
            reason = "callback"
        elif state.stopped_early:
            reason = "converged"
        else:
            reason = "max_iter"
    except DivergedError:
        reason = "diverged"
        raise
    finally:
        if sync is not None:
            sync(state)
        for cb in callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(estimator, {"epoch": state.n_iter, "reason": reason})
    if state.interrupted:
        raise KeyboardInterrupt(f"{what} interrupted after {state.n_iter} iteration(s); "
                                f"{type(estimator).__name__} keeps {keeps}.")
    if reason == "max_iter" and converge_message and not incremental:
        warnings.warn(converge_message, ConvergenceWarning)
    return state
