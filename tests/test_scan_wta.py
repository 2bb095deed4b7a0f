"""The STDP winner-take-all layer on the one scan (issue #18): ``spiking_scan(wta=True)`` and the
plasticity traces computed from the spike trains after it, held to the per-step loop they replaced.

``_old_*`` below is a verbatim copy of the per-step layer and plasticity loop of
``sklearn_snn/_core/stdp.py`` before the move (``_wta_steps``, ``plasticity_step``, ...): the
reference. Spikes and counts must be equal, the STDP sums equal to float tolerance (they are summed
in another order: one matmul over all steps instead of one per step).
"""

import math

import pytest
import torch

from sklearn_snn._core import stdp as core
from sklearn_snn._core.kernels import backend_names, spiking_scan
from sklearn_snn._core.neurons import NeuronSpec, init_state, neuron_step

# ---- the reference: the per-step loop as it was (copied, not imported) -------------------------


def _old_decay(tau):
    return math.exp(-1.0 / tau)


def _old_trace_step(z, s, decay, mode):
    if mode == "nearest":
        return torch.where(s > 0, torch.ones_like(z), z * decay)
    return z * decay + s


def _old_init_traces(B, F, N, device=None, dtype=torch.float32):
    zf = torch.zeros((B, F), device=device, dtype=dtype)
    zn = torch.zeros((B, N), device=device, dtype=dtype)
    return zf, zf.clone(), zn, zn.clone()


def _old_plasticity_step(rule, x, y, traces):
    a2p, a2m, a3p, a3m = rule.amplitudes()
    r1, r2, o1, o2 = traces
    dp, dm, dx, dy = (_old_decay(rule.tau_plus), _old_decay(rule.tau_minus), _old_decay(rule.tau_x),
                      _old_decay(rule.tau_y))
    r1m, o1m = r1 * dp, o1 * dm
    post_gain = y * a2p if not a3p else y * (a2p + a3p * (o2 * dy))
    pre_gain = x * a2m if not a3m else x * (a2m + a3m * (r2 * dx))
    ltp = post_gain.t() @ r1m
    ltd = o1m.t() @ pre_gain
    mode = rule.trace
    r1 = _old_trace_step(r1, x, dp, mode)
    o1 = _old_trace_step(o1, y, dm, mode)
    if rule.uses_triplet:
        r2 = _old_trace_step(r2, x, dx, mode)
        o2 = _old_trace_step(o2, y, dy, mode)
    return ltp, ltd, (r1, r2, o1, o2)


def _old_hard_wta(z):
    best = z.argmax(-1, keepdim=True)
    fire = z.gather(-1, best) >= 0
    return torch.zeros_like(z).scatter_(-1, best, fire.to(z.dtype))


def _old_wta_steps(x, W, theta, spec):
    B, N = x.shape[1], W.shape[0]
    nspec = spec.neuron
    hard = spec.inhibition == "hard"
    state = init_state(nspec, (B, N), device=x.device, dtype=x.dtype)
    thr = nspec.threshold + theta
    spike_fn = _old_hard_wta if hard else (lambda z: (z >= 0).to(z.dtype))
    y = torch.zeros((B, N), device=x.device, dtype=x.dtype)
    Wt = W.t()
    k = spec.inhibition_strength
    for t in range(x.shape[0]):
        cur = x[t] @ Wt
        if not hard and k:
            cur = cur - k * (y.sum(-1, keepdim=True) - y)
        y, u, state = neuron_step(nspec, cur, state, spike_fn, threshold=thr)
        if hard:
            v, syn, a = state
            state = (v * (1.0 - y.amax(-1, keepdim=True)), syn, a)
        yield t, y, u


