"""Gradient-free training of spiking networks: ``EvolvedSNN``.

Evolution strategies (OpenAI-ES, CMA-ES and its separable variants, SNES) or a genetic algorithm
search the weights -- and optionally the connectivity and hidden width -- of a feed-forward
spiking network. Each generation the whole population is evaluated as one batched tensor program
(:class:`sklearn_snn._core.evolution.PopulationSNN`); any fitness works, differentiable or not.
The best individual is stored as an ordinary :class:`~sklearn_snn._core.network.SNN` in
``module_``, so prediction and simulation are those of the gradient-trained estimators.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ._core.evolution import ARCHITECTURE_MODES, PopulationSNN
from ._core.network import SNN
from ._core.strategies import STRATEGIES, make_strategy
from ._core.training import LoopState, Method, Stopping
from .base import BaseSNN, GradientSNNMixin, SNNClassifierMixin, make_generator
from .training import run_training
from .validation import (
    NETWORK_CONSTRAINTS,
    IntervalNotBool,
    check_hidden_layer_sizes,
    validate_snn_input,
)

__all__ = ["EvolvedSNN"]


_GA_PARAMS = ("n_elite", "tournament_size", "crossover", "crossover_rate", "n_parents", "mutation_rate", "tau")
_NETWORK_PARAMS = ("hidden_layer_sizes", "n_steps", "neuron", "tau_mem", "tau_syn", "threshold", "reset",
                   "encoder", "readout", "input_scaling", "device", "torch_num_threads", "random_state", "verbose")


class _IndividualView:
    """What a user fitness sees of one individual of the population.

    The network outputs on the generation's minibatch come from the population's batched forward
    pass; asking about other data runs this individual alone.
    """

    def __init__(self, est, pop, genome, index, cache):
        self._est, self._pop, self._genome, self.index = est, pop, genome, index
        self._cache = cache
        self.classes_ = est.classes_
        self.genome = genome
        self.active_fraction = float(pop.active_fraction(genome.unsqueeze(0))[0])

    def _outputs(self, X):
        c = self._cache
        if X is c["X"]:
            return c["logits"][self.index], c["counts"][self.index], c["n_units"]
        X, _ = validate_snn_input(self._est, X, reset=False)
        logits, counts, n_units = self._est._population_outputs(self._pop, self._genome.unsqueeze(0), X)
        return logits[0], counts[0], n_units

    def decision_function(self, X):
        logits = self._outputs(X)[0]
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X):
        z = self._outputs(X)[0]
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self._outputs(X)[0], axis=1)]

    def score(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def spike_count(self, X):
        """Spikes per sample, summed over all spiking layers and steps, (n_samples,)."""
        return self._outputs(X)[1]

    def firing_rate(self, X):
        """Mean spikes per neuron and step over all spiking layers."""
        _, counts, n_units = self._outputs(X)
        return float(counts.mean() / n_units)


class EvolvedSNN(ClassifierMixin, SNNClassifierMixin, BaseSNN):
    """Spiking neural network classifier trained by evolution strategies or a genetic algorithm.

    No gradient is used: a population of networks is sampled around the current solution, every
    individual is scored by ``fitness`` on a minibatch, and the strategy moves towards the fitter
    ones. The population is evaluated as one tensor program (stacked weights, batched matmuls,
    the population folded into the neuron update), not a loop over individuals. The fitness may
    be any function of the network's behaviour -- accuracy, a spike budget, a hardware cost.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(64,)
        Width of each hidden spiking layer (the maximal width with ``architecture='width'``).
    strategy : str, default='openai-es'
        - ``'openai-es'``: antithetic Gaussian sampling, centred-rank fitness shaping and Adam on
          the estimated gradient (Salimans et al. 2017); ``learning_rate_init`` is Adam's step and
          ``alpha`` an L2 weight decay.
        - ``'cma-es'``: CMA-ES, full covariance up to 400 genes (Hansen 2016), separable
          (diagonal) CMA-ES above (Ros & Hansen 2008). Choose one explicitly with
          ``'full-cma-es'`` or ``'sep-cma-es'``.
        - ``'snes'``: separable natural evolution strategy (Schaul et al. 2011).
        - ``'ga'``: elitism, tournament selection, crossover (intermediate recombination of
          four parents by default) and Gaussian mutation with self-adaptive step sizes.
    population_size : int, default=64
        Individuals per generation (rounded up to even for 'openai-es').
    sigma : float, default=0.05
        Initial standard deviation of the search distribution / of the GA's first population
        and mutations (then self-adapted), in weight units (the initial weights are uniform in
        +-1/sqrt(fan_in)).
    learning_rate_init : float, default=0.01
        Adam step size of 'openai-es' (unused by the other strategies).
    alpha : float, default=0.0
        L2 weight decay of 'openai-es'.
    strategy_params : dict or None, default=None
        Extra settings of the GA (see :class:`sklearn_snn._core.strategies.GeneticAlgorithm`):
        ``n_elite`` (default ``max(1, population_size // 16)``), ``tournament_size``
        (``max(2, population_size // 8)``), ``crossover`` ('arithmetic', 'blend' or 'uniform'),
        ``crossover_rate`` (0.9), ``n_parents`` (4, for 'arithmetic'), ``mutation_rate`` (1.0,
        the fraction of genes mutated) and ``tau`` (the learning rate of the self-adaptive
        mutation step, default ``1 / sqrt(2 sqrt(n_genes))``).
    fitness : {'cross_entropy', 'accuracy'} or callable, default='cross_entropy'
        What is maximised on each generation's minibatch: minus the mean cross-entropy of the
        readout, the accuracy, or ``fitness(view, X, y) -> float`` for any other objective
        (need not be differentiable). ``view`` offers ``predict``, ``predict_proba``,
        ``decision_function``, ``score``, ``spike_count`` (spikes per sample), ``firing_rate``,
        ``active_fraction`` (architecture genes switched on) and ``classes_`` for that individual;
        on the minibatch ``X`` they read the population's batched forward pass. A non-finite
        value (NaN, inf) ranks that individual last, with a ``RuntimeWarning``; when every
        individual of a generation gets one, ``fit`` raises a ``DivergedError`` (a
        ``FloatingPointError``, as for the gradient estimators) and the estimator
        keeps the best individual found before (``warm_start`` continues from there).
    batch_size : int or 'auto', default='auto'
        Samples per generation, drawn without replacement and shared by the population;
        ``min(256, n_samples)`` for 'auto'.
    max_iter : int, default=300
        Maximum number of generations.
    n_iter_no_change : int, default=50
        Stop when ``best_fitness_`` has not improved by ``tol`` for more than this many generations.
    tol : float, default=1e-4
    architecture : {None, 'connectivity', 'width', 'both'}, default=None
        Neuroevolution of the architecture together with the weights: one gene per connection
        (the connection exists where it is > 0) and/or one gene per hidden unit (the unit exists
        where it is > 0). Genes start at ``sigma``: everything on, one standard deviation away
        from switching off.
    architecture_penalty : float, default=0.0
        Subtracted from the built-in fitness times the fraction of architecture genes that are
        on (a pressure towards sparse, narrow networks).
    n_steps, neuron, tau_mem, tau_syn, threshold, reset, encoder, readout, input_scaling :
        The network, as in :class:`~sklearn_snn.SurrogateSNNClassifier` (feed-forward only).
    warm_start : bool, default=False
        Continue the search (strategy state included) from the previous fit.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
    torch_num_threads : int or None, default=None
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the minibatches and every draw of the strategy.
    verbose : int, default=0
        1 prints one line per generation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    module_ : SNN
        The best individual found (its architecture applied: removed connections and units
        have zero weights).
    strategy_ : str
        The strategy that ran ('cma-es' resolved to 'full-cma-es' or 'sep-cma-es').
    n_genes_ : int
        Length of a genome (weights and biases, plus architecture genes).
    n_iter_ : int
        Generations run.
    fitness_curve_ : list of float
        Per generation, the fitness of the strategy's incumbent (the distribution mean for the
        evolution strategies, the fittest individual for the GA) on that generation's minibatch.
    population_fitness_curve_ : list of float
        Per generation, the mean fitness of the population.
    best_fitness_ : float
        The highest value of ``fitness_curve_``; ``module_`` holds that incumbent.
    best_genome_ : Tensor of shape ``(n_genes_,)``
        Its genome (float64, CPU): weights and biases in ``module_.parameters()`` order, then
        the architecture genes.
    architecture_ : dict or None
        With ``architecture``: active ``connections`` per layer and/or active ``widths`` per
        hidden layer of ``module_``.
    n_features_in_, feature_names_in_, input_ndim_, n_steps_in_ :
        As in :class:`~sklearn_snn.SurrogateSNNClassifier`.

    See Also
    --------
    sklearn_snn.SurrogateSNNClassifier : the same network trained by surrogate gradients.

    References
    ----------
    Salimans, Ho, Chen, Sidor & Sutskever (2017). Evolution strategies as a scalable alternative
    to reinforcement learning. Hansen (2016). The CMA evolution strategy: a tutorial.
    Ros & Hansen (2008). A simple modification in CMA-ES achieving linear time and space
    complexity. Schaul, Glasmachers & Schmidhuber (2011). High dimensions and heavy tails for
    natural evolution strategies.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_snn.evolution import EvolvedSNN
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = EvolvedSNN((16,), max_iter=60, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9)
    True

    A non-differentiable objective: accuracy minus a penalty on the number of spikes.

    >>> def sparse_accuracy(view, X, y):
    ...     return view.score(X, y) - 0.01 * view.spike_count(X).mean()
    >>> sparse = EvolvedSNN((16,), fitness=sparse_accuracy, max_iter=60, random_state=0).fit(X, y)
    >>> spikes = lambda est: sum(s.sum() for s in est.simulate(X)["spikes"]) / len(X)
    >>> bool(spikes(sparse) < spikes(clf))
    True
    """

    _parameter_constraints = {
        **{k: NETWORK_CONSTRAINTS[k] for k in _NETWORK_PARAMS},
        "strategy": [StrOptions(set(STRATEGIES))],
        "population_size": [IntervalNotBool(Integral, 2, None, closed="left")],
        "sigma": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "strategy_params": [dict, None],
        "fitness": [StrOptions({"cross_entropy", "accuracy"}), callable],
        "batch_size": [StrOptions({"auto"}), IntervalNotBool(Integral, 1, None, closed="left")],
        "max_iter": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_iter_no_change": [IntervalNotBool(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "architecture": [StrOptions(set(ARCHITECTURE_MODES)), None],
        "architecture_penalty": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
    }

    _rebuild_module = GradientSNNMixin._rebuild_module  # the same network builder, for sklearn_snn.load
    _fitted_attributes = {
        "best_genome_": "tensor", "strategy_": "str", "n_genes_": "int", "n_iter_": "int",
        "fitness_curve_": "floats", "population_fitness_curve_": "floats", "best_fitness_": "float",
        "architecture_": "records?",
    }

    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        ``hidden_layer_sizes`` (16, 32, 64), ``population_size`` (16 to 128, log), ``sigma`` (0.01
        to 0.3, log), ``learning_rate_init`` (1e-3 to 5e-2, log; Adam step of the default
        'openai-es'), ``tau_mem`` (2 to 40 steps, log), ``threshold`` (0.5 to 2), ``n_steps`` (5 to
        20) and ``encoder`` (current, rate, latency). ``max_iter`` and ``batch_size`` set the cost
        of a trial and are left to the user; ``strategy`` is a choice of algorithm, not a
        hyperparameter.

        Returns
        -------
        space : dict of str to optuna.distributions.BaseDistribution
            ``hidden_layer_sizes`` choices are strings such as ``"128x64"``, which
            :class:`~sklearn_snn.model_selection.OptunaSearchCV` decodes to tuples.
        """
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        return {
            "hidden_layer_sizes": CategoricalDistribution(["16", "32", "64"]),
            "population_size": IntDistribution(16, 128, log=True),
            "sigma": FloatDistribution(0.01, 0.3, log=True),
            "learning_rate_init": FloatDistribution(1e-3, 5e-2, log=True),
            "tau_mem": FloatDistribution(2.0, 40.0, log=True),
            "threshold": FloatDistribution(0.5, 2.0),
            "n_steps": IntDistribution(5, 20, step=5),
            "encoder": CategoricalDistribution(["current", "rate", "latency"]),
        }

    def __init__(self, hidden_layer_sizes=(64,), *, strategy="openai-es", population_size=64, sigma=0.05,
                 learning_rate_init=0.01, alpha=0.0, strategy_params=None, fitness="cross_entropy",
                 batch_size="auto", max_iter=300, n_iter_no_change=50, tol=1e-4, architecture=None,
                 architecture_penalty=0.0, n_steps=10, neuron="lif", tau_mem=10.0, tau_syn=5.0, threshold=1.0,
                 reset="subtract", encoder="current", readout="membrane_max", input_scaling="auto",
                 warm_start=False, device="auto", torch_num_threads=None, random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.strategy = strategy
        self.population_size = population_size
        self.sigma = sigma
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.strategy_params = strategy_params
        self.fitness = fitness
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.architecture = architecture
        self.architecture_penalty = architecture_penalty
        self.n_steps = n_steps
        self.neuron = neuron
        self.tau_mem = tau_mem
        self.tau_syn = tau_syn
        self.threshold = threshold
        self.reset = reset
        self.encoder = encoder
        self.readout = readout
        self.input_scaling = input_scaling
        self.warm_start = warm_start
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    # --- building blocks ----------------------------------------------------------------------
    def _build_module(self, n_in, n_out, generator):
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes)
        return SNN(n_in, hidden, n_out, self._neuron_spec(), readout=self.readout, generator=generator)

    def _make_strategy(self, genome):
        kw = {}
        if self.strategy == "openai-es":
            kw = dict(lr=self.learning_rate_init, weight_decay=self.alpha)
        elif self.strategy == "ga":
            kw = dict(self.strategy_params or {})
            unknown = set(kw) - set(_GA_PARAMS)
            if unknown:
                raise ValueError(f"Unknown strategy_params {sorted(unknown)} for strategy='ga'; use "
                                 f"{', '.join(_GA_PARAMS)}.")
        elif self.strategy_params:
            raise ValueError(f"strategy_params apply to strategy='ga' only, got {self.strategy_params} for "
                             f"strategy={self.strategy!r}.")
        return make_strategy(self.strategy, genome.cpu(), self.sigma, self.population_size, **kw)

    def _population(self):
        return PopulationSNN(self.module_, self.architecture)

    def _population_outputs(self, pop, genomes, X):
        """Numpy logits (P, n, C), spike counts per sample (P, n) and the number of neuron-steps
        per sample, for raw (validated, unscaled) X, batched over the population."""
        device = self._device()
        xb = self._encode(self._to_tensor(self._scale(X), device=device), train=False)
        logits, counts = pop.evaluate(genomes.to(device=device, dtype=torch.float32), xb, spike_counts=True)
        return (logits.double().cpu().numpy(), counts.double().cpu().numpy(),
                xb.shape[0] * pop.n_spiking_units)  # neuron-steps per sample

    def _fitness(self, pop, genomes, xb, yb, X_raw, y_raw):
        """(P,) float64 CPU fitness of every genome on one minibatch."""
        if callable(self.fitness):
            logits, counts, n_units = self._population_outputs(pop, genomes, X_raw)
            cache = {"X": X_raw, "logits": logits, "counts": counts, "n_units": n_units}
            vals = [float(self.fitness(_IndividualView(self, pop, genomes[i], i, cache), X_raw, y_raw))
                    for i in range(genomes.shape[0])]
            return torch.tensor(vals, dtype=torch.float64)
        with torch.no_grad():
            logits, _ = pop.evaluate(genomes.to(device=xb.device, dtype=xb.dtype), xb)
            if self.fitness == "accuracy":
                f = (logits.argmax(2) == yb).to(torch.float64).mean(1)
            else:
                logp = torch.log_softmax(logits.to(torch.float64), dim=2)
                f = logp.gather(2, yb.view(1, -1, 1).expand(logits.shape[0], -1, 1)).mean((1, 2))
            f = f.cpu()
        if self.architecture_penalty and self.architecture is not None:
            f = f - self.architecture_penalty * pop.active_fraction(genomes.cpu()).to(torch.float64)
        return f

    # --- fit ----------------------------------------------------------------------------------
    def _fit(self, X, y, *, incremental, classes=None, epoch_callback=None):
        first = not (incremental or self.warm_start) or not hasattr(self, "module_")
        X, y = validate_snn_input(self, X, y, reset=first)
        targets, _ = self._prepare_targets(y, reset=first, classes=classes)  # SNNClassifierMixin
        device = self._device()
        if first:
            self._generator = make_generator(self.random_state)
            self._fit_scaler(X)
            self.module_ = self._build_module(self._n_encoded(self.n_features_in_), len(self.classes_),
                                              self._generator).to(device)
            pop = self._population()
            self.best_genome_ = pop.initial_genome(arch_init=self.sigma).detach().to("cpu", torch.float64)
            self._strategy = self._make_strategy(self.best_genome_)
            self.strategy_ = self._strategy.name
            self.n_genes_ = pop.n_genes
            self.n_iter_, self.fitness_curve_, self.population_fitness_curve_ = 0, [], []
            self.best_fitness_ = -np.inf
            self._no_improve = 0
        else:
            pop = self._population()
            if not hasattr(self, "_generator"):  # unpickled: the generator is not persisted
                self._generator = make_generator(self.random_state)
            if not hasattr(self, "_strategy"):   # unpickled or loaded: the strategy starts afresh
                self._strategy = self._make_strategy(self.best_genome_)
                self._no_improve = 0
        if not incremental:
            self._no_improve = 0
        gen = self._generator
        n = X.shape[0]
        bs = min(256, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        Xt = self._to_tensor(self._scale(X), device=device)
        yt = targets.to(device)
        n_gen = 1 if incremental else self.max_iter
        warned = [False]

        def generation():
            idx = torch.randperm(n, generator=gen)[:bs] if bs < n else torch.arange(n)
            idx_np = idx.numpy()
            xb = self._encode(Xt[idx.to(device)], train=True, generator=gen)
            yb = yt[idx.to(device)]
            strat = self._strategy
            cand = strat.ask(gen)
            f = self._fitness(pop, cand, xb, yb, X[idx_np], y[idx_np])
            finite = torch.isfinite(f)
            if not finite.all():
                n_bad = self._non_finite(f, finite, strat, pop)   # raises when none is finite
                if not warned[0]:
                    warned[0] = True
                    warnings.warn(
                        f"EvolvedSNN: {n_bad} of {f.numel()} individuals got a non-finite fitness (NaN or "
                        f"inf) in generation {self.n_iter_ + 1}; they rank last. If this persists, "
                        f"{self._non_finite_hint()}", RuntimeWarning)
            strat.tell(f)
            inc = strat.incumbent
            f_inc = strat.incumbent_fitness          # known for an evaluated individual (GA)
            if f_inc is None:
                f_inc = float(self._fitness(pop, inc.unsqueeze(0), xb, yb, X[idx_np], y[idx_np])[0])
            self.n_iter_ += 1
            self.fitness_curve_.append(f_inc)
            self.population_fitness_curve_.append(float(f[finite].mean()))
            if f_inc > self.best_fitness_:
                self.best_fitness_ = f_inc
                self.best_genome_ = inc.detach().clone()
            return {"fitness": f_inc, "best_fitness": self.best_fitness_,
                    "population_fitness": self.population_fitness_curve_[-1], "sigma": float(strat.sigma)}

        def describe(n_iter, info):
            return (f"Generation {n_iter}, fitness = {info['fitness']:.6f}, best = {info['best_fitness']:.6f}, "
                    f"population = {info['population_fitness']:.6f}, sigma = {info['sigma']:.4g} "
                    f"({info['time']:.2f}s)")

        def on_end(state):
            self._no_improve = state.no_improve
            pop.load_into(self.module_, self.best_genome_)
            self.architecture_ = pop.architecture_summary(self.best_genome_) if self.architecture else None

        # the stopping rule watches the incumbent's fitness (MLP semantics on tol / n_iter_no_change)
        stopping = None if incremental else Stopping("fitness", higher=True, tol=self.tol,
                                                     patience=self.n_iter_no_change)
        state = LoopState(n_iter=self.n_iter_, no_improve=self._no_improve,
                          best=None if not np.isfinite(self.best_fitness_) else self.best_fitness_)
        with self._threads():
            run_training(self, Method(generation, stopping=stopping, describe=describe, on_end=on_end), n_gen, state,
                         epoch_callback=epoch_callback, incremental=incremental, what="Evolution",
                         keeps="the best individual found so far",
                         converge_message=f"Evolution: maximum generations ({self.max_iter}) reached and the "
                                          "fitness has not converged yet.")
        return self

    def _non_finite_hint(self):
        if callable(self.fitness):
            return "check that the fitness callable returns a finite float for every individual"
        return ("lower sigma (or learning_rate_init): the networks' outputs overflow; also check the "
                "input scaling")

    def _non_finite(self, f, finite, strat, pop):
        """Number of non-finite fitness values; when none is finite, drop the generation and raise
        (the estimator keeps its best individual so far and the strategy its state before it)."""
        n_bad = int((~finite).sum())
        if finite.any():
            return n_bad
        strat._pending = None                                 # this generation is not told
        pop.load_into(self.module_, self.best_genome_)
        example = f[0].item()
        from ._core.training import DivergedError

        raise DivergedError(
            f"EvolvedSNN: all {f.numel()} individuals of generation {self.n_iter_ + 1} got a non-finite fitness "
            f"(e.g. {example!r}), so there is nothing to select. Please {self._non_finite_hint()}. The estimator "
            f"keeps its best individual so far ({self.n_iter_} generation(s) run, best_fitness_="
            f"{self.best_fitness_!r}); with warm_start=True a later fit continues from there.")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, epoch_callback=None):
        """Evolve the network on X, y for up to ``max_iter`` generations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        y : array-like of shape (n_samples,)
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, generation, info) -> bool`` after every generation; truthy
            stops (``info``: ``fitness`` of the incumbent, ``best_fitness``, ``population_fitness``,
            ``sigma``, ``time``).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False, epoch_callback=epoch_callback)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """Run exactly one generation on X, y; ``classes`` is required on the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, incremental=True, classes=classes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags
