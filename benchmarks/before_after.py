"""Before/after figures of a redesign: the same small benchmarks on two source trees.

Every figure comes from a fresh process whose ``PYTHONPATH`` is the tree's root, so each tree runs
its own package (and, for the speed figures, its own ``benchmarks/speed.py``). The two trees take
turns job by job, so both see the same machine load. What runs, with small settings:

- ``speed``: ``benchmarks/speed.py --shapes S1 S2 S3 --variants core --rounds R --steps N
  --threads 1 --no-check`` of each tree: median milliseconds per training step of the fused scan.
- One accuracy figure per training method, on the same data with the same seeds (a direct fit
  with fixed small settings, so the run takes minutes; the trees' own quick benchmark modes take
  far longer): surrogate gradients, ``EvolvedSNN``, ``STDPTransformer`` + logistic regression and
  ``ConvertedSNN`` on sklearn's digits (stratified 75/25 split, seed 0); ``EventPropClassifier``
  on a 400-sample subset of that training set; ``MetaSNNClassifier`` meta-fitted on 5-way 5-shot
  episodes of digits 0-4, then adapted and scored on 10 episodes of digits 5-9 (mean query
  accuracy). Fit times include loading (or compiling) the kernels: run twice for warm caches.

Usage::

    git archive 91dbb98 | tar -x -C ../before        # a tree to compare with
    OMP_NUM_THREADS=1 python benchmarks/before_after.py --before ../before --after .
    OMP_NUM_THREADS=1 python benchmarks/before_after.py --before ../before --after . --only speed surrogate

Prints a table (before, after, after/before) and the command that reproduces it; ``--json``
writes the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS = ("speed", "surrogate", "evolved", "stdp", "converted", "eventprop", "meta")

# the child: one job, its figures as the last line of JSON
CHILD = r'''
import json, sys, time, warnings
import numpy as np
warnings.filterwarnings("ignore")
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

job = sys.argv[1]
X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
t0 = time.perf_counter()
if job == "surrogate":
    from sklearn_snn import SurrogateSNNClassifier
    est = SurrogateSNNClassifier(hidden_layer_sizes=(64,), max_iter=10, random_state=0).fit(Xtr, ytr)
    acc = est.score(Xte, yte)
elif job == "evolved":
    from sklearn_snn import EvolvedSNN
    est = EvolvedSNN(max_iter=60, random_state=0).fit(Xtr, ytr)
    acc = est.score(Xte, yte)
elif job == "stdp":
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn_snn import STDPTransformer
    est = make_pipeline(STDPTransformer(n_components=100, max_iter=1, random_state=0),
                        LogisticRegression(max_iter=2000)).fit(Xtr, ytr)
    acc = est.score(Xte, yte)
elif job == "converted":
    from sklearn_snn import ConvertedSNN
    est = ConvertedSNN(hidden_layer_sizes=(64,), max_iter=30, random_state=0).fit(Xtr, ytr)
    acc = est.score(Xte, yte)
elif job == "eventprop":
    from sklearn_snn import EventPropClassifier
    est = EventPropClassifier(max_iter=10, random_state=0).fit(Xtr[:400], ytr[:400])
    acc = est.score(Xte, yte)
elif job == "meta":
    from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier
    train = FewShotTaskSampler(5, 5, 15, classes=range(5), random_state=0)
    test = FewShotTaskSampler(5, 5, 15, classes=range(5, 10))
    est = MetaSNNClassifier(n_meta_iter=30, random_state=0).meta_fit(train)
    accs = []
    for k in range(10):
        Xs, ys, Xq, yq = test.sample(1000 + k)[:4]
        accs.append(est.fit(Xs, ys).score(Xq, yq))
    acc = float(np.mean(accs))
else:
    raise SystemExit(f"unknown job {job!r}")
print(json.dumps({"accuracy": float(acc), "seconds": time.perf_counter() - t0}))
'''


def _env(tree):
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.pop("PYTHONSTARTUP", None)
    return env


def _last_json(out):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def run_accuracy(tree, job, timeout):
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, job], check=False, cwd=tree, env=_env(tree),
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:200]}
    return _last_json(p.stdout)


def run_speed(tree, rounds, steps, timeout):
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "speed.json"
        cmd = [sys.executable, "benchmarks/speed.py", "--shapes", "S1", "S2", "S3", "--variants", "core",
               "--rounds", str(rounds), "--steps", str(steps), "--threads", "1", "--no-check", "--json", str(out)]
        try:
            p = subprocess.run(cmd, check=False, cwd=tree, env=_env(tree), capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        if p.returncode != 0 or not out.exists():
            return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:200]}
        res = json.loads(out.read_text())["results"]
    return {s: 1e3 * statistics.median(res[f"{s}|core"]) for s in ("S1", "S2", "S3") if res.get(f"{s}|core")}


def _fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:.3f}" if unit == "acc" else f"{v:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="root of the tree before (e.g. a git archive of a commit)")
    ap.add_argument("--after", default=str(Path(__file__).resolve().parents[1]), help="root of the tree after")
    ap.add_argument("--only", nargs="+", choices=JOBS, default=list(JOBS))
    ap.add_argument("--rounds", type=int, default=2, help="rounds of speed.py")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per cell and round of speed.py")
    ap.add_argument("--timeout", type=int, default=400, help="seconds per job and tree")
    ap.add_argument("--json", default=None, help="write the raw figures here")
    a = ap.parse_args(argv)
    trees = {"before": Path(a.before).resolve(), "after": Path(a.after).resolve()}
    for name, tree in trees.items():
        if not (tree / "sklearn_snn" / "__init__.py").exists():
            raise SystemExit(f"--{name} {tree} holds no sklearn_snn package; give the root of a source tree.")
    figures = {}
    t_start = time.perf_counter()
    for job in a.only:
        for name, tree in trees.items():             # the trees take turns: the same load for both
            t0 = time.perf_counter()
            r = run_speed(tree, a.rounds, a.steps, a.timeout) if job == "speed" else run_accuracy(tree, job, a.timeout)
            figures[(job, name)] = r
            print(f"  {job:10s} {name:6s} {json.dumps(r)}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    if "speed" in a.only:
        for s in ("S1", "S2", "S3"):
            b, f = (figures[("speed", n)].get(s) for n in ("before", "after"))
            rows.append((f"speed.py {s} core (ms/step)", b, f, "ms"))
    for job in a.only:
        if job == "speed":
            continue
        b, f = (figures[(job, n)] for n in ("before", "after"))
        rows.append((f"{job} accuracy", b.get("accuracy"), f.get("accuracy"), "acc"))
        rows.append((f"{job} fit + score (s)", b.get("seconds"), f.get("seconds"), "s"))
    print(f"\nbefore: {trees['before']}\nafter:  {trees['after']}")
    print(f"{'figure':34s} {'before':>9s} {'after':>9s} {'after/before':>13s}")
    for label, b, f, unit in rows:
        ratio = f"{f / b:.2f}" if b and f is not None and b is not None else "-"
        print(f"{label:34s} {_fmt(b, unit):>9s} {_fmt(f, unit):>9s} {ratio:>13s}")
    errors = {f"{j}|{n}": r["error"] for (j, n), r in figures.items() if "error" in r}
    for k, v in errors.items():
        print(f"error {k}: {v}")
    print(f"total {time.perf_counter() - t_start:.0f} s; OMP_NUM_THREADS={_env('.')['OMP_NUM_THREADS']}")
    print("command: OMP_NUM_THREADS=1 python benchmarks/before_after.py --before " + str(trees["before"])
          + " --after " + str(trees["after"]) + " --only " + " ".join(a.only)
          + f" --rounds {a.rounds} --steps {a.steps}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({f"{j}|{n}": r for (j, n), r in figures.items()}, fh, indent=1)


if __name__ == "__main__":
    main()
