"""
==========================================
Exporting a trained SNN to NIR and back
==========================================

NIR, the Neuromorphic Intermediate Representation, is the exchange format of neuromorphic
simulators and chips. :func:`sklearn_snn.nir.to_nir` writes a fitted
:class:`~sklearn_snn.SurrogateSNNClassifier` as a NIR graph (time constants in seconds, for a
step ``dt``) and :func:`sklearn_snn.nir.from_nir` reads a graph back as a fitted estimator. Here a
network trained on the digits is exported to a ``.nir`` file, read back, and the two spike rasters
are compared; snnTorch runs the same file when it is installed.
"""

# %%
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
try:
    import nir

    from sklearn_snn.nir import from_nir, to_nir
except ImportError as exc:
    nir = None
    print(f"Skipping this example: the 'nir' package is not installed ({exc}); pip install 'sklearn-snn[nir]'.")

# %%
# Train with ``reset='zero'``: NIR's neurons reset to zero, so every NIR tool then sees the same
# spikes (a subtractive reset is exported too, with a warning, and only this package honours it).
if nir is not None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    clf = SurrogateSNNClassifier((64,), n_steps=10, reset="zero", max_iter=3 if QUICK else 30,
                                 random_state=0).fit(X_train, y_train)
    path = Path(tempfile.mkdtemp()) / "digits.nir"
    graph = to_nir(clf, dt=1e-3, path=path)
    print("nodes:", {name: type(node).__name__ for name, node in graph.nodes.items()})
    tau = float(graph.nodes["hidden_0_neuron"].tau[0])
    # Euler time constant: beta = 1 - dt / tau per step, the package's beta = exp(-1 / tau_steps)
    tau_steps = -1.0 / np.log(1.0 - 1e-3 / tau)
    print(f"membrane time constant: {tau_steps:.1f} steps -> tau = {tau * 1e3:.3f} ms at dt = 1 ms")

    reloaded = from_nir(path)
    same = all(np.array_equal(a, b) for a, b in
               zip(clf.simulate(X_test)["spikes"], reloaded.simulate(X_test)["spikes"]))
    print(f"test accuracy: trained {clf.score(X_test, y_test):.3f}, reloaded {reloaded.score(X_test, y_test):.3f}; "
          f"identical spikes: {same}")

# %%
# The spike rasters of one test digit, before and after the round trip through the file.
if nir is not None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, est, title in ((axes[0], clf, "trained"), (axes[1], reloaded, "read back from NIR")):
        spikes = est.simulate(X_test[:1])["spikes"][0][0]  # (n_steps, n_units) of hidden layer 0
        t, unit = np.nonzero(spikes)
        ax.scatter(t, unit, marker="|", color="black")
        ax.set(title=title, xlabel="time step")
    axes[0].set_ylabel("hidden neuron")
    plt.tight_layout()
    plt.show()

# %%
# The same file in snnTorch: its importer assumes ``dt = 1e-4`` s and has no leaky-integrator
# node, so export a spike-count readout with that ``dt``.
if nir is not None:
    try:
        import torch
        from snntorch.import_nir import import_from_nir
    except ImportError:
        print("snnTorch is not installed: the cross-simulator check is skipped.")
    else:
        counting = SurrogateSNNClassifier((64,), n_steps=10, reset="zero", readout="spike_count",
                                          max_iter=3 if QUICK else 30, random_state=0).fit(X_train, y_train)
        net = import_from_nir(to_nir(counting, dt=1e-4))
        outs = []
        with torch.no_grad():
            for _ in range(counting.n_steps):
                out = net(torch.tensor(X_test, dtype=torch.float32))
                outs.append((out[0] if isinstance(out, tuple) else out).clone())
        counts = torch.stack(outs, 1).sum(1).numpy()
        agree = np.mean(counting.classes_[np.argmax(counts, axis=1)] == counting.predict(X_test))
        print(f"snnTorch and sklearn-snn agree on {agree:.1%} of the test labels")
