""":func:`compare`: cross-validate SNN and classical models on the user's data, one row per model."""

from __future__ import annotations

import inspect
import math
import numbers
import time
import warnings

import numpy as np

from .data import check_data, non_numeric_columns
from .models import quick_mode, select_models

__all__ = ["COLUMNS", "compare"]

#: Columns of the frame :func:`compare` returns, in order.
COLUMNS = ("model", "snn", "accuracy", "ci_low", "ci_high", "std", "n_folds", "fit_time", "predict_time",
           "firing_rate", "synops", "macs", "energy_nj", "ann_energy_nj", "params", "budget_hit", "notes")


class DeadlineCallback:
    """An ``epoch_callback`` that stops training once ``time.time()`` passes ``deadline``.

    Examples
    --------
    >>> DeadlineCallback(0.0)(None, 1, {}), DeadlineCallback(float("inf"))(None, 1, {})
    (True, False)
    """

    def __init__(self, deadline):
        self.deadline = deadline

    def __call__(self, estimator, epoch, info):
        return time.time() >= self.deadline


def _takes_epoch_callback(est):
    try:
        return "epoch_callback" in inspect.signature(est.fit).parameters
    except (TypeError, ValueError):
        return False


def _callback_params(est, callback):
    """Fit parameters routing ``callback`` to every step of ``est`` that accepts an epoch callback."""
    if hasattr(est, "steps"):
        return {f"{name}__epoch_callback": callback for name, step in est.steps
                if step not in (None, "passthrough") and _takes_epoch_callback(step)}
    return {"epoch_callback": callback} if _takes_epoch_callback(est) else {}


def _spike_columns(model, X):
    from sklearn_snn.metrics import spike_stats

    st = spike_stats(model, X)  # per-sample means
    return {"firing_rate": float(st.mean_firing_rate), "synops": float(st.total_synops),
            "energy_nj": float(st.snn_energy) * 1e9, "ann_energy_nj": float(st.ann_energy) * 1e9}


def _mac_columns(model):
    """Multiply-accumulates per sample of a fitted linear model or MLP (None for other models)."""
    from sklearn_snn.metrics import ENERGY_PER_OP, final_estimator

    est, _ = final_estimator(model)
    if hasattr(est, "coefs_"):
        macs = sum(np.asarray(c).size for c in est.coefs_)
    elif hasattr(est, "coef_") and not hasattr(est, "support_vectors_"):
        macs = np.asarray(est.coef_).size
    else:
        return {}
    return {"macs": float(macs), "energy_nj": macs * ENERGY_PER_OP["mac"] * 1e9}


def _warm_up(est, X, y, n=32):
    """One epoch on a few samples, so that one-time compilation (numba, torch) is not timed as fitting."""
    from sklearn.base import clone

    first = np.unique(y, return_index=True)[1]  # one sample of every class
    idx = np.union1d(first, np.arange(min(n, len(y))))
    warm = clone(est)
    budget = {k: 1 for k, v in warm.get_params().items()
              if k.split("__")[-1] == "max_iter" and isinstance(v, numbers.Integral)}
    try:
        warm.set_params(**budget).fit(X[idx], y[idx])
    except Exception:  # noqa: BLE001  the real fit reports any real problem
        pass


