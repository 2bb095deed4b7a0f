"""Evaluation of one candidate on some folds, with per-epoch pruning (runs in a joblib worker)."""

from __future__ import annotations

import contextlib
import inspect
import numbers
import time
import warnings

import numpy as np
import optuna
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing

from ._pruning import STEP_STRIDE, watches_epoch

__all__ = ["evaluate_candidate", "pruning_mode"]


class _Pruned(Exception):
    """Raised from an epoch callback to stop a fit the pruner gave up on."""


def _accepts_epoch_callback(est):
    fit = getattr(est, "fit", None)
    if fit is None:
        return False
    try:
        return "epoch_callback" in inspect.signature(fit).parameters
    except (TypeError, ValueError):
        return False


def _epoch_callback_key(est):
    """Fit-param name that reaches an ``epoch_callback`` of ``est``, or None."""
    if isinstance(est, Pipeline):
        name, last = est.steps[-1]
        key = _epoch_callback_key(last)
        return None if key is None else f"{name}__{key}"
    return "epoch_callback" if _accepts_epoch_callback(est) else None


def pruning_mode(est):
    if _epoch_callback_key(est) is not None:
        return "epoch_callback"
    if hasattr(est, "partial_fit") and isinstance(
        est.get_params().get("max_iter"), numbers.Integral
    ):
        return "partial_fit"
    return None


def _n_epochs(est):
    """Epochs a fitted estimator ran (``n_iter_`` of its last step), or NaN."""
    last = est.steps[-1][1] if isinstance(est, Pipeline) else est
    n = getattr(last, "n_iter_", None)
    return int(n) if isinstance(n, numbers.Integral) else np.nan


def _index_params(params, n_samples, idx):
    out = {}
    for k, v in params.items():
        if hasattr(v, "__len__") and not isinstance(v, str) and len(v) == n_samples:
            out[k] = _safe_indexing(v, idx)
        else:
            out[k] = v
    return out



def _last_step(est):
    return est.steps[-1][1] if isinstance(est, Pipeline) else est


@contextlib.contextmanager
def _fast_inference(est):
    """Score in float32 while pruning.

    The package's estimators predict in float64 on the CPU so that the batch
    composition can never flip a spike; the per-epoch scores that only feed
    the pruner do not need that, and float64 costs several times as much
    (on digits about as much as a training epoch on a 2:1 split).
    """
    last = _last_step(est)
    if not hasattr(type(last), "inference_dtype") or "inference_dtype" in vars(last):
        yield  # not one of the package's networks, or its user chose a dtype
        return
    import torch

    last.inference_dtype = torch.float32
    try:
        yield
    finally:
        del last.inference_dtype


class _LocalPruner:
    """Runs the study's pruner in a worker on a snapshot of finished trials.

    A worker process cannot write to an in-memory study, so each candidate
    gets a private in-memory study holding a copy of the finished trials at
    the time the candidate was sampled; the pruner decides against it.  The
    intermediate values are sent back and written into the real trial.
    """

    def __init__(self, pruner, snapshot):
        storage = optuna.storages.InMemoryStorage()
        storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "local")
        self.study = optuna.Study(
            study_name="local",
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=pruner,
        )
        if snapshot:
            self.study.add_trials(snapshot)
        self.trial = self.study.ask()
        self.values = {}

    def report(self, value, step):
        self.values[step] = float(value)
        self.trial.report(float(value), step)
        return self.trial.should_prune()


