"""Tests for sklearn_snn.model_selection (OptunaSearchCV, default spaces, scale-out)."""

import multiprocessing
import sys
import time
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_snn.model_selection import (
    STEP_STRIDE,
    LearningCurvePruner,
    OptunaSearchCV,
    default_search_space,
    limit_torch_threads,
)


class EpochSGDClassifier(ClassifierMixin, BaseEstimator):
    """Tiny stand-in for the package's gradient estimators.

    ``fit`` runs ``max_iter`` epochs of ``SGDClassifier.partial_fit`` and calls
    ``epoch_callback(self, epoch, info)`` after each; ``quality='bad'`` trains on
    shuffled labels (chance accuracy), a crafted case for pruning.
    """

    def __init__(self, max_iter=8, eta0=0.01, alpha=1e-4, quality="good"):
        self.max_iter = max_iter
        self.eta0 = eta0
        self.alpha = alpha
        self.quality = quality

    def fit(self, X, y, epoch_callback=None):
        self.classes_ = np.unique(y)
        if self.quality == "bad":
            y = np.random.RandomState(0).permutation(y)
        self.sgd_ = SGDClassifier(loss="log_loss", learning_rate="constant",
                                  eta0=self.eta0, alpha=self.alpha, random_state=0)
        self.n_iter_ = 0
        for epoch in range(self.max_iter):
            self.sgd_.partial_fit(X, y, classes=self.classes_)
            self.n_iter_ += 1
            _CALLS.append(epoch)
            if epoch_callback is not None and epoch_callback(self, epoch, {}):
                break
        return self

    def predict(self, X):
        return self.sgd_.predict(X)

    def predict_proba(self, X):
        return self.sgd_.predict_proba(X)


_CALLS = []  # epochs run by EpochSGDClassifier in this process


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X[:400] / 16.0
    return X, y[:400]


