"""Search strategies with an ask/tell interface that *maximise* a fitness.

:class:`OpenAIES` (Salimans et al. 2017), :class:`CMAES` (full covariance, Hansen 2016),
:class:`SepCMAES` (diagonal, Ros & Hansen 2008), :class:`SNES` (Schaul et al. 2011) and
:class:`GeneticAlgorithm`; :func:`make_strategy` builds one by name (:data:`STRATEGIES`). They work
on flat parameter vectors and know nothing of spiking networks (the population they search is
evaluated by :class:`~sklearn_snn._core.evolution.PopulationSNN`). They draw all random numbers
from a ``torch.Generator`` passed to :meth:`Strategy.ask` (kept on the CPU so that results do not
depend on the device) and hold no generator themselves, so they pickle.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CMAES", "FULL_CMA_MAX_DIM", "SNES", "STRATEGIES", "GeneticAlgorithm", "OpenAIES", "SepCMAES",
           "Strategy", "centered_ranks", "make_strategy"]


def centered_ranks(f):
    """Ranks of ``f`` mapped linearly onto [-0.5, 0.5], tied values sharing their mean rank.

    Tie averaging matters for step-like fitness (accuracy): an antithetic pair with equal
    fitness then contributes nothing to the search gradient instead of a random direction.

    Examples
    --------
    >>> centered_ranks(torch.tensor([3.0, -1.0, 10.0])).tolist()
    [0.0, -0.5, 0.5]
    >>> centered_ranks(torch.tensor([1.0, 1.0, 0.0])).tolist()
    [0.25, 0.25, -0.5]
    """
    f = f.reshape(-1)
    n = f.numel()
    less = (f.unsqueeze(0) < f.unsqueeze(1)).sum(1).to(torch.float64)
    equal = (f.unsqueeze(0) == f.unsqueeze(1)).sum(1).to(torch.float64)
    return (less + (equal - 1) / 2) / max(n - 1, 1) - 0.5


def _randn(generator, shape, like):
    """Standard normals from a CPU generator, moved to ``like``'s device (device-independent)."""
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(like.device)


class Strategy:
    """Common interface: ``ask(generator) -> (P, D)``, ``tell(fitness (P,))``, ``incumbent``."""

    name = "strategy"

    def __init__(self, mean, sigma, popsize):
        self.mean = mean.detach().to(torch.float64).clone()
        self.dim = self.mean.numel()
        self.sigma = float(sigma)
        self.popsize = int(popsize)
        self.generation = 0
        self._pending = None
        # the incumbent's fitness on the last told generation when the strategy knows it (an
        # evaluated individual), None when it must be evaluated (a distribution mean)
        self.incumbent_fitness = None

    @property
    def incumbent(self):
        """The strategy's current estimate of the optimum."""
        return self.mean

    def ask(self, generator):  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement ask(generator).")

    def tell(self, fitness):  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement tell(fitness).")

    def _check_tell(self, fitness):
        if self._pending is None:
            raise RuntimeError("tell() needs a preceding ask().")
        fitness = torch.as_tensor(fitness, dtype=torch.float64, device=self.mean.device).reshape(-1)
        if fitness.numel() != self.popsize:
            raise ValueError(f"tell() expects {self.popsize} fitness values, got {fitness.numel()}.")
        # a non-finite fitness (a diverged individual, a broken objective) ranks last
        finite = torch.isfinite(fitness)
        if not finite.any():
            raise ValueError(f"All {fitness.numel()} fitness values are non-finite (NaN or inf); there is nothing "
                             "to select. Check the objective, or lower sigma.")
        return torch.where(finite, fitness, torch.full_like(fitness, -math.inf))


