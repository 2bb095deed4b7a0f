"""
==========================================
Spike-timing input: random manifolds in 3D
==========================================

3D input ``(n_samples, n_steps, n_features)`` is taken as given: spike trains (or currents) over
time. :func:`~sklearn_snn.datasets.make_randman` (Zenke & Vogels 2021) makes a task where every
input neuron fires exactly once and the classes differ only in *when*: a model of spike
*counts* is at chance, a spiking network that integrates over time is not.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman
from sklearn_snn.metrics import spike_stats
from sklearn_snn.plotting import SpikeRasterDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = make_randman(n_samples=200 if QUICK else 1000, n_classes=5, n_units=20, n_steps=50, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
print("X:", X.shape, "(samples, steps, input neurons)")

# %%
# The input: one spike per neuron, at a class-dependent time
SpikeRasterDisplay.from_spikes(X[0], layer_names=["input"])
plt.show()

# %%
# Spike counts carry no information
counts = LogisticRegression(max_iter=500).fit(X_train.sum(1), y_train)
print(f"logistic regression on spike counts: {counts.score(X_test.sum(1), y_test):.3f}")

# %%
# A recurrent SNN reads the timing
snn = SurrogateSNNClassifier((64,), recurrent=True, neuron="cuba", tau_mem=10.0, tau_syn=5.0,
                             max_iter=3 if QUICK else 40, learning_rate_init=5e-3, random_state=0)
snn.fit(X_train, y_train)
print(f"SNN on spike trains: {snn.score(X_test, y_test):.3f}")

SpikeRasterDisplay.from_estimator(snn, X_test, sample=0)
plt.show()

# %%
# The input is spikes, so every synaptic event is an addition: no MACs at all
print(spike_stats(snn, X_test).to_frame()[["spikes", "synops", "snn_macs", "ann_macs"]])