def test_two_param_search_beats_worst_and_refits(digits):
    X, y = digits
    search = OptunaSearchCV(
        EpochSGDClassifier(max_iter=3),
        {"eta0": FloatDistribution(1e-5, 1.0, log=True),
         "alpha": FloatDistribution(1e-6, 1.0, log=True)},
        cv=3, n_trials=8, random_state=0,
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 8 and search.n_trials_ == 8
    assert search.best_score_ == pytest.approx(np.nanmax(scores))
    assert search.best_score_ > np.nanmin(scores) + 0.05
    assert search.cv_results_["rank_test_score"][search.best_index_] == 1
    assert set(search.best_params_) == {"eta0", "alpha"}
    assert search.best_estimator_.get_params()["eta0"] == search.best_params_["eta0"]
    assert search.score(X, y) > 0.8
    assert search.predict_proba(X).shape == (len(X), 10)
    np.testing.assert_array_equal(search.classes_, np.arange(10))
    assert isinstance(search.study_, optuna.Study)
    assert {"split0_test_score", "split2_test_score", "std_test_score",
            "mean_fit_time", "param_eta0", "params"} <= set(search.cv_results_)


def test_tags_and_outer_cv_stratifies(monkeypatch):
    X, y = load_iris(return_X_y=True)
    search = OptunaSearchCV(LogisticRegression(max_iter=300),
                            {"C": FloatDistribution(1e-2, 1e2, log=True)},
                            cv=2, n_trials=2, random_state=0)
    assert is_classifier(search)
    assert not is_classifier(OptunaSearchCV(SGDRegressor(), {"alpha": [1e-4]}))
    # iris is sorted by class: unstratified 3-fold would leave a class out of
    # each training set; record the splitter that cross_val_score really uses
    used = []
    orig = StratifiedKFold.split

    def spy(self, *a, **k):
        used.append(type(self).__name__)
        return orig(self, *a, **k)

    monkeypatch.setattr(StratifiedKFold, "split", spy)
    scores = cross_val_score(search, X, y, cv=3)
    assert used and used[0] == "StratifiedKFold"
    # the search pickles into loky workers (outer CV in parallel)
    par = cross_val_score(search, X, y, cv=3, n_jobs=2)
    np.testing.assert_allclose(par, scores)
    assert scores.min() > 0.85


def test_pruning_epoch_callback_stops_bad_trials(digits):
    X, y = digits
    _CALLS.clear()
    search = OptunaSearchCV(
        EpochSGDClassifier(max_iter=6),
        {"quality": ["good", "bad"]}, cv=2, n_trials=10, refit=False,
        pruning=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        sampler=optuna.samplers.RandomSampler(seed=0),
    ).fit(X, y)
    assert search.pruning_mode_ == "epoch_callback"
    states = list(search.cv_results_["state"])
    assert "PRUNED" in states
    pruned = [t for t in search.study_.trials if t.state == TrialState.PRUNED]
    for t in pruned:
        # stopped before the end of its last fold: fewer epochs than 2 folds x 6
        assert sum(e for e in t.user_attrs["n_epochs"] if e == e) < 12
        fold, epoch = t.user_attrs["pruned_at"]
        assert max(t.intermediate_values) == fold * STEP_STRIDE + epoch
    assert all(t.params["quality"] == "bad" for t in pruned)
    assert search.best_params_["quality"] == "good"
    # the estimator really stopped early: fewer epochs than an unpruned search
    assert len(_CALLS) < 10 * 2 * 6
    # pruned rows are NaN and rank last
    r = search.cv_results_
    i = states.index("PRUNED")
    assert np.isnan(r["mean_test_score"][i])
    assert r["rank_test_score"][i] == r["rank_test_score"].max()


def test_default_pruner_stops_hopeless_trials_after_warmup(digits):
    # pruning=True: LearningCurvePruner(), which judges the first fold's curve
    # from epoch 2 (after two warm-up epochs) once 5 trials have completed
    X, y = digits
    _CALLS.clear()
    search = OptunaSearchCV(
        EpochSGDClassifier(max_iter=5), {"quality": ["good", "bad"]}, cv=3,
        n_trials=12, refit=False, pruning=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    ).fit(X, y)
    assert isinstance(search._pruner(), LearningCurvePruner)
    trials = search.study_.trials
    n_late_bad = 0
    for t in trials:
        n_completed_before = sum(u.state == TrialState.COMPLETE for u in trials[:t.number])
        if t.params["quality"] == "good":
            assert t.state == TrialState.COMPLETE
            # only epochs 2.. of fold 0 were scored; folds 1 and 2 ran unwatched
            assert sorted(t.intermediate_values) == [2, 3, 4]
            assert t.user_attrs["n_epochs"] == [5, 5, 5]
        elif n_completed_before >= 5:
            n_late_bad += 1
            assert t.state == TrialState.PRUNED
            assert t.user_attrs["pruned_at"] == [0, 2]  # first epoch after the warm-up
            assert sorted(t.intermediate_values) == [2]
            assert t.user_attrs["n_epochs"][0] == 3
            assert np.isnan(t.user_attrs["n_epochs"][1:]).all()
        else:  # too early to judge: runs to the end
            assert t.state == TrialState.COMPLETE
    assert n_late_bad >= 2
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    assert len(_CALLS) == n_complete * 3 * 5 + n_late_bad * 3
    assert search.best_params_["quality"] == "good"


def test_learning_curve_pruner_compares_same_fold_and_epoch():
    from optuna.trial import create_trial

    S = STEP_STRIDE
    study = optuna.create_study(direction="maximize")
    for v in (0.8, 0.85, 0.9):
        # fold 0 curves are flat at v; fold-1 values (mean of folds 0 and 1) rise
        iv = {e: v for e in range(5)}
        iv.update({S + e: 0.3 + 0.1 * e for e in range(5)})
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=v,
                                     intermediate_values=iv))
    # a completed trial whose first fold stopped after two epochs (early stopping):
    # it counts with its last value
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5,
                                 intermediate_values={0: 0.5, 1: 0.5}))

    def running(iv):
        return create_trial(state=TrialState.RUNNING, intermediate_values=iv)

    median = LearningCurvePruner(percentile=50.0, n_startup_trials=4, n_warmup_epochs=2)
    # fold 0: median of (0.8, 0.85, 0.9, 0.5) at epoch 2 is 0.825
    assert median.prune(study, running({0: 0.2, 1: 0.3, 2: 0.82}))
    assert not median.prune(study, running({0: 0.2, 1: 0.3, 2: 0.83}))
    # the best value *in the fold* so far counts, and warm-up epochs are never pruned
    assert not median.prune(study, running({0: 0.9, 1: 0.9, 2: 0.1}))
    assert not median.prune(study, running({0: 0.1, 1: 0.1}))
    # top quarter (default): 75th percentile of (0.5, 0.8, 0.85, 0.9) is 0.8625
    top = LearningCurvePruner(n_startup_trials=4)
    assert top.prune(study, running({2: 0.86})) and not top.prune(study, running({2: 0.87}))
    # too few completed trials: no pruning
    assert not LearningCurvePruner(50.0, n_startup_trials=5).prune(study, running({2: 0.0}))
    # fold 1, epoch 2: the others had 0.5 there.  A trial that was excellent on fold 0
    # but is at 0.2 now is pruned with folds='all' (compared at the same fold and
    # epoch), never with folds='first' ...
    bad_fold1 = running({**{e: 0.95 for e in range(5)}, S: 0.1, S + 1: 0.15, S + 2: 0.2})
    assert LearningCurvePruner(50.0, 4, folds="all").prune(study, bad_fold1)
    assert not LearningCurvePruner(50.0, 4, folds="first").prune(study, bad_fold1)
    # ... and never by Optuna's percentile pruner, whose best value over all steps
    # (0.95, from fold 0) hides the bad fold
    assert not optuna.pruners.PercentilePruner(50.0, 4, 2).prune(study, bad_fold1)
    # minimising studies are judged the other way round
    low = optuna.create_study(direction="minimize")
    for v in (1.0, 2.0, 3.0):
        low.add_trial(create_trial(state=TrialState.COMPLETE, value=v,
                                   intermediate_values={e: v for e in range(4)}))
    assert LearningCurvePruner(50.0, 3).prune(low, running({2: 2.5}))
    assert not LearningCurvePruner(50.0, 3).prune(low, running({2: 1.5}))
    with pytest.raises(ValueError, match="folds"):
        LearningCurvePruner(folds="last")
    with pytest.raises(ValueError, match="percentile"):
        LearningCurvePruner(percentile=120)


