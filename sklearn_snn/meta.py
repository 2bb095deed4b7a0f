"""Meta learning for spiking networks: architecture search and learning to learn.

- :class:`SNNArchitectureSearch`: searches neuron model, depth, widths, recurrence, surrogate and
  ``n_steps`` with Optuna through scikit-learn cross-validation (on
  :class:`~sklearn_snn.model_selection.OptunaSearchCV`), optionally against a cost (synaptic
  operations, firing rate or energy, counted by :mod:`sklearn_snn.metrics`) with the Pareto
  front as the result.
- :class:`MetaSNNClassifier`: meta-learns an initialisation (optionally per-tensor inner learning
  rates and, through ``learn_tau`` / ``learn_threshold``, the neuron parameters) over a family of
  tasks with Reptile or first-order MAML, then adapts to a new task in ``n_adapt_steps`` steps.
- :class:`FewShotTaskSampler`: N-way K-shot episodes from sklearn's digits, from freshly drawn
  random manifolds (:func:`~sklearn_snn.datasets.make_randman`) or from any labelled data.
- :func:`synaptic_operations`, :func:`mean_firing_rate`: the search's costs, from
  :func:`sklearn_snn.metrics.spike_stats`.

Learned neuron parameters and hypergradient learning rates live in the core (``learn_tau``,
``learn_threshold``, ``solver='adam-hd'`` / ``'sgd-hd'`` of every gradient estimator).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
import warnings
from collections import namedtuple
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    _fit_context,
    clone,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv, cross_validate
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._core.training import (
    LoopState,
    Method,
    StopTraining,
    TrainConfig,
    gradient_epochs,
    new_state,
    run_epochs,
)
from .base import make_generator
from .surrogate import SurrogateSNNClassifier
from .training import as_callback_list, run_training
from .validation import NETWORK_CONSTRAINTS, check_sample_weight, validate_snn_input

__all__ = [
    "SNNArchitectureSearch",
    "MetaSNNClassifier",
    "FewShotTaskSampler",
    "Episode",
    "synaptic_operations",
    "mean_firing_rate",
    "pareto_indices",
]


# --------------------------------------------------------------------------------------------
# Activity costs (counted by sklearn_snn.metrics.spike_stats)
# --------------------------------------------------------------------------------------------

def synaptic_operations(estimator, X):
    """All synaptic operations per sample of a fitted SNN on X (mean over X).

    The accumulates triggered by spikes (``total_synops`` of :func:`sklearn_snn.metrics.spike_stats`)
    plus the multiply-accumulates of analog input (``snn_macs``: a constant current is projected
    once, not at every step); the counting rules are those of :mod:`sklearn_snn.metrics`.

    Parameters
    ----------
    estimator : fitted SNN estimator (or a pipeline / search ending in one)
    X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SurrogateSNNClassifier((16,), n_steps=4, max_iter=2, random_state=0).fit(X[:100], y[:100])
    >>> bool(synaptic_operations(clf, X[:10]) > 0)
    True
    """
    from .metrics import spike_stats

    st = spike_stats(estimator, X)
    return float(st.total_synops + np.nansum(st.snn_macs))


def mean_firing_rate(estimator, X):
    """Mean firing rate of the spiking neurons of a fitted SNN on X, spikes per neuron and step
    (``mean_firing_rate`` of :func:`sklearn_snn.metrics.spike_stats`).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SurrogateSNNClassifier((16,), n_steps=4, max_iter=2, random_state=0).fit(X[:100], y[:100])
    >>> 0.0 <= mean_firing_rate(clf, X[:10]) <= 1.0
    True
    """
    from .metrics import spike_stats

    return float(spike_stats(estimator, X).mean_firing_rate)


def _synops_scorer(estimator, X, y=None):
    return synaptic_operations(estimator, X)


def _rate_scorer(estimator, X, y=None):
    return mean_firing_rate(estimator, X)


def _energy_scorer(estimator, X, y=None):
    from .metrics import spike_stats

    return float(spike_stats(estimator, X).snn_energy)


_COSTS = {"synops": _synops_scorer, "firing_rate": _rate_scorer, "energy": _energy_scorer}


# --------------------------------------------------------------------------------------------
# Architecture search
# --------------------------------------------------------------------------------------------

def _has_best(attr):
    def check(self):
        if hasattr(self, "best_estimator_"):
            getattr(self.best_estimator_, attr)
            return True
        getattr(self.estimator if self.estimator is not None else SurrogateSNNClassifier(), attr)
        return True

    return check


def _dominates(a, b):
    """a, b = (score to maximise, cost to minimise)."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_indices(scores, costs):
    """Indices of the non-dominated points (maximise ``scores``, minimise ``costs``), by cost.

    Examples
    --------
    >>> pareto_indices([0.9, 0.8, 0.85, 0.7], [10, 5, 12, 6])
    [1, 0]
    """
    pts = list(zip(scores, costs))
    keep = [i for i, p in enumerate(pts) if not any(_dominates(q, p) for j, q in enumerate(pts) if j != i)]
    # identical points: keep the first
    seen, out = set(), []
    for i in sorted(keep, key=lambda i: (pts[i][1], -pts[i][0])):
        if pts[i] not in seen:
            seen.add(pts[i])
            out.append(i)
    return out


