"""Gradient-free training: evolution strategies, a genetic algorithm and a batched population SNN.

Two halves, both pure torch:

- :class:`PopulationSNN` evaluates a whole population of networks that share one architecture
  (an :class:`~sklearn_snn._core.network.SNN` used as the template) as *one* tensor program.
  Every individual is a row of a ``(P, D)`` parameter matrix; each layer's weights are viewed as a
  ``(P, H, F)`` stack and applied with one batched matmul, and the population is folded into the
  batch dimension of :func:`~sklearn_snn._core.kernels.spiking_scan` (``P * B`` rows), so the only
  loop is the scan's loop over time steps. Optional architecture genes
  (connectivity masks, hidden-unit gates) are extra columns of the same matrix.
- Search strategies with an ask/tell interface that *maximise* a fitness:
  :class:`OpenAIES` (Salimans et al. 2017), :class:`CMAES` (full covariance, Hansen 2016),
  :class:`SepCMAES` (diagonal, Ros & Hansen 2008), :class:`SNES` (Schaul et al. 2011) and
  :class:`GeneticAlgorithm`. They draw all random numbers from a ``torch.Generator`` passed to
  :meth:`ask` (kept on the CPU so that results do not depend on the device) and hold no
  generator themselves, so they pickle.
"""

from __future__ import annotations

import math

import torch

from .encoding import is_static
from .kernels import leaky_integrate, spiking_scan
from .network import SNN, SPIKING_READOUTS

ARCHITECTURE_MODES = ("connectivity", "width", "both")


