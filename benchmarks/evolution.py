"""EvolvedSNN benchmark on sklearn's digits (8x8 images).

1. Stratified k-fold CV (5 folds; 2 with ``--quick``): ``EvolvedSNN()`` with its defaults
   (OpenAI-ES; target >= 0.93 mean accuracy), then the other strategies ('cma-es', which resolves
   to separable CMA-ES for this many genes, 'snes', 'ga') with the same network and budget;
   mean accuracy and fit time per strategy.
2. Speed of the population evaluation: 64 individuals of the default network on a digits
   minibatch, as one batched program (``PopulationSNN.evaluate``, what the fitness runs; also its
   torch-ops backend) against a loop that loads each individual into an ``SNN`` and runs its
   forward (the same arithmetic); one thread, process CPU time, batched and loop repeats
   interleaved, medians, at minibatch 32 and at the default (256). Target: >= 10x. Batching
   removes the per-individual overhead of the loop, not its arithmetic (the same products and
   neuron updates): the larger the minibatch, the larger the share of the loop's time that is
   arithmetic, and the lower the ratio. The torch-ops column is the pure-torch path (CUDA, no numba,
   ``SKLEARN_SNN_NUMBA=0``); its ratio to the compiled kernel is the last column (target <= 2x).
3. Fit time per population backend (``--backends``, default ``numba torch``): ``EvolvedSNN`` with its
   defaults for ``--fit-generations`` generations on digits, one thread, process CPU time, the
   backends' fits interleaved in one process, medians; the ratio to the first backend (target for
   torch against numba: <= 2x, issue #20 item 3). Only the population evaluation differs between
   them (the population's ``backend``); the best fitness of each is printed as a check.
4. A non-differentiable objective, accuracy minus ``lambda`` times the hidden firing rate (spikes
   per neuron and step), swept over ``lambda`` on one stratified train/test split: a table of
   test accuracy and spikes per sample, ``evolution_tradeoff.csv`` and ``evolution_tradeoff.png``
   in ``--out``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/evolution.py            # full
    OMP_NUM_THREADS=1 python benchmarks/evolution.py --quick    # 2 folds, 100 generations, 3 lambdas
    OMP_NUM_THREADS=1 python benchmarks/evolution.py --skip cv tradeoff   # speed and backends only
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, train_test_split

import sklearn_snn.evolution as evolution_module
from sklearn_snn._core.encoding import current
from sklearn_snn._core.evolution import PopulationSNN
from sklearn_snn.evolution import EvolvedSNN

STRATEGIES = ["openai-es", "cma-es", "snes", "ga"]


def cv_strategies(X, y, folds, max_iter, strategies):
    rows = []
    for strategy in strategies:
        kw = {} if strategy == "openai-es" else {"strategy": strategy}
        if max_iter is not None:
            kw["max_iter"] = max_iter
        accs, times, gens = [], [], []
        for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y)):
            est = EvolvedSNN(random_state=k, **kw)
            t0 = time.perf_counter()
            est.fit(X[tr], y[tr])
            times.append(time.perf_counter() - t0)
            accs.append(est.score(X[te], y[te]))
            gens.append(est.n_iter_)
            print(f"  {strategy:10s} fold {k}: accuracy {accs[-1]:.4f}, {gens[-1]} generations, "
                  f"fit {times[-1]:.1f}s", flush=True)
        rows.append({"strategy": strategy, "resolved": est.strategy_, "n_genes": est.n_genes_,
                     "params": kw or "defaults", "mean_accuracy": float(np.mean(accs)),
                     "std_accuracy": float(np.std(accs)), "fold_accuracies": [float(a) for a in accs],
                     "mean_generations": float(np.mean(gens)), "mean_fit_s": float(np.mean(times))})
    print("\nstrategy     resolved      genes   accuracy (mean +- std)   generations   fit time")
    for r in rows:
        print(f"{r['strategy']:12s} {r['resolved']:12s} {r['n_genes']:6d}   {r['mean_accuracy']:.4f} +- "
              f"{r['std_accuracy']:.4f}        {r['mean_generations']:6.0f}       {r['mean_fit_s']:7.1f}s")
    return rows


def _interleaved_cpu_times(fns, repeats):
    """Process CPU time of each function, the functions interleaved repeat by repeat (so that a
    slow phase of a shared machine hits all of them alike); medians in seconds."""
    for fn in fns:
        fn()                                                    # warm-up (numba compilation, buffers)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            c0 = time.process_time()
            fn()
            times[k].append(time.process_time() - c0)
    return [float(np.median(t)) for t in times]


def speed(X, y, repeats, batch_sizes=(32, 256), n_individuals=64):
    """Batched population evaluation against a loop over individuals, one thread, CPU time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = EvolvedSNN(max_iter=1, random_state=0, device="cpu").fit(X, y)   # the default network
        default_bs = 256 if est.batch_size == "auto" else int(est.batch_size)
        pop = est._population()
        net = est.module_
        g = torch.Generator().manual_seed(0)
        genomes = (est.best_genome_.unsqueeze(0) + est.sigma * torch.randn(
            n_individuals, est.n_genes_, generator=g, dtype=torch.float64)).float()
        rows = []
        for bs in sorted(set(batch_sizes) | {default_bs}):
            x = current(est._to_tensor(est._scale(X[:bs]), device="cpu"), est.n_steps)

            def batched():                  # what the fitness runs: the whole population at once
                return pop.evaluate(genomes, x)[0]

            def batched_torch():            # the same, as batched torch ops (the CUDA / no-numba path)
                return pop.evaluate(genomes, x, backend="torch")[0]

            def loop():                     # one individual at a time through the single-network forward
                out = []
                for i in range(n_individuals):
                    pop.load_into(net, genomes[i])
                    out.append(net(x)[0])
                return torch.stack(out)

            with torch.no_grad():
                ref = loop()
                torch.testing.assert_close(batched(), ref, rtol=1e-4, atol=1e-4)
                torch.testing.assert_close(batched_torch(), ref, rtol=1e-4, atol=1e-4)
                torch.set_num_threads(1)    # again: starting numba's thread pool can reset it
                bt, tt, lt = _interleaved_cpu_times([batched, batched_torch, loop], repeats)
            rows.append({"batch_size": bs, "default": bs == default_bs, "individuals": n_individuals,
                         "batched_cpu_ms": 1e3 * bt, "batched_torch_cpu_ms": 1e3 * tt, "loop_cpu_ms": 1e3 * lt,
                         "speedup": lt / bt, "speedup_torch_ops": lt / tt, "torch_over_compiled": tt / bt})
    finally:
        torch.set_num_threads(threads)
    print(f"one thread, process CPU time, median of {repeats} interleaved repeats; {n_individuals} individuals")
    print("minibatch    batched (ms)   batched torch ops (ms)   loop (ms)   speed-up   (torch ops)   target >= 10x"
          "   torch ops / batched (target <= 2x)")
    for r in rows:
        tag = f"{r['batch_size']}{'*' if r['default'] else ''}"
        print(f"{tag:>9s}   {r['batched_cpu_ms']:10.2f}   {r['batched_torch_cpu_ms']:18.2f}   {r['loop_cpu_ms']:11.2f}"
              f"   {r['speedup']:7.1f}x   {r['speedup_torch_ops']:9.1f}x      "
              f"{'met' if r['speedup'] >= 10 else 'NOT met'}       {r['torch_over_compiled']:5.2f}x")
    print("* the default minibatch (batch_size='auto' = min(256, n_samples))")
    return rows


