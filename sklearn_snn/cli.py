"""The ``sklearn-snn`` command (also ``python -m sklearn_snn``).

``sklearn-snn benchmark [--quick] [--out DIR]`` cross-validates every SNN estimator of the package
next to classical scikit-learn models on shipped or generated data (digits; a random-manifold
spike task; Yin-Yang),
prints a table and writes ``report.md`` and ``benchmark.png`` into the output folder.

``sklearn-snn benchmark --data PATH [--target COLUMN] [--models ...] [--cv K] [--search N] ...``
does the same on the user's data (a CSV / Parquet table, ``.npz`` / ``.npy`` arrays, 3D spikes, event
data or an SHD/SSC HDF5 file): a thin layer over :func:`sklearn_snn.benchmark.compare` and
:func:`sklearn_snn.benchmark.write_report` (``report.md``, ``report.html``, ``results.csv``, plots).
Bad data (missing file, unknown column, non-numeric features, a single class, too few samples per
class for the folds, unknown model names) is refused before any training, with exit status 2.

``sklearn-snn tune ...`` runs an Optuna search (see ``sklearn-snn tune --help``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

# --- argument checks -------------------------------------------------------------------------------
# Both sub-commands can run for hours and only write their results at the very end, so every
# argument that would make them fail late (a bad number, an output path that cannot be written) is
# refused while parsing: argparse then prints the usage and a one-line ``error:`` and exits with
# status 2, before any data is loaded, any model is trained or any folder is created. The helpers
# are argparse ``type`` callables (so ``--help`` and the errors read the same for every option);
# ``_cli_tune`` imports them from here (this module imports ``_cli_tune`` only inside ``main``).


def int_at_least(minimum):
    """An argparse ``type`` that accepts integers no smaller than ``minimum``.

    Parameters
    ----------
    minimum : int
        The smallest accepted value.

    Returns
    -------
    parse : callable
        ``parse(text) -> int``; raises :class:`argparse.ArgumentTypeError` (argparse turns it into
        ``error: argument --opt: ...`` and exit status 2) for text that is not an integer or is too
        small.

    Examples
    --------
    >>> int_at_least(2)("5")
    5
    """
    def parse(text):
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def nonzero_int(text):
    """An argparse ``type`` for ``--n-jobs``: any integer but 0 (joblib's convention, -1 = all cores)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a nonzero integer, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must not be 0 (use 1 for one job, -1 for all cores)")
    return value


def positive_float(text):
    """An argparse ``type`` for a finite number > 0 (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (0 < value < float("inf")):  # also false for nan
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r} "
                                         "(leave the option out for no limit)")
    return value


def _writable(path):
    return os.access(path, os.W_OK | os.X_OK) if os.path.isdir(path) else os.access(path, os.W_OK)


def check_output_dir(path, files=("report.md", "benchmark.png")):
    """Raise ``ValueError`` unless ``path`` is, or can become, a folder to write ``files`` into.

    Nothing is created: for a folder that does not exist yet, the nearest existing parent must be a
    writable folder (``os.makedirs`` will create the rest).
    """
    if not path:
        raise ValueError("the output folder must not be empty; pass a folder path")
    if os.path.isdir(path):
        for name in files:
            target = os.path.join(path, name)
            if os.path.isdir(target):
                raise ValueError(f"{target!r} is a folder, so {name} cannot be written; remove or rename it, "
                                 "or choose another output folder")
            if os.path.lexists(target) and not _writable(target):
                raise ValueError(f"{target!r} exists and is not writable; fix its permissions or choose "
                                 "another output folder")
        if not _writable(path):
            raise ValueError(f"folder {path!r} is not writable; choose another output folder")
        return
    if os.path.lexists(path):
        raise ValueError(f"{path!r} exists and is not a folder (a file or a broken link); "
                         "remove it or choose another output folder")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"cannot create folder {path!r}: {parent!r} is not a folder; "
                         "choose another output folder")
    if not _writable(parent):
        raise ValueError(f"cannot create folder {path!r}: {parent!r} is not writable; "
                         "choose another output folder")


def check_output_file(path):
    """Raise ``ValueError`` unless the file ``path`` can be written (its folder must exist already)."""
    if not path:
        raise ValueError("the output file must not be empty; pass a file path")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder; pass a file path such as "
                         f"{os.path.join(path, 'best.json')!r}")
    parent = os.path.dirname(path) or os.curdir
    if not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise ValueError(f"{parent!r} is not a folder, so {path!r} cannot be written there; "
                             "choose another output file")
        raise ValueError(f"folder {parent!r} does not exist; create it first (mkdir -p {parent}) "
                         "or choose another output file")
    if os.path.lexists(path):
        if not _writable(path):
            raise ValueError(f"{path!r} exists and is not writable; fix its permissions or choose "
                             "another output file")
    elif not _writable(parent):
        raise ValueError(f"folder {parent!r} is not writable; choose another output file")


def _as_type(check, name):
    """Turn a ``check_*`` function into an argparse ``type`` that returns the path unchanged."""
    def parse(text):
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    parse.__name__ = name
    return parse


output_dir = _as_type(check_output_dir, "output folder")
output_file = _as_type(check_output_file, "output file")


def _snn_models(quick):
    """(name, factory, input kinds) for every SNN estimator of the package."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    from sklearn_snn import (
        ConvertedSNN,
        EventPropClassifier,
        EvolvedSNN,
        STDPTransformer,
        SurrogateSNNClassifier,
    )

    e = 10 if quick else 60
    models = []

    def add(name, klass, kinds, **kw):
        models.append((name, lambda: klass(**kw), kinds))

    add("SurrogateSNN", SurrogateSNNClassifier, {"2d", "yinyang"}, max_iter=e, random_state=0)
    # spike-timing input: a current-based synapse integrates the input spikes (see doc/benchmarks.rst)
    add("SurrogateSNN-cuba", SurrogateSNNClassifier, {"3d"}, max_iter=e, neuron="cuba", tau_syn=10.0, random_state=0)
    add("SurrogateSNN-recurrent", SurrogateSNNClassifier, {"3d"}, max_iter=e, neuron="cuba", tau_syn=10.0,
        recurrent=True, grad_clip=1.0, random_state=0)
    add("EventProp", EventPropClassifier, {"yinyang"}, max_iter=5 if quick else 10, random_state=0)
    add("ConvertedSNN", ConvertedSNN, {"2d"}, random_state=0)
    add("EvolvedSNN", EvolvedSNN, {"2d"}, max_iter=20 if quick else 150, random_state=0)
    models.append(("STDP+LogReg", lambda: make_pipeline(
        MinMaxScaler(), STDPTransformer(**({"n_components": 50, "max_iter": 1} if quick else {}), random_state=0),
        LogisticRegression(max_iter=1000)), {"2d"}))
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

    if folds is None:
        folds = 2 if quick else 5
    # checked before any work: a bad value used to fail only after the folder was made and the
    # data loaded (folds=1), or to be replaced silently by the default (folds=0)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    check_output_dir(out)  # else the report would fail to be written after the whole run
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


