"""Persistence of every estimator (``sklearn_snn.utils.all_estimators``): pickle and joblib round
trips, the safe format (``sklearn_snn.save`` / ``load``, ``torch.load(weights_only=True)``), its
version stamp, CUDA-saved files on a CPU machine (simulated, and for real where a GPU exists), and
checkpoints of long runs resumed with ``warm_start`` / ``partial_fit``."""
from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import sklearn_snn
from sklearn_snn import load, save
from sklearn_snn.base import GradientSNNMixin
from sklearn_snn.callbacks import Checkpoint
from sklearn_snn.persistence import FORMAT
from sklearn_snn.utils import all_estimators, fast_instance

sys.path.insert(0, os.path.dirname(__file__))
from test_reliability import data2d, fit, fitted, outputs, target  # noqa: E402

ESTIMATORS = all_estimators()
IDS = [name for name, _ in ESTIMATORS]
SAFE = [(n, c) for n, c in ESTIMATORS if hasattr(c, "_rebuild_module")]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ------------------------------------------------------------------------------------------------
# pickle / joblib
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_pickle_and_joblib_round_trip(name, cls, tmp_path):
    X, _ = data2d()
    est = fitted(cls)
    ref = outputs(est, X)
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(outputs(again, X), ref)
    joblib.dump(est, tmp_path / "m.joblib")
    assert np.array_equal(outputs(joblib.load(tmp_path / "m.joblib"), X), ref)
    # the pickled state holds torch modules on the CPU and no generator / optimizer state
    state = est.__getstate__()
    for v in state.values():
        if isinstance(v, torch.nn.Module):
            assert all(t.device.type == "cpu" for t in v.state_dict().values())
    assert not any(isinstance(v, torch.Generator) for v in state.values())


# ------------------------------------------------------------------------------------------------
# the safe format
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_safe_save_load_round_trip(name, cls, tmp_path):
    X, _ = data2d()
    est = fitted(cls)
    path = tmp_path / "m.snn"
    if not hasattr(cls, "_rebuild_module"):
        with pytest.raises(TypeError, match="safe format.*pickle"):
            save(est, path)
        pytest.skip(f"{name} does not support the safe format (save() says so with a TypeError)")
    save(est, path)
    blob = torch.load(path, weights_only=True)  # plain containers and tensors only
    assert blob["format"] == FORMAT and blob["version"] == sklearn_snn.__version__
    loaded = load(path)
    assert type(loaded) is cls and loaded.get_params() == est.get_params()
    assert np.array_equal(outputs(loaded, X), outputs(est, X))
    if hasattr(est, "save"):  # the method writes the same format
        est.save(tmp_path / "m2.snn")
        assert np.array_equal(outputs(load(tmp_path / "m2.snn"), X), outputs(est, X))


_EXECUTED = []


def _side_effect():
    _EXECUTED.append(True)
    return {}


class _Evil:
    def __reduce__(self):
        return (_side_effect, ())


def test_safe_load_executes_no_code(tmp_path):
    path = tmp_path / "evil.snn"
    torch.save({"format": FORMAT, "version": sklearn_snn.__version__, "class": "sklearn_snn.surrogate."
                "SurrogateSNNClassifier", "params": {"alpha": _Evil()}, "attributes": {}, "modules": {}}, path)
    with pytest.raises(pickle.UnpicklingError):
        load(path)
    assert not _EXECUTED


def test_safe_load_refuses_foreign_files_and_classes(tmp_path):
    path = tmp_path / "x.snn"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an sklearn-snn model file"):
        load(path)
    torch.save({"format": FORMAT, "version": sklearn_snn.__version__, "class": "collections.OrderedDict",
                "params": {}, "attributes": {}, "modules": {}}, path)
    with pytest.raises(ValueError, match="Refusing to load class .collections.OrderedDict.*only the estimators of sklearn_snn"):
        load(path)


def _restamp(src, dst, version):
    blob = torch.load(src, weights_only=True)
    blob["version"] = version
    torch.save(blob, dst)


@pytest.mark.parametrize("version, ok", [("1.0.0", False), ("0.99.0", False), ("0.0.3", True),
                                         (sklearn_snn.__version__ + ".dev1", True), ("banana", False)])
