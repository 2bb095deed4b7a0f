"""The Triton scan (sklearn_snn/_core/triton_*.py) against the per-step autograd reference.

Without a GPU the kernels run on CPU tensors in Triton's interpreter: the root conftest.py sets
TRITON_INTERPRET=1 before triton is imported, and these tests opt CPU tensors in with
SKLEARN_SNN_TRITON_CPU=1. With a GPU they run on CUDA tensors through the compiled kernels.
Shapes are tiny: the interpreter runs every block operation as numpy calls.
"""

import os

import pytest
import torch

pytest.importorskip("triton")

from sklearn_snn._core import kernels
from sklearn_snn._core.kernels import reference_scan, select_backend, spiking_scan
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.surrogate import SURROGATES
from sklearn_snn._core.triton_backend import ScanTriton, scan_ok, triton_available

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.skipif(
    not CUDA and os.environ.get("TRITON_INTERPRET") != "1",
    reason="no CUDA device and TRITON_INTERPRET=1 was not set before triton was imported (see conftest.py)")


@pytest.fixture(autouse=True)
def _cpu_opt_in(monkeypatch):
    monkeypatch.setenv("SKLEARN_SNN_TRITON_CPU", "1")
    monkeypatch.delenv("SKLEARN_SNN_TRITON", raising=False)


def _problem(T=5, B=2, H=4, rec=False, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(T, B, H, generator=g) * 1.5 + 0.4).to(DEV, dtype).requires_grad_()
    w = (torch.randn(H, H, generator=g) * 0.6).to(DEV, dtype).requires_grad_() if rec else None
    up = torch.randn(T, B, H, generator=g).to(DEV, dtype)     # upstream gradient of the spikes
    return x, w, up


def _params(H, dtype=torch.float32):
    beta = torch.linspace(0.7, 0.95, H, device=DEV, dtype=dtype).requires_grad_()
    alpha = torch.linspace(0.5, 0.85, H, device=DEV, dtype=dtype).requires_grad_()
    thr = torch.linspace(0.8, 1.2, H, device=DEV, dtype=dtype).requires_grad_()
    return beta, alpha, thr


def _grads(out, inputs, up):
    ins = [t for t in inputs if t is not None]
    return torch.autograd.grad((out * up).sum(), ins)


