"""
========================================
Learning to learn: few-shot spiking nets
========================================

:class:`~sklearn_snn.meta.MetaSNNClassifier` meta-learns, over many small spike-timing tasks,
a network from which a few gradient steps on five examples per class solve a *new* task.
Every task of :class:`~sklearn_snn.meta.RandmanTaskSampler` is a fresh random-manifold problem
(which input neuron fires when), so what carries over from task to task is how to read spike
timing, not the classes. ``meta_algorithm='protonet'`` trains the hidden layer so that a
readout built from the class means of its spike counts (the "prototypes") classifies the
query samples; ``fit`` starts from the support set's prototype readout and fine-tunes it.

We plot the query accuracy on held-out tasks (task seeds never seen in meta-training) against
the number of gradient steps, for the meta-learned start and for a plain fit of the same
network from a random initialisation.
"""

# %%
import os
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
try:
    from sklearn_snn.meta import MetaSNNClassifier, RandmanTaskSampler
except ImportError as exc:
    MetaSNNClassifier = None
    print(f"Skipping this example: sklearn_snn.meta is not available ({exc}).")

# %%
# Meta-training on one family of task seeds, testing on another.
if MetaSNNClassifier is not None:
    shape = dict(n_way=5, k_shot=5, n_query=10, n_units=20, n_steps=30)
    train_tasks = RandmanTaskSampler(**shape, task_seeds=range(10**6), random_state=0)
    test_tasks = RandmanTaskSampler(**shape, task_seeds=range(10**6, 2 * 10**6)).episodes(3 if QUICK else 20,
                                                                                         random_state=1)
    kw = dict(hidden_layer_sizes=(128,), neuron="cuba", tau_mem=6.0, tau_syn=6.0, readout="membrane_mean",
              learning_rate_init=5e-3, random_state=0)
    n_steps = 5 if QUICK else 40
    meta = MetaSNNClassifier(**kw, meta_algorithm="protonet", n_meta_iter=5 if QUICK else 400, meta_lr=3e-3,
                             n_adapt_steps=n_steps)
    meta.meta_fit(train_tasks)

    def curve(make, ep):
        """Query accuracy after every gradient step of ``fit`` (one step per epoch here)."""
        acc = []
        make().fit(ep.X_support, ep.y_support,
                   epoch_callback=lambda est, epoch, info: acc.append(est.score(ep.X_query, ep.y_query)))
        return acc

    meta_curves = np.array([curve(lambda: meta, ep) for ep in test_tasks])
    plain_curves = np.array([curve(lambda: MetaSNNClassifier(**kw, max_iter=n_steps), ep) for ep in test_tasks])
    print(f"after {n_steps} steps: meta-learned start {meta_curves[:, -1].mean():.3f}, "
          f"plain fit {plain_curves[:, -1].mean():.3f}")

# %%
if MetaSNNClassifier is not None:
    import matplotlib.pyplot as plt

    steps = np.arange(1, n_steps + 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for curves, label in ((meta_curves, "meta-learned start (protonet)"), (plain_curves, "plain fit")):
        m = curves.mean(0)
        h = 1.96 * curves.std(0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else 0 * m
        ax.plot(steps, m, label=label)
        ax.fill_between(steps, m - h, m + h, alpha=0.2)
    ax.axhline(1 / 5, color="gray", ls=":", label="chance")
    ax.set_xlabel("gradient steps on the support set (25 samples)")
    ax.set_ylabel("query accuracy, held-out tasks")
    ax.set_title("5-way 5-shot random-manifold spike-timing tasks")
    ax.legend()
    fig.tight_layout()
    plt.show()
