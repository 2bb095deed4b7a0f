"""Hypergradient learning rates against a tuned grid of fixed learning rates.

For each data set (digits, wine, breast cancer, a random-manifold spike-timing task), one split
into train / validation / test (60/20/20, stratified):

- ``grid``: ``solver='adam'`` at each learning rate of a small grid, the one with the best
  validation accuracy, its test accuracy, and the time of the whole grid;
- ``adam-hd`` / ``sgd-hd``: one fit from the default initial learning rate (the rate adapts
  online by hypergradient descent, Baydin et al. 2018), its test accuracy and time;
- ``adam@default``: one fit of plain Adam at the estimator's default learning rate.

Writes ``hypergradient.json`` and ``hypergradient.md`` to ``--out`` (default ``benchmarks/out/``).
Times are wall-clock on the machine that runs it (compare ratios within one run).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/hypergradient.py --quick
    OMP_NUM_THREADS=1 python benchmarks/hypergradient.py            # more epochs, 3 seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman

GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def datasets():
    X, y = make_randman(n_samples=600, n_classes=5, n_units=20, n_steps=30, random_state=0)
    return {"digits": load_digits(return_X_y=True), "wine": load_wine(return_X_y=True),
            "breast_cancer": load_breast_cancer(return_X_y=True), "randman": (X, y)}


def _fit(X, y, seed, max_iter, **kw):
    clf = SurrogateSNNClassifier(hidden_layer_sizes=(64,), max_iter=max_iter, random_state=seed, **kw)
    t0 = time.perf_counter()
    clf.fit(X, y)
    return clf, time.perf_counter() - t0


def run(name, X, y, seed, max_iter):
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    Xtr, Xva, ytr, yva = train_test_split(Xtr, ytr, test_size=0.25, stratify=ytr, random_state=seed)
    row = {"data": name, "seed": seed}
    best, grid_s = None, 0.0
    for lr in GRID:
        clf, s = _fit(Xtr, ytr, seed, max_iter, learning_rate_init=lr)
        grid_s += s
        val = clf.score(Xva, yva)
        if best is None or val > best[0]:
            best = (val, lr, clf.score(Xte, yte))
    row["grid"] = {"best_lr": best[1], "test": best[2], "time_s": grid_s}
    default_lr = SurrogateSNNClassifier().learning_rate_init
    for solver in ("adam", "adam-hd", "sgd-hd"):
        clf, s = _fit(Xtr, ytr, seed, max_iter, solver=solver, learning_rate_init=default_lr)
        key = "adam@default" if solver == "adam" else solver
        row[key] = {"test": clf.score(Xte, yte), "time_s": s}
    print(f"[{name} seed {seed}] grid {row['grid']['test']:.3f} (lr {best[1]:g}, {grid_s:.1f}s) | "
          + " | ".join(f"{k} {row[k]['test']:.3f} ({row[k]['time_s']:.1f}s)" for k in ("adam@default", "adam-hd",
                                                                                     "sgd-hd")), flush=True)
    return row


def markdown(rows, max_iter):
    lines = [f"# Hypergradient learning rates vs a tuned grid ({max_iter} epochs, hidden 64, test accuracy)", "",
             f"Grid: Adam at lr in {list(GRID)}, best on a validation split; the others start at lr 2e-3.", "",
             "| data | grid (best lr) | grid time | adam@default | adam-hd | sgd-hd | one fit time (adam-hd) |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["data"] for r in rows):
        rs = [r for r in rows if r["data"] == name]
        m = lambda k, f="test": np.mean([r[k][f] for r in rs])  # noqa: E731
        lrs = ",".join(f"{r['grid']['best_lr']:g}" for r in rs)
        lines.append(f"| {name} | {m('grid'):.3f} ({lrs}) | {m('grid', 'time_s'):.1f}s | {m('adam@default'):.3f} | "
                     f"{m('adam-hd'):.3f} | {m('sgd-hd'):.3f} | {m('adam-hd', 'time_s'):.1f}s |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 epochs, one seed")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    max_iter, seeds = (20, (0,)) if args.quick else (50, (0, 1, 2))
    rows = [run(name, X, y, seed, max_iter) for name, (X, y) in datasets().items() for seed in seeds]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hypergradient.json").write_text(json.dumps({"max_iter": max_iter, "grid": GRID, "rows": rows}, indent=1))
    md = markdown(rows, max_iter)
    (out / "hypergradient.md").write_text(md)
    print(md)
    print("reproduce: OMP_NUM_THREADS=1 python benchmarks/hypergradient.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
