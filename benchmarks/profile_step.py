"""Where a training step's time goes, and how far each shape is from its arithmetic limit (issue 20, item 6).

For each shape of ``benchmarks/speed.py`` (the same 2-layer network, data and weights), on one thread:

- ``step``: one training step of the core network (forward, backward, Adam), as ``speed.py`` times it;
- ``products``: the dense matrix products of that step (forward ``x W1^T``, ``s1 W2^T``; backward the
  weight gradients ``G1^T x``, ``G2^T s1`` and the input gradient ``G2 W2``; recurrent: ``s_{t-1} Wr``,
  ``g_{t+1} Wr^T`` per step and the ``Wr`` gradient), each run alone with torch at the step's shapes:
  the arithmetic limit of a dense implementation;
- ``ideal``: the step's FLOPs at the throughput of a 1024^3 product measured here (the machine's peak);
- the step split into its parts, each timed alone: the projections of both layers (forward and
  backward, the package's ``sparse_linear``), the two neuron scans (forward and backward), and the
  rest (loss, readout, Adam and autograd's own work: the step minus the parts).

For the recurrent shapes (``S2-rec``) a second table splits what the recurrence adds to the step of
the same shape without it (issue 20, item 4: target ratio <= 1.5x): the recurrent input of the
forward scan (``s_{t-1} W_rec``, sums of the rows of the neurons that spiked), the dense adjoint
products ``g_{t+1} W_rec^T`` (one per step, run alone at the step's shapes: with numba the compiled
backward's blocked product ``rows_times``, which runs at the core's multiply-add peak; without it
``torch.mm``), the ``W_rec`` gradient (``sum_t s_{t-1}^T g_t`` after the loop, sparse), and the rest
of the recurrent backward (what its backward adds beyond the products; near zero or below: the
products run inside the same kernel as the step's neuron updates). ``limit`` is the ratio the step would
have if the recurrence added only the dense adjoint products.

``distance`` is ``step / products``. Below 1 the step beats a dense implementation's arithmetic
(spike inputs: the sparse projection touches only the nonzeros). Times are process CPU time
(``time.process_time``), medians over interleaved repeats, so a loaded machine inflates them less
than the wall clock; they are still inflated under load.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py                       # compiled backend
    OMP_NUM_THREADS=1 SKLEARN_SNN_NUMBA=0 python benchmarks/profile_step.py   # pure-torch path
    OMP_NUM_THREADS=1 python benchmarks/profile_step.py --shapes S1 S3 --repeats 9
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # the shapes, data, weights and network of the speed benchmark


def median_times(fns, repeats):
    """Median process CPU time (ms) of each callable, the repeats interleaved."""
    for f in fns.values():
        f()
        f()
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.process_time()
            f()
            ts[k].append(time.process_time() - t0)
    return {k: sorted(v)[len(v) // 2] * 1e3 for k, v in ts.items()}


def peak_flops():
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    t = median_times({"mm": lambda: a @ b}, 5)["mm"]
    return 2 * 1024 ** 3 / (t * 1e-3)


def products(shape):
    """The dense products of one step at its shapes, as callables, and their FLOPs."""
    T, B, F, H, O, _, _, rec, _ = speed.SHAPES[shape]
    N = T * B
    g = torch.Generator().manual_seed(1)
    x, s1 = torch.rand(N, F, generator=g), (torch.rand(N, H, generator=g) < 0.1).float()
    w1, b1, w2 = torch.randn(H, F, generator=g), torch.randn(H, generator=g), torch.randn(O, H, generator=g)
    g1, g2 = torch.randn(N, H, generator=g), torch.randn(N, O, generator=g)
    fns = [lambda: torch.addmm(b1, x, w1.t()), lambda: s1 @ w2.t(), lambda: g1.t() @ x, lambda: g2.t() @ s1,
           lambda: g2 @ w2]
    flops = 2 * N * (2 * F * H + 3 * H * O)
    if rec:
        wr = torch.randn(H, H, generator=g)
        sb, gb = s1[:B], g1[:B]
        fns += [lambda: [sb @ wr for _ in range(T)], lambda: [gb @ wr.t() for _ in range(T)], lambda: s1.t() @ g1]
        flops += 2 * N * 3 * H * H
    return (lambda: [f() for f in fns]), flops


def parts(shape):
    """The step's projections and scans, each forward + backward alone, as callables."""
    from sklearn_snn._core.kernels import sparse_linear, spiking_scan
    from sklearn_snn._core.neurons import NeuronSpec

    x, _, p, model, rec = speed.make_problem(shape, torch.float32)
    spec = NeuronSpec(model, beta=speed.BETA, threshold=speed.THR, reset="subtract", detach_reset=True)
    w1, b1, w2, b2 = (p[k].clone().requires_grad_() for k in ("w1", "b1", "w2", "b2"))
    wr = p["wr"].clone().requires_grad_() if rec else None
    with torch.no_grad():
        cur1 = torch.nn.functional.linear(x, p["w1"], p["b1"])
        s1 = spiking_scan(cur1, spec, "fast_sigmoid", speed.SLOPE, w_rec=p["wr"])[0]
        cur2 = torch.nn.functional.linear(s1, p["w2"], p["b2"])
    g = torch.Generator().manual_seed(2)
    G1, G2 = torch.randn(cur1.shape, generator=g), torch.randn(cur2.shape, generator=g)

    def proj():
        y1 = sparse_linear(x, w1, b1)
        s = s1.clone().requires_grad_()
        y2 = sparse_linear(s, w2, b2)
        torch.autograd.backward([y1, y2], [G1, G2])

    def scans():
        c1 = cur1.clone().requires_grad_()
        c2 = cur2.clone().requires_grad_()
        o1 = spiking_scan(c1, spec, "fast_sigmoid", speed.SLOPE, w_rec=wr, inplace=True)[0]
        o2 = spiking_scan(c2, spec, "fast_sigmoid", speed.SLOPE, inplace=True)[0]
        torch.autograd.backward([o1, o2], [G1, G2])

    # the clones the two callables above make, timed alone and subtracted from them
    return proj, scans, (lambda: s1.clone()), (lambda: (cur1.clone(), cur2.clone()))


