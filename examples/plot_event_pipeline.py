"""
=======================================================
From event streams to a tuned spiking classifier
=======================================================

Event-based data (neuromorphic audio such as the Spiking Heidelberg Digits, DVS cameras, your own
sensor) comes as one variable-length list of ``(time, channel)`` events per recording. This
example walks the whole way:

1. events from :func:`~sklearn_snn.datasets.make_randman_events` (a spike-timing task: the
   classes differ only in *when* each channel fires);
2. :class:`~sklearn_snn.preprocessing.EventBinner` bins them on one time grid into
   ``(n_samples, n_steps, n_channels)`` uint8 spikes;
3. a :class:`~sklearn_snn.SurrogateSNNClassifier` learns from the spikes, in one
   :class:`~sklearn.pipeline.Pipeline` with the binner;
4. :class:`~sklearn.model_selection.GridSearchCV` tunes the time resolution ``bin_width``;
5. a spike raster shows the network's activity on a test recording.

SHD and SSC files from disk go through :func:`~sklearn_snn.datasets.load_spike_hdf5`
(``return_events=True`` gives this same event form).
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman_events
from sklearn_snn.plotting import SpikeRasterDisplay
from sklearn_snn.preprocessing import EventBinner

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# 1 s recordings; spike times on a 10 ms resolution, 20 channels, 4 classes
events, y = make_randman_events(n_samples=120 if QUICK else 600, n_classes=4, n_units=20, n_steps=100,
                                duration=1.0, random_state=0)
ev_train, ev_test, y_train, y_test = train_test_split(events, y, stratify=y, random_state=0)
print(f"{len(events)} recordings; the first holds {events[0].size} events, fields {events[0].dtype.names}")

# %%
# The raw events of one recording
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.scatter(events[0]["t"], events[0]["channel"], s=8, marker="|")
ax.set(xlabel="time (s)", ylabel="channel", title=f"events of recording 0 (class {y[0]})")
plt.show()

# %%
# The pipeline: bin on a grid over [0, 1 s), then a spiking network. Coarse bins blur the
# timing that separates the classes, fine bins make longer sequences: search ``bin_width``.
pipe = Pipeline([
    ("bin", EventBinner(bin_width=0.02, duration=1.0)),
    ("snn", SurrogateSNNClassifier((64,), neuron="cuba", tau_mem=10.0, tau_syn=5.0, learning_rate_init=5e-3,
                                   max_iter=5 if QUICK else 40, random_state=0)),
])
search = GridSearchCV(pipe, {"bin__bin_width": [0.02, 0.05] if QUICK else [0.01, 0.02, 0.05, 0.1]}, cv=3)
search.fit(ev_train, y_train)
for width, score in zip(search.cv_results_["param_bin__bin_width"], search.cv_results_["mean_test_score"]):
    print(f"bin_width={width:5.2f} s -> {round(1.0 / width):3d} steps: CV accuracy {score:.3f}")
print(f"best {search.best_params_}; test accuracy {search.score(ev_test, y_test):.3f}")

# %%
# What the tuned network does with one test recording: the binned input and the hidden spikes
best = search.best_estimator_
X_test = best["bin"].transform(ev_test)
print("binned test set:", X_test.shape, X_test.dtype)
SpikeRasterDisplay.from_estimator(best["snn"], X_test, sample=0)
plt.suptitle(f"test recording 0: class {y_test[0]}, predicted {best.predict(ev_test[:1])[0]}")
plt.show()

# %%
# The binned spikes are uint8 (one byte per step and channel) and stay so until each minibatch
# reaches the network; the same holds for a memory-mapped file (see the user guide page
# "Spike and event data"). Bin counts above 1 mean several events fell into one step:
print("largest count in a bin:", int(np.max(X_test)))
