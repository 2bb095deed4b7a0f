"""
===========
Quick start
===========

A spiking neural network (SNN) is a scikit-learn estimator like any other: ``fit``,
``predict``, ``score``. This example trains :class:`~sklearn_snn.SurrogateSNNClassifier` on
the 8x8 digits, then opens the box: the training curve, the spikes of one sample, membrane
potentials, and what the network costs in synaptic operations and energy.
"""

# %%
# Train and score
# ---------------
# Features are standardised inside the estimator (``input_scaling='auto'``) and injected as a
# constant current for ``n_steps`` time steps; the class is read from the membrane of leaky
# output neurons.
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.metrics import spike_stats
from sklearn_snn.plotting import LossCurveDisplay, MembraneTraceDisplay, SpikeRasterDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"  # tiny sizes for CI
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # short runs on purpose

X, y = load_digits(return_X_y=True)
if QUICK:
    X, y = X[:300], y[:300]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

clf = SurrogateSNNClassifier(hidden_layer_sizes=(64,), n_steps=10, max_iter=3 if QUICK else 30,
                             random_state=0)
clf.fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")

# %%
# The training curve
# ------------------
LossCurveDisplay.from_estimator(clf)
plt.show()

# %%
# Spikes of one test sample
# -------------------------
# Every dot is a spike of one hidden neuron at one time step.
SpikeRasterDisplay.from_estimator(clf, X_test, sample=0)
plt.show()

# %%
# Membrane potentials
# -------------------
# The five most active hidden neurons of the same sample: the membrane integrates its input,
# crosses the threshold (dashed), spikes (dots) and is reset by subtraction.
MembraneTraceDisplay.from_estimator(clf, X_test, sample=0)
plt.show()

# %%
# Activity and cost
# -----------------
# :func:`~sklearn_snn.metrics.spike_stats` counts spikes, synaptic operations (a spike costs
# one addition per outgoing synapse) and the multiply-accumulates the equivalent ANN would do,
# and prices both with 45 nm energy figures (Horowitz 2014). The first layer receives an analog
# current, so it costs MACs in the SNN too.
stats = spike_stats(clf, X_test)
print(stats.to_frame().to_string(float_format=lambda v: f"{v:.3g}"))
print(f"\nThe SNN needs {1 / stats.energy_ratio:.2f} times the energy of the equivalent ANN.")
