"""ANN-to-SNN conversion benchmark on sklearn's digits (8x8 images), stratified 5-fold CV.

1. MLP (ReLU, sklearn ``MLPClassifier``) -> ``ConvertedSNN``: accuracy at n_steps = 32 against the
   ANN (target: within 0.5 points).
2. MLP trained with QCFS activations (``ConvertedSNN(activation='qcfs')``) + bias calibration at
   n_steps = 8 (target: within 2 points of the ANN).
3. A small CNN (torch: conv-BN-ReLU-maxpool-conv-BN-ReLU-avgpool-linear) -> ``ConvertedSNN`` with
   ``input_shape=(1, 8, 8)`` at n_steps = 32 (target: within 1 point).
4. Accuracy vs number of time steps for max vs percentile normalisation, with and without bias
   calibration (calibrated separately for every step count), for the MLP and the CNN: printed
   table, ``conversion_curves.csv`` and ``conversion_curves.png`` in ``--out``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/conversion.py            # full: 5 folds
    OMP_NUM_THREADS=1 python benchmarks/conversion.py --quick    # 2 folds, shorter training
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from torch import nn

from sklearn_snn._core.training import TrainConfig, new_state, run_epochs
from sklearn_snn.conversion import ConvertedSNN

STEPS = [1, 2, 4, 8, 16, 32, 64, 128]
VARIANTS = [("max", None), ("max", "bias"), ("percentile", None), ("percentile", "bias")]


def small_cnn(seed):
    torch.manual_seed(seed)  # benchmark script: the global seed only sets torch's default init
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 2 * 2, 10),
    )


def train_cnn(X, y, epochs, seed):
    net = small_cnn(seed)
    cfg = TrainConfig(max_iter=epochs, batch_size=64, learning_rate_init=3e-3, alpha=1e-4, n_iter_no_change=epochs)
    xt, yt = torch.tensor(X, dtype=torch.float32).reshape(-1, 1, 8, 8), torch.tensor(y)

    def step(module, xb, yb, wb):
        loss = nn.functional.cross_entropy(module(xb), yb)
        loss.backward()
        return float(loss.detach()), 0.0

    run_epochs(net, new_state(net, cfg), xt, yt, step, cfg, epochs, generator=torch.Generator().manual_seed(seed))
    return net.eval()


def curve_variants(ann, Xtr, ytr, Xte, yte, steps, **kw):
    """Accuracy per step count for each (normalisation, calibration); calibrated at each count."""
    out = {}
    for norm, cal in VARIANTS:
        if cal is None:
            est = ConvertedSNN(ann, normalization=norm, calibration=None, **kw).fit(Xtr, ytr)
            acc = est.score_curve(Xte, yte, steps).accuracy
        else:
            acc = np.array([ConvertedSNN(ann, normalization=norm, calibration=cal, n_steps=t, **kw)
                            .fit(Xtr, ytr).score_curve(Xte, yte, [t]).accuracy[0] for t in steps])
        out[f"{norm}{'+cal' if cal else ''}"] = acc
    return out


def run(n_folds, quick, out_dir):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    steps = STEPS if not quick else [1, 2, 4, 8, 16, 32, 64]
    mlp_iter, qcfs_iter, cnn_epochs = (300, 200, 30) if not quick else (150, 80, 12)
    common = dict(device="cpu", random_state=0)
    rows = {k: [] for k in ("mlp_ann", "mlp_snn32", "qcfs_ann", "qcfs_snn8", "cnn_ann", "cnn_snn32")}
    curves = {"mlp": [], "cnn": []}
    ann_acc = {"mlp": [], "cnn": []}
    rates = {}
    t0 = time.perf_counter()
    cv = StratifiedKFold(n_folds, shuffle=True, random_state=0)
    for fold, (tr, te) in enumerate(cv.split(X, y)):
        Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
        # 1. sklearn MLP (ReLU) -> SNN
        mlp = MLPClassifier((128, 64), max_iter=mlp_iter, random_state=fold).fit(Xtr, ytr)
        frozen = FrozenEstimator(mlp)
        snn = ConvertedSNN(frozen, n_steps=32, **common).fit(Xtr, ytr)
        rows["mlp_ann"].append(mlp.score(Xte, yte))
        rows["mlp_snn32"].append(snn.score(Xte, yte))
        rates["mlp"] = snn.firing_rates(Xte)
        # 2. QCFS MLP + calibration at 8 steps
        qc = ConvertedSNN(hidden_layer_sizes=(128, 64), activation="qcfs", qcfs_levels=8, n_steps=8,
                          max_iter=qcfs_iter, learning_rate_init=2e-3, **common).fit(Xtr, ytr)
        c = qc.score_curve(Xte, yte, [8])
        rows["qcfs_ann"].append(c.ann_accuracy)
        rows["qcfs_snn8"].append(c.accuracy[0])
        rates["qcfs"] = qc.firing_rates(Xte)
        # 3. torch CNN -> SNN
        cnn = train_cnn(Xtr, ytr, cnn_epochs, seed=fold)
        cs = ConvertedSNN(cnn, input_shape=(1, 8, 8), n_steps=32, **common).fit(Xtr, ytr)
        c = cs.score_curve(Xte, yte, [32])
        rows["cnn_ann"].append(c.ann_accuracy)
        rows["cnn_snn32"].append(c.accuracy[0])
        rates["cnn"] = cs.firing_rates(Xte)
        # 4. accuracy vs steps, normalisation x calibration
        curves["mlp"].append(curve_variants(frozen, Xtr, ytr, Xte, yte, steps, **common))
        curves["cnn"].append(curve_variants(cnn, Xtr, ytr, Xte, yte, steps, input_shape=(1, 8, 8), **common))
        ann_acc["mlp"].append(rows["mlp_ann"][-1])
        ann_acc["cnn"].append(rows["cnn_ann"][-1])
        print(f"fold {fold + 1}/{n_folds}: MLP {rows['mlp_ann'][-1]:.4f} -> {rows['mlp_snn32'][-1]:.4f} (T=32); "
              f"QCFS {rows['qcfs_ann'][-1]:.4f} -> {rows['qcfs_snn8'][-1]:.4f} (T=8); "
              f"CNN {rows['cnn_ann'][-1]:.4f} -> {rows['cnn_snn32'][-1]:.4f} (T=32)  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    mean = {k: float(np.mean(v)) for k, v in rows.items()}
    std = {k: float(np.std(v)) for k, v in rows.items()}
    targets = [
        ("MLP(ReLU) -> SNN, T=32", "mlp_ann", "mlp_snn32", 0.5),
        ("MLP(QCFS) + calibration, T=8", "qcfs_ann", "qcfs_snn8", 2.0),
        ("MLP(QCFS) + calibration, T=8, vs the ReLU MLP", "mlp_ann", "qcfs_snn8", 2.0),
        ("CNN -> SNN, T=32", "cnn_ann", "cnn_snn32", 1.0),
    ]
    print(f"\nDigits, {n_folds}-fold CV (mean +- std of test accuracy, %)")
    print(f"{'setting':48s} {'ANN':>14s} {'SNN':>14s} {'gap':>7s} {'target':>7s}  ok")
    summary = []
    for name, a, s, tol in targets:
        gap = 100 * (mean[a] - mean[s])
        ok = gap <= tol
        summary.append({"setting": name, "ann": mean[a], "snn": mean[s], "gap_points": gap, "target": tol, "ok": ok})
        print(f"{name:48s} {100 * mean[a]:6.2f} +- {100 * std[a]:4.2f} {100 * mean[s]:6.2f} +- {100 * std[s]:4.2f} "
              f"{gap:+7.2f} {tol:7.1f}  {'yes' if ok else 'NO'}")
    print("\nFiring rates (spikes per neuron per step, last fold, test set):")
    for k, v in rates.items():
        print(f"  {k}: " + ", ".join(f"{n} {r:.3f}" for n, r in v.items()))

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["model,variant," + ",".join(f"T={t}" for t in steps) + ",ANN"]
    table = {}
    for model in ("mlp", "cnn"):
        print(f"\nAccuracy (%) vs time steps, {model.upper()} (mean over folds; '+cal' = bias calibration "
              f"at that T)")
        print(f"{'variant':16s}" + "".join(f"{t:>7d}" for t in steps) + f"{'ANN':>8s}")
        a = float(np.mean(ann_acc[model]))
        table[model] = {}
        for variant in curves[model][0]:
            acc = np.mean([c[variant] for c in curves[model]], axis=0)
            table[model][variant] = acc.tolist()
            print(f"{variant:16s}" + "".join(f"{100 * v:7.2f}" for v in acc) + f"{100 * a:8.2f}")
            lines.append(f"{model},{variant}," + ",".join(f"{v:.5f}" for v in acc) + f",{a:.5f}")
        table[model]["ann"] = a
    (out_dir / "conversion_curves.csv").write_text("\n".join(lines) + "\n")
    (out_dir / "conversion_summary.json").write_text(json.dumps(
        {"folds": n_folds, "quick": quick, "steps": steps, "summary": summary, "curves": table,
         "per_fold": rows, "firing_rates_last_fold": rates, "seconds": time.perf_counter() - t0}, indent=2))
    plot(table, steps, out_dir / "conversion_curves.png", n_folds)
    print(f"\nwrote {out_dir}/conversion_curves.csv, conversion_curves.png, conversion_summary.json "
          f"({time.perf_counter() - t0:.0f} s)")
    return summary


def plot(table, steps, path, n_folds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, model in zip(axes, ("mlp", "cnn")):
        for variant, acc in table[model].items():
            if variant == "ann":
                continue
            ax.plot(steps, 100 * np.asarray(acc), marker="o", label=variant,
                    linestyle="-" if "cal" in variant else "--")
        ax.axhline(100 * table[model]["ann"], color="k", linewidth=1, label="ANN")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("time steps")
        ax.set_title(f"{model.upper()} on digits ({n_folds}-fold CV)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_ylim(bottom=max(0, axes[0].get_ylim()[0]))
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 folds and shorter training")
    parser.add_argument("--folds", type=int, default=None, help="number of CV folds (default 5; 2 with --quick)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run(args.folds or (2 if args.quick else 5), args.quick, args.out)


if __name__ == "__main__":
    main()