# --------------------------------------------------------------------------------------------
# population network
# --------------------------------------------------------------------------------------------
class PopulationSNN:
    """A population of networks with the template's architecture, evaluated in one program.

    Genome layout: the template's parameters flattened in ``named_parameters`` order (what
    :func:`torch.nn.utils.parameters_to_vector` gives), followed by the architecture genes:

    - ``architecture='connectivity'``: one gene per weight of every layer; the connection exists
      where the gene is > 0;
    - ``architecture='width'``: one gene per hidden unit; the unit exists where the gene is > 0
      (a removed unit receives no input, so it never spikes and contributes nothing);
    - ``'both'``: both blocks, connectivity first.

    Parameters
    ----------
    template : SNN
        Feed-forward network (no recurrence, no learned neuron parameters, no normalisation).
    architecture : None or {'connectivity', 'width', 'both'}

    Examples
    --------
    >>> import torch
    >>> from sklearn_snn._core.neurons import NeuronSpec
    >>> net = SNN(4, (8,), 3, NeuronSpec(), generator=torch.Generator().manual_seed(0))
    >>> pop = PopulationSNN(net)
    >>> genomes = pop.initial_genome().repeat(5, 1)       # 5 identical individuals
    >>> logits, spikes = pop.forward(genomes, torch.rand(10, 2, 4))
    >>> logits.shape, spikes[0].shape
    (torch.Size([5, 2, 3]), torch.Size([10, 5, 2, 8]))
    """

    def __init__(self, template: SNN, architecture=None):
        if architecture is not None and architecture not in ARCHITECTURE_MODES:
            raise ValueError(f"architecture must be None or one of {ARCHITECTURE_MODES}, got {architecture!r}.")
        for layer in template.hidden:
            if layer.w_rec is not None or layer.norm is not None or layer.learn_tau or layer.learn_threshold:
                raise ValueError("PopulationSNN supports feed-forward layers without normalisation or learned "
                                 "neuron parameters.")
        self.template = template
        self.architecture = architecture
        self.layers = template.layers
        self.slices = []  # per layer: (weight slice, bias slice, (out, in))
        offset = 0
        names = dict(template.named_parameters())
        order = list(names)
        expected = []
        for i, layer in enumerate(self.layers):
            prefix = f"hidden.{i}." if i < len(template.hidden) else "out."
            expected += [prefix + "weight", prefix + "bias"]
            n_out, n_in = layer.weight.shape
            w = slice(offset, offset + n_out * n_in)
            offset += n_out * n_in
            b = slice(offset, offset + n_out)
            offset += n_out
            self.slices.append((w, b, (n_out, n_in)))
        if order != expected:  # the genome follows parameters_to_vector's order
            raise ValueError(f"Unexpected template parameters {order}; PopulationSNN needs {expected}.")
        self.n_weights = offset
        self.mask_slices, self.gate_slices = [], []
        if architecture in ("connectivity", "both"):
            for _, _, (n_out, n_in) in self.slices:
                self.mask_slices.append(slice(offset, offset + n_out * n_in))
                offset += n_out * n_in
        if architecture in ("width", "both"):
            for _, _, (n_out, _) in self.slices[:-1]:
                self.gate_slices.append(slice(offset, offset + n_out))
                offset += n_out
        self.n_genes = offset

    # --- genome <-> template ---------------------------------------------------------------
    def initial_genome(self, arch_init=1.0):
        """The template's parameters, then every architecture gene at ``arch_init`` (all on)."""
        w = torch.nn.utils.parameters_to_vector(self.template.parameters()).detach()
        extra = torch.full((self.n_genes - self.n_weights,), float(arch_init), dtype=w.dtype, device=w.device)
        return torch.cat([w, extra])

    def effective_weights(self, genomes):
        """Weights with the architecture applied (masked connections / removed units set to 0).

        ``genomes`` (P, n_genes) or (n_genes,) -> (P, n_weights) or (n_weights,).
        """
        single = genomes.dim() == 1
        g = genomes.unsqueeze(0) if single else genomes
        w = g[:, :self.n_weights].clone()
        for k, (ws, bs, _) in enumerate(self.slices):
            if self.mask_slices:
                w[:, ws] *= (g[:, self.mask_slices[k]] > 0).to(w.dtype)
            if self.gate_slices and k < len(self.gate_slices):
                gate = (g[:, self.gate_slices[k]] > 0).to(w.dtype)  # (P, H)
                n_out, n_in = self.slices[k][2]
                w[:, ws] = (w[:, ws].view(-1, n_out, n_in) * gate.unsqueeze(-1)).reshape(-1, n_out * n_in)
                w[:, bs] *= gate
        return w[0] if single else w

    def architecture_summary(self, genome):
        """Active connections per layer and active hidden units per layer, for one genome."""
        out = {}
        if self.mask_slices:
            out["connections"] = [int((genome[s] > 0).sum()) for s in self.mask_slices]
        if self.gate_slices:
            out["widths"] = [int((genome[s] > 0).sum()) for s in self.gate_slices]
        return out

    def active_fraction(self, genomes):
        """(P,) fraction of the architecture genes that are on (1 when nothing is evolved)."""
        if self.n_genes == self.n_weights:
            return genomes.new_ones(genomes.shape[0])
        return (genomes[:, self.n_weights:] > 0).to(genomes.dtype).mean(1)

    def load_into(self, module: SNN, genome):
        """Write one genome (architecture applied) into ``module``'s parameters."""
        w = self.effective_weights(genome.detach())
        p = next(module.parameters())
        torch.nn.utils.vector_to_parameters(w.to(device=p.device, dtype=p.dtype), module.parameters())
        return module

    # --- the batched forward ---------------------------------------------------------------
    def forward(self, genomes, x):
        """Evaluate every individual on the same input, as one batched program.

        Parameters
        ----------
        genomes : Tensor (P, n_genes)
        x : Tensor (T, B, F)
            Encoded input, shared by the population (a stride-0 constant current is projected
            once, not once per step).

        Returns
        -------
        logits : Tensor (P, B, n_out)
            The readout of every individual (what ``SNN.forward`` gives for that individual).
        spikes : list of Tensor (T, P, B, H)
            Spikes of every spiking layer (the output layer too for spiking readouts).
        """
        P = genomes.shape[0]
        T, B, F = x.shape
        w_all = self.effective_weights(genomes).to(x.dtype)
        tmpl = self.template
        n_hidden = len(tmpl.hidden)
        spikes = []
        h = x.unsqueeze(1)                                              # (T, 1, B, F): shared input
        static = is_static(x)
        for k, layer in enumerate(self.layers):
            ws, bs, (n_out, n_in) = self.slices[k]
            Wt = w_all[:, ws].view(P, n_out, n_in).transpose(1, 2)     # (P, F, H)
            b = w_all[:, bs].view(P, 1, n_out)
            if static:
                # constant current: one (P, B, F) x (P, F, H) product for all steps, kept stride-0 in time
                cur = torch.baddbmm(b, x[0].expand(P, B, F), Wt).reshape(1, P * B, n_out).expand(T, P * B, n_out)
            else:
                cur = (torch.matmul(h, Wt) + b).reshape(T, P * B, n_out)   # batched matmul over P
            static = False
            if k < n_hidden or tmpl.readout in SPIKING_READOUTS:
                # the population folded into the batch dimension of the fused scan
                s, _, _ = spiking_scan(cur, layer.spec, layer.surrogate, layer.slope)
                out = s
                h = s.view(T, P, B, n_out)
                spikes.append(h)
            else:
                out = leaky_integrate(cur, layer.beta0)
        logits = tmpl.aggregate(out).view(P, B, -1)
        return logits, spikes