def test_version_stamp(version, ok, tmp_path):
    from sklearn_snn import SurrogateSNNClassifier

    X, _ = data2d()
    est = fitted(SurrogateSNNClassifier)
    save(est, tmp_path / "m.snn")
    _restamp(tmp_path / "m.snn", tmp_path / "v.snn", version)
    if ok:
        assert np.array_equal(outputs(load(tmp_path / "v.snn"), X), outputs(est, X))
        return
    with pytest.raises(ValueError) as info:
        load(tmp_path / "v.snn")
    msg = str(info.value)
    assert version in msg and sklearn_snn.__version__ in msg, msg


# ------------------------------------------------------------------------------------------------
# CUDA-saved files on a CPU machine
# ------------------------------------------------------------------------------------------------
class _TagAsCuda:
    """While active, torch.save records every storage as living on 'cuda:0' (what a file written
    from a GPU holds); loading it then needs a map_location on a CPU-only machine."""

    def __enter__(self):
        import torch.serialization as ser

        self.entry = (1, lambda storage: "cuda:0", lambda storage, location: None)
        ser._package_registry.append(self.entry)
        ser._package_registry.sort(key=lambda e: e[0])
        return self

    def __exit__(self, *exc):
        import torch.serialization as ser

        ser._package_registry.remove(self.entry)


def test_cuda_saved_file_loads_on_cpu_simulated(tmp_path):
    from sklearn_snn import SurrogateSNNClassifier

    X, _ = data2d()
    est = fitted(SurrogateSNNClassifier)
    ref = outputs(est, X)
    path = tmp_path / "gpu.snn"
    with _TagAsCuda():
        save(est, path)
    with open(path, "rb") as fh:
        assert b"cuda:0" in fh.read()  # the file really says the tensors were on the GPU
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="(?i)cuda"):
            torch.load(path, weights_only=True)  # what a loader without map_location would hit
    loaded = load(path)  # maps to the CPU
    assert all(t.device.type == "cpu" for t in loaded.module_.state_dict().values())
    assert np.array_equal(outputs(loaded, X), ref)


