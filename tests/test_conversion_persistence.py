"""``ConvertedSNN`` in the safe format (``sklearn_snn.save`` / ``load``): every kind of ANN it
converts round-trips with identical outputs, and files describing networks it does not build are
refused."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from torch import nn

from sklearn_snn import load, save
from sklearn_snn._core import conversion as conv
from sklearn_snn.conversion import ConvertedSNN

TINY = {"n_steps": 8, "calibration_size": 64, "device": "cpu", "random_state": 0}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16.0).astype(np.float64), y[:300]


def _torch_mlp():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        # BatchNorm is folded, Dropout removed, ReLU6 becomes a fixed ClipReLU
        return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                             nn.Linear(16, 16), nn.ReLU6(), nn.Linear(16, 10)).eval()


def _torch_cnn(pool):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), pool(2),
            nn.Conv2d(4, 8, 3, padding="same"), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32, 10),
        ).eval()


def _fitted_mlpclassifier(X, y):
    return MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)


CASES = {
    "relu": lambda X, y: ConvertedSNN(hidden_layer_sizes=(16,), max_iter=3, **TINY),
    "clip": lambda X, y: ConvertedSNN(hidden_layer_sizes=(16,), max_iter=3, activation="clip", **TINY),
    "qcfs": lambda X, y: ConvertedSNN(hidden_layer_sizes=(16, 16), max_iter=3, activation="qcfs",
                                      qcfs_levels=4, **TINY),
    "relu-max-uncalibrated": lambda X, y: ConvertedSNN(hidden_layer_sizes=(16,), max_iter=3, normalization="max",
                                                       calibration=None, **TINY),
    "MLPClassifier": lambda X, y: ConvertedSNN(_fitted_mlpclassifier(X, y), **TINY),
    "unfitted-MLPClassifier": lambda X, y: ConvertedSNN(MLPClassifier(hidden_layer_sizes=(16,), max_iter=3,
                                                                      random_state=0), **TINY),
    "torch-mlp": lambda X, y: ConvertedSNN(_torch_mlp(), **TINY),
    "torch-cnn-avgpool": lambda X, y: ConvertedSNN(_torch_cnn(nn.AvgPool2d), input_shape=(1, 8, 8), **TINY),
    "torch-cnn-maxpool": lambda X, y: ConvertedSNN(_torch_cnn(nn.MaxPool2d), input_shape=(1, 8, 8), **TINY),
}


def _outputs(est, X, y):
    curve = est.score_curve(X, y, steps=[1, 3, 8])
    return {
        "predict": est.predict(X),
        "predict_proba": est.predict_proba(X),
        "predict_proba_16": est.predict_proba(X, n_steps=16),
        "decision_function": est.decision_function(X),
        "predict_ann": est.predict_ann(X),
        "steps": curve.steps,
        "accuracy": curve.accuracy,
        "ann_accuracy": curve.ann_accuracy,
        "firing_rates": est.firing_rates(X),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_gives_identical_outputs(case, digits, tmp_path):
    X, y = digits
    est = CASES[case](X, y).fit(X, y)
    ref = _outputs(est, X, y)
    path = tmp_path / "m.snn"
    save(est, path)

    blob = torch.load(path, weights_only=True)
    assert blob["params"]["ann"] is None            # the user's ANN is not stored ...
    assert "ann_" not in blob["modules"] and "ann_" not in blob["attributes"]
    assert set(blob["modules"]) == {"module_", "canonical_ann_"}

    rng_before = torch.random.get_rng_state()
    back = load(path)
    assert torch.equal(rng_before, torch.random.get_rng_state())  # loading draws no random numbers
    assert type(back) is ConvertedSNN and back.ann is None and not hasattr(back, "ann_")
    params = est.get_params(deep=False)
    params["ann"] = None
    assert back.get_params(deep=False) == params

    for k, v in _outputs(back, X, y).items():
        if isinstance(v, dict):
            assert v == ref[k], k
        else:
            np.testing.assert_array_equal(v, ref[k], err_msg=k)
    # every fitted attribute comes back as it was
    for k in ConvertedSNN._fitted_attributes:
        a, b = getattr(est, k), getattr(back, k)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, k
    # same network: layers, thresholds, scales and calibrated weights
    assert repr(back.canonical_ann_) == repr(est.canonical_ann_)
    assert repr(back.module_) == repr(est.module_)
    assert back.module_.scales == est.module_.scales and back.module_.weighted_for == est.module_.weighted_for
    for name in ("module_", "canonical_ann_"):
        sa, sb = getattr(est, name).state_dict(), getattr(back, name).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[n], sb[n]) for n in sa)
        assert all(t.dtype == torch.float32 for t in sb.values())
    # the loaded model can be saved again
    save(back, tmp_path / "again.snn")
    np.testing.assert_array_equal(load(tmp_path / "again.snn").predict_proba(X), ref["predict_proba"])


def test_layer_specs_round_trip_every_layer_setting():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = nn.Sequential(
            nn.Conv2d(2, 4, (3, 2), stride=(1, 2), padding=(1, 0), dilation=(1, 1), groups=2,
                      padding_mode="reflect"),
            conv.QCFS(levels=3, threshold=2.0),
            nn.AvgPool2d(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=3),
            nn.Conv2d(4, 6, 3, padding="same", dilation=2),
            conv.ClipReLU(1.5),
            nn.MaxPool2d((2, 2), stride=(2, 1), padding=1, dilation=1, ceil_mode=True),
            nn.ReLU(inplace=False),
            nn.Flatten(),
            nn.Linear(6 * 6 * 6, 5),
        )
    specs = conv.layer_specs(net)
    assert [s["type"] for s in specs] == ["Conv2d", "QCFS", "AvgPool2d", "Conv2d", "ClipReLU", "MaxPool2d",
                                          "ReLU", "Flatten", "Linear"]
    rebuilt = conv.sequential_from_specs(specs, input_shape=(2, 9, 8), n_outputs=5)
    assert repr(rebuilt) == repr(net)
    assert all(float(p.abs().sum()) == 0 for p in rebuilt.parameters())   # weights come separately
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(3, 2, 9, 8)
    assert torch.equal(rebuilt(x), net(x))
    # plain values only: the safe format stores them as they are
    for s in specs:
        assert all(v is None or isinstance(v, (bool, int, str, list)) for v in s.values())


@pytest.mark.parametrize("specs, match", [
    ([{"type": "Tanh"}], "unknown layer type 'Tanh'"),
    ([{"type": "Linear", "in_features": 64, "out_features": -4}], "out_features must be an integer"),
    ([{"type": "Linear", "in_features": 64, "out_features": True}], "out_features must be an integer"),
    ([{"type": "Linear", "in_features": 64, "out_features": 2.0}], "out_features must be an integer"),
    ([{"type": "Linear", "in_features": 64}], "missing \\['out_features'\\]"),
    ([{"type": "Linear", "in_features": 64, "out_features": 10, "bias": False}], "unknown \\['bias'\\]"),
    (["Linear"], "must be a table"),
    ([], "non-empty list"),
    ([{"type": "ReLU", "inplace": False}], "no Linear or Conv2d"),
    ([{"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": [3, 3], "stride": [1, 1],
       "padding": "everywhere", "dilation": [1, 1], "groups": 1, "padding_mode": "zeros"}], "padding must be"),
    ([{"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": [3, 3], "stride": [1, 1],
       "padding": [0, 0], "dilation": [1, 1], "groups": 2, "padding_mode": "zeros"}], "groups"),
    ([{"type": "Flatten", "start_dim": 0, "end_dim": -1}], "start_dim must be 1"),
])
def test_sequential_from_specs_refuses_bad_specs(specs, match):
    with pytest.raises(ValueError, match=match):
        conv.sequential_from_specs(specs)


def test_sequential_from_specs_checks_shapes_before_allocating():
    huge = [{"type": "Linear", "in_features": 64, "out_features": 2 ** 30}, {"type": "ReLU", "inplace": False},
            {"type": "Linear", "in_features": 2 ** 30, "out_features": 10}]
    with pytest.raises(ValueError, match="more than the"):
        conv.sequential_from_specs(huge)
    chain = [{"type": "Linear", "in_features": 64, "out_features": 16}, {"type": "Linear", "in_features": 15,
                                                                          "out_features": 10}]
    with pytest.raises(ValueError, match="cannot be applied"):
        conv.sequential_from_specs(chain, input_shape=(64,))
    chain[1]["in_features"] = 16
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        conv.sequential_from_specs(chain, input_shape=(64,), n_outputs=3)


@pytest.fixture(scope="module")
def saved_blob(digits, tmp_path_factory):
    X, y = digits
    path = tmp_path_factory.mktemp("conv") / "m.snn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        save(ConvertedSNN(hidden_layer_sizes=(16,), max_iter=3, **TINY).fit(X, y), path)
    return path


def _crafted(saved_blob, tmp_path, edit):
    blob = torch.load(saved_blob, weights_only=True)
    edit(blob)
    path = tmp_path / "crafted.snn"
    torch.save(blob, path)
    return path


def _layers(blob):
    return blob["attributes"]["canonical_layers_"]


def _set(d, key, value):
    """Set ``key`` of a stored layer spec (a dict as the safe format writes it)."""
    d["__dict__"][key] = value


@pytest.mark.parametrize("edit, match", [
    (lambda b: _set(_layers(b)[1], "type", "Tanh"), "unknown layer type 'Tanh'"),
    (lambda b: _set(_layers(b)[1], "type", "os.system"), "unknown layer type"),
    (lambda b: _set(_layers(b)[0], "out_features", -16), "out_features must be an integer"),
    (lambda b: _set(_layers(b)[0], "in_features", 0), "in_features must be an integer"),
    (lambda b: _set(_layers(b)[0], "out_features", 17), "cannot be applied to samples of shape"),
    (lambda b: _set(_layers(b)[2], "out_features", 9), "expected \\(10,\\)"),
    (lambda b: _layers(b).append({"__dict__": {"type": "Linear", "in_features": 10, "out_features": 10}}),
     "scales must be a list of 4 entries"),
    (lambda b: b["attributes"]["activation_scales_"].__setitem__(1, 0.0), "finite positive"),
    (lambda b: b["attributes"]["activation_scales_"].__setitem__(1, None), "finite positive"),
    (lambda b: b["attributes"]["activation_scales_"].__setitem__(1, float("nan")), "finite positive"),
    (lambda b: b["attributes"].__setitem__("input_shape_", {"__tuple__": [8, 7]}), "does not hold"),
    (lambda b: b["attributes"].__setitem__("canonical_layers_", "Linear"), "'canonical_layers_' should be records"),
    (lambda b: b["modules"].__setitem__("ann_", dict(b["modules"]["canonical_ann_"])),
     r"no torch module\(s\) \['ann_'\]"),
    (lambda b: b["attributes"].__setitem__("ann_", None), "no fitted attribute 'ann_'"),
    (lambda b: b["params"].__setitem__("ann", "sklearn.neural_network.MLPClassifier"),
     r"parameter\(s\) \['ann'\]; they must be None"),
])
def test_crafted_files_are_refused(saved_blob, tmp_path, edit, match):
    path = _crafted(saved_blob, tmp_path, edit)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_untouched_blob_loads(saved_blob, tmp_path, digits):
    """The crafted-file tests start from a file that loads."""
    X, _ = digits
    path = _crafted(saved_blob, tmp_path, lambda b: None)
    assert load(path).predict(X).shape == (X.shape[0],)
