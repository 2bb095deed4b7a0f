"""Fast by default (issue #20): the fallback warning, the switch to the pure-torch loops, the
kernel cache shared between processes and environments."""

import os
import sys
import warnings

import numpy as np
import pytest
import torch

from sklearn_snn._core import kernels, numba_backend
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.scan_torch import ScanTorch

HAVE_NUMBA = numba_backend.numba_kernels() is not None
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed or disabled (SKLEARN_SNN_NUMBA=0)")


@pytest.fixture
def fresh_backend():
    """numba_kernels() re-evaluated under the test's environment, restored afterwards."""
    numba_backend.numba_kernels.cache_clear()
    yield
    numba_backend.numba_kernels.cache_clear()


def _args():
    return torch.zeros(3, 2, 4), None, (0.9, 0.9, 1.0)


def test_missing_numba_warns_once_naming_the_install(monkeypatch, fresh_backend):
    monkeypatch.delenv("SKLEARN_SNN_NUMBA", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)      # import numba raises ImportError
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert kernels.select_backend("scan", "auto", *_args()) is ScanTorch
        assert numba_backend.numba_kernels() is None
        kernels.select_backend("leaky", "auto", torch.zeros(3, 2, 4), 0.5)
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1
    assert "pip install numba" in msgs[0] and "SKLEARN_SNN_NUMBA=0" in msgs[0]
    with pytest.raises(ImportError, match=r"backend='numba' needs numba \(pip install numba\)"):
        kernels.select_backend("scan", "numba", *_args())


def test_env_switch_forces_the_torch_loops_silently(monkeypatch, fresh_backend):
    monkeypatch.setenv("SKLEARN_SNN_NUMBA", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert numba_backend.numba_kernels() is None
        assert kernels.select_backend("scan", "auto", *_args()) is ScanTorch
        s, _, _ = kernels.spiking_scan(torch.full((3, 1, 1), 0.8), NeuronSpec("lif", beta=0.5))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0]


@needs_numba
def test_shared_module_is_keyed_by_source_and_numba_version(monkeypatch, tmp_path):
    import numba

    monkeypatch.setenv("SKLEARN_SNN_KERNEL_CACHE", str(tmp_path))
    src = "VALUE = 41 + 1\n"
    a = numba_backend.shared_module("snn_test", src)
    assert a.VALUE == 42 and os.path.dirname(a.__file__) == str(tmp_path)
    assert numba_backend.shared_module("snn_test", src) is a                 # imported once per process
    b = numba_backend.shared_module("snn_test", src.replace("41", "40"))
    assert b.__name__ != a.__name__
    monkeypatch.setattr(numba, "__version__", numba.__version__ + ".other")
    c = numba_backend.shared_module("snn_test", src)
    assert c.__name__ != a.__name__ and c.VALUE == 42
    assert sorted(p.name for p in tmp_path.glob("snn_test_*.py")) == sorted(
        os.path.basename(m.__file__) for m in (a, b, c))


@needs_numba
def test_compiled_loops_load_from_the_shared_cache():
    nb = numba_backend.numba_kernels()
    mod = sys.modules[nb.ser.leaky.py_func.__module__]
    assert mod.__name__.startswith("snn_loops_")
    assert os.path.dirname(mod.__file__) == numba_backend.cache_dir()
    # and they compute what the torch loop computes
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(kernels.leaky_integrate(x, 0.7, backend="numba"),
                               kernels.leaky_integrate(x, 0.7, backend="torch"))


# ---- the compile rule: backend='auto' runs the torch loops where compiling would not pay ----------

@pytest.fixture
def fresh_rule(monkeypatch, tmp_path):
    """An empty kernel cache (no warm-up list: nothing compiled on this 'machine')."""
    monkeypatch.setenv("SKLEARN_SNN_KERNEL_CACHE", str(tmp_path))
    monkeypatch.delenv("SKLEARN_SNN_NUMBA", raising=False)
    monkeypatch.setitem(kernels.COMPILE_MIN_WORK, "scan", 125)
    return tmp_path


LIF = NeuronSpec("lif", beta=0.8)


def _scan(calls=None, backend="auto", spec=LIF):
    x = (torch.linspace(0, 3, 5 * 2 * 4).reshape(5, 2, 4) - 0.5).requires_grad_()   # work 5 + 40/12000
    if calls is None:
        s, u, _ = kernels.spiking_scan(x, spec, backend=backend)
    else:
        with kernels.fit_work(calls):
            s, u, _ = kernels.spiking_scan(x, spec, backend=backend)
    (g,) = torch.autograd.grad((s * torch.arange(4.0)).sum(), x)
    return type(s.grad_fn).__name__, s.detach(), u, g


@needs_numba
def test_a_small_fit_runs_torch_a_large_one_compiles(fresh_rule):
    small = _scan(calls=24)           # 24 x 5.0033 = 120.1 < 125
    assert small[0] == "ScanTorchBackward"
    assert _scan()[0] == "ScanCompiledBackward"    # outside a fit (predict, direct calls): compiled
    large = _scan(calls=25)           # 25 x 5.0033 = 125.1: compiling pays
    assert large[0] == "ScanCompiledBackward"
    # the choice depends on the arguments only: having compiled does not change the next small fit
    assert _scan(calls=24)[0] == "ScanTorchBackward"
    # the same values either way (up to float rounding)
    assert torch.equal(small[1], large[1])
    torch.testing.assert_close(small[2], large[2])
    torch.testing.assert_close(small[3], large[3])


