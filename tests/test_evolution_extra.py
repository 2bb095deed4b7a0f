"""EvolvedSNN: non-finite fitness handling, the compiled population kernel against the torch path,
and the genetic algorithm's search."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning

from sklearn_snn._core import evolution as evo
from sklearn_snn._core.encoding import current
from sklearn_snn._core.evolution import PopulationSNN, compiled_kernels
from sklearn_snn._core.network import SNN
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn._core.strategies import GeneticAlgorithm, OpenAIES
from sklearn_snn._core.training import DivergedError
from sklearn_snn.evolution import EvolvedSNN

FAST = dict(hidden_layer_sizes=(8,), max_iter=6, population_size=16, learning_rate_init=0.05, sigma=0.1,
            random_state=0, device="cpu")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# --- non-finite fitness -----------------------------------------------------------------------
def test_all_nonfinite_callable_fitness_raises_and_keeps_warm_state():
    X, y = make_blobs(40, centers=2, random_state=0)
    est = EvolvedSNN(**dict(FAST, fitness="accuracy", warm_start=True)).fit(X, y)
    state = (est.n_iter_, list(est.fitness_curve_), est.best_fitness_, est.best_genome_.clone(), est.predict_proba(X))

    def broken(view, Xb, yb):
        return float("nan")

    est.set_params(fitness=broken)
    with pytest.raises(DivergedError, match="non-finite fitness.*fitness callable"):
        est.fit(X, y)
    assert est.n_iter_ == state[0] and est.fitness_curve_ == state[1] and est.best_fitness_ == state[2]
    torch.testing.assert_close(est.best_genome_, state[3], rtol=0, atol=0)
    np.testing.assert_array_equal(est.predict_proba(X), state[4])
    # the strategy is still usable: a sane fitness continues the same search
    est.set_params(fitness="accuracy")
    est.fit(X, y)
    assert est.n_iter_ == state[0] + FAST["max_iter"]
    assert est.fitness_curve_[:state[0]] == state[1]


@pytest.mark.parametrize("bad", [float("inf"), -float("inf")])
def test_all_infinite_callable_fitness_raises(bad):
    X, y = make_blobs(30, centers=2, random_state=0)
    with pytest.raises(DivergedError, match="all 16 individuals of generation 1"):
        EvolvedSNN(**dict(FAST, fitness=lambda v, Xb, yb: bad)).fit(X, y)


def test_builtin_fitness_overflow_raises_with_hint():
    X, y = make_blobs(30, centers=2, random_state=0)
    # weights of order 1e38: every network's readout overflows, the cross-entropy is NaN
    with pytest.raises(DivergedError, match="lower sigma"):
        EvolvedSNN(**dict(FAST, sigma=1e38, strategy="snes")).fit(X, y)


def test_partially_nonfinite_fitness_warns_and_ranks_last():
    X, y = make_blobs(40, centers=2, random_state=0)

    def flaky(view, Xb, yb):   # NaN for some genomes, +inf for others: both rank last
        key = int(abs(float(view.genome[:4].sum())) * 1e6) % 4
        return {0: float("nan"), 1: float("inf")}.get(key, view.score(Xb, yb))

    with pytest.warns(RuntimeWarning, match=r"\d+ of 16 individuals got a non-finite fitness"):
        est = EvolvedSNN(**dict(FAST, fitness=flaky, strategy="ga")).fit(X, y)
    assert np.isfinite(est.population_fitness_curve_).all()
    assert np.isfinite(est.best_fitness_) and est.best_fitness_ <= 1.0


def test_strategy_rejects_all_nonfinite_and_ranks_inf_last():
    g = torch.Generator().manual_seed(0)
    es = OpenAIES(torch.zeros(3), sigma=0.1, popsize=4)
    es.ask(g)
    with pytest.raises(ValueError, match="non-finite"):
        es.tell(torch.full((4,), float("nan")))
    es.tell(torch.tensor([1.0, float("inf"), 0.0, float("nan")]))   # pending kept after the error
    ga = GeneticAlgorithm(torch.zeros(2), sigma=0.5, popsize=4, n_elite=1)
    pop = ga.ask(g).clone()
    ga.tell(torch.tensor([0.0, float("inf"), 1.0, -1.0]))
    assert torch.equal(ga.incumbent, pop[2])                          # +inf is not "best"


# --- the compiled kernel ----------------------------------------------------------------------
needs_numba = pytest.mark.skipif(compiled_kernels() is None, reason="numba not installed")


@needs_numba
@pytest.mark.parametrize("model, reset", [("lif", "subtract"), ("cuba", "zero"), ("alif", "subtract"), ("if", "zero")])
@pytest.mark.parametrize("readout", ["membrane_max", "membrane_last", "membrane_mean", "spike_count", "first_spike"])
def test_kernel_equals_torch_backend(model, reset, readout):
    g = torch.Generator().manual_seed(1)
    net = SNN(6, (9, 5, 7), 3, NeuronSpec(model, beta=0.85, reset=reset), readout=readout, generator=g,
              dtype=torch.float64)
    pop = PopulationSNN(net, "both")
    genomes = pop.initial_genome().repeat(7, 1) + 0.7 * torch.randn(7, pop.n_genes, generator=g, dtype=torch.float64)
    for x in (current(2 * torch.randn(11, 6, generator=g, dtype=torch.float64), 6),
              3 * torch.rand(6, 11, 6, generator=g, dtype=torch.float64)):
        ref_logits, ref_spikes = pop.forward(genomes, x, backend="torch")
        logits, spikes = pop.forward(genomes, x, backend="numba")
        torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-10)
        assert len(spikes) == len(ref_spikes)
        for s, r in zip(spikes, ref_spikes):
            torch.testing.assert_close(s, r, rtol=0, atol=0)
        lg, counts = pop.evaluate(genomes, x, spike_counts=True)
        torch.testing.assert_close(lg, ref_logits, rtol=0, atol=1e-10)
        torch.testing.assert_close(counts, sum(r.sum((0, 3)) for r in ref_spikes), rtol=0, atol=0)
    assert sum(float(s.sum()) for s in spikes) > 0


@needs_numba
def test_kernel_chunks_threads_and_float32(monkeypatch):
    g = torch.Generator().manual_seed(2)
    net = SNN(5, (12,), 4, NeuronSpec(), generator=g)
    pop = PopulationSNN(net)
    genomes = pop.initial_genome().repeat(9, 1) + 0.3 * torch.randn(9, pop.n_genes, generator=g)
    x = torch.rand(7, 13, 5, generator=g)
    ref, _ = pop.forward(genomes, x, backend="torch")
    monkeypatch.setattr(evo, "_CHUNK_ELEMENTS", 12 * 7 * 13 * 2)   # chunks of 2 individuals (last one: 1)
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            logits, _ = pop.evaluate(genomes, x)
            torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(old)
    with pytest.raises(ValueError, match="backend"):
        pop.evaluate(genomes, x, backend="cuda")


# --- genetic algorithm ------------------------------------------------------------------------
@pytest.mark.parametrize("crossover", ["arithmetic", "blend", "uniform"])
def test_ga_self_adapts_its_mutation_step(crossover):
    """With step sizes fixed at sigma the GA could not get below an error of order sigma^2; the
    self-adapted steps shrink by orders of magnitude as the population closes in."""
    g = torch.Generator().manual_seed(0)
    ga = GeneticAlgorithm(torch.ones(30), sigma=0.5, popsize=40, crossover=crossover)
    for _ in range(300):
        pop = ga.ask(g)
        ga.tell(-(pop ** 2).sum(1))
    assert float((ga.incumbent ** 2).sum()) < 1e-6
    assert ga.sigma < 1e-3
    assert ga.incumbent_fitness == pytest.approx(-float((ga.incumbent ** 2).sum()))


def test_ga_estimator_learns_iris_and_checks_params():
    X, y = load_iris(return_X_y=True)
    est = EvolvedSNN((16,), strategy="ga", population_size=32, max_iter=60, random_state=0, device="cpu").fit(X, y)
    assert est.score(X, y) > 0.9
    assert est.best_fitness_ == max(est.fitness_curve_)
    blend = EvolvedSNN((16,), strategy="ga", population_size=32, max_iter=5, random_state=0, device="cpu",
                       strategy_params={"crossover": "blend", "n_elite": 2, "tau": 0.1}).fit(X, y)
    assert blend._strategy.crossover == "blend" and blend._strategy.n_elite == 2
    with pytest.raises(ValueError, match="crossover must be one of"):
        EvolvedSNN(strategy="ga", strategy_params={"crossover": "one-point"}).fit(X, y)


def test_cma_refreshes_eigendecomposition_lazily(monkeypatch):
    from sklearn_snn._core.strategies import CMAES

    es = CMAES(torch.ones(300), sigma=0.5)
    assert es.eigen_interval == int(1.0 / (10 * 300 * (es.c1 + es.cmu))) > 1
    calls = []
    real = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh", lambda C: calls.append(1) or real(C))
    g = torch.Generator().manual_seed(0)
    f0 = None
    for gen in range(6 * es.eigen_interval):
        pop = es.ask(g)
        f = -(pop ** 2).sum(1)
        f0 = f0 if f0 is not None else float(f.max())
        es.tell(f)
    assert len(calls) == 6
    # between refreshes the sampling uses the last B, D: still a valid search (sphere improves)
    assert float(-(es.mean ** 2).sum()) > f0
    small = CMAES(torch.ones(5), sigma=0.5)
    assert small.eigen_interval == 1


# --- the torch path (no numba needed) ---------------------------------------------------------
MIXED = [("lif", "subtract"), ("cuba", "zero"), ("alif", "subtract"), ("if", "zero"), ("alif", "zero")]


@pytest.mark.parametrize("readout", ["membrane_max", "membrane_last", "membrane_mean", "spike_count", "first_spike"])
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_torch_path_equals_per_individual_forward(monkeypatch, readout, chunk):
    """backend='torch' (the path of CUDA and of machines without numba) against the loop it
    replaces, every individual through the single network's forward: every neuron model and reset
    (one per layer), every readout, static and temporal input, in one chunk of time steps or in
    chunks of 1 and 3 steps (the state carried across chunks)."""
    g = torch.Generator().manual_seed(3)
    net = SNN(6, (9, 5, 7), 3, NeuronSpec("lif", beta=0.8, threshold=0.9), readout=readout, generator=g,
              dtype=torch.float64)
    for layer, (model, reset) in zip([lay for lay in net.layers if hasattr(lay, "spec")], MIXED):
        layer.spec = NeuronSpec(model, beta=0.75, alpha=0.6, reset=reset, threshold=0.9, adapt=0.3, rho=0.8)
    pop = PopulationSNN(net, "both")
    if chunk is not None:                  # time steps per chunk = chunk (P x widest layer x B = 7 * 9 * 11)
        monkeypatch.setattr(evo, "_TORCH_CHUNK_ELEMENTS", chunk * 7 * 9 * 11)
    genomes = pop.initial_genome().repeat(7, 1) + 0.7 * torch.randn(7, pop.n_genes, generator=g, dtype=torch.float64)
    n_spikes = 0.0
    for x in (current(2 * torch.randn(11, 6, generator=g, dtype=torch.float64), 7),
              3 * torch.rand(7, 11, 6, generator=g, dtype=torch.float64)):
        logits, spikes = pop.forward(genomes, x, backend="torch")
        lg, counts = pop.evaluate(genomes, x, spike_counts=True, backend="torch")
        assert torch.equal(lg, logits)
        assert len(spikes) == len(pop._spiking_sizes)
        torch.testing.assert_close(counts, sum(s.sum((0, 3)) for s in spikes), rtol=0, atol=0)
        for i in range(7):
            pop.load_into(net, genomes[i])
            ref_logits, ref_spikes = net(x)
            torch.testing.assert_close(logits[i], ref_logits, rtol=0, atol=1e-10)
            for s, r in zip(spikes, ref_spikes):
                torch.testing.assert_close(s[:, i], r, rtol=0, atol=0)
        n_spikes += float(counts.sum())
    assert n_spikes > 0


def test_torch_path_reuses_buffers_across_shapes_and_dtypes():
    """The torch path's buffers are reused from call to call: a call after calls of other
    population sizes, minibatches, step counts and dtypes gives what a fresh population gives."""
    g = torch.Generator().manual_seed(4)
    net = SNN(5, (12,), 4, NeuronSpec(), generator=g)
    genomes = PopulationSNN(net).initial_genome().repeat(9, 1) + 0.3 * torch.randn(9, 12 * 5 + 12 + 4 * 12 + 4,
                                                                                   generator=g)
    xs = [torch.rand(7, 13, 5, generator=g), current(torch.rand(3, 5, generator=g), 4),
          torch.rand(9, 2, 5, generator=g).double()]
    fresh = [PopulationSNN(net).evaluate(genomes.to(x.dtype), x, spike_counts=True, backend="torch") for x in xs]
    pop = PopulationSNN(net)
    for _ in range(2):
        for x, (ref_logits, ref_counts) in zip(xs, fresh):
            for P in (9, 2):
                logits, counts = pop.evaluate(genomes[:P].to(x.dtype), x, spike_counts=True, backend="torch")
                assert torch.equal(logits, ref_logits[:P]) and torch.equal(counts, ref_counts[:P])