def _fold(spec, template, space, X, y, train, test, *, search, inner_cv, deadline, random_state, n_spike):
    """Fit and score one outer fold; None when the time budget ran out before it started."""
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score

    if deadline is not None and time.time() >= deadline:
        return None
    est = clone(template)
    fit_params = {}
    if search:
        from sklearn.model_selection import StratifiedKFold

        from sklearn_snn.model_selection import OptunaSearchCV

        timeout = None if deadline is None else max(deadline - time.time(), 1e-3)
        last = est.steps[-1][1] if hasattr(est, "steps") else est
        model = OptunaSearchCV(  # pruning per epoch where the (last step's) fit reports epochs
            est, space, cv=StratifiedKFold(inner_cv, shuffle=True, random_state=random_state),
            n_trials=search, timeout=timeout, random_state=random_state, refit=True,
            pruning=spec.prune and _takes_epoch_callback(last), error_score=np.nan)
    else:
        model = est
        if deadline is not None:
            fit_params = _callback_params(est, DeadlineCallback(deadline))
    Xtr, Xte = X[train], X[test]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.snn:
            _warm_up(est, Xtr, y[train])
        t0 = time.perf_counter()
        model.fit(Xtr, y[train], **fit_params)
        fit_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(Xte)
        predict_time = time.perf_counter() - t0
    out = {"score": float(accuracy_score(y[test], pred)), "fit_time": fit_time, "predict_time": predict_time,
           "budget_hit": deadline is not None and time.time() >= deadline, "note": None}
    if search:
        out["params"] = dict(model.best_params_)
        out["inner_score"] = float(model.best_score_)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.update(_spike_columns(model, Xte[:n_spike]) if spec.snn else _mac_columns(model))
    except Exception as exc:  # a model without spike statistics must not sink the benchmark
        out["note"] = f"no spike statistics: {type(exc).__name__}: {exc}"
    return out


def _interval(scores):
    """Mean and 95% Student-t interval of the fold scores (NaN bounds with fewer than 2 folds)."""
    scores = np.asarray(scores, dtype=float)
    mean = float(scores.mean())
    if len(scores) < 2:
        return mean, math.nan, math.nan, math.nan
    from scipy.stats import t

    std = float(scores.std(ddof=1))
    half = float(t.ppf(0.975, len(scores) - 1)) * std / math.sqrt(len(scores))
    return mean, max(0.0, mean - half), min(1.0, mean + half), std


def _summarise(spec, folds):
    done = [f for f in folds if f is not None]
    row = dict.fromkeys(COLUMNS)
    row.update(model=spec.name, snn=spec.snn, n_folds=len(done), params={},
               budget_hit=any(f["budget_hit"] for f in done) or len(done) < len(folds))
    if not done:
        row.update(accuracy=math.nan, notes="time budget spent before the first fold")
        return row
    acc, lo, hi, std = _interval([f["score"] for f in done])
    row.update(accuracy=acc, ci_low=lo, ci_high=hi, std=std,
               fit_time=float(np.mean([f["fit_time"] for f in done])),
               predict_time=float(np.mean([f["predict_time"] for f in done])))
    for key in ("firing_rate", "synops", "macs", "energy_nj", "ann_energy_nj"):
        vals = [f[key] for f in done if f.get(key) is not None]
        row[key] = float(np.mean(vals)) if vals else None
    if "params" in done[0]:  # the parameters the search liked best (highest inner score)
        row["params"] = max(done, key=lambda f: f["inner_score"])["params"]
    notes = {f["note"] for f in done if f["note"]}
    row["notes"] = "; ".join(sorted(notes)) or None
    return row


def _logger(progress):
    if progress is None or progress is False:
        return lambda msg: None
    if progress is True:
        return print
    if callable(progress):
        return progress
    raise TypeError(f"progress must be None, True or a callable taking a str, got {type(progress).__name__}.")


def _as_arrays(X, y):
    if hasattr(X, "select_dtypes"):  # a pandas DataFrame
        bad = [str(c) for c in non_numeric_columns(X)]
        if bad:
            raise ValueError(f"Non-numeric feature column(s): {', '.join(bad[:10])}. Encode them as numbers first "
                             "(e.g. pandas.get_dummies or sklearn's OneHotEncoder) or drop them.")
        names = [str(c) for c in X.columns]
        X = X.to_numpy(dtype=np.float64)
    elif isinstance(X, (list, tuple)) and len(X) and isinstance(X[0], np.ndarray) \
            and (X[0].dtype.names is not None or X[0].ndim == 2):
        # event streams, one array of events per sample: binned on one grid of 100 steps
        from sklearn_snn.preprocessing import EventBinner

        names = None
        X = EventBinner(n_steps=100).fit_transform(list(X))
    else:
        names = None
        if not isinstance(X, np.ndarray):
            X = np.asarray(X)
    return X, np.asarray(y), names


