"""
==========================================
An SNN in a Pipeline under GridSearchCV
==========================================

SNN estimators follow scikit-learn's contract, so they compose: here a PCA feeds a spiking
classifier and :class:`~sklearn.model_selection.GridSearchCV` tunes both.
"""

# %%
import os
import warnings

import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.metrics import spike_stats

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
if QUICK:
    X, y = X[:240], y[:240]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

pipe = Pipeline([
    ("pca", PCA(random_state=0)),
    ("snn", SurrogateSNNClassifier((32,), max_iter=2 if QUICK else 15, random_state=0)),
])
grid = {
    "pca__n_components": [16, 32],
    "snn__n_steps": [4, 10],
}
search = GridSearchCV(pipe, grid, cv=2 if QUICK else 3, n_jobs=1).fit(X_train, y_train)

# %%
results = pd.DataFrame(search.cv_results_)[["param_pca__n_components", "param_snn__n_steps",
                                            "mean_test_score", "mean_fit_time"]]
print(results.sort_values("mean_test_score", ascending=False).to_string(index=False))
print("best:", search.best_params_, f"test accuracy {search.score(X_test, y_test):.3f}")

# %%
# The metrics take the whole search too: the data goes through the PCA first
stats = spike_stats(search, X_test)
print(f"{stats.total_spikes:.1f} spikes and {stats.total_synops:.0f} synaptic operations per sample")
