"""Temporal tasks (#19 item 6): sequences whose class lies in the order and timing of events.

Two tasks, 25% held out (stratified), random_state=0:

- ``bumps``: a 1-D signal fed one value per step, ``X`` of shape (n, 100, 1). Each sequence holds
  an upward and a downward Gaussian bump (width 2 steps) at random times plus Gaussian noise; the
  class (4) is which bump comes first and whether the gap between them is short (4 to 15 steps)
  or long (33 to 49 steps). Nothing is tied to a position, so a model of the flattened sequence
  must learn every placement separately.
- ``randman-long``: spoken-digit-like spike patterns, :func:`sklearn_snn.datasets.make_randman`
  with 10 classes, 100 input units, 250 steps, 2-D manifolds and 2 steps of spike-time jitter.

Compared: the recurrent spiking network the docs recommend for sequences of values
(``SurrogateSNNClassifier(recurrent=True, neuron='alif', tau_mem=20.0, grad_clip=1.0)``), the
same with the default neuron (with and without ``normalization='tdbn'``), the feed-forward
defaults ``SurrogateSNNClassifier()`` (recommended for spike patterns), and a random forest and
a logistic regression on the flattened sequence.

Run: ``python benchmarks/temporal.py`` (``--quick``: fewer samples and epochs, a smoke run).
"""

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman

#: the configuration doc/user_guide/neurons.rst recommends for sequences
RECURRENT = dict(recurrent=True, neuron="alif", tau_mem=20.0, grad_clip=1.0)


def make_bumps(n_samples=1000, n_steps=100, width=2.0, noise=0.2, random_state=0):
    """Two bumps of opposite sign at random times in a noisy 1-D signal; the class is their order
    (up first or down first) times the gap between them (short or long): 4 classes.

    Returns ``X`` of shape (n_samples, n_steps, 1), float32, and ``y`` in {0, 1, 2, 3}.
    """
    rng = np.random.RandomState(random_state)
    t = np.arange(n_steps)
    y = rng.randint(0, 4, n_samples)
    long_gap = y // 2 == 1
    gap = np.where(long_gap, rng.randint(n_steps // 3, n_steps // 2, n_samples),
                   rng.randint(4, n_steps // 6, n_samples))
    t1 = (rng.rand(n_samples) * (n_steps - gap - 4)).astype(int) + 2
    t2 = t1 + gap
    bump = lambda at: np.exp(-0.5 * ((t[None] - at[:, None]) / width) ** 2)  # noqa: E731
    sign = np.where(y % 2 == 0, 1.0, -1.0)[:, None]
    X = sign * (bump(t1) - bump(t2)) + noise * rng.normal(size=(n_samples, n_steps))
    return X[:, :, None].astype(np.float32), y


def tasks(quick):
    n = 400 if quick else 1000
    yield "bumps (1-D signal, 100 steps, 4 classes)", make_bumps(n_samples=n)
    yield "randman-long (100 units, 250 steps, 10 classes)", make_randman(
        n_samples=n, n_classes=10, n_units=100, n_steps=250, dim_manifold=2, jitter=2.0, random_state=0)


def models(quick):
    it = dict(max_iter=10) if quick else {}
    return [
        ("SNN recurrent ALIF (recommended)", SurrogateSNNClassifier(**RECURRENT, **it, random_state=0), False),
        ("SNN recurrent, default neuron", SurrogateSNNClassifier(recurrent=True, grad_clip=1.0, **it,
                                                                 random_state=0), False),
        ("SNN recurrent, default neuron, tdbn", SurrogateSNNClassifier(recurrent=True, grad_clip=1.0,
                                                                       normalization="tdbn", **it,
                                                                       random_state=0), False),
        ("SNN feed-forward defaults", SurrogateSNNClassifier(**it, random_state=0), False),
        ("RandomForest (flattened)", RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1), True),
        ("LogisticRegression (flattened)", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
         True),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and epochs (smoke run)")
    args = ap.parse_args()
    print("command: python benchmarks/temporal.py" + (" --quick" if args.quick else ""), flush=True)
    print("held-out accuracy (25%, stratified), random_state=0; fit time in seconds (wall, under whatever load "
          "the machine has)", flush=True)
    for task, (X, y) in tasks(args.quick):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
        print(f"\n{task}: {len(Xtr)} training / {len(Xte)} test sequences", flush=True)
        scores = {}
        for name, est, flat in models(args.quick):
            tr, te = (Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)) if flat else (Xtr, Xte)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(tr, ytr)
            scores[name] = est.score(te, yte)
            print(f"  {name:<36} {scores[name]:.3f}   fit {time.perf_counter() - t0:6.1f} s", flush=True)
        rec, rf = scores["SNN recurrent ALIF (recommended)"], scores["RandomForest (flattened)"]
        print(f"  recurrent ALIF - random forest: {rec - rf:+.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
