"""Tests for meta learning: learned neuron parameters, hypergradient descent, architecture search,
learning to learn (sklearn_snn.meta, sklearn_snn._core.hypergradient)."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn._core.hypergradient import HypergradientOptimizer
from sklearn_snn._core.kernels import leaky_integrate, spiking_scan
from sklearn_snn._core.layers import LeakyReadout, SpikingLinear
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.surrogate import get_surrogate
from sklearn_snn.meta import (
    FewShotTaskSampler,
    MetaSNNClassifier,
    RandmanTaskSampler,
    SNNArchitectureSearch,
    mean_firing_rate,
    synaptic_operations,
)

DT = torch.float64


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


# --------------------------------------------------------------------------------------------
# 1. learned neuron parameters
# --------------------------------------------------------------------------------------------

def _frozen_spike_loss(layer, cur, R, base=None):
    """The layer's dynamics with every spike replaced by its first-order expansion around the
    actual forward pass: ``s_t = S*_t + SG*_t ((u_t - theta_t) - d*_t)``.

    At the base point this is exactly the forward pass; it is smooth in the neuron parameters
    and its exact derivative there is, by definition, the surrogate gradient (SG* constant). So
    central finite differences of it check the fused scan's hand-written backward for beta,
    alpha and threshold, including the reset, adaptation and recurrent paths.
    Written independently of ``neurons.neuron_step``.
    """
    spec = layer.spec
    beta, alpha, thr = layer.neuron_params()
    beta = spec.beta if beta is None else beta
    alpha = spec.alpha if alpha is None else alpha
    thr = spec.threshold if thr is None else thr
    deriv = get_surrogate(layer.surrogate)
    T, B, H = cur.shape
    z = cur.new_zeros((B, H))
    v, syn, a, s_prev = z, z, z, z
    record = base is None
    if record:
        base = {"S": [], "SG": [], "D": []}
    loss = cur.new_zeros(())
    for t in range(T):
        xt = cur[t]
        if layer.w_rec is not None:
            xt = xt + s_prev @ layer.w_rec
        if spec.uses_synapse:
            syn = alpha * syn + xt
            xt = syn
        u = beta * v + xt
        th = thr + spec.adapt * a if spec.adaptive else thr + 0.0 * u
        d = u - th
        if record:
            base["D"].append(d.detach().clone())
            base["S"].append((d >= 0).to(d.dtype).detach())
            base["SG"].append(deriv(d.detach(), layer.slope))
        s = base["S"][t] + base["SG"][t] * (d - base["D"][t])
        s_reset = base["S"][t] if spec.detach_reset else s
        v = u - thr * s_reset if spec.reset == "subtract" else u * (1.0 - s_reset)
        if spec.adaptive:
            a = spec.rho * a + s
        s_prev = s
        loss = loss + (s * R[t]).sum()
    return loss, base


@pytest.mark.parametrize("model,reset,detach,rec", [
    ("lif", "subtract", True, False), ("lif", "zero", False, True), ("cuba", "subtract", True, False),
    ("cuba", "subtract", False, True), ("alif", "subtract", True, False), ("alif", "zero", True, True),
])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_learned_neuron_parameter_gradients_match_finite_differences(model, reset, detach, rec, backend):
    g = torch.Generator().manual_seed(3)
    spec = NeuronSpec(model, beta=0.8, alpha=0.7, threshold=0.9, reset=reset, adapt=0.3, rho=0.9,
                      detach_reset=detach)
    layer = SpikingLinear(4, 5, spec, "fast_sigmoid", 4.0, recurrent=rec, learn_tau=True, learn_threshold=True,
                          generator=g, dtype=DT, gain=2.5)
    with torch.no_grad():  # per-neuron values away from the initial constants
        layer.beta_raw.add_(torch.linspace(-0.5, 0.5, 5, dtype=DT))
        layer.thr_raw.add_(torch.linspace(0.3, -0.3, 5, dtype=DT))
        if spec.uses_synapse:
            layer.alpha_raw.add_(torch.linspace(-0.4, 0.4, 5, dtype=DT))
        layer.bias.add_(0.5)
    x = torch.rand(14, 3, 4, generator=g, dtype=DT) * 1.5
    R = torch.randn(14, 3, 5, generator=g, dtype=DT)
    cur = layer.project(x).detach()
    beta, alpha, thr = layer.neuron_params()
    S, _, _ = spiking_scan(cur, spec, layer.surrogate, layer.slope, w_rec=layer.w_rec, beta=beta, alpha=alpha,
                           threshold=thr, backend=backend)
    assert 0.03 < float(S.detach().mean()) < 0.97  # the spikes (and so every gradient path) are exercised
    (S * R).sum().backward()
    names = ["beta_raw", "thr_raw"] + (["alpha_raw"] if spec.uses_synapse else [])
    with torch.no_grad():
        loss0, base = _frozen_spike_loss(layer, cur, R)
        assert torch.equal(torch.stack(base["S"]), S)  # same forward pass
        assert float(loss0) == pytest.approx(float((S * R).sum()), rel=1e-12)
        h = 1e-6
        for name in names:
            p = getattr(layer, name)
            fd = torch.empty_like(p)
            for i in range(p.numel()):
                p[i] += h
                lp, _ = _frozen_spike_loss(layer, cur, R, base)
                p[i] -= 2 * h
                lm, _ = _frozen_spike_loss(layer, cur, R, base)
                p[i] += h
                fd[i] = (lp - lm) / (2 * h)
            assert fd.abs().max() > 1e-3, name  # a non-trivial gradient
            np.testing.assert_allclose(p.grad.numpy(), fd.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
    # the layer's own forward is this computation
    S2, _, _ = layer(x)
    assert torch.equal(S2, S)


def test_learned_readout_time_constant_gradcheck():
    # the leaky readout is smooth: a plain finite-difference check through its learned decay
    g = torch.Generator().manual_seed(0)
    ro = LeakyReadout(3, 2, beta=0.85, learn_tau=True, generator=g, dtype=DT)
    x = torch.rand(9, 2, 3, generator=g, dtype=DT)

    def f(raw):
        return leaky_integrate(torch.nn.functional.linear(x, ro.weight, ro.bias), torch.sigmoid(raw))

    assert torch.autograd.gradcheck(f, (ro.beta_raw.detach().clone().requires_grad_(),))


def test_learned_parameters_stay_in_range_and_change(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    init = SurrogateSNNClassifier(hidden_layer_sizes=(24,), n_steps=8, neuron="cuba", max_iter=1,
                                  learning_rate_init=1e-12, learn_tau=True, learn_threshold=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        p0 = init.fit(X, y).learned_neuron_parameters()
        # a large learning rate pushes the raw parameters hard: the parametrisation keeps them valid
        clf = clone(init).set_params(max_iter=15, learning_rate_init=0.05).fit(X, y)
    p1 = clf.learned_neuron_parameters()
    assert clf.score(X, y) > 0.6
    for d0, d1 in zip(p0[:-1], p1[:-1]):
        assert set(d1) == {"beta", "tau_mem", "alpha", "tau_syn", "threshold"}
        assert np.all((d1["beta"] > 0) & (d1["beta"] < 1)) and np.all((d1["alpha"] > 0) & (d1["alpha"] < 1))
        assert np.all(d1["threshold"] > 0) and np.all(np.isfinite(d1["tau_mem"]))
        for k in ("beta", "alpha", "threshold"):
            assert np.abs(d1[k] - d0[k]).max() > 1e-3, k  # they were trained
            assert np.std(d1[k]) > 0  # per neuron, not one shared value
    assert np.all((p1[-1]["beta"] > 0) & (p1[-1]["beta"] < 1))  # the readout's learned decay


# --------------------------------------------------------------------------------------------
# 2. hypergradient descent
# --------------------------------------------------------------------------------------------

def _quadratic_run(base, multiplicative, lr0, n=40, h=None):
    A = torch.diag(torch.tensor([1.0, 4.0], dtype=DT))
    x = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=DT))
    if h is None:
        h = 0.02 if multiplicative else 1e-4 if base == "adam" else 1e-3
    opt = HypergradientOptimizer([x], lr=lr0, base=base, multiplicative=multiplicative, hypergrad_lr=h)
    losses = []
    for _ in range(n):
        opt.zero_grad()
        loss = 0.5 * x @ A @ x
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return opt, losses


@pytest.mark.parametrize("base,large", [("sgd", 0.45), ("adam", 3.0)])
@pytest.mark.parametrize("multiplicative", [True, False])
def test_hypergradient_adapts_learning_rate_on_quadratic(base, large, multiplicative):
    # too small: successive directions agree -> the rate grows (and beats the fixed rate)
    opt, losses = _quadratic_run(base, multiplicative, 1e-3)
    assert opt.lr > 1.5e-3
    assert opt.lr == opt.param_groups[0]["lr"] and len(opt.lr_history) == 40
    assert np.all(np.diff(opt.lr_history) >= 0)
    _, fixed = _quadratic_run(base, multiplicative, 1e-3, h=0.0)  # hypergrad_lr=0: a fixed rate
    assert losses[-1] < fixed[-1]
    # too large: the largest-curvature coordinate oscillates, directions flip -> the rate shrinks
    opt, _ = _quadratic_run(base, multiplicative, large)
    assert opt.lr < large
    assert opt.lr_history[-1] < opt.lr_history[0]


def test_hypergradient_sgd_hand_computed_first_steps():
    # f = x^2/2, x0 = 1, additive rule, h = 0.1: g0 = 1 (no update of lr), x1 = 1 - 0.5 = 0.5;
    # g1 = 0.5, lr1 = 0.5 + 0.1 * 0.5 * 1 = 0.55, x2 = 0.5 - 0.55 * 0.5 = 0.225
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=DT))
    opt = HypergradientOptimizer([x], lr=0.5, base="sgd", hypergrad_lr=0.1, multiplicative=False)
    for _ in range(2):
        opt.zero_grad()
        (0.5 * x ** 2).sum().backward()
        opt.step()
    assert opt.lr_history == pytest.approx([0.5, 0.55])
    assert float(x) == pytest.approx(0.225)


def test_hypergradient_solver_in_estimator(digits):
    # through the shared training loop (solver='adam-hd'): a too-small rate grows and the
    # training loss ends below plain Adam at the same initial rate
    X, y = digits
    kw = {"hidden_layer_sizes": (16,), "n_steps": 4, "max_iter": 8, "batch_size": 30, "learning_rate_init": 1e-4,
              "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        hd = SurrogateSNNClassifier(solver="adam-hd", **kw).fit(X[:300], y[:300])
        plain = SurrogateSNNClassifier(solver="adam", **kw).fit(X[:300], y[:300])
    opt = hd._train_state.optimizer
    assert isinstance(opt, HypergradientOptimizer)
    assert opt.lr > 1.5e-4 and len(opt.lr_history) == hd.t_
    assert hd.loss_curve_[-1] < plain.loss_curve_[-1]


# --------------------------------------------------------------------------------------------
# 3. architecture search
# --------------------------------------------------------------------------------------------

def test_architecture_search_pareto_front_not_dominated(digits):
    X, y = digits
    X, y = X[:240], y[:240]
    # the estimator seeded too: with an unseeded one the trials' scores (and the refitted model's
    # score, 0.46-0.75 in repeated runs) vary from run to run
    search = SNNArchitectureSearch(SurrogateSNNClassifier(max_iter=4, learning_rate_init=5e-3, random_state=0),
                                   neurons=("lif", "alif"),
                                   widths=(4, 24), max_depth=2, recurrent=(False, True), n_steps=(3, 6),
                                   cost="synops", n_trials=5, cv=2, random_state=0)
    search.fit(X, y)
    assert is_classifier(search)
    res = search.cv_results_
    pts = list(zip(res["mean_test_score"], res["mean_test_cost"]))
    front = search.pareto_front_
    assert 1 <= len(front) <= len(pts)
    front_pts = [(p["score"], p["synops"]) for p in front]
    for f in front_pts:  # no evaluated candidate dominates a front point
        assert not any(s >= f[0] and c <= f[1] and (s > f[0] or c < f[1]) for s, c in pts)
    for (s, c), on in zip(pts, res["pareto"]):  # every other candidate is dominated by (or equal to) one
        if not on:
            assert any(fs >= s and fc <= c for fs, fc in front_pts)
    assert [p["cost"] for p in front] == sorted(p["cost"] for p in front)
    assert all(set(p["params"]) == {"neuron", "hidden_layer_sizes", "recurrent", "surrogate", "n_steps"}
               for p in front)
    # the refitted estimator is the most accurate front point, valid and usable
    best = search.best_estimator_
    assert search.best_score_ == max(p["score"] for p in front)
    assert best.get_params()["hidden_layer_sizes"] == search.best_params_["hidden_layer_sizes"]
    assert search.predict(X[:5]).shape == (5,) and search.score(X, y) > 0.5
    assert synaptic_operations(best, X[:50]) > 0 and 0 <= mean_firing_rate(best, X[:50]) <= 1


def test_architecture_search_single_objective_reuses_optuna_search(digits):
    from sklearn_snn.model_selection import OptunaSearchCV

    X, y = digits
    search = SNNArchitectureSearch(SurrogateSNNClassifier(max_iter=3), widths=(8, 16), max_depth=1, n_steps=(4,),
                                   n_trials=2, cv=2, random_state=0).fit(X[:150], y[:150])
    assert isinstance(search.search_, OptunaSearchCV) and search.pareto_front_ is None
    assert len(search.cv_results_["params"]) == 2
    assert search.best_estimator_.hidden_layer_sizes in [(8,), (16,)]


def test_synaptic_operations_hand_computed():
    # one hidden layer of 3 neurons, readout of 2: synops = input events * 3 + hidden spikes * 2
    rng = np.random.RandomState(0)
    X = (rng.rand(6, 5, 4) < 0.5).astype(np.float32)  # 3D spike input
    y = np.array([0, 1] * 3)
    clf = SurrogateSNNClassifier((3,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    spikes = clf.simulate(X)["spikes"][0]
    expected = X.sum((1, 2)) * 3 + spikes.sum((1, 2)) * 2
    assert synaptic_operations(clf, X) == pytest.approx(expected.mean())
    assert mean_firing_rate(clf, X) == pytest.approx(spikes.mean())


# --------------------------------------------------------------------------------------------
# 4. learning to learn
# --------------------------------------------------------------------------------------------

def test_few_shot_sampler_episodes():
    s = FewShotTaskSampler(n_way=4, k_shot=2, n_query=3, classes=[1, 3, 5, 7, 9], random_state=0)
    ep = s.sample(random_state=0)
    assert ep.X_support.shape == (8, 64) and ep.X_query.shape == (12, 64)
    assert np.bincount(ep.y_support).tolist() == [2] * 4 and np.bincount(ep.y_query).tolist() == [3] * 4
    assert set(ep.classes.tolist()) <= {1, 3, 5, 7, 9}
    X, y = load_digits(return_X_y=True)
    for label, cls in enumerate(ep.classes):  # relabelled consistently, no overlap support/query
        rows = np.nonzero((X[:, None, :] == ep.X_support[ep.y_support == label][None]).all(-1))[0]
        assert len(rows) >= 2 and set(y[rows].tolist()) == {cls}
    assert not (ep.X_support[:, None, :] == ep.X_query[None]).all(-1).any()
    r = FewShotTaskSampler(n_way=3, k_shot=2, n_query=2, source="randman", n_units=6, n_steps=10).sample(0)
    assert r.X_support.shape == (6, 10, 6) and r.X_query.shape == (6, 10, 6)
    with pytest.raises(ValueError, match="n_way=6"):
        FewShotTaskSampler(n_way=6, classes=range(5))


def test_meta_learning_improves_few_shot_accuracy_on_held_out_tasks():
    train = FewShotTaskSampler(n_way=3, k_shot=3, n_query=6, classes=range(6), random_state=0)
    test = FewShotTaskSampler(n_way=3, k_shot=3, n_query=6, classes=range(6, 10))
    kw = {"hidden_layer_sizes": (32,), "n_steps": 4, "learning_rate_init": 2e-3, "n_adapt_steps": 5, "max_iter": 5,
              "random_state": 0}
    meta = MetaSNNClassifier(**kw, meta_algorithm="fomaml", n_meta_iter=40, meta_batch_size=2,
                             meta_lr=3e-3).meta_fit(train)
    episodes = test.episodes(12, random_state=1)
    acc_meta, acc_rand = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for ep in episodes:
            acc_meta.append(meta.fit(ep.X_support, ep.y_support).score(ep.X_query, ep.y_query))
            acc_rand.append(MetaSNNClassifier(**kw).fit(ep.X_support, ep.y_support).score(ep.X_query, ep.y_query))
    assert meta.n_iter_ == 5 and meta.n_meta_iter_ == 40
    assert np.mean(acc_meta) > np.mean(acc_rand) + 0.1, (np.mean(acc_meta), np.mean(acc_rand))
    # adaptation starts from the meta state every time (fit is idempotent); clone forgets it
    ep = episodes[0]
    p1 = meta.fit(ep.X_support, ep.y_support).predict_proba(ep.X_query)
    p2 = pickle.loads(pickle.dumps(meta)).fit(ep.X_support, ep.y_support).predict_proba(ep.X_query)
    np.testing.assert_allclose(p1, p2)
    assert not hasattr(clone(meta), "meta_module_")


def test_fomaml_learns_inner_rates_and_neuron_parameters():
    tasks = [FewShotTaskSampler(n_way=2, k_shot=4, n_query=4, classes=range(4)).sample(i)[:2] for i in range(5)]
    clf = MetaSNNClassifier((8,), n_steps=3, neuron="cuba", learn_tau=True, learn_threshold=True, learn_lr=True,
                            meta_algorithm="fomaml", n_meta_iter=6, meta_batch_size=2, n_adapt_steps=2,
                            learning_rate_init=1e-2, meta_lr=0.05, random_state=0)
    clf.meta_fit(tasks)
    names = [n for n, _ in clf.meta_module_.named_parameters()]
    assert {"hidden.0.beta_raw", "hidden.0.alpha_raw", "hidden.0.thr_raw"} <= set(names)
    assert clf.inner_lrs_.shape == (len(names),) and np.all(clf.inner_lrs_ > 0)
    assert np.abs(np.log(clf.inner_lrs_ / 1e-2)).max() > 0.01  # the rates moved
    beta0 = 1 / (1 + np.exp(-clf.meta_module_.hidden[0].beta_raw.detach().numpy()))
    assert np.abs(beta0 - np.exp(-1 / 10.0)).max() > 1e-4  # neuron parameters meta-learned too
    assert len(clf.meta_loss_curve_) == 6
    with pytest.raises(ValueError, match="features"):
        clf.fit(np.zeros((4, 5)), [0, 1, 0, 1])
    with pytest.warns(UserWarning, match="3 classes"):
        clf.fit(tasks[0][0][:6], [0, 1, 2, 0, 1, 2])


def test_randman_task_sampler_is_deterministic_by_task_seed():
    s = RandmanTaskSampler(n_way=4, k_shot=2, n_query=3, n_units=7, n_steps=12, task_seeds=range(100, 200))
    ep = s.task(123)
    assert ep.X_support.shape == (8, 12, 7) and ep.X_query.shape == (12, 12, 7)
    assert ep.y_support.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and np.bincount(ep.y_query).tolist() == [3] * 4
    assert (ep.X_support.sum(1) == 1).all()          # every input neuron fires exactly once
    again, other = s.task(123), s.task(124)
    assert np.array_equal(again.X_support, ep.X_support) and np.array_equal(again.X_query, ep.X_query)
    assert not np.array_equal(other.X_support, ep.X_support)   # a new task per seed
    a, b = s.episodes(3, random_state=5), s.episodes(3, random_state=5)
    assert all(np.array_equal(x.X_query, y.X_query) for x, y in zip(a, b))
    # the event form holds the same spikes: unit i at step k -> t = (k + 0.5) / n_steps
    ev = RandmanTaskSampler(n_way=4, k_shot=2, n_query=3, n_units=7, n_steps=12, events=True).task(123)
    steps, units = np.nonzero(ep.X_support[0])
    assert sorted(zip(np.floor(ev.X_support[0]["t"] * 12).astype(int).tolist(),
                      ev.X_support[0]["channel"].tolist())) == sorted(zip(steps.tolist(), units.tolist()))
    with pytest.raises(ValueError, match="task_seeds is empty"):
        RandmanTaskSampler(task_seeds=[])


def test_prototype_adaptation_beats_the_same_steps_from_scratch_on_held_out_digits():
    train = FewShotTaskSampler(n_way=3, k_shot=3, n_query=6, classes=range(6), random_state=0)
    test = FewShotTaskSampler(n_way=3, k_shot=3, n_query=6, classes=range(6, 10)).episodes(12, random_state=1)
    kw = {"hidden_layer_sizes": (64,), "n_steps": 4, "learning_rate_init": 2e-3, "random_state": 0}
    meta = MetaSNNClassifier(**kw, meta_algorithm="protonet", n_meta_iter=10, meta_batch_size=2,
                             n_adapt_steps=5).meta_fit(train)
    acc_meta = np.mean([meta.fit(ep.X_support, ep.y_support).score(ep.X_query, ep.y_query) for ep in test])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        acc_scratch = np.mean([MetaSNNClassifier(**kw, max_iter=5).fit(ep.X_support, ep.y_support)
                               .score(ep.X_query, ep.y_query) for ep in test])
    assert acc_meta > acc_scratch + 0.1 and acc_meta > 0.8, (acc_meta, acc_scratch)
    assert meta.meta_scale_ > 0 and meta.inner_lrs_ is None and meta.n_iter_ == 5


def test_prototype_readout_start_persistence_and_readout_only_adaptation(tmp_path):
    from sklearn_snn import load, save
    from sklearn_snn._core.meta_proto import prototypes, readout_features

    shape = {"n_way": 3, "k_shot": 3, "n_query": 6, "n_units": 10, "n_steps": 15}
    train = RandmanTaskSampler(**shape, task_seeds=range(1000), random_state=0)
    ep = RandmanTaskSampler(**shape, task_seeds=range(1000, 2000)).sample(random_state=1)
    meta = MetaSNNClassifier((32,), neuron="cuba", tau_mem=4.0, tau_syn=4.0, threshold=0.5, readout="membrane_mean",
                             meta_algorithm="protonet", n_meta_iter=5, meta_batch_size=2, random_state=0)
    meta.meta_fit(train)
    assert len(meta.meta_loss_curve_) == 5 and meta.meta_scale_ != 1 / 32   # the scale is learned
    # the adaptation starts from the support set's prototype readout: with no step it is the
    # nearest-prototype classifier of the decayed hidden spike counts
    meta.set_params(n_adapt_steps=1, learning_rate_init=1e-12)
    meta.fit(ep.X_support, ep.y_support)
    with torch.no_grad():
        phi_s, _ = readout_features(meta.module_, torch.as_tensor(ep.X_support, dtype=torch.float32).transpose(0, 1))
        phi_q, _ = readout_features(meta.module_, torch.as_tensor(ep.X_query, dtype=torch.float32).transpose(0, 1))
        nearest = torch.cdist(phi_q, prototypes(phi_s, torch.as_tensor(ep.y_support), 3)).argmin(1).numpy()
    assert (meta.predict(ep.X_query) == nearest).mean() >= 0.95
    # persistence keeps the learned prototype scale; readout-only adaptation keeps the hidden layer
    save(meta, tmp_path / "proto.snn")
    back = load(tmp_path / "proto.snn")
    assert back.meta_scale_ == meta.meta_scale_
    meta.set_params(n_adapt_steps=3, learning_rate_init=1e-2, adapt_layers="readout")
    back.set_params(n_adapt_steps=3, learning_rate_init=1e-2, adapt_layers="readout")
    p1 = meta.fit(ep.X_support, ep.y_support).predict_proba(ep.X_query)
    np.testing.assert_array_equal(p1, back.fit(ep.X_support, ep.y_support).predict_proba(ep.X_query))
    assert torch.equal(meta.module_.hidden[0].weight, meta.meta_module_.hidden[0].weight)
    assert not torch.equal(meta.module_.out.weight, meta.meta_module_.out.weight)


def _expected_failures(est):
    return {"check_sample_weight_equivalence_on_dense_data": "minibatch SGD on spiking (discontinuous) units "
            "is not exactly equivalent to duplicated samples"}


@parametrize_with_checks([MetaSNNClassifier((16,), n_steps=4, max_iter=30, random_state=0)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)
