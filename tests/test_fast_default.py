"""Fast by default (issue #20): the fallback warning, the switch to the pure-torch loops, the
kernel cache shared between processes and environments."""

import os
import sys
import warnings

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
