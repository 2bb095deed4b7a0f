"""
=========================================
Architecture search: accuracy vs activity
=========================================

:class:`~sklearn_snn.meta.SNNArchitectureSearch` searches neuron model, depth, widths,
recurrence, surrogate and number of steps with Optuna through cross-validation. With
``cost='synops'`` it optimises two objectives, accuracy up and synaptic operations down, and
returns the Pareto front: the networks no other network beats on both.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
import optuna
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_snn import SurrogateSNNClassifier

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
try:
    from sklearn_snn.meta import SNNArchitectureSearch
except ImportError as exc:
    SNNArchitectureSearch = None
    print(f"Skipping this example: SNNArchitectureSearch is not available ({exc}).")

# %%
if SNNArchitectureSearch is not None:
    X, y = load_digits(return_X_y=True)
    X, y = (X[:200], y[:200]) if QUICK else (X[:900], y[:900])
    search = SNNArchitectureSearch(
        SurrogateSNNClassifier(max_iter=2 if QUICK else 10), widths=(8, 16, 32), max_depth=1 if QUICK else 2,
        n_steps=(4, 8), cost="synops", n_trials=3 if QUICK else 20, cv=2, random_state=0,
    ).fit(X, y)
    for p in search.pareto_front_:
        print(f"score {p['score']:.3f}  synops {p['synops']:8.0f}  {p['params']}")

# %%
if SNNArchitectureSearch is not None:
    res = search.cv_results_
    fig, ax = plt.subplots()
    ax.scatter(res["mean_test_cost"] if "mean_test_cost" in res else [p["cost"] for p in search.pareto_front_],
               res["mean_test_score"] if "mean_test_cost" in res else [p["score"] for p in search.pareto_front_],
               s=15, label="trials")
    front = sorted(search.pareto_front_, key=lambda p: p["cost"])
    ax.plot([p["cost"] for p in front], [p["score"] for p in front], "r.-", label="Pareto front")
    ax.set_xlabel("synaptic operations per sample (cost)")
    ax.set_ylabel("cross-validated accuracy")
    ax.legend()
    plt.show()
