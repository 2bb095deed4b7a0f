"""Tests of ANN-to-SNN conversion: the torch core and the ConvertedSNN estimator."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sklearn_snn._core import conversion as C


def _randomise_bn(bn, gen):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1, generator=gen)
        bn.running_var.uniform_(0.5, 2.0, generator=gen)
        bn.weight.uniform_(0.5, 1.5, generator=gen)
        bn.bias.uniform_(-0.5, 0.5, generator=gen)


def _small_cnn(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 2 * 2, 12), nn.BatchNorm1d(12), nn.ReLU(),
        nn.Linear(12, 3),
    )
    gen = torch.Generator().manual_seed(seed)
    for m in net:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _randomise_bn(m, gen)
    return net.eval()


# ----------------------------------------------------------------------------- core


def test_batchnorm_folding_is_exact():
    net = _small_cnn()
    ann = C.parse_ann(net)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) for m in ann)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        np.testing.assert_allclose(ann(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-5)
    # the user's network is left untouched (still has its BatchNorm, its own weights)
    assert isinstance(net[1], nn.BatchNorm2d) and net[4].bias is None


def test_parse_moves_maxpool_after_relu():
    ann = C.parse_ann(_small_cnn())
    kinds = [type(m).__name__ for m in ann]
    assert kinds[:3] == ["Conv2d", "ReLU", "MaxPool2d"]


def test_rates_approach_ann_activations_layer_by_layer():
    net = _small_cnn(seed=3)
    ann = C.parse_ann(net)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    acts = C.layer_outputs(ann, x)
    snn = C.convert(ann, C.activation_scales(ann, x, "max"))
    assert snn.spiking_layers == [1, 4, 8]
    errors = []
    for t in (8, 32, 128, 512):
        _, means = snn(x, t, return_layers=True)
        errors.append([float((means[i] - acts[i]).abs().mean() / acts[i].abs().mean())
                       for i in range(len(ann))])
    errors = np.array(errors)  # (n_T, n_layers): relative mean error of every layer
    assert np.all(errors[0, 1:] > 0)
    # the error of every layer after the first shrinks as T grows, and is small at T = 512
    assert np.all(np.diff(errors[:, 1:], axis=0) < 0), errors
    assert np.all(errors[-1] < 0.02), errors[-1]
    assert errors[0, -1] > 4 * errors[-1, -1]


def test_qcfs_matches_if_neurons_exactly_at_T_equal_levels():
    levels, lam = 4, 2.0
    q = C.QCFS(levels, lam)
    # inputs away from the rounding ties of the floor
    x = (torch.arange(-8, 40) / 16.0 * lam + 0.013).reshape(1, 1, -1)
    spikes = C.IFNeurons(threshold=lam, v_init=0.5)(x, levels)
    np.testing.assert_allclose(spikes.sum(0).flatten() * lam / levels, q(x).detach().flatten(), atol=1e-6)
    assert set(np.unique(spikes.numpy())) <= {0.0, 1.0}


def test_if_neuron_trace_by_hand():
    # threshold 1, v(0) = 0.5, input 0.4: v = 0.9, 1.3 -> spike (0.3), 0.7, 1.1 -> spike (0.1), 0.5
    s = C.IFNeurons()(torch.full((1, 1, 1), 0.4), 5).flatten().tolist()
    assert s == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_spiking_maxpool_count_is_max_of_counts():
    gen = torch.Generator().manual_seed(0)
    s = (torch.rand(50, 3, 2, 4, 4, generator=gen) < torch.rand(1, 3, 2, 4, 4, generator=gen)).float()
    out = C.SpikingMaxPool2d(2)(s)
    assert set(np.unique(out.numpy())) <= {0.0, 1.0}
    expected = F.max_pool2d(torch.cumsum(s, 0).reshape(-1, 4, 4), 2).reshape(50, 3, 2, 2, 2)
    torch.testing.assert_close(torch.cumsum(out, 0), expected)


def test_calibration_removes_mean_error():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    ann = C.parse_ann(net)
    x = torch.rand(256, 10, generator=torch.Generator().manual_seed(5))
    T = 6
    acts = C.layer_outputs(ann, x)
    snn = C.convert(ann, C.activation_scales(ann, x, "percentile", 99.0))

    def mean_errors(s):
        _, means = s(x, T, return_layers=True)
        return [float((acts[i] - means[i]).mean(0).abs().mean()) for i in (1, 3, 4)]

    before = mean_errors(snn)
    errs, rates = C.calibrate_bias(snn, ann, x, T)
    after = mean_errors(snn)
    assert len(errs) == 3
    assert rates == pytest.approx(snn.firing_rates(x, T))
    # the first layer sees the exact input and has little mean error to remove; deeper layers
    # and the readout carry the accumulated error, which calibration must cut
    assert after[0] <= before[0]
    assert after[1] < 0.5 * before[1] and after[2] < 0.1 * before[2], (before, after)


def test_mlp_from_weights_binary_logistic():
    gen = np.random.default_rng(0)
    coefs = [gen.normal(size=(5, 7)), gen.normal(size=(7, 1))]
    inter = [gen.normal(size=7), gen.normal(size=1)]
    net = C.mlp_from_weights(coefs, inter, binary_logistic=True, dtype=torch.float64)
    x = gen.normal(size=(9, 5))
    z = np.maximum(x @ coefs[0] + inter[0], 0) @ coefs[1] + inter[1]
    proba = torch.softmax(net(torch.tensor(x)), 1).detach().numpy()
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z[:, 0])), rtol=1e-10)


class _ChainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.dropout(x, 0.1, self.training)
        return self.fc(x.view(x.size(0), -1))


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)


def test_traced_module_is_converted():
    net = _ChainNet().eval()
    ann = C.parse_ann(net)
    assert [type(m).__name__ for m in ann] == ["Conv2d", "ReLU", "Flatten", "Linear"]
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(ann(x), net(x))


@pytest.mark.parametrize(
    "net, match",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)), r"layer '1' \(Sigmoid\)"),
        (nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.LSTM(4, 4))), r"'1\.1' \(LSTM\)"),
        (nn.Sequential(nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2)), r"'1' \(BatchNorm1d\).*preceding"),
        (nn.Sequential(nn.Linear(4, 4), nn.Softmax(1), nn.Linear(4, 2)), r"softmax is only allowed"),
        (_Residual(), r"operation 'add'.*residual"),
        (nn.Sequential(nn.ReLU(), nn.Flatten()), r"no Linear or Conv2d"),
    ],
)
def test_unsupported_layer_gives_clear_error(net, match):
    with pytest.raises(C.ConversionError, match=match):
        C.parse_ann(net)


# ----------------------------------------------------------------------------- estimator

import pickle  # noqa: E402
import warnings  # noqa: E402

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_moons  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from sklearn_snn.conversion import ConvertedSNN  # noqa: E402

FAST = dict(hidden_layer_sizes=(16,), max_iter=50, n_steps=16, calibration_size=64, device="cpu")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


@parametrize_with_checks([ConvertedSNN(random_state=0, **FAST)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_mlpclassifier_converted_on_toy_task():
    X, y = make_moons(400, noise=0.15, random_state=0)
    y = np.where(y == 1, "b", "a")  # string labels, binary (logistic output unit)
    mlp = MLPClassifier((32, 32), max_iter=800, random_state=0).fit(X, y)
    w0 = [c.copy() for c in mlp.coefs_]
    snn = ConvertedSNN(mlp, n_steps=64, device="cpu", random_state=0).fit(X, y)
    assert snn.ann_ is mlp and all(np.array_equal(a, b) for a, b in zip(w0, mlp.coefs_))
    np.testing.assert_array_equal(snn.predict_ann(X), mlp.predict(X))
    ann_acc = mlp.score(X, y)
    assert ann_acc > 0.95
    assert snn.score(X, y) >= ann_acc - 0.01
    # probabilities: softmax of the time-averaged readout, close to the MLP's at many steps
    np.testing.assert_allclose(snn.predict_proba(X, n_steps=256), mlp.predict_proba(X), atol=0.1)
    assert set(snn.predict(X)) <= {"a", "b"}


def test_unfitted_and_frozen_mlp(digits):
    X, y = digits
    X, y = X[:600], y[:600]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = ConvertedSNN(MLPClassifier((32,), max_iter=60, random_state=0), n_steps=32, device="cpu").fit(X, y)
    assert est.n_iter_ == 60 and hasattr(est.ann_, "coefs_") and not hasattr(est.ann, "coefs_")
    frozen = ConvertedSNN(FrozenEstimator(est.ann_), n_steps=32, device="cpu")
    cl = clone(frozen).fit(X, y)  # clone keeps the frozen MLP fitted: fit only calibrates
    assert cl.n_iter_ == 0
    np.testing.assert_array_equal(cl.predict_ann(X), est.ann_.predict(X))


def test_mlp_with_other_activation_is_refused(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((8,), activation="tanh", max_iter=5).fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="activation='tanh'"):
        ConvertedSNN(mlp).fit(X[:100], y[:100])


def _train_cnn(X, y, epochs=12):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = torch.tensor(X).reshape(-1, 1, 8, 8), torch.tensor(y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(yt), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def test_torch_cnn_converted(digits):
    X, y = digits
    Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
    cnn = _train_cnn(Xtr, ytr)
    est = ConvertedSNN(cnn, input_shape=(1, 8, 8), n_steps=32, device="cpu", random_state=0).fit(Xtr, ytr)
    assert [type(m).__name__ for m in est.snn_.layers] == [
        "Stepwise", "IFNeurons", "SpikingMaxPool2d", "Stepwise", "IFNeurons", "Stepwise", "Stepwise", "Stepwise"]
    curve = est.score_curve(Xte, yte, steps=[2, 8, 32, 128])
    with torch.no_grad():
        ann_acc = float((cnn(torch.tensor(Xte).reshape(-1, 1, 8, 8)).argmax(1).numpy() == yte).mean())
    assert curve.ann_accuracy == pytest.approx(ann_acc)
    assert ann_acc > 0.9
    assert curve.accuracy[2] >= ann_acc - 0.02 and curve.accuracy[3] >= ann_acc - 0.01, curve
    assert curve.accuracy[0] < curve.accuracy[3]
    assert est.score(Xte, yte) == pytest.approx(curve.accuracy[2])
    rates = est.firing_rates(Xte)
    assert list(rates) == ["1:ReLU", "4:ReLU"] and list(est.firing_rates_) == list(rates)
    assert all(0 < r < 1 for r in rates.values())
    with pytest.raises(ValueError, match="input_shape"):
        ConvertedSNN(cnn, device="cpu").fit(Xtr, ytr)
    # pickling keeps the converted network (CPU state) and its predictions
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.predict_proba(Xte[:50]), est.predict_proba(Xte[:50]))


def test_qcfs_few_steps(digits):
    X, y = digits
    Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = ConvertedSNN(hidden_layer_sizes=(64, 64), activation="qcfs", qcfs_levels=4, n_steps=4,
                           max_iter=40, device="cpu", random_state=0).fit(Xtr, ytr)
    assert isinstance(est.canonical_ann_[1], C.QCFS)
    assert est.activation_scales_[1] == pytest.approx(est.canonical_ann_[1].clip_value())
    curve = est.score_curve(Xte, yte, steps=[4])
    assert curve.ann_accuracy > 0.9
    assert curve.accuracy[0] >= curve.ann_accuracy - 0.03, curve


def test_unsupported_layer_and_output_mismatch(digits):
    X, y = digits
    with pytest.raises(C.ConversionError, match=r"'1' \(Tanh\)"):
        ConvertedSNN(nn.Sequential(nn.Linear(64, 10), nn.Tanh(), nn.Linear(10, 10))).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="3 outputs but y has 10 classes"):
        ConvertedSNN(nn.Sequential(nn.Linear(64, 3)), device="cpu").fit(X[:200], y[:200])


def test_predict_n_steps_and_determinism(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = ConvertedSNN(random_state=0, **FAST).fit(X[:500], y[:500])
    p1 = est.predict_proba(X[500:700], n_steps=5)
    np.testing.assert_array_equal(p1, est.predict_proba(X[500:700], n_steps=5))
    assert not np.allclose(p1, est.predict_proba(X[500:700], n_steps=40))
    with pytest.raises(ValueError, match="n_steps"):
        est.predict(X[:3], n_steps=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 7, 13), (20, 7, 13), (1, 4, 3, 5, 5), (16, 4, 3, 5, 5)])
def test_if_layer_runs_on_the_one_scan_equal_to_the_step_reference(dtype, shape):
    """IFNeurons runs spiking_scan (the package's one time loop); spikes and membranes equal the
    per-step neuron_step reference bit for bit, for constant and time-varying currents, dense and
    convolutional layouts."""
    from sklearn_snn._core.neurons import neuron_step

    layer = C.IFNeurons(threshold=0.7, v_init=0.5)
    current = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    n_steps = 16
    state = (torch.full_like(current[0], 0.5 * 0.7), None, None)
    spikes, mems = [], []
    for t in range(n_steps):
        s, u, state = neuron_step(layer.spec, current[0 if shape[0] == 1 else t], state,
                                  lambda z: (z >= 0).to(dtype))
        spikes.append(s)
        mems.append(u)
    s_scan, u_scan = layer.trace(current, n_steps)
    assert torch.equal(s_scan, torch.stack(spikes)) and torch.equal(u_scan, torch.stack(mems))
    assert s_scan.sum() > 0 and torch.equal(layer(current, n_steps), s_scan)
