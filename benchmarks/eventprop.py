"""EventProp benchmark: Yin-Yang accuracy, backward memory vs time resolution, speed vs surrogate BPTT.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/eventprop.py            # full: 5000/1000 samples, 3 seeds
    OMP_NUM_THREADS=1 python benchmarks/eventprop.py --quick    # minutes: 1 seed, small data
    OMP_NUM_THREADS=1 python benchmarks/eventprop.py --only accuracy --jobs 3   # seeds in parallel
    OMP_NUM_THREADS=1 python benchmarks/eventprop.py --only speed     # or tabular, spike, memory

1. Yin-Yang (Kriener et al. 2021), 5000 training and 1000 test samples as in Wunderlich & Pehle
   (2021): test accuracy of ``EventPropClassifier()`` with the shipped defaults, mean +- std over
   seeds.
2. Memory of one backward pass at the default ``dt`` and at ``dt / 10`` (10x finer grid, same
   duration): the bytes the forward pass keeps for the backward (the spike lists), and the peak
   resident memory of forward + backward measured in a fresh subprocess (``VmHWM`` above the
   ``VmRSS`` just before the pass, after resetting the peak mark through
   ``/proc/self/clear_refs``; Linux, with ``ru_maxrss`` as a coarse fallback elsewhere).
   The same for ``SurrogateSNNClassifier`` (BPTT) on the same network, for contrast.
3. ``--only speed``: fit time of the default Yin-Yang fit (``EventPropClassifier()``, compiled
   event loops) against ``SurrogateSNNClassifier()`` on the same data in the same run, with both
   held-out accuracies and the ratio.
4. ``--only tabular``: 5-fold CV accuracy of the defaults on blobs (300), iris, wine, breast
   cancer and digits, ``StandardScaler`` inside a ``Pipeline`` (fitted per fold), the same folds
   for EventProp and the surrogate estimator: mean +- std over folds and fit time per fold.
5. ``--only spike``: the random-manifold spike task (``make_randman``: 10 classes, 50 units,
   100 steps, uint8 arrays), held-out 25 %, EventProp against the surrogate estimator.
6. ``--only events``: the same task as event streams with fine times
   (``make_randman_events``, times on a grid of 1/1000), EventProp on the exact event times
   (a simulation grid of 25 steps, ``time_scale=1/25``) against the estimators on the events
   binned to the same 25 steps (``EventBinner``).

Timings are wall-clock on whatever machine runs this; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PAPER_NOTE = ("Reference: Wunderlich & Pehle (2021, Fig. 3) train the same task with EventProp (10 seeds); "
              "their figure was not available offline when this was written, so compare against the paper. "
              "Kriener et al.'s ANN reaches 98.7 +- 0.3%.")


def _data(n_train, n_test, seed=0):
    from sklearn_snn._yinyang import make_yinyang

    X, y = make_yinyang(n_train, random_state=seed)
    Xt, yt = make_yinyang(n_test, random_state=seed + 1000)
    return X, y, Xt, yt


def _one_seed(s, n_train, n_test, max_iter):
    import torch

    torch.set_num_threads(1)
    from sklearn_snn.eventprop import EventPropClassifier

    X, y, Xt, yt = _data(n_train, n_test)
    kw = {} if max_iter is None else {"max_iter": max_iter}
    clf = EventPropClassifier(random_state=s, **kw)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    sec = time.perf_counter() - t0
    acc = clf.score(Xt, yt)
    print(f"  seed {s}: test accuracy {acc:.4f}, train {clf.score(X, y):.4f}, "
          f"{clf.n_iter_} epochs in {sec:.0f}s", flush=True)
    return acc, sec


def accuracy(seeds, n_train, n_test, max_iter=None, jobs=1):
    from joblib import Parallel, delayed

    from sklearn_snn.eventprop import EventPropClassifier

    res = Parallel(n_jobs=jobs)(delayed(_one_seed)(s, n_train, n_test, max_iter) for s in seeds)
    accs, times = [r[0] for r in res], [r[1] for r in res]
    return {"accuracies": accs, "mean": float(np.mean(accs)), "std": float(np.std(accs)),
            "fit_seconds": times, "params": EventPropClassifier(**({} if max_iter is None else
                                                                    {"max_iter": max_iter})).get_params()}


_MEM_CHILD = r"""
import resource, sys, json, warnings
import numpy as np, torch
sys.path.insert(0, {root!r})
from sklearn_snn._core import eventprop as ep
from sklearn_snn.eventprop import EventPropClassifier
from sklearn_snn._yinyang import make_yinyang
kind, factor, B = {kind!r}, {factor}, {batch}
X, y = make_yinyang(B, random_state=0)
clf = EventPropClassifier()
dt, n_steps = clf.dt / factor, clf.n_steps * factor
torch.manual_seed(0)
if kind == "eventprop":
    est = EventPropClassifier(dt=dt, n_steps=n_steps, random_state=0)
    est._fit_scaler(X)
    est.input_ndim_ = 2
    est._set_resolved_parameters()
    net = est._build_module(est._n_encoded(X.shape[1]), 3, torch.Generator().manual_seed(0))
    xb = torch.tensor(est._scale(X), dtype=torch.float32)
    ev = est._encode(xb)
    yt = torch.tensor(y)
    def run():
        logits, _ = net(ev)
        loss, _ = est._loss_terms(logits, yt, None)
        loss.backward()
    # bytes kept for the backward pass: the spike lists
    with torch.no_grad():
        res = ep.simulate(net.run_spec(ev), ev, list(net.weights), net.recurrent)
    saved = ep.saved_bytes(res["events"]); n_spk = sum(res["n_spikes"])