def recurrent_parts(shape):
    """The recurrent layer's scan alone (forward; forward + backward with and without the W_rec
    gradient), the same scan without recurrence, and the T dense adjoint products, as callables."""
    from sklearn_snn._core.kernels import spiking_scan
    from sklearn_snn._core.neurons import NeuronSpec

    x, _, p, model, _ = speed.make_problem(shape, torch.float32)
    spec = NeuronSpec(model, beta=speed.BETA, threshold=speed.THR, reset="subtract", detach_reset=True)
    with torch.no_grad():
        cur1 = torch.nn.functional.linear(x, p["w1"], p["b1"])
    T, B, H = cur1.shape
    G = torch.randn(cur1.shape, generator=torch.Generator().manual_seed(2))
    wr_grad, wr_fixed = p["wr"].clone().requires_grad_(), p["wr"].clone()

    def scan(w, backward):
        def run():
            c = cur1.clone().requires_grad_()
            out = spiking_scan(c, spec, "fast_sigmoid", speed.SLOPE, w_rec=w, inplace=True)[0]
            if backward:
                out.backward(G)
        return run

    g1, wT, rt = torch.randn(B, H), p["wr"].t().contiguous(), torch.empty(B, H)
    from sklearn_snn._core.numba_backend import numba_kernels

    if numba_kernels() is not None:
        # what the compiled backward runs: the blocked product, one per step (here all on one thread)
        from sklearn_snn._core.numba_loops import rows_times

        g1n, wTn, rtn = g1.numpy(), wT.numpy(), rt.numpy()

        def adjoint_products():
            for _ in range(T):
                rows_times(g1n, wTn, rtn, 0, B)
    else:
        def adjoint_products():
            for _ in range(T):
                torch.mm(g1, wT, out=rt)

    return {"fwd_ff": scan(None, False), "fb_ff": scan(None, True), "fwd_rec": scan(wr_grad, False),
            "fb_rec_nowgrad": scan(wr_fixed, True), "fb_rec": scan(wr_grad, True), "adjoint": adjoint_products}


def recurrent_table(shapes, repeats):
    rows = [s for s in shapes if speed.SHAPES[s][7]]
    if not rows:
        return
    print("\n| shape | step ms | same shape without recurrence ms | ratio (target <= 1.5) | recurrent input "
          "(forward) ms | adjoint products g W_rec^T ms | W_rec gradient ms | rest of the recurrent backward ms "
          "| limit ratio (only the adjoint products added) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for shape in rows:
        ff = next((k for k, v in speed.SHAPES.items() if not v[7] and v[:6] == speed.SHAPES[shape][:6]), None)
        if ff is None:
            continue
        t = median_times({"step": step_fn(shape), "step_ff": step_fn(ff), **recurrent_parts(shape)}, repeats)
        fwd = t["fwd_rec"] - t["fwd_ff"]
        wgrad = t["fb_rec"] - t["fb_rec_nowgrad"]
        rest = (t["fb_rec_nowgrad"] - t["fwd_rec"]) - (t["fb_ff"] - t["fwd_ff"]) - t["adjoint"]
        print(f"| {shape} | {t['step']:.2f} | {t['step_ff']:.2f} ({ff}) | {t['step'] / t['step_ff']:.2f} | {fwd:.2f} | "
              f"{t['adjoint']:.2f} | {wgrad:.2f} | {rest:.2f} | {(t['step_ff'] + t['adjoint']) / t['step_ff']:.2f} |")


def step_fn(shape):
    x, y, p, model, rec = speed.make_problem(shape, torch.float32)
    params, fn, _ = speed.build("core", p, model, rec, torch.float32)
    opt = torch.optim.Adam(params, lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        fn(x, y).backward()
        opt.step()

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="+", default=["S1", "S2", "S3", "S2-rec"], choices=list(speed.SHAPES))
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from sklearn_snn._core.numba_backend import numba_kernels

    path = "compiled (numba)" if numba_kernels() is not None else "pure torch (SKLEARN_SNN_NUMBA=0 or no numba)"
    peak = peak_flops()
    print(f"# {' '.join(['python'] + sys.argv)}")
    print(f"# backend: {path}; 1 thread; process CPU time, median of {a.repeats}; peak {peak / 1e9:.0f} GFLOP/s "
          f"(1024^3 product); load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| shape | step ms | dense products alone ms | ideal ms (FLOPs / peak) | distance (step / products) "
          "| projections ms | scans ms | rest ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for shape in a.shapes:
        prod, flops = products(shape)
        proj, scans, copy_p, copy_s = parts(shape)
        t = median_times({"step": step_fn(shape), "prod": prod, "proj": proj, "scans": scans, "copy_p": copy_p,
                          "copy_s": copy_s}, a.repeats)
        proj_ms = t["proj"] - t["copy_p"]
        scans_ms = t["scans"] - t["copy_s"]
        rest = t["step"] - proj_ms - scans_ms
        print(f"| {shape} | {t['step']:.2f} | {t['prod']:.2f} | {flops / peak * 1e3:.2f} | "
              f"{t['step'] / t['prod']:.2f} | {proj_ms:.2f} | {scans_ms:.2f} | {rest:.2f} |")
    recurrent_table(a.shapes, a.repeats)


if __name__ == "__main__":
    main()