# --------------------------------------------------------------------------------------------
# strategies (all maximise)
# --------------------------------------------------------------------------------------------
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
        # a non-finite fitness (diverged individual) ranks last
        return torch.nan_to_num(fitness, nan=-math.inf, posinf=math.inf, neginf=-math.inf)


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

    Costs O(D^2) memory and an O(D^3) eigendecomposition per generation: use it for up to a
    few hundred parameters (see :func:`make_strategy` for the automatic choice).

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
        evals, self.B = torch.linalg.eigh(self.C)
        self.D = evals.clamp(min=1e-20).sqrt()
        self.generation += 1

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
    """Generational GA: tournament selection, uniform crossover, Gaussian mutation, elitism.

    The first population is the mean plus Gaussian noise of scale ``sigma`` (the mean itself is
    individual 0). Each generation keeps the ``n_elite`` fittest unchanged; every other child
    takes each gene from one of two tournament winners (with probability ``crossover_rate`` it
    mixes them gene by gene, otherwise it copies the first) and adds ``N(0, sigma^2)`` to each
    gene with probability ``mutation_rate``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> ga = GeneticAlgorithm(torch.zeros(4), sigma=0.3, popsize=30)
    >>> target = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    >>> for _ in range(150):
    ...     pop = ga.ask(g)
    ...     ga.tell(-((pop - target) ** 2).sum(1))
    >>> bool(((ga.incumbent - target) ** 2).sum() < 0.05)
    True
    """

    name = "ga"

    def __init__(self, mean, sigma=0.1, popsize=64, n_elite=None, tournament_size=3, crossover_rate=0.5,
                 mutation_rate=0.1):
        super().__init__(mean, sigma, max(int(popsize), 2))
        self.n_elite = max(1, self.popsize // 10) if n_elite is None else min(int(n_elite), self.popsize - 1)
        self.tournament_size = int(tournament_size)
        self.crossover_rate = float(crossover_rate)
        self.mutation_rate = float(mutation_rate)
        self.population = None
        self._next = None
        self.best = self.mean.clone()

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
        self._pending = True
        return self.population

    def _rand(self, generator, shape):
        return torch.rand(shape, generator=generator, dtype=torch.float64).to(self.mean.device)

    def tell(self, fitness):
        f = self._check_tell(fitness)
        self._pending = None
        pop = self.population
        order = torch.argsort(f, descending=True, stable=True)
        self.best = pop[order[0]].clone()
        self.mean = self.best
        self._next = (pop, f, order)
        self.generation += 1

    def _breed(self, generator):
        """Build the next population from the last ``tell`` (done by the next :meth:`ask`, which
        holds the generator)."""
        pop, f, order = self._next
        P, n_kids = self.popsize, self.popsize - self.n_elite
        elite = pop[order[: self.n_elite]]
        cand = torch.randint(0, P, (2, n_kids, self.tournament_size), generator=generator).to(pop.device)
        winners = cand.gather(2, f[cand].argmax(2, keepdim=True)).squeeze(2)   # (2, n_kids)
        p1, p2 = pop[winners[0]], pop[winners[1]]
        mix = self._rand(generator, (n_kids, 1)) < self.crossover_rate
        take2 = (self._rand(generator, (n_kids, self.dim)) < 0.5) & mix
        kids = torch.where(take2, p2, p1)
        mutate = self._rand(generator, (n_kids, self.dim)) < self.mutation_rate
        kids = kids + mutate * (self.sigma * _randn(generator, (n_kids, self.dim), pop))
        self.population = torch.cat([elite, kids])
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