class SNNArchitectureSearch(MetaEstimatorMixin, BaseEstimator):
    """Search the architecture of a spiking network with Optuna through cross-validation.

    The space covers the neuron model, depth and widths (``hidden_layer_sizes`` from every
    combination of ``widths`` up to ``max_depth`` layers), recurrence, surrogate and ``n_steps``,
    plus any ``param_distributions`` you add. With ``cost=None`` the search is
    :class:`~sklearn_snn.model_selection.OptunaSearchCV` (TPE, pruning-free, same ``cv_results_``).
    With ``cost='synops'`` or ``'firing_rate'`` every candidate is also measured by that cost on
    its validation folds, a two-objective study (maximise score, minimise cost) drives the
    sampler, and ``pareto_front_`` lists the non-dominated candidates.

    Parameters
    ----------
    estimator : estimator, default=None
        The SNN estimator to tune (or a pipeline ending in one; parameter names then need the
        step prefix, see ``step_name``). ``None``: ``SurrogateSNNClassifier(max_iter=30)``.
    neurons : sequence of str, default=('lif', 'cuba', 'alif')
    widths : sequence of int, default=(32, 64, 128)
    max_depth : int, default=2
        Depth 1..max_depth; widths per layer are chosen independently.
    recurrent : sequence of bool, default=(False, True)
    surrogates : sequence of str, default=('fast_sigmoid', 'sigmoid', 'arctan', 'triangle')
    n_steps : sequence of int, default=(5, 10, 20)
        Each of these five sequences must hold at least one choice (``widths`` and ``n_steps``
        positive integers); ``fit`` raises a ValueError otherwise.
    param_distributions : dict, default=None
        Extra Optuna distributions (e.g. ``learning_rate_init``); they override the above.
    step_name : str or None, default=None
        Prefix (``step_name__param``) when ``estimator`` is a pipeline.
    cost : {None, 'synops', 'firing_rate', 'energy'} or callable, default=None
        Second objective, minimised, measured on each validation fold: :func:`synaptic_operations`,
        :func:`mean_firing_rate` or the energy estimate (joules per sample) of
        :func:`sklearn_snn.metrics.spike_stats`. A callable is
        ``cost(fitted_estimator, X_val, y_val) -> float``.
    scoring : str, callable or None, default=None
        The first objective (the estimator's ``score`` if None).
    cv : int or splitter, default=3
    n_trials : int, default=20
    timeout : float or None, default=None
    n_jobs : int or None, default=None
        Parallel folds (joblib).
    sampler : optuna.samplers.BaseSampler or None, default=None
        ``None``: seeded TPE (multi-objective TPE when ``cost`` is set).
    random_state : int, RandomState or None, default=None
        Seeds the default sampler. Each candidate's fits are seeded by the estimator's own
        ``random_state`` (as in ``GridSearchCV``): set both for a reproducible search.
    refit : bool or callable, default=True
        Refit the selected candidate on all data: the best score (single objective), or, with a
        cost, the most accurate Pareto point; a callable gets ``pareto_front_`` and returns the
        index of the point to refit.
    verbose : int, default=0

    Attributes
    ----------
    search_ : OptunaSearchCV or None
        The underlying search (single objective).
    study_ : optuna.Study
    cv_results_ : dict
        Per trial: ``params``, ``mean_test_score``, ``std_test_score`` (and
        ``mean_test_cost``, ``std_test_cost``, ``pareto`` with a cost).
    pareto_front_ : list of dict or None
        With a cost: the non-dominated candidates sorted by cost, each
        ``{'params', 'score', 'cost', 'trial_number'}`` (``'cost'`` also under the cost's name).
    best_params_, best_score_ : the refitted candidate's parameters and mean CV score.
    best_estimator_ : estimator
        Refit on all data (with ``refit``).
    classes_, n_features_in_ : from the best estimator.

    Notes
    -----
    ``OptunaSearchCV`` optimises one greater-is-better score (its study maximises a single value),
    so the two-objective search runs on Optuna's ask-and-tell API with
    :func:`sklearn.model_selection.cross_validate` scoring both objectives on the same folds.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> search = SNNArchitectureSearch(SurrogateSNNClassifier(max_iter=3), widths=(8, 16), max_depth=1,
    ...                                n_steps=(4,), cost="synops", n_trials=3, cv=2, random_state=0)
    >>> search = search.fit(X[:200], y[:200])
    >>> front = search.pareto_front_
    >>> sorted(front[0])
    ['cost', 'params', 'score', 'synops', 'trial_number']
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"]), None],
        "neurons": ["array-like"],
        "widths": ["array-like"],
        "max_depth": [Interval(Integral, 1, None, closed="left")],
        "recurrent": ["array-like"],
        "surrogates": ["array-like"],
        "n_steps": ["array-like"],
        "param_distributions": [dict, None],
        "step_name": [str, None],
        "cost": [StrOptions(set(_COSTS)), callable, None],
        "scoring": [str, callable, None],
        "cv": ["cv_object"],
        "n_trials": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither"), None],
        "n_jobs": [Integral, None],
        "sampler": "no_validation",
        "random_state": ["random_state"],
        "refit": ["boolean", callable],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator=None, *, neurons=("lif", "cuba", "alif"), widths=(32, 64, 128), max_depth=2,
                 recurrent=(False, True), surrogates=("fast_sigmoid", "sigmoid", "arctan", "triangle"),
                 n_steps=(5, 10, 20), param_distributions=None, step_name=None, cost=None, scoring=None, cv=3,
                 n_trials=20, timeout=None, n_jobs=None, sampler=None, random_state=None, refit=True, verbose=0):
        self.estimator = estimator
        self.neurons = neurons
        self.widths = widths
        self.max_depth = max_depth
        self.recurrent = recurrent
        self.surrogates = surrogates
        self.n_steps = n_steps
        self.param_distributions = param_distributions
        self.step_name = step_name
        self.cost = cost
        self.scoring = scoring
        self.cv = cv
        self.n_trials = n_trials
        self.timeout = timeout
        self.n_jobs = n_jobs
        self.sampler = sampler
        self.random_state = random_state
        self.refit = refit
        self.verbose = verbose

    def _estimator(self):
        return clone(self.estimator) if self.estimator is not None else SurrogateSNNClassifier(max_iter=30)

    def _check_choices(self):
        for name in ("neurons", "widths", "recurrent", "surrogates", "n_steps"):
            values = list(getattr(self, name))
            what = {"widths": "layer width", "n_steps": "number of steps"}.get(name, "choice")
            if not values:
                raise ValueError(f"{name} must hold at least one {what} to search, got {getattr(self, name)!r}; "
                                 f"pass e.g. {name}={getattr(type(self)(), name)!r}.")
            if name in ("widths", "n_steps") and not all(
                    isinstance(v, (Integral, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values):
                raise ValueError(f"{name} must hold positive integers, got {getattr(self, name)!r}.")

    def search_space(self):
        """The search space as a dict of parameter name -> Optuna distribution or list of choices."""
        from optuna.distributions import CategoricalDistribution

        self._check_choices()
        pre = f"{self.step_name}__" if self.step_name else ""
        layers = [combo for depth in range(1, self.max_depth + 1)
                  for combo in itertools.product([int(w) for w in self.widths], repeat=depth)]
        space = {
            f"{pre}neuron": CategoricalDistribution(list(self.neurons)),
            f"{pre}hidden_layer_sizes": layers,
            f"{pre}recurrent": CategoricalDistribution([bool(r) for r in self.recurrent]),
            f"{pre}surrogate": CategoricalDistribution(list(self.surrogates)),
            f"{pre}n_steps": CategoricalDistribution([int(n) for n in self.n_steps]),
        }
        space.update(self.param_distributions or {})
        return space

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self._estimator())
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = sub.classifier_tags
        tags.regressor_tags = sub.regressor_tags
        tags.input_tags.three_d_array = sub.input_tags.three_d_array
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **fit_params):
        """Run the search and refit the selected architecture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        y : array-like of shape (n_samples,)
        **fit_params : passed to the estimator's ``fit``.

        Returns
        -------
        self
        """
        if self.cost is None:
            return self._fit_single(X, y, **fit_params)
        return self._fit_multi(X, y, **fit_params)

    def _fit_single(self, X, y, **fit_params):
        from .model_selection import OptunaSearchCV

        if callable(self.refit):
            raise ValueError("refit may be a callable only with a cost (it picks a point of the Pareto front).")
        self.search_ = OptunaSearchCV(self._estimator(), self.search_space(), cv=self.cv, scoring=self.scoring,
                                      n_trials=self.n_trials, timeout=self.timeout, n_jobs=self.n_jobs,
                                      sampler=self.sampler, random_state=self.random_state, refit=bool(self.refit),
                                      verbose=self.verbose)
        self.search_.fit(X, y, **fit_params)
        s = self.search_
        self.study_, self.cv_results_ = s.study_, s.cv_results_
        self.best_params_, self.best_score_ = s.best_params_, s.best_score_
        self.pareto_front_ = None
        if self.refit:
            self.best_estimator_ = s.best_estimator_
            self._copy_fitted_info()
        return self

    def _fit_multi(self, X, y, **fit_params):
        import optuna

        from .model_selection import decode_params, prepare_search_space

        space, decoders = prepare_search_space(self.search_space())
        base = self._estimator()
        cv = check_cv(self.cv, y, classifier=is_classifier(base))
        folds = list(cv.split(X, y))
        scorer = check_scoring(base, self.scoring)
        cost_fn = _COSTS[self.cost] if isinstance(self.cost, str) else self.cost
        cost_name = self.cost if isinstance(self.cost, str) else "cost"
        sampler = self.sampler
        if sampler is None:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            sampler = optuna.samplers.TPESampler(seed=int(seed))
        previous = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.INFO if self.verbose >= 2 else optuna.logging.WARNING)
        try:
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
            start, rows = time.monotonic(), []
            for _ in range(self.n_trials):
                if self.timeout is not None and time.monotonic() - start >= self.timeout:
                    break
                trial = study.ask(space)
                params = decode_params(trial.params, decoders)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    res = cross_validate(clone(base).set_params(**params), X, y, cv=folds,
                                         scoring={"score": scorer, "cost": cost_fn}, n_jobs=self.n_jobs,
                                         params=fit_params or None, error_score=np.nan)
                score, cost = np.mean(res["test_score"]), np.mean(res["test_cost"])
                if not (np.isfinite(score) and np.isfinite(cost)):
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    msg = "failed"
                else:
                    study.tell(trial, [float(score), float(cost)])
                    rows.append({"trial_number": trial.number, "params": params, "score": float(score),
                                 "score_std": float(np.std(res["test_score"])), "cost": float(cost),
                                 "cost_std": float(np.std(res["test_cost"]))})
                    msg = f"score {score:.4f}, {cost_name} {cost:.4g}"
                if self.verbose:
                    print(f"[SNNArchitectureSearch] trial {trial.number}: {msg}; params {params}")
        finally:
            optuna.logging.set_verbosity(previous)
        if not rows:
            raise ValueError("No trial completed; check the estimator with sklearn.model_selection.cross_validate.")
        self.search_, self.study_ = None, study
        front_idx = pareto_indices([r["score"] for r in rows], [r["cost"] for r in rows])
        self.pareto_front_ = [{"params": rows[i]["params"], "score": rows[i]["score"], "cost": rows[i]["cost"],
                               cost_name: rows[i]["cost"], "trial_number": rows[i]["trial_number"]}
                              for i in front_idx]
        on_front = set(front_idx)
        self.cv_results_ = {
            "params": [r["params"] for r in rows],
            "mean_test_score": np.array([r["score"] for r in rows]),
            "std_test_score": np.array([r["score_std"] for r in rows]),
            "mean_test_cost": np.array([r["cost"] for r in rows]),
            "std_test_cost": np.array([r["cost_std"] for r in rows]),
            "trial_number": np.array([r["trial_number"] for r in rows]),
            "pareto": np.array([i in on_front for i in range(len(rows))]),
        }
        if callable(self.refit):
            pick = int(self.refit(self.pareto_front_))
        else:
            pick = max(range(len(self.pareto_front_)),
                       key=lambda i: (self.pareto_front_[i]["score"], -self.pareto_front_[i]["cost"]))
        chosen = self.pareto_front_[pick]
        self.best_index_ = pick
        self.best_params_, self.best_score_ = chosen["params"], chosen["score"]
        if self.refit:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.best_estimator_ = clone(base).set_params(**self.best_params_).fit(X, y, **fit_params)
            self._copy_fitted_info()
        return self

    def _copy_fitted_info(self):
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.best_estimator_, name):
                setattr(self, name, getattr(self.best_estimator_, name))

    def _check_refit(self):
        check_is_fitted(self)
        if not hasattr(self, "best_estimator_"):
            raise AttributeError("This search was run with refit=False; set refit=True to predict.")

    @available_if(_has_best("predict"))
    def predict(self, X):
        """Predict with the refitted best architecture."""
        self._check_refit()
        return self.best_estimator_.predict(X)

    @available_if(_has_best("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the refitted best architecture."""
        self._check_refit()
        return self.best_estimator_.predict_proba(X)

    @available_if(_has_best("decision_function"))
    def decision_function(self, X):
        """Decision function of the refitted best architecture."""
        self._check_refit()
        return self.best_estimator_.decision_function(X)

    def score(self, X, y=None):
        """Score of the refitted best architecture (``scoring``)."""
        self._check_refit()
        return check_scoring(self.best_estimator_, self.scoring)(self.best_estimator_, X, y)

    @property
    def classes_(self):
        """Class labels of the refitted best architecture."""
        self._check_refit()
        return self.best_estimator_.classes_


