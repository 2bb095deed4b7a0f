"""EvolvedSNN and the evolution core: strategies, batched population evaluation, sklearn surface."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_snn._core.encoding import current
from sklearn_snn._core.evolution import PopulationSNN
from sklearn_snn._core.network import SNN
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.strategies import (
    CMAES,
    SNES,
    GeneticAlgorithm,
    OpenAIES,
    SepCMAES,
    centered_ranks,
    make_strategy,
)
from sklearn_snn.evolution import EvolvedSNN
from sklearn_snn.persistence import load, save

FAST = {"hidden_layer_sizes": (8,), "max_iter": 40, "population_size": 16, "learning_rate_init": 0.05,
        "sigma": 0.1, "random_state": 0, "device": "cpu"}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# --- strategies on problems with a known optimum ----------------------------------------------
def _run(strategy, f, generations, seed=0):
    g = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(generations):
        pop = strategy.ask(g)
        strategy.tell(f(pop))
        curve.append(float(f(strategy.incumbent.unsqueeze(0))[0]))
    return curve


TARGET = torch.linspace(-1.0, 1.0, 12, dtype=torch.float64)


@pytest.mark.parametrize("name, sigma, gens", [("openai-es", 0.1, 150), ("full-cma-es", 0.3, 150),
                                               ("sep-cma-es", 0.3, 150), ("snes", 0.3, 150), ("ga", 0.3, 150)])
def test_strategy_reaches_target_vector(name, sigma, gens):
    kw = {"lr": 0.05} if name == "openai-es" else {}
    es = make_strategy(name, torch.zeros(12), sigma, 24, **kw)
    f = lambda pop: -((pop - TARGET) ** 2).sum(1)
    curve = _run(es, f, gens)
    start = float(f(torch.zeros(1, 12, dtype=torch.float64))[0])
    assert curve[-1] > 0.02 * start  # >= 98 % of the initial error removed
    assert max(curve) <= 0.0


@pytest.mark.parametrize("strategy", ["openai-es", "cma-es", "snes", "ga"])
def test_estimator_strategies_improve_known_optimum(strategy):
    """Through the estimator, with a callable fitness whose optimum is a known genome."""
    X, y = make_blobs(40, centers=2, n_features=2, random_state=0)
    target = torch.linspace(-0.5, 0.5, 2 * 2 + 2 + 2 * 2 + 2, dtype=torch.float64)

    def match(view, X, y):
        return -float(((view.genome.to(torch.float64) - target) ** 2).sum())

    est = EvolvedSNN((2,), strategy=strategy, fitness=match, population_size=16, sigma=0.2,
                     learning_rate_init=0.05, max_iter=80, n_iter_no_change=80, random_state=0, device="cpu")
    est.fit(X, y)
    assert est.n_genes_ == target.numel()
    assert est.fitness_curve_[-1] > est.fitness_curve_[0]
    assert est.best_fitness_ > 0.25 * est.fitness_curve_[0]   # >= 75 % of the error removed
    assert est.best_fitness_ == max(est.fitness_curve_)
    assert match(type("V", (), {"genome": est.best_genome_})(), X, y) == pytest.approx(est.best_fitness_)


def _ill_conditioned(scales, rotation=None):
    def f(pop):
        z = pop if rotation is None else pop @ rotation.T
        return -((scales * z) ** 2).sum(1)
    return f


def test_cma_adapts_covariance_to_ill_conditioned_quadratic():
    n = 5
    scales = torch.logspace(0, 2, n, dtype=torch.float64)       # Hessian condition number 1e4
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    f = _ill_conditioned(scales, q)
    es = CMAES(torch.ones(n), sigma=0.5)
    conds = []
    g = torch.Generator().manual_seed(0)
    for gen in range(250):
        pop = es.ask(g)
        es.tell(f(pop))
        ev = torch.linalg.eigvalsh(es.covariance)
        conds.append(float(ev[-1] / ev[0]))
    assert conds[0] < 10 and conds[-1] > 1e3                    # grows towards the problem's 1e4
    # C learns the inverse Hessian: C H is close to a multiple of the identity
    H = q.T @ torch.diag(scales ** 2) @ q
    ev = torch.linalg.eigvals(es.covariance @ H).real
    assert float(ev.max() / ev.min()) < 5.0
    assert float(-f(es.mean.unsqueeze(0))[0]) < 1e-8


def test_separable_strategies_learn_axis_scales():
    n = 6
    scales = torch.logspace(0, 2, n, dtype=torch.float64)
    f = _ill_conditioned(scales)
    for es in (SepCMAES(torch.ones(n), sigma=0.5), SNES(torch.ones(n), sigma=0.5)):
        _run(es, f, 400)
        var = torch.diagonal(es.covariance) * (es.sigma ** 2 if isinstance(es, SepCMAES) else 1.0)
        ratio = float(var[0] / var[-1])
        assert ratio > 300, (type(es).__name__, ratio)          # the problem's ratio is 1e4
        assert float(-f(es.mean.unsqueeze(0))[0]) < 1e-6


def test_auto_cma_choice_and_centered_ranks():
    assert isinstance(make_strategy("cma-es", torch.zeros(50), 0.1, None), CMAES)
    assert isinstance(make_strategy("cma-es", torch.zeros(5000), 0.1, None), SepCMAES)
    r = centered_ranks(torch.tensor([5.0, 1.0, 5.0, 3.0]))
    # ranks 2.5 (tied 5s share ranks 2 and 3), 0, 2.5, 1, mapped by r / (n - 1) - 0.5
    np.testing.assert_allclose(r.numpy(), [1 / 3, -0.5, 1 / 3, -1 / 6])
    with pytest.raises(ValueError, match="Unknown strategy"):
        make_strategy("pso", torch.zeros(3), 0.1, 8)
    es = OpenAIES(torch.zeros(3), popsize=7)
    assert es.popsize == 8                                        # antithetic pairs
    with pytest.raises(RuntimeError, match="ask"):
        es.tell(torch.zeros(8))
    es.ask(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="expects 8"):
        es.tell(torch.zeros(5))


def test_ga_keeps_elite_and_nan_ranks_last():
    ga = GeneticAlgorithm(torch.zeros(4), sigma=0.5, popsize=10, n_elite=2)
    g = torch.Generator().manual_seed(0)
    pop = ga.ask(g).clone()
    f = -(pop ** 2).sum(1)
    f[3] = float("nan")
    ga.tell(f)
    best2 = pop[torch.argsort(torch.nan_to_num(f, nan=-1e9), descending=True)[:2]]
    nxt = ga.ask(g)
    assert torch.equal(nxt[:2], best2)
    assert torch.equal(ga.incumbent, best2[0])


# --- batched population evaluation ------------------------------------------------------------
@pytest.mark.parametrize("model", ["lif", "cuba", "alif", "if"])
@pytest.mark.parametrize("readout", ["membrane_max", "membrane_mean", "spike_count", "first_spike"])
@pytest.mark.parametrize("architecture", [None, "both"])
def test_batched_equals_per_individual(model, readout, architecture):
    g = torch.Generator().manual_seed(0)
    net = SNN(5, (7, 6), 3, NeuronSpec(model, beta=0.8), readout=readout, generator=g, dtype=torch.float64)
    pop = PopulationSNN(net, architecture)
    genomes = pop.initial_genome().repeat(6, 1) + 0.6 * torch.randn(6, pop.n_genes, generator=g, dtype=torch.float64)
    inputs = [current(2 * torch.randn(9, 5, generator=g, dtype=torch.float64), 8),       # static (stride 0)
              3 * torch.rand(8, 9, 5, generator=g, dtype=torch.float64)]                 # time-varying
    for x in inputs:
        logits, spikes = pop.forward(genomes, x)
        assert logits.shape == (6, 9, 3)
        for i in range(6):                                          # the loop the batched program replaces
            pop.load_into(net, genomes[i])
            ref_logits, ref_spikes = net(x)
            torch.testing.assert_close(logits[i], ref_logits, rtol=0, atol=1e-10)
            for s, r in zip(spikes, ref_spikes):
                torch.testing.assert_close(s[:, i], r, rtol=0, atol=0)
    assert sum(s.sum() for s in spikes) > 0                          # the comparison saw spikes


def test_estimator_module_is_best_individual_and_fitness_is_batched():
    X, y = make_blobs(60, centers=3, random_state=0)
    est = EvolvedSNN(**FAST).fit(X, y)
    pop = est._population()
    # fitness of several genomes from one batched call == one call per genome
    genomes = est.best_genome_.unsqueeze(0) + 0.05 * torch.randn(5, est.n_genes_, generator=torch.Generator()
                                                                .manual_seed(0), dtype=torch.float64)
    xb = est._encode(est._to_tensor(est._scale(X)), train=False)
    yb = torch.as_tensor(np.searchsorted(est.classes_, y))
    batched = est._fitness(pop, genomes, xb, yb, X, y)
    single = torch.cat([est._fitness(pop, genomes[i:i + 1], xb, yb, X, y) for i in range(5)])
    torch.testing.assert_close(batched, single, rtol=1e-6, atol=1e-6)
    # module_ holds best_genome_: its (float64) logits match the population program
    logits, _, _ = est._population_outputs(pop, est.best_genome_.unsqueeze(0), X)
    np.testing.assert_allclose(est.decision_function(X), logits[0], atol=1e-4)


# --- sklearn surface --------------------------------------------------------------------------
@parametrize_with_checks([EvolvedSNN(**FAST)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_learns_iris_and_history():
    X, y = load_iris(return_X_y=True)
    est = EvolvedSNN((16,), max_iter=80, random_state=0, device="cpu").fit(X, y)
    assert est.score(X, y) > 0.9
    assert len(est.fitness_curve_) == len(est.population_fitness_curve_) == est.n_iter_
    assert est.best_fitness_ == max(est.fitness_curve_) and est.best_fitness_ > est.fitness_curve_[0]
    assert est.strategy_ == "openai-es"
    sim = est.simulate(X[:3])
    assert sim["spikes"][0].shape == (3, 10, 16) and sim["output"].shape == (3, 3)
    np.testing.assert_allclose(est.predict_proba(X[:5]).sum(1), 1.0)


@pytest.mark.parametrize("strategy", ["openai-es", "cma-es", "sep-cma-es", "snes", "ga"])
def test_deterministic_with_random_state(strategy):
    X, y = make_blobs(50, centers=2, random_state=1)
    kw = dict(FAST, strategy=strategy, max_iter=8, encoder="rate")  # rate: the generator also draws the input spikes
    a, b = EvolvedSNN(**kw).fit(X, y), EvolvedSNN(**kw).fit(X, y)
    assert a.fitness_curve_ == b.fitness_curve_
    torch.testing.assert_close(a.best_genome_, b.best_genome_, rtol=0, atol=0)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = EvolvedSNN(**dict(kw, random_state=1)).fit(X, y)
    assert c.fitness_curve_ != a.fitness_curve_


def test_bad_input():
    X, y = make_blobs(30, centers=2, random_state=0)
    with pytest.raises(InvalidParameterError):
        EvolvedSNN(strategy="pso").fit(X, y)
    with pytest.raises(InvalidParameterError):
        EvolvedSNN(population_size=1).fit(X, y)
    with pytest.raises(InvalidParameterError):
        EvolvedSNN(fitness="f1").fit(X, y)
    with pytest.raises(InvalidParameterError):
        EvolvedSNN(architecture="neat").fit(X, y)
    with pytest.raises(ValueError, match="strategy='ga' only"):
        EvolvedSNN(strategy="snes", strategy_params={"n_elite": 2}).fit(X, y)
    with pytest.raises(ValueError, match="Unknown strategy_params"):
        EvolvedSNN(strategy="ga", strategy_params={"elite": 2}).fit(X, y)
    with pytest.raises(ValueError, match="class"):
        EvolvedSNN(**FAST).fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="classes must be passed"):
        EvolvedSNN(**FAST).partial_fit(X, y)
    est = EvolvedSNN(**dict(FAST, max_iter=2)).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :1])
    with pytest.raises(ValueError, match="3D"):
        est.predict(X.reshape(30, 1, 2))
    with pytest.raises(ValueError, match="not seen in the first fit"):
        est.partial_fit(X, y + 5)
    with pytest.raises(ValueError):
        EvolvedSNN(**FAST).fit(X[:, :, None, None], y)


def test_nonfinite_fitness_ranks_last():
    X, y = make_blobs(30, centers=2, random_state=0)
    calls = {"n": 0}

    def flaky(view, X, y):
        calls["n"] += 1
        return float("nan") if view.index % 3 == 0 else view.score(X, y)

    with pytest.warns(RuntimeWarning, match="non-finite fitness"):
        est = EvolvedSNN(**dict(FAST, fitness=flaky, max_iter=5)).fit(X, y)
    assert calls["n"] > 0 and np.isfinite(est.population_fitness_curve_).all()


# --- non-differentiable objective, architecture, warm start ---------------------------------
def test_view_reads_batched_outputs_and_spike_penalty_reduces_spikes():
    X, y = load_iris(return_X_y=True)
    seen = []

    def spy(view, Xb, yb):
        # the cached (batched) outputs equal this individual evaluated alone on a copy of X
        seen.append((view.predict_proba(Xb), view.predict_proba(Xb.copy()), view.spike_count(Xb),
                     view.spike_count(Xb.copy())))
        return view.score(Xb, yb)

    EvolvedSNN(**dict(FAST, fitness=spy, max_iter=1, population_size=4)).fit(X, y)
    for p1, p2, s1, s2 in seen:
        np.testing.assert_allclose(p1, p2, atol=1e-6)
        np.testing.assert_array_equal(s1, s2)

    def penalised(view, X, y):
        return view.score(X, y) - 0.02 * view.spike_count(X).mean()

    kw = {"hidden_layer_sizes": (16,), "max_iter": 40, "population_size": 32, "random_state": 0, "device": "cpu"}
    base = EvolvedSNN(fitness="accuracy", **kw).fit(X, y)
    sparse = EvolvedSNN(fitness=penalised, **kw).fit(X, y)
    n_spikes = lambda e: e.simulate(X)["spikes"][0].sum() / len(X)
    assert n_spikes(sparse) < 0.5 * n_spikes(base)
    assert sparse.score(X, y) > 0.6


def test_architecture_evolution_prunes_and_module_matches():
    X, y = load_iris(return_X_y=True)
    est = EvolvedSNN((12,), architecture="both", architecture_penalty=0.5, sigma=0.3, learning_rate_init=0.05,
                     max_iter=60, random_state=0, device="cpu").fit(X, y)
    pop = est._population()
    n_w = sum(p.numel() for name, p in est.module_.named_parameters() if name.endswith("weight"))
    assert est.n_genes_ == pop.n_weights + n_w + 12
    arch = est.architecture_
    assert sum(arch["connections"]) < n_w and arch["widths"][0] <= 12
    # removed connections are zero in module_, and module_ reproduces the masked population network
    w0 = est.module_.hidden[0].weight.detach()
    mask0 = (est.best_genome_[pop.mask_slices[0]] > 0).view(12, 4)
    gate = (est.best_genome_[pop.gate_slices[0]] > 0)
    assert torch.all(w0[~(mask0 & gate[:, None])] == 0)
    assert int(gate.sum()) == arch["widths"][0]
    logits, _, _ = est._population_outputs(pop, est.best_genome_.unsqueeze(0), X)
    np.testing.assert_allclose(est.decision_function(X), logits[0], atol=1e-4)
    assert est.score(X, y) > 0.6


def test_warm_start_partial_fit_pickle_and_3d(tmp_path):
    X, y = make_blobs(40, centers=2, random_state=0)
    est = EvolvedSNN(**dict(FAST, max_iter=5, warm_start=True)).fit(X, y)
    curve = list(est.fitness_curve_)
    est.fit(X, y)
    assert est.n_iter_ == 10 and est.fitness_curve_[:5] == curve
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.predict(X), est.predict(X))
    path = tmp_path / "evolved.snn"
    save(est, path)                                     # the safe format of sklearn_snn.persistence
    np.testing.assert_array_equal(load(path).predict_proba(X), est.predict_proba(X))
    est2.partial_fit(X, y)
    assert est2.n_iter_ == 11
    pf = EvolvedSNN(**FAST)
    for _ in range(3):
        pf.partial_fit(X, y, classes=[0, 1])
    assert pf.n_iter_ == 3
    X3 = np.repeat(X[:, None, :], 6, axis=1)
    e3 = clone(est).set_params(warm_start=False).fit(X3, y)
    assert e3.n_steps_in_ == 6 and e3.predict(X3).shape == (40,)


def test_verbose_prints_generation_lines(capsys):
    X, y = make_blobs(20, centers=2, random_state=0)
    EvolvedSNN(**dict(FAST, max_iter=3, verbose=1)).fit(X, y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Generation")]
    assert len(lines) == 3 and "fitness =" in lines[0] and "sigma =" in lines[0]
