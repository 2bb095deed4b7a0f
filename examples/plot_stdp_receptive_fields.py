"""
====================
What STDP learned
====================

:class:`~sklearn_snn.stdp.STDPTransformer` learns without labels: spike-timing-dependent
plasticity in a winner-take-all layer with adaptive thresholds (Diehl & Cook 2015). Each neuron
comes to respond to one kind of input, and its input weights show which. The spike counts are
features for any scikit-learn classifier.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_snn.plotting import FiringRateDisplay, ReceptiveFieldDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
try:
    from sklearn_snn.stdp import STDPTransformer
except ImportError as exc:
    STDPTransformer = None
    print(f"Skipping this example: STDPTransformer is not available ({exc}).")

# %%
# Unsupervised features, then a linear read-out
if STDPTransformer is not None:
    X, y = load_digits(return_X_y=True)
    if QUICK:
        X, y = X[:300], y[:300]
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    stdp = STDPTransformer(n_components=16 if QUICK else 64, n_steps=20 if QUICK else 40,
                           max_iter=1 if QUICK else 3, random_state=0)
    model = make_pipeline(stdp, StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    print(f"STDP features + logistic regression: {model.score(X_test, y_test):.3f}")
    print(f"neurons that never fire on the test set: "
          f"{int((stdp.transform(X_test).sum(0) == 0).sum())} of {stdp.n_components}")

# %%
# The receptive fields: each neuron's input weights as an 8x8 image
if STDPTransformer is not None:
    ReceptiveFieldDisplay.from_estimator(stdp, image_shape=(8, 8), cmap="hot_r")
    plt.show()

# %%
# Homeostasis keeps the firing rates in a band, so no neuron takes over
if STDPTransformer is not None:
    FiringRateDisplay.from_estimator(stdp, X_test)
    plt.show()
