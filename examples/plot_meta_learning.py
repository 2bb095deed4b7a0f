"""
========================================
Learning to learn: few-shot spiking nets
========================================

:class:`~sklearn_snn.meta.MetaSNNClassifier` meta-learns, with Reptile, an initial state of a
spiking network from many small tasks (5-way digit tasks on digits 0-5), so that a few gradient
steps on five examples per class solve a *new* task (digits 6-9 and friends it never saw in
meta-training). We compare it with the same network adapted from a random initialisation.
"""

# %%
import os
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)
try:
    from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier
except ImportError as exc:
    MetaSNNClassifier = None
    print(f"Skipping this example: sklearn_snn.meta is not available ({exc}).")

# %%
if MetaSNNClassifier is not None:
    train_tasks = FewShotTaskSampler(n_way=3, k_shot=5, n_query=5, classes=range(6), random_state=0)
    test_tasks = FewShotTaskSampler(n_way=3, k_shot=5, n_query=10, classes=range(6, 10))
    meta = MetaSNNClassifier((32,), n_steps=6, n_meta_iter=5 if QUICK else 300, n_adapt_steps=10,
                             max_iter=10, random_state=0)
    meta.meta_fit(train_tasks)

    scores_meta, scores_scratch = [], []
    for seed in range(3 if QUICK else 20):
        ep = test_tasks.sample(random_state=seed)
        scores_meta.append(meta.fit(ep.X_support, ep.y_support).score(ep.X_query, ep.y_query))
        scratch = clone(meta).fit(ep.X_support, ep.y_support)  # clone: no meta state, random init
        scores_scratch.append(scratch.score(ep.X_query, ep.y_query))
    print("3-way 5-shot on unseen digits, 10 steps of adaptation:")
    print(f"  meta-learned initialisation: {np.mean(scores_meta):.3f}")
    print(f"  random initialisation:       {np.mean(scores_scratch):.3f}")