def _check_args(cv, search, time_budget):
    if isinstance(cv, bool) or not isinstance(cv, numbers.Integral) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2 (the number of folds), got {cv!r}.")
    if isinstance(search, bool) or not isinstance(search, numbers.Integral) or search < 0:
        raise ValueError(f"search must be an integer >= 0 (Optuna trials per fold; 0: no search), got {search!r}.")
    if time_budget is not None and not (isinstance(time_budget, numbers.Real) and 0 < time_budget < math.inf):
        raise ValueError(f"time_budget must be a number of seconds > 0 or None, got {time_budget!r}.")


def compare(X, y, models=None, cv=5, search=0, n_jobs=None, time_budget=None, random_state=0, progress=None,
            *, quick=None, n_spike_samples=200):
    """Cross-validate SNN and classical models on one data set, one row per model.

    The models that fit the data's shape are chosen automatically: on a table ``(n_samples,
    n_features)`` the SNN estimators of the package and LogisticRegression, SVC, MLPClassifier,
    RandomForest and HistGradientBoosting; on spikes ``(n_samples, n_steps, n_channels)`` the SNN
    estimators that take spike input, and the classical models on the per-channel spike counts
    (``-counts``) and, for LogisticRegression and MLPClassifier, on the flattened spikes
    (``-flat``). See :func:`~sklearn_snn.benchmark.select_models`.

    Every model is scored by the same stratified, shuffled ``cv``-fold split. With ``search=N``
    each model is tuned *inside* every outer training fold (nested cross-validation) by
    :class:`~sklearn_snn.model_selection.OptunaSearchCV` with N trials on its default space (its
    own ``default_search_space()`` for the SNNs, a small space for the classical models), with
    pruning for the models that train by epochs; the outer test fold never takes part in the
    search, so the accuracy is an honest estimate of "tuned model" on new data.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features) or (n_samples, n_steps, n_channels)
        Numeric features, or spike counts per step and channel (a memory-mapped array works). A
        list of per-sample event arrays (as :class:`~sklearn_snn.preprocessing.EventBinner` takes
        them) is binned into 100 steps first; bin it yourself for another grid.
    y : array-like of shape (n_samples,)
        Class labels.
    models : None, str or list of str, default=None
        Model names (see :func:`~sklearn_snn.benchmark.select_models`), ``"snn"`` / ``"classical"``
        for every default model of a kind; None: every default model for the data's shape.
    cv : int, default=5
        Number of folds (each class needs at least that many samples).
    search : int, default=0
        Optuna trials per outer fold and model (0: the models' defaults, no search).
    n_jobs : int or None, default=None
        joblib workers running the outer folds of a model in parallel.
    time_budget : float or None, default=None
        Seconds per model (all folds and searches together). Folds not started when it is spent are
        skipped (the row's ``n_folds`` says how many ran); the package's SNNs stop training at the
        end of the epoch that passes it; a search stops sampling trials. ``budget_hit`` marks rows
        cut short.
    random_state : int, default=0
        Seeds the split, the models and the search.
    progress : None, True or callable, default=None
        ``True`` prints one line per model; a callable receives the lines (e.g. ``logging.info``).
    quick : bool or None, default=None
        Tiny training budgets (a few epochs) for tests and smoke runs; None reads the environment
        variable ``SKLEARN_SNN_QUICK`` (``"1"``: quick).
    n_spike_samples : int, default=200
        Test samples per fold on which spike statistics (SynOps, energy) are measured.

    Returns
    -------
    results : pandas.DataFrame
        One row per model with the columns of :data:`COLUMNS`: ``accuracy`` (mean over folds),
        ``ci_low``/``ci_high`` (95% Student-t interval of the mean over folds), ``std``,
        ``n_folds``, ``fit_time``/``predict_time`` (seconds per fold, search included; an SNN first
        fits one epoch on a few samples, untimed, so one-time compilation is not counted),
        ``firing_rate``, ``synops`` and ``energy_nj`` (nJ per sample) for the SNNs, with
        ``ann_energy_nj`` for the same network as a conventional ANN; ``macs`` and ``energy_nj``
        for the linear and MLP classical models; ``params`` (the chosen parameters with a search),
        ``budget_hit`` and ``notes`` (why a model failed, which does not stop the others). The closing
        line naming the best SNN against the best classical model is in ``results.attrs["summary"]``.

    Raises
    ------
    ValueError
        Before any training, for bad data (see :func:`~sklearn_snn.benchmark.check_data`), unknown
        model names (the message lists the valid ones) or bad arguments.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_snn.benchmark import compare
    >>> X, y = load_iris(return_X_y=True)
    >>> df = compare(X, y, models=["SurrogateSNN", "LogisticRegression"], cv=2, quick=True)
    >>> list(df["model"])
    ['SurrogateSNN', 'LogisticRegression']
    >>> bool(df.loc[1, "accuracy"] > 0.8), bool(df.loc[0, "synops"] > 0)
    (True, True)
    """
    import pandas as pd
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    from .report import summary_line

    _check_args(cv, search, time_budget)
    X, y, names = _as_arrays(X, y)
    check_data(X, y, cv=cv, search=search, feature_names=names)  # before any work
    specs = select_models(X.ndim, models)
    quick = quick_mode(quick)
    log = _logger(progress)
    min_count = int(np.unique(y, return_counts=True)[1].min())
    inner_cv = max(2, min(3, min_count * (cv - 1) // cv))
    splits = list(StratifiedKFold(cv, shuffle=True, random_state=random_state).split(np.zeros(len(y)), y))
    shape = "x".join(map(str, X.shape))
    log(f"benchmark: {len(specs)} model{'s' if len(specs) > 1 else ''} on {X.ndim}D data "
        f"({shape}, {len(np.unique(y))} classes), {cv}-fold CV"
        + (f", {search} Optuna trials per fold ({inner_cv}-fold inner CV)" if search else "")
        + (f", {time_budget:g} s per model" if time_budget else "") + (" [quick]" if quick else ""))
    rows = []
    for i, spec in enumerate(specs, 1):
        t0 = time.perf_counter()
        deadline = None if time_budget is None else time.time() + float(time_budget)
        try:
            template = spec.make(quick, random_state)
            space = None
            if search:
                if spec.space is not None:
                    space = spec.space()
                else:
                    from sklearn_snn.model_selection import default_search_space

                    space = default_search_space(template)
            folds = []
            # results come back in order as the folds finish, so progress shows while a model runs
            for k, f in enumerate(Parallel(n_jobs=n_jobs, return_as="generator")(
                    delayed(_fold)(spec, template, space, X, y, tr, te, search=search, inner_cv=inner_cv,
                                   deadline=deadline, random_state=random_state, n_spike=n_spike_samples)
                    for tr, te in splits), 1):
                folds.append(f)
                log(f"    {spec.name} fold {k}/{cv}: " + ("skipped, time budget spent" if f is None else
                    f"accuracy {f['score']:.4f}, fit {f['fit_time']:.2f} s"))
            row = _summarise(spec, folds)
        except Exception as exc:  # one failing model must not sink the comparison
            row = dict.fromkeys(COLUMNS)
            row.update(model=spec.name, snn=spec.snn, accuracy=math.nan, n_folds=0, params={},
                       budget_hit=False, notes=f"failed: {type(exc).__name__}: {exc}")
        rows.append(row)
        log(_progress_line(i, len(specs), row, time.perf_counter() - t0))
    results = pd.DataFrame(rows, columns=list(COLUMNS))
    results.attrs["summary"] = summary_line(results)
    results.attrs.update(cv=cv, search=search, quick=quick, shape=tuple(X.shape), time_budget=time_budget)
    log(results.attrs["summary"])
    return results


def _progress_line(i, n, row, seconds):
    head = f"[{i}/{n}] {row['model']:<28s}"
    if row["n_folds"] == 0:
        return f"{head} {row['notes']}"
    ci = "" if row["ci_low"] is None or math.isnan(row["ci_low"]) else f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    extra = f"  {row['synops']:.0f} SynOps, {row['energy_nj']:.1f} nJ" if row["synops"] is not None else ""
    cut = "  (time budget hit)" if row["budget_hit"] else ""
    return (f"{head} acc {row['accuracy']:.4f}{ci}  fit {row['fit_time']:.2f} s  "
            f"predict {row['predict_time']:.3f} s{extra}  ({row['n_folds']} folds, {seconds:.1f} s){cut}")
