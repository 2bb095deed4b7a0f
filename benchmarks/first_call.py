"""First-call cost: how much slower the first ``fit`` in a fresh process is than the second.

Each measurement runs in a fresh subprocess (``python benchmarks/first_call.py --child CASE``)
that times, in order: ``import sklearn_snn``, building the data (plus ``--io`` seconds of
simulated data loading), the first ``fit`` and ``predict`` on the training set, and a second
identical ``fit`` and ``predict``. The first fit minus the second is the first-call cost the user
pays (loading or compiling the kernels, numba's start-up, torch's lazy initialisation); ``pred1``
and ``pred2`` show the same for ``predict``. ``total`` is the process's time from its start to the
end of the second predict (what a background warm-up cannot shorten: it moves work, mostly under
the GIL, from the fit to the time before it). Cases:

- ``digits``: ``SurrogateSNNClassifier`` on digits, 1 epoch.
- ``spikes``: the same classifier on a 3D spike array (200 samples, 25 steps, 100 units), 1 epoch.

States (each case gets a new empty kernel cache, filled by its first state, or by an untimed run
first when that is not a ``cold`` one):

- ``cold``: empty kernel cache (``SKLEARN_SNN_KERNEL_CACHE`` and ``NUMBA_CACHE_DIR`` pointed at
  new empty folders), no warm-up (``SKLEARN_SNN_WARMUP=0``): the first-ever fit after a fresh install.
- ``cold-bg``: the same with the background warm-up (``sklearn_snn.warmup.start()`` right after
  the import, as ``import sklearn_snn`` does): on an empty cache it imports numba only.
- ``warm``: a fresh process on the cache an earlier state filled, no warm-up.
- ``bg``: as ``warm``, with the background warm-up started right after the import; ``--io``
  seconds of simulated data loading give it time.
- ``before``, ``cold-before``: ``warm`` and ``cold`` with ``torch.optim``'s optimisers, as the
  trainer had them before issue 20 (their first use imports ``torch._dynamo``, about 1.1 s).
- ``torch``: the pure-torch path (``SKLEARN_SNN_NUMBA=0``), for reference.

These 1-epoch fits are small: on kernels not compiled yet, ``'auto'`` runs them on the torch loops
(``kernels.worth_compiling``), so ``cold`` costs no compilation. ``--compiled`` sets
``SKLEARN_SNN_NUMBA=1`` in the numba states: the first-call cost of a fit large enough to compile.

Run: ``python benchmarks/first_call.py`` (``--cases digits spikes``, ``--states ...``,
``--repeats N``, ``--threads N``, ``--io S``). The figure that matters is first-minus-second per
row; absolute seconds depend on the machine and its load (printed).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def child(case, threads):
    import warnings

    t0 = time.perf_counter()
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import sklearn_snn
    from sklearn_snn import SurrogateSNNClassifier

    if os.environ.get("FIRST_CALL_WARM_UP") == "bg":
        from sklearn_snn import warmup

        warmup.start()
    if os.environ.get("FIRST_CALL_TORCH_OPTIM") == "1":
        import types

        from sklearn_snn._core import training

        def adam(p, **kw):
            return torch.optim.Adam(p, fused=True, **kw)

        def adamw(p, **kw):
            return torch.optim.AdamW(p, fused=True, **kw)

        training.optimizers = types.SimpleNamespace(Adam=adam, AdamW=adamw, SGD=torch.optim.SGD)
    t_pkg = time.perf_counter()
    if case == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    else:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 4, 200)
        rates = 0.02 + 0.1 * (np.arange(100)[None, :] % 4 == y[:, None])
        X = (rng.random((200, 25, 100)) < rates[:, None, :]).astype(np.float32)
    time.sleep(float(os.environ.get("FIRST_CALL_IO", "0")))
    t_data = time.perf_counter()
    times, predict_times = [], []
    for _ in range(2):
        clf = SurrogateSNNClassifier(max_iter=1, random_state=0)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        clf.predict(X)
        predict_times.append(time.perf_counter() - t)
    print(json.dumps({"import": t_pkg - t0, "data": t_data - t_pkg, "fit1": times[0], "fit2": times[1],
                      "predict1": predict_times[0], "predict2": predict_times[1],
                      "total": time.perf_counter() - t0, "dynamo": "torch._dynamo" in sys.modules,
                      "numba": "numba" in sys.modules, "version": sklearn_snn.__version__}))


def run_child(case, env, threads):
    out = subprocess.run([sys.executable, __file__, "--child", case, "--threads", str(threads)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


STATES = {
    "cold": {"SKLEARN_SNN_WARMUP": "0"},
    "cold-before": {"SKLEARN_SNN_WARMUP": "0", "FIRST_CALL_TORCH_OPTIM": "1"},
    "cold-bg": {"FIRST_CALL_WARM_UP": "bg"},
    "warm": {"SKLEARN_SNN_WARMUP": "0"},
    "bg": {"FIRST_CALL_WARM_UP": "bg"},
    "before": {"SKLEARN_SNN_WARMUP": "0", "FIRST_CALL_TORCH_OPTIM": "1"},
    "torch": {"SKLEARN_SNN_NUMBA": "0", "SKLEARN_SNN_WARMUP": "0"},
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", default=None)
    p.add_argument("--cases", nargs="+", default=["digits", "spikes"])
    p.add_argument("--states", nargs="+", default=["cold", "warm", "bg", "before", "torch"], choices=list(STATES))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--io", type=float, default=0.0,
                   help="seconds the child sleeps between loading the data and the fits (the user's data loading)")
    p.add_argument("--compiled", action="store_true",
                   help="SKLEARN_SNN_NUMBA=1 in the numba states: the compiled kernels even for these small fits "
                        "(the first-call cost of a fit large enough to compile; by default 'auto' runs them on the "
                        "torch loops where the kernels are not compiled yet, see kernels.worth_compiling)")
    a = p.parse_args()
    if a.child:
        child(a.child, a.threads)
        return
    print(f"command: python benchmarks/first_call.py --cases {' '.join(a.cases)} --states {' '.join(a.states)} "
          f"--repeats {a.repeats} --threads {a.threads} --io {a.io}{' --compiled' if a.compiled else ''}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    hdr = (f"{'case':8s} {'state':11s} {'import':>7s} {'data':>6s} {'fit1':>7s} {'fit2':>7s} {'first-cost':>10s} "
           f"{'pred1':>6s} {'pred2':>6s} {'total':>7s} {'dynamo':>6s}")
    print(hdr)
    for case in a.cases:
        for _ in range(a.repeats):
            tmp = tempfile.mkdtemp(prefix="snn_first_call_")
            base = dict(os.environ, FIRST_CALL_IO=str(a.io), OMP_NUM_THREADS=str(a.threads),
                        SKLEARN_SNN_KERNEL_CACHE=os.path.join(tmp, "k"), NUMBA_CACHE_DIR=os.path.join(tmp, "n"))
            base.pop("SKLEARN_SNN_NUMBA", None)
            if a.compiled:
                base["SKLEARN_SNN_NUMBA"] = "1"     # the torch state sets 0 over it
            base.pop("SKLEARN_SNN_WARMUP", None)
            try:
                if not a.states[0].startswith("cold") and a.states[0] != "torch":
                    run_child(case, dict(base, SKLEARN_SNN_WARMUP="0"), a.threads)    # fill the cache first
                for state in a.states:
                    if state.startswith("cold"):      # each cold state on its own empty cache
                        shutil.rmtree(tmp, ignore_errors=True)
                    r = run_child(case, dict(base, **STATES[state]), a.threads)
                    print(f"{case:8s} {state:11s} {r['import']:7.2f} {r['data']:6.2f} {r['fit1']:7.2f} {r['fit2']:7.2f} "
                          f"{r['fit1'] - r['fit2']:10.2f} {r['predict1']:6.2f} {r['predict2']:6.2f} {r['total']:7.2f} {'yes' if r['dynamo'] else 'no':>6s}", flush=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
