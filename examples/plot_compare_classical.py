"""
==========================================
SNNs against classical models, with energy
==========================================

Accuracy, training time and an energy estimate per prediction for spiking and classical models
on the digits. For networks the energy counts synaptic arithmetic only, with 45 nm figures
(Horowitz 2014: a 32-bit float MAC 4.6 pJ, an addition 0.9 pJ; see
:mod:`sklearn_snn.metrics`); a random forest does no multiply-accumulates, so it has no entry.
Timings depend on the machine. EventProp is left out: it is made for spike-timing tasks (see
:ref:`sphx_glr_auto_examples_plot_eventprop_yinyang.py`), not for 64 dense pixel features.
"""

# %%
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_snn import ConvertedSNN, SurrogateSNNClassifier
from sklearn_snn.metrics import ENERGY_PER_OP, ann_macs, spike_stats

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X / 16.0
if QUICK:
    X, y = X[:300], y[:300]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
epochs = 3 if QUICK else 30

models = {
    "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "random forest": RandomForestClassifier(n_estimators=20 if QUICK else 200, random_state=0),
    "MLP (64)": make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=epochs * 5, random_state=0)),
    "SNN surrogate (64)": SurrogateSNNClassifier((64,), n_steps=8, max_iter=epochs, random_state=0),
    "SNN rate-coded (64)": SurrogateSNNClassifier((64,), n_steps=8, encoder="rate", max_iter=epochs,
                                                  random_state=0),
    "SNN converted (64)": ConvertedSNN(hidden_layer_sizes=(64,), activation="qcfs", n_steps=8,
                                       max_iter=epochs * 3, random_state=0),
}
rows = []
for name, model in models.items():
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
    fit_time = time.perf_counter() - t0
    row = {"model": name, "accuracy": model.score(X_test, y_test), "fit time (s)": fit_time}
    if name.startswith("SNN"):
        stats = spike_stats(model, X_test)
        row.update({"spikes": stats.total_spikes, "SynOps": stats.total_synops,
                    "MACs": np.nansum(stats.snn_macs), "energy (nJ)": stats.snn_energy * 1e9})
    elif name.startswith("MLP"):
        macs = ann_macs(model)
        row.update({"MACs": macs, "energy (nJ)": macs * ENERGY_PER_OP["mac"] * 1e9})
    elif name.startswith("logistic"):
        macs = model[-1].coef_.size
        row.update({"MACs": macs, "energy (nJ)": macs * ENERGY_PER_OP["mac"] * 1e9})
    rows.append(row)

table = pd.DataFrame(rows).set_index("model")
print(table.to_string(float_format=lambda v: f"{v:.3g}"))

# %%
fig, ax = plt.subplots()
has_e = table["energy (nJ)"].notna()
ax.scatter(table.loc[has_e, "energy (nJ)"], table.loc[has_e, "accuracy"])
for name, r in table[has_e].iterrows():
    ax.annotate(name, (r["energy (nJ)"], r["accuracy"]), fontsize=8)
ax.set_xscale("log")
ax.set_xlabel("estimated energy per prediction (nJ, synaptic arithmetic only)")
ax.set_ylabel("test accuracy")
plt.show()