# --- the benchmark on the user's data (--data) -----------------------------------------------------

_DATA_OPTIONS = (("--target", "target"), ("--models", "models"), ("--search", "search"), ("--n-jobs", "n_jobs"),
                 ("--time-budget", "time_budget"), ("--seed", "seed"), ("--n-steps", "n_steps"))


def prepare_data_benchmark(args):
    """Load and check the data and the choices of ``sklearn-snn benchmark --data``; no training.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``benchmark`` arguments (``data`` set).

    Returns
    -------
    job : dict
        Keyword arguments of :func:`run_data_benchmark`.

    Raises
    ------
    ValueError
        Missing or unreadable file, unknown column (the columns are listed), non-numeric features,
        a single class, too few samples per class for the folds, unknown model names (the valid
        ones are listed), or an output folder that cannot take the report.
    """
    from sklearn_snn.benchmark import REPORT_FILES, check_data, load_data, select_models

    check_output_dir(args.out, REPORT_FILES)
    try:
        import pandas  # noqa: F401  (tables, the results frame and results.csv)
    except ImportError:
        raise ValueError("--data needs pandas (tables, the results frame): pip install pandas") from None
    folds = args.folds if args.folds is not None else (2 if args.quick else 5)
    search = args.search or 0
    X, y, info = load_data(args.data, args.target, n_steps=args.n_steps)
    check_data(X, y, cv=folds, search=search, feature_names=info.feature_names)
    models = None if args.models is None else [n for item in args.models for n in item.split(",") if n.strip()]
    specs = select_models(X.ndim, models)
    command = "sklearn-snn benchmark " + " ".join(
        f"{opt} {' '.join(v) if isinstance(v, list) else v}" for opt, v in
        (("--data", args.data), ("--target", args.target), ("--models", args.models), ("--cv", args.folds),
         ("--search", args.search), ("--n-jobs", args.n_jobs), ("--time-budget", args.time_budget),
         ("--seed", args.seed), ("--n-steps", args.n_steps), ("--out", args.out)) if v is not None)
    return {"X": X, "y": y, "info": info, "models": [m.name for m in specs], "cv": folds, "search": search,
            "n_jobs": args.n_jobs, "time_budget": args.time_budget,
            "random_state": 0 if args.seed is None else args.seed, "quick": True if args.quick else None,
            "out": args.out, "command": command + (" --quick" if args.quick else "")}


