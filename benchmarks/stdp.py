"""STDP and e-prop benchmarks.

1. ``make_pipeline(MinMaxScaler(), STDPTransformer(random_state=0), LogisticRegression())`` with the
   shipped defaults on sklearn's digits, 5-fold CV (target: >= 0.95 mean accuracy), against
   ``LogisticRegression`` on the raw (min-max scaled) pixels in the same run; fit times printed.
2. Accuracy against ``n_components`` (25, 100, 400): printed table, ``stdp_components.csv`` and
   ``stdp_components.png`` in ``--out``, plus ``stdp_receptive_fields.png`` (100 neurons).
3. e-prop against BPTT on ``sklearn_snn.datasets.make_randman`` with the same network, one
   feed-forward and one recurrent hidden layer of 128 LIF neurons
   (``SurrogateSNNClassifier(..., credit_assignment='eprop')`` where the estimator has that
   parameter, otherwise a subclass whose training step calls
   :func:`sklearn_snn._core.eprop.eprop_step`; target: within 3 points), and the peak memory of
   one training step at 100 and 1000 time steps for both (each measured in a fresh process as the
   rise of the peak resident set size during one step, after a 2-step warm-up; Linux only).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/stdp.py            # full
    OMP_NUM_THREADS=1 python benchmarks/stdp.py --quick    # 3 folds, smaller randman, fewer epochs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path


def _digits(args):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    from sklearn_snn.stdp import STDPTransformer, plot_receptive_fields

    X, y = load_digits(return_X_y=True)
    cv = 3 if args.quick else 5

    def run(est):
        r = cross_validate(est, X, y, cv=cv)
        return float(r["test_score"].mean()), float(r["test_score"].std()), float(r["fit_time"].mean())

    lr = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=2000))
    base = run(lr)
    print(f"\n== digits, {cv}-fold CV ==")
    print(f"LogisticRegression on pixels      : {base[0]:.4f} +- {base[1]:.4f}  (fit {base[2]:.2f} s/fold)")
    stdp = make_pipeline(MinMaxScaler(), STDPTransformer(random_state=0), LogisticRegression(max_iter=2000))
    res = run(stdp)
    print(f"MinMax + STDPTransformer() + LR   : {res[0]:.4f} +- {res[1]:.4f}  (fit {res[2]:.2f} s/fold)  "
          f"target >= 0.95: {'PASS' if res[0] >= 0.95 else 'FAIL'}")
    rows = [{"n_components": "logreg-pixels", "accuracy": base[0], "std": base[1], "fit_s": base[2]}]
    print("\nn_components | accuracy        | fit s/fold")
    for n in (25, 100, 400):
        pipe = make_pipeline(MinMaxScaler(), STDPTransformer(n_components=n, random_state=0),
                             LogisticRegression(max_iter=2000))
        acc = run(pipe) if n != 400 else res
        rows.append({"n_components": n, "accuracy": acc[0], "std": acc[1], "fit_s": acc[2]})
        print(f"{n:12d} | {acc[0]:.4f} +- {acc[1]:.4f} | {acc[2]:.2f}")
    out = Path(args.out)
    with open(out / "stdp_components.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ns = [r["n_components"] for r in rows[1:]]
    ax.errorbar(ns, [r["accuracy"] for r in rows[1:]], yerr=[r["std"] for r in rows[1:]], marker="o",
                label="STDPTransformer + LogisticRegression")
    ax.axhline(base[0], color="gray", ls="--", label="LogisticRegression on pixels")
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("n_components")
    ax.set_ylabel(f"{cv}-fold CV accuracy (digits)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "stdp_components.png", dpi=120)
    plt.close(fig)
    st = STDPTransformer(n_components=100, random_state=0).fit(MinMaxScaler().fit_transform(X))
    ax = plot_receptive_fields(st, (8, 8))
    ax.figure.savefig(out / "stdp_receptive_fields.png", dpi=120)
    plt.close(ax.figure)
    return {"logreg": base, "stdp_default": res, "components": rows}


def _eprop_estimator():
    """SurrogateSNNClassifier trained by e-prop (``credit_assignment='eprop'``)."""
    from sklearn_snn import SurrogateSNNClassifier

    return SurrogateSNNClassifier, {"credit_assignment": "eprop"}


NETS = {
    # one feed-forward hidden layer: e-prop's update is BPTT's gradient (sklearn_snn._core.eprop)
    "feed-forward LIF 128": dict(hidden_layer_sizes=(128,), recurrent=False, threshold=0.2, tau_mem=20.0,
                                 learning_rate_init=1e-2),
    # recurrent: e-prop drops the paths through W_rec
    "recurrent LIF 128": dict(hidden_layer_sizes=(128,), recurrent=True, threshold=0.2, tau_mem=20.0,
                              learning_rate_init=5e-3),
}


def _randman(args):
    from sklearn.model_selection import train_test_split

    from sklearn_snn import SurrogateSNNClassifier
    from sklearn_snn.datasets import make_randman

    n = 1000 if args.quick else 2000
    X, y = make_randman(n_samples=n, n_classes=3, n_units=30, n_steps=100, dim_manifold=1, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    epochs = 15 if args.quick else 30
    Eprop, extra = _eprop_estimator()
    print(f"\n== randman (3 classes, 30 units, 100 steps, {len(Xtr)} train / {len(Xte)} test), {epochs} epochs ==")
    out = {}
    for net_name, net in NETS.items():
        res = {}
        for name, cls, kw in (("bptt", SurrogateSNNClassifier, {}), ("eprop", Eprop, extra)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                clf = cls(max_iter=epochs, batch_size=64, random_state=0, torch_num_threads=1, **net, **kw)
                clf.fit(Xtr, ytr)
                dt = time.perf_counter() - t
            res[name] = {"accuracy": float(clf.score(Xte, yte)), "fit_s": dt}
        gap = 100 * (res["bptt"]["accuracy"] - res["eprop"]["accuracy"])
        res["gap_points"] = gap
        out[net_name] = res
        print(f"{net_name:22s}: BPTT {res['bptt']['accuracy']:.4f} ({res['bptt']['fit_s']:.0f} s) | e-prop "
              f"{res['eprop']['accuracy']:.4f} ({res['eprop']['fit_s']:.0f} s) | gap {gap:+.1f} points "
              f"(target <= 3: {'PASS' if gap <= 3 else 'FAIL'})")
    return out


def _memprobe(method, n_steps):
    """One training step (forward + backward) on a fresh process; prints the peak RSS rise (bytes)."""
    import torch
    import torch.nn.functional as F

    from sklearn_snn._core.eprop import eprop_step
    from sklearn_snn._core.network import SNN
    from sklearn_snn._core.neurons import NeuronSpec

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    net = SNN(30, (128,), 5, NeuronSpec(beta=0.95), recurrent=True, readout="membrane_max", generator=g)
    x = (torch.rand(n_steps, 64, 30, generator=g) < 0.02).float()
    y = torch.randint(0, 5, (64,), generator=g)

    def loss_fn(z):
        return F.cross_entropy(z, y)

    def step(x):
        if method == "eprop":
            eprop_step(net, x, loss_fn)
        else:
            F.cross_entropy(net(x)[0], y).backward()

    step(x[:2])  # warm-up on 2 steps: torch's lazy initialisation is not the method's memory
    net.zero_grad()

    def rss(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        return 0

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = rss("VmRSS:")
    step(x)
    print(rss("VmHWM:") - before)


def _memory(args):
    print("\n== peak memory of one training step (recurrent LIF 128, batch 64, 30 inputs; RSS rise, MiB) ==")
    print("steps |    bptt |   eprop")
    res = {}
    for T in (100, 1000):
        row = {}
        for method in ("bptt", "eprop"):
            cmd = [sys.executable, __file__, "--memprobe", method, str(T)]
            # a fixed mmap threshold returns every large block to the OS when freed, so the
            # peak RSS follows the live tensors instead of glibc's heap growth
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            row[method] = int(p.stdout.strip().splitlines()[-1]) / 2**20
        res[T] = row
        print(f"{T:5d} | {row['bptt']:7.1f} | {row['eprop']:7.1f}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--skip", nargs="*", default=[], choices=["digits", "randman", "memory"])
    ap.add_argument("--memprobe", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memprobe:
        _memprobe(args.memprobe[0], int(args.memprobe[1]))
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print("reproduce: OMP_NUM_THREADS=1 python benchmarks/stdp.py " + " ".join(sys.argv[1:] if argv is None else argv))
    import torch

    torch.set_num_threads(1)
    summary = {"quick": args.quick}
    t0 = time.perf_counter()
    if "digits" not in args.skip:
        summary["digits"] = _digits(args)
    if "randman" not in args.skip:
        summary["randman"] = _randman(args)
    if "memory" not in args.skip:
        summary["memory_mib"] = _memory(args)
    summary["total_s"] = time.perf_counter() - t0
    with open(Path(args.out) / "stdp_summary.json", "w") as f:
        json.dump(summary, f, indent=2, default=str)
    print(f"\ntotal {summary['total_s']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
