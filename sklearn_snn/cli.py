"""The ``sklearn-snn`` command (also ``python -m sklearn_snn``).

``sklearn-snn benchmark [--quick] [--out DIR]`` cross-validates every SNN estimator of the package
next to classical scikit-learn models on shipped or generated data (digits; a random-manifold
spike task; Yin-Yang),
prints a table and writes ``report.md`` and ``benchmark.png`` into the output folder.

``sklearn-snn tune ...`` runs an Optuna search (see ``sklearn-snn tune --help``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import warnings

import numpy as np


def _snn_models(quick):
    """(name, factory, input kinds) for every SNN estimator that imports."""
    e = 10 if quick else 60
    models = []

    def add(name, module, cls, kinds, **kw):
        try:
            klass = getattr(importlib.import_module(f"sklearn_snn.{module}"), cls)
        except (ImportError, AttributeError):
            return
        models.append((name, lambda: klass(**kw), kinds))

    add("SurrogateSNN", "surrogate", "SurrogateSNNClassifier", {"2d", "yinyang"}, max_iter=e, random_state=0)
    # spike-timing input: a current-based synapse integrates the input spikes (see doc/benchmarks.rst)
    add("SurrogateSNN-cuba", "surrogate", "SurrogateSNNClassifier", {"3d"}, max_iter=e, neuron="cuba",
        tau_syn=10.0, random_state=0)
    add("SurrogateSNN-recurrent", "surrogate", "SurrogateSNNClassifier", {"3d"}, max_iter=e, neuron="cuba",
        tau_syn=10.0, recurrent=True, grad_clip=1.0, random_state=0)
    add("EventProp", "eventprop", "EventPropClassifier", {"yinyang"}, max_iter=5 if quick else 10, random_state=0)
    add("ConvertedSNN", "conversion", "ConvertedSNN", {"2d"}, random_state=0)
    add("EvolvedSNN", "evolution", "EvolvedSNN", {"2d"}, max_iter=20 if quick else 150, random_state=0)
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import MinMaxScaler

        from sklearn_snn.stdp import STDPTransformer

        models.append(("STDP+LogReg", lambda: make_pipeline(
            MinMaxScaler(), STDPTransformer(**({"n_components": 50, "max_iter": 1} if quick else {}), random_state=0),
            LogisticRegression(max_iter=1000)), {"2d"}))
    except ImportError:
        pass
    return models


def _classical_models():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return [
        ("LogisticRegression", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
        ("SVC", lambda: make_pipeline(StandardScaler(), SVC())),
        ("MLPClassifier", lambda: make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=300))),
        ("RandomForest", lambda: RandomForestClassifier(random_state=0)),
    ]


def _datasets(quick):
    from sklearn.datasets import load_digits

    from sklearn_snn.datasets import make_randman, make_yinyang

    X, y = load_digits(return_X_y=True)
    n_rm = 300 if quick else 1000
    Xr, yr = make_randman(n_samples=n_rm, n_classes=5 if quick else 10, n_units=50, n_steps=30 if quick else 100,
                          random_state=0)
    if quick:
        X, y = X[:400], y[:400]
    Xy, yy = make_yinyang(300 if quick else 1500, random_state=0)
    return [("digits", X, y, "2d"), ("randman", Xr, yr, "3d"), ("yinyang", Xy, yy, "yinyang")]


def _spike_columns(est, X):
    """Mean firing rate, synaptic operations and energy per sample (SNN vs equivalent ANN), or None."""
    from sklearn_snn.metrics import spike_stats

    st = spike_stats(est, X)  # all figures are per-sample means
    return {"firing_rate": float(st.mean_firing_rate), "synops": float(st.total_synops),
            "snn_nj": float(st.snn_energy) * 1e9, "ann_nj": float(st.ann_energy) * 1e9}


def run_benchmark(quick=False, out="sklearn_snn_report", folds=None, log=print):
    """Cross-validate SNN and classical models; returns the result rows and writes the report."""
    from sklearn.model_selection import StratifiedKFold, cross_validate

    folds = folds or (2 if quick else 5)
    os.makedirs(out, exist_ok=True)
    rows = []
    snn = _snn_models(quick)
    classical = _classical_models()
    jobs = []
    for dname, X, y, kind in _datasets(quick):
        for name, make, kinds in snn:
            if kind in kinds:
                jobs.append((dname, X, y, kind, name, make, True))
        for name, make in classical:
            jobs.append((dname, X, y, kind, name, make, False))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    for i, (dname, X, y, kind, name, make, is_snn) in enumerate(jobs, 1):
        Xm = X.reshape(len(X), -1) if (X.ndim == 3 and not is_snn) else X
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cross_validate(make(), Xm, y, cv=cv, return_estimator=is_snn, return_indices=is_snn,
                                 error_score="raise")
        cols = {"firing_rate": None, "synops": None, "snn_nj": None, "ann_nj": None}
        if is_snn:
            try:
                per_fold = [_spike_columns(est, Xm[idx[:200]])
                            for est, idx in zip(res["estimator"], res["indices"]["test"])]
                cols = {k: float(np.mean([c[k] for c in per_fold])) for k in cols}
            except Exception as exc:  # a model without spike statistics must not sink the benchmark
                log(f"   (no spike statistics for {name}: {type(exc).__name__}: {exc})")
        row = {
            "dataset": dname, "model": name, "snn": is_snn,
            "accuracy": float(res["test_score"].mean()), "std": float(res["test_score"].std()),
            "fit_time": float(res["fit_time"].mean()), **cols,
        }
        rows.append(row)
        log(f"[{i}/{len(jobs)}] {dname:8s} {name:24s} acc {row['accuracy']:.4f} ± {row['std']:.4f}  "
            f"fit {row['fit_time']:.2f}s"
            + (f"  rate {row['firing_rate']:.3f}" if row["firing_rate"] is not None else "")
            + f"  ({time.perf_counter() - t0:.1f}s)")
    table = _markdown(rows, folds)
    log("\n" + table)
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(f"# sklearn-snn benchmark\n\nCommand: `sklearn-snn benchmark{' --quick' if quick else ''}`; "
                 f"{folds}-fold stratified CV (shuffled, seed 0).\n\n{table}\n")
    _plot(rows, os.path.join(out, "benchmark.png"), log)
    return rows


def _markdown(rows, folds):
    lines = ["| dataset | model | accuracy (mean ± std) | fit time per fold (s) | mean firing rate "
             "| SynOps / sample | SNN energy (nJ) | ANN energy (nJ) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']}{' (SNN)' if r['snn'] else ''} | "
                     f"{r['accuracy']:.4f} ± {r['std']:.4f} | {r['fit_time']:.2f} | {f(r['firing_rate'], '.3f')} | "
                     f"{f(r['synops'], '.0f')} | {f(r['snn_nj'], '.1f')} | {f(r['ann_nj'], '.1f')} |")
    lines.append("")
    lines.append("Energy: 45 nm estimates of Horowitz (ISSCC 2014), 0.9 pJ per accumulate (SNN synaptic "
                 "operation), 4.6 pJ per multiply-accumulate (ANN); see sklearn_snn.metrics.")
    return "\n".join(lines)


def _plot(rows, path, log):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot (pip install 'sklearn-snn[plot]').")
        return
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        rs = [r for r in rows if r["dataset"] == d]
        colors = ["tab:orange" if r["snn"] else "tab:blue" for r in rs]
        ax.barh([r["model"] for r in rs], [r["accuracy"] for r in rs], xerr=[r["std"] for r in rs], color=colors)
        ax.set_xlim(max(0.0, min(r["accuracy"] for r in rs) - 0.1), 1.0)
        ax.set_title(f"{d} (orange: SNN)")
        ax.set_xlabel("CV accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sklearn-snn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("benchmark", help="cross-validate SNN and classical models on shipped data")
    b.add_argument("--quick", action="store_true", help="small data and few epochs (under a minute)")
    b.add_argument("--out", default="sklearn_snn_report", help="output folder for report.md and the plot")
    b.add_argument("--folds", type=int, default=None)
    try:
        from ._cli_tune import add_tune_parser
    except ImportError:
        add_tune_parser = None
    if add_tune_parser is not None:
        add_tune_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "benchmark":
        run_benchmark(quick=args.quick, out=args.out, folds=args.folds)
        return 0
    if args.command == "tune":
        from ._cli_tune import run_tune

        return run_tune(args) or 0
    parser.error(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