else:
    from sklearn_snn.surrogate import SurrogateSNNClassifier
    est = SurrogateSNNClassifier(hidden_layer_sizes=clf.hidden_layer_sizes, neuron="cuba", n_steps=n_steps,
                                 tau_mem=clf._resolved("tau_mem") / dt, tau_syn=clf._resolved("tau_syn") / dt, encoder="latency",
                                 random_state=0)
    est._fit_scaler(X)
    net = est._build_module(4, 3, torch.Generator().manual_seed(0))
    xb = torch.tensor(est._scale(X), dtype=torch.float32)
    yt = torch.tensor(y)
    def run():
        logits, _ = net(est._encode(xb, train=True))
        torch.nn.functional.cross_entropy(logits, yt).backward()
    saved, n_spk = None, None
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
import gc; gc.collect()
try:  # reset the peak-RSS mark (Linux >= 4.0) so setup does not hide the pass's peak
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS:")
    run()
    peak = status("VmHWM:")
except OSError:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(kind=kind, factor=factor, steps=n_steps, peak_kib=peak - base, saved_bytes=saved,
                      n_spikes=n_spk)))
"""


def memory(batch):
    out = {}
    for kind in ("eventprop", "surrogate"):
        for factor in (1, 10):
            code = _MEM_CHILD.format(root=ROOT, kind=kind, factor=factor, batch=batch)
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(r.stderr[-2000:])
                raise RuntimeError(f"memory child {kind} x{factor} failed")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            out[f"{kind}_x{factor}"] = res
            extra = "" if res["saved_bytes"] is None else \
                f", kept for backward {res['saved_bytes'] / 2**20:.2f} MiB ({res['n_spikes']} spikes)"
            print(f"  {kind:9s} {res['steps']:4d} steps: peak forward+backward "
                  f"{res['peak_kib'] / 1024:.1f} MiB above setup{extra}", flush=True)
    for kind in ("eventprop", "surrogate"):
        a, b = out[f"{kind}_x1"], out[f"{kind}_x10"]
        g = b["peak_kib"] / max(a["peak_kib"], 1)
        out[f"{kind}_growth"] = g
        msg = f"  {kind}: 10x finer grid -> peak memory x{g:.2f}"
        if a["saved_bytes"]:
            out[f"{kind}_saved_growth"] = b["saved_bytes"] / a["saved_bytes"]
            msg += f", kept-for-backward bytes x{out[f'{kind}_saved_growth']:.2f}"
        print(msg, flush=True)
    return out


def _cmd(part, quick):
    return f"OMP_NUM_THREADS=1 python benchmarks/eventprop.py --only {part}{' --quick' if quick else ''}"


def speed(n_train, n_test=1000):
    """Default Yin-Yang fits, EventProp and the surrogate estimator, in the same run."""
    from sklearn_snn.eventprop import EventPropClassifier
    from sklearn_snn.surrogate import SurrogateSNNClassifier

    X, y, Xt, yt = _data(n_train, n_test)
    res = {}
    for name, est in (("eventprop", EventPropClassifier(random_state=0)),
                      ("surrogate", SurrogateSNNClassifier(random_state=0))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.set_params(max_iter=1).fit(X[:64], y[:64])  # warm-up (imports, compilation cache)
            est.set_params(max_iter=type(est)().max_iter)
            t0 = time.perf_counter()
            est.fit(X, y)
            sec = time.perf_counter() - t0
        res[name] = {"fit_seconds": sec, "test_accuracy": est.score(Xt, yt), "epochs": est.n_iter_}
    print("| estimator (defaults) | fit time | epochs | held-out accuracy |", flush=True)
    print("| --- | --- | --- | --- |")
    for name, r in res.items():
        print(f"| {name} | {r['fit_seconds']:.1f} s | {r['epochs']} | {r['test_accuracy']:.3f} |")
    res["ratio_eventprop_over_surrogate"] = res["eventprop"]["fit_seconds"] / res["surrogate"]["fit_seconds"]
    print(f"  fit time ratio EventProp / surrogate: {res['ratio_eventprop_over_surrogate']:.1f}x "
          f"(Yin-Yang, {n_train} train / {n_test} test)", flush=True)
    return res


TABULAR = ("blobs", "iris", "wine", "breast_cancer", "digits")


def _tabular_data(name):
    from sklearn import datasets

    if name == "blobs":
        return datasets.make_blobs(n_samples=300, random_state=0)
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def tabular(names=TABULAR, cv=5):
    """5-fold CV accuracy of the defaults, ``StandardScaler`` inside a ``Pipeline`` (fitted on each
    training fold), the same (stratified, unshuffled) folds for both estimators."""
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_snn.eventprop import EventPropClassifier
    from sklearn_snn.surrogate import SurrogateSNNClassifier

    res = {}
    print(f"| data | EventPropClassifier() {cv}-fold CV | SurrogateSNNClassifier() {cv}-fold CV | "
          "difference | fit time per fold (EventProp / surrogate) |", flush=True)
    print("| --- | --- | --- | --- | --- |")
    folds = StratifiedKFold(cv)
    for name in names:
        X, y = _tabular_data(name)
        row = {}
        for key, est in (("eventprop", EventPropClassifier(random_state=0)),
                         ("surrogate", SurrogateSNNClassifier(random_state=0))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = cross_validate(make_pipeline(StandardScaler(), est), X, y, cv=folds)
            row[key] = float(r["test_score"].mean())
            row[key + "_std"] = float(r["test_score"].std())
            row[key + "_fold_scores"] = r["test_score"].tolist()
            row[key + "_fit_seconds"] = float(r["fit_time"].mean())
        res[name] = row
        print(f"| {name} | {row['eventprop']:.3f} +- {row['eventprop_std']:.3f} | "
              f"{row['surrogate']:.3f} +- {row['surrogate_std']:.3f} | "
              f"{row['eventprop'] - row['surrogate']:+.3f} | "
              f"{row['eventprop_fit_seconds']:.1f} s / {row['surrogate_fit_seconds']:.1f} s |", flush=True)
    return res


def _fit_score(est, Xtr, ytr, Xte, yte):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xtr, ytr)
    return est.score(Xte, yte), time.perf_counter() - t0


def spike_input(n_samples=1000, n_classes=10, n_units=50, n_steps=100):
    """Random-manifold spike task (3D uint8 input), held-out 25 %."""
    from sklearn.model_selection import train_test_split

    from sklearn_snn.datasets import make_randman
    from sklearn_snn.eventprop import EventPropClassifier
    from sklearn_snn.surrogate import SurrogateSNNClassifier

    X, y = make_randman(n_samples, n_classes=n_classes, n_units=n_units, n_steps=n_steps, random_state=0)
    X = X.astype(np.uint8)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    res = {}
    print(f"randman: {n_samples} samples, {n_classes} classes, {n_units} units, {n_steps} steps (uint8)")
    print("| estimator | held-out accuracy | fit time |", flush=True)
    print("| --- | --- | --- |")
    for name, est in (("EventPropClassifier()", EventPropClassifier(random_state=0)),
                      ("SurrogateSNNClassifier()", SurrogateSNNClassifier(random_state=0)),
                      ("SurrogateSNNClassifier(neuron='cuba', tau_syn=10)",
                       SurrogateSNNClassifier(neuron="cuba", tau_syn=10, random_state=0))):
        acc, sec = _fit_score(est, Xtr, ytr, Xte, yte)
        res[name] = {"accuracy": acc, "fit_seconds": sec}
        print(f"| {name} | {acc:.3f} | {sec:.1f} s |", flush=True)
    return res


def event_input(n_samples=1000, n_classes=10, n_units=50, resolution=1000, n_bins=25):
    """Exact event times against binning: random-manifold events with fine times (``resolution``
    steps per sample), EventProp on the events themselves (every time exact, a grid of ``n_bins``
    steps) against every estimator on the events binned to the same ``n_bins`` steps."""
    from sklearn.model_selection import train_test_split

    from sklearn_snn.datasets import make_randman_events
    from sklearn_snn.eventprop import EventPropClassifier
    from sklearn_snn.preprocessing import EventBinner
    from sklearn_snn.surrogate import SurrogateSNNClassifier

    E, y = make_randman_events(n_samples, n_classes=n_classes, n_units=n_units, n_steps=resolution, duration=1.0,
                               random_state=0)
    idx_tr, idx_te = train_test_split(np.arange(n_samples), test_size=0.25, random_state=0, stratify=y)
    Etr, Ete = [E[i] for i in idx_tr], [E[i] for i in idx_te]
    binner = EventBinner(n_steps=n_bins, duration=1.0).fit(Etr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Btr, Bte = binner.transform(Etr), binner.transform(Ete)
    n_ev = sum(len(e) for e in Etr)
    print(f"randman events: {n_samples} samples, {n_classes} classes, {n_units} units, times on a grid of "
          f"1/{resolution}; {n_bins} steps per sample (EventProp: time_scale=1/{n_bins}); training events "
          f"{n_ev} ({n_ev * 16 / 2**20:.2f} MiB as (time, unit) pairs; binned uint8 {Btr.nbytes / 2**20:.2f} MiB)")
    print("| estimator | input | held-out accuracy | fit time |", flush=True)
    print("| --- | --- | --- | --- |")
    res = {}
    rows = (("EventPropClassifier(time_scale=1/n_bins)", "events, exact times",
             EventPropClassifier(time_scale=1.0 / n_bins, random_state=0), Etr, Ete),
            ("EventPropClassifier()", f"binned to {n_bins} steps", EventPropClassifier(random_state=0), Btr, Bte),
            ("SurrogateSNNClassifier()", f"binned to {n_bins} steps", SurrogateSNNClassifier(random_state=0),
             Btr, Bte))
    for name, inp, est, a, b in rows:
        acc, sec = _fit_score(est, a, y[idx_tr], b, y[idx_te])
        res[f"{name} on {inp}"] = {"accuracy": acc, "fit_seconds": sec}
        print(f"| {name} | {inp} | {acc:.3f} | {sec:.1f} s |", flush=True)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 1000/500 samples, 5 epochs")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    p.add_argument("--only", choices=["accuracy", "memory", "speed", "tabular", "spike", "events"], default=None)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out", "eventprop.json"))
    a = p.parse_args(argv)
    import torch

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    report = {"quick": a.quick}
    todo = {"accuracy", "memory", "speed", "tabular", "spike", "events"} if a.only is None else {a.only}
    if "accuracy" in todo:
        n_seeds = a.seeds or (1 if a.quick else 3)
        n_train, n_test = (1000, 500) if a.quick else (5000, 1000)
        print(f"1. Yin-Yang accuracy ({n_train} train / {n_test} test, {n_seeds} seed(s)"
              f"{', 5 epochs' if a.quick else ', shipped defaults'})", flush=True)
        acc = accuracy(range(n_seeds), n_train, n_test, max_iter=5 if a.quick else None, jobs=a.jobs)
        report["accuracy"] = acc
        print(f"  test accuracy {acc['mean']:.4f} +- {acc['std']:.4f}", flush=True)
        print("  " + PAPER_NOTE, flush=True)
    if "memory" in todo:
        print("2. Memory of one forward+backward pass (batch of "
              f"{200 if a.quick else 1000}) at dt and dt/10", flush=True)
        report["memory"] = memory(200 if a.quick else 1000)
    if "speed" in todo:
        n = 1000 if a.quick else 5000
        print(f"3. Fit time of the default Yin-Yang fit vs SurrogateSNNClassifier() ({_cmd('speed', a.quick)})",
              flush=True)
        report["speed"] = speed(n)
    if "tabular" in todo:
        print(f"4. Small tabular problems, defaults ({_cmd('tabular', a.quick)})", flush=True)
        report["tabular"] = tabular(TABULAR[:3] if a.quick else TABULAR, cv=3 if a.quick else 5)
    if "spike" in todo:
        print(f"5. Spike-array input ({_cmd('spike', a.quick)})", flush=True)
        report["spike"] = spike_input(300 if a.quick else 1000)
    if "events" in todo:
        print(f"6. Event streams, exact times against binning ({_cmd('events', a.quick)})", flush=True)
        report["events"] = event_input(300 if a.quick else 1000)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    out = a.out if a.only is None else a.out.replace(".json", f"_{a.only}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(f"written {out}")


if __name__ == "__main__":
    main()
