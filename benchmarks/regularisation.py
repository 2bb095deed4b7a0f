"""Rate regularisation: accuracy vs mean hidden firing rate for a sweep of the spike-count penalty.

Run: ``python benchmarks/regularisation.py [--quick] [--out benchmarks/out]`` -- prints a markdown
table and writes ``regularisation.png``.
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.metrics import spike_stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args()
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    penalties = [0.0, 0.01, 0.05, 0.2] if args.quick else [0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    rows = []
    for lam in penalties:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = SurrogateSNNClassifier(spike_l2=lam, max_iter=20 if args.quick else 100, random_state=0)
            clf.fit(Xtr, ytr)
        st = spike_stats(clf, Xte)
        rows.append((lam, clf.score(Xte, yte), float(st.mean_firing_rate), float(st.total_synops),
                     time.perf_counter() - t0))
        print(f"spike_l2={lam:<6g} accuracy {rows[-1][1]:.4f}  mean rate {rows[-1][2]:.4f}  "
              f"SynOps/sample {rows[-1][3]:.0f}  ({rows[-1][4]:.1f}s)", flush=True)
    print("\n| spike_l2 | test accuracy | mean hidden firing rate (spikes/neuron/step) | SynOps per sample |")
    print("| --- | --- | --- | --- |")
    for lam, acc, rate, syn, _ in rows:
        print(f"| {lam:g} | {acc:.4f} | {rate:.4f} | {syn:.0f} |")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    os.makedirs(args.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    r = np.array(rows)
    ax.plot(r[:, 2], r[:, 1], "o-")
    for lam, acc, rate, _, _ in rows:
        ax.annotate(f"{lam:g}", (rate, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("mean hidden firing rate (spikes / neuron / step)")
    ax.set_ylabel("test accuracy (digits)")
    ax.set_title("spike-count penalty sweep (labels: spike_l2)")
    fig.tight_layout()
    path = os.path.join(args.out, "regularisation.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