def test_pruning_partial_fit_fallback_and_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), EpochSGDClassifier(max_iter=4))
    search = OptunaSearchCV(
        pipe, {"epochsgdclassifier__quality": ["good", "bad"]}, cv=2, n_trials=6,
        pruning=optuna.pruners.ThresholdPruner(lower=0.5),
        sampler=optuna.samplers.RandomSampler(seed=1), refit=False,
    ).fit(X, y)
    assert search.pruning_mode_ == "epoch_callback"
    for t in search.study_.trials:
        assert (t.state == TrialState.PRUNED) == (t.params["epochsgdclassifier__quality"] == "bad")
    sgd = SGDClassifier(max_iter=5, learning_rate="constant", eta0=0.01, random_state=0)
    search = OptunaSearchCV(
        sgd, {"eta0": FloatDistribution(1e-3, 1e-1, log=True)}, cv=2, n_trials=3,
        pruning=True, random_state=0, refit=False,
    ).fit(X, y)
    assert search.pruning_mode_ == "partial_fit"
    # the default pruner judges epochs 2.. of the first fold: only those are scored
    assert all(sorted(t.intermediate_values) == [2, 3, 4] for t in search.study_.trials)
    assert all(t.user_attrs["n_epochs"] == [5, 5] for t in search.study_.trials)
    # an Optuna pruner sees every epoch of every fold
    search = OptunaSearchCV(
        sgd, {"eta0": FloatDistribution(1e-3, 1e-1, log=True)}, cv=2, n_trials=2,
        pruning=optuna.pruners.MedianPruner(), random_state=0, refit=False,
    ).fit(X, y)
    assert all(len(t.intermediate_values) == 2 * 5 for t in search.study_.trials)
    with pytest.warns(UserWarning, match="will not be pruned"):
        OptunaSearchCV(LogisticRegression(max_iter=50), {"C": [0.1, 1.0]}, cv=2,
                       n_trials=1, pruning=True, refit=False).fit(X, y)


class _Interrupt(EpochSGDClassifier):
    """Raises KeyboardInterrupt on its n-th fit in this process."""

    budget = [0]

    def fit(self, X, y, epoch_callback=None):
        _Interrupt.budget[0] -= 1
        if _Interrupt.budget[0] < 0:
            raise KeyboardInterrupt
        return super().fit(X, y, epoch_callback=epoch_callback)