class OpenAIES(Strategy):
    """OpenAI evolution strategy (Salimans et al. 2017).

    Antithetic pairs ``mean +- sigma * eps``; fitness replaced by centred ranks; the search
    gradient ``sum_i r_i eps_i / (P sigma)`` is followed by Adam (ascent) with L2 weight decay.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = OpenAIES(torch.zeros(3), sigma=0.1, popsize=20, lr=0.05)
    >>> target = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    >>> for _ in range(200):
    ...     pop = es.ask(g)
    ...     es.tell(-((pop - target) ** 2).sum(1))
    >>> bool(torch.allclose(es.mean, target, atol=0.1))
    True
    """

    name = "openai-es"

    def __init__(self, mean, sigma=0.05, popsize=64, lr=0.03, weight_decay=0.0, betas=(0.9, 0.999)):
        super().__init__(mean, sigma, popsize + (popsize % 2))
        self.lr, self.weight_decay, self.betas = float(lr), float(weight_decay), betas
        self.m = torch.zeros_like(self.mean)
        self.v = torch.zeros_like(self.mean)
        self.t = 0

    def ask(self, generator):
        eps = _randn(generator, (self.popsize // 2, self.dim), self.mean)
        self._pending = eps
        return torch.cat([self.mean + self.sigma * eps, self.mean - self.sigma * eps])

    def tell(self, fitness):
        f = self._check_tell(fitness)
        eps, self._pending = self._pending, None
        r = centered_ranks(f)
        half = self.popsize // 2
        grad = (r[:half] - r[half:]) @ eps / (self.popsize * self.sigma)
        grad = grad - self.weight_decay * self.mean
        self.t += 1
        b1, b2 = self.betas
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        mhat = self.m / (1 - b1 ** self.t)
        vhat = self.v / (1 - b2 ** self.t)
        self.mean += self.lr * mhat / (vhat.sqrt() + 1e-8)
        self.generation += 1


def _recombination_weights(popsize, mu):
    w = math.log(mu + 0.5) - torch.log(torch.arange(1, mu + 1, dtype=torch.float64))
    w = w / w.sum()
    return w, float(1.0 / (w ** 2).sum())


class _CMABase(Strategy):
    """Shared (mu/mu_w, lambda) parameters of the CMA-ES family (Hansen 2016, table 1)."""

    def __init__(self, mean, sigma, popsize):
        n = mean.numel()
        popsize = popsize or 4 + int(3 * math.log(n))
        super().__init__(mean, sigma, max(popsize, 4))
        lam = self.popsize
        self.mu = lam // 2
        w, self.mueff = _recombination_weights(lam, self.mu)
        self.weights = w.to(self.mean.device)
        mueff = self.mueff
        self.cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        self.cs = (mueff + 2) / (n + mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + mueff)
        self.cmu = min(1 - self.c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
        self.damps = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.pc = torch.zeros_like(self.mean)
        self.ps = torch.zeros_like(self.mean)

    def _sigma_and_hsig(self):
        n = self.dim
        norm_ps = float(self.ps.norm())
        self.sigma *= math.exp(min(1.0, (self.cs / self.damps) * (norm_ps / self.chi_n - 1)))
        denom = math.sqrt(1 - (1 - self.cs) ** (2 * (self.generation + 1)))
        return 1.0 if norm_ps / denom / self.chi_n < 1.4 + 2 / (n + 1) else 0.0

    def _select(self, f, y):
        order = torch.argsort(f, descending=True, stable=True)[: self.mu]
        ysel = y[order]                                   # (mu, n) best first
        return ysel, self.weights @ ysel                  # y_w


class CMAES(_CMABase):
    """Full-covariance CMA-ES (Hansen 2016) with rank-one and rank-mu updates.

    Costs O(D^2) memory and an O(D^3) eigendecomposition of the covariance, refreshed lazily
    every ``eigen_interval = max(1, floor(1 / (10 D (c1 + cmu))))`` generations (Hansen 2016,
    B.2; the covariance itself is updated every generation): use it for up to a few hundred
    parameters (see :func:`make_strategy` for the automatic choice).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = CMAES(torch.ones(4), sigma=0.5)
    >>> for _ in range(150):
    ...     pop = es.ask(g)
    ...     es.tell(-(pop ** 2).sum(1))
    >>> bool(es.mean.abs().max() < 1e-3)
    True
    """

    name = "cma-es"

    def __init__(self, mean, sigma=0.1, popsize=None):
        super().__init__(mean, sigma, popsize)
        n = self.dim
        self.C = torch.eye(n, dtype=torch.float64, device=self.mean.device)
        self.B = torch.eye(n, dtype=torch.float64, device=self.mean.device)
        self.D = torch.ones(n, dtype=torch.float64, device=self.mean.device)
        self.eigen_interval = max(1, int(1.0 / (10.0 * n * (self.c1 + self.cmu))))
        self._eigen_generation = 0

    def ask(self, generator):
        z = _randn(generator, (self.popsize, self.dim), self.mean)
        y = (z * self.D) @ self.B.T                       # y ~ N(0, C)
        self._pending = y
        return self.mean + self.sigma * y

    def tell(self, fitness):
        f = self._check_tell(fitness)
        y, self._pending = self._pending, None
        ysel, yw = self._select(f, y)
        self.mean = self.mean + self.sigma * yw
        c_inv_sqrt_yw = self.B @ ((self.B.T @ yw) / self.D)
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * c_inv_sqrt_yw
        hsig = self._sigma_and_hsig()
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * yw
        rank_mu = (ysel * self.weights[:, None]).T @ ysel
        c1a = self.c1 * (1 - (1 - hsig) * self.cc * (2 - self.cc))
        self.C = ((1 - c1a - self.cmu) * self.C + self.c1 * torch.outer(self.pc, self.pc)
                  + self.cmu * rank_mu)
        self.C = (self.C + self.C.T) / 2
        self.generation += 1
        if self.generation - self._eigen_generation >= self.eigen_interval:
            evals, self.B = torch.linalg.eigh(self.C)
            self.D = evals.clamp(min=1e-20).sqrt()
            self._eigen_generation = self.generation

    @property
    def covariance(self):
        return self.C


class SepCMAES(_CMABase):
    """Separable CMA-ES (Ros & Hansen 2008): diagonal covariance, O(D) per sample.

    The learning rates of the covariance are raised by ``(D + 2) / 3`` as in the paper, so that
    per-coordinate scales adapt in a number of generations linear in D.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = SepCMAES(torch.ones(10), sigma=0.5)
    >>> scales = torch.logspace(0, 2, 10, dtype=torch.float64)
    >>> for _ in range(300):
    ...     pop = es.ask(g)
    ...     es.tell(-((scales * pop) ** 2).sum(1))
    >>> bool(es.mean.abs().max() < 1e-3)
    True
    """

    name = "sep-cma-es"

    def __init__(self, mean, sigma=0.1, popsize=None):
        super().__init__(mean, sigma, popsize)
        n = self.dim
        scale = (n + 2) / 3
        self.c1 = min(1.0, self.c1 * scale)
        self.cmu = min(1 - self.c1, self.cmu * scale)
        self.C = torch.ones(n, dtype=torch.float64, device=self.mean.device)

    def ask(self, generator):
        z = _randn(generator, (self.popsize, self.dim), self.mean)
        y = z * self.C.sqrt()
        self._pending = y
        return self.mean + self.sigma * y

    def tell(self, fitness):
        f = self._check_tell(fitness)
        y, self._pending = self._pending, None
        ysel, yw = self._select(f, y)
        self.mean = self.mean + self.sigma * yw
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * yw / self.C.sqrt()
        hsig = self._sigma_and_hsig()
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * yw
        c1a = self.c1 * (1 - (1 - hsig) * self.cc * (2 - self.cc))
        self.C = ((1 - c1a - self.cmu) * self.C + self.c1 * self.pc ** 2
                  + self.cmu * (self.weights @ ysel ** 2)).clamp(min=1e-20)
        self.generation += 1

    @property
    def covariance(self):
        return torch.diag(self.C)


class SNES(Strategy):
    """Separable natural evolution strategy (Schaul, Glasmachers & Schmidhuber 2011).

    A mean and one standard deviation per coordinate, updated by the natural gradient with
    rank-based utilities; scales linearly with D.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = SNES(torch.ones(5), sigma=0.5)
    >>> for _ in range(300):
    ...     pop = es.ask(g)
    ...     es.tell(-(pop ** 2).sum(1))
    >>> bool(es.mean.abs().max() < 1e-3)
    True
    """

    name = "snes"

    def __init__(self, mean, sigma=0.1, popsize=None, lr_mean=1.0, lr_sigma=None):
        n = mean.numel()
        popsize = popsize or 4 + int(3 * math.log(n))
        super().__init__(mean, sigma, max(popsize, 2))
        self.sigmas = torch.full_like(self.mean, float(sigma))
        self.lr_mean = float(lr_mean)
        self.lr_sigma = float(lr_sigma) if lr_sigma is not None else (3 + math.log(n)) / (5 * math.sqrt(n))
        lam = self.popsize
        u = (math.log(lam / 2 + 1) - torch.log(torch.arange(1, lam + 1, dtype=torch.float64))).clamp(min=0)
        self.utilities = (u / u.sum() - 1.0 / lam).to(self.mean.device)

    def ask(self, generator):
        s = _randn(generator, (self.popsize, self.dim), self.mean)
        self._pending = s
        return self.mean + self.sigmas * s

    def tell(self, fitness):
        f = self._check_tell(fitness)
        s, self._pending = self._pending, None
        order = torch.argsort(f, descending=True, stable=True)
        u = torch.empty_like(self.utilities)
        u[order] = self.utilities
        self.mean = self.mean + self.lr_mean * self.sigmas * (u @ s)
        self.sigmas = self.sigmas * torch.exp(0.5 * self.lr_sigma * (u @ (s ** 2 - 1)))
        self.sigma = float(self.sigmas.mean())
        self.generation += 1

    @property
    def covariance(self):
        return torch.diag(self.sigmas ** 2)


class GeneticAlgorithm(Strategy):
    """Real-coded generational GA: elitism, tournament selection, crossover, self-adaptive
    Gaussian mutation.

    The first population is the mean (individual 0, e.g. the network's initial weights) and
    Gaussian perturbations of it of scale ``sigma``. Each generation keeps the ``n_elite`` fittest
    unchanged and breeds the others:

    - *selection*: each parent is the fittest of ``tournament_size`` individuals drawn at random;
    - *crossover* (with probability ``crossover_rate``, otherwise the child copies its first
      parent): ``'arithmetic'`` (default) averages ``n_parents`` parents (intermediate
      recombination: what the parents share is kept, their independent mutations average out,
      which matters with thousands of genes), ``'blend'`` draws the child on the line through two
      parents (BLX-0.25: ``p1 + u (p2 - p1)``, ``u ~ U(-0.25, 1.25)``), ``'uniform'`` takes each
      gene from one of two parents;
    - *mutation*: every individual carries its own step size; a child's is the geometric mean of
      its parents' times ``exp(tau * N(0, 1))`` (log-normal self-adaptation, Schwefel), and it adds
      ``N(0, step^2)`` to a fraction ``mutation_rate`` of its genes. Selection keeps the step sizes
      that produce fit children, so the steps shrink as the search closes in (``sigma`` reports
      the geometric mean over the best quarter).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> ga = GeneticAlgorithm(torch.zeros(4), sigma=0.3, popsize=30)
    >>> target = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    >>> for _ in range(150):
    ...     pop = ga.ask(g)
    ...     ga.tell(-((pop - target) ** 2).sum(1))
    >>> bool(((ga.incumbent - target) ** 2).sum() < 1e-3)
    True
    """

    name = "ga"
    CROSSOVERS = ("arithmetic", "blend", "uniform")

    def __init__(self, mean, sigma=0.1, popsize=64, n_elite=None, tournament_size=None, crossover="arithmetic",
                 crossover_rate=0.9, n_parents=4, mutation_rate=1.0, tau=None):
        super().__init__(mean, sigma, max(int(popsize), 2))
        P = self.popsize
        if crossover not in self.CROSSOVERS:
            raise ValueError(f"crossover must be one of {self.CROSSOVERS}, got {crossover!r}.")
        self.n_elite = max(1, P // 16) if n_elite is None else min(max(int(n_elite), 0), P - 1)
        self.tournament_size = max(2, P // 8) if tournament_size is None else max(1, int(tournament_size))
        self.crossover = crossover
        self.crossover_rate = float(crossover_rate)
        self.n_parents = max(2, int(n_parents)) if crossover == "arithmetic" else 2
        self.mutation_rate = float(mutation_rate)
        self.tau = 1.0 / math.sqrt(2.0 * math.sqrt(self.dim)) if tau is None else float(tau)
        self.population = None
        self.step_sizes = None
        self._next = None
        self.best = self.mean.clone()
        self.incumbent_fitness = None

    @property
    def incumbent(self):
        return self.best

    def ask(self, generator):
        if self._next is not None:
            self._breed(generator)
        if self.population is None:
            noise = _randn(generator, (self.popsize, self.dim), self.mean)
            noise[0] = 0.0
            self.population = self.mean + self.sigma * noise
            self.step_sizes = torch.full((self.popsize,), self.sigma, dtype=torch.float64, device=self.mean.device)
        self._pending = True
        return self.population

    def _rand(self, generator, shape):
        return torch.rand(shape, generator=generator, dtype=torch.float64).to(self.mean.device)

    def tell(self, fitness):
        f = self._check_tell(fitness)
        self._pending = None
        order = torch.argsort(f, descending=True, stable=True)
        self.best = self.population[order[0]].clone()
        self.incumbent_fitness = float(f[order[0]])
        self.mean = self.best
        top = order[: max(1, self.popsize // 4)]
        self.sigma = float(self.step_sizes[top].log().mean().exp())
        self._next = (f, order)
        self.generation += 1

    def _breed(self, generator):
        """Build the next population from the last ``tell`` (done by the next :meth:`ask`, which
        holds the generator)."""
        f, order = self._next
        pop, steps = self.population, self.step_sizes
        P, n_kids = self.popsize, self.popsize - self.n_elite
        R = self.n_parents
        cand = torch.randint(0, P, (R, n_kids, self.tournament_size), generator=generator).to(pop.device)
        parents = cand.gather(2, f[cand].argmax(2, keepdim=True)).squeeze(2)     # (R, n_kids)
        mix = self._rand(generator, (n_kids,)) < self.crossover_rate
        log_steps = steps.log()
        if self.crossover == "arithmetic":
            kids = pop[parents].mean(0)
            kid_log_step = log_steps[parents].mean(0)
        else:
            p1, p2 = pop[parents[0]], pop[parents[1]]
            if self.crossover == "blend":
                u = self._rand(generator, (n_kids, 1)) * 1.5 - 0.25
                kids = p1 + u * (p2 - p1)
            else:
                kids = torch.where(self._rand(generator, (n_kids, self.dim)) < 0.5, p2, p1)
            kid_log_step = log_steps[parents[:2]].mean(0)
        kids = torch.where(mix[:, None], kids, pop[parents[0]])
        kid_log_step = torch.where(mix, kid_log_step, log_steps[parents[0]])
        kid_steps = torch.exp(kid_log_step + self.tau * _randn(generator, (n_kids,), pop))
        noise = _randn(generator, (n_kids, self.dim), pop)
        if self.mutation_rate < 1.0:
            noise = noise * (self._rand(generator, (n_kids, self.dim)) < self.mutation_rate)
        kids = kids + kid_steps[:, None] * noise
        elite = order[: self.n_elite]
        self.population = torch.cat([pop[elite], kids])
        self.step_sizes = torch.cat([steps[elite], kid_steps])
        self._next = None


STRATEGIES = ("openai-es", "cma-es", "full-cma-es", "sep-cma-es", "snes", "ga")
FULL_CMA_MAX_DIM = 400


def make_strategy(name, mean, sigma, popsize, **kw):
    """Build a strategy by name; ``'cma-es'`` picks full CMA-ES up to ``FULL_CMA_MAX_DIM``
    parameters and separable CMA-ES above.

    Examples
    --------
    >>> type(make_strategy("cma-es", torch.zeros(10), 0.1, None)).__name__
    'CMAES'
    >>> type(make_strategy("cma-es", torch.zeros(1000), 0.1, None)).__name__
    'SepCMAES'
    """
    if name == "openai-es":
        return OpenAIES(mean, sigma, popsize or 64, **kw)
    if name == "cma-es":
        name = "full-cma-es" if mean.numel() <= FULL_CMA_MAX_DIM else "sep-cma-es"
    if name == "full-cma-es":
        return CMAES(mean, sigma, popsize)
    if name == "sep-cma-es":
        return SepCMAES(mean, sigma, popsize)
    if name == "snes":
        return SNES(mean, sigma, popsize)
    if name == "ga":
        return GeneticAlgorithm(mean, sigma, popsize or 64, **kw)
    raise ValueError(f"Unknown strategy {name!r}; use one of {STRATEGIES}.")