def run_data_benchmark(X, y, info, models, cv, search, n_jobs, time_budget, random_state, quick, out, command,
                       log=print):
    """Run :func:`sklearn_snn.benchmark.compare` and write the report; returns the results frame."""
    from sklearn_snn.benchmark import compare, write_report

    log(f"data: {info.source} ({info.description})")
    results = compare(X, y, models=models, cv=cv, search=search, n_jobs=n_jobs, time_budget=time_budget,
                      random_state=random_state, progress=log, quick=quick)
    n_classes = len(np.unique(np.asarray(y)))
    meta = {"command": command, "data": f"{info.source}: {info.description}, shape {tuple(X.shape)}, "
            f"{n_classes} classes",
            "evaluation": f"{cv}-fold stratified cross-validation (shuffled, seed {random_state}); "
            "accuracy with the 95% Student-t interval of the mean over folds"
            + (f"; every model tuned by {search} Optuna trials inside each training fold" if search else
               "; default parameters")
            + (f"; time budget {time_budget:g} s per model" if time_budget else ""),
            "timing": "fit and predict seconds per fold on this machine"}
    if results.attrs.get("quick"):
        meta["mode"] = "quick: a few epochs per model, a smoke test of the pipeline, not a benchmark"
    write_report(results, out, meta=meta, log=log)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sklearn-snn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("benchmark",
                       help="cross-validate SNN and classical models on shipped data, or on yours with --data")
    b.add_argument("--quick", action="store_true",
                   help="few epochs (and small shipped data): a smoke test in about a minute")
    b.add_argument("--out", default="sklearn_snn_report", type=output_dir,
                   help="output folder for report.md and the plot (with --data also report.html, results.csv and "
                   "three plots), created if needed (default %(default)s)")
    b.add_argument("--folds", "--cv", dest="folds", type=int_at_least(2), default=None,
                   help="cross-validation folds, at least 2 (default 2 with --quick, else 5)")
    d = b.add_argument_group("benchmark on your own data (the options below need --data)")
    d.add_argument("--data", default=None, metavar="PATH",
                   help="benchmark on this file instead of the shipped data: .csv/.tsv/.parquet table, .npz "
                   "(X, y; or events t, channel, sample, y), .npy (X; labels via --target), a folder with "
                   "X.npy and y.npy, or an SHD/SSC .h5 file")
    d.add_argument("--target", default=None, metavar="COLUMN",
                   help="label column of a table (default: the last column); for .npy data the labels file")
    d.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="models to run (names or 'snn' / 'classical', space- or comma-separated; "
                   "default: every model that fits the data's shape)")
    d.add_argument("--search", type=int_at_least(0), default=None, metavar="N",
                   help="tune every model with N Optuna trials inside each training fold (nested CV; default 0)")
    d.add_argument("--n-jobs", type=nonzero_int, default=None, help="folds run in parallel; -1: all cores")
    d.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS",
                   help="seconds per model, folds and search together (default: no limit)")
    d.add_argument("--seed", type=int, default=None, help="seeds the folds, models and search (default 0)")
    d.add_argument("--n-steps", type=int_at_least(1), default=None,
                   help="time steps when binning event or HDF5 spike data (default 100 for events)")
    try:
        from ._cli_tune import add_tune_parser
    except ImportError:
        add_tune_parser = None
    if add_tune_parser is not None:
        add_tune_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "benchmark":
        if args.data is None:
            given = [opt for opt, dest in _DATA_OPTIONS if getattr(args, dest) is not None]
            if given:
                b.error(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} only with --data PATH "
                        "(your own data); the shipped-data benchmark takes --quick, --folds/--cv and --out")
            run_benchmark(quick=args.quick, out=args.out, folds=args.folds)
            return 0
        try:  # everything that can be refused is refused here, before any training
            job = prepare_data_benchmark(args)
        except (ValueError, OSError) as exc:  # OSError: a file that exists but cannot be read
            b.error(str(exc))
        run_data_benchmark(**job)
        return 0
    if args.command == "tune":
        from ._cli_tune import run_tune

        return run_tune(args) or 0
    parser.error(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
