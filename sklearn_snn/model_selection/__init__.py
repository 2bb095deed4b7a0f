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

:func:`default_search_space` finds the Optuna distributions each SNN estimator
declares for its important parameters (the classmethod
``default_search_space()`` of its class), so ``OptunaSearchCV(est)`` works
without a space.  :func:`limit_torch_threads` keeps torch from oversubscribing cores
when many searches or folds run side by side.

The package is split by job: ``_spaces`` (default search spaces, coding of choices),
``_workers`` (torch threads, Dask worker plugin), ``_pruning`` (:class:`LearningCurvePruner`),
``_evaluate`` (fit and score one candidate on some folds), ``_storage`` (storage strings,
heartbeats) and ``_search`` (:class:`OptunaSearchCV`).  Everything public is importable from
here.
"""

# The objective, the fold loop and the pruning bridge are ours; the sampler,
# pruner and storage are Optuna's.  Nothing here imports torch at module level.

from ._pruning import STEP_STRIDE, LearningCurvePruner
from ._search import OptunaSearchCV
from ._spaces import decode_params, default_search_space, prepare_search_space
from ._workers import TorchThreadsPlugin, limit_torch_threads

__all__ = [
    "STEP_STRIDE",
    "LearningCurvePruner",
    "OptunaSearchCV",
    "TorchThreadsPlugin",
    "decode_params",
    "default_search_space",
    "limit_torch_threads",
    "prepare_search_space",
]
