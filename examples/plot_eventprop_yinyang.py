"""
=======================================
Exact gradients: EventProp on Yin-Yang
=======================================

:class:`~sklearn_snn.eventprop.EventPropClassifier` simulates a current-based LIF network in
continuous time and computes exact gradients through spike times with EventProp (Wunderlich &
Pehle 2021). Yin-Yang (Kriener et al. 2021) is the small task the method is usually shown on:
each of the 4 features becomes one input spike (larger values earlier) and the class is the
output neuron that fires first.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_snn.datasets import make_yinyang
from sklearn_snn.plotting import LossCurveDisplay, SpikeRasterDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
try:
    from sklearn_snn.eventprop import EventPropClassifier
except ImportError as exc:  # not in this version of the package
    EventPropClassifier = None
    print(f"Skipping this example: EventPropClassifier is not available ({exc}).")

# %%
if EventPropClassifier is not None:
    X_train, y_train = make_yinyang(150 if QUICK else 1500, random_state=0)
    X_test, y_test = make_yinyang(100 if QUICK else 500, random_state=1)
    clf = EventPropClassifier(hidden_layer_sizes=(20 if QUICK else 60,), n_steps=25 if QUICK else 50,
                              dt=1.0 if QUICK else 0.5, max_iter=2 if QUICK else 15, random_state=0)
    clf.fit(X_train, y_train)
    print(f"test accuracy: {clf.score(X_test, y_test):.3f} (chance: 0.33)")

# %%
# Predictions over the plane
if EventPropClassifier is not None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    pred = clf.predict(X_test)
    ax.scatter(X_test[:, 0], X_test[:, 1], c=pred, cmap="viridis", s=12)
    ax.scatter(*X_test[pred != y_test, :2].T, facecolors="none", edgecolors="red", s=40, label="error")
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    plt.show()

# %%
# Few spikes do the work: hidden and output spikes of one sample (the output neuron that fires
# first gives the class)
if EventPropClassifier is not None:
    SpikeRasterDisplay.from_estimator(clf, X_test, sample=0)
    plt.show()
    sim = clf.simulate(X_test)
    print("spikes per sample (hidden, output):", np.round(sim["n_spikes"].mean(0), 1))
    LossCurveDisplay.from_estimator(clf)
    plt.show()
