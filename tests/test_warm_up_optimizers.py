"""The package's optimisers (issue #20 item 2): torch.optim's updates without importing torch's
compiler, so the first ``fit`` of a process does not pay for it."""

import copy
import os
import subprocess
import sys

import pytest
import torch

from sklearn_snn._core import optimizers
from sklearn_snn._core.hypergradient import HypergradientOptimizer


def _problem(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 3), (3,), (4, 5), (1,)]
    init = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    grads = [[torch.randn(s, generator=g, dtype=dtype) for s in shapes] for _ in range(12)]
    return init, grads


def _run(cls, init, grads, groups=None, **kw):
    params = [torch.nn.Parameter(p.clone()) for p in init]
    arg = params if groups is None else [dict(params=params[:2], **groups), {"params": params[2:]}]
    opt = cls(arg, **kw)
    for i, gs in enumerate(grads):
        opt.zero_grad(set_to_none=i % 2 == 0)
        for p, g in zip(params, gs):
            if i % 5 == 3 and p.dim() == 1 and p.numel() == 1:
                continue                        # a parameter without a gradient this step
            p.grad = g.clone() if p.grad is None else p.grad.add_(g)
        opt.step()
    return [p.detach() for p in params], opt


ADAM_CASES = [{"lr": 1e-2}, {"lr": 3e-2, "weight_decay": 1e-2}, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6}]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw", ADAM_CASES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_matches_torch_fused_and_per_tensor(kw, decoupled, dtype, monkeypatch):
    init, grads = _problem(dtype)
    ref_cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ours_cls = optimizers.AdamW if decoupled else optimizers.Adam
    kw = dict(kw)
    if decoupled:
        kw.setdefault("weight_decay", 0.0)
    ref_fused, _ = _run(ref_cls, init, grads, fused=True, **kw)
    ref_loop, _ = _run(ref_cls, init, grads, foreach=False, **kw)
    ours, _ = _run(ours_cls, init, grads, **kw)
    for a, b in zip(ours, ref_fused):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    monkeypatch.setattr(optimizers, "_fused_ok", lambda device, dtype: False)   # the per-tensor update
    ours_loop, _ = _run(ours_cls, init, grads, **kw)
    for a, b in zip(ours_loop, ref_loop):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kw", [{"lr": 0.1}, {"lr": 0.05, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9, "nesterov": True},
                                {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
                                {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 1e-3}])
def test_sgd_matches_torch(kw):
    init, grads = _problem(torch.float64, seed=1)
    ref, _ = _run(torch.optim.SGD, init, grads, **kw)
    ours, _ = _run(optimizers.SGD, init, grads, **kw)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_param_groups_schedulers_and_state_dict():
    init, grads = _problem(torch.float64, seed=2)
    ref, _ = _run(torch.optim.Adam, init, grads, groups={"lr": 0.05}, lr=1e-2, fused=True)
    ours, opt = _run(optimizers.Adam, init, grads, groups={"lr": 0.05}, lr=1e-2)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 1e-2]
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"] and float(sd["state"][0]["step"]) == 12.0
    # a copy resumed from the state dict continues exactly as the original
    params2 = [torch.nn.Parameter(p.clone()) for p in ours]
    opt2 = optimizers.Adam([{"params": params2[:2], "lr": 0.05}, {"params": params2[2:]}], lr=1e-2)
    opt2.load_state_dict(copy.deepcopy(sd))      # (state_dict() refers to the live state tensors)
    for o, ps in ((opt, [g for grp in opt.param_groups for g in grp["params"]]), (opt2, params2)):
        for p in ps:
            p.grad = torch.ones_like(p)
        o.step()
    for a, b in zip([p for grp in opt.param_groups for p in grp["params"]], params2):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
    # the schedulers accept them
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    opt.step()
    cos.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-2 * (1 + torch.cos(torch.tensor(torch.pi / 4)).item()) / 2)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt2, factor=0.5, patience=0)
    plateau.step(1.0)
    plateau.step(2.0)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.025)