def fit_backends(X, y, backends, generations, repeats):
    """EvolvedSNN fit time per population backend: the defaults, ``generations`` generations, one
    thread, process CPU time, the backends interleaved repeat by repeat in this process, medians."""
    if "numba" in backends:
        from sklearn_snn._core.evolution import compiled_kernels

        if compiled_kernels() is None:
            print("numba is not available (not installed, or SKLEARN_SNN_NUMBA=0): backend 'numba' skipped")
            backends = [b for b in backends if b != "numba"]
    best = {}

    def fit(backend):
        def run():
            # the estimator builds its population through this name: give it the backend
            evolution_module.PopulationSNN = partial(PopulationSNN, backend=backend)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est = EvolvedSNN(max_iter=generations, n_iter_no_change=generations, random_state=0,
                                     device="cpu", torch_num_threads=1).fit(X, y)
            finally:
                evolution_module.PopulationSNN = PopulationSNN
            best[backend] = est.best_fitness_
        return run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = _interleaved_cpu_times([fit(b) for b in backends], repeats)
    finally:
        torch.set_num_threads(threads)
    rows = [{"backend": b, "generations": generations, "fit_cpu_s": t, "ratio_to_first": t / times[0],
             "best_fitness": float(best[b])} for b, t in zip(backends, times)]
    print(f"EvolvedSNN() defaults, {generations} generations on digits ({len(X)} samples), one thread, process "
          f"CPU time, median of {repeats} interleaved repeats")
    print("backend    fit (s)   ratio to the first   best fitness")
    for r in rows:
        print(f"{r['backend']:8s}  {r['fit_cpu_s']:7.2f}   {r['ratio_to_first']:8.2f}x          {r['best_fitness']:.4f}")
    return rows


