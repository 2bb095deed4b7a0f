"""Hyperparameter search with Optuna through scikit-learn cross-validation.

:class:`OptunaSearchCV` drives an Optuna study with the scikit-learn search
interface (``fit``, ``predict``, ``best_params_``, ``cv_results_`` ...).
It is written on Optuna's core ask-and-tell API and scikit-learn's
splitters and scorers, not on ``optuna_integration.OptunaSearchCV``, so that

* it carries the tags of its estimator (an outer ``cross_val_score``
  stratifies, stacking accepts it);
* pruning works per *epoch* through the ``epoch_callback`` hook of the
  package's gradient estimators (with a ``partial_fit`` fallback);
* the study can live in a persistent storage, be resumed after a crash and
  be shared by several processes or machines;
* the folds of a trial are evaluated through :class:`joblib.Parallel`, so the
  search runs under ``loky`` (default) or under
  ``joblib.parallel_config(backend="dask")``.

:func:`default_search_space` gives Optuna distributions for the important
parameters of each SNN estimator, so ``OptunaSearchCV(est)`` works without a
space.  :func:`limit_torch_threads` keeps torch from oversubscribing cores
when many searches or folds run side by side.
"""

# The objective, the fold loop and the pruning bridge are ours; the sampler,
# pruner and storage are Optuna's.  Nothing here imports torch at module level.

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import os
import threading
import time
import warnings
from collections import defaultdict

import numpy as np
import optuna
from joblib import Parallel, delayed, effective_n_jobs
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    _fit_context,
    clone,
    is_classifier,
)
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, check_random_state, get_tags
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, indexable

__all__ = [
    "OptunaSearchCV",
    "LearningCurvePruner",
    "default_search_space",
    "limit_torch_threads",
    "TorchThreadsPlugin",
    "STEP_STRIDE",
]

#: Intermediate values of a pruned search are reported at step
#: ``fold * STEP_STRIDE + epoch`` (fold-major numbering), see
#: :class:`OptunaSearchCV`.
STEP_STRIDE = 10_000

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# --------------------------------------------------------------------------
# Default search spaces
# --------------------------------------------------------------------------


def _snn_common_space():
    # Time constants are in time steps, as in the estimators.  Widths are coded
    # as strings ("128x64") because Optuna categorical choices must be
    # primitives; OptunaSearchCV decodes them to tuples (see _decode_layers).
    return {
        "tau_mem": FloatDistribution(2.0, 40.0, log=True),
        "tau_syn": FloatDistribution(1.0, 20.0, log=True),
        "threshold": FloatDistribution(0.5, 2.0),
        "surrogate": CategoricalDistribution(
            ["fast_sigmoid", "sigmoid", "arctan", "triangle"]
        ),
        "surrogate_slope": FloatDistribution(1.0, 25.0, log=True),
        "hidden_layer_sizes": CategoricalDistribution(["64", "128", "256", "128x64"]),
        "learning_rate_init": FloatDistribution(5e-4, 2e-2, log=True),
        "n_steps": IntDistribution(5, 30, step=5),
        "encoder": CategoricalDistribution(["current", "rate", "latency"]),
        "alpha": FloatDistribution(1e-6, 1e-2, log=True),
    }


def _space_surrogate():
    space = _snn_common_space()
    # tau_syn only acts through the synaptic current of 'cuba' neurons; with the
    # 'lif' default it would be a dead dimension.  Spike-timing tasks (randman)
    # need the synaptic trace: 0.985 with cuba vs 0.75 with lif defaults.
    space["neuron"] = CategoricalDistribution(["lif", "cuba"])
    return space


def _space_eventprop():
    space = _snn_common_space()
    del space["surrogate"], space["surrogate_slope"]
    return space


def _space_evolved():
    space = _snn_common_space()
    for name in ("surrogate", "surrogate_slope", "learning_rate_init", "alpha"):
        del space[name]
    space["hidden_layer_sizes"] = CategoricalDistribution(["16", "32", "64"])
    space["population_size"] = IntDistribution(16, 128, log=True)
    space["sigma"] = FloatDistribution(1e-3, 0.5, log=True)
    return space


def _space_converted():
    return {
        "n_steps": IntDistribution(20, 200, step=10),
        "threshold": FloatDistribution(0.5, 1.5),
        "percentile": FloatDistribution(90.0, 100.0),
        "encoder": CategoricalDistribution(["current", "rate"]),
    }


def _space_stdp():
    return {
        "n_neurons": IntDistribution(16, 256, log=True),
        "tau_mem": FloatDistribution(2.0, 50.0, log=True),
        "threshold": FloatDistribution(0.5, 2.0),
        "n_steps": IntDistribution(10, 50, step=5),
        "encoder": CategoricalDistribution(["rate", "latency"]),
        "learning_rate_init": FloatDistribution(1e-4, 3e-2, log=True),
    }


# Dispatch on the class *name* so estimators added later need no import here;
# each space is filtered to the parameters the estimator really has.
_SPACES = {
    "SurrogateSNNClassifier": _space_surrogate,
    "SurrogateSNNRegressor": _space_surrogate,
    "EventPropClassifier": _space_eventprop,
    "EventPropRegressor": _space_eventprop,
    "EvolvedSNN": _space_evolved,
    "EvolvedSNNClassifier": _space_evolved,
    "EvolvedSNNRegressor": _space_evolved,
    "ConvertedSNN": _space_converted,
    "ConvertedSNNClassifier": _space_converted,
    "STDPTransformer": _space_stdp,
}


def _space_for(est):
    factory = _SPACES.get(type(est).__name__)
    if factory is None:
        return None
    names = est.get_params(deep=False)
    return {k: v for k, v in factory().items() if k in names}


