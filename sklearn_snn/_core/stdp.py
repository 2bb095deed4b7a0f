"""Unsupervised STDP learning in a winner-take-all layer (Diehl & Cook 2015 style), torch only.

One excitatory layer of ``N`` LIF neurons receives input spike trains ``x`` of shape (T, B, F)
through non-negative weights ``W`` (N, F). Every step ``t`` of the time loop (the only loop):

1. **Neurons.** Input current ``I_t = x_t W^T - k_inh (sum_k y_{t-1,k} - y_{t-1})`` (the last
   term only for ``inhibition='soft'``: each spike inhibits the *other* neurons at the next
   step), then :func:`~sklearn_snn._core.neurons.neuron_step` with threshold
   ``vartheta + theta_i`` (``theta`` the adaptive part, see homeostasis). With
   ``inhibition='hard'`` at most one neuron spikes per step and sample -- the one furthest above
   its threshold -- and every membrane of that sample is then reset to 0.
2. **Plasticity** (only when learning), trace-based (Morrison et al. 2008; Pfister & Gerstner
   2006). Presynaptic traces ``r1`` (time constant ``tau_plus``), ``r2`` (``tau_x``);
   postsynaptic ``o1`` (``tau_minus``), ``o2`` (``tau_y``). Writing ``r^-`` for a trace decayed
   to step ``t`` but *before* the spikes of step ``t`` are added::

       LTP_ij += y_{t,i} r1^-_j (A2+ + A3+ o2^-_i)        (at each post spike)
       LTD_ij += x_{t,j} o1^-_i (A2- + A3- r2^-_j)        (at each pre spike)

   then every trace ``z`` with time constant ``tau`` and own spikes ``s`` becomes
   ``z = exp(-1/tau) z + s`` (``trace='all-to-all'``) or ``z = s ? 1 : exp(-1/tau) z``
   (``trace='nearest'``). So a pre spike ``d > 0`` steps before a post spike potentiates by
   ``A2+ exp(-d / tau_plus)``, a post spike ``d > 0`` steps before a pre spike depresses by
   ``A2- exp(-d / tau_minus)``; simultaneous spikes do not pair. ``rule='pair'`` is the above
   with ``A3+ = A3- = 0``; ``rule='triplet'`` is the minimal triplet model of Pfister & Gerstner.
3. **Weight update** once per minibatch, after the time loop (weights are constant while a
   batch is presented). ``LTP`` and ``LTD`` are summed over the samples and each neuron's row is
   divided by the number of samples in which that neuron fired (the mean over the samples that
   involved it; a silent neuron gets no update: with no post spike both terms are 0). Then
   ``W += f+(W) LTP - f-(W) LTD`` with ``f+ = f- = 1`` (``weight_dependence='additive'``, hard
   bounds) or ``f+ = (w_max - W)``, ``f- = (W - w_min)`` (``'multiplicative'``, soft bounds;
   van Rossum et al. 2000). Optionally every row is rescaled to a fixed sum (``weight_norm``
   times ``F``; Diehl & Cook's normalisation), and finally ``W`` is clipped to
   ``[w_min, w_max]``, so the bounds always hold.
4. **Homeostasis** once per minibatch: the firing rate ``r_i`` (spikes per step, mean over the
   batch) of each neuron moves its adaptive threshold by the relative distance to a target band
   ``(low, high)``: ``theta_i += eta_h vartheta (relu(r_i - high) / high - relu(low - r_i) / low)``
   -- Diehl & Cook's adaptive threshold in batch form: a neuron that fires too often becomes
   harder to excite, a silent one easier (at most ``eta_h vartheta`` per batch); ``theta`` is
   kept above ``-0.9 vartheta``. ``low = 0`` switches the lower bound off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .neurons import NeuronSpec, init_state, neuron_step

RULES = ("pair", "triplet")
TRACES = ("all-to-all", "nearest")
WEIGHT_DEPENDENCE = ("additive", "multiplicative")
INHIBITION = ("hard", "soft")


@dataclass(frozen=True)
class STDPRule:
    """Amplitudes, time constants (in steps) and variant of the STDP rule (module docstring).

    Examples
    --------
    >>> STDPRule(rule="triplet", a3_plus=6.5e-3).uses_triplet
    True
    """

    rule: str = "pair"
    trace: str = "all-to-all"
    weight_dependence: str = "additive"
    a_plus: float = 1e-2
    a_minus: float = 1e-2
    tau_plus: float = 17.0
    tau_minus: float = 34.0
    a3_plus: float = 6.5e-3
    a3_minus: float = 0.0
    tau_x: float = 100.0
    tau_y: float = 125.0
    w_min: float = 0.0
    w_max: float = 1.0

    def __post_init__(self):
        for name, value, options in (("rule", self.rule, RULES), ("trace", self.trace, TRACES),
                                     ("weight_dependence", self.weight_dependence, WEIGHT_DEPENDENCE)):
            if value not in options:
                raise ValueError(f"{name} must be one of {options}, got {value!r}.")
        if not self.w_max > self.w_min:
            raise ValueError(f"w_max must be > w_min, got w_min={self.w_min}, w_max={self.w_max}.")

    @property
    def uses_triplet(self) -> bool:
        return self.rule == "triplet"

    def amplitudes(self):
        """``(A2+, A2-, A3+, A3-)``; the triplet terms are 0 for the pair rule."""
        if self.uses_triplet:
            return self.a_plus, self.a_minus, self.a3_plus, self.a3_minus
        return self.a_plus, self.a_minus, 0.0, 0.0


@dataclass(frozen=True)
class WTASpec:
    """The excitatory layer: neuron model, lateral inhibition and homeostasis."""

    neuron: NeuronSpec = NeuronSpec(model="lif", beta=math.exp(-1 / 20.0), threshold=1.0, reset="zero")
    inhibition: str = "soft"
    inhibition_strength: float = 1.0
    target_rate: tuple = (0.01, 0.1)
    homeostasis_rate: float = 0.5

    def __post_init__(self):
        if self.inhibition not in INHIBITION:
            raise ValueError(f"inhibition must be one of {INHIBITION}, got {self.inhibition!r}.")


def _decay(tau):
    return math.exp(-1.0 / tau)


def _trace_step(z, s, decay, mode):
    """Decay a trace by one step and add the spikes of this step (all-to-all) or reset to 1."""
    if mode == "nearest":
        return torch.where(s > 0, torch.ones_like(z), z * decay)
    return z * decay + s


def init_traces(B, F, N, device=None, dtype=torch.float32):
    """Zero traces ``(r1, r2, o1, o2)``: presynaptic (B, F), postsynaptic (B, N)."""
    zf = torch.zeros((B, F), device=device, dtype=dtype)
    zn = torch.zeros((B, N), device=device, dtype=dtype)
    return zf, zf.clone(), zn, zn.clone()


def plasticity_step(rule: STDPRule, x, y, traces):
    """One step of trace-based STDP over a batch.

    Parameters
    ----------
    rule : STDPRule
    x : Tensor (B, F)
        Presynaptic spikes of this step.
    y : Tensor (B, N)
        Postsynaptic spikes of this step.
    traces : tuple
        ``(r1, r2, o1, o2)`` after the previous step (see :func:`init_traces`).

    Returns
    -------
    ltp, ltd : Tensor (N, F)
        Potentiation and depression of this step, summed over the batch (both >= 0).
    traces : tuple
        The traces after this step.

    Examples
    --------
    >>> import torch
    >>> rule = STDPRule(a_plus=1.0, tau_plus=10.0)
    >>> tr = init_traces(1, 1, 1)
    >>> pre, post, none = torch.ones(1, 1), torch.ones(1, 1), torch.zeros(1, 1)
    >>> _, _, tr = plasticity_step(rule, pre, none, tr)      # pre spike at t = 0
    >>> _, _, tr = plasticity_step(rule, none, none, tr)
    >>> ltp, ltd, tr = plasticity_step(rule, none, post, tr)  # post spike at t = 2
    >>> round(float(ltp), 4), round(2.718281828 ** -0.2, 4), float(ltd)
    (0.8187, 0.8187, 0.0)
    """
    a2p, a2m, a3p, a3m = rule.amplitudes()
    r1, r2, o1, o2 = traces
    dp, dm, dx, dy = (_decay(rule.tau_plus), _decay(rule.tau_minus), _decay(rule.tau_x), _decay(rule.tau_y))
    r1m, o1m = r1 * dp, o1 * dm
    post_gain = y * a2p if not a3p else y * (a2p + a3p * (o2 * dy))
    pre_gain = x * a2m if not a3m else x * (a2m + a3m * (r2 * dx))
    ltp = post_gain.t() @ r1m
    ltd = o1m.t() @ pre_gain
    mode = rule.trace
    r1 = _trace_step(r1, x, dp, mode)
    o1 = _trace_step(o1, y, dm, mode)
    if rule.uses_triplet:
        r2 = _trace_step(r2, x, dx, mode)
        o2 = _trace_step(o2, y, dy, mode)
    return ltp, ltd, (r1, r2, o1, o2)


def _hard_wta(z):
    """At most one spike per row: the neuron furthest above threshold (first one on ties)."""
    best = z.argmax(-1, keepdim=True)
    fire = z.gather(-1, best) >= 0
    return torch.zeros_like(z).scatter_(-1, best, fire.to(z.dtype))


def run_wta(x, W, theta, spec: WTASpec, rule: STDPRule | None = None):
    """Present input spike trains ``x`` (T, B, F) to the layer; optionally collect STDP.

    Returns
    -------
    counts : Tensor (B, N)
        Spike counts of every neuron for every sample.
    ltp, ltd : Tensor (N, F) or None
        Summed over time and batch (only with ``rule``).

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(5, 2, 3)
    >>> W = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.1, 0.1]])
    >>> counts, _, _ = run_wta(x, W, torch.zeros(2), WTASpec(inhibition="hard"))
    >>> counts.tolist()
    [[5.0, 0.0], [5.0, 0.0]]
    """
    B, N = x.shape[1], W.shape[0]
    counts = torch.zeros((B, N), device=x.device, dtype=x.dtype)
    learn = rule is not None
    if learn:
        traces = init_traces(B, x.shape[2], N, device=x.device, dtype=x.dtype)
        ltp_sum = torch.zeros((N, x.shape[2]), device=x.device, dtype=x.dtype)
        ltd_sum = torch.zeros_like(ltp_sum)
    for t, y, _ in _wta_steps(x, W, theta, spec):
        counts = counts + y
        if learn:
            ltp, ltd, traces = plasticity_step(rule, x[t], y, traces)
            ltp_sum += ltp
            ltd_sum += ltd
    if learn:
        return counts, ltp_sum, ltd_sum
    return counts, None, None


def _wta_steps(x, W, theta, spec: WTASpec):
    """The layer's time loop, shared by :func:`run_wta` and :func:`record_wta`: yields
    ``(t, spikes, membrane before reset)`` of every step."""
    B, N = x.shape[1], W.shape[0]
    nspec = spec.neuron
    hard = spec.inhibition == "hard"
    state = init_state(nspec, (B, N), device=x.device, dtype=x.dtype)
    thr = nspec.threshold + theta
    spike_fn = _hard_wta if hard else (lambda z: (z >= 0).to(z.dtype))
    y = torch.zeros((B, N), device=x.device, dtype=x.dtype)
    Wt = W.t()
    k = spec.inhibition_strength
    for t in range(x.shape[0]):
        cur = x[t] @ Wt
        if not hard and k:
            cur = cur - k * (y.sum(-1, keepdim=True) - y)
        y, u, state = neuron_step(nspec, cur, state, spike_fn, threshold=thr)
        if hard:
            # lateral inhibition: a winner resets every membrane of its sample
            v, syn, a = state
            state = (v * (1.0 - y.amax(-1, keepdim=True)), syn, a)
        yield t, y, u


@torch.no_grad()
def record_wta(x, W, theta, spec: WTASpec):
    """Present ``x`` (T, B, F) to the layer without learning, recording every step.

    Returns
    -------
    spikes, membrane : Tensor (T, B, N)
        Spikes and membrane potentials before reset (and before a winner's inhibition) of
        every step; ``spikes.sum(0)`` equals the counts of :func:`run_wta`.

    Examples
    --------
    >>> import torch
    >>> W = torch.tensor([[0.5, 0.5, 0.5], [0.1, 0.1, 0.1]])
    >>> s, u = record_wta(torch.ones(5, 2, 3), W, torch.zeros(2), WTASpec(inhibition="hard"))
    >>> s.sum(0).tolist()
    [[5.0, 0.0], [5.0, 0.0]]
    """
    spikes = x.new_zeros((x.shape[0], x.shape[1], W.shape[0]))
    mem = torch.zeros_like(spikes)
    for t, y, u in _wta_steps(x, W, theta, spec):
        spikes[t], mem[t] = y, u
    return spikes, mem


def apply_stdp(W, ltp, ltd, n_active, rule: STDPRule, weight_norm=None):
    """The minibatch weight update (step 3 of the module docstring); returns the new ``W``.

    Examples
    --------
    >>> import torch
    >>> W = torch.full((1, 2), 0.5)
    >>> apply_stdp(W, torch.tensor([[0.2, 0.0]]), torch.tensor([[0.0, 0.1]]), torch.tensor([1.0]),
    ...            STDPRule(weight_dependence="multiplicative")).tolist()
    [[0.6000000238418579, 0.44999998807907104]]
    """
    scale = n_active.clamp(min=1.0).unsqueeze(1)
    ltp, ltd = ltp / scale, ltd / scale
    if rule.weight_dependence == "multiplicative":
        dW = (rule.w_max - W) * ltp - (W - rule.w_min) * ltd
    else:
        dW = ltp - ltd
    W = W + dW
    if weight_norm is not None:
        W = normalize_rows(W.clamp(rule.w_min, rule.w_max), weight_norm * W.shape[1])
    return W.clamp(rule.w_min, rule.w_max)


def normalize_rows(W, total):
    """Rescale each row to sum to ``total`` (rows that sum to 0 are left alone)."""
    s = W.sum(1, keepdim=True)
    return torch.where(s > 0, W * (total / s.clamp(min=1e-12)), W)


def update_theta(theta, counts, n_steps, spec: WTASpec, threshold):
    """Homeostasis (step 4 of the module docstring): returns the new adaptive thresholds."""
    if not spec.homeostasis_rate:
        return theta
    low, high = spec.target_rate
    rate = counts.mean(0) / n_steps
    err = torch.relu(rate - high) / high - (torch.relu(low - rate) / low if low > 0 else 0.0)
    theta = theta + (spec.homeostasis_rate * threshold) * err
    return theta.clamp(min=-0.9 * threshold)


def train_batch(x, W, theta, spec: WTASpec, rule: STDPRule, weight_norm=None):
    """Present one minibatch (T, B, F), then update the weights and thresholds once.

    Returns ``(W, theta, counts)``.
    """
    counts, ltp, ltd = run_wta(x, W, theta, spec, rule)
    n_active = (counts > 0).sum(0).to(W.dtype)
    W = apply_stdp(W, ltp, ltd, n_active, rule, weight_norm)
    theta = update_theta(theta, counts, x.shape[0], spec, spec.neuron.threshold)
    return W, theta, counts


class WTALayer(torch.nn.Module):
    """Holds the learned state (``weight`` (N, F), ``theta`` (N,)) as buffers; ``forward`` runs
    the layer without learning and returns the spike counts (B, N).

    Examples
    --------
    >>> import torch
    >>> layer = WTALayer(3, 2, WTASpec(), generator=torch.Generator().manual_seed(0))
    >>> layer(torch.ones(4, 5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(self, n_in, n_out, spec: WTASpec, w_init=0.3, generator=None, dtype=torch.float32):
        super().__init__()
        self.spec = spec
        self.register_buffer("weight", torch.rand((n_out, n_in), generator=generator, dtype=dtype) * w_init)
        self.register_buffer("theta", torch.zeros(n_out, dtype=dtype))

    def forward(self, x):
        return run_wta(x, self.weight, self.theta, self.spec)[0]
