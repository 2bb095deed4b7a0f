"""
====================================
Evolving an SNN without gradients
====================================

:class:`~sklearn_snn.evolution.EvolvedSNN` searches the weights with an evolution strategy: a
whole population of networks is evaluated as one batched tensor program, and the fitness may be
anything, differentiable or not. Here the fitness rewards accuracy and penalises spikes.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn.metrics import spike_stats
from sklearn_snn.plotting import FitnessCurveDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
try:
    from sklearn_snn.evolution import EvolvedSNN
except ImportError as exc:
    EvolvedSNN = None
    print(f"Skipping this example: EvolvedSNN is not available ({exc}).")

# %%
if EvolvedSNN is not None:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    n_gen = 10 if QUICK else 150
    plain = EvolvedSNN((16,), max_iter=n_gen, random_state=0).fit(X_train, y_train)


    def sparse_accuracy(view, X, y):
        """Accuracy minus a small price per spike (not differentiable)."""
        return view.score(X, y) - 0.01 * view.spike_count(X).mean()


    sparse = EvolvedSNN((16,), fitness=sparse_accuracy, max_iter=n_gen, random_state=0).fit(X_train, y_train)
    for name, est in (("cross-entropy", plain), ("accuracy - spikes", sparse)):
        stats = spike_stats(est, X_test)
        print(f"{name:>18}: test accuracy {est.score(X_test, y_test):.3f}, "
              f"{stats.total_spikes:.1f} spikes per sample")

# %%
if EvolvedSNN is not None:
    fig, ax = plt.subplots()
    FitnessCurveDisplay.from_estimator(sparse, ax=ax)
    ax.set_title("fitness of the search distribution's mean")
    plt.show()
