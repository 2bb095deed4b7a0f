"""Unsupervised STDP learning in a winner-take-all layer (Diehl & Cook 2015 style), torch only.

One excitatory layer of ``N`` LIF neurons receives input spike trains ``x`` of shape (T, B, F)
through non-negative weights ``W`` (N, F). A minibatch is presented in two passes over time:

1. **Neurons**, on the one time scan :func:`~sklearn_snn._core.kernels.spiking_scan`. Input
   current ``I_t = x_t W^T - k_inh (sum_k y_{t-1,k} - y_{t-1})`` (the last term only for
   ``inhibition='soft'``, the scan's recurrent weights ``-k_inh (1 1^T - I)``: each spike
   inhibits the *other* neurons at the next step), threshold ``vartheta + theta_i`` (``theta``
   the adaptive part, see homeostasis). With ``inhibition='hard'`` (the scan's ``wta=True``) at
   most one neuron spikes per step and sample -- the one furthest above its threshold -- and
   every membrane of that sample is then reset to 0.
2. **Plasticity** (only when learning), trace-based (Morrison et al. 2008; Pfister & Gerstner
   2006), computed from the spike trains after the scan, for all steps at once
   (:func:`trace_before`, :func:`stdp_updates`). Presynaptic traces ``r1`` (time constant
   ``tau_plus``), ``r2`` (``tau_x``); postsynaptic ``o1`` (``tau_minus``), ``o2`` (``tau_y``).
   Writing ``r^-`` for a trace decayed to step ``t`` but *before* the spikes of step ``t`` are
   added::

       LTP_ij += y_{t,i} r1^-_j (A2+ + A3+ o2^-_i)        (at each post spike)
       LTD_ij += x_{t,j} o1^-_i (A2- + A3- r2^-_j)        (at each pre spike)

   then every trace ``z`` with time constant ``tau`` and own spikes ``s`` becomes
   ``z = exp(-1/tau) z + s`` (``trace='all-to-all'``) or ``z = s ? 1 : exp(-1/tau) z``
   (``trace='nearest'``). So a pre spike ``d > 0`` steps before a post spike potentiates by
   ``A2+ exp(-d / tau_plus)``, a post spike ``d > 0`` steps before a pre spike depresses by
   ``A2- exp(-d / tau_minus)``; simultaneous spikes do not pair. ``rule='pair'`` is the above
   with ``A3+ = A3- = 0``; ``rule='triplet'`` is the minimal triplet model of Pfister & Gerstner.
3. **Weight update** once per minibatch, after the scan (weights are constant while a
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

from .kernels import leaky_integrate, spiking_scan
from .neurons import NeuronSpec

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


def steps_since_spike(s):
    """For every step ``t`` of ``s`` (T, ...): ``t`` minus the step of the last spike (``s > 0``)
    before ``t`` (``inf`` when there is none), from a cumulative maximum of the spike times.

    Examples
    --------
    >>> import torch
    >>> steps_since_spike(torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])).tolist()
    [inf, inf, 1.0, 2.0, 1.0]
    """
    steps = torch.arange(s.shape[0], device=s.device, dtype=s.dtype).reshape((-1,) + (1,) * (s.dim() - 1))
    last = torch.where(s > 0, steps, -math.inf).cummax(0).values       # last spike at or before t
    return steps - torch.cat([torch.full_like(last[:1], -math.inf), last[:-1]])


def trace_before(s, tau, mode="all-to-all"):
    """Every step's trace of the spike trains ``s`` (T, ...) decayed to that step, before its spikes.

    The trace ``z_t = exp(-1/tau) z_{t-1} + s_t`` (``'all-to-all'``, a leaky integral of the
    spike train) or ``z_t = 1 if s_t > 0 else exp(-1/tau) z_{t-1}`` (``'nearest'``:
    ``exp(-d/tau)`` for the last spike ``d`` steps back) starts at 0; returned is
    ``r^-_t = exp(-1/tau) z_{t-1}`` for every ``t``, computed for all steps at once (no per-step
    Python loop: :func:`~sklearn_snn._core.kernels.leaky_integrate`, resp. a cumulative maximum of
    the spike times).

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([1.0, 1.0, 0.0, 0.0])
    >>> [round(v, 3) for v in trace_before(s, 1 / math.log(2)).tolist()]
    [0.0, 0.5, 0.75, 0.375]
    >>> [round(v, 3) for v in trace_before(s, 1 / math.log(2), "nearest").tolist()]
    [0.0, 0.5, 0.5, 0.25]
    """
    d = _decay(tau)
    if s.shape[0] == 0:
        return torch.zeros_like(s)
    if mode == "nearest":
        return torch.pow(d, steps_since_spike(s))                        # d ** inf = 0: no spike yet
    flat = s.reshape(s.shape[0], -1, s.shape[-1]) if s.dim() > 1 else s.reshape(-1, 1, 1)
    z = leaky_integrate(flat, d, backend="torch").reshape(s.shape)   # one op a step; no compiled kernel to load
    out = torch.empty_like(z)
    out[0] = 0.0
    torch.mul(z[:-1], d, out=out[1:])
    return out


def stdp_updates(rule: STDPRule, x, y, spikes=None):
    """Potentiation and depression of whole spike trains (step 2 of the module docstring).

    Parameters
    ----------
    rule : STDPRule
    x : Tensor (T, B, F)
        Presynaptic spikes (or currents: the traces integrate the values).
    y : Tensor (T, B, N)
        Postsynaptic spikes (0/1, sparse: the layer's output).
    spikes : tuple of Tensor, optional
        ``y.nonzero(as_tuple=True)`` when the caller has it already.

    Returns
    -------
    ltp, ltd : Tensor (N, F)
        Summed over time and batch (both >= 0).

    Notes
    -----
    Both sums are gathered at the post spikes only (``y`` is sparse; work ``O(n_spikes F)``
    besides the ``O(T B F)`` presynaptic traces of :func:`trace_before`). ``LTP`` adds the
    presynaptic trace at every post spike. ``LTD = sum_t o1^-_t (x) P_t`` with
    ``P = x (A2- + A3- r2^-)`` is regrouped by the post spike each ``o1^-_t`` comes from: with
    ``Q_t = sum_{u > t} d^(u - t) P_u`` (``d = exp(-1/tau_minus)``; :func:`trace_before` backwards
    in time), a post spike at ``t`` adds ``Q_t`` (all-to-all), resp. ``Q_t - d^(t' - t) Q_t'`` up
    to the neuron's next spike ``t'`` (nearest: its trace is reset there).

    Examples
    --------
    >>> import torch
    >>> pre, post = torch.zeros(3, 1, 1), torch.zeros(3, 1, 1)
    >>> pre[0], post[2] = 1.0, 1.0                      # pre at t = 0, post at t = 2
    >>> ltp, ltd = stdp_updates(STDPRule(a_plus=1.0, tau_plus=10.0), pre, post)
    >>> round(float(ltp), 4), round(math.exp(-0.2), 4), float(ltd)
    (0.8187, 0.8187, 0.0)
    """
    a2p, a2m, a3p, a3m = rule.amplitudes()
    T, _, F = x.shape
    N = y.shape[2]
    mode = rule.trace
    t, b, i = y.nonzero(as_tuple=True) if spikes is None else spikes   # the post spikes
    if mode == "nearest":   # grouped by (sample, neuron), in time order within a group
        order = ((b * N + i) * T + t).argsort()
        t, b, i = t[order], b[order], i[order]
    val = y[t, b, i]
    if mode == "nearest":
        same = (b[1:] == b[:-1]) & (i[1:] == i[:-1])   # spike k + 1 follows spike k of its neuron
        nxt = torch.nonzero(same).flatten()
        gaps = steps_since_spike(x)

        def pre(tau):   # the presynaptic traces share the gaps
            return torch.pow(_decay(tau), gaps)
    else:
        def pre(tau):
            return trace_before(x, tau, mode)
    if not a3p:
        gain = val * a2p
    elif mode == "nearest":   # o2^- at the post spikes only: decayed from the neuron's previous spike
        o2 = torch.zeros_like(val)
        o2[nxt + 1] = _decay(rule.tau_y) ** (t[nxt + 1] - t[nxt]).to(x.dtype)
        gain = val * (a2p + a3p * o2)
    else:
        gain = val * (a2p + a3p * trace_before(y, rule.tau_y, mode)[t, b, i])
    ltp = x.new_zeros((N, F)).index_add_(0, i, pre(rule.tau_plus)[t, b] * gain[:, None])
    pre_gain = x * a2m if not a3m else x * (a2m + a3m * pre(rule.tau_x))
    Q = trace_before(pre_gain.flip(0), rule.tau_minus).flip(0)        # sum over u > t of d^(u-t) P_u
    dep = Q[t, b]
    if mode == "nearest":
        # the trace is reset at the neuron's next spike: what follows it is that spike's
        dep[nxt] -= (_decay(rule.tau_minus) ** (t[nxt + 1] - t[nxt]).to(x.dtype))[:, None] * dep[nxt + 1]
    else:
        dep = dep * val[:, None]
    ltd = x.new_zeros((N, F)).index_add_(0, i, dep)
    return ltp, ltd


# the scan runs over windows of about this many (step, sample, neuron) entries (4x when the
# spikes of all steps are kept: fewer windows to join)
CHUNK_ELEMENTS = 1 << 20


def _layer_scan(x, W, theta, spec: WTASpec, keep=("spikes",)):
    """The layer on the one scan over input ``x`` (T, B, F).

    The scan runs over windows of steps (the state carried from one to the next: the same
    result as one run) so that the current and the spike and membrane buffers of a window stay
    small; returns the counts (B, N) (``None`` when the spikes are kept) and, in ``keep``, the
    spikes / membrane before reset (T, B, N) of every step (else ``None``).
    """
    T, B, F = x.shape
    N = W.shape[0]
    hard = spec.inhibition == "hard"
    k = spec.inhibition_strength
    # soft inhibition: each spike inhibits the other neurons of its sample at the next step
    w_rec = (torch.eye(N, device=x.device, dtype=x.dtype) - 1.0) * k if not hard and k else None
    thr = spec.neuron.threshold + theta
    Wt = W.t()
    step = max(1, (CHUNK_ELEMENTS * (4 if keep else 1)) // max(1, B * N))
    counts, state, spikes, mem = None, None, [], []
    for t0 in range(0, T, step):
        xc = x[t0:t0 + step]
        cur = (xc.reshape(-1, F) @ Wt).reshape(xc.shape[0], B, N)
        s, u, state = spiking_scan(cur, spec.neuron, w_rec=w_rec, threshold=thr, state=state, wta=hard)
        if "spikes" in keep:
            spikes.append(s)
        else:
            c = s.sum(0)
            counts = c if counts is None else counts.add_(c)
        if "membrane" in keep:
            mem.append(u)
    if counts is None and "spikes" not in keep:
        counts = x.new_zeros((B, N))

    def join(parts):
        return (parts[0] if len(parts) == 1 else torch.cat(parts)) if parts else None

    return counts, join(spikes), join(mem)


@torch.no_grad()
def run_wta(x, W, theta, spec: WTASpec, rule: STDPRule | None = None):
    """Present input spike trains ``x`` (T, B, F) to the layer; optionally collect STDP.

    The layer runs on :func:`~sklearn_snn._core.kernels.spiking_scan` (``wta=True`` for hard
    inhibition, recurrent weights ``-k (1 1^T - I)`` for soft), the plasticity is computed from
    the spike trains after it (:func:`stdp_updates`).

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
    if rule is None:
        return _layer_scan(x, W, theta, spec, keep=())[0], None, None
    _, y, _ = _layer_scan(x, W, theta, spec)
    if y is None:   # no steps
        y = x.new_zeros((0, x.shape[1], W.shape[0]))
    t, b, i = y.nonzero(as_tuple=True)
    val = y[t, b, i]
    counts = y.new_zeros(y.shape[1:]).index_put_((b, i), val, accumulate=True)
    ltp, ltd = stdp_updates(rule, x, y, spikes=(t, b, i))
    return counts, ltp, ltd


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
    _, spikes, mem = _layer_scan(x, W, theta, spec, keep=("spikes", "membrane"))
    if spikes is None:   # no steps
        spikes = x.new_zeros((0, x.shape[1], W.shape[0]))
        mem = spikes.clone()
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
