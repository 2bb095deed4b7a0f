"""Training-step speed of the core against snnTorch, Norse, SpikingJelly and a plain torch loop (issue 8).

One training step = forward over all time steps, backward, Adam step, of the same 2-layer LIF network
(input -> LIF hidden -> LIF output, fast-sigmoid surrogate, loss = cross-entropy of the output spike
counts). Every (shape, variant) cell runs in its own subprocess, so the memory it adds is its own; the
rounds are interleaved (round 1 runs every cell once, then round 2, ...), so slow phases of a shared
machine hit all variants alike, and ratios are taken between medians measured in the same run.

What each row computes (u = membrane before reset, v = after, s = spike, k = slope 10, beta 0.9,
threshold 1; all rows use the same weights, input and labels):

core          ``sklearn_snn._core.network.SNN`` (readout 'spike_count'): u_t = beta v_{t-1} + W x_t + b,
              s_t = H(u_t - 1), v_t = u_t - s_t (subtract reset, reset detached from the graph),
              surrogate 1 / (1 + k |u - 1|)^2. Compiled numba scan when numba is installed.
core-torch    the same with the compiled backend disabled (SKLEARN_SNN_NUMBA=0): the pure-torch
              fallback that also runs on CUDA.
plain         what a user writes without a library: per step ``linear`` -> LIF -> ``linear`` -> LIF
              with a surrogate spike as a custom autograd function; same semantics as ``core``.
snntorch      ``snn.Leaky(beta, spike_grad=surrogate.fast_sigmoid(k))`` with its default
              ``reset_delay=True``: the reset of a spike at t is subtracted at t+1 *after* the decay,
              u_t = beta u_{t-1} + W x_t + b - s_{t-1} (quirk: not beta (u - s)); spikes at u > thr.
norse         ``LIFBoxCell`` (LIF without synaptic current), dt = 1e-3, tau_mem_inv = (1-beta)/dt, so
              u_t = v + dt tau_mem_inv (W' x_t + b' - v); weights W' = W / (dt tau_mem_inv) so the dynamics
              equal the others'. Reset to zero with the gradient flowing through the reset; quirk: its
              SuperSpike surrogate ignores the slope (1 / (1 + |u - 1|)^2 whatever alpha is).
sj-m, sj-s    SpikingJelly ``LIFNode(tau=1/(1-beta), decay_input=False, v_reset=None, detach_reset=True)``
              in multi-step ('m', torch backend) and single-step ('s') mode: the same dynamics as
              ``core``; quirk: the nearest surrogate, ``SoftSign(alpha=k)``, is k/2 times the
              fast sigmoid (1 / (1 + k|x|)^2).

Correctness check (on unless ``--no-check``): each variant runs one step in float64 on a cut of
the shape (T <= 30, B = 8) and its loss and weight gradients are compared with the plain loop run
under that variant's semantics (the quirks above); the table's "check" column is the largest
relative gradient error and the relative loss difference (float64: < 1e-6 passes; snnTorch < 1e-5, since
it casts its spikes, and so their gradients, to float32 whatever the network's dtype).

Also printed: the matmul-bound lower limit (FLOPs of the step's matmuls / the matmul throughput
measured here on the step's largest matmul) and, for S2, the same limit counting only the nonzero
inputs (the sparse input path can go below the dense limit).

GPU (``--device cuda``, issue 21): per cell the CUDA-synchronised time of forward + backward (+ Adam for
S1-S3) and the peak GPU memory (torch.cuda.max_memory_allocated), for S1-S3 and ON, the Open Neuromorphic
shape (Linear(16384) + LIF, batch 16, T = 500, float32; RTX 4090 anchors: snnTorch 3.08 s, SpikingJelly
torch 1.34 s / CuPy 0.118 s, Norse + torch.compile 0.109 s). Rows: snnTorch, Norse without and with
torch.compile (of the step), SpikingJelly multi-step (its own fused kernels) and single-step (its
cupy/triton backends where its version has them), the plain loop, the package's torch and Triton scans.

Usage::

    python benchmarks/speed.py             # full: all shapes, 3 rounds x 4 timed steps per cell
    python benchmarks/speed.py --device cuda --shapes ON S3    # the GPU table (benchmarks/gpu_check.sh)
    python benchmarks/speed.py --quick     # S1 and S3 only, fewer steps: a smoke run
    python benchmarks/speed.py --shapes S2 S2-rec S2-alif --variants core core-torch plain

The anchors need the ``bench`` extra: ``pip install torch==<your torch> snntorch norse spikingjelly``.
Times on a shared machine are noisy: report ``uptime`` load with them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time

BETA, THR, SLOPE = 0.9, 1.0, 10.0
SHAPES = {
    # name: (T, B, n_in, n_hidden, n_out, input kind, model, recurrent, input gain)
    "S1": (25, 128, 64, 128, 10, "dense", "lif", False, 2.0),
    "S2": (100, 64, 700, 256, 20, "spikes", "lif", False, 4.0),
    "S3": (500, 32, 100, 128, 10, "dense", "lif", False, 1.5),
    "S2-rec": (100, 64, 700, 256, 20, "spikes", "lif", True, 4.0),
    "S2-alif": (100, 64, 700, 256, 20, "spikes", "alif", False, 4.0),
}
ANCHORS = ("snntorch", "norse", "sj-m", "sj-s")
VARIANTS = ("core", "core-torch", "plain") + ANCHORS
# what the plain loop must compute to equal each variant in the check
SEMANTICS = {
    "core": dict(reset="subtract"),
    "core-torch": dict(reset="subtract"),
    "plain": dict(reset="subtract"),
    "snntorch": dict(reset="delayed"),
    "norse": dict(reset="zero", detach=False, slope=1.0, norse=True),
    "sj-m": dict(reset="subtract", sg_scale=SLOPE / 2),
    "sj-s": dict(reset="subtract", sg_scale=SLOPE / 2),
}


def available(variant):
    mod = {"snntorch": "snntorch", "norse": "norse", "sj-m": "spikingjelly", "sj-s": "spikingjelly"}.get(variant)
    if mod is None:
        return True
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def supports(variant, shape):
    _, _, _, _, _, _, model, rec, _ = SHAPES[shape]
    if variant in ANCHORS:
        return model == "lif" and not rec      # anchors only for the shared feed-forward LIF network
    return True


# ---------------------------------------------------------------------------------------------
# data and weights (identical for every variant)
# ---------------------------------------------------------------------------------------------

def make_problem(shape, dtype, cut=False):
    import torch

    T, B, F, H, O, kind, model, rec, gain = SHAPES[shape]
    if cut:
        T, B = min(T, 30), 8
    g = torch.Generator().manual_seed(0)
    if kind == "spikes":
        x = (torch.rand(T, B, F, generator=g) < 0.1).to(dtype)
    else:
        x = torch.rand(T, B, F, generator=g).to(dtype)
    y = torch.randint(0, O, (B,), generator=g)
    w1 = ((torch.rand(H, F, generator=g) * 2 - 1) * gain / F ** 0.5).to(dtype)
    b1 = ((torch.rand(H, generator=g) * 2 - 1) * 0.1).to(dtype)
    w2 = ((torch.rand(O, H, generator=g) * 2 - 1) * 3.0 / H ** 0.5).to(dtype)
    b2 = ((torch.rand(O, generator=g) * 2 - 1) * 0.1).to(dtype)
    wr = ((torch.rand(H, H, generator=g) * 2 - 1) / H ** 0.5).to(dtype) if rec else None
    return x, y, dict(w1=w1, b1=b1, w2=w2, b2=b2, wr=wr), model, rec


# ---------------------------------------------------------------------------------------------
# the variants: each returns (params in order w1, b1, w2, b2[, wr], step_loss(x, y) -> loss)
# ---------------------------------------------------------------------------------------------

def build_core(p, model, rec, dtype):
    import torch
    from sklearn_snn._core.network import SNN
    from sklearn_snn._core.neurons import NeuronSpec

    H, F = p["w1"].shape
    O = p["w2"].shape[0]
    spec = NeuronSpec(model, beta=BETA, threshold=THR, reset="subtract", detach_reset=True)
    net = SNN(F, (H,), O, spec, "fast_sigmoid", SLOPE, recurrent=rec, readout="spike_count", dtype=dtype)
    with torch.no_grad():
        net.hidden[0].weight.copy_(p["w1"])
        net.hidden[0].bias.copy_(p["b1"])
        net.out.weight.copy_(p["w2"])
        net.out.bias.copy_(p["b2"])
        if rec:
            # core: step t receives s_{t-1} @ w_rec; the plain loop uses the same convention
            net.hidden[0].w_rec.copy_(p["wr"])
    params = [net.hidden[0].weight, net.hidden[0].bias, net.out.weight, net.out.bias]
    if rec:
        params.append(net.hidden[0].w_rec)

    def loss_fn(x, y):
        logits, _ = net(x)
        return torch.nn.functional.cross_entropy(logits, y)

    return params, loss_fn


class _PlainSpike:
    fn = None


def _plain_spike_fn(torch):
    if _PlainSpike.fn is None:
        class Spike(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z, k, scale):
                ctx.save_for_backward(z)
                ctx.k, ctx.scale = k, scale
                return (z >= 0).to(z.dtype)

            @staticmethod
            def backward(ctx, g):
                (z,) = ctx.saved_tensors
                return g * ctx.scale / (1.0 + ctx.k * z.abs()) ** 2, None, None

        _PlainSpike.fn = Spike.apply
    return _PlainSpike.fn


def build_plain(p, model, rec, dtype, reset="subtract", detach=True, slope=SLOPE, sg_scale=1.0, norse=False):
    """A per-step autograd loop; ``reset``/``detach``/``slope``/``sg_scale``/``norse`` give the anchors'
    semantics for the check (``norse``: u = v + c (W'x + b' - v) with W' = W / c)."""
    import torch

    spike = _plain_spike_fn(torch)
    params = [t.clone().requires_grad_() for t in (p["w1"], p["b1"], p["w2"], p["b2"])]
    if rec:
        params.append(p["wr"].clone().requires_grad_())
    c = 1.0 - BETA
    rho, adapt = 0.97, 0.2

    def lif(cur, st):
        v, s_prev, a = st
        if norse:
            u = v + c * (cur / c - v)
        elif reset == "delayed":
            u = BETA * v + cur - s_prev.detach() * THR     # snnTorch: v is the unreset u_{t-1}
        else:
            u = BETA * v + cur
        th = THR + adapt * a if model == "alif" else THR
        z = u - th
        s = spike(z, slope, sg_scale)
        sr = s.detach() if detach else s
        if reset == "delayed":
            v = u
        elif reset == "zero":
            v = u * (1.0 - sr)
        else:
            v = u - THR * sr
        if model == "alif":
            a = rho * a + s
        return s, (v, s, a)

    def loss_fn(x, y):
        T, B, _ = x.shape
        H, O = params[0].shape[0], params[2].shape[0]
        z1, z2 = x.new_zeros(B, H), x.new_zeros(B, O)
        st1, st2 = (z1, z1, z1), (z2, z2, z2)
        count = x.new_zeros(B, O)
        for t in range(T):
            cur = torch.nn.functional.linear(x[t], params[0], params[1])
            if rec:
                cur = cur + st1[1] @ params[4]
            s1, st1 = lif(cur, st1)
            s2, st2 = lif(torch.nn.functional.linear(s1, params[2], params[3]), st2)
            count = count + s2
        return torch.nn.functional.cross_entropy(count, y)

    return params, loss_fn


def build_snntorch(p, dtype):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    fc1 = torch.nn.Linear(p["w1"].shape[1], p["w1"].shape[0], dtype=dtype)
    fc2 = torch.nn.Linear(p["w2"].shape[1], p["w2"].shape[0], dtype=dtype)
    with torch.no_grad():
        fc1.weight.copy_(p["w1"]); fc1.bias.copy_(p["b1"]); fc2.weight.copy_(p["w2"]); fc2.bias.copy_(p["b2"])
    lif1 = snn.Leaky(beta=BETA, threshold=THR, spike_grad=surrogate.fast_sigmoid(slope=SLOPE))
    lif2 = snn.Leaky(beta=BETA, threshold=THR, spike_grad=surrogate.fast_sigmoid(slope=SLOPE))

    def loss_fn(x, y):
        mem1, mem2 = lif1.reset_mem(), lif2.reset_mem()
        count = 0
        for t in range(x.shape[0]):
            s1, mem1 = lif1(fc1(x[t]), mem1)
            s2, mem2 = lif2(fc2(s1.to(x.dtype)), mem2)   # snnTorch's spikes are float32 always
            count = count + s2
        return torch.nn.functional.cross_entropy(count, y)

    return [fc1.weight, fc1.bias, fc2.weight, fc2.bias], loss_fn


def build_norse(p, dtype):
    import torch
    from norse.torch import LIFBoxCell, LIFBoxParameters

    dt = 1e-3
    c = 1.0 - BETA
    fc1 = torch.nn.Linear(p["w1"].shape[1], p["w1"].shape[0], dtype=dtype)
    fc2 = torch.nn.Linear(p["w2"].shape[1], p["w2"].shape[0], dtype=dtype)
    with torch.no_grad():
        fc1.weight.copy_(p["w1"] / c); fc1.bias.copy_(p["b1"] / c)
        fc2.weight.copy_(p["w2"] / c); fc2.bias.copy_(p["b2"] / c)
    prm = LIFBoxParameters(tau_mem_inv=torch.tensor(c / dt, dtype=dtype), v_leak=torch.tensor(0.0, dtype=dtype),
                           v_th=torch.tensor(THR, dtype=dtype), v_reset=torch.tensor(0.0, dtype=dtype),
                           method="super", alpha=torch.tensor(SLOPE, dtype=dtype))
    lif1, lif2 = LIFBoxCell(prm, dt=dt), LIFBoxCell(prm, dt=dt)

    def loss_fn(x, y):
        s1_state = s2_state = None
        count = 0
        for t in range(x.shape[0]):
            s1, s1_state = lif1(fc1(x[t]), s1_state)
            s2, s2_state = lif2(fc2(s1), s2_state)
            count = count + s2
        return torch.nn.functional.cross_entropy(count, y)

    # Norse's parameters are W / c: report gradients w.r.t. W (chain rule: dL/dW = dL/dW' / c)
    return [fc1.weight, fc1.bias, fc2.weight, fc2.bias], loss_fn, 1.0 / c


def build_sj(p, dtype, mode):
    import torch
    from spikingjelly.activation_based import functional, neuron, surrogate

    fc1 = torch.nn.Linear(p["w1"].shape[1], p["w1"].shape[0], dtype=dtype)
    fc2 = torch.nn.Linear(p["w2"].shape[1], p["w2"].shape[0], dtype=dtype)
    with torch.no_grad():
        fc1.weight.copy_(p["w1"]); fc1.bias.copy_(p["b1"]); fc2.weight.copy_(p["w2"]); fc2.bias.copy_(p["b2"])
    kw = dict(tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THR, v_reset=None, detach_reset=True,
              surrogate_function=surrogate.SoftSign(alpha=SLOPE), step_mode=mode)
    lif1, lif2 = neuron.LIFNode(**kw), neuron.LIFNode(**kw)
    net = torch.nn.ModuleList([fc1, lif1, fc2, lif2])

    def loss_fn(x, y):
        functional.reset_net(net)
        if mode == "m":
            count = lif2(fc2(lif1(fc1(x)))).sum(0)
        else:
            count = 0
            for t in range(x.shape[0]):
                count = count + lif2(fc2(lif1(fc1(x[t]))))
        return torch.nn.functional.cross_entropy(count, y)

    return [fc1.weight, fc1.bias, fc2.weight, fc2.bias], loss_fn


def build(variant, p, model, rec, dtype, semantics=None):
    scale = 1.0
    if variant in ("core", "core-torch"):
        params, fn = build_core(p, model, rec, dtype)
    elif variant == "plain":
        params, fn = build_plain(p, model, rec, dtype, **(semantics or {}))
    elif variant == "snntorch":
        params, fn = build_snntorch(p, dtype)
    elif variant == "norse":
        params, fn, scale = build_norse(p, dtype)
    elif variant in ("sj-m", "sj-s"):
        params, fn = build_sj(p, dtype, variant[-1])
    else:
        raise ValueError(variant)
    return params, fn, scale


# ---------------------------------------------------------------------------------------------
# worker: one cell in its own process
# ---------------------------------------------------------------------------------------------

def _rss_kb(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _pin_malloc():
    """Pin glibc's mmap threshold at 64 KiB (Linux/glibc only), so every large block is mapped on
    allocation and unmapped on free: peak RSS then follows the peak of live allocations instead of
    also counting freed blocks glibc keeps in its heap after raising its dynamic threshold."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)   # M_MMAP_THRESHOLD
        return True
    except (OSError, AttributeError):
        return False


def worker(args):
    if args.malloc == "pinned":
        _pin_malloc()
    if args.variant == "core-torch":
        os.environ["SKLEARN_SNN_NUMBA"] = "0"
    import gc

    import torch

    torch.set_num_threads(args.threads)
    out = {}
    if args.check:
        dtype = torch.float64
        x, y, p, model, rec = make_problem(args.shape, dtype, cut=True)
        params, fn, scale = build(args.variant, p, model, rec, dtype, SEMANTICS.get(args.variant))
        loss = fn(x, y)
        loss.backward()
        out["loss"] = float(loss)
        out["grads"] = [(t.grad * (scale if i < 4 else 1.0)).flatten().tolist() for i, t in enumerate(params)]
        if args.semantics_of:
            params2, fn2, _ = build("plain", p, model, rec, dtype, SEMANTICS[args.semantics_of])
            loss2 = fn2(x, y)
            loss2.backward()
            out["ref_loss"] = float(loss2)
            out["ref_grads"] = [t.grad.flatten().tolist() for t in params2]
        print(json.dumps(out))
        return
    x, y, p, model, rec = make_problem(args.shape, torch.float32)
    params, fn, _ = build(args.variant, p, model, rec, torch.float32)
    opt = torch.optim.Adam(params, lr=1e-4)

    def step(xx, yy):
        opt.zero_grad(set_to_none=True)
        loss = fn(xx, yy)
        loss.backward()
        opt.step()
        return float(loss)

    # one-time library initialisation (compiled kernels loaded, lazy imports) on a tiny input, so
    # the memory counted below is what training adds, not what loading a library costs
    step(x[:3, :2].contiguous(), y[:2])
    gc.collect()
    before = _rss_kb()
    have_reset = _reset_peak()
    peak0 = _rss_kb("VmHWM") if have_reset else None
    times = []
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for i in range(args.warmup + args.steps):
        t0 = clock()
        step(x, y)
        dt = clock() - t0
        if i >= args.warmup:
            times.append(dt)
    peak = _rss_kb("VmHWM")
    out.update(times=times, rss_before_mb=before / 1024, added_mb=(peak - before) / 1024 if have_reset else None,
               peak0=peak0)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------

def run_cell(variant, shape, a, check=False, semantics_of=None, malloc="default"):
    steps = 3 if malloc == "pinned" else a.steps
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--variant", variant, "--shape", shape,
           "--threads", str(a.threads), "--steps", str(steps), "--warmup", str(a.warmup), "--clock", a.clock,
           "--malloc", malloc]
    if check:
        cmd.append("--check")
    if semantics_of:
        cmd += ["--semantics-of", semantics_of]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def matmul_limit(shape, threads):
    """Seconds of the step's matmuls at the throughput measured on its largest one."""
    import torch

    torch.set_num_threads(threads)
    T, B, F, H, O, kind, model, rec, _ = SHAPES[shape]
    N = T * B
    a, b = torch.rand(N, F), torch.rand(F, H)
    for _ in range(2):
        a @ b
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    flops_per_s = 2 * N * F * H / sorted(ts)[len(ts) // 2]
    # forward: x W1^T, s1 W2^T; backward: weight grads of both, input grad of layer 2 (not of layer 1:
    # the data needs none); recurrent: s_{t-1} Wr forward, g Wr^T and the Wr gradient backward
    dense = 2 * N * (2 * F * H + 3 * H * O + (3 * H * H if rec else 0))
    sparse = dense - 2 * N * 2 * F * H * (0.9 if kind == "spikes" else 0.0)
    return dense / flops_per_s, sparse / flops_per_s, flops_per_s


def fmt_ms(ts):
    ts = sorted(ts)
    med = ts[len(ts) // 2] if len(ts) % 2 else 0.5 * (ts[len(ts) // 2 - 1] + ts[len(ts) // 2])
    return med * 1e3, ts[0] * 1e3, ts[-1] * 1e3


def rel_err(a, b):
    num = max(abs(u - v) for u, v in zip(a, b)) if a else 0.0
    den = max(max(abs(v) for v in b), 1e-12) if b else 1.0
    return num / den


# ---------------------------------------------------------------------------------------------
# --device cuda: the anchor table on a GPU (see the module docstring)
# ---------------------------------------------------------------------------------------------
GPU_SHAPES = {"S1": None, "S2": None, "S3": None, "ON": (500, 16, 16384, 16384)}
GPU_ANCHORS = ("snntorch", "norse", "norse-compile", "sj-m", "sj-s", "sj-cupy", "sj-triton")
GPU_VARIANTS = GPU_ANCHORS + ("plain", "core-torch", "core-triton")


def _sj_node(mode, backend=None):
    from spikingjelly.activation_based import neuron, surrogate

    try:
        return neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THR, v_reset=None,
                              detach_reset=True, surrogate_function=surrogate.SoftSign(alpha=SLOPE), step_mode=mode,
                              **({"backend": backend} if backend else {}))
    except TypeError:   # SpikingJelly 2 has no backend argument: its multi-step node picks its own kernels
        raise RuntimeError(f"this SpikingJelly has no backend={backend!r} (its own kernels: row sj-m)") from None


def build_one_layer(variant, w, b):
    """Linear + LIF, loss = spike count (the Open Neuromorphic network) for each GPU variant."""
    import torch

    lin = torch.nn.functional.linear
    params = [w.clone().requires_grad_(), b.clone().requires_grad_()]
    if variant in ("core-triton", "core-torch"):
        from sklearn_snn._core.kernels import spiking_scan
        from sklearn_snn._core.neurons import NeuronSpec

        spec = NeuronSpec("lif", beta=BETA, threshold=THR)
        return params, lambda x: spiking_scan(lin(x, *params), spec, "fast_sigmoid", SLOPE, inplace=True)[0].sum()
    if variant == "snntorch":
        import snntorch as snn
        from snntorch import surrogate

        cell = snn.Leaky(beta=BETA, threshold=THR, spike_grad=surrogate.fast_sigmoid(slope=SLOPE))
    elif variant == "plain":
        spike = _plain_spike_fn(torch)

        def cell(cur, v):
            u = BETA * v + cur
            s = spike(u - THR, SLOPE, 1.0)
            return s, u - THR * s.detach()
    elif variant.startswith("norse"):
        from norse.torch import LIFBoxCell, LIFBoxParameters

        dt, c = 1e-3, 1.0 - BETA
        t_ = lambda v: torch.tensor(v, device=w.device)  # noqa: E731
        cell = LIFBoxCell(LIFBoxParameters(tau_mem_inv=t_(c / dt), v_leak=t_(0.0), v_th=t_(THR), v_reset=t_(0.0),
                                           method="super", alpha=t_(SLOPE)), dt=dt)
    if variant in ("snntorch", "plain") or variant.startswith("norse"):
        def fn(x):   # a per-step loop over the projected current
            cur, total = lin(x, *params), 0
            st = None if variant.startswith("norse") else torch.zeros_like(cur[0])
            for t in range(x.shape[0]):
                s, st = cell(cur[t], st)
                total = total + s.sum()
            return total
        cell = torch.compile(cell) if variant == "norse-compile" else cell    # the step, not the loop
        return params, fn
    from spikingjelly.activation_based import functional

    mode = "s" if variant == "sj-s" else "m"
    node = _sj_node(mode, {"sj-cupy": "cupy", "sj-triton": "triton"}.get(variant))

    def fn(x):
        functional.reset_net(node)
        cur = lin(x, *params)
        return node(cur).sum() if mode == "m" else sum(node(cur[t]).sum() for t in range(x.shape[0]))
    return params, fn


def gpu_worker(args):
    """One GPU cell: time (CUDA-synchronised) and the peak GPU memory the step adds."""
    if args.smoke:   # the kernels in Triton's interpreter on CPU tensors
        os.environ.update(TRITON_INTERPRET="1", SKLEARN_SNN_TRITON_CPU="1")
    if args.variant == "core-torch":
        os.environ["SKLEARN_SNN_TRITON"] = "0"
    import torch

    dev = torch.device("cuda" if not args.smoke else "cpu")
    g = torch.Generator().manual_seed(0)
    if args.shape == "ON":
        T, B, F, H = GPU_SHAPES["ON"] if not args.smoke else (4, 2, 16, 16)
        x = torch.rand(T, B, F, generator=g).to(dev)
        w = ((torch.rand(H, F, generator=g) * 2 - 1) * 3.0 / F ** 0.5).to(dev)
        params, fn = build_one_layer(args.variant, w, torch.zeros(H, device=dev))
        y, opt = None, None
    else:
        x, y, p, model, rec = make_problem(args.shape, torch.float32, cut=args.smoke)
        x, y, p = x.to(dev), y.to(dev), {k: (v.to(dev) if v is not None else None) for k, v in p.items()}
        torch.set_default_device(dev)
        name = {"core-triton": "core", "norse-compile": "norse", "sj-cupy": "sj-m", "sj-triton": "sj-m"}
        if args.variant == "norse-compile":     # compile each cell's step (compiling the loop unrolls it)
            import norse.torch as nt
            nt.LIFBoxCell = lambda *a_, _c=nt.LIFBoxCell, **k: torch.compile(_c(*a_, **k))
        elif args.variant in ("sj-cupy", "sj-triton"):
            from spikingjelly.activation_based import neuron
            _sj_node("m", args.variant[3:])     # refuses when this SpikingJelly has no such backend
            neuron.LIFNode = functools.partial(neuron.LIFNode, backend=args.variant[3:])
        params, loss_fn, _ = build(name.get(args.variant, args.variant), p, model, rec, torch.float32)
        opt = torch.optim.Adam(params, lr=1e-4)
        fn = lambda xx: loss_fn(xx, y)  # noqa: E731
    if args.variant == "core-triton":   # the row must time the Triton kernels, not a fallback
        from sklearn_snn._core.triton_backend import triton_available
        assert triton_available(), "core-triton needs triton"

    def step():
        for q in params:
            q.grad = None
        fn(x).backward()
        if opt is not None:
            opt.step()

    for _ in range(args.warmup):
        step()
    cuda = dev.type == "cuda"
    torch.cuda.synchronize() if cuda else None
    torch.cuda.reset_peak_memory_stats() if cuda else None
    base, times = torch.cuda.memory_allocated() if cuda else 0, []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize() if cuda else None
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    print(json.dumps(dict(times=times, added_mb=(peak - base) / 2 ** 20, peak_mb=peak / 2 ** 20)))


def main_cuda(a):
    import torch

    shapes, variants, a.steps = a.shapes or list(GPU_SHAPES), a.variants or list(GPU_VARIANTS), a.steps or 5
    dev = "CPU (smoke run: interpreter, cut shapes, times meaningless)" if a.smoke else torch.cuda.get_device_name(0)
    print(f"# benchmarks/speed.py --device cuda on {dev}, torch {torch.__version__}: {a.steps} timed steps after "
          f"{a.warmup} warm-up per cell, each cell in its own process\n"
          "| shape | variant | median ms (min-max) | speed-up vs fastest anchor | added GPU MB | peak GPU MB |\n"
          "| --- | --- | --- | --- | --- | --- |", flush=True)
    goals = []
    for s in shapes:
        ok, fastest = {}, None    # anchors run first, so the package's rows print their speed-up at once
        for v in variants:
            r = {"error": "not installed"}
            if available({"norse-compile": "norse", "sj-cupy": "sj-m", "sj-triton": "sj-m"}.get(v, v)):
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--device", "cuda", "--variant", v,
                       "--shape", s, "--steps", str(a.steps), "--warmup", str(a.warmup)] + ["--smoke"] * a.smoke
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                r = (json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0
                     else {"error": " ".join((p.stderr or p.stdout).strip().splitlines()[-1:])[:150]})
            if "error" in r:
                print(f"| {s} | {v} | not run: {r['error']} | | | |", flush=True)
                continue
            ok[v] = r
            med, lo, hi = fmt_ms(r["times"])
            if v in GPU_ANCHORS:
                fastest = min(med, fastest or med)
            sp = f"{fastest / med:.2f}" if fastest else "-"
            print(f"| {s} | {v} | {med:.2f} ({lo:.2f}-{hi:.2f}) | {sp} | {r['added_mb']:.0f} | {r['peak_mb']:.0f} |",
                  flush=True)
        if "core-triton" in ok and fastest:
            mem = min(r["peak_mb"] for v, r in ok.items() if v in GPU_ANCHORS)
            sp = fastest / fmt_ms(ok["core-triton"]["times"])[0]
            goals.append(f"- {s}: core-triton >= 2x the fastest anchor: {'MET' if sp >= 2 else 'NOT MET'} ({sp:.2f}x); "
                         f"peak memory <= the smallest anchor's: {ok['core-triton']['peak_mb']:.0f} vs {mem:.0f} MB")
    print("\nGoals (issue 21):\n" + "\n".join(goals))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="S1 and S3 only, 2 rounds x 5 steps")
    ap.add_argument("--shapes", nargs="+", default=None, choices=list(dict.fromkeys([*SHAPES, *GPU_SHAPES])))
    ap.add_argument("--variants", nargs="+", default=None, choices=list(dict.fromkeys(VARIANTS + GPU_VARIANTS)))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per cell and round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="'cpu': process CPU time, robust to a machine shared with other jobs, but only "
                         "meaningful with --threads 1 (it counts the spinning of idle threads)")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--json", default=None, help="write the raw results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--malloc", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--semantics-of", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="'cuda': the GPU anchor table (S1-S3 and the Open Neuromorphic shape ON; shapes "
                         f"{', '.join(GPU_SHAPES)}, variants {', '.join(GPU_VARIANTS)}), time and peak GPU memory")
    ap.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)   # the cuda path on CPU, cut shapes
    a = ap.parse_args()
    if a.worker:
        return gpu_worker(a) if a.device == "cuda" else worker(a)
    if a.device == "cuda":
        return main_cuda(a)
    if set(a.shapes or ()) - set(SHAPES) or set(a.variants or ()) - set(VARIANTS):
        ap.error(f"on CPU: shapes from {', '.join(SHAPES)}, variants from {', '.join(VARIANTS)}")
    shapes = a.shapes or (["S1", "S3"] if a.quick else list(SHAPES))
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.steps = a.steps or (5 if a.quick else 4)
    variants = [v for v in (a.variants or VARIANTS) if available(v)]
    missing = [v for v in (a.variants or VARIANTS) if not available(v)]
    load = os.getloadavg()
    print(f"# benchmarks/speed.py: {len(shapes)} shapes x {len(variants)} variants, {a.rounds} rounds x "
          f"{a.steps} timed steps (after {a.warmup} warm-up) per cell, {a.threads} threads, {a.clock} clock; "
          f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if missing:
        print(f"# not installed (rows skipped): {', '.join(missing)}")
    cells = [(s, v) for s in shapes for v in variants if supports(v, s)]

    checks = {}
    if not a.no_check:
        for s, v in cells:
            r = run_cell(v, s, a, check=True, semantics_of=v)
            if "error" in r:
                checks[(s, v)] = f"error: {r['error']}"
                continue
            g = max(rel_err(x, y) for x, y in zip(r["grads"], r["ref_grads"]))
            dl = abs(r["loss"] - r["ref_loss"]) / max(abs(r["ref_loss"]), 1e-12)
            checks[(s, v)] = (g, dl)
    results = {c: [] for c in cells}
    mem = {c: [] for c in cells}
    errors = {}
    for rnd in range(a.rounds):
        for c in cells:
            r = run_cell(c[1], c[0], a)
            if "error" in r:
                errors[c] = r["error"]
                continue
            results[c] += r["times"]
            if r.get("added_mb") is not None:
                mem[c].append(r["added_mb"])
        print(f"# round {rnd + 1}/{a.rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
    # memory once more with glibc's mmap threshold pinned (see _pin_malloc): the default allocator
    # keeps freed blocks in its heap after the first step, so its peak RSS depends on the order of
    # frees as much as on what training holds at once; both figures are printed
    mem_pinned = {}
    for c in cells:
        r = run_cell(c[1], c[0], a, malloc="pinned")
        if "error" not in r and r.get("added_mb") is not None:
            mem_pinned[c] = r["added_mb"]
    load_after = os.getloadavg()

    limits = {s: matmul_limit(s, a.threads) for s in shapes}
    print()
    print("| shape | variant | median ms (min-max) | speed-up vs fastest anchor | time / core | added MB "
          "(default malloc / pinned) | check: grad / loss rel. err |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summary = {}
    for s in shapes:
        meds = {v: fmt_ms(results[(s, v)])[0] for v in variants if (s, v) in results and results[(s, v)]}
        anchors = {v: m for v, m in meds.items() if v in ANCHORS}
        fastest = min(anchors.values()) if anchors else None
        core = meds.get("core")
        for v in variants:
            if (s, v) not in results:
                continue
            if not results[(s, v)]:
                print(f"| {s} | {v} | error: {errors.get((s, v))} | | | | |")
                continue
            med, lo, hi = fmt_ms(results[(s, v)])
            ratio = f"{fastest / med:.2f}" if fastest else "-"
            rc = f"{med / core:.2f}" if core else "-"
            mb = f"{sorted(mem[(s, v)])[len(mem[(s, v)]) // 2]:.0f}" if mem[(s, v)] else "-"
            mb += f" / {mem_pinned[(s, v)]:.0f}" if (s, v) in mem_pinned else " / -"
            ck = checks.get((s, v), "-")
            if isinstance(ck, tuple):
                tol = 1e-5 if v == "snntorch" else 1e-6   # snnTorch casts spikes (and their grads) to float32
                ck = f"{ck[0]:.1e} / {ck[1]:.1e}" + (" ok" if ck[0] < tol and ck[1] < tol else " MISMATCH")
            print(f"| {s} | {v} | {med:.1f} ({lo:.1f}-{hi:.1f}) | {ratio} | {rc} | {mb} | {ck} |")
        dense, sparse, fl = limits[s]
        extra = f", nonzero inputs only: {sparse * 1e3:.1f} ms" if SHAPES[s][5] == "spikes" else ""
        print(f"| {s} | matmul-bound limit | {dense * 1e3:.1f}{extra} (at {fl / 1e9:.0f} GFLOP/s) | | | | |")
        summary[s] = dict(medians=meds, fastest_anchor=fastest,
                          added_mb={v: (sorted(m)[len(m) // 2] if m else None) for (ss, v), m in mem.items() if ss == s},
                          pinned_mb={v: m for (ss, v), m in mem_pinned.items() if ss == s})
    print()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print()
    print("Targets (issue 8 and the foundation issue):")

    def tgt(name, ok):
        print(f"- {name}: {'MET' if ok else 'NOT MET' if ok is not None else 'n/a'}")

    for s, k in (("S1", 3), ("S2", 3), ("S3", 6)):
        if s in summary and summary[s]["fastest_anchor"] and "core" in summary[s]["medians"]:
            r = summary[s]["fastest_anchor"] / summary[s]["medians"]["core"]
            tgt(f"{s}: core >= {k}x faster than the fastest anchor (is {r:.2f}x)", r >= k)
    if "S3" in summary:
        for key, how in (("added_mb", "default malloc"), ("pinned_mb", "mmap threshold pinned")):
            am = [m for v, m in summary["S3"][key].items() if v in ANCHORS and m is not None]
            cm = summary["S3"][key].get("core")
            if am and cm is not None:
                tgt(f"S3: memory added by core <= 0.5x the lowest anchor, {how} ({cm:.0f} MB vs "
                    f"{min(am):.0f} MB: {cm / min(am):.2f}x)", cm <= 0.5 * min(am))
    for s in ("S2-rec", "S2-alif"):
        if s in summary and "S2" in summary and "core" in summary[s]["medians"] and "core" in summary["S2"]["medians"]:
            r = summary[s]["medians"]["core"] / summary["S2"]["medians"]["core"]
            tgt(f"{s}: core within 1.5x of FF LIF S2 (is {r:.2f}x)", r <= 1.5)
    for s in ("S2", "S3"):
        if s in summary and "plain" in summary[s]["medians"] and "core" in summary[s]["medians"]:
            r = summary[s]["medians"]["plain"] / summary[s]["medians"]["core"]
            tgt(f"{s}: core >= 2x faster than the plain per-step loop (is {r:.2f}x)", r >= 2)
    if "S3" in summary:
        cm, pm = summary["S3"]["added_mb"].get("core"), summary["S3"]["added_mb"].get("plain")
        if cm is not None and pm is not None:
            tgt(f"S3: core adds less memory than the plain loop ({cm:.0f} vs {pm:.0f} MB)", cm < pm)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(results={f"{s}|{v}": t for (s, v), t in results.items()},
                           memory={f"{s}|{v}": m for (s, v), m in mem.items()},
                           memory_pinned={f"{s}|{v}": m for (s, v), m in mem_pinned.items()},
                           checks={f"{s}|{v}": c for (s, v), c in checks.items()}, load=[load, load_after]), f)


if __name__ == "__main__":
    main()