def default_search_space(estimator):
    """Optuna distributions for the important parameters of an SNN estimator.

    The space depends on the estimator's class name (so it also covers
    estimators added to the package later) and is filtered to the parameters
    the estimator actually has.  In a :class:`~sklearn.pipeline.Pipeline`
    every SNN step contributes its space with ``step__param`` names.

    Parameters
    ----------
    estimator : estimator instance
        A package estimator (``SurrogateSNNClassifier``, ``EventPropClassifier``,
        ``EvolvedSNN``, ``ConvertedSNN``, ``STDPTransformer`` ...) or a pipeline
        holding one.

    Returns
    -------
    space : dict of str to optuna.distributions.BaseDistribution
        ``hidden_layer_sizes`` is categorical over strings such as
        ``"128x64"``; :class:`OptunaSearchCV` decodes them to tuples.

    Raises
    ------
    ValueError
        If no step of ``estimator`` is a known SNN estimator; pass
        ``param_distributions`` then.

    Notes
    -----
    For ``SurrogateSNNClassifier``/``Regressor`` the space is: ``neuron``
    (``'lif'`` or ``'cuba'``), ``tau_mem`` (2 to 40 steps, log),
    ``tau_syn`` (1 to 20 steps, log; acts with ``'cuba'`` only),
    ``threshold`` (0.5 to 2), ``surrogate`` and ``surrogate_slope`` (1 to
    25, log), ``hidden_layer_sizes`` (64, 128, 256, 128x64),
    ``learning_rate_init`` (5e-4 to 2e-2, log), ``n_steps`` (5 to 30) and
    ``encoder`` (current, rate, latency; both unused for 3-D spike input)
    and ``alpha`` (1e-6 to 1e-2, log).  ``max_iter`` and ``batch_size`` are
    left to the user, since they set the cost of a trial.

    Examples
    --------
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> space = default_search_space(SurrogateSNNClassifier())
    >>> space["neuron"].choices
    ('lif', 'cuba')
    >>> from sklearn.linear_model import LogisticRegression
    >>> default_search_space(LogisticRegression())
    Traceback (most recent call last):
    ...
    ValueError: No default search space for LogisticRegression...
    """
    if isinstance(estimator, Pipeline):
        space = {}
        for name, step in estimator.steps:
            if step is None or step == "passthrough":
                continue
            sub = _space_for(step)
            if sub is None and isinstance(step, Pipeline):
                with contextlib.suppress(ValueError):
                    sub = default_search_space(step)
            if sub:
                space.update({f"{name}__{k}": v for k, v in sub.items()})
        if space:
            return space
    else:
        space = _space_for(estimator)
        if space:
            return space
    raise ValueError(
        f"No default search space for {type(estimator).__name__}: it is not (and "
        "does not contain) a known sklearn_snn estimator "
        f"({', '.join(sorted(_SPACES))}). Pass param_distributions, a dict of "
        "parameter names to optuna distributions."
    )


_LAYERS_SEP = "x"


def _decode_layers(value):
    """'128x64' -> (128, 64); anything else unchanged."""
    if isinstance(value, str):
        parts = value.split(_LAYERS_SEP)
        if parts and all(p.isdigit() for p in parts):
            return tuple(int(p) for p in parts)
    return value


class _CategoricalChoices:
    # a plain list of choices, before it becomes a CategoricalDistribution
    # (constructing one with tuple choices warns)
    def __init__(self, choices):
        self.choices = choices


def _prepare_space(space):
    """Make every choice storable; return (optuna space, decoders)."""
    if not isinstance(space, dict) or not space:
        raise ValueError("param_distributions must be a non-empty dict.")
    out, decoders = {}, {}
    for name, dist in space.items():
        if isinstance(dist, (list, tuple)):
            dist = _CategoricalChoices(list(dist))
        if not isinstance(dist, (BaseDistribution, _CategoricalChoices)):
            raise TypeError(
                f"param_distributions[{name!r}] must be an optuna distribution or a "
                f"list of choices, got {type(dist).__name__}."
            )
        if isinstance(dist, (CategoricalDistribution, _CategoricalChoices)):
            choices = list(dist.choices)
            primitive = all(
                c is None or isinstance(c, (bool, int, float, str)) for c in choices
            )
            if not primitive:
                # store each choice under a string key, decode after sampling
                keys = [_LAYERS_SEP.join(map(str, c)) if isinstance(c, tuple)
                        and all(isinstance(i, numbers.Integral) for i in c)
                        else repr(c) for c in choices]
                if len(set(keys)) != len(keys):
                    keys = [f"choice_{i}" for i in range(len(choices))]
                decoders[name] = dict(zip(keys, choices))
                dist = CategoricalDistribution(keys)
            else:
                if name.split("__")[-1] == "hidden_layer_sizes":
                    decoders[name] = {c: _decode_layers(c) for c in choices}
                dist = CategoricalDistribution(choices)
        out[name] = dist
    return out, decoders


def _decode(params, decoders):
    return {
        k: decoders[k].get(v, v) if k in decoders else v for k, v in params.items()
    }


# --------------------------------------------------------------------------
# torch threads
# --------------------------------------------------------------------------


