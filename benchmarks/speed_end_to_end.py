"""End-to-end training speed in a fresh process (issue 20): ``fit`` of a few epochs, first call
included, against snnTorch, Norse and SpikingJelly loops of the same network.

The per-step table of ``benchmarks/speed.py`` measures warmed-up steps. A user pays more: the first
call of a process (torch's optimiser machinery, loading or compiling the kernels) and everything
``fit`` does around the steps. Here every cell is a fresh subprocess that builds an anchor-shaped
data set (``n_batches`` minibatches of the shape's batch size, the shape's input kind), then times,
after the imports, ``epochs`` epochs of training:

core          ``SurrogateSNNClassifier(hidden_layer_sizes=(H,), readout='spike_count', max_iter=epochs,
              batch_size=B, neuron='lif', reset='subtract', surrogate='fast_sigmoid')`.fit(X, y)`` on
              the (N, T, F) array: validation, encoding, everything included.
              The background warm-up that ``import sklearn_snn`` starts runs (``SKLEARN_SNN_WARMUP=1``).
core-before   ``core`` as the trainer was before issue 20: torch.optim's optimisers (their first use
              imports ``torch._dynamo``), no warm-up.
core-torch    the same with the compiled backend disabled (``SKLEARN_SNN_NUMBA=0``), no warm-up.
snntorch, norse, sj-m, sj-s, plain
              the loops of ``benchmarks/speed.py`` (same 2-layer LIF network, its weights), trained
              with Adam over the same minibatches for the same epochs: only the steps, no
              validation; so the comparison favours them.

Cache state for ``core``: whatever the kernel cache holds (``--cold`` points it at an empty folder
per cell: the first fit after a fresh install). The table gives seconds per cell and the speed-up of
``core`` over the fastest anchor.

Run: ``python benchmarks/speed_end_to_end.py`` (``--shapes S2 S3``, ``--epochs 3``, ``--n-batches 4``, ``--repeat 1``,
``--threads 2``, ``--cold``, ``--variants ...``). Times on a shared machine are noisy; ratios between
cells of one run are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = ["snntorch", "norse", "sj-m", "sj-s"]
VARIANTS = ["core", "core-before", "core-torch", *ANCHORS, "plain"]


def child(variant, shape, epochs, n_batches, threads):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    if os.environ.get("E2E_TORCH_INIT") == "1":
        import torch._dynamo
    sys.path.insert(0, HERE)
    import speed

    T, B, F, H, O, kind, _, _, _ = speed.SHAPES[shape]
    g = torch.Generator().manual_seed(0)
    N = B * n_batches
    if kind == "spikes":
        X = (torch.rand(N, T, F, generator=g) < 0.1).float()
    else:
        X = torch.rand(N, T, F, generator=g)
    y = torch.arange(N) % O
    if variant in ("core", "core-torch", "core-before"):
        import warnings

        from sklearn_snn import SurrogateSNNClassifier, warmup

        if variant == "core":
            warmup.start()          # what ``import sklearn_snn`` starts (a no-op when it already did)
        else:
            # the trainer as it was before issue 20: torch.optim's optimisers, whose first use
            # imports torch._dynamo (about 1.1 s), no background warm-up
            import types

            from sklearn_snn._core import training

            def adam(p, **kw):
                return torch.optim.Adam(p, fused=True, **kw)

            def adamw(p, **kw):
                return torch.optim.AdamW(p, fused=True, **kw)

            if variant == "core-before":
                training.optimizers = types.SimpleNamespace(Adam=adam, AdamW=adamw, SGD=torch.optim.SGD)

        clf = SurrogateSNNClassifier(hidden_layer_sizes=(H,), readout="spike_count", max_iter=epochs,
                                     batch_size=B, neuron="lif", reset="subtract", surrogate="fast_sigmoid",
                                     tau_mem=1.0 / (1.0 - speed.BETA), random_state=0)
        Xn, yn = X.numpy(), y.numpy()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(Xn, yn)
        return time.perf_counter() - t0
    if variant != "plain":
        __import__({"snntorch": "snntorch", "norse": "norse", "sj-m": "spikingjelly",
                    "sj-s": "spikingjelly"}[variant])
    x_tb = X.transpose(0, 1).contiguous()          # (T, N, F): the loops take time first
    _, _, p, _, _ = speed.make_problem(shape, torch.float32)
    t0 = time.perf_counter()
    params, fn, _ = speed.build(variant, p, "lif", False, torch.float32)
    params = [q.detach().clone().requires_grad_(True) if not q.requires_grad else q for q in params]
    opt = torch.optim.Adam(params, lr=2e-3)
    for _ in range(epochs):
        perm = torch.randperm(N, generator=g)
        for i in range(n_batches):
            idx = perm[i * B:(i + 1) * B]
            opt.zero_grad()
            loss = fn(x_tb[:, idx], y[idx])
            loss.backward()
            opt.step()
    del np
    return time.perf_counter() - t0


def run_cell(a, shape, v):
    """Seconds of one fresh-process cell (None when it failed; the error is printed)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), E2E_TORCH_INIT="1" if a.torch_init else "0")
    tmp = None
    env.pop("SKLEARN_SNN_NUMBA", None)
    env["SKLEARN_SNN_WARMUP"] = "1" if v == "core" else "0"
    if v == "core-torch":
        env["SKLEARN_SNN_NUMBA"] = "0"
    if a.cold and v in ("core", "core-before"):
        tmp = tempfile.mkdtemp(prefix="snn_e2e_")
        env.update(SKLEARN_SNN_KERNEL_CACHE=os.path.join(tmp, "k"), NUMBA_CACHE_DIR=os.path.join(tmp, "n"))
    cmd = [sys.executable, __file__, "--child", v, shape, "--epochs", str(a.epochs),
           "--n-batches", str(a.n_batches), "--threads", str(a.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    if out.returncode != 0:
        print(f"{shape} {v}: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    t = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    print(f"{shape:6s} {v:10s} {t:8.2f} s", flush=True)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="+", default=["S2", "S3"])
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-batches", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="an empty kernel cache per core cell")
    ap.add_argument("--repeat", type=int, default=1,
                    help="fresh processes per cell, run in interleaved rounds; the table gives each cell's fastest "
                         "(on a loaded machine the minimum is the least disturbed run)")
    ap.add_argument("--torch-init", action="store_true",
                    help="import torch._dynamo before the timer in every variant (torch's own first-optimiser cost, "
                         "the same for all; what a background sklearn_snn warm-up hides)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps({"seconds": child(a.child[0], a.child[1], a.epochs, a.n_batches, a.threads)}))
        return
    print("command: python benchmarks/speed_end_to_end.py --shapes " + " ".join(a.shapes) + " --variants "
          + " ".join(a.variants) + f" --epochs {a.epochs} --n-batches {a.n_batches} --threads {a.threads}"
          + (" --cold" if a.cold else "") + (" --torch-init" if a.torch_init else "")
          + (f" --repeat {a.repeat}" if a.repeat > 1 else ""))
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    runs = {}
    for _ in range(max(1, a.repeat)):
        for shape in a.shapes:
            for v in a.variants:
                t = run_cell(a, shape, v)
                if t is not None:
                    runs.setdefault((shape, v), []).append(t)
    res = {k: min(ts) for k, ts in runs.items()}
    print()
    print(f"{'shape':6s} " + " ".join(f"{v:>10s}" for v in a.variants) + "   core/best-anchor  before/best  core-torch/best")
    for shape in a.shapes:
        row = [res.get((shape, v)) for v in a.variants]
        anchors = [res[shape, v] for v in ANCHORS if (shape, v) in res]
        best = min(anchors) if anchors else None
        sp = [f"{best / res[shape, c]:.1f}x" if best and (shape, c) in res else "-" for c in ("core", "core-before", "core-torch")]
        print(f"{shape:6s} " + " ".join(f"{t:10.2f}" if t is not None else f"{'-':>10s}" for t in row)
              + f"   {sp[0]:>16s}  {sp[1]:>11s}  {sp[2]:>15s}")


if __name__ == "__main__":
    main()