def _old_run_wta(x, W, theta, spec, rule=None):
    B, N = x.shape[1], W.shape[0]
    counts = torch.zeros((B, N), device=x.device, dtype=x.dtype)
    learn = rule is not None
    if learn:
        traces = _old_init_traces(B, x.shape[2], N, device=x.device, dtype=x.dtype)
        ltp_sum = torch.zeros((N, x.shape[2]), device=x.device, dtype=x.dtype)
        ltd_sum = torch.zeros_like(ltp_sum)
    for t, y, _ in _old_wta_steps(x, W, theta, spec):
        counts = counts + y
        if learn:
            ltp, ltd, traces = _old_plasticity_step(rule, x[t], y, traces)
            ltp_sum += ltp
            ltd_sum += ltd
    if learn:
        return counts, ltp_sum, ltd_sum
    return counts, None, None


def _old_record_wta(x, W, theta, spec):
    spikes = x.new_zeros((x.shape[0], x.shape[1], W.shape[0]))
    mem = torch.zeros_like(spikes)
    for t, y, u in _old_wta_steps(x, W, theta, spec):
        spikes[t], mem[t] = y, u
    return spikes, mem


# ---- equality with the reference --------------------------------------------------------------

NEURONS = {
    "lif-zero": NeuronSpec("lif", beta=math.exp(-1 / 20), threshold=1.0, reset="zero"),
    "alif-zero": NeuronSpec("alif", beta=math.exp(-1 / 20), threshold=1.0, reset="zero", rho=0.9, adapt=0.3),
    "lif-subtract": NeuronSpec("lif", beta=0.9, threshold=0.8, reset="subtract"),
    "cuba-subtract": NeuronSpec("cuba", beta=0.9, alpha=0.7, threshold=1.0, reset="subtract"),
}

RULES = {
    "pair": {"rule": "pair", "a_plus": 0.3, "a_minus": 0.2, "tau_plus": 5.0, "tau_minus": 9.0},
    "triplet": {"rule": "triplet", "a_plus": 0.1, "a_minus": 0.2, "a3_plus": 0.5, "a3_minus": 0.3, "tau_plus": 5.0,
                "tau_minus": 8.0, "tau_x": 20.0, "tau_y": 30.0},
}

# (neuron, inhibition, strength, rule, trace, dtype): every option against the reference, in a few runs
CASES = [
    ("lif-zero", "hard", 1.0, "pair", "all-to-all", torch.float32),
    ("alif-zero", "hard", 1.0, "triplet", "nearest", torch.float32),
    ("lif-subtract", "hard", 1.0, "triplet", "all-to-all", torch.float64),
    ("cuba-subtract", "hard", 1.0, "pair", "nearest", torch.float64),
    ("lif-zero", "soft", 1.0, "triplet", "nearest", torch.float32),
    ("alif-zero", "soft", 0.5, "pair", "all-to-all", torch.float64),
    ("lif-subtract", "soft", 2.0, "pair", "nearest", torch.float32),
    ("cuba-subtract", "soft", 0.0, "triplet", "all-to-all", torch.float32),
]


def _data(dtype, seed, T=40, B=6, F=10, N=7):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, F, generator=g) < 0.35).to(dtype)
    W = (torch.rand(N, F, generator=g) * 0.6).to(dtype)
    theta = ((torch.rand(N, generator=g) - 0.3) * 0.5).to(dtype)   # theta != 0, some negative
    return x, W, theta


