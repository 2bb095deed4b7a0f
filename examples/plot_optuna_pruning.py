"""
=============================================
Hyperparameter search with Optuna and pruning
=============================================

:class:`~sklearn_snn.model_selection.OptunaSearchCV` runs an Optuna study through scikit-learn
cross-validation. With ``pruning=True`` the SNN reports its validation score after every epoch
(through the ``epoch_callback`` hook of the gradient estimators) and the pruner stops trials that
trail the top quarter of the completed trials on the first fold, so the budget goes to promising
settings.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
try:
    from sklearn_snn.model_selection import OptunaSearchCV
except ImportError as exc:
    OptunaSearchCV = None
    print(f"Skipping this example: OptunaSearchCV is not available ({exc}).")

# %%
if OptunaSearchCV is not None:
    X, y = load_digits(return_X_y=True)
    X, y = (X[:200], y[:200]) if QUICK else (X[:1000], y[:1000])
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    space = {
        "learning_rate_init": FloatDistribution(1e-4, 3e-2, log=True),
        "n_steps": IntDistribution(2, 12),
        "surrogate": CategoricalDistribution(["fast_sigmoid", "arctan", "triangle"]),
        "tau_mem": FloatDistribution(2.0, 20.0, log=True),
    }
    search = OptunaSearchCV(
        SurrogateSNNClassifier((32,), max_iter=3 if QUICK else 12, random_state=0), space,
        cv=2 if QUICK else 3, n_trials=4 if QUICK else 25, pruning=True, random_state=0,
    ).fit(X_train, y_train)
    states = list(search.cv_results_["state"])
    print(f"{states.count('COMPLETE')} trials completed, {states.count('PRUNED')} pruned")
    print("best parameters:", search.best_params_)
    print(f"best CV accuracy {search.best_score_:.3f}, test accuracy {search.score(X_test, y_test):.3f}")

# %%
# Every trial's intermediate values (validation accuracy on the first fold, per epoch after the warm-up)
if OptunaSearchCV is not None:
    fig, ax = plt.subplots()
    for trial in search.study_.trials:
        values = trial.intermediate_values
        if values:
            keys = sorted(values)
            style = "--" if trial.state == optuna.trial.TrialState.PRUNED else "-"
            ax.plot(keys, [values[k] for k in keys], style, lw=1)
    ax.set_xlabel("epoch of the first fold")
    ax.set_ylabel("validation accuracy")
    ax.set_title("dashed: pruned trials")
    plt.show()