def evaluate_candidate(estimator, params, X, y, folds, fold_ids, scorer, fit_params,
              error_score, return_train_score, prune):
    """Fit and score ``estimator`` with ``params`` on the given folds.

    ``prune`` is None or ``(mode, pruner, snapshot)``; with pruning, folds run
    in order and the value reported at ``step = fold * STEP_STRIDE + epoch``
    is the mean over folds ``0..fold`` of the validation score at that epoch
    (a fold that stopped earlier contributes its last score).  Epochs the
    pruner does not look at (see :func:`_watches`) are not scored.
    """
    n_samples = len(y) if y is not None else len(X)
    local = None if prune is None else _LocalPruner(prune[1], prune[2])
    mode = None if prune is None else prune[0]
    curves = []  # per finished/current fold: {epoch: validation score}
    out = {"folds": {}, "pruned_step": None, "values": {}}

    for fold_id, (train, test) in zip(fold_ids, folds):
        est = clone(estimator).set_params(**params)
        X_tr, X_te = _safe_indexing(X, train), _safe_indexing(X, test)
        y_tr = None if y is None else _safe_indexing(y, train)
        y_te = None if y is None else _safe_indexing(y, test)
        fp = _index_params(fit_params, n_samples, train)
        curve = {}
        curves.append(curve)
        n_epochs = [0]
        # does the pruner look at any epoch of this fold?
        watched = local is not None and watches_epoch(prune[1], fold_id, STEP_STRIDE - 1)

        def report(est_for_scoring, _curve=curve, _n=n_epochs, _fold=fold_id):
            e = _n[0]
            _n[0] += 1
            if not watches_epoch(prune[1], _fold, e):
                return False
            try:
                with _fast_inference(est_for_scoring):
                    _curve[e] = float(scorer(est_for_scoring, X_te, y_te))
            except NotFittedError:
                # an epoch of a stage that cannot predict yet (ConvertedSNN's ANN training before
                # its conversion): nothing to report, the final score still counts
                return False
            vals = [c[e] if e in c else c[max(c)] for c in curves if c]
            return local.report(float(np.mean(vals)), _fold * STEP_STRIDE + e)

        start = time.perf_counter()
        pruned = False
        try:
            if mode == "epoch_callback" and watched:
                whole = est

                def epoch_callback(step_est, epoch, info, _whole=whole):
                    if report(_whole):
                        raise _Pruned()
                    return False

                fp[_epoch_callback_key(est)] = epoch_callback
                est.fit(X_tr, y_tr, **fp)
            elif mode == "partial_fit" and watched:
                kw = {}
                if is_classifier(est):
                    kw["classes"] = np.unique(y)
                for _ in range(est.get_params()["max_iter"]):
                    est.partial_fit(X_tr, y_tr, **kw, **fp)
                    kw.pop("classes", None)
                    if report(est):
                        raise _Pruned()
            elif mode == "partial_fit":
                # same training as a watched fold (max_iter single epochs), unscored
                kw = {"classes": np.unique(y)} if is_classifier(est) else {}
                for _ in range(est.get_params()["max_iter"]):
                    est.partial_fit(X_tr, y_tr, **kw, **fp)
                    kw = {}
                    n_epochs[0] += 1
            else:
                est.fit(X_tr, y_tr, **fp)
            fit_time = time.perf_counter() - start
        except _Pruned:
            pruned = True
        except Exception:
            if error_score == "raise":
                raise
            warnings.warn(
                f"Estimator fit failed with parameters {params}; the score on "
                f"this fold is set to {error_score}.",
                RuntimeWarning,
            )
            out["folds"][fold_id] = {
                "test": error_score, "train": error_score,
                "fit_time": time.perf_counter() - start, "score_time": 0.0,
                "n_epochs": n_epochs[0],
            }
            if local is not None:  # a failed candidate is not worth more folds
                break
            continue
        if pruned:
            out["pruned_step"] = max(local.values)
            out["folds"][fold_id] = {
                "test": np.nan, "train": np.nan,
                "fit_time": time.perf_counter() - start, "score_time": 0.0,
                "n_epochs": n_epochs[0],
            }
            break
        t0 = time.perf_counter()
        test_score = float(scorer(est, X_te, y_te))
        train_score = (float(scorer(est, X_tr, y_tr))
                       if return_train_score else np.nan)
        out["folds"][fold_id] = {
            "test": test_score, "train": train_score, "fit_time": fit_time,
            "score_time": time.perf_counter() - t0,
            "n_epochs": n_epochs[0] or _n_epochs(est),
        }
    if local is not None:
        out["values"] = local.values
    return out