def test_cuda_device_parameter_on_a_cpu_machine(tmp_path):
    """A model fitted with device='cuda' keeps that parameter: on a CPU-only machine predict says
    what to do, and set_params(device='cpu') gives the same predictions."""
    from sklearn_snn import SurrogateSNNClassifier

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA to check the message")
    X, _ = data2d()
    est = fitted(SurrogateSNNClassifier)
    path = tmp_path / "gpu.snn"
    with _TagAsCuda():
        save(est, path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    blob["params"]["device"] = "cuda"
    torch.save(blob, path)
    loaded = load(path)
    with pytest.raises(ValueError, match="CUDA is not available.*'cpu'"):
        loaded.predict(X)
    assert np.array_equal(outputs(loaded.set_params(device="cpu"), X), outputs(est, X))


_CPU_ONLY_CHECK = """
import pickle, sys, warnings
import numpy as np, torch
warnings.simplefilter("ignore")
assert not torch.cuda.is_available()
import sklearn_snn
X = np.load(sys.argv[1])
a = sklearn_snn.load(sys.argv[2]).set_params(device="cpu")
with open(sys.argv[3], "rb") as fh:
    b = pickle.load(fh).set_params(device="cpu")
np.save(sys.argv[4], np.stack([a.predict_proba(X), b.predict_proba(X)]))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: trains on the GPU, then loads "
                    "the model in a process that sees no GPU (CUDA_VISIBLE_DEVICES='')")
def test_fitted_on_cuda_loads_on_cpu_only_process(tmp_path):
    from sklearn_snn import SurrogateSNNClassifier

    X, y = data2d()
    est = fast_instance(SurrogateSNNClassifier, device="cuda").fit(X, y)
    assert next(est.module_.parameters()).device.type == "cuda"
    gpu = est.predict_proba(X)
    save(est, tmp_path / "m.snn")
    with open(tmp_path / "m.pkl", "wb") as fh:
        pickle.dump(est, fh)
    np.save(tmp_path / "X.npy", X)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _CPU_ONLY_CHECK, str(tmp_path / "X.npy"), str(tmp_path / "m.snn"),
                          str(tmp_path / "m.pkl"), str(tmp_path / "out.npy")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    cpu = np.load(tmp_path / "out.npy")
    # CPU inference runs in float64, CUDA inference in float32: the same model up to rounding
    np.testing.assert_allclose(cpu[0], gpu, atol=1e-4)
    np.testing.assert_array_equal(cpu[0], cpu[1])


# ------------------------------------------------------------------------------------------------
# checkpoints of long runs
# ------------------------------------------------------------------------------------------------
def _checkpointable(cls):
    return "epoch_callback" in inspect.signature(cls.fit).parameters and hasattr(cls, "_rebuild_module")


@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_checkpoint_writes_best_and_run_resumes(name, cls, tmp_path):
    if not _checkpointable(cls) or not issubclass(cls, GradientSNNMixin):
        pytest.skip(f"{name}: not trained by a loss (see test_checkpoint_of_every_iterative_estimator)")
    X, y = data2d()
    y = target(cls, y)
    path = tmp_path / "best.snn"
    cb = Checkpoint(path, every=2)
    per_epoch = []
    est = fast_instance(cls, max_iter=5, random_state=0)
    if "learning_rate_init" in est.get_params():
        est.set_params(learning_rate_init=1e-2)
    fit(est, X, y, epoch_callback=[cb, lambda e, epoch, info: per_epoch.append(outputs(e, X)) and False])
    assert not os.path.exists(str(path) + ".tmp")
    best_epoch = int(np.argmin(est.loss_curve_)) + 1
    assert cb.saved_epochs_ and cb.saved_epochs_[-1] == best_epoch, cb.saved_epochs_
    assert cb.best_ == min(est.loss_curve_)
    ckpt = load(path)
    assert np.array_equal(outputs(ckpt, X), per_epoch[best_epoch - 1]), "the checkpoint is not the best epoch"
    # the whole fitted state of that epoch, history included
    assert ckpt.n_iter_ == best_epoch and ckpt.loss_curve_ == est.loss_curve_[:best_epoch]
    assert ckpt.t_ == est.t_ * best_epoch // est.n_iter_ and ckpt.best_loss_ == min(est.loss_curve_)
    # resume with warm_start: continues from the checkpoint, not from scratch
    if "warm_start" in ckpt.get_params():
        resumed = fit(ckpt.set_params(warm_start=True, max_iter=2), X, y)
        assert resumed.loss_curve_[0] < est.loss_curve_[0]
    # ... or with partial_fit
    if hasattr(cls, "partial_fit"):
        again = load(path)
        before = {k: v.clone() for k, v in again.module_.state_dict().items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again.partial_fit(X, y)
        after = again.module_.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
        assert np.isfinite(outputs(again, X)).all()


@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_checkpoint_of_every_iterative_estimator(name, cls, tmp_path):
    """Every estimator whose fit iterates takes epoch_callback, and a Checkpoint that never reaches
    its ``every`` still writes when training ends, with the history of the epoch it holds."""
    if "epoch_callback" not in inspect.signature(cls.fit).parameters:
        pytest.skip(f"{name}.fit does not iterate")
    X, y = data2d()
    path = tmp_path / "ckpt.snn"
    cb = Checkpoint(path, every=1000)
    est = fast_instance(cls, max_iter=3, random_state=0)
    fit(est, X, target(cls, y), epoch_callback=cb)
    if name == "ConvertedSNN":   # no network exists before the conversion that follows the ANN's training
        assert not os.path.exists(path) and cb.saved_epochs_ == []
        return
    assert os.path.exists(path) and len(cb.saved_epochs_) == 1
    back = load(path)
    assert back.n_iter_ == cb.saved_epochs_[0]


def test_checkpoint_writes_when_training_stops_early_or_is_interrupted(tmp_path):
    from sklearn_snn import SurrogateSNNClassifier

    X, y = data2d()
    # early stopping long before `every`
    path = tmp_path / "early.snn"
    cb = Checkpoint(path, every=50)
    est = fast_instance(SurrogateSNNClassifier, max_iter=40, early_stopping=True, n_iter_no_change=1,
                        validation_fraction=0.3)
    fit(est, X, y, epoch_callback=cb)
    assert est.n_iter_ < 40 and os.path.exists(path)
    back = load(path)
    best = int(np.argmax(est.validation_scores_)) + 1
    assert back.n_iter_ == best and back.validation_scores_ == est.validation_scores_[:best]
    # Ctrl-C (here from another callback) at epoch 3: the best state so far is on disk, and the
    # interrupt reaches the caller
    path = tmp_path / "interrupted.snn"
    cb = Checkpoint(path, every=50)

    def stop_at_3(e, epoch, info):
        if epoch == 3:
            raise KeyboardInterrupt
        return False

    est = fast_instance(SurrogateSNNClassifier, max_iter=10)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y, epoch_callback=[cb, stop_at_3])
    back = load(path)
    assert back.n_iter_ <= 3 and back.n_iter_ == cb.saved_epochs_[-1]
    assert back.loss_curve_ == est.loss_curve_[:back.n_iter_]
