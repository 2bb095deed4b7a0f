"""``sklearn-snn tune``: an Optuna search from the command line.

The main CLI wires it in with::

    sub = parser.add_subparsers(dest="command")
    add_tune_parser(sub)            # sets func=run_tune on the sub-parser
    args = parser.parse_args(); args.func(args)

The study goes to ``sqlite:///sklearn_snn_tune.db`` by default, so running the
same command again resumes it (only the missing trials run) and several
shells running it share the work.
"""

from __future__ import annotations

import json

# argument checks shared with ``sklearn-snn benchmark``; cli.py imports this module only inside
# its main(), so importing from it here makes no import cycle
from sklearn_snn.cli import (
    check_output_file,
    int_at_least,
    nonzero_int,
    output_file,
    positive_float,
)

DATASETS = ("digits", "randman", "yinyang")
DEFAULT_STORAGE = "sqlite:///sklearn_snn_tune.db"


def load_dataset(name, n_samples=None, random_state=0):
    """Return ``(X, y)`` for one of :data:`DATASETS` (nothing is downloaded)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        if n_samples is not None:
            X, y = X[:n_samples], y[:n_samples]
        return X, y
    n = 1000 if n_samples is None else n_samples
    if name == "randman":
        from sklearn_snn.datasets import make_randman

        return make_randman(n_samples=n, random_state=random_state)
    if name == "yinyang":
        try:
            from sklearn_snn.datasets import make_yinyang
        except ImportError:  # before datasets.py re-exports it
            from sklearn_snn._yinyang import make_yinyang
        return make_yinyang(n_samples=n, random_state=random_state)
    raise ValueError(f"Unknown dataset {name!r}; use one of {DATASETS}.")


def make_estimator(name, **params):
    """An estimator of the package by class name, e.g. ``SurrogateSNNClassifier``."""
    import sklearn_snn

    cls = getattr(sklearn_snn, name, None)
    if cls is None or not isinstance(cls, type):
        names = [n for n in getattr(sklearn_snn, "__all__", []) if n[:1].isupper()]
        raise ValueError(f"Unknown estimator {name!r}; available: {', '.join(names)}.")
    return cls(**params)


def add_tune_parser(subparsers):
    """Add the ``tune`` sub-command to an ``argparse`` sub-parser collection.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.

    Returns
    -------
    parser : argparse.ArgumentParser
        The ``tune`` parser (its ``func`` default is :func:`run_tune`).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="sklearn-snn")
    >>> _ = add_tune_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["tune", "digits", "--n-trials", "3"])
    >>> args.dataset, args.n_trials, args.storage
    ('digits', 3, 'sqlite:///sklearn_snn_tune.db')
    """
    p = subparsers.add_parser(
        "tune",
        help="Optuna search of an SNN estimator on a shipped data set",
        description="Tune an estimator with OptunaSearchCV. The study is stored "
        "(SQLite by default): rerun the command to resume it, or run it in several "
        "shells to share the trials.",
    )
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--estimator", default="SurrogateSNNClassifier",
                   help="estimator class name in sklearn_snn (default %(default)s)")
    # every number is checked while parsing (exit status 2, nothing created, no training), so a
    # typo cannot start a search that fails, or silently does nothing, only after a long wait
    p.add_argument("--n-trials", type=int_at_least(1), default=30, help="at least 1 (default %(default)s)")
    p.add_argument("--timeout", type=positive_float, default=None, help="seconds, > 0 (default: no limit)")
    p.add_argument("--cv", type=int_at_least(2), default=3, help="folds, at least 2 (default %(default)s)")
    p.add_argument("--scoring", default=None)
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help="database URL, journal file (*.log) or 'memory' "
                   "(default %(default)s)")
    p.add_argument("--study-name", default=None,
                   help="default: <estimator>-<dataset>")
    p.add_argument("--no-pruning", dest="pruning", action="store_false",
                   help="evaluate every trial to the end")
    p.add_argument("--max-iter", type=int_at_least(1), default=20,
                   help="epochs per fit, at least 1 (default %(default)s)")
    p.add_argument("--n-samples", type=int_at_least(1), default=None, help="at least 1 (default: all)")
    p.add_argument("--n-jobs", type=nonzero_int, default=None, help="parallel trials; -1: all cores")
    p.add_argument("--torch-num-threads", type=int_at_least(1), default=None, help="at least 1")
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1)
    # checked up front: the JSON report is written only after the whole search
    p.add_argument("--output", type=output_file, default=None,
                   help="write best params and score as JSON to this file (its folder must exist)")
    p.set_defaults(func=run_tune)
    return p


def run_tune(args):
    """Run the search described by ``args`` (from :func:`add_tune_parser`).

    Returns
    -------
    status : int
        0 (the exit status); the report is printed as JSON and, with
        ``--output``, written to a file.

    Raises
    ------
    ValueError
        If ``args.output`` cannot be written (checked before the search,
        which would otherwise fail only once it is over).
    """
    if args.output:  # again here for a namespace not made by the parser; before any work
        check_output_file(args.output)
    from sklearn_snn.model_selection import OptunaSearchCV

    X, y = load_dataset(args.dataset, args.n_samples, args.random_state)
    params = {"max_iter": args.max_iter, "random_state": args.random_state}
    if args.torch_num_threads is not None:
        params["torch_num_threads"] = args.torch_num_threads
    est = make_estimator(args.estimator)
    est.set_params(**{k: v for k, v in params.items() if k in est.get_params()})
    storage = None if args.storage in ("memory", "", None) else args.storage
    study_name = args.study_name or f"{args.estimator}-{args.dataset}"
    search = OptunaSearchCV(
        est, cv=args.cv, scoring=args.scoring, n_trials=args.n_trials,
        timeout=args.timeout, n_jobs=args.n_jobs, storage=storage,
        study_name=study_name, pruning=args.pruning, random_state=args.random_state,
        refit=False, verbose=args.verbose,
    ).fit(X, y)
    states = list(search.cv_results_["state"])
    report = {
        "study_name": study_name,
        "storage": storage or "memory",
        "trials_this_run": search.n_trials_,
        "finished_trials": len(states),
        "pruned_trials": states.count("PRUNED"),
        "best_score": search.best_score_,
        "best_params": {k: list(v) if isinstance(v, tuple) else v
                        for k, v in search.best_params_.items()},
    }
    print(json.dumps(report, indent=2))
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


def main(argv=None):
    """Stand-alone entry point: ``python -m sklearn_snn._cli_tune digits``."""
    import argparse

    parser = argparse.ArgumentParser(prog="sklearn-snn")
    add_tune_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    main()