@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("detach", [True, False], ids=["detach", "nodetach"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("model", ["lif", "cuba", "alif", "if"])
def test_scan_equals_reference_with_parameter_gradients(model, reset, detach, rec):
    spec = NeuronSpec(model, reset=reset, detach_reset=detach)
    x, w, up = _problem(rec=rec, seed=sum(map(ord, model + reset)) + 2 * detach + rec)
    beta, alpha, thr = _params(x.shape[2])
    beta_arg = None if model == "if" else beta
    s, u, st = spiking_scan(x, spec, "sigmoid", 4.0, w_rec=w, beta=beta_arg, alpha=alpha, threshold=thr,
                            backend="triton")
    s_ref, u_ref, st_ref = reference_scan(x, spec, "sigmoid", 4.0, w_rec=w, beta=beta_arg, alpha=alpha,
                                          threshold=thr)
    assert s.sum() > 0 and s.sum() < s.numel()           # spikes and silences: the reset paths run
    assert torch.equal(s, s_ref)                           # spikes exactly
    torch.testing.assert_close(u, u_ref.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(st[0], st_ref[0].detach(), rtol=1e-6, atol=1e-6)
    inputs = [x, w, beta_arg, alpha if model == "cuba" else None, thr]
    for g, g_ref in zip(_grads(s, inputs, up), _grads(s_ref, inputs, up)):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", ["lif", "alif"])
@pytest.mark.parametrize("surrogate", [*SURROGATES, "callable"])
def test_inline_surrogates_equal_reference(surrogate, model):
    # without parameter gradients the backward kernel evaluates the named surrogates inline; a
    # user callable is evaluated by torch and read by the kernel
    if surrogate == "callable":
        surrogate = lambda d, k: 1.0 / (1.0 + (k * d) ** 2)
    spec = NeuronSpec(model, reset="subtract", detach_reset=False)
    x, w, up = _problem(T=6, B=3, H=5, rec=True, seed=3)
    s, _, _ = spiking_scan(x, spec, surrogate, 3.0, w_rec=w, backend="triton")
    s_ref, _, _ = reference_scan(x, spec, surrogate, 3.0, w_rec=w)
    assert torch.equal(s, s_ref)
    for g, g_ref in zip(_grads(s, [x, w], up), _grads(s_ref, [x, w], up)):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("model", ["lif", "cuba", "alif"])
def test_half_inputs_run_float32_state(dtype, model):
    # half-precision currents, float32 state: the spikes are those of the float32 reference on
    # the same (exactly widened) currents, gradients are close
    spec = NeuronSpec(model, reset="subtract")
    x, w, up = _problem(T=6, B=3, H=8, rec=model == "lif", dtype=dtype, seed=5)
    s, u, _ = spiking_scan(x, spec, "fast_sigmoid", 5.0, w_rec=w, backend="triton")
    assert s.dtype == dtype and u.dtype == dtype
    xf = x.detach().float().requires_grad_()
    wf = None if w is None else w.detach().float().requires_grad_()
    s_ref, u_ref, _ = reference_scan(xf, spec, "fast_sigmoid", 5.0, w_rec=wf)
    assert torch.equal(s.float(), s_ref)
    # the membrane is the reference's, rounded (Triton's interpreter truncates to bfloat16: 1 ulp)
    ulp = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10
    torch.testing.assert_close(u.float(), u_ref.detach(), rtol=ulp, atol=1e-3)
    gx, = torch.autograd.grad((s * up).sum(), [x])
    gx_ref, = torch.autograd.grad((s_ref * up.float()).sum(), [xf])
    assert gx.dtype == dtype
    torch.testing.assert_close(gx.float(), gx_ref, rtol=2e-2, atol=2e-2)


def test_initial_state_and_final_state_equal_reference():
    spec = NeuronSpec("cuba", reset="subtract")
    x, _, _ = _problem(T=4, B=2, H=3, seed=7)
    g = torch.Generator().manual_seed(8)
    state = tuple(torch.rand(2, 3, generator=g).to(DEV) for _ in range(3)) + (torch.zeros(2, 3, device=DEV),)
    s, _, (v, syn, a, sp) = spiking_scan(x, spec, state=state, backend="triton")
    s_ref, _, (v_ref, syn_ref, _, sp_ref) = reference_scan(x, spec, state=state)
    assert torch.equal(s, s_ref) and torch.equal(sp, sp_ref)
    torch.testing.assert_close(v, v_ref.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(syn, syn_ref.detach(), rtol=1e-6, atol=1e-6)
    spec = NeuronSpec("alif")
    _, _, (_, _, a, _) = spiking_scan(x, spec, state=state, backend="triton")
    _, _, (_, _, a_ref, _) = reference_scan(x, spec, state=state)
    torch.testing.assert_close(a, a_ref.detach(), rtol=1e-6, atol=1e-6)


def test_inplace_writes_membrane_over_input_and_backward_runs_once():
    spec = NeuronSpec("lif", beta=0.8)
    x0, _, up = _problem(T=5, B=2, H=4, seed=9)
    s_ref, u_ref, _ = reference_scan(x0, spec)
    gx_ref, = torch.autograd.grad((s_ref * up).sum(), [x0])
    leaf = x0.detach().clone().requires_grad_()
    x = leaf * 1.0                                       # an intermediate the caller owns
    s, u, _ = spiking_scan(x, spec, backend="triton", inplace=True)
    assert u.data_ptr() == x.data_ptr()
    torch.testing.assert_close(u, u_ref.detach(), rtol=1e-6, atol=1e-6)
    loss = (s * up).sum()
    loss.backward(retain_graph=True)
    torch.testing.assert_close(leaf.grad, gx_ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="cannot run twice"):
        loss.backward()


def test_broadcast_parameters_get_gradients_of_their_shape():
    spec = NeuronSpec("lif")
    x, _, up = _problem(T=5, B=2, H=4, seed=11)
    thr = torch.full((1, 4), 0.9, device=DEV, requires_grad=True)
    beta = torch.tensor(0.85, device=DEV, requires_grad=True)
    s, _, _ = spiking_scan(x, spec, threshold=thr, beta=beta, backend="triton")
    s_ref, _, _ = reference_scan(x, spec, threshold=thr, beta=beta)
    g = _grads(s, [thr, beta], up)
    g_ref = _grads(s_ref, [thr, beta], up)
    assert g[0].shape == (1, 4) and g[1].shape == ()
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_auto_never_sends_cpu_tensors_to_triton(monkeypatch):
    monkeypatch.delenv("SKLEARN_SNN_TRITON_CPU")
    params = (0.9, 0.8, 1.0)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.zeros(3, 2, 4, dtype=dtype)
        assert not scan_ok(x, None, params)
        assert select_backend("scan", "auto", x, None, params) is not ScanTriton
        assert select_backend("leaky", "auto", x, 0.9).__name__ != "LeakyTriton"
    with pytest.raises(ValueError, match="backend='triton' runs CUDA float32/float16/bfloat16 tensors"):
        spiking_scan(torch.zeros(3, 2, 4), NeuronSpec(), backend="triton")


def test_forcing_triton_on_cpu_under_the_interpreter(monkeypatch):
    if CUDA:
        pytest.skip("the interpreter path is for machines without a GPU")
    x = torch.full((4, 1, 2), 0.8)
    assert select_backend("scan", "triton", x, None, (0.5, 0.8, 1.0)) is ScanTriton
    s, u, _ = spiking_scan(x, NeuronSpec("lif", beta=0.5), backend="triton")
    assert s[:, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    torch.testing.assert_close(u[:, 0, 0], torch.tensor([0.8, 1.2, 0.9, 1.25]))


def test_unsupported_arguments_are_refused_with_clear_errors(monkeypatch):
    x = torch.zeros(3, 2, 4, device=DEV)
    assert not scan_ok(x.double(), None, (0.9, 0.8, 1.0))                      # float64: torch path
    assert not scan_ok(x, None, (torch.ones(2, 4, device=DEV), 0.8, 1.0))      # per-sample decay
    assert scan_ok(x, None, (torch.ones(1, 4, device=DEV), 0.8, torch.ones(4, device=DEV)))
    assert "triton" in kernels.backend_names("scan")
    monkeypatch.setenv("SKLEARN_SNN_TRITON", "0")
    assert not triton_available()
    with pytest.raises(ImportError, match="backend='triton' needs triton"):
        spiking_scan(x, NeuronSpec(), backend="triton")
    assert select_backend("scan", "auto", x, None, (0.9, 0.8, 1.0)) is not ScanTriton


@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_network_training_step_equals_the_other_backends(monkeypatch, rec):
    # a whole network (learned decays and thresholds, spike-count readout) through 'auto': the
    # Triton scan gives the logits and weight gradients of the other backends
    from sklearn_snn._core.network import SNN

    spec = NeuronSpec("cuba", beta=0.85, alpha=0.7)
    g = torch.Generator().manual_seed(21)
    x = (torch.rand(6, 3, 5, generator=g) * 2.0).to(DEV)
    y = torch.tensor([0, 1, 2], device=DEV)

    def run(triton_on):
        monkeypatch.setenv("SKLEARN_SNN_TRITON", "1" if triton_on else "0")
        assert (select_backend("scan", "auto", x, None, (0.9, 0.8, 1.0)) is ScanTriton) == triton_on
        torch.manual_seed(0)
        net = SNN(5, (8,), 3, spec, recurrent=rec, readout="spike_count", learn_tau=True, learn_threshold=True,
                  gain=3.0).to(DEV)
        logits, _ = net(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        return logits.detach(), [(n, p.grad) for n, p in net.named_parameters() if p.grad is not None]

    logits, grads = run(True)
    logits_ref, grads_ref = run(False)
    torch.testing.assert_close(logits, logits_ref)
    assert len(grads) == len(grads_ref) >= 4
    for (n, a), (_, b) in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=n)
    assert sum(float(a.abs().sum()) for _, a in grads) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("beta_kind", ["float", "per_neuron", "scalar_tensor"])
def test_leaky_integrator_equals_the_loop(beta_kind, dtype):
    g = torch.Generator().manual_seed(13)
    x = torch.randn(6, 3, 4, generator=g).to(DEV, dtype).requires_grad_()
    up = torch.randn(6, 3, 4, generator=g).to(DEV, dtype)
    beta = {"float": 0.8, "per_neuron": torch.linspace(0.5, 0.9, 4, device=DEV).requires_grad_(),
            "scalar_tensor": torch.tensor(0.7, device=DEV, requires_grad=True)}[beta_kind]
    assert select_backend("leaky", "auto", x, beta).__name__ == "LeakyTriton"
    v = kernels.leaky_integrate(x, beta, backend="triton")
    xf = x.detach().float().requires_grad_()
    vs, acc = [], torch.zeros(3, 4, device=DEV)
    for t in range(6):
        acc = beta * acc + xf[t]
        vs.append(acc)
    v_ref = torch.stack(vs)
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2 ** -7, "atol": 1e-2}
    assert v.dtype == dtype
    torch.testing.assert_close(v.float(), v_ref.detach(), **tol)
    inputs = [x] + ([beta] if beta_kind != "float" else [])
    grads = torch.autograd.grad((v * up).sum(), inputs)
    grads_ref = torch.autograd.grad((v_ref * up.float()).sum(), [xf] + inputs[1:])
    for a, b in zip(grads, grads_ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a.float(), b, **(tol if dtype == torch.float32 else {"rtol": 3e-2, "atol": 3e-2}))


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_membrane_exactly_at_threshold_spikes(model):
    # H(u - theta) = 1 at u == theta, as in the reference
    x = torch.tensor([1.0, 0.0, 0.25, 0.5], device=DEV).reshape(4, 1, 1)
    spec = NeuronSpec(model, beta=0.5, threshold=1.0, adapt=0.5, rho=0.5)
    s, _, _ = spiking_scan(x, spec, backend="triton")
    s_ref, _, _ = reference_scan(x, spec)
    assert s[0].item() == 1.0
    assert torch.equal(s, s_ref.detach())