@pytest.mark.parametrize("neuron,inhibition,k,rule,trace,dtype", CASES)
def test_wta_layer_equals_the_per_step_loop(neuron, inhibition, k, rule, trace, dtype):
    spec = core.WTASpec(neuron=NEURONS[neuron], inhibition=inhibition, inhibition_strength=k)
    rule = core.STDPRule(trace=trace, **RULES[rule])
    for seed in range(3):
        x, W, theta = _data(dtype, seed)
        c_old, p_old, d_old = _old_run_wta(x, W, theta, spec, rule)
        c_new, p_new, d_new = core.run_wta(x, W, theta, spec, rule)
        assert c_new.dtype == dtype and p_new.dtype == dtype
        assert c_old.sum() > 20 and p_old.sum() > 0 and d_old.sum() > 0   # the case is not trivial
        if inhibition == "hard":
            assert int(c_old.sum(1).max()) <= x.shape[0]
        torch.testing.assert_close(c_new, c_old, rtol=0, atol=0)
        tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
        torch.testing.assert_close(p_new, p_old, **tol)
        torch.testing.assert_close(d_new, d_old, **tol)
        assert core.run_wta(x, W, theta, spec)[1:] == (None, None)
        torch.testing.assert_close(core.run_wta(x, W, theta, spec)[0], c_old, rtol=0, atol=0)
        s_old, u_old = _old_record_wta(x, W, theta, spec)
        s_new, u_new = core.record_wta(x, W, theta, spec)
        torch.testing.assert_close(s_new, s_old, rtol=0, atol=0)
        torch.testing.assert_close(u_new, u_old, **tol)


def test_windows_of_steps_equal_one_run(monkeypatch):
    # the layer runs the scan over windows of steps (state carried over): force many small ones
    spec = core.WTASpec(neuron=NEURONS["alif-zero"], inhibition="hard")
    rule = core.STDPRule(rule="triplet", trace="nearest", **{k: v for k, v in RULES["triplet"].items() if k != "rule"})
    x, W, theta = _data(torch.float64, 3)
    c_old, p_old, d_old = _old_run_wta(x, W, theta, spec, rule)
    s_old, u_old = _old_record_wta(x, W, theta, spec)
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 3 * x.shape[1] * W.shape[0])   # 3 steps, 12 with spikes kept
    c, p, d = core.run_wta(x, W, theta, spec, rule)
    torch.testing.assert_close(c, c_old, rtol=0, atol=0)
    torch.testing.assert_close(core.run_wta(x, W, theta, spec)[0], c_old, rtol=0, atol=0)
    torch.testing.assert_close((p, d), (p_old, d_old), rtol=1e-10, atol=1e-12)
    s, u = core.record_wta(x, W, theta, spec)
    torch.testing.assert_close(s, s_old, rtol=0, atol=0)
    torch.testing.assert_close(u, u_old, rtol=1e-10, atol=1e-12)


