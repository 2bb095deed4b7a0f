"""The population kernel generated from the neuron update of the scan's template (#18).

The generated kernel must give, bit for bit, what the hand-written kernel it replaces gave: that
kernel is kept below as the reference (run as plain Python, which rounds every operation as the
compiled code does), driven through the same ``PopulationSNN`` harness. Every neuron model
(lif, cuba, alif, if) with both resets, every readout, static and temporal input, float32 and
float64; several models in one network (the flags are per layer).
"""

import types

import pytest
import torch

from sklearn_snn._core import evolution as evo
from sklearn_snn._core.encoding import current
from sklearn_snn._core.evolution import PopulationSNN, compiled_kernels
from sklearn_snn._core.network import SNN
from sklearn_snn._core.neuron_source import neuron_update
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.population_kernel import kernel_source, population_kernel

needs_numba = pytest.mark.skipif(compiled_kernels() is None, reason="numba not installed")


def reference_kernel(cur0, W, p_base, n_p, lay, fpar, consts, ipar, logits, spk, counts,
                     V_, S_, SYN_, A_, ACC_, VO_, AGG_, SURV_, CNT_):
    """The hand-written population kernel before #18 (runtime branches per layer), unchanged."""
    B, O = logits.shape[1], logits.shape[2]
    T, rcode, save, count, static = ipar[0], ipar[1], ipar[2] != 0, ipar[3] != 0, ipar[4] != 0
    one, zero, fT = consts[0], consts[1], consts[2]
    L = lay.shape[0]
    H0 = lay[0, 2]
    nchunks = V_.shape[0]
    step = (n_p + nchunks - 1) // nchunks
    for c in range(nchunks):
        V, S, SYN, A, ACC = V_[c], S_[c], SYN_[c], A_[c], ACC_[c]
        VO, AGG, SURV, CNT = VO_[c], AGG_[c], SURV_[c], CNT_[c]
        for p in range(c * step, min(n_p, (c + 1) * step)):
            pg = p_base + p
            V[:] = zero
            SYN[:] = zero
            A[:] = zero
            VO[:] = zero
            AGG[:] = zero
            SURV[:] = one
            CNT[:] = zero
            for t in range(T):
                col = 0 if static else t * B
                for k in range(L):
                    w_off, b_off, n_out, n_in, h_off = lay[k, 0], lay[k, 1], lay[k, 2], lay[k, 3], lay[k, 4]
                    if k > 0:
                        prev = lay[k - 1, 4]
                        for o in range(n_out):
                            bo = W[pg, b_off + o]
                            for b in range(B):
                                ACC[o, b] = bo
                        o = 0
                        while o < n_out:
                            o2 = o + 1 if o + 1 < n_out else o
                            two = o2 > o
                            base0 = w_off + o * n_in
                            base1 = w_off + o2 * n_in
                            j = 0
                            while j + 4 <= n_in:
                                w00 = W[pg, base0 + j]
                                w01 = W[pg, base0 + j + 1]
                                w02 = W[pg, base0 + j + 2]
                                w03 = W[pg, base0 + j + 3]
                                w10 = W[pg, base1 + j] if two else zero
                                w11 = W[pg, base1 + j + 1] if two else zero
                                w12 = W[pg, base1 + j + 2] if two else zero
                                w13 = W[pg, base1 + j + 3] if two else zero
                                j0 = prev + j
                                for b in range(B):
                                    x0 = S[j0, b]
                                    x1 = S[j0 + 1, b]
                                    x2 = S[j0 + 2, b]
                                    x3 = S[j0 + 3, b]
                                    ACC[o, b] += w00 * x0 + w01 * x1 + w02 * x2 + w03 * x3
                                    ACC[o2, b] += w10 * x0 + w11 * x1 + w12 * x2 + w13 * x3
                                j += 4
                            while j < n_in:
                                w00 = W[pg, base0 + j]
                                w10 = W[pg, base1 + j] if two else zero
                                for b in range(B):
                                    x0 = S[prev + j, b]
                                    ACC[o, b] += w00 * x0
                                    ACC[o2, b] += w10 * x0
                                j += 1
                            o += 2
                    if h_off >= 0:
                        beta, alpha, thr, adapt, rho = fpar[k, 0], fpar[k, 1], fpar[k, 2], fpar[k, 3], fpar[k, 4]
                        cuba, alif, subtract = lay[k, 5] != 0, lay[k, 6] != 0, lay[k, 7] != 0
                        for h in range(n_out):
                            row = p * H0 + h
                            q = h_off + h
                            if not cuba and not alif and subtract:
                                if k == 0:
                                    for b in range(B):
                                        u = beta * V[q, b] + cur0[row, col + b]
                                        s = one if u >= thr else zero
                                        S[q, b] = s
                                        V[q, b] = u - thr * s
                                else:
                                    for b in range(B):
                                        u = beta * V[q, b] + ACC[h, b]
                                        s = one if u >= thr else zero
                                        S[q, b] = s
                                        V[q, b] = u - thr * s
                            else:
                                for b in range(B):
                                    cx = cur0[row, col + b] if k == 0 else ACC[h, b]
                                    if cuba:
                                        cx = alpha * SYN[q, b] + cx
                                        SYN[q, b] = cx
                                    u = beta * V[q, b] + cx
                                    th = thr + adapt * A[q, b] if alif else thr
                                    s = one if u >= th else zero
                                    S[q, b] = s
                                    if subtract:
                                        V[q, b] = u - thr * s
                                    else:
                                        V[q, b] = u * (one - s)
                                    if alif:
                                        A[q, b] = rho * A[q, b] + s
                            if save:
                                for b in range(B):
                                    spk[t, pg, q, b] = S[q, b] != zero
                            if count:
                                for b in range(B):
                                    CNT[b] += S[q, b]
                        if k == L - 1:
                            for o in range(n_out):
                                q = h_off + o
                                if rcode == 0:
                                    for b in range(B):
                                        AGG[o, b] += S[q, b]
                                else:
                                    for b in range(B):
                                        SURV[o, b] = SURV[o, b] * (one - S[q, b])
                                        AGG[o, b] += SURV[o, b]
                    else:
                        beta = fpar[k, 0]
                        for o in range(n_out):
                            if rcode == 2:
                                for b in range(B):
                                    v = beta * VO[o, b] + ACC[o, b]
                                    VO[o, b] = v
                                    if t == 0 or v > AGG[o, b] or v != v:  # noqa: PLR0124 -- NaN
                                        AGG[o, b] = v
                            elif rcode == 3:
                                for b in range(B):
                                    VO[o, b] = beta * VO[o, b] + ACC[o, b]
                                if t == T - 1:
                                    for b in range(B):
                                        AGG[o, b] = VO[o, b]
                            else:
                                for b in range(B):
                                    v = beta * VO[o, b] + ACC[o, b]
                                    VO[o, b] = v
                                    AGG[o, b] += v
            for o in range(O):
                for b in range(B):
                    v = AGG[o, b]
                    if rcode == 4:
                        v = v / fT
                    elif rcode == 1:
                        v = -v
                    logits[pg, b, o] = v
            if count:
                for b in range(B):
                    counts[pg, b] = CNT[b]


