"""Architecture search for spiking networks, with activity costs as a second objective.

- :class:`SNNArchitectureSearch`: searches neuron model, depth, widths, recurrence, surrogate and
  ``n_steps`` with Optuna through scikit-learn cross-validation (on
  :class:`~sklearn_snn.model_selection.OptunaSearchCV`), optionally against a cost (synaptic
  operations, firing rate or energy, counted by :mod:`sklearn_snn.metrics`) with the Pareto
  front as the result.
- :func:`synaptic_operations`, :func:`mean_firing_rate`: the search's costs, from
  :func:`sklearn_snn.metrics.spike_stats`.
- :func:`pareto_indices`: the non-dominated points of (score, cost) pairs.

All three are also importable from :mod:`sklearn_snn.meta`.
"""

from __future__ import annotations

import itertools
import time
import warnings
from numbers import Integral, Real

import numpy as np
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

from .surrogate import SurrogateSNNClassifier
from .validation import IntervalNotBool

__all__ = [
    "SNNArchitectureSearch",
    "mean_firing_rate",
    "pareto_indices",
    "synaptic_operations",
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
        "max_depth": [IntervalNotBool(Integral, 1, None, closed="left")],
        "recurrent": ["array-like"],
        "surrogates": ["array-like"],
        "n_steps": ["array-like"],
        "param_distributions": [dict, None],
        "step_name": [str, None],
        "cost": [StrOptions(set(_COSTS)), callable, None],
        "scoring": [str, callable, None],
        "cv": ["cv_object"],
        "n_trials": [IntervalNotBool(Integral, 1, None, closed="left")],
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