# --------------------------------------------------------------------------------------------
# Few-shot tasks
# --------------------------------------------------------------------------------------------

Episode = namedtuple("Episode", ["X_support", "y_support", "X_query", "y_query", "classes"])
Episode.__doc__ = """An N-way K-shot task: support and query sets with labels 0..N-1 (``classes`` holds
the original class of each label)."""


class FewShotTaskSampler:
    """N-way K-shot classification episodes from shipped data.

    Every episode draws ``n_way`` classes, ``k_shot`` support and ``n_query`` query samples per
    class (without overlap), and relabels the classes 0..N-1 in a random order, so a learner cannot
    memorise a fixed class-to-output mapping.

    Parameters
    ----------
    n_way, k_shot, n_query : int, default=5, 5, 15
    source : 'digits', 'randman' or (X, y), default='digits'
        ``'digits'``: sklearn's 8x8 digits (2D, 64 features). ``'randman'``: every episode draws
        ``n_way`` new random manifolds (:func:`~sklearn_snn.datasets.make_randman`, 3D spike
        trains), so no two episodes share a class. ``(X, y)``: any labelled data.
    classes : sequence or None, default=None
        Restrict the episodes to these classes (e.g. hold some digits out for testing).
    n_units, n_steps, dim_manifold : int, default=20, 50, 1
        Shape of the ``'randman'`` tasks.
    random_state : int, RandomState or None, default=None
        Seeds iteration (``iter(sampler)``) and :meth:`episodes`.

    Examples
    --------
    >>> sampler = FewShotTaskSampler(n_way=3, k_shot=2, n_query=4, classes=[0, 1, 2, 3], random_state=0)
    >>> ep = sampler.sample(random_state=0)
    >>> ep.X_support.shape, sorted(set(ep.y_support.tolist())), ep.X_query.shape
    ((6, 64), [0, 1, 2], (12, 64))
    """

    def __init__(self, n_way=5, k_shot=5, n_query=15, source="digits", classes=None, n_units=20, n_steps=50,
                 dim_manifold=1, random_state=None):
        self.n_way, self.k_shot, self.n_query = int(n_way), int(k_shot), int(n_query)
        self.source, self.classes = source, classes
        self.n_units, self.n_steps, self.dim_manifold = n_units, n_steps, dim_manifold
        self.random_state = random_state
        if self.n_way < 2 or self.k_shot < 1 or self.n_query < 0:
            raise ValueError("n_way must be >= 2, k_shot >= 1 and n_query >= 0.")
        self._X, self._y = None, None
        if isinstance(source, str):
            if source == "digits":
                from sklearn.datasets import load_digits

                self._X, self._y = load_digits(return_X_y=True)
            elif source != "randman":
                raise ValueError(f"source must be 'digits', 'randman' or (X, y), got {source!r}.")
        else:
            X, y = source
            self._X, self._y = np.asarray(X), np.asarray(y)
        if self._X is not None:
            pool = np.unique(self._y) if classes is None else np.asarray(classes)
            missing = np.setdiff1d(pool, self._y)
            if missing.size:
                raise ValueError(f"classes {missing.tolist()} do not occur in the data.")
            counts = np.array([(self._y == c).sum() for c in pool])
            if pool.size < self.n_way:
                raise ValueError(f"n_way={self.n_way} needs at least {self.n_way} classes, got {pool.size}.")
            if counts.min() < self.k_shot + self.n_query:
                raise ValueError(f"Every class needs k_shot + n_query = {self.k_shot + self.n_query} samples; "
                                 f"the smallest has {counts.min()}.")
            self._pool = pool
            self._index = {c: np.flatnonzero(self._y == c) for c in pool}

    def sample(self, random_state=None):
        """Draw one :class:`Episode`."""
        rng = check_random_state(random_state)
        k, q = self.k_shot, self.n_query
        if self._X is None:
            from .datasets import make_randman

            X, y = make_randman(n_samples=self.n_way * (k + q), n_classes=self.n_way, n_units=self.n_units,
                                n_steps=self.n_steps, dim_manifold=self.dim_manifold,
                                random_state=rng.randint(np.iinfo(np.int32).max))
            groups = [np.flatnonzero(y == c) for c in range(self.n_way)]
            chosen = np.arange(self.n_way)
        else:
            X = self._X
            chosen = rng.choice(self._pool, self.n_way, replace=False)
            groups = [rng.choice(self._index[c], k + q, replace=False) for c in chosen]
        order = rng.permutation(self.n_way)  # label of the i-th chosen class
        sup = np.concatenate([g[:k] for g in groups])
        qry = np.concatenate([g[k:k + q] for g in groups])
        lab = np.repeat(order, k), np.repeat(order, q)
        classes = np.empty(self.n_way, dtype=np.asarray(chosen).dtype)
        classes[order] = chosen
        return Episode(X[sup], lab[0], X[qry], lab[1], classes)

    def episodes(self, n, random_state=None):
        """A list of ``n`` episodes (seeded by ``random_state``, else the sampler's)."""
        rng = check_random_state(self.random_state if random_state is None else random_state)
        return [self.sample(rng) for _ in range(n)]

    def __iter__(self):
        rng = check_random_state(self.random_state)
        while True:
            yield self.sample(rng)

    def __repr__(self):
        src = self.source if isinstance(self.source, str) else "(X, y)"
        return f"FewShotTaskSampler(n_way={self.n_way}, k_shot={self.k_shot}, n_query={self.n_query}, source={src!r})"