def tradeoff(X, y, lambdas, max_iter, out):
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    rows = []
    for lam in lambdas:
        def fitness(view, Xb, yb, lam=lam):
            # non-differentiable: accuracy minus a price on the hidden firing rate
            return view.score(Xb, yb) - lam * view.firing_rate(Xb)

        est = EvolvedSNN(fitness=fitness, max_iter=max_iter, random_state=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(Xtr, ytr)
        sim = est.simulate(Xte)
        spikes = sum(s.sum() for s in sim["spikes"]) / len(Xte)
        rate = float(sim["spikes"][0].mean())
        rows.append({"lambda": lam, "test_accuracy": float(est.score(Xte, yte)), "spikes_per_sample": float(spikes),
                     "firing_rate": rate, "generations": est.n_iter_, "fit_s": time.perf_counter() - t0})
        print(f"  lambda {lam:5.2f}: accuracy {rows[-1]['test_accuracy']:.4f}, {spikes:7.1f} spikes/sample, "
              f"rate {rate:.4f}", flush=True)
    print("\nlambda   test accuracy   spikes per sample   firing rate (spikes/neuron/step)")
    for r in rows:
        print(f"{r['lambda']:6.2f}   {r['test_accuracy']:.4f}          {r['spikes_per_sample']:8.1f}           "
              f"{r['firing_rate']:.4f}")
    with open(out / "evolution_tradeoff.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    sp = [r["spikes_per_sample"] for r in rows]
    acc = [r["test_accuracy"] for r in rows]
    ax.plot(sp, acc, "o-")
    for r in rows:
        ax.annotate(f"λ={r['lambda']:g}", (r["spikes_per_sample"], r["test_accuracy"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("hidden spikes per sample (test)")
    ax.set_ylabel("test accuracy")
    ax.set_title("EvolvedSNN on digits: accuracy - λ · firing rate")
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    fig.tight_layout()
    fig.savefig(out / "evolution_tradeoff.png", dpi=120)
    plt.close(fig)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 folds, 100 generations, 3 lambdas")
    ap.add_argument("--out", default="benchmarks/out", help="folder for the CSV, JSON and PNG")
    ap.add_argument("--strategies", nargs="*", default=STRATEGIES)
    ap.add_argument("--skip", nargs="*", default=[], choices=["cv", "speed", "backends", "tradeoff"])
    ap.add_argument("--backends", nargs="*", default=["numba", "torch"], choices=["numba", "torch"],
                    help="population backends whose fit times are compared (the first is the reference)")
    ap.add_argument("--fit-generations", type=int, default=None,
                    help="generations per fit of the backend comparison (default 40; quick 15)")
    ap.add_argument("--lambdas", nargs="*", type=float, default=None,
                    help="firing-rate prices for the trade-off (default 0 0.25 0.5 1 2 4; quick 0 0.5 2)")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats of the speed test (default 11; quick 5)")
    ap.add_argument("--generations", type=int, default=None,
                    help="generations per trade-off fit (default 300; quick 100)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_digits(return_X_y=True)
    summary = {"quick": args.quick, "torch_threads": torch.get_num_threads()}
    folds, max_iter = (2, 100) if args.quick else (5, None)
    if "cv" not in args.skip:
        print(f"== digits, {folds}-fold CV, " + ("defaults" if max_iter is None else f"max_iter={max_iter}") + " ==")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            summary["cv"] = cv_strategies(X, y, folds, max_iter, args.strategies)
    if "speed" not in args.skip:
        print("\n== batched population evaluation vs a loop over individuals (64 individuals) ==")
        summary["speed"] = speed(X, y, repeats=args.repeats or (5 if args.quick else 11))
    if "backends" not in args.skip and args.backends:
        print("\n== fit time per population backend ==")
        summary["backends"] = fit_backends(X, y, args.backends, args.fit_generations or (15 if args.quick else 40),
                                           repeats=3 if args.quick else 5)
    if "tradeoff" not in args.skip:
        lambdas = args.lambdas or ([0.0, 0.5, 2.0] if args.quick else [0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
        gens = args.generations or (100 if args.quick else 300)
        print(f"\n== accuracy with a firing-rate penalty (non-differentiable fitness), {gens} generations ==")
        summary["tradeoff"] = tradeoff(X, y, lambdas, gens, out)
    with open(out / "evolution_summary.json", "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    written = ["evolution_summary.json"] + (["evolution_tradeoff.csv", "evolution_tradeoff.png"]
                                            if "tradeoff" in summary else [])
    print(f"\nwrote {', '.join(written)} in {out}")
    print("reproduce: OMP_NUM_THREADS=1 python benchmarks/evolution.py " + " ".join(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