def test_train_batch_equals_the_per_step_loop():
    # a few minibatches of learning: the weights and thresholds follow the same path
    spec = core.WTASpec(neuron=NEURONS["alif-zero"], inhibition="hard", homeostasis_rate=0.5,
                        target_rate=(0.02, 0.2))
    rule = core.STDPRule(rule="triplet", trace="all-to-all", weight_dependence="multiplicative", a_plus=0.05,
                         a_minus=0.03, a3_plus=0.02, a3_minus=0.01)
    x, W, theta = _data(torch.float64, 7, T=30, B=8, F=12, N=9)
    W_old, th_old, W_new, th_new = W, theta, W, theta
    for i in range(4):
        xb = x.roll(i, dims=1)
        c_old, p, d = _old_run_wta(xb, W_old, th_old, spec, rule)
        W_old = core.apply_stdp(W_old, p, d, (c_old > 0).sum(0).to(W.dtype), rule, weight_norm=0.2)
        th_old = core.update_theta(th_old, c_old, xb.shape[0], spec, spec.neuron.threshold)
        W_new, th_new, c_new = core.train_batch(xb, W_new, th_new, spec, rule, weight_norm=0.2)
        torch.testing.assert_close(c_new, c_old, rtol=0, atol=0)
        torch.testing.assert_close(W_new, W_old, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(th_new, th_old, rtol=1e-10, atol=1e-12)
    assert not torch.equal(W_new, W)


@pytest.mark.parametrize("mode", ["all-to-all", "nearest"])
def test_trace_before_equals_the_recurrence(mode):
    g = torch.Generator().manual_seed(1)
    s = (torch.rand(60, 3, 5, generator=g) < 0.2).double() * torch.rand(60, 3, 5, generator=g, dtype=torch.float64)
    d = _old_decay(7.0)
    z = torch.zeros(3, 5, dtype=torch.float64)
    ref = []
    for t in range(60):
        ref.append(z * d)
        z = _old_trace_step(z, s[t], d, mode)
    torch.testing.assert_close(core.trace_before(s, 7.0, mode), torch.stack(ref), rtol=1e-12, atol=1e-14)


# ---- spiking_scan(wta=True) itself ----------------------------------------------------------


def test_wta_scan_one_winner_first_on_ties_and_sample_reset():
    spec = NeuronSpec("lif", beta=0.5, threshold=1.0, reset="zero")
    x = torch.tensor([[[1.5, 1.5, 0.2], [0.9, 0.3, 0.2]],     # sample 0: a tie, sample 1: no winner
                      [[0.9, 0.0, 0.0], [0.2, 0.0, 0.0]]])
    s, u, (v, _, _, s_last) = spiking_scan(x, spec, wta=True)
    assert s[0].tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # the first of the tied neurons
    # sample 0 had a winner: all its membranes were reset (neuron 1 and 2 do not carry 1.5, 0.2)
    assert u[1, 0].tolist() == pytest.approx([0.9, 0.0, 0.0])
    # sample 1 had none: its membranes carry over with the leak
    assert u[1, 1].tolist() == pytest.approx([0.45 + 0.2, 0.15, 0.1])
    assert s[1].sum() == 0 and torch.equal(s_last, s[1])
    torch.testing.assert_close(v, u[1])   # no spike at the last step: the final membrane is u
    # the other neurons of a winning sample above threshold do not spike; without wta they do
    assert spiking_scan(x, spec)[0][0, 0].tolist() == [1.0, 1.0, 0.0]
    # a membrane exactly at its threshold fires (>= 0 above it)
    assert spiking_scan(torch.tensor([[[1.0, 0.25]]]), spec, wta=True)[0].flatten().tolist() == [1.0, 0.0]


def test_wta_scan_at_most_one_spike_per_step_and_state():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 16, 8, generator=g) * 0.8
    spec = NeuronSpec("alif", beta=0.9, threshold=1.0, reset="subtract")
    s, _, st = spiking_scan(x, spec, threshold=torch.linspace(0.6, 1.2, 8), wta=True)
    assert s.sum() > 30 and int(s.sum(-1).max()) == 1
    # two halves with the state carried over equal the whole run
    s1, _, st1 = spiking_scan(x[:12], spec, threshold=torch.linspace(0.6, 1.2, 8), wta=True)
    s2, _, st2 = spiking_scan(x[12:], spec, threshold=torch.linspace(0.6, 1.2, 8), wta=True, state=st1)
    assert torch.equal(torch.cat([s1, s2]), s)
    for i in (0, 2, 3):   # v, a, s (syn is unused by alif)
        torch.testing.assert_close(st2[i], st[i])


def test_wta_scan_refuses_other_backends_and_gradients():
    spec = NeuronSpec("lif")
    x = torch.rand(4, 2, 3)
    for name in backend_names("scan"):
        if name not in ("auto", "torch"):
            with pytest.raises(ValueError, match="torch backend only"):
                spiking_scan(x, spec, wta=True, backend=name)
    with pytest.raises(ValueError, match="backend must be"):
        spiking_scan(x, spec, wta=True, backend="nope")
    assert torch.equal(spiking_scan(x, spec, wta=True, backend="torch")[0], spiking_scan(x, spec, wta=True)[0])
    xg = x.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="forward only.*no_grad"):
        spiking_scan(xg, spec, wta=True)
    with pytest.raises(ValueError, match="forward only"):
        spiking_scan(x, spec, wta=True, threshold=torch.ones(3, requires_grad=True))
    with torch.no_grad():
        s, _, _ = spiking_scan(xg, spec, wta=True)
    assert not s.requires_grad and torch.equal(s, spiking_scan(x, spec, wta=True)[0])
