"""First-call cost: how much slower the first ``fit`` in a fresh process is than the second.

Each measurement runs in a fresh subprocess (``python benchmarks/first_call.py --child CASE``)
that times, in order: ``import sklearn_snn``, loading the compiled backend (import of numba,
start of its thread pool), the first ``fit`` and a second identical ``fit``. The first fit minus the
second is the first-call cost the user pays (compilation or loading of the kernels, torch's lazy
initialisation). Cases:

- ``digits``: ``SurrogateSNNClassifier`` on digits, 1 epoch.
- ``spikes``: the same classifier on a 3D spike array (200 samples, 25 steps, 100 units), 1 epoch.

Cache states, per case:

- ``cold``: empty kernel cache (``SKLEARN_SNN_KERNEL_CACHE`` and ``NUMBA_CACHE_DIR`` pointed at
  new empty folders): the first-ever fit after a fresh install.
- ``warm``: a second fresh process on the cache the cold run filled.
- ``warmup``: as ``warm``, with :func:`~sklearn_snn._core.numba_backend.warm_up` called (and
  timed, column ``warm_up``) between the imports and the first fit: what a background warm-up
  during the user's data loading can take off the first fit at best.
- ``bg``: as ``warm``, with ``warm_up(background=True)`` started right after ``import sklearn_snn``
  (``--io`` seconds of simulated data loading give it time).
- ``torch``: the pure-torch path (``SKLEARN_SNN_NUMBA=0``), for reference.

Run: ``python benchmarks/first_call.py`` (``--cases digits spikes``, ``--repeats N``,
``--threads N``). The ratio that matters is first-minus-second per row; the absolute seconds
depend on the machine and its load.
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
    t_torch = time.perf_counter()
    import sklearn_snn  # noqa: F401
    from sklearn_snn import SurrogateSNNClassifier
    from sklearn_snn._core import numba_backend

    if os.environ.get("FIRST_CALL_WARM_UP") == "bg":
        numba_backend.warm_up(background=True)
    t_pkg = time.perf_counter()
    have = numba_backend.numba_kernels() is not None
    t_nb = time.perf_counter()
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
    t_warm = 0.0
    if os.environ.get("FIRST_CALL_WARM_UP") == "1":
        numba_backend.warm_up()
        t_warm = time.perf_counter() - t_data
    times = []
    for _ in range(2):
        clf = SurrogateSNNClassifier(max_iter=1, random_state=0)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        times.append(time.perf_counter() - t)
    print(json.dumps({"import_torch": t_torch - t0, "import_pkg": t_pkg - t_torch, "load_backend": t_nb - t_pkg,
                      "data": t_data - t_nb, "warm_up": t_warm, "fit1": times[0], "fit2": times[1], "numba": have}))


def run_child(case, env, threads):
    out = subprocess.run([sys.executable, __file__, "--child", case, "--threads", str(threads)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", default=None)
    p.add_argument("--cases", nargs="+", default=["digits", "spikes"])
    p.add_argument("--states", nargs="+", default=["cold", "warm", "warmup", "torch"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--io", type=float, default=0.0,
                   help="seconds the child sleeps between loading the data and the fits (the user's data loading)")
    a = p.parse_args()
    if a.child:
        child(a.child, a.threads)
        return
    print(f"command: python benchmarks/first_call.py --cases {' '.join(a.cases)} --states {' '.join(a.states)} "
          f"--repeats {a.repeats} --threads {a.threads} --io {a.io}")
    hdr = f"{'case':8s} {'cache':6s} {'import':>7s} {'backend':>8s} {'fit1':>7s} {'fit2':>7s} {'first-cost':>10s} {'warm_up':>8s}"
    print(hdr)
    for case in a.cases:
        for _ in range(a.repeats):
            tmp = tempfile.mkdtemp(prefix="snn_first_call_")
            base = dict(os.environ, FIRST_CALL_IO=str(a.io), OMP_NUM_THREADS=str(a.threads), SKLEARN_SNN_KERNEL_CACHE=os.path.join(tmp, "k"),
                        NUMBA_CACHE_DIR=os.path.join(tmp, "n"))
            try:
                for state in a.states:
                    env = dict(base)
                    if state == "torch":
                        env["SKLEARN_SNN_NUMBA"] = "0"
                    if state == "warmup":
                        env["FIRST_CALL_WARM_UP"] = "1"
                    if state == "bg":
                        env["FIRST_CALL_WARM_UP"] = "bg"
                    r = run_child(case, env, a.threads)
                    print(f"{case:8s} {state:6s} {r['import_torch'] + r['import_pkg']:7.2f} {r['load_backend']:8.2f} "
                          f"{r['fit1']:7.2f} {r['fit2']:7.2f} {r['fit1'] - r['fit2']:10.2f} {r['warm_up']:8.2f}", flush=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