def test_interrupted_search_resumes_from_sqlite(tmp_path, digits):
    X, y = digits
    url = f"sqlite:///{tmp_path / 'study.db'}"
    kw = dict(param_distributions={"eta0": FloatDistribution(1e-3, 1e-1, log=True)},
              cv=2, n_trials=6, storage=url, study_name="resume", random_state=0)
    _Interrupt.budget[0] = 3 * 2 + 1  # three trials of two folds, then stop
    with pytest.raises(KeyboardInterrupt):
        OptunaSearchCV(_Interrupt(max_iter=2), **kw).fit(X, y)
    study = optuna.load_study(study_name="resume", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    _Interrupt.budget[0] = 10**6
    search = OptunaSearchCV(_Interrupt(max_iter=2), **kw).fit(X, y)
    assert search.n_trials_ == 3  # only the missing ones
    assert len(search.cv_results_["params"]) == 6
    states = [t.state for t in search.study_.trials]
    assert states.count(TrialState.COMPLETE) == 6
    # clone/pickle keep working with a storage object as parameter
    s2 = clone(OptunaSearchCV(EpochSGDClassifier(), storage=optuna.storages.RDBStorage(url)))
    assert isinstance(s2.storage, optuna.storages.RDBStorage)


class _Slow(SGDClassifier):
    """SGDClassifier whose fit takes at least ``delay`` seconds."""

    delay = 0.15

    def fit(self, X, y, **kw):
        time.sleep(self.delay)
        return super().fit(X, y, **kw)


def _worker_main(url, n, mode, delay, seed):
    # runs in a forked child: the parent's imports are reused (no start-up cost)
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    storage = (optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=30)
               if mode == "heartbeat" else url)
    _Slow.delay = delay
    OptunaSearchCV(_Slow(max_iter=5, tol=None),
                   {"alpha": FloatDistribution(1e-5, 1e-1, log=True)}, cv=2, n_trials=n,
                   storage=storage, study_name="shared", random_state=seed,
                   refit=False).fit(X, y)


def _worker(tmp_path, url, n, *args):
    optuna.storages.RDBStorage(url)  # create the schema before anyone races for it
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_worker_main, args=(url, n, *args), daemon=True)
    proc.start()
    return proc


def _wait_for(url, predicate, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.is_alive():
        time.sleep(0.1)
        try:
            trials = optuna.load_study(study_name="shared", storage=url).trials
        except KeyError:  # study not created yet
            continue
        if predicate(trials):
            return trials
    raise AssertionError(f"worker did not get there (exit code {proc.exitcode})")


@pytest.mark.skipif(sys.platform == "win32", reason="uses fork")
def test_two_processes_share_one_study(tmp_path, digits):
    # worker 1 is a subprocess, worker 2 this process, both with heartbeats
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    n = 8
    proc = _worker(tmp_path, url, n, "heartbeat", 0.15, 1)
    _wait_for(url, lambda ts: any(t.state == TrialState.RUNNING for t in ts), proc)
    X, y = digits
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=30)

    mine = OptunaSearchCV(_Slow(max_iter=5, tol=None),
                          {"alpha": FloatDistribution(1e-5, 1e-1, log=True)}, cv=2,
                          n_trials=n, storage=storage, study_name="shared",
                          random_state=2, refit=False).fit(X, y)
    proc.join(timeout=120)
    assert proc.exitcode == 0
    trials = optuna.load_study(study_name="shared", storage=url).trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n
    assert 1 <= mine.n_trials_ < n  # both workers contributed
    # anything beyond the budget was given back as a failed "surplus" trial
    assert all(t.user_attrs.get("surplus") for t in trials if t.state != TrialState.COMPLETE)


@pytest.mark.skipif(sys.platform == "win32", reason="uses fork")
def test_killed_process_resumes(tmp_path, digits):
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    proc = _worker(tmp_path, url, 8, "plain", 0.3, 0)
    _wait_for(url, lambda ts: sum(t.state == TrialState.COMPLETE for t in ts) >= 2, proc)
    proc.kill()  # SIGKILL: the running trial stays RUNNING in the database
    proc.join()
    done = sum(t.state == TrialState.COMPLETE
               for t in optuna.load_study(study_name="shared", storage=url).trials)
    X, y = digits
    search = OptunaSearchCV(
        SGDClassifier(max_iter=5, tol=None),
        {"alpha": FloatDistribution(1e-5, 1e-1, log=True)}, cv=2, n_trials=8,
        storage=url, study_name="shared", refit=False).fit(X, y)
    assert 2 <= done < 8
    assert search.n_trials_ == 8 - done  # the killed RUNNING trial is not counted
    assert sum(s == "COMPLETE" for s in search.cv_results_["state"]) == 8