@contextlib.contextmanager
def limit_torch_threads(n_threads):
    """Limit torch's intra-op thread pool inside a ``with`` block.

    ``torch.set_num_threads`` is per process, so the limit applies to every
    thread of the process while the block runs; the previous value is restored
    on exit.  Use it (or the estimators' ``torch_num_threads`` parameter) where
    several fits share a machine: a process pool with ``k`` workers on ``c``
    cores wants ``n_threads = c // k``.  joblib's loky workers already receive
    ``OMP_NUM_THREADS = cpu_count // n_jobs`` and Dask nanny workers
    ``OMP_NUM_THREADS=1``, which torch reads when it starts; threads-only
    setups (``Client(processes=False)``, Optuna ``n_jobs`` threads) get no
    such limit and need this helper or :class:`TorchThreadsPlugin`.

    Parameters
    ----------
    n_threads : int or None
        Number of threads; ``None`` leaves torch alone.

    Examples
    --------
    >>> import torch
    >>> with limit_torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    from .base import torch_threads  # imports torch; keep it out of module import

    with torch_threads(n_threads):
        yield


class TorchThreadsPlugin:
    """Dask worker plugin that sets torch's thread count on every worker.

    Register it with ``client.register_plugin(TorchThreadsPlugin(1))`` before
    running a search under ``joblib.parallel_config(backend="dask")``.  With
    one worker process per core and ``n_threads=1`` the workers do not
    oversubscribe the machine.

    Parameters
    ----------
    n_threads : int, default=1
        Threads per worker process.

    Examples
    --------
    >>> plugin = TorchThreadsPlugin(1)
    >>> plugin.n_threads
    1
    """

    idempotent = True
    name = "sklearn-snn-torch-threads"

    def __init__(self, n_threads=1):
        self.n_threads = n_threads

    def setup(self, worker=None):  # noqa: D102 - dask WorkerPlugin protocol
        os.environ["OMP_NUM_THREADS"] = str(self.n_threads)
        import torch

        torch.set_num_threads(int(self.n_threads))

    def teardown(self, worker=None):  # noqa: D102
        pass

    def transition(self, key, start, finish, **kwargs):  # noqa: D102
        pass

    def release_key(self, *args, **kwargs):  # noqa: D102
        pass


# --------------------------------------------------------------------------
# Evaluation of one candidate on some folds (runs in a joblib worker)
# --------------------------------------------------------------------------


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


def _pruning_mode(est):
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


class LearningCurvePruner(BasePruner):
    """Prune a trial whose learning curve trails the finished trials' curves.

    The pruner :class:`OptunaSearchCV` uses with ``pruning=True``.  It reads
    the intermediate values that the search reports at step
    ``fold * STEP_STRIDE + epoch`` and, after every epoch past the warm-up,
    compares the trial's best value so far *in the current fold* with the
    values the completed trials had at the same fold and epoch (a completed
    trial whose fold stopped earlier, e.g. by early stopping, contributes its
    last value in that fold).  The trial is pruned when it is below the
    given percentile of those values.

    Unlike :class:`optuna.pruners.PercentilePruner`, a value from an earlier
    fold never stands in for the current one (Optuna's pruners take the best
    value over *all* steps of a trial, so with fold-major steps a trial that
    finished fold 0 well could not be pruned early in fold 1), and the search
    scores the model only at the epochs the pruner looks at: with
    ``folds="first"`` (default) on the first fold after the warm-up epochs,
    so the later folds run exactly as without pruning.

    Parameters
    ----------
    percentile : float, default=25.0
        Keep the trials whose value is in the top ``percentile`` per cent of
        the completed trials at the same fold and epoch (Optuna's convention:
        ``50`` is the median rule).  Once a sampler such as TPE has found a
        good region most new trials are close to each other, so the median
        rule stops only the clearly bad ones; the top quarter stops the
        near-misses too, which is where a search spends most of its time.
    n_startup_trials : int, default=5
        No pruning until this many trials have completed.
    n_warmup_epochs : int, default=2
        Epochs (per fold) that are never pruned, and not scored by the
        search: the first check comes after epoch ``n_warmup_epochs + 1``.
    folds : {'first', 'all'}, default='first'
        Prune on the first fold only (the search then scores only that fold
        per epoch), or on every fold, where the value at step
        ``fold * STEP_STRIDE + epoch`` is the mean over folds ``0..fold``.
    n_min_trials : int, default=1
        Least number of completed trials with a value at the fold to judge.

    See Also
    --------
    OptunaSearchCV : Reports the learning curves this pruner reads.

    Examples
    --------
    >>> pruner = LearningCurvePruner(percentile=50.0, n_warmup_epochs=3)
    >>> pruner.percentile, pruner.folds
    (50.0, 'first')
    """

    def __init__(self, percentile=25.0, n_startup_trials=5, n_warmup_epochs=2,
                 folds="first", n_min_trials=1):
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile!r}.")
        if n_startup_trials < 0 or n_warmup_epochs < 0:
            raise ValueError("n_startup_trials and n_warmup_epochs must be >= 0.")
        if n_warmup_epochs >= STEP_STRIDE:
            raise ValueError(f"n_warmup_epochs must be < STEP_STRIDE={STEP_STRIDE}.")
        if folds not in ("first", "all"):
            raise ValueError(f"folds must be 'first' or 'all', got {folds!r}.")
        if n_min_trials < 1:
            raise ValueError(f"n_min_trials must be >= 1, got {n_min_trials!r}.")
        self.percentile = float(percentile)
        self.n_startup_trials = int(n_startup_trials)
        self.n_warmup_epochs = int(n_warmup_epochs)
        self.folds = folds
        self.n_min_trials = int(n_min_trials)

    def __repr__(self):
        return (f"LearningCurvePruner(percentile={self.percentile}, "
                f"n_startup_trials={self.n_startup_trials}, "
                f"n_warmup_epochs={self.n_warmup_epochs}, folds={self.folds!r}, "
                f"n_min_trials={self.n_min_trials})")

    def watches(self, fold, epoch):
        """Whether the pruner may stop a trial after ``epoch`` of ``fold``."""
        return (self.folds == "all" or fold == 0) and epoch >= self.n_warmup_epochs

    def prune(self, study, trial):
        """Judge ``trial`` at its last reported step (Optuna pruner protocol).

        Parameters
        ----------
        study : optuna.Study
            The study holding the completed trials to compare with.
        trial : optuna.trial.FrozenTrial
            The running trial.

        Returns
        -------
        prune : bool
        """
        step = trial.last_step
        if step is None:
            return False
        fold, epoch = divmod(step, STEP_STRIDE)
        if not self.watches(fold, epoch):
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < max(1, self.n_startup_trials):
            return False
        lo = fold * STEP_STRIDE
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        mine = [v for s, v in trial.intermediate_values.items() if lo <= s <= step]
        mine = [v for v in mine if not math.isnan(v)]
        if not mine:
            return True
        current = max(mine) if maximize else min(mine)
        others = []
        for t in completed:
            steps = [s for s in t.intermediate_values if lo <= s <= step]
            if steps:
                others.append(t.intermediate_values[max(steps)])
        others = [v for v in others if not math.isnan(v)]
        if len(others) < self.n_min_trials:
            return False
        if maximize:
            return bool(current < np.percentile(others, 100.0 - self.percentile))
        return bool(current > np.percentile(others, self.percentile))


def _watches(pruner, fold, epoch):
    """Whether the search must score the model after ``epoch`` of ``fold``.

    Any pruner but :class:`LearningCurvePruner` sees every epoch of every fold.
    """
    if isinstance(pruner, LearningCurvePruner):
        return pruner.watches(fold, epoch)
    return True


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
    hook = getattr(type(last), "_inference_dtype", None)
    if hook is None or "_inference_dtype" in vars(last):
        yield
        return
    import torch

    last._inference_dtype = lambda: torch.float32
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError):
            del last._inference_dtype


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


def _evaluate(estimator, params, X, y, folds, fold_ids, scorer, fit_params,
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
        watched = local is not None and _watches(prune[1], fold_id, STEP_STRIDE - 1)

        def report(est_for_scoring, _curve=curve, _n=n_epochs, _fold=fold_id):
            e = _n[0]
            _n[0] += 1
            if not _watches(prune[1], _fold, e):
                return False
            with _fast_inference(est_for_scoring):
                _curve[e] = float(scorer(est_for_scoring, X_te, y_te))
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


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------


def _search_has(attr):
    def check(self):
        if hasattr(self, "best_estimator_"):
            getattr(self.best_estimator_, attr)
            return True
        if not self.refit:
            raise AttributeError(
                f"This {type(self).__name__} was initialised with refit=False; "
                f"{attr} is available only after refitting on the best parameters."
            )
        getattr(self.estimator, attr)
        return True

    return check


class _Heartbeat:
    """Records heartbeats of running trials in a heartbeat-enabled RDB storage."""

    def __init__(self, storage, trial_ids):
        self.storage, self.trial_ids = storage, trial_ids
        self.interval = storage.get_heartbeat_interval()
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        self._beat()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _beat(self):
        for tid in self.trial_ids:
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(tid)

    def _run(self):
        while not self.stop.wait(self.interval):
            self._beat()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _heartbeat_enabled(storage):
    return (isinstance(storage, optuna.storages.RDBStorage)
            and storage.get_heartbeat_interval() is not None)


@contextlib.contextmanager
def _optuna_verbosity(verbose):
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(
        optuna.logging.INFO if verbose >= 2 else optuna.logging.WARNING
    )
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".journal")


def _check_storage_folder(path, storage):
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        where = "" if os.path.isabs(folder) else f", relative to the working directory {os.getcwd()!r}"
        raise ValueError(
            f"The folder {folder!r} (storage={storage!r}{where}) does not exist; create it first "
            f"(os.makedirs({folder!r}, exist_ok=True)) or give a file in an existing folder."
        )


def _resolve_storage(storage):
    """``("journal", path)`` or ``("rdb", url)`` for a storage string, or a ValueError that says
    what to pass instead (see the ``storage`` parameter of :class:`OptunaSearchCV`)."""
    if "://" not in storage:
        if storage.endswith(_JOURNAL_SUFFIXES):
            _check_storage_folder(storage, storage)
            return "journal", storage
        if storage.lower().endswith(_SQLITE_SUFFIXES):
            _check_storage_folder(storage, storage)
            return "rdb", "sqlite:///" + storage
        suggestion = os.path.splitext(storage)[0] + ".db"
        raise ValueError(
            f"storage={storage!r} is not a database URL (it has no '://') nor a file path ending in "
            f"{', '.join(_SQLITE_SUFFIXES)} (SQLite) or {', '.join(_JOURNAL_SUFFIXES)} (journal file). "
            f"Use a URL such as 'sqlite:///{suggestion}', a journal file path or an "
            "optuna.storages.JournalStorage / RDBStorage object, or None to keep the study in memory."
        )
    scheme, rest = storage.split("://", 1)
    if scheme == "sqlite" or scheme.startswith("sqlite+"):
        path = rest[1:] if rest.startswith("/") else ""
        path = path.split("?", 1)[0]
        if path and path != ":memory:" and not path.startswith("file:"):
            _check_storage_folder(path, storage)
    return "rdb", storage


class OptunaSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Hyperparameter search driven by Optuna with cross-validated scores.

    Each trial samples parameters from ``param_distributions`` with the
    study's sampler (TPE by default), scores them by cross-validation
    (``cv``, ``scoring``) and tells the mean test score to the study, which
    maximises it.  The interface is scikit-learn's search interface:
    ``best_params_``, ``best_score_``, ``best_estimator_`` (refit on all data),
    ``cv_results_`` and prediction methods delegated to the best estimator.

    Parameters
    ----------
    estimator : estimator object
        The estimator (or pipeline) to tune.  Its tags are copied, so the
        search is a classifier when ``estimator`` is one.
    param_distributions : dict of str to distribution or list, default=None
        Optuna distributions (``FloatDistribution``, ``IntDistribution``,
        ``CategoricalDistribution``) or lists of choices, keyed by parameter
        name (``step__param`` in pipelines).  Choices that Optuna cannot store
        (tuples such as ``hidden_layer_sizes``) are coded as strings and
        decoded before use.  ``None`` uses :func:`default_search_space`.
    cv : int, cross-validation generator or iterable, default=None
        As in :func:`~sklearn.model_selection.cross_validate`; ``None`` is
        5-fold, stratified for classifiers.
    scoring : str, callable or None, default=None
        A single metric (the estimator's ``score`` if ``None``).
    n_trials : int or None, default=10
        Number of finished (complete or pruned) trials the *study* should
        hold.  A resumed study runs only the missing ones, and several
        processes on one storage share the budget.  ``None`` runs until
        ``timeout``.
    timeout : float or None, default=None
        Stop sampling new trials after this many seconds.
    n_jobs : int or None, default=None
        joblib workers for evaluating folds (and, with pruning, whole trials).
        Trials are sampled in batches of ``effective_n_jobs(n_jobs)`` (with
        ``cv`` folds each, only as many trials as the workers can run).  The
        backend is joblib's current one: ``loky`` by default,
        ``dask`` inside ``joblib.parallel_config(backend="dask")``.
    storage : str, optuna storage or None, default=None
        ``None`` keeps the study in memory.  A database URL
        (``"sqlite:///search.db"``), a path ending in ``.log`` or
        ``.journal`` (journal file), or an Optuna storage object makes the
        search resumable and shareable between processes; the study is
        opened with ``load_if_exists=True``.  A path ending in ``.db``,
        ``.sqlite`` or ``.sqlite3`` (not a URL) is taken as a SQLite file:
        ``"search.db"`` means ``"sqlite:///search.db"``.  Any other string
        without ``://`` is refused, and so is a file path (SQLite or journal)
        whose folder does not exist; both are checked when ``fit`` starts,
        before any fold runs.
    study_name : str or None, default=None
        Name of the study in ``storage``; give it to resume or share.
    pruning : bool or optuna.pruners.BasePruner, default=False
        ``True`` uses :class:`LearningCurvePruner` with its defaults: after
        5 completed trials, a trial is stopped during the first fold once,
        past 2 warm-up epochs, its validation score trails the top quarter
        of the completed trials at the same epoch.  Any Optuna pruner that
        needs only intermediate values may be passed instead.  See Notes for
        how epochs are reported.
    sampler : optuna.samplers.BaseSampler or None, default=None
        ``None`` is ``TPESampler(seed=random_state)``.
    random_state : int, RandomState instance or None, default=None
        Seeds the default sampler.
    refit : bool, default=True
        Refit the best parameters on the whole data set.
    verbose : int, default=0
        ``1`` prints one line per trial, ``2`` also shows Optuna's log.
    error_score : 'raise' or float, default=np.nan
        Score of a fold whose fit raised.  A trial with a NaN mean fails and
        does not count toward ``n_trials``.
    return_train_score : bool, default=False
        Also score the training folds.

    Attributes
    ----------
    study_ : optuna.Study
        The study (shared with other workers when ``storage`` is set).
    cv_results_ : dict of numpy (masked) ndarrays
        One entry per finished trial of the study (also those of earlier or
        concurrent runs): ``params``, ``param_<name>``,
        ``split<k>_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``mean_fit_time``, ``std_fit_time``,
        ``mean_score_time``, ``std_score_time``, plus ``trial_number``,
        ``state`` (``'COMPLETE'`` or ``'PRUNED'``) and ``n_epochs``.  Pruned
        trials have NaN scores and rank last.
    best_index_ : int
        Row of the best trial in ``cv_results_``.
    best_params_ : dict
        Parameters of the best trial.
    best_score_ : float
        Mean cross-validated score of the best trial.
    best_trial_ : optuna.trial.FrozenTrial
        The best trial.
    best_estimator_ : estimator
        Refit on all data (only with ``refit=True``).
    refit_time_ : float
        Seconds spent refitting.
    scorer_ : callable
        The scorer used.
    n_splits_ : int
        Number of folds.
    n_trials_ : int
        Trials run by the last call to ``fit``.
    pruning_mode_ : {'epoch_callback', 'partial_fit'} or None
        How trials were pruned.
    classes_ : ndarray
        Class labels of the best estimator (classifiers).
    n_features_in_ : int
        Number of features seen by the best estimator.

    See Also
    --------
    default_search_space : Default distributions for the package's estimators.
    sklearn.model_selection.RandomizedSearchCV : Random search without Optuna.

    Notes
    -----
    **Pruning.**  For estimators whose ``fit`` accepts
    ``epoch_callback(estimator, epoch, info) -> bool`` (the package's
    gradient estimators, also as the last step of a pipeline), the search
    passes a callback per fold that scores the model on the fold's test part
    after every epoch.  Folds run in order; after epoch ``e`` of fold ``k``
    the trial reports, at step ``k * STEP_STRIDE + e``, the mean over folds
    ``0..k`` of their validation score at epoch ``e`` (a fold that stopped
    earlier contributes its last score).  Trials are thus compared at the
    same fold and epoch; the pruner can stop a trial during any fold, and a
    pruned trial skips its remaining folds.  With a
    :class:`LearningCurvePruner` (the default) only the epochs it judges are
    scored and reported: by default epochs ``2, 3, ...`` of the first fold,
    so the other folds train exactly as without pruning.  Per-epoch scores
    (with any pruner) of the package's estimators are computed in float32
    (their ``predict`` uses float64 on the CPU), which is ample for ranking
    trials and several times cheaper; the fold's final test score is
    computed as without pruning.  Optuna's
    own percentile and median pruners compare the best value over *all*
    steps of a trial, so in folds after the first they rarely prune.
    Estimators without the hook but
    with ``partial_fit`` and an integer ``max_iter`` are trained by
    ``max_iter`` calls to ``partial_fit`` (one epoch each, no internal early
    stopping) with the same reporting.  Other estimators are not pruned (a
    warning says so).  The pruner runs in the worker against a snapshot of
    the finished trials taken when the trial was sampled, so pruners that
    need only intermediate values (median, percentile, threshold, patient,
    Wilcoxon) work in any backend; successive halving and Hyperband, which
    keep state in trial system attributes, are not supported.

    **Budget and resuming.**  Before each batch the search counts the
    finished trials of the study plus the trials other workers are running;
    it stops when they reach ``n_trials``.  A trial interrupted by an
    exception (``KeyboardInterrupt`` included) is marked failed and does not
    count, so a resumed search reruns it.  A process killed outright leaves
    its trial ``RUNNING``: trials already running when ``fit`` starts are
    taken for dead and not counted, unless the storage is an
    ``RDBStorage(..., heartbeat_interval=...)``, whose heartbeat tells live
    from stale trials (the search records heartbeats and fails stale trials).
    Without a heartbeat, workers that start while others run may overshoot
    ``n_trials`` by the number of trials running at their start.  Workers
    that ask for a trial at the same moment are settled by trial number: a
    new trial whose number lies beyond the budget is marked failed with the
    user attribute ``surplus`` and the worker stops.  One call to ``fit``
    never runs more than ``n_trials`` trials.  Processes that open a new
    SQLite database at the same moment can race creating its tables; the
    search retries, but creating the study once before starting workers is
    more robust.

    **Parallelism.**  With ``n_jobs`` workers the search asks the sampler
    for a batch of trials (TPE in Optuna 5 uses a constant liar for the
    running ones) and evaluates their folds with :class:`joblib.Parallel`,
    so every task runs in a loky worker process by default or in a Dask
    worker under ``parallel_config(backend="dask")``; the study itself stays
    in the calling process.  A batch waits for its slowest task.  To keep
    torch from oversubscribing cores use the estimators'
    ``torch_num_threads``, :func:`limit_torch_threads` or
    :class:`TorchThreadsPlugin`.  Several machines can share a study through
    ``storage`` (one process per machine running the same search).

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> search = OptunaSearchCV(
    ...     LogisticRegression(max_iter=200),
    ...     {"C": FloatDistribution(1e-3, 1e2, log=True)},
    ...     n_trials=3, cv=3, random_state=0,
    ... ).fit(X, y)
    >>> sorted(search.best_params_)
    ['C']
    >>> len(search.cv_results_["mean_test_score"])
    3
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"])],
        "param_distributions": [dict, None],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "n_trials": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "timeout": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "n_jobs": [numbers.Integral, None],
        "storage": [str, BaseStorage, None],
        "study_name": [str, None],
        "pruning": ["boolean", BasePruner],
        "sampler": [BaseSampler, None],
        "random_state": ["random_state"],
        "refit": ["boolean"],
        "verbose": ["verbose"],
        "error_score": [StrOptions({"raise"}), numbers.Real],
        "return_train_score": ["boolean"],
    }

    def __init__(
        self,
        estimator,
        param_distributions=None,
        *,
        cv=None,
        scoring=None,
        n_trials=10,
        timeout=None,
        n_jobs=None,
        storage=None,
        study_name=None,
        pruning=False,
        sampler=None,
        random_state=None,
        refit=True,
        verbose=0,
        error_score=np.nan,
        return_train_score=False,
    ):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.cv = cv
        self.scoring = scoring
        self.n_trials = n_trials
        self.timeout = timeout
        self.n_jobs = n_jobs
        self.storage = storage
        self.study_name = study_name
        self.pruning = pruning
        self.sampler = sampler
        self.random_state = random_state
        self.refit = refit
        self.verbose = verbose
        self.error_score = error_score
        self.return_train_score = return_train_score

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = sub.classifier_tags
        tags.regressor_tags = sub.regressor_tags
        tags.target_tags.required = sub.target_tags.required
        tags.input_tags.pairwise = sub.input_tags.pairwise
        tags.input_tags.sparse = sub.input_tags.sparse
        tags.input_tags.three_d_array = sub.input_tags.three_d_array
        tags.non_deterministic = sub.non_deterministic
        return tags

    # -- study ---------------------------------------------------------------

    def _make_storage(self):
        st = self.storage
        if st is None:
            return optuna.storages.InMemoryStorage()
        if isinstance(st, str):
            kind, st = _resolve_storage(st)
            if kind == "journal":
                from optuna.storages.journal import JournalFileBackend

                return optuna.storages.JournalStorage(JournalFileBackend(st))
            for attempt in range(5):
                try:
                    return optuna.storages.RDBStorage(st)
                except Exception as exc:  # noqa: BLE001
                    # processes creating the schema of a new database at the same
                    # time race ("table ... already exists"): retry
                    msg = str(exc)
                    if not ("already exists" in msg or "alembic_version" in msg) \
                            or attempt == 4:
                        raise
                    time.sleep(0.2 * (attempt + 1))
        return st

    def _make_study(self, storage):
        sampler = self.sampler
        if sampler is None:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            sampler = optuna.samplers.TPESampler(seed=int(seed))
        study = optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            direction="maximize",
            load_if_exists=True,
            sampler=sampler,
        )
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise ValueError(
                f"Study {study.study_name!r} in the storage minimises; OptunaSearchCV "
                "needs a maximising study (scores are greater-is-better)."
            )
        return study

    def _pruner(self):
        if self.pruning is False:
            return None
        if self.pruning is True:
            return LearningCurvePruner()
        return self.pruning

    @staticmethod
    def _counted(study, storage, dead_numbers):
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in _FINISHED for t in trials)
        running = sum(
            t.state == TrialState.RUNNING and t.number not in dead_numbers
            for t in trials
        )
        return finished + running

    def _drop_surplus(self, study, trials, dead):
        """Fail our new trials that another worker's concurrent ask made surplus.

        Trial numbers are unique and increasing, so among racing workers the
        trials with the highest numbers beyond the budget give way.
        """
        counted = sorted(
            t.number for t in study.get_trials(deepcopy=False)
            if t.state in _FINISHED
            or (t.state == TrialState.RUNNING and t.number not in dead)
        )
        keep = []
        for t in trials:
            rank = int(np.searchsorted(counted, t.number, side="right"))
            if rank > self.n_trials:
                t.set_user_attr("surplus", True)
                study.tell(t, state=TrialState.FAIL)
            else:
                keep.append(t)
        return keep

    # -- fit -----------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, *, groups=None, **fit_params):
        """Run the search, then refit the best parameters on all data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
            Training data.
        y : array-like of shape (n_samples,) or None
            Targets.
        groups : array-like of shape (n_samples,), default=None
            Group labels for group splitters.
        **fit_params : dict
            Passed to the estimator's ``fit`` (per-sample arrays are indexed
            by fold).

        Returns
        -------
        self : OptunaSearchCV
        """
        if self.n_trials is None and self.timeout is None:
            raise ValueError("Set n_trials or timeout, or the search never ends.")
        if isinstance(self.storage, str):
            _resolve_storage(self.storage)  # a bad path fails here, before any fold
        X, y, groups = indexable(X, y, groups)
        space_in = (self.param_distributions if self.param_distributions is not None
                    else default_search_space(self.estimator))
        space, decoders = _prepare_space(space_in)
        self._decoders = decoders
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = list(cv.split(X, y, groups))
        self.n_splits_ = len(folds)
        self.scorer_ = check_scoring(self.estimator, self.scoring)
        self.multimetric_ = False

        pruner = self._pruner()
        mode = None
        if pruner is not None:
            mode = _pruning_mode(self.estimator)
            if mode is None:
                warnings.warn(
                    f"pruning is on but {type(self.estimator).__name__} has neither "
                    "fit(..., epoch_callback=...) nor partial_fit with max_iter; "
                    "trials will not be pruned.",
                    UserWarning,
                )
                pruner = None
        self.pruning_mode_ = mode

        n_workers = max(1, effective_n_jobs(self.n_jobs))
        # with pruning a task is a whole trial (folds in order); otherwise a fold
        per_trial = 1 if pruner is not None else self.n_splits_
        batch = max(1, n_workers // per_trial)
        cap = self.n_trials if self.n_trials is not None else math.inf

        storage = self._make_storage()
        heartbeat = _heartbeat_enabled(storage)
        with _optuna_verbosity(self.verbose), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # we record heartbeats ourselves (see _Heartbeat) with ask-and-tell
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            study = self._make_study(storage)
            if heartbeat:
                optuna.storages.fail_stale_trials(study)
                dead = set()
            else:
                dead = {t.number for t in study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,))}
            start = time.monotonic()
            n_run = 0
            parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch="all")
            while n_run < cap:
                if self.timeout is not None and time.monotonic() - start >= self.timeout:
                    break
                if heartbeat:
                    optuna.storages.fail_stale_trials(study)
                left = (self.n_trials - self._counted(study, storage, dead)
                        if self.n_trials is not None else math.inf)
                k = int(min(batch, left, cap - n_run))
                if k <= 0:
                    break
                trials = [study.ask(space) for _ in range(k)]
                n_run += k
                if self.n_trials is not None:
                    trials = self._drop_surplus(study, trials, dead)
                    if not trials:
                        break
                self._run_batch(study, storage, heartbeat, trials, decoders, parallel,
                                X, y, folds, fit_params, pruner, mode)
        self.study_ = study
        self.n_trials_ = n_run
        self._build_results(study)

        if self.refit:
            self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_)
            t0 = time.perf_counter()
            self.best_estimator_.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - t0
            if hasattr(self.best_estimator_, "n_features_in_"):
                self.n_features_in_ = self.best_estimator_.n_features_in_
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    def _run_batch(self, study, storage, heartbeat, trials, decoders, parallel,
                   X, y, folds, fit_params, pruner, mode):
        snapshot = None
        if pruner is not None:
            snapshot = study.get_trials(deepcopy=True, states=_FINISHED)
        tasks = []  # (trial index, fold ids)
        for i in range(len(trials)):
            if pruner is not None:
                tasks.append((i, list(range(len(folds)))))
            else:
                tasks.extend((i, [f]) for f in range(len(folds)))
        params = [_decode(t.params, decoders) for t in trials]
        hb = (_Heartbeat(storage, [t._trial_id for t in trials]) if heartbeat
              else contextlib.nullcontext())
        try:
            with hb:
                results = parallel(
                    delayed(_evaluate)(
                        self.estimator, params[i], X, y, [folds[f] for f in fids],
                        fids, self.scorer_, fit_params, self.error_score,
                        self.return_train_score,
                        None if pruner is None else (mode, pruner, snapshot),
                    )
                    for i, fids in tasks
                )
        except BaseException:
            # interrupted or error_score="raise": fail the batch, then re-raise
            for t in trials:
                with contextlib.suppress(Exception):
                    study.tell(t, state=TrialState.FAIL)
            raise

        merged = defaultdict(lambda: {"folds": {}, "pruned_step": None, "values": {}})
        for (i, _), res in zip(tasks, results):
            merged[i]["folds"].update(res["folds"])
            merged[i]["values"].update(res["values"])
            if res["pruned_step"] is not None:
                merged[i]["pruned_step"] = res["pruned_step"]
        for i, trial in enumerate(trials):
            self._tell(study, trial, merged[i], params[i])

    def _tell(self, study, trial, res, params):
        n_folds = self.n_splits_
        folds = res["folds"]
        for step in sorted(res["values"]):
            trial.report(res["values"][step], step)
        get = lambda key: [folds[f][key] if f in folds else np.nan  # noqa: E731
                           for f in range(n_folds)]
        trial.set_user_attr("split_test_scores", get("test"))
        trial.set_user_attr("split_train_scores", get("train"))
        trial.set_user_attr("fit_times", get("fit_time"))
        trial.set_user_attr("score_times", get("score_time"))
        trial.set_user_attr("n_epochs", get("n_epochs"))
        if res["pruned_step"] is not None:
            step = res["pruned_step"]
            trial.set_user_attr("pruned_at", [step // STEP_STRIDE, step % STEP_STRIDE])
            study.tell(trial, state=TrialState.PRUNED)
            msg = (f"pruned at fold {step // STEP_STRIDE} epoch {step % STEP_STRIDE}"
                   f" (value {res['values'][step]:.4f})")
        else:
            value = float(np.mean(get("test")))
            if np.isnan(value):
                study.tell(trial, state=TrialState.FAIL)
                msg = "failed (NaN score)"
            else:
                study.tell(trial, value)
                msg = f"score {value:.4f}"
        if self.verbose >= 1:
            print(f"[OptunaSearchCV] trial {trial.number}: {msg}; params {params}")

    def _build_results(self, study):
        trials = study.get_trials(deepcopy=False, states=_FINISHED)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if not completed:
            raise ValueError(
                "No trial of the study completed (all failed or were pruned); "
                "check the estimator with sklearn.model_selection.cross_validate."
            )
        n_folds = self.n_splits_
        res = defaultdict(list)
        params_list = []
        for t in trials:
            ua = t.user_attrs
            pruned = t.state == TrialState.PRUNED
            split = ua.get("split_test_scores", [np.nan] * n_folds)
            split = [np.nan] * len(split) if pruned else split
            for k in range(n_folds):
                res[f"split{k}_test_score"].append(
                    split[k] if k < len(split) else np.nan)
                if self.return_train_score:
                    tr = ua.get("split_train_scores", [np.nan] * n_folds)
                    res[f"split{k}_train_score"].append(
                        np.nan if pruned or k >= len(tr) else tr[k])
            for key, src in (("fit_time", "fit_times"), ("score_time", "score_times")):
                v = np.asarray(ua.get(src, [np.nan]), dtype=float)
                res[f"mean_{key}"].append(np.nanmean(v) if np.isfinite(v).any() else np.nan)
                res[f"std_{key}"].append(np.nanstd(v) if np.isfinite(v).any() else np.nan)
            res["trial_number"].append(t.number)
            res["state"].append(t.state.name)
            res["n_epochs"].append(ua.get("n_epochs"))
            params_list.append(_decode(t.params, self._decoders))

        out = {}
        for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"):
            out[key] = np.asarray(res[key], dtype=float)
        names = sorted({k for p in params_list for k in p})
        for name in names:
            arr = np.ma.MaskedArray(np.empty(len(params_list), dtype=object),
                                    mask=True)
            for i, p in enumerate(params_list):
                if name in p:
                    arr[i] = p[name]
            out[f"param_{name}"] = arr
        out["params"] = params_list
        sets = ["test", "train"] if self.return_train_score else ["test"]
        for s in sets:
            splits = np.array([res[f"split{k}_{s}_score"] for k in range(n_folds)],
                              dtype=float).T
            for k in range(n_folds):
                out[f"split{k}_{s}_score"] = splits[:, k]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[f"mean_{s}_score"] = splits.mean(axis=1)
                out[f"std_{s}_score"] = splits.std(axis=1)
        mean = out["mean_test_score"]
        filled = np.where(np.isnan(mean), -np.inf, mean)
        # rank 1 = best; ties share the smallest rank, NaN ranks last
        order = np.argsort(-filled, kind="stable")
        ranks = np.empty(len(mean), dtype=np.int32)
        ranks[order] = np.arange(1, len(mean) + 1)
        for v in np.unique(filled):
            ranks[filled == v] = ranks[filled == v].min()
        out["rank_test_score"] = ranks
        out["trial_number"] = np.asarray(res["trial_number"])
        out["state"] = np.asarray(res["state"], dtype=object)
        out["n_epochs"] = res["n_epochs"]
        self.cv_results_ = out

        best = max(completed, key=lambda t: t.value)
        self.best_trial_ = best
        self.best_index_ = int(res["trial_number"].index(best.number))
        self.best_params_ = _decode(best.params, self._decoders)
        self.best_score_ = float(best.value)

    # -- delegation ------------------------------------------------------------

    def _check_refit(self):
        check_is_fitted(self)
        if not self.refit:
            raise AttributeError(
                "This OptunaSearchCV was initialised with refit=False; refit it "
                "to predict.")

    @available_if(_search_has("predict"))
    def predict(self, X):
        """Predict with the best estimator.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        y_pred : ndarray
        """
        self._check_refit()
        return self.best_estimator_.predict(X)

    @available_if(_search_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the best estimator.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        self._check_refit()
        return self.best_estimator_.predict_proba(X)

    @available_if(_search_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of the best estimator.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        self._check_refit()
        return self.best_estimator_.predict_log_proba(X)

    @available_if(_search_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the best estimator.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        scores : ndarray
        """
        self._check_refit()
        return self.best_estimator_.decision_function(X)

    @available_if(_search_has("transform"))
    def transform(self, X):
        """Transform with the best estimator.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        Xt : ndarray
        """
        self._check_refit()
        return self.best_estimator_.transform(X)

    def score(self, X, y=None):
        """Score of the best estimator with ``scoring``.

        Parameters
        ----------
        X : array-like
            Input data.
        y : array-like or None
            Targets.

        Returns
        -------
        score : float
        """
        self._check_refit()
        return self.scorer_(self.best_estimator_, X, y)

    @property
    def classes_(self):
        """Class labels of the best estimator."""
        self._check_refit()
        return self.best_estimator_.classes_