def run_reference(monkeypatch, pop, genomes, x):
    """``forward`` and ``evaluate`` of ``pop`` through its compiled-path harness, with the
    reference kernel in place of the generated one."""
    nb = compiled_kernels()
    fake = types.SimpleNamespace(numba=nb.numba, ser=reference_kernel, par=reference_kernel)
    with monkeypatch.context() as m:
        m.setattr(evo, "compiled_kernels", lambda: fake)
        logits, spikes = pop.forward(genomes, x, backend="numba")
        lg, counts = pop.evaluate(genomes, x, spike_counts=True, backend="numba")
    return logits, spikes, lg, counts


MODELS = [("lif", "subtract"), ("cuba", "zero"), ("alif", "subtract"), ("if", "zero"),
          ("lif", "zero"), ("cuba", "subtract"), ("alif", "zero"), ("if", "subtract")]
READOUTS = ["spike_count", "first_spike", "membrane_max", "membrane_last", "membrane_mean"]


def _network(case, readout, dtype):
    """Two hidden layers (and a spiking output for spike readouts): the first with the model and
    reset of the case, the later ones with the next ones of MODELS."""
    g = torch.Generator().manual_seed(case)
    model, reset = MODELS[case]
    net = SNN(6, (9, 5), 3, NeuronSpec(model, beta=0.8, reset=reset, threshold=0.9), readout=readout,
              generator=g, dtype=dtype)
    for i, layer in enumerate(net.layers[1:]):
        if hasattr(layer, "spec"):
            model, reset = MODELS[(case + 1 + i) % len(MODELS)]
            layer.spec = NeuronSpec(model, beta=0.7, alpha=0.6, reset=reset, threshold=1.1)
    return net, g


def _check(monkeypatch, pop, genomes, x):
    ref_logits, ref_spikes, ref_lg, ref_counts = run_reference(monkeypatch, pop, genomes, x)
    logits, spikes = pop.forward(genomes, x, backend="numba")
    lg, counts = pop.evaluate(genomes, x, spike_counts=True, backend="numba")
    assert logits.dtype == x.dtype
    assert torch.equal(logits, ref_logits)                           # bit for bit
    assert torch.equal(lg, ref_lg) and torch.equal(lg, logits)
    assert torch.equal(counts, ref_counts)
    assert len(spikes) == len(ref_spikes) == len(pop._spiking_sizes)
    for s, r in zip(spikes, ref_spikes):
        assert torch.equal(s, r)
    return logits, counts