def test_loky_and_dask_backends(digits):
    X, y = digits
    kw = dict(param_distributions={"eta0": FloatDistribution(1e-3, 1e-1, log=True)},
              cv=2, n_trials=4, random_state=0, refit=False)
    seq = OptunaSearchCV(SGDClassifier(max_iter=5, learning_rate="constant",
                                       tol=None, random_state=0), **kw).fit(X, y)
    par = OptunaSearchCV(SGDClassifier(max_iter=5, learning_rate="constant", tol=None,
                                       random_state=0), n_jobs=2, **kw).fit(X, y)
    # batches of one trial (two folds on two workers): same sampling order
    np.testing.assert_allclose(par.cv_results_["mean_test_score"],
                               seq.cv_results_["mean_test_score"])
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed not installed (extra 'distributed')")
    from joblib import parallel_config

    # processes=False: in-process workers; spawning worker processes costs
    # several seconds on the 2-core CI machine and needs the test module importable
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with parallel_config(backend="dask"):
            search = OptunaSearchCV(
                EpochSGDClassifier(max_iter=3),
                {"quality": ["good", "bad"]}, cv=2, n_trials=4,
                pruning=optuna.pruners.ThresholdPruner(lower=0.5),
                sampler=optuna.samplers.RandomSampler(seed=0), refit=False,
            ).fit(X, y)
        assert len(client.scheduler_info()["workers"]) == 2
    assert search.best_params_["quality"] == "good"
    assert "PRUNED" in list(search.cv_results_["state"])


def test_default_search_space_dispatch(digits):
    surrogate = pytest.importorskip("sklearn_snn.surrogate")
    est = surrogate.SurrogateSNNClassifier()
    space = default_search_space(est)
    # the estimator owns its space: the function only finds it
    assert space == surrogate.SurrogateSNNClassifier.default_search_space()
    assert {"neuron", "tau_mem", "tau_syn", "threshold", "surrogate", "surrogate_slope",
            "hidden_layer_sizes", "learning_rate_init", "n_steps", "encoder",
            "alpha"} == set(space)
    # tau_syn acts through the synaptic current of cuba neurons: both are searched
    assert set(space["neuron"].choices) == {"lif", "cuba"}
    pipe = Pipeline([("scale", StandardScaler()), ("snn", est)])
    assert set(default_search_space(pipe)) == {f"snn__{k}" for k in space}
    nested = Pipeline([("scale", StandardScaler()), ("inner", Pipeline([("snn", est)]))])
    assert set(default_search_space(nested)) == {f"inner__snn__{k}" for k in space}
    with pytest.raises(ValueError, match="Pass param_distributions"):
        default_search_space(LogisticRegression())
    with pytest.raises(ValueError, match="Pass param_distributions"):
        default_search_space(make_pipeline(StandardScaler(), LogisticRegression()))
    with pytest.raises(ValueError, match="Pass param_distributions"):
        OptunaSearchCV(LogisticRegression()).fit(*load_iris(return_X_y=True))

    # any estimator class may declare its space; the search uses it when given none
    class Declares(EpochSGDClassifier):
        @classmethod
        def default_search_space(cls):
            return {"eta0": FloatDistribution(1e-3, 1e-1, log=True)}

    X, y = digits
    search = OptunaSearchCV(Declares(max_iter=2), cv=2, n_trials=2, random_state=0,
                            refit=False).fit(X[:200], y[:200])
    assert set(search.best_params_) == {"eta0"}
    search = OptunaSearchCV(make_pipeline(StandardScaler(), Declares(max_iter=2)), cv=2,
                            n_trials=2, random_state=0, refit=False).fit(X[:200], y[:200])
    assert set(search.best_params_) == {"declares__eta0"}

    # a declared space naming a parameter the estimator lacks is refused, not filtered away
    class Wrong(EpochSGDClassifier):
        @classmethod
        def default_search_space(cls):
            return {"eta0": FloatDistribution(1e-3, 1e-1), "tau_mem": FloatDistribution(2.0, 40.0)}

    with pytest.raises(ValueError, match=r"names \['tau_mem'\], which are not parameters"):
        default_search_space(Wrong())
    with pytest.raises(ValueError, match="not parameters"):
        default_search_space(make_pipeline(StandardScaler(), Wrong()))


