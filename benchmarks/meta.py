"""Meta-learning benchmark: learned time constants, few-shot learning to learn, architecture search.

1. Learned vs fixed time constants on ``make_randman`` with long time scales (spike times spread
   over ``n_steps`` steps, initial time constants much shorter): ``SurrogateSNNClassifier`` with
   ``learn_tau=learn_threshold=False`` and ``True``, same seeds, same split; test accuracy both ways
   and the learned time constants.
2. Few-shot: 5-way 5-shot episodes on digit classes 5..9, held out from meta-training (classes
   0..4). ``MetaSNNClassifier`` (first-order MAML) after 10 adaptation steps vs the same network from a
   random initialisation after 10 steps with the same optimizer and learning rate; mean over 100
   episodes with 95% intervals (target: >= 15 points). Also reported: the random initialisation
   with the best of several learning rates (chosen on the test episodes, so it favours it).
3. Architecture search on digits: ``SNNArchitectureSearch(cost='synops')``, the Pareto front of
   accuracy vs synaptic operations per sample: table and ``meta_pareto.png``.

Everything is written to ``--out`` (default ``benchmarks/out/``): ``meta.json``, ``meta.md``,
``meta_pareto.png``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/meta.py --quick
    OMP_NUM_THREADS=1 python benchmarks/meta.py           # longer training, more trials
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman
from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier, SNNArchitectureSearch, synaptic_operations


def ci95(values):
    v = np.asarray(values, dtype=float)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(half)


def learned_tau(quick, seed=0):
    n_steps = 100
    X, y = make_randman(n_samples=600 if quick else 1500, n_classes=5, n_units=20, n_steps=n_steps,
                        dim_manifold=1, alpha=2.0, random_state=seed)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    out = {"n_steps": n_steps, "n_train": len(ytr), "n_test": len(yte)}
    for learn in (False, True):
        clf = SurrogateSNNClassifier(hidden_layer_sizes=(64,), neuron="cuba", tau_mem=3.0, tau_syn=1.5,
                                     readout="membrane_max", learning_rate_init=5e-3, batch_size=64,
                                     max_iter=30 if quick else 80, learn_tau=learn, learn_threshold=learn,
                                     random_state=seed)
        t0 = time.perf_counter()
        clf.fit(Xtr, ytr)
        key = "learned" if learn else "fixed"
        out[key] = {"test_accuracy": float(clf.score(Xte, yte)), "train_accuracy": float(clf.score(Xtr, ytr)),
                    "fit_s": time.perf_counter() - t0}
        if learn:
            p = clf.learned_neuron_parameters()[0]
            out[key]["tau_mem_median"] = float(np.median(p["tau_mem"]))
            out[key]["tau_mem_range"] = [float(p["tau_mem"].min()), float(p["tau_mem"].max())]
            out[key]["tau_syn_median"] = float(np.median(p["tau_syn"]))
            out[key]["threshold_median"] = float(np.median(p["threshold"]))
            out[key]["readout_tau_median"] = float(np.median(clf.learned_neuron_parameters()[-1]["tau_mem"]))
        print(f"[tau] {key}: test accuracy {out[key]['test_accuracy']:.3f} ({out[key]['fit_s']:.0f}s)", flush=True)
    return out


def few_shot(quick, seed=0, n_episodes=100):
    train = FewShotTaskSampler(5, 5, 15, classes=range(5), random_state=seed)
    test = FewShotTaskSampler(5, 5, 15, classes=range(5, 10))
    kw = dict(hidden_layer_sizes=(64,), n_steps=8, learning_rate_init=2e-3, n_adapt_steps=10, max_iter=10,
              random_state=seed)
    meta = MetaSNNClassifier(**kw, meta_algorithm="fomaml", n_meta_iter=300 if quick else 600, meta_lr=3e-3)
    t0 = time.perf_counter()
    meta.meta_fit(train)
    meta_s = time.perf_counter() - t0
    print(f"[few-shot] meta-training {meta_s:.0f}s", flush=True)
    episodes = test.episodes(n_episodes, random_state=seed + 1)
    lrs = [2e-3, 5e-3, 1e-2, 2e-2]
    acc = {"meta": [], **{f"random_lr{lr:g}": [] for lr in lrs}}
    for ep in episodes:
        acc["meta"].append(meta.fit(ep.X_support, ep.y_support).score(ep.X_query, ep.y_query))
        for lr in lrs:
            r = MetaSNNClassifier(**{**kw, "learning_rate_init": lr}).fit(ep.X_support, ep.y_support)
            acc[f"random_lr{lr:g}"].append(r.score(ep.X_query, ep.y_query))
    same = f"random_lr{kw['learning_rate_init']:g}"
    res = {k: dict(zip(("mean", "ci95"), ci95(v))) for k, v in acc.items()}
    diff = np.asarray(acc["meta"]) - np.asarray(acc[same])
    best_rand = max((k for k in acc if k.startswith("random")), key=lambda k: res[k]["mean"])
    out = {"episodes": n_episodes, "n_way": 5, "k_shot": 5, "n_query": 15, "meta_classes": [0, 1, 2, 3, 4],
           "test_classes": [5, 6, 7, 8, 9], "settings": kw, "n_meta_iter": meta.n_meta_iter_, "meta_s": meta_s,
           "accuracy": res, "same_settings_baseline": same,
           "gain_points": dict(zip(("mean", "ci95"), [100 * x for x in ci95(diff)])),
           "best_random_lr_baseline": best_rand,
           "gain_vs_best_random_points": 100 * (res["meta"]["mean"] - res[best_rand]["mean"])}
    print(f"[few-shot] meta {res['meta']['mean']:.3f} +- {res['meta']['ci95']:.3f}, random {res[same]['mean']:.3f} "
          f"+- {res[same]['ci95']:.3f}; gain {out['gain_points']['mean']:.1f} +- {out['gain_points']['ci95']:.1f} "
          "points", flush=True)
    return out


def architecture_search(quick, out_dir, seed=0):
    X, y = load_digits(return_X_y=True)
    search = SNNArchitectureSearch(SurrogateSNNClassifier(max_iter=15 if quick else 40, learning_rate_init=5e-3,
                                                          random_state=seed),
                                   neurons=("lif", "cuba", "alif"), widths=(16, 32, 64, 128), max_depth=2,
                                   recurrent=(False, True), n_steps=(4, 8, 16), cost="synops",
                                   n_trials=16 if quick else 50, cv=3, random_state=seed)
    t0 = time.perf_counter()
    search.fit(X, y)
    elapsed = time.perf_counter() - t0
    res = search.cv_results_
    rows = [{"trial": int(t), "accuracy": float(s), "synops": float(c), "pareto": bool(p),
             "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in prm.items()}}
            for t, s, c, p, prm in zip(res["trial_number"], res["mean_test_score"], res["mean_test_cost"],
                                       res["pareto"], res["params"])]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.scatter([r["synops"] for r in rows], [r["accuracy"] for r in rows], c="lightgray", label="trials")
        front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["synops"])
        ax.plot([r["synops"] for r in front], [r["accuracy"] for r in front], "o-", color="C3", label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("synaptic operations per sample")
        ax.set_ylabel("3-fold CV accuracy")
        ax.set_title("SNN architecture search on digits")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "meta_pareto.png", dpi=120)
        plt.close(fig)
    except ImportError:
        print("matplotlib not installed: no plot")
    print(f"[search] {len(rows)} trials in {elapsed:.0f}s, {sum(r['pareto'] for r in rows)} on the front", flush=True)
    return {"n_trials": len(rows), "search_s": elapsed, "trials": rows,
            "refit_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in search.best_params_.items()},
            "refit_synops_all_digits": synaptic_operations(search, X)}


def markdown(report):
    t, f, s = report["tau"], report["few_shot"], report["search"]
    lines = ["# Meta-learning benchmark", "",
             f"## Learned vs fixed time constants (make_randman, {t['n_steps']} steps, initial tau_mem 3, tau_syn 1.5)",
             "", "| time constants | test accuracy | train accuracy |", "|---|---|---|"]
    for k in ("fixed", "learned"):
        lines.append(f"| {k} | {t[k]['test_accuracy']:.3f} | {t[k]['train_accuracy']:.3f} |")
    lt = t["learned"]
    lines += ["", f"Learned hidden tau_mem: median {lt['tau_mem_median']:.1f} steps (range {lt['tau_mem_range'][0]:.1f}"
              f"-{lt['tau_mem_range'][1]:.1f}), tau_syn median {lt['tau_syn_median']:.1f}, threshold median "
              f"{lt['threshold_median']:.2f}, readout tau median {lt['readout_tau_median']:.1f}.", "",
              f"## Few-shot 5-way 5-shot on held-out digit classes 5-9 ({f['episodes']} episodes, 95% intervals)", "",
              "| model | query accuracy |", "|---|---|"]
    for k, v in f["accuracy"].items():
        lines.append(f"| {k} | {v['mean']:.3f} +- {v['ci95']:.3f} |")
    g = f["gain_points"]
    lines += ["", f"Gain of meta-learning over `{f['same_settings_baseline']}` "
              "(same network, optimizer, lr, 10 steps): "
              f"**{g['mean']:.1f} +- {g['ci95']:.1f} points** (paired); over the best random-init lr "
              f"(`{f['best_random_lr_baseline']}`): {f['gain_vs_best_random_points']:.1f} points.", "",
              f"## Architecture search on digits: accuracy vs synaptic operations ({s['n_trials']} trials)", "",
              "| trial | neuron | layers | recurrent | surrogate | n_steps | CV accuracy | synops/sample | Pareto |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(s["trials"], key=lambda r: r["synops"]):
        p = r["params"]
        lines.append(f"| {r['trial']} | {p['neuron']} | {'x'.join(map(str, p['hidden_layer_sizes']))} | "
                     f"{p['recurrent']} | {p['surrogate']} | {p['n_steps']} | {r['accuracy']:.3f} | "
                     f"{r['synops']:.0f} | {'yes' if r['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter training, fewer trials")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--only", choices=["tau", "few_shot", "search"], nargs="*")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = args.only or ["tau", "few_shot", "search"]
    warnings.simplefilter("ignore", ConvergenceWarning)
    report = {"quick": args.quick}
    path = out_dir / "meta.json"
    if path.exists() and args.only:
        report.update({k: v for k, v in json.loads(path.read_text()).items() if k not in parts})
    t0 = time.perf_counter()
    if "tau" in parts:
        report["tau"] = learned_tau(args.quick)
    if "few_shot" in parts:
        report["few_shot"] = few_shot(args.quick)
    if "search" in parts:
        report["search"] = architecture_search(args.quick, out_dir)
    report["total_s"] = time.perf_counter() - t0
    path.write_text(json.dumps(report, indent=1))
    if all(k in report for k in ("tau", "few_shot", "search")):
        (out_dir / "meta.md").write_text(markdown(report))
        print(markdown(report))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
