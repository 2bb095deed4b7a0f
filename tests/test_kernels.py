"""The fused scan against the plain per-step autograd loop, and hand-computed traces."""
import functools
import itertools
import threading

import pytest
import torch

from sklearn_snn._core import kernels, numba_backend, projections
from sklearn_snn._core.kernels import (
    leaky_integrate,
    reference_scan,
    sparse_linear,
    spiking_scan,
)
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.surrogate import SURROGATES

DT = torch.float64
HAVE_NUMBA = numba_backend.numba_kernels() is not None
BACKENDS = ["torch", pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed"))]


def _inputs(seed, T=12, B=3, H=5, rec=False, learn=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(T, B, H, generator=g, dtype=DT) * 0.8 + 0.45).requires_grad_()
    w = (torch.randn(H, H, generator=g, dtype=DT) * 0.4).requires_grad_() if rec else None
    params = {}
    if learn:
        params = dict(
            beta=torch.rand(H, generator=g, dtype=DT).mul(0.3).add(0.6).requires_grad_(),
            alpha=torch.rand(H, generator=g, dtype=DT).mul(0.3).add(0.5).requires_grad_(),
            threshold=torch.rand(H, generator=g, dtype=DT).mul(0.5).add(0.8).requires_grad_(),
        )
    return x, w, params


def _grads(fn, x, w, params, spec, surrogate, seed):
    g = torch.Generator().manual_seed(seed + 1)
    s, u, _ = fn(x, spec, surrogate, 3.0, w_rec=w, **params)
    weight = torch.randn(s.shape, generator=g, dtype=DT)
    (s * weight).sum().backward()
    leaves = [x] + ([w] if w is not None else []) + list(params.values())
    out = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    return s.detach(), u.detach(), out


CASES = list(itertools.product(["lif", "cuba", "alif", "if"], ["subtract", "zero"], [False, True], [True, False]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model,reset,rec,detach", CASES)
def test_fused_scan_matches_reference(model, reset, rec, detach, backend):
    spec = NeuronSpec(model, beta=0.85, alpha=0.7, threshold=1.0, reset=reset, adapt=0.3, detach_reset=detach)
    x, w, params = _inputs(hash((model, reset, rec, detach)) % 1000, rec=rec)
    scan = functools.partial(spiking_scan, backend=backend)
    s1, u1, g1 = _grads(scan, x, w, params, spec, "fast_sigmoid", 0)
    s2, u2, g2 = _grads(reference_scan, x, w, params, spec, "fast_sigmoid", 0)
    assert s1.sum() > 0, "the case must spike to test anything"
    torch.testing.assert_close(s1, s2)
    torch.testing.assert_close(u1, u2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model,reset,rec", list(itertools.product(["lif", "cuba", "alif"], ["subtract", "zero"], [False, True])))
def test_fused_scan_parameter_gradients(model, reset, rec, backend):
    spec = NeuronSpec(model, reset=reset, adapt=0.3, detach_reset=False)
    x, w, params = _inputs(7, rec=rec, learn=True)
    if model != "cuba":
        params.pop("alpha")
    _, _, g1 = _grads(functools.partial(spiking_scan, backend=backend), x, w, params, spec, "sigmoid", 3)
    _, _, g2 = _grads(reference_scan, x, w, params, spec, "sigmoid", 3)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_every_surrogate_through_fused_scan(surrogate, backend):
    spec = NeuronSpec("lif", beta=0.9)
    x, w, params = _inputs(3)
    _, _, g1 = _grads(functools.partial(spiking_scan, backend=backend), x, w, params, spec, surrogate, 1)
    _, _, g2 = _grads(reference_scan, x, w, params, spec, surrogate, 1)
    torch.testing.assert_close(g1[0], g2[0], rtol=1e-9, atol=1e-10)


def test_lif_trace_by_hand():
    # beta = 0.5, threshold 1, constant input 0.8, subtract reset:
    # u0 = 0.8 ; u1 = 0.4 + 0.8 = 1.2 -> spike, v1 = 0.2 ; u2 = 0.1 + 0.8 = 0.9 ; u3 = 0.45 + 0.8 = 1.25 -> spike
    spec = NeuronSpec("lif", beta=0.5, threshold=1.0)
    s, u, _ = spiking_scan(torch.full((4, 1, 1), 0.8, dtype=DT), spec)
    assert s.flatten().tolist() == [0, 1, 0, 1]
    torch.testing.assert_close(u.flatten(), torch.tensor([0.8, 1.2, 0.9, 1.25], dtype=DT))


def test_zero_reset_and_if_trace_by_hand():
    s, u, _ = spiking_scan(torch.full((4, 1, 1), 0.6, dtype=DT), NeuronSpec("if", reset="zero"))
    # 0.6, 1.2 (spike, v=0), 0.6, 1.2 (spike)
    assert s.flatten().tolist() == [0, 1, 0, 1]
    torch.testing.assert_close(u.flatten(), torch.tensor([0.6, 1.2, 0.6, 1.2], dtype=DT))


def test_cuba_trace_by_hand():
    # alpha 0.5, beta 0.5, input 1 at t=0 only: syn = 1, .5, .25 ; u = 1 (spike), .5*0+.5 = .5, .25+.25 = .5
    x = torch.zeros(3, 1, 1, dtype=DT)
    x[0] = 1.0
    s, u, _ = spiking_scan(x, NeuronSpec("cuba", beta=0.5, alpha=0.5, threshold=1.0))
    assert s.flatten().tolist() == [1, 0, 0]
    torch.testing.assert_close(u.flatten(), torch.tensor([1.0, 0.5, 0.5], dtype=DT))


def test_alif_threshold_adapts_by_hand():
    # adapt 0.5, rho 0.5, constant input 1.0, beta 0: u_t = 1 each step.
    # t0: theta 1 -> spike, a=1 ; t1: theta 1.5 -> no, a=.5 ; t2: theta 1.25 -> no, a=.25 ; t3: 1.125 no
    spec = NeuronSpec("alif", beta=1e-12, threshold=1.0, adapt=0.5, rho=0.5)
    s, _, _ = spiking_scan(torch.ones(4, 1, 1, dtype=DT), spec)
    assert s.flatten().tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", ["alif", "cuba"])
def test_state_carry_equals_one_long_scan(model, backend):
    spec = NeuronSpec(model, reset="subtract", adapt=0.2)
    x, w, _ = _inputs(11, T=16, rec=True)
    with torch.no_grad():
        s_full, u_full, st_full = spiking_scan(x, spec, w_rec=w, backend=backend)
        s_a, _, st = spiking_scan(x[:7], spec, w_rec=w, backend=backend)
        s_b, u_b, st_b = spiking_scan(x[7:], spec, w_rec=w, state=st, backend=backend)
    torch.testing.assert_close(torch.cat([s_a, s_b]), s_full)
    torch.testing.assert_close(u_b, u_full[7:])
    used = [0, 3] + ([1] if model == "cuba" else [2])
    for i in used:  # v, s and the model's own state variable carry over exactly
        torch.testing.assert_close(st_b[i], st_full[i])


@pytest.mark.parametrize("backend", BACKENDS)
def test_leaky_integrate_gradient(backend):
    x = torch.randn(6, 2, 3, dtype=DT, requires_grad=True)
    beta = torch.tensor([0.5, 0.7, 0.9], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: leaky_integrate(a, b, backend=backend), (x, beta))
    v = leaky_integrate(torch.ones(3, 1, 1, dtype=DT), 0.5, backend=backend)
    assert v.flatten().tolist() == [1.0, 1.5, 1.75]


# ---- compiled backend specifics -------------------------------------------------------------

needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")


@needs_numba
@pytest.mark.parametrize("model,rec", [("lif", False), ("alif", True), ("cuba", True)])
def test_compiled_scan_callable_surrogate_and_threshold_gradient(model, rec):
    # a user callable (not one of the named surrogates) takes the precomputed-derivative path
    spec = NeuronSpec(model, reset="zero", adapt=0.3, detach_reset=False)
    x, w, params = _inputs(5, rec=rec, learn=True)
    if model != "cuba":
        params.pop("alpha")
    fn = lambda d, k: 1.0 / (1.0 + (k * d) ** 2)  # noqa: E731
    _, _, g1 = _grads(functools.partial(spiking_scan, backend="numba"), x, w, params, spec, fn, 2)
    _, _, g2 = _grads(reference_scan, x, w, params, spec, fn, 2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@needs_numba
def test_compiled_scan_from_a_worker_thread_and_float32():
    # other threads use the serial kernels; float32 matches the torch backend to float tolerance
    spec = NeuronSpec("alif", adapt=0.3)
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(30, 8, 16, generator=g) * 0.8 + 0.45).requires_grad_()
    w = (torch.randn(16, 16, generator=g) * 0.3).requires_grad_()
    results = {}

    def run(tag, backend):
        s, u, _ = spiking_scan(x, spec, w_rec=w, backend=backend)
        gx, gw = torch.autograd.grad((s * torch.linspace(-1, 1, 16)).sum(), (x, w))
        results[tag] = (s, u, gx, gw)

    th = threading.Thread(target=run, args=("thread", "numba"))
    th.start()
    th.join()
    run("main", "numba")
    run("torch", "torch")
    for tag in ("thread", "main"):
        for a, b in zip(results[tag], results["torch"]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert results["main"][0].sum() > 0


def test_backend_argument_is_validated():
    with pytest.raises(ValueError, match="backend"):
        spiking_scan(torch.zeros(2, 1, 1), NeuronSpec(), backend="cuda-magic")


def test_backend_registry_chooses_by_priority_and_acceptance():
    # 'auto' asks the backends from the highest priority down; a forced one that cannot run raises
    assert kernels.backend_names("scan")[:3] == ["auto", "torch", "numba"]   # then e.g. 'triton' (GPU)
    kernels.register_backend("test-op", "torch", "reference")
    kernels.register_backend("test-op", "fast", "fast", ok=lambda v: v > 0, priority=5, accepts="positive input")
    kernels.register_backend("test-op", "absent", "absent", available=lambda: False, priority=9, needs="a compiler")
    assert kernels.select_backend("test-op", "auto", 1) == "fast"
    assert kernels.select_backend("test-op", "auto", -1) == "reference"
    assert kernels.select_backend("test-op", "torch", 1) == "reference"
    with pytest.raises(ValueError, match="backend='fast' runs positive input only"):
        kernels.select_backend("test-op", "fast", -1)
    with pytest.raises(ImportError, match="backend='absent' needs a compiler"):
        kernels.select_backend("test-op", "absent", 1)
    with pytest.raises(ValueError, match="backend must be 'auto', 'torch', 'fast' or 'absent', got 'x'"):
        kernels.select_backend("test-op", "x", 1)
    if not HAVE_NUMBA:
        return
    with pytest.raises(ValueError, match="backend='numba' runs CPU float32/float64"):
        spiking_scan(torch.zeros(2, 1, 1, dtype=torch.bfloat16), NeuronSpec(), backend="numba")


def test_cuda_like_inputs_fall_back_to_torch_backend():
    # a dtype the compiled kernels do not take (bfloat16) runs the torch loops in 'auto'
    x = torch.full((4, 1, 1), 0.8, dtype=torch.bfloat16)
    s, _, _ = spiking_scan(x, NeuronSpec("lif", beta=0.5))
    assert s.flatten().tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("needs_x_grad", [False, True])
def test_sparse_linear_equals_dense(needs_x_grad):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(7, 5, 40, generator=g, dtype=DT) < 0.1).to(DT) * torch.randn(7, 5, 40, generator=g, dtype=DT)
    x.requires_grad_(needs_x_grad)
    w = torch.randn(50, 40, generator=g, dtype=DT, requires_grad=True)
    b = torch.randn(50, generator=g, dtype=DT, requires_grad=True)
    G = torch.randn(7, 5, 50, generator=g, dtype=DT)
    outs = []
    for fn in (sparse_linear, torch.nn.functional.linear):
        y = fn(x, w, b)
        if fn is sparse_linear and HAVE_NUMBA:
            assert _took_sparse_path(y)
        leaves = (w, b) + ((x,) if needs_x_grad else ())
        outs.append((y,) + torch.autograd.grad((y * G).sum(), leaves))
    for a, c in zip(*outs):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)
    # a dense input takes the dense path and gives the same
    xd = torch.randn(3, 40, dtype=DT)
    torch.testing.assert_close(sparse_linear(xd, w, b), torch.nn.functional.linear(xd, w, b))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("model", ["lif", "cuba"])
def test_recurrent_scan_with_sparse_spikes_and_initial_spikes(model, detach, backend):
    # few spikes, and an initial spike state: the recurrent weight gradient at t = 0 reads it
    spec = NeuronSpec(model, beta=0.8, alpha=0.6, reset="subtract", detach_reset=detach)
    g = torch.Generator().manual_seed(8)
    gain = 0.5 if model == "lif" else 0.1  # the synaptic filter integrates: a smaller drive
    x = ((torch.randn(40, 4, 16, generator=g, dtype=DT) * 0.5 + 0.15) * gain / 0.5).requires_grad_()
    w = (torch.randn(16, 16, generator=g, dtype=DT) * 0.4).requires_grad_()
    s0 = (torch.rand(4, 16, generator=g, dtype=DT) < 0.3).to(DT)
    assert s0.sum() > 0
    state = tuple(torch.zeros(4, 16, dtype=DT) for _ in range(3)) + (s0,)
    s1, u1, g1 = _grads(functools.partial(spiking_scan, backend=backend, state=state), x, w, {}, spec,
                        "fast_sigmoid", 4)
    s2, u2, g2 = _grads(functools.partial(reference_scan, state=state), x, w, {}, spec, "fast_sigmoid", 4)
    density = float(s1.mean())
    assert 0 < density < 0.5, density
    torch.testing.assert_close(s1, s2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model,reset,rec", [("lif", "subtract", False), ("lif", "zero", True),
                                             ("cuba", "subtract", True), ("alif", "zero", False)])
def test_inplace_scan_equals_reference(model, reset, rec, backend):
    # inplace=True: the membrane is written over the input current and (compiled backward) the
    # input gradient over the stored membrane; values and gradients must not change
    spec = NeuronSpec(model, beta=0.85, alpha=0.7, reset=reset, adapt=0.3)
    x, w, _ = _inputs(31, rec=rec)
    s2, u2, g2 = _grads(reference_scan, x, w, {}, spec, "fast_sigmoid", 3)
    lin = torch.nn.Linear(5, 5, dtype=DT)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(5, dtype=DT))
        lin.bias.zero_()
    cur = lin(x)                              # a private intermediate, as in SpikingLinear
    ptr = cur.data_ptr()
    s1, u1, _ = spiking_scan(cur, spec, "fast_sigmoid", 3.0, w_rec=w, backend=backend, inplace=True)
    assert u1.data_ptr() == ptr               # the membrane took the current's buffer
    torch.testing.assert_close(s1.detach(), s2)
    torch.testing.assert_close(u1.detach(), u2)
    weight = torch.randn(s1.shape, generator=torch.Generator().manual_seed(4), dtype=DT)
    (s1 * weight).sum().backward()
    got = [x.grad] + ([w.grad] if rec else [])
    for a, b in zip(got, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@needs_numba
def test_inplace_compiled_backward_refuses_a_second_run():
    spec = NeuronSpec("lif", beta=0.85)
    x, _, _ = _inputs(5)
    cur = x * 1.0
    s, _, _ = spiking_scan(cur, spec, backend="numba", inplace=True)
    loss = (s * torch.arange(s.numel(), dtype=DT).view_as(s)).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="cannot run twice"):
        loss.backward()


@needs_numba
def _took_sparse_path(y):
    fn = y.grad_fn
    names = [type(fn).__name__] + [type(f).__name__ for f, _ in fn.next_functions if f is not None]
    return any("SparseLinear" in n for n in names)


@needs_numba
def test_narrow_projection_stays_dense():
    x = (torch.rand(20, 64) < 0.1).float()
    assert not _took_sparse_path(sparse_linear(x, torch.randn(kernels.SPARSE_MIN_OUT - 1, 64, requires_grad=True)))
    assert _took_sparse_path(sparse_linear(x, torch.randn(kernels.SPARSE_MIN_OUT, 64, requires_grad=True)))


@needs_numba
@pytest.mark.parametrize("n_out,scale", [(1, 1.0), (10, 1.0), (10, 0.5)])
def test_narrow_projection_gradients_equal_dense(n_out, scale):
    # a readout over many rows: the input gradient takes the compiled row kernel; spikes (scale
    # 1) are kept as uint8 for the weight gradient, other inputs as they are
    g = torch.Generator().manual_seed(3)
    x = ((torch.rand(64, 70, 24, generator=g, dtype=DT) < 0.2).to(DT) * scale).requires_grad_()
    w = torch.randn(n_out, 24, generator=g, dtype=DT, requires_grad=True)
    b = torch.randn(n_out, generator=g, dtype=DT, requires_grad=True)
    G = torch.randn(64, 70, n_out, generator=g, dtype=DT)
    outs = []
    for fn in (sparse_linear, torch.nn.functional.linear):
        y = fn(x, w, b)
        if fn is sparse_linear:
            assert "NarrowLinear" in type(y.grad_fn.next_functions[0][0]).__name__
        outs.append((y,) + torch.autograd.grad((y * G).sum(), (x, w, b)))
    for a, c in zip(*outs):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


@needs_numba
def test_sparse_linear_binary_and_weighted_inputs_agree_with_dense():
    # spike trains (all nonzeros are 1) store no values; weighted sparse inputs do
    g = torch.Generator().manual_seed(2)
    w = torch.randn(50, 64, generator=g, dtype=DT, requires_grad=True)
    b = torch.randn(50, generator=g, dtype=DT, requires_grad=True)
    for scale in (1.0, 0.5):
        x = (torch.rand(33, 64, generator=g, dtype=DT) < 0.1).to(DT) * scale
        G = torch.randn(33, 50, generator=g, dtype=DT)
        outs = []
        for fn in (sparse_linear, torch.nn.functional.linear):
            y = fn(x, w, b)
            if fn is sparse_linear:
                assert _took_sparse_path(y)
            outs.append((y,) + torch.autograd.grad((y * G).sum(), (w, b)))
        for a, c in zip(*outs):
            torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", [7, 256])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_sparse_weight_gradient_blocks_and_threads(monkeypatch, threads, block, scale):
    # the weight gradient of spike inputs regroups each block of rows by column; the rows are split
    # between threads, each summing into its own buffer -- every split must give G.T @ x
    monkeypatch.setattr(projections, "WGRAD_BLOCK", block)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(5)
        x = (torch.rand(301, 64, generator=g, dtype=DT) < 0.15).to(DT) * scale
        x[17] = 0.0                         # an empty row
        x[:, 5] = 0.0                       # an empty column
        w = torch.randn(50, 64, generator=g, dtype=DT, requires_grad=True)
        G = torch.randn(301, 50, generator=g, dtype=DT)
        y = sparse_linear(x, w)
        assert _took_sparse_path(y)
        (gw,) = torch.autograd.grad((y * G).sum(), (w,))
        torch.testing.assert_close(gw, G.t() @ x, rtol=1e-10, atol=1e-12)
    finally:
        torch.set_num_threads(n_threads)


@needs_numba
@pytest.mark.parametrize("n_rows,n_in,chunks", [(1, 1, 1), (7, 13, 1), (37, 24, 3), (101, 70, 2), (64, 8, 4)])
def test_packed_spikes_and_their_weight_gradient(n_rows, n_in, chunks):
    # eight spikes to a byte (bit i of byte j = column 8j + i), and G^T x from the packed rows, for
    # row counts that leave a remainder in every group of four and column counts off a byte boundary
    import numpy as np

    nb, _ = numba_backend.kernels()
    g = torch.Generator().manual_seed(n_rows)
    x = (torch.rand(n_rows, n_in, generator=g, dtype=DT) < 0.3).to(DT)
    P = torch.empty(n_rows, (n_in + 7) // 8, dtype=torch.uint8)
    assert numba_backend.numba_kernels().pack_bits(x.numpy(), P.numpy())
    bits = np.unpackbits(P.numpy(), axis=1, bitorder="little")[:, :n_in]
    assert np.array_equal(bits, x.numpy().astype(np.uint8))
    G = torch.randn(n_rows, 5, generator=g, dtype=DT)
    gw = torch.full((5, n_in), 0.5, dtype=DT)
    nb.bits_wgrad(P.numpy(), G.numpy(), gw.numpy(), chunks)
    torch.testing.assert_close(gw, 0.5 + G.t() @ x, rtol=1e-12, atol=1e-12)
    x[n_rows // 2, n_in - 1] = 0.5
    assert not numba_backend.numba_kernels().pack_bits(x.numpy(), P.numpy())


@pytest.mark.parametrize("scale,needs_x_grad", [(1.0, False), (0.5, True), (-2.0, False)])
def test_torch_sparse_projection_equals_dense(scale, needs_x_grad):
    # the pure-torch sparse path (embedding bags; what runs without numba): binary spikes store no
    # values, weighted inputs do; forward, weight, bias and input gradients equal the dense ones
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(300, 70, generator=g, dtype=DT) < 0.1).to(DT) * scale
    x[7] = 0.0                                  # an empty row: an empty bag
    x[:, 3] = 0.0                               # an unused input: an empty weight-gradient bag
    x.requires_grad_(needs_x_grad)
    w = torch.randn(130, 70, generator=g, dtype=DT, requires_grad=True)
    b = torch.randn(130, generator=g, dtype=DT, requires_grad=True)
    G = torch.randn(300, 130, generator=g, dtype=DT)
    leaves = (w, b) + ((x,) if needs_x_grad else ())
    y = projections._torch_sparse_linear(x, w, b, projections.SPARSE_DENSITY)
    assert y.grad_fn.name() == "TorchSparseLinearBackward"
    ref = torch.nn.functional.linear(x, w, b)
    got = (y,) + torch.autograd.grad((y * G).sum(), leaves)
    for a, c in zip(got, (ref,) + torch.autograd.grad((ref * G).sum(), leaves)):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)
    assert torch.count_nonzero(got[1][:, 3]) == 0
    # too dense for it: None (the caller runs the dense product)
    assert projections._torch_sparse_linear(torch.rand(300, 70, dtype=DT), w, b, 0.25) is None


def test_sparse_linear_without_numba_takes_the_torch_sparse_path(monkeypatch):
    monkeypatch.setattr(projections, "numba_kernels", lambda: None)
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(20, 8, 64, generator=g) < 0.1).float()
    w = torch.randn(projections.TORCH_SPARSE_MIN_OUT, 64, generator=g, requires_grad=True)
    y = sparse_linear(x, w)
    assert y.grad_fn.name() == "ViewBackward0" and y.grad_fn.next_functions[0][0].name() == "TorchSparseLinearBackward"
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w), rtol=1e-5, atol=1e-5)
    # fewer outputs than TORCH_SPARSE_MIN_OUT: the dense product
    assert "TorchSparse" not in sparse_linear(x, w[:10]).grad_fn.name()


@pytest.mark.parametrize("model,reset,learn", [("lif", "subtract", False), ("cuba", "zero", False),
                                               ("cuba", "subtract", False), ("cuba", "zero", True)])
def test_torch_scan_spikes_are_float_outputs_and_state_carries(model, reset, learn):
    # the torch scan writes the spikes as floats (saved for its backward pass as they are) and its
    # in-place adjoint paths (detached reset, no parameter gradient) equal the reference
    spec = NeuronSpec(model, beta=0.8, alpha=0.6, threshold=1.0, reset=reset, detach_reset=True)
    x, _, params = _inputs(11, T=9, B=2, H=4, learn=learn)
    s1, u1, g1 = _grads(functools.partial(spiking_scan, backend="torch"), x, None, params, spec, "fast_sigmoid", 3)
    s2, u2, g2 = _grads(reference_scan, x, None, params, spec, "fast_sigmoid", 3)
    assert s1.dtype == DT and set(s1.unique().tolist()) <= {0.0, 1.0} and s1.sum() > 0
    torch.testing.assert_close(s1, s2)
    torch.testing.assert_close(u1, u2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