@needs_numba
def test_the_rule_gives_way_to_the_cache_and_to_forcing(fresh_rule, monkeypatch):
    import pickle

    import numba

    assert _scan()[0] == "ScanCompiledBackward"                      # outside a fit: as before
    assert _scan(calls=2, backend="numba")[0] == "ScanCompiledBackward"    # a named backend
    monkeypatch.setenv("SKLEARN_SNN_NUMBA", "1")
    assert _scan(calls=2)[0] == "ScanCompiledBackward"               # always compiled
    monkeypatch.delenv("SKLEARN_SNN_NUMBA")
    alif = NeuronSpec("alif", beta=0.8)
    assert _scan(calls=2, spec=alif)[0] == "ScanTorchBackward"
    # an earlier process compiled this family (it is on the warm-up list): the choice stays the same,
    # so results do not depend on what the machine ran before
    flags = {"alif": True, "cuba": False, "inplace": False, "parallel": False, "rec": False, "saveq": True,
             "subtract": True}
    with open(fresh_rule / f"warm_up_numba{numba.__version__}.pkl", "wb") as f:
        pickle.dump([((("fwd", *sorted(flags.items())), "forward", ()), 0)], f)
    assert _scan(calls=2, spec=alif)[0] == "ScanTorchBackward"
    assert _scan(calls=25, spec=alif)[0] == "ScanCompiledBackward"


def test_a_small_fit_on_an_empty_cache_compiles_no_scan(tmp_path):
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import json, sys, numpy as np
        from sklearn_snn import SurrogateSNNClassifier
        from sklearn_snn._core import numba_backend as nbk
        rng = np.random.default_rng(0)
        X, y = rng.random((60, 6)), np.arange(60) % 3
        clf = SurrogateSNNClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X, y)
        compiled_by_fit = sorted(k[0] for k in nbk._MODULES)
        p = clf.predict_proba(X)
        print(json.dumps([compiled_by_fit, p.round(4).tolist()]))
    """)
    res = []
    for numba_env in ("auto", "1"):
        env = dict(os.environ, SKLEARN_SNN_KERNEL_CACHE=str(tmp_path / numba_env / "k"), SKLEARN_SNN_WARMUP="0",
                   NUMBA_CACHE_DIR=str(tmp_path / numba_env / "n"), OMP_NUM_THREADS="1")
        env.pop("SKLEARN_SNN_NUMBA", None)
        if numba_env == "1":
            env["SKLEARN_SNN_NUMBA"] = "1"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        res.append(__import__("json").loads(out.stdout.strip().splitlines()[-1]))
    assert res[0][0] == []                  # 60 samples x 2 epochs: no scan kernel compiled
    if HAVE_NUMBA:
        assert res[1][0] == ["bwd", "fwd"]  # SKLEARN_SNN_NUMBA=1: compiled
        assert abs(__import__("numpy").array(res[0][1]) - res[1][1]).max() < 1e-3


@needs_numba
def test_truncated_bptt_counts_every_window(fresh_rule, monkeypatch):
    """Truncated BPTT runs each window twice a minibatch step; the rule weighs all those calls, so a
    windowed fit compiles where the same fit's work calls for it (and runs torch where it does not)."""
    import sklearn_snn._core.layers as layers
    from sklearn_snn._core.network import SNN

    net = SNN(4, (3,), 2, LIF, readout="membrane_mean")
    x = torch.rand(12, 2, 4)                                # 12 steps in windows of 4: 3 windows
    seen = []

    def spy(*args, scan=kernels.spiking_scan, **kwargs):
        s, u, st = scan(*args, **kwargs)
        if s.grad_fn is not None:
            seen.append(type(s.grad_fn).__name__)
        return s, u, st

    monkeypatch.setattr(layers, "spiking_scan", spy)
    # per call work 4 + tiny, 6 calls a step: 3 steps x 6 x 4.0x = 72 < 125; 6 steps: 144 >= 125
    with kernels.fit_work(3):
        net.tbptt_backward(x, lambda logits: logits.sum(), 4)
    small, seen[:] = list(seen), []
    with kernels.fit_work(6):
        net.tbptt_backward(x, lambda logits: logits.sum(), 4)
    assert small and set(small) == {"ScanTorchBackward"}
    assert seen and set(seen) == {"ScanCompiledBackward"}     # 6 calls alone (without windows) would be 24


@needs_numba
def test_a_small_predict_runs_torch_a_large_one_compiles(fresh_rule, monkeypatch):
    """An inference call is weighed like a fit: its batches times a call's work, against the same
    threshold; the outputs agree to float64 rounding either way."""
    from sklearn_snn import SurrogateSNNClassifier

    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 3), np.arange(40) % 2
    clf = SurrogateSNNClassifier(hidden_layer_sizes=(4,), n_steps=5, max_iter=2, random_state=0).fit(X, y)
    clf.inference_batch_size = 8            # rows per inference batch (a class attribute)
    chosen = []

    def spy(kind, backend, *args, select=kernels.select_backend):
        if kind == "scan":
            chosen.append(backend)
        return select(kind, backend, *args)

    monkeypatch.setattr(kernels, "select_backend", spy)
    small = clf.predict_proba(X[:8])        # 1 batch x work 5.0: 5 < 125: the torch loops
    assert chosen and set(chosen) == {"torch"}
    chosen.clear()
    monkeypatch.setitem(kernels.COMPILE_MIN_WORK, "scan", 25)
    large = clf.predict_proba(X)            # 5 batches x 5.0 = 25: compiled
    assert chosen and set(chosen) == {"auto"}
    np.testing.assert_allclose(large[:8], small, rtol=1e-12)