@needs_numba
@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("case", range(len(MODELS)))
def test_generated_kernel_equals_the_hand_written_one(monkeypatch, case, readout):
    dtype = torch.float64 if (case + READOUTS.index(readout)) % 2 else torch.float32
    net, g = _network(case, readout, dtype)
    pop = PopulationSNN(net, "both")
    genomes = pop.initial_genome().repeat(3, 1) + 0.8 * torch.randn(3, pop.n_genes, generator=g, dtype=dtype)
    static = current(2 * torch.randn(5, 6, generator=g, dtype=dtype), 7)
    temporal = 3 * torch.rand(6, 5, 6, generator=g, dtype=dtype)
    n_spikes = 0.0
    for x in (static, temporal):
        logits, counts = _check(monkeypatch, pop, genomes, x)
        n_spikes += float(counts.sum())
        # and the torch path (BLAS products: equal up to rounding)
        t_logits, _ = pop.forward(genomes, x, backend="torch")
        torch.testing.assert_close(logits, t_logits, rtol=1e-4, atol=1e-4)
    assert n_spikes > 0                                               # the networks do spike


@needs_numba
def test_one_serial_and_one_parallel_build():
    assert population_kernel() is population_kernel(False)
    assert population_kernel(True) is not population_kernel(False)
    # separate source modules: numba's disk cache ignores the compile options
    assert population_kernel(True).py_func.__module__ != population_kernel(False).py_func.__module__


def test_source_renders_the_neuron_update_once():
    src = kernel_source()
    compile(src, "<kernel>", "exec")                                  # valid Python
    lean = neuron_update(40, cuba=False, alif=False, subtract=True, x="ACC[h, b]", v="V[q, b]", syn="SYN[q, b]",
                         a="A[q, b]", beta="beta", alpha="alpha", thr="thr", adapt="adapt", rho="rho",
                         on_spike=["S[q, b] = s"])
    general = neuron_update(36, cuba="cuba", alif="alif", subtract="subtract",
                            x="cur0[row, col + b] if k == 0 else ACC[h, b]", v="V[q, b]", syn="SYN[q, b]",
                            a="A[q, b]", beta="beta", alpha="alpha", thr="thr", adapt="adapt", rho="rho",
                            on_spike=["S[q, b] = s"])
    assert lean in src and general in src
    assert "if cuba" not in lean and "u * (one - s)" not in lean        # the lean path holds no branch
    assert "prange(nchunks)" in kernel_source(parallel=True) and "prange(nchunks)" not in src


@needs_numba
def test_scan_forward_renders_the_same_update():
    from sklearn_snn._core.numba_backend import specialised

    mod = specialised("fwd", rec=False, cuba=True, alif=True, subtract=False, saveq=False, inplace=False,
                      parallel=False)
    with open(mod.__file__) as f:
        src = f.read()
    snippet = neuron_update(20, cuba="CUBA", alif="ALIF", subtract="SUBTRACT", x="xr[h]", v="vb[h]",
                            syn="synb[h]", a="ab[h]", beta="beta[h]", alpha="alpha[h]", thr="thr[h]", adapt="adapt",
                            rho="rho", on_membrane=["ur[h] = u"], on_adapt=["ar[h] = ab[h]"],
                            on_spike=["sr[h] = s", "if SAVEQ:", "    qr[h] = 1 if s != zero else 0"],
                            on_end=["spb[h] = s"])
    assert snippet in src


def test_neuron_update_resolves_or_branches():
    resolved = neuron_update(0, cuba=True, alif=False, subtract=False, x="i", v="v", syn="y", a="a", beta="b",
                             alpha="al", thr="th", adapt="ad", rho="r")
    assert resolved.splitlines() == ["xt = i", "xt = al * y + xt", "y = xt", "u = b * v + xt",
                                     "s = one if u >= th else zero", "v = u * (one - s)"]
    branched = neuron_update(4, cuba="C", alif="A", subtract="S", x="i", v="v", syn="y", a="a", beta="b",
                             alpha="al", thr="th", adapt="ad", rho="r")
    assert "    if C:\n        xt = al * y + xt\n" in branched
    assert "    if A:\n        s = one if u >= th + ad * a else zero\n    else:\n" in branched
    # the generated lines compute the update (lif, subtract reset)
    ns = {"one": 1.0, "zero": 0.0, "i": 0.7, "v": 0.5, "b": 0.9, "th": 1.0}
    src = neuron_update(0, cuba=False, alif=False, subtract=True, x="i", v="v", syn="", a="", beta="b",
                        alpha="", thr="th", adapt="", rho="")
    exec(src, ns)  # noqa: S102 -- the generated lines, run as Python
    assert ns["s"] == 1.0 and ns["v"] == pytest.approx(0.9 * 0.5 + 0.7 - 1.0)
    with pytest.raises(TypeError, match="bool or the name"):
        neuron_update(0, cuba=1, alif=False, subtract=True, x="i", v="v", syn="", a="", beta="b", alpha="",
                      thr="th", adapt="", rho="")