def test_tuple_choices_are_decoded(digits):
    X, y = digits

    class Widths(EpochSGDClassifier):
        def __init__(self, max_iter=2, eta0=0.01, alpha=1e-4, quality="good",
                     hidden_layer_sizes=(8,)):
            super().__init__(max_iter, eta0, alpha, quality)
            self.hidden_layer_sizes = hidden_layer_sizes

        def fit(self, X, y, epoch_callback=None):
            assert isinstance(self.hidden_layer_sizes, tuple)
            return super().fit(X, y, epoch_callback)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Optuna warning about tuple choices
        search = OptunaSearchCV(Widths(), {"hidden_layer_sizes": [(8,), (16, 8)]},
                                cv=2, n_trials=2, random_state=0).fit(X, y)
    assert search.best_params_["hidden_layer_sizes"] in [(8,), (16, 8)]
    assert isinstance(search.cv_results_["params"][0]["hidden_layer_sizes"], tuple)


def test_errors_and_limit_torch_threads(digits):
    X, y = digits
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with limit_torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="never ends"):
        OptunaSearchCV(LogisticRegression(), {"C": [1.0]}, n_trials=None).fit(X, y)
    bad = OptunaSearchCV(SGDClassifier(), {"alpha": [-1.0]}, cv=2, n_trials=1)
    with pytest.warns(RuntimeWarning, match="fit failed"):
        with pytest.raises(ValueError, match="No trial of the study completed"):
            bad.fit(X, y)


def test_real_surrogate_estimator_default_space_and_cli(tmp_path, digits, capsys):
    surrogate = pytest.importorskip("sklearn_snn.surrogate")
    X, y = digits
    est = surrogate.SurrogateSNNClassifier(max_iter=2, random_state=0, torch_num_threads=1)
    search = OptunaSearchCV(est, cv=2, n_trials=2, random_state=0, refit=False,
                            pruning=LearningCurvePruner(n_warmup_epochs=1)).fit(X[:120], y[:120])
    assert search.pruning_mode_ == "epoch_callback"
    assert set(search.best_params_) == set(default_search_space(est))
    assert isinstance(search.best_params_["hidden_layer_sizes"], tuple)
    # past one warm-up epoch, only epoch 1 of the first fold is scored and reported
    for t in search.study_.trials:
        assert sorted(t.intermediate_values) == [1]
        assert t.user_attrs["n_epochs"] == [2, 2]

    import argparse
    import json

    from sklearn_snn._cli_tune import add_tune_parser

    parser = argparse.ArgumentParser()
    add_tune_parser(parser.add_subparsers(dest="command"))
    argv = ["tune", "digits", "--n-trials", "2", "--cv", "2", "--max-iter", "1",
            "--n-samples", "100", "--storage", f"sqlite:///{tmp_path / 'cli.db'}",
            "--torch-num-threads", "1", "--verbose", "0"]
    args = parser.parse_args(argv)
    args.func(args)
    first = json.loads(capsys.readouterr().out)
    assert first["trials_this_run"] == 2 and first["finished_trials"] == 2
    args.func(parser.parse_args(argv))  # same command again: the study is complete
    again = json.loads(capsys.readouterr().out)
    assert again["trials_this_run"] == 0 and again["best_score"] == first["best_score"]


def test_pruning_a_converted_snn_skips_the_epochs_before_conversion():
    # ConvertedSNN reports epochs while its ANN trains, before there is a spiking network to
    # score: those epochs are not scored (they used to fail every trial with NotFittedError)
    from sklearn_snn import ConvertedSNN

    X, y = load_iris(return_X_y=True)
    search = OptunaSearchCV(
        ConvertedSNN(max_iter=5, n_steps=20, random_state=0),
        {"n_steps": optuna.distributions.IntDistribution(10, 30)},
        n_trials=2, cv=2, pruning=True, random_state=0, error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    assert [t.state for t in search.study_.trials] == [TrialState.COMPLETE] * 2
    assert search.best_score_ > 0.5