# --------------------------------------------------------------------------------------------
# Learning to learn
# --------------------------------------------------------------------------------------------

def _as_task(task, split, rng):
    """(X_support, y_support, X_query, y_query) with labels 0..k-1 from an Episode or (X, y)."""
    if len(task) >= 4:
        Xs, ys, Xq, yq = task[:4]
        classes, inv = np.unique(np.concatenate([np.asarray(ys), np.asarray(yq)]), return_inverse=True)
        return np.asarray(Xs), inv[:len(ys)], np.asarray(Xq), inv[len(ys):]
    X, y = task
    X, y = np.asarray(X), np.asarray(y)
    classes, inv = np.unique(y, return_inverse=True)
    if not split:
        return X, inv, X, inv
    # stratified halves: support / query
    sup = np.zeros(len(y), dtype=bool)
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(inv == c))
        sup[idx[: max(1, len(idx) // 2)]] = True
    if sup.all():
        return X, inv, X, inv
    return X[sup], inv[sup], X[~sup], inv[~sup]


class _TaskStream:
    """Tasks for meta-training from a sampler, a sequence or an iterator."""

    def __init__(self, tasks, rng):
        self.rng = rng
        self.sampler = tasks if hasattr(tasks, "sample") and callable(tasks.sample) else None
        self.seq = None
        self.it = None
        if self.sampler is None:
            if hasattr(tasks, "__len__") and hasattr(tasks, "__getitem__"):
                self.seq = list(tasks)
                if not self.seq:
                    raise ValueError("tasks is empty.")
            else:
                self.it = iter(tasks)

    def next(self):
        if self.sampler is not None:
            return self.sampler.sample(self.rng)
        if self.seq is not None:
            return self.seq[self.rng.randint(len(self.seq))]
        return next(self.it)


def _task_layout(task, label):
    """(ndim, n_features) of the inputs of one task, before relabelling."""
    shapes = [np.shape(task[0])] + ([np.shape(task[2])] if len(task) >= 4 else [])
    layouts = [(len(sh), sh[-1] if sh else 0) for sh in shapes]
    if len(set(layouts)) > 1:
        raise ValueError(f"{label} has support inputs of shape {shapes[0]} but query inputs of shape {shapes[1]}; "
                         "both must have the same number of features.")
    return layouts[0]


def _check_task_layouts(tasks, label):
    """Every task must have the input layout of the first: one network is meta-learned for all."""
    first = None
    for i, task in enumerate(tasks):
        nd, nf = _task_layout(task, label(i))
        if first is None:
            first = (nd, nf)
        elif (nd, nf) != first:
            dims = "" if nd == first[0] else f" ({nd}D input against {first[0]}D)"
            raise ValueError(f"{label(i)} has {nf} features but {label(0)} has {first[1]}{dims}; all tasks of "
                             "meta_fit must have the same input layout (one network is meta-learned for all of "
                             "them): select or pad the features so that every task has the same number.")


_META_CONSTRAINTS = {k: v for k, v in NETWORK_CONSTRAINTS.items()}
_META_CONSTRAINTS.update({
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "solver": [StrOptions({"adam", "adamw", "sgd", "adam-hd", "sgd-hd"})],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "learn_tau": ["boolean"],
    "learn_threshold": ["boolean"],
    "meta_algorithm": [StrOptions({"reptile", "fomaml"})],
    "n_meta_iter": [Interval(Integral, 1, None, closed="left")],
    "meta_batch_size": [Interval(Integral, 1, None, closed="left")],
    "meta_lr": [Interval(Real, 0, None, closed="neither")],
    "n_inner_steps": [Interval(Integral, 1, None, closed="left"), None],
    "n_adapt_steps": [Interval(Integral, 1, None, closed="left")],
    "learn_lr": ["boolean"],
})


class MetaSNNClassifier(SurrogateSNNClassifier):
    """A spiking classifier whose initialisation is meta-learned over a family of tasks.

    ``meta_fit(tasks)`` learns, with Reptile (Nichol et al. 2018) or first-order MAML (Finn et al.
    2017), an initial state of the network (weights, and with ``learn_tau`` / ``learn_threshold``
    the per-neuron time constants and thresholds; with ``learn_lr`` also one inner learning rate
    per parameter tensor) from which a few gradient steps solve a new task of the family.
    ``fit(X, y)`` then adapts from that state in ``n_adapt_steps`` steps; before ``meta_fit`` (or
    after ``clone``), ``fit`` trains from a random initialisation for ``max_iter`` epochs like
    :class:`~sklearn_snn.SurrogateSNNClassifier`. Network, loss, training step and loop are the
    package's core (:class:`~sklearn_snn._core.network.SNN`, ``_core.training``).

    Meta-training, per meta-iteration, for each of ``meta_batch_size`` tasks: copy the meta
    state, run ``n_inner_steps`` steps of the inner optimizer (``solver``, learning rate
    ``learning_rate_init`` or the learned ones) on the task's support set (Reptile: support and
    query together), then

    - Reptile: the meta "gradient" is ``theta - theta_task`` (the move towards the adapted state);
    - FOMAML: the meta gradient is the query-loss gradient at the adapted state;
    - ``learn_lr``: the first-order hypergradient of the query loss w.r.t. each log learning rate,
      ``g_query . (theta_task - theta)`` (per tensor; Baydin et al.'s hypergradient over a whole
      adaptation).

    The averaged meta gradients take one Adam step of size ``meta_lr``.

    Parameters
    ----------
    hidden_layer_sizes, n_steps, neuron, tau_mem, tau_syn, threshold, reset, surrogate,
    surrogate_slope, recurrent, encoder, readout, input_scaling, alpha, batch_size, solver,
    learn_tau, learn_threshold, device, torch_num_threads, random_state, verbose :
        As in :class:`~sklearn_snn.SurrogateSNNClassifier`.
    learning_rate_init : float, default=5e-3
        Learning rate of adaptation (inner loop, ``fit`` after ``meta_fit``) and of plain ``fit``.
    max_iter : int, default=100
        Epochs of ``fit`` from a random initialisation (no ``meta_fit``).
    meta_algorithm : {'fomaml', 'reptile'}, default='fomaml'
        First-order MAML worked better than Reptile (with the Adam outer step) in the few-shot
        digits benchmark (``benchmarks/meta.py``).
    n_meta_iter : int, default=300
        Meta-iterations (outer steps).
    meta_batch_size : int, default=4
        Tasks per meta-iteration.
    meta_lr : float, default=3e-3
        Adam step size of the outer update.
    n_inner_steps : int or None, default=None
        Inner steps per task in meta-training (``None``: ``n_adapt_steps``).
    n_adapt_steps : int, default=10
        Epochs of adaptation in ``fit`` after ``meta_fit``: one gradient step each for a task of
        up to ``batch_size`` samples (the few-shot case), so steps and epochs coincide there.
    learn_lr : bool, default=False
        Meta-learn one inner learning rate per parameter tensor.

    Attributes
    ----------
    meta_module_ : torch.nn.Module
        The meta-learned initial network (after ``meta_fit``).
    meta_n_way_ : int
        Outputs of the meta-learned network (most classes in a meta-training task).
    meta_loss_curve_ : list of float
        Mean query loss after adaptation per meta-iteration (FOMAML; Reptile: after the inner loop
        on the whole task).
    inner_lrs_ : ndarray or None
        The learned per-tensor inner learning rates (``learn_lr``).
    n_meta_iter_ : int
        Meta-iterations run.
    classes_, module_, n_iter_, t_, loss_curve_, n_features_in_, ... :
        As in :class:`~sklearn_snn.SurrogateSNNClassifier`, after ``fit``.

    Examples
    --------
    >>> from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier
    >>> train = FewShotTaskSampler(n_way=3, k_shot=3, n_query=3, classes=range(6), random_state=0)
    >>> test = FewShotTaskSampler(n_way=3, k_shot=3, n_query=3, classes=range(6, 10))
    >>> clf = MetaSNNClassifier((16,), n_steps=4, n_meta_iter=5, n_adapt_steps=3, random_state=0)
    >>> clf = clf.meta_fit(train)
    >>> ep = test.sample(random_state=0)
    >>> clf.fit(ep.X_support, ep.y_support).predict(ep.X_query).shape
    (9,)
    """

    _parameter_constraints = _META_CONSTRAINTS
    _torch_attributes = ("module_", "meta_module_")
    _fitted_attributes = {
        "meta_input_offset_": "array?", "meta_input_scale_": "array?", "meta_n_way_": "int",
        "meta_loss_curve_": "floats", "inner_lrs_": "array?", "n_meta_iter_": "int",
    }


    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        A search calls ``fit``, which trains from a random initialisation (clones are not
        meta-fitted), so only the network and its training are searched: ``neuron`` ('lif' or
        'cuba'), ``tau_mem`` (2 to 40 steps, log), ``tau_syn`` (2 to 20 steps, log),
        ``threshold`` (0.5 to 2), ``surrogate_slope`` (1 to 25, log), ``hidden_layer_sizes`` (16,
        32, 64, 128; few-shot tasks are small), ``learning_rate_init`` (1e-3 to 3e-2, log),
        ``n_steps`` (5 to 20) and ``encoder`` (current, rate, latency). The ``meta_*`` parameters
        act in ``meta_fit`` only.

        Returns
        -------
        space : dict of str to optuna.distributions.BaseDistribution
            ``hidden_layer_sizes`` choices are strings such as ``"128x64"``, which
            :class:`~sklearn_snn.model_selection.OptunaSearchCV` decodes to tuples.
        """
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        return {
            "neuron": CategoricalDistribution(["lif", "cuba"]),
            "tau_mem": FloatDistribution(2.0, 40.0, log=True),
            "tau_syn": FloatDistribution(2.0, 20.0, log=True),
            "threshold": FloatDistribution(0.5, 2.0),
            "surrogate_slope": FloatDistribution(1.0, 25.0, log=True),
            "hidden_layer_sizes": CategoricalDistribution(["16", "32", "64", "128"]),
            "learning_rate_init": FloatDistribution(1e-3, 3e-2, log=True),
            "n_steps": IntDistribution(5, 20, step=5),
            "encoder": CategoricalDistribution(["current", "rate", "latency"]),
        }

    def __init__(self, hidden_layer_sizes=(64,), *, n_steps=10, neuron="lif", tau_mem=10.0, tau_syn=5.0,
                 threshold=1.0, reset="subtract", surrogate="fast_sigmoid", surrogate_slope=5.0, recurrent=False,
                 encoder="current", readout="membrane_max", input_scaling="auto", alpha=0.0, batch_size="auto",
                 learning_rate_init=5e-3, solver="adam", max_iter=100, learn_tau=False, learn_threshold=False,
                 meta_algorithm="fomaml", n_meta_iter=300, meta_batch_size=4, meta_lr=3e-3, n_inner_steps=None,
                 n_adapt_steps=10, learn_lr=False, device="auto", torch_num_threads=None, random_state=None,
                 verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_steps = n_steps
        self.neuron = neuron
        self.tau_mem = tau_mem
        self.tau_syn = tau_syn
        self.threshold = threshold
        self.reset = reset
        self.surrogate = surrogate
        self.surrogate_slope = surrogate_slope
        self.recurrent = recurrent
        self.encoder = encoder
        self.readout = readout
        self.input_scaling = input_scaling
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.max_iter = max_iter
        self.learn_tau = learn_tau
        self.learn_threshold = learn_threshold
        self.meta_algorithm = meta_algorithm
        self.n_meta_iter = n_meta_iter
        self.meta_batch_size = meta_batch_size
        self.meta_lr = meta_lr
        self.n_inner_steps = n_inner_steps
        self.n_adapt_steps = n_adapt_steps
        self.learn_lr = learn_lr
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_is_fitted__(self):
        return hasattr(self, "module_")

    def _meta_fitted(self):
        return hasattr(self, "meta_module_")

    # --- the shared adaptation loop -------------------------------------------------------------
    def _adapt_config(self, n_steps):
        return TrainConfig(max_iter=n_steps, batch_size=self.batch_size, learning_rate_init=self.learning_rate_init,
                           alpha=self.alpha, solver=self.solver, n_iter_no_change=n_steps + 1, tol=0.0, verbose=0)

    def _adaptation_state(self, module, cfg):
        """Optimizer state of an adaptation: the learned per-tensor inner rates, when learned."""
        groups = None
        if getattr(self, "inner_lrs_", None) is not None:
            groups = [{"params": [p], "lr": float(lr)} for p, lr in zip(module.parameters(), self.inner_lrs_)]
        return new_state(module, cfg, params=groups)

    def _adapt(self, module, Xt, yt, n_steps, generator):
        """``n_steps`` epochs of the core training loop from the module's current state (an inner
        adaptation of meta-training)."""
        cfg = self._adapt_config(n_steps)
        state = self._adaptation_state(module, cfg)
        run_epochs(module, state, Xt, yt, self._make_step(generator), cfg, n_steps, generator=generator)
        if state.interrupted:   # the one Ctrl-C stops meta_fit too
            raise KeyboardInterrupt
        return state

    def _tensors(self, X, y):
        return self._to_tensor(self._scale(X)), torch.as_tensor(y, dtype=torch.long, device=self._device())

    # --- meta-training --------------------------------------------------------------------------
    def meta_fit(self, tasks, n_meta_iter=None, *, epoch_callback=None):
        """Meta-learn the initial state over a family of tasks.

        Parameters
        ----------
        tasks : FewShotTaskSampler, sequence or iterable
            A sampler (any object with ``sample(random_state) -> (X_s, y_s, X_q, y_q, ...)``), a
            sequence of tasks (drawn with replacement) or an iterator of tasks (consumed in
            order; meta-training stops when it is exhausted). A task is an :class:`Episode` /
            4-tuple ``(X_support, y_support, X_query, y_query)`` or a pair ``(X, y)`` (split in
            stratified halves for FOMAML). Labels are mapped to 0..k-1 per task (sorted).
        n_meta_iter : int or None
            Overrides the parameter of the same name for this call.
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, meta_iteration, info) -> bool`` after every meta-batch;
            truthy stops (``info``: ``meta_loss``, ``time``).

        Returns
        -------
        self
        """
        self._validate_params()
        n_iter = self.n_meta_iter if n_meta_iter is None else int(n_meta_iter)
        rng = check_random_state(self.random_state)
        gen = make_generator(self.random_state)
        stream = _TaskStream(tasks, rng)
        if stream.seq is not None:
            _check_task_layouts(stream.seq, lambda i: f"tasks[{i}]")
        split = self.meta_algorithm == "fomaml"
        n_inner = self.n_inner_steps or self.n_adapt_steps

        # a first group of tasks fixes the input layout, the number of outputs and the scaling
        first = []
        for _ in range(max(self.meta_batch_size, 8)):
            try:
                first.append(_as_task(stream.next(), split, rng))
            except StopIteration:
                break
        if not first:
            raise ValueError("tasks yielded no task.")
        _check_task_layouts(first, lambda i: f"task #{i} drawn from tasks")
        for name in ("meta_module_", "module_", "inner_lrs_"):
            if hasattr(self, name):
                delattr(self, name)
        X_all = np.concatenate([np.concatenate([t[0], t[2]]) for t in first])
        X_all, _ = validate_snn_input(self, X_all, reset=True)
        self._fit_scaler(X_all)
        self.meta_input_offset_, self.meta_input_scale_ = self.input_offset_, self.input_scale_
        self.meta_n_way_ = int(max(max(t[1].max(), t[3].max()) for t in first) + 1)
        with self._threads():
            meta = self._build_module(self._n_encoded(self.n_features_in_), self.meta_n_way_, gen)
            meta.to(self._device())
        params = list(meta.parameters())
        log_lrs = (torch.full((len(params),), math.log(self.learning_rate_init), dtype=torch.float64,
                              requires_grad=True) if self.learn_lr else None)
        outer = torch.optim.Adam(params + ([log_lrs] if self.learn_lr else []), lr=self.meta_lr)
        fast = copy.deepcopy(meta)
        self.meta_loss_curve_ = []
        pending = list(first)

        def meta_batch():
            batch = []
            try:
                while len(batch) < self.meta_batch_size:
                    batch.append(pending.pop(0) if pending else _as_task(stream.next(), split, rng))
            except StopIteration:
                if not batch:
                    raise StopTraining from None
            meta_grads = [torch.zeros_like(p) for p in params]
            lr_grad = torch.zeros(len(params), dtype=torch.float64) if self.learn_lr else None
            losses = []
            for Xs, ys, Xq, yq in batch:
                self._check_task(Xs, Xq)
                if self.learn_lr:
                    self.inner_lrs_ = log_lrs.detach().exp().numpy()
                fast.load_state_dict(meta.state_dict())
                if self.meta_algorithm == "reptile" and Xq is not Xs:
                    Xi, yi = np.concatenate([Xs, Xq]), np.concatenate([ys, yq])
                else:
                    Xi, yi = Xs, ys
                inner = self._adapt(fast, *self._tensors(Xi, yi), n_inner, gen)
                fparams = list(fast.parameters())
                need_query = self.meta_algorithm == "fomaml" or self.learn_lr
                if need_query:
                    fast.zero_grad(set_to_none=True)
                    loss, _ = self._make_step(gen)(fast, *self._tensors(Xq, yq), None)
                    losses.append(loss)
                with torch.no_grad():
                    for k, (p, q) in enumerate(zip(params, fparams)):
                        delta = q - p
                        if self.meta_algorithm == "reptile":
                            meta_grads[k] -= delta
                        elif q.grad is not None:
                            meta_grads[k] += q.grad
                        if self.learn_lr and q.grad is not None:
                            lr_grad[k] += float((q.grad * delta).sum())
                if not need_query:
                    losses.append(inner.loss_curve[-1])
            outer.zero_grad(set_to_none=True)
            for p, g in zip(params, meta_grads):
                p.grad = g / len(batch)
            if self.learn_lr:
                log_lrs.grad = lr_grad / len(batch)
            outer.step()
            self.meta_loss_curve_.append(float(np.mean(losses)))
            return {"meta_loss": self.meta_loss_curve_[-1]}

        def on_end(state):
            # the meta-parameters change only in outer.step(): they are those of the last whole meta-batch
            self.meta_module_ = meta
            self.inner_lrs_ = log_lrs.detach().exp().numpy() if self.learn_lr else None
            self.n_meta_iter_ = state.n_iter

        method = Method(meta_batch, on_end=on_end,
                        describe=lambda n, info: f"Meta-iteration {n}, loss = {info['meta_loss']:.6f}")
        with self._threads():
            run_training(self, method, n_iter, LoopState(), epoch_callback=epoch_callback, what="Meta-training",
                         keeps="the meta-learned state of the last complete meta-batch")
        return self

    def _check_task(self, Xs, Xq):
        for X in (Xs, Xq):
            nd = X.ndim
            if nd != self.input_ndim_ or X.shape[-1] != self.n_features_in_:
                raise ValueError(f"All tasks must share the input layout: expected {self.input_ndim_}D input with "
                                 f"{self.n_features_in_} features, got shape {X.shape}.")

    # --- hooks of the shared fit --------------------------------------------------------------------
    def _fit_scaler(self, X):
        if self._meta_fitted() and hasattr(self, "meta_input_offset_"):
            self.input_offset_, self.input_scale_ = self.meta_input_offset_, self.meta_input_scale_
            return
        super()._fit_scaler(X)

    def _module_from_meta(self, n_in, n_out, generator):
        module = super()._build_module(n_in, n_out, generator)
        src = self.meta_module_.state_dict()
        own = module.state_dict()
        mismatched = [k for k in own if k not in src or src[k].shape != own[k].shape]
        if mismatched:
            warnings.warn(f"The task has {n_out} classes but the meta-learned network has {self.meta_n_way_} "
                          f"outputs; {', '.join(mismatched)} start from a random initialisation.", UserWarning)
        module.load_state_dict({k: (src[k] if k not in mismatched else v) for k, v in own.items()})
        return module

    def _rebuild_module(self, name="module_"):
        """A freshly built network of the saved architecture (``sklearn_snn.load`` loads the
        weights after): the meta-learned one has ``meta_n_way_`` outputs, the adapted one one per class."""
        n_out = self.meta_n_way_ if name == "meta_module_" else len(self.classes_)
        return super()._build_module(self._n_encoded(self.n_features_in_), n_out, torch.Generator().manual_seed(0))

    def _build_module(self, n_in, n_out, generator):
        if self._meta_fitted() and n_in == self._n_encoded(self.n_features_in_):
            return self._module_from_meta(n_in, n_out, generator)
        return super()._build_module(n_in, n_out, generator)

    # --- public API ---------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, epoch_callback=None):
        """Adapt from the meta-learned state in ``n_adapt_steps`` (after ``meta_fit``), else train
        from a random initialisation for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, epoch, info) -> bool`` after every epoch; truthy stops.
            Every callback of a list is called, in order; any truthy one stops.

        Returns
        -------
        self
        """
        callbacks = as_callback_list(epoch_callback)
        if not self._meta_fitted():
            return self._fit(X, y, sample_weight, incremental=False, epoch_callback=epoch_callback)
        n_features, ndim = self.n_features_in_, self.input_ndim_
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X, y = validate_snn_input(self, X, y, reset=True)
        if X.shape[-1] != n_features or X.ndim != ndim:
            self.n_features_in_, self.input_ndim_ = n_features, ndim
            raise ValueError(f"X has {X.shape[-1]} features ({X.ndim}D), but {type(self).__name__} was meta-fitted "
                             f"on {ndim}D input with {n_features} features.")
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X)
        targets, n_out = self._prepare_targets(y, reset=True)
        self._generator = make_generator(self.random_state)
        self._fit_scaler(X)
        device = self._device()
        with self._threads():
            self.module_ = self._build_module(self._n_encoded(self.n_features_in_), n_out, self._generator).to(device)
            Xt = self._to_tensor(self._scale(X), device=device)
            wt = None if sample_weight is None else torch.tensor(sample_weight, dtype=torch.float32, device=device)
            cfg = self._adapt_config(self.n_adapt_steps)
            state = self._train_state = self._adaptation_state(self.module_, cfg)
            method = gradient_epochs(self.module_, state, Xt, targets.to(device), self._make_step(self._generator),
                                     cfg, self.n_adapt_steps, generator=self._generator, sample_weight=wt)
            run_training(self, method, self.n_adapt_steps, state, epoch_callback=callbacks, sync=self._sync_history,
                         what="Adaptation", keeps="the weights reached so far")
        return self