@pytest.mark.parametrize("base, kw, ref", [
    ("adam", {"lr": 1e-2}, (torch.optim.Adam, {"lr": 1e-2, "foreach": False})),
    ("adam", {"lr": 3e-2, "weight_decay": 1e-2, "betas": (0.8, 0.99)},
     (torch.optim.Adam, {"lr": 3e-2, "weight_decay": 1e-2, "betas": (0.8, 0.99), "foreach": False})),
    ("sgd", {"lr": 0.05}, (torch.optim.SGD, {"lr": 0.05})),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
     (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3})),
])
@pytest.mark.parametrize("multiplicative", [True, False])
def test_hypergradient_without_rate_updates_is_torch_optim(base, kw, ref, multiplicative):
    """With ``hypergrad_lr=0`` the hypergradient optimizer's steps are torch.optim's (the shared
    update directions of ``optimizers``), in float64 to rounding."""
    init, grads = _problem(torch.float64, seed=3)
    expected, _ = _run(ref[0], init, grads, **ref[1])
    ours, opt = _run(HypergradientOptimizer, init, grads, base=base, hypergrad_lr=0.0, multiplicative=multiplicative,
                     **kw)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert opt.lr_history == [kw["lr"]] * len(grads)
    # with a rate of its own the learning rate moves, and the steps differ from torch.optim's
    moved, opt = _run(HypergradientOptimizer, init, grads, base=base, hypergrad_lr=0.05 if multiplicative else 1e-3,
                      multiplicative=multiplicative, **kw)
    assert opt.lr_history[-1] != kw["lr"]
    assert not all(torch.allclose(a, b) for a, b in zip(moved, expected))


def test_adam_direction_and_momentum_direction_are_the_optimizers_steps():
    init, grads = _problem(torch.float64, seed=4)
    p = init[0].clone()
    state = {}
    for gs in grads:
        p -= 1e-2 * optimizers.adam_direction(gs[0], state)
    expected, _ = _run(torch.optim.Adam, init[:1], [gs[:1] for gs in grads], lr=1e-2, foreach=False)
    torch.testing.assert_close(p, expected[0], rtol=0, atol=1e-12)
    q, state = init[0].clone(), {}
    for gs in grads:
        q -= 0.05 * optimizers.momentum_direction(gs[0], state, 0.9, 0.3)
    expected, _ = _run(torch.optim.SGD, init[:1], [gs[:1] for gs in grads], lr=0.05, momentum=0.9, dampening=0.3)
    torch.testing.assert_close(q, expected[0], rtol=0, atol=1e-12)


def test_meta_and_hypergradient_optimizers_do_not_subclass_torch_optim_directly():
    """The meta-learner's outer step and the hypergradient solvers use the package's base class,
    whose bookkeeping does not import torch's compiler."""
    assert issubclass(HypergradientOptimizer, optimizers.PlainOptimizer)
    from sklearn_snn import meta

    assert meta.Adam is optimizers.Adam


def test_invalid_options_say_what_is_wrong():
    w = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optimizers.SGD(w, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas in \[0, 1\)"):
        optimizers.Adam(w, betas=(0.9, 1.0))


_NO_DYNAMO = r"""
import sys, warnings
import numpy as np
from sklearn_snn import SurrogateSNNClassifier
rng = np.random.default_rng(0)
X2, y2 = rng.random((40, 6)), np.arange(40) % 2
X3 = (rng.random((40, 8, 5)) < 0.2).astype(np.float32)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for solver, sched in (("adam", "constant"), ("adamw", "cosine"), ("sgd", "plateau")):
        SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=2, solver=solver, lr_schedule=sched,
                               random_state=0).fit(X2, y2)
    SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X3, y2)
    for solver in ("adam-hd", "sgd-hd"):
        SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=2, solver=solver, random_state=0).fit(X2, y2)
    from sklearn_snn.meta import MetaSNNClassifier
    tasks = [(X2[:20], y2[:20], X2[20:], y2[20:])]
    for algo in ("fomaml", "protonet"):
        MetaSNNClassifier(hidden_layer_sizes=(8,), n_steps=4, meta_algorithm=algo, n_meta_iter=2, n_adapt_steps=1,
                          readout="membrane_max", random_state=0).meta_fit(tasks).fit(X2, y2)
print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
"""


@pytest.mark.parametrize("numba", ["1", "0"])
def test_fit_does_not_import_torch_compiler(numba):
    env = dict(os.environ, SKLEARN_SNN_NUMBA=numba, SKLEARN_SNN_WARMUP="0", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _NO_DYNAMO], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
