"""e-prop: exact agreement with BPTT where the two coincide, what it drops elsewhere, training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sklearn_snn._core import encoding as enc
from sklearn_snn._core.eprop import eprop_step
from sklearn_snn._core.network import SNN, activity_penalty
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.training import TrainConfig, new_state, run_epochs

F64 = torch.float64


def _setup(model="lif", readout="membrane_max", recurrent=False, hidden=(7,), T=23, seed=1, reg=False,
           surrogate="fast_sigmoid"):
    g = torch.Generator().manual_seed(seed)
    spec = NeuronSpec(model, beta=0.9, alpha=0.8, adapt=0.3, rho=0.9)
    net = SNN(5, hidden, 3, spec, surrogate=surrogate, slope=5.0, recurrent=recurrent, readout=readout,
              generator=g).double()
    with torch.no_grad():
        for layer in net.hidden:
            layer.weight.mul_(4.0)  # enough input that the hidden neurons spike
    x = (torch.rand(T, 4, 5, generator=g, dtype=F64) < 0.4).to(F64)
    y = torch.tensor([0, 1, 2, 1])

    def loss_fn(z):
        return F.cross_entropy(z, y)

    reg_fn = (lambda s: activity_penalty(s, spike_l1=0.01, target_rate=(0.1, 0.2), rate_penalty=1.0)) if reg else None
    return net, x, loss_fn, reg_fn


def _bptt_grads(net, x, loss_fn, reg_fn):
    net.zero_grad()
    logits, spikes = net(x)
    assert all(float(s.detach().sum()) > 0 for s in spikes), "degenerate test: a silent layer"
    loss = loss_fn(logits)
    if reg_fn is not None:
        loss = loss + reg_fn(spikes)
    loss.backward()
    return {k: p.grad.clone() for k, p in net.named_parameters()}, float(loss.detach())


def _eprop_grads(net, x, loss_fn, reg_fn, chunk=6):
    net.zero_grad()
    loss, reg = eprop_step(net, x, loss_fn, reg_fn, chunk=chunk)
    return {k: p.grad.clone() for k, p in net.named_parameters()}, loss + reg


@pytest.mark.parametrize("model", ["lif", "if", "cuba", "alif"])
@pytest.mark.parametrize("readout,reg", [("membrane_max", False), ("membrane_mean", True), ("membrane_last", False)])
def test_equals_bptt_single_feedforward_layer(model, readout, reg):
    # one feed-forward hidden layer, reset by subtraction with a detached reset (the default), leaky
    # readout: nothing e-prop drops is present, so its updates are BPTT's gradient
    net, x, loss_fn, reg_fn = _setup(model, readout, reg=reg)
    bp, loss_bp = _bptt_grads(net, x, loss_fn, reg_fn)
    ep, loss_ep = _eprop_grads(net, x, loss_fn, reg_fn)
    assert loss_ep == pytest.approx(loss_bp, rel=1e-12)
    for k in bp:
        assert float(bp[k].abs().sum()) > 0
        torch.testing.assert_close(ep[k], bp[k], rtol=1e-9, atol=1e-12, msg=k)


@pytest.mark.parametrize("chunk", [1, 5, 100])
def test_chunking_does_not_change_the_updates(chunk):
    net, x, loss_fn, _ = _setup("alif", "membrane_mean")
    ref, _ = _eprop_grads(net, x, loss_fn, None, chunk=23)
    got, _ = _eprop_grads(net, x, loss_fn, None, chunk=chunk)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-10, atol=1e-13)


def test_recurrent_layer_drops_only_the_recurrent_paths():
    net, x, loss_fn, _ = _setup("lif", "membrane_max", recurrent=True)
    # with zero recurrent weights the dropped paths carry nothing: exact again (W_rec's own gradient too)
    with torch.no_grad():
        net.hidden[0].w_rec.zero_()
    bp, _ = _bptt_grads(net, x, loss_fn, None)
    ep, _ = _eprop_grads(net, x, loss_fn, None)
    for k in bp:
        torch.testing.assert_close(ep[k], bp[k], rtol=1e-9, atol=1e-12)
    net, x, loss_fn, _ = _setup("lif", "membrane_max", recurrent=True)
    bp, _ = _bptt_grads(net, x, loss_fn, None)
    ep, _ = _eprop_grads(net, x, loss_fn, None)
    torch.testing.assert_close(ep["out.weight"], bp["out.weight"], rtol=1e-9, atol=1e-12)
    for k in ("hidden.0.weight", "hidden.0.w_rec"):
        rel = float((ep[k] - bp[k]).norm() / bp[k].norm())
        cos = float(F.cosine_similarity(ep[k].flatten(), bp[k].flatten(), dim=0))
        assert rel > 1e-3, "recurrent credit should be missing"
        assert cos > 0.8, "but the update should still point the same way"


def test_two_layers_top_exact_lower_aligned():
    net, x, loss_fn, _ = _setup("lif", "membrane_max", hidden=(7, 6))
    bp, _ = _bptt_grads(net, x, loss_fn, None)
    ep, _ = _eprop_grads(net, x, loss_fn, None)
    for k in ("hidden.1.weight", "hidden.1.bias", "out.weight", "out.bias"):
        torch.testing.assert_close(ep[k], bp[k], rtol=1e-9, atol=1e-12)
    cos = float(F.cosine_similarity(ep["hidden.0.weight"].flatten(), bp["hidden.0.weight"].flatten(), dim=0))
    assert 0.3 < cos < 1 - 1e-6


def test_static_current_input_and_float32():
    g = torch.Generator().manual_seed(0)
    net = SNN(4, (16,), 2, NeuronSpec(), readout="membrane_max", generator=g)
    x = enc.current(torch.rand(8, 4, generator=g) * 3, 30)  # stride-0 time axis
    y = torch.tensor([0, 1] * 4)
    logits, _ = net(x)
    F.cross_entropy(logits, y).backward()
    bp = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    eprop_step(net, x, lambda z: F.cross_entropy(z, y))
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, bp[k], rtol=1e-4, atol=1e-6)


def test_grad_accumulates_like_backward():
    net, x, loss_fn, _ = _setup()
    once, _ = _eprop_grads(net, x, loss_fn, None)
    eprop_step(net, x, loss_fn)  # on top of the existing .grad
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, 2 * once[k])


def test_unsupported_networks_are_refused():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 2, 3)
    with pytest.raises(ValueError, match="readout"):
        eprop_step(SNN(3, (4,), 2, NeuronSpec(), readout="spike_count", generator=g), x, lambda z: z.sum())
    with pytest.raises(ValueError, match="subtract"):
        eprop_step(SNN(3, (4,), 2, NeuronSpec(reset="zero"), generator=g), x, lambda z: z.sum())
    with pytest.raises(ValueError, match="learn_tau"):
        eprop_step(SNN(3, (4,), 2, NeuronSpec(), learn_tau=True, generator=g), x, lambda z: z.sum())


def test_trains_with_the_shared_epoch_loop():
    # two noisy spike-pattern classes; e-prop through run_epochs must learn them
    g = torch.Generator().manual_seed(0)
    T, n, Fin = 40, 120, 10
    proto = (torch.rand(2, T, Fin, generator=g) < 0.15).float()
    y = torch.arange(n) % 2
    flip = (torch.rand(n, T, Fin, generator=g) < 0.05).float()
    X = (proto[y] + flip).clamp(max=1.0) * (1 - (torch.rand(n, T, Fin, generator=g) < 0.1).float())
    net = SNN(Fin, (32,), 2, NeuronSpec(), recurrent=True, readout="membrane_max", generator=g)
    cfg = TrainConfig(max_iter=25, batch_size=30, learning_rate_init=2e-2, alpha=0.0)
    state = new_state(net, cfg)

    def step(module, xb, yb, wb):
        return eprop_step(module, xb.transpose(0, 1), lambda z: F.cross_entropy(z, yb))

    run_epochs(net, state, X, y, step, cfg, cfg.max_iter, generator=g)
    with torch.no_grad():
        acc = float((net(X.transpose(0, 1))[0].argmax(1) == y).float().mean())
    assert state.loss_curve[-1] < 0.5 * state.loss_curve[0]
    assert acc > 0.9
    assert np.isfinite(state.loss_curve).all()


def test_surrogate_estimator_credit_assignment_eprop():
    from sklearn.datasets import load_digits

    from sklearn_snn import SurrogateSNNClassifier

    X, y = load_digits(return_X_y=True)
    kw = dict(hidden_layer_sizes=(32,), max_iter=15, random_state=0, torch_num_threads=1)
    with pytest.warns(Warning):  # ConvergenceWarning at max_iter
        ep = SurrogateSNNClassifier(credit_assignment="eprop", **kw).fit(X[:500], y[:500])
    with pytest.warns(Warning):
        bp = SurrogateSNNClassifier(credit_assignment="bptt", **kw).fit(X[:500], y[:500])
    # one feed-forward layer: the same gradients, so (up to float32 rounding) the same training
    np.testing.assert_allclose(ep.loss_curve_, bp.loss_curve_, rtol=1e-4)
    assert ep.score(X[500:900], y[500:900]) > 0.75
    with pytest.raises(ValueError, match="leaky readout"):
        SurrogateSNNClassifier(credit_assignment="eprop", readout="spike_count", max_iter=1).fit(X[:50], y[:50])
