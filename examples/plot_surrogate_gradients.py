"""
==============================
Surrogate gradients compared
==============================

A spike is a step function of the membrane potential, whose derivative is zero almost
everywhere. Surrogate-gradient training keeps the exact step in the forward pass and replaces
its derivative by a smooth bump in the backward pass. This example draws the registered
surrogates and trains the same network with a few of them.
"""

# %%
# The shapes
# ----------
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.plotting import SurrogateDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

SurrogateDisplay.from_names(slope=5.0, show_step=True)
plt.show()

# %%
# The slope sets the sharpness: a steep surrogate is closer to the true (zero or infinite)
# derivative, a flat one passes gradient to neurons far from their threshold.
fig, ax = plt.subplots()
for slope in (1.0, 5.0, 25.0):
    SurrogateDisplay.from_names(["fast_sigmoid"], slope=slope, ax=ax)
ax.legend([f"slope={s:g}" for s in (1.0, 5.0, 25.0)])
plt.show()

# %%
# Training with different surrogates
# ----------------------------------
X, y = load_digits(return_X_y=True)
if QUICK:
    X, y = X[:300], y[:300]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
names = ["fast_sigmoid", "arctan", "triangle", "straight_through"]
scores = []
for name in names:
    clf = SurrogateSNNClassifier((64,), surrogate=name, n_steps=8, max_iter=2 if QUICK else 15,
                                 random_state=0).fit(X_train, y_train)
    scores.append(clf.score(X_test, y_test))
    print(f"{name:>16}: test accuracy {scores[-1]:.3f}")

fig, ax = plt.subplots()
ax.barh(np.arange(len(names)), scores)
ax.set_yticks(np.arange(len(names)), names)
ax.set_xlabel("test accuracy")
plt.show()
