"""The search: :class:`OptunaSearchCV`, an Optuna study driven through scikit-learn cross-validation."""

from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from collections import defaultdict

import numpy as np
import optuna
from joblib import Parallel, delayed, effective_n_jobs
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
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, indexable

from ._evaluate import evaluate_candidate, pruning_mode
from ._pruning import STEP_STRIDE, LearningCurvePruner
from ._spaces import decode_params, default_search_space, prepare_search_space
from ._storage import Heartbeat, heartbeat_enabled, optuna_verbosity, resolve_storage

__all__ = ["OptunaSearchCV"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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
        decoded before use.  ``None`` uses the space the estimator declares
        (its class's ``default_search_space()``; in a pipeline, its steps'), see
        :func:`default_search_space`.
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
            kind, st = resolve_storage(st)
            if kind == "journal":
                from optuna.storages.journal import JournalFileBackend

                return optuna.storages.JournalStorage(JournalFileBackend(st))
            for attempt in range(5):
                try:
                    return optuna.storages.RDBStorage(st)
                except Exception as exc:
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
            resolve_storage(self.storage)  # a bad path fails here, before any fold
        X, y, groups = indexable(X, y, groups)
        space_in = (self.param_distributions if self.param_distributions is not None
                    else default_search_space(self.estimator))
        space, decoders = prepare_search_space(space_in)
        self._decoders = decoders
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = list(cv.split(X, y, groups))
        self.n_splits_ = len(folds)
        self.scorer_ = check_scoring(self.estimator, self.scoring)
        self.multimetric_ = False

        pruner = self._pruner()
        mode = None
        if pruner is not None:
            mode = pruning_mode(self.estimator)
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
        heartbeat = heartbeat_enabled(storage)
        with optuna_verbosity(self.verbose), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # we record heartbeats ourselves (see Heartbeat) with ask-and-tell
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
        params = [decode_params(t.params, decoders) for t in trials]
        hb = (Heartbeat(storage, [t._trial_id for t in trials]) if heartbeat
              else contextlib.nullcontext())
        try:
            with hb:
                results = parallel(
                    delayed(evaluate_candidate)(
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
        get = lambda key: [folds[f][key] if f in folds else np.nan
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
            params_list.append(decode_params(t.params, self._decoders))

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
        self.best_params_ = decode_params(best.params, self._decoders)
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
