"""Benchmarks of OptunaSearchCV (issue 7).

1. Pruning: on sklearn digits, the same 30-trial TPE search of
   SurrogateSNNClassifier over the default search space, with per-epoch
   pruning (MedianPruner) and without.  Prints both best CV scores, their
   difference in points and the wall-time ratio (target: within 0.5 points in
   <= 60 % of the time).
2. Default space: SurrogateSNNClassifier on make_randman, its defaults vs the
   best configuration found in the default search space (held-out accuracy).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/search.py            # full (tens of minutes on 2 cores)
    OMP_NUM_THREADS=1 python benchmarks/search.py --quick    # a few minutes
    python benchmarks/search.py --part pruning --n-jobs 4

Timings on a shared machine are noisy; both searches of part 1 run in the same
process one after the other with the same seed and threads.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.model_selection import OptunaSearchCV, default_search_space


def _search(est, X, y, *, n_trials, cv, pruning, seed, n_jobs):
    t0 = time.perf_counter()
    search = OptunaSearchCV(est, cv=cv, n_trials=n_trials, pruning=pruning,
                            random_state=seed, n_jobs=n_jobs, refit=False).fit(X, y)
    return search, time.perf_counter() - t0


def _epochs(search):
    return int(sum(e for row in search.cv_results_["n_epochs"] for e in row if e == e))


PRUNERS = {
    # stop a trial that is below the median of the finished trials at the same fold/epoch
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    # keep only trials in the top quarter at each fold/epoch
    "top25": lambda: optuna.pruners.PercentilePruner(75.0, n_startup_trials=5,
                                                     n_warmup_steps=1),
}


def bench_pruning(quick, n_jobs, seed=0, pruner="median"):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    if quick:
        X, y = X[:600], y[:600]
    n_trials = 12 if quick else 30
    cv = 2 if quick else 3
    max_iter = 4 if quick else 10
    est = SurrogateSNNClassifier(max_iter=max_iter, random_state=seed, torch_num_threads=1)
    print(f"\n[1] digits {X.shape}, {n_trials} trials, cv={cv}, max_iter={max_iter}, "
          f"default search space ({len(default_search_space(est))} parameters), "
          f"pruner {pruner}")
    pruner = PRUNERS[pruner]()
    plain, t_plain = _search(est, X, y, n_trials=n_trials, cv=cv, pruning=False,
                             seed=seed, n_jobs=n_jobs)
    pruned, t_pruned = _search(est, X, y, n_trials=n_trials, cv=cv, pruning=pruner,
                               seed=seed, n_jobs=n_jobs)
    n_pruned = list(pruned.cv_results_["state"]).count("PRUNED")
    diff = 100 * (pruned.best_score_ - plain.best_score_)
    ratio = t_pruned / t_plain
    print(f"{'search':<12}{'best CV acc':>12}{'wall s':>9}{'pruned':>8}{'epochs':>8}")
    print(f"{'no pruning':<12}{plain.best_score_:>12.4f}{t_plain:>9.1f}{0:>8d}"
          f"{_epochs(plain):>8d}")
    print(f"{'pruning':<12}{pruned.best_score_:>12.4f}{t_pruned:>9.1f}{n_pruned:>8d}"
          f"{_epochs(pruned):>8d}")
    print(f"best score difference (pruning - none): {diff:+.2f} points "
          f"(target >= -0.5: {'met' if diff >= -0.5 else 'NOT met'})")
    print(f"wall-time ratio pruning/none: {ratio:.2f} "
          f"(target <= 0.60: {'met' if ratio <= 0.6 else 'NOT met'})")
    return {"plain": plain.best_score_, "pruned": pruned.best_score_, "ratio": ratio}


def bench_default_space(quick, n_jobs, seed=0):
    try:
        from sklearn_snn.datasets import make_randman
    except ImportError as exc:
        print(f"\n[2] skipped: sklearn_snn.datasets.make_randman not available ({exc})")
        return None
    X, y = make_randman(n_samples=600 if quick else 1500, random_state=seed)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y,
                                              random_state=seed)
    max_iter = 10 if quick else 30
    n_trials = 10 if quick else 30
    est = SurrogateSNNClassifier(max_iter=max_iter, random_state=seed, torch_num_threads=1)
    print(f"\n[2] make_randman X_train {X_tr.shape}, max_iter={max_iter}, {n_trials} trials")
    t0 = time.perf_counter()
    cv_default = cross_val_score(est, X_tr, y_tr, cv=3).mean()
    test_default = est.fit(X_tr, y_tr).score(X_te, y_te)
    t_default = time.perf_counter() - t0
    t0 = time.perf_counter()
    search = OptunaSearchCV(est, cv=3, n_trials=n_trials, pruning=True, random_state=seed,
                            n_jobs=n_jobs).fit(X_tr, y_tr)
    t_search = time.perf_counter() - t0
    print(f"{'':<10}{'CV acc':>8}{'test acc':>10}{'wall s':>9}")
    print(f"{'defaults':<10}{cv_default:>8.4f}{test_default:>10.4f}{t_default:>9.1f}")
    print(f"{'tuned':<10}{search.best_score_:>8.4f}{search.score(X_te, y_te):>10.4f}"
          f"{t_search:>9.1f}")
    print("best parameters:", search.best_params_)
    return {"default": test_default, "tuned": search.score(X_te, y_te)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings, minutes")
    parser.add_argument("--part", choices=["pruning", "randman", "all"], default="all")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruner", choices=sorted(PRUNERS), default="median")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    np.random.seed(args.seed)
    if args.part in ("pruning", "all"):
        bench_pruning(args.quick, args.n_jobs, args.seed, args.pruner)
    if args.part in ("randman", "all"):
        bench_default_space(args.quick, args.n_jobs, args.seed)


if __name__ == "__main__":
    main()
