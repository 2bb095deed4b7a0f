"""
========================================
ANN-to-SNN conversion: accuracy vs steps
========================================

:class:`~sklearn_snn.ConvertedSNN` trains (or takes) a ReLU network and runs it as an
integrate-and-fire SNN: firing rates approximate the ReLU activations, better with more time
steps. QCFS activations (Bu et al. 2022) train the ANN for the quantised rates the SNN can
express, so the SNN is accurate after a few steps.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import ConvertedSNN
from sklearn_snn.metrics import spike_stats
from sklearn_snn.plotting import StepsCurveDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X / 16.0
if QUICK:
    X, y = X[:400], y[:400]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
steps = [1, 2, 4, 8, 16, 32] if QUICK else [1, 2, 4, 8, 16, 32, 64, 128]

fig, ax = plt.subplots()
models = {}
for activation in ("relu", "qcfs"):
    clf = ConvertedSNN(hidden_layer_sizes=(128,), activation=activation, n_steps=8,
                       max_iter=10 if QUICK else 100, learning_rate_init=3e-3, random_state=0)
    models[activation] = clf.fit(X_train, y_train)
    disp = StepsCurveDisplay.from_estimator(clf, X_test, y_test, steps=steps, ax=ax, label=activation)
    print(f"{activation}: ANN {disp.ann_accuracy:.3f}, SNN at 8 steps {clf.score(X_test, y_test):.3f}")
ax.set_title("converted SNN accuracy")
plt.show()

# %%
# More steps cost more spikes: the price of accuracy
for n_steps in (4, 32):
    clf = models["qcfs"].set_params(n_steps=n_steps)
    stats = spike_stats(clf, X_test)
    print(f"qcfs, {n_steps:>2} steps: {stats.total_spikes:7.1f} spikes/sample, "
          f"SNN/ANN energy {1 / stats.energy_ratio:.2f}")
