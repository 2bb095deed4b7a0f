"""``STDPTransformer``: unsupervised spike-timing-dependent plasticity as a scikit-learn transformer.

Diehl & Cook (2015) style feature learning: input spike trains drive a winner-take-all layer of
LIF neurons whose input weights learn by STDP without labels; ``transform`` returns the spike
counts of that layer, ready for any scikit-learn classifier. The torch side (dynamics, traces,
update, homeostasis) is :mod:`sklearn_snn._core.stdp`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._core import encoding as enc
from ._core import stdp as core
from ._core.neurons import RESET_MODES, NeuronSpec, as_decay
from ._core.training import LoopState, Method
from .base import BaseSNN, make_generator
from .training import run_training
from .validation import NETWORK_CONSTRAINTS, IntervalNotBool, validate_snn_input

__all__ = ["STDPTransformer", "plot_receptive_fields"]

_pos = [Interval(Real, 0, None, closed="neither")]
_nonneg = [Interval(Real, 0, None, closed="left")]


class STDPTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseSNN):
    """Unsupervised feature learning with STDP in a winner-take-all spiking layer.

    2D input (scaled to [0, 1], see ``input_scaling``) is encoded as spike trains of
    ``n_steps`` steps (``encoder='rate'``: Bernoulli spikes with probability
    ``intensity * x`` per step). They drive ``n_components`` excitatory LIF (or adaptive LIF)
    neurons with lateral inhibition (``'hard'``: one winner per step; ``'soft'``: every spike
    inhibits the other neurons), adaptive thresholds that keep each neuron's firing rate in a
    target band (homeostasis), weight normalisation and an STDP rule: ``'pair'`` (trace based,
    all-to-all or nearest-spike pairing) or ``'triplet'`` (Pfister & Gerstner 2006), with
    additive (hard bounds) or multiplicative (soft bounds) weight dependence. The equations are
    in :mod:`sklearn_snn._core.stdp`.

    Learning is vectorised over a minibatch: every sample of a batch is presented in parallel
    with the weights held fixed; the STDP updates are summed over the batch and each neuron's
    update is divided by the number of samples in which it fired (so a neuron moves by the mean
    update over the inputs it responded to, whatever the batch size), then applied once.

    ``transform`` presents the samples without plasticity and returns the spike counts (or
    rates) of the layer, shape (n_samples, n_components). It is deterministic: with
    ``inference_input='expected'`` (default) the rate code is replaced by its expectation, the
    constant current ``intensity * x`` per step (no sampling noise in the features); with
    ``'spikes'`` the rate encoder draws its spikes from a hash of each sample (still a function
    of the sample alone).

    Parameters
    ----------
    n_components : int, default=400
        Number of excitatory neurons (output features).
    n_steps : int, default=50
        Presentation time of one sample in steps (2D input; 3D input brings its own).
    encoder : {'rate', 'current', 'latency'}, default='rate'
        Spike encoding of 2D input during learning.
    intensity : float, default=0.3
        Spike probability per step of a feature at 1 (and the scale of the current encoder).
    inference_input : {'expected', 'spikes'}, default='expected'
        What ``transform`` feeds a rate-coded layer (see above).
    neuron : {'lif', 'alif'}, default='alif'
        Excitatory neuron model. ``'alif'`` adds spike-frequency adaptation within a
        presentation (each spike raises that neuron's threshold by ``adapt``, decaying with
        ``tau_adapt``), so with hard inhibition a sample activates a few best-matching neurons in
        turn instead of one.
    tau_mem : float, default=20.0
        Membrane time constant in steps (> 1) or decay factor in (0, 1].
    threshold : float, default=1.0
    reset : {'zero', 'subtract'}, default='zero'
    adapt : float, default=0.1
        Threshold increase per spike (``neuron='alif'``).
    tau_adapt : float, default=20.0
        Time constant of that increase in steps (or decay factor).
    inhibition : {'hard', 'soft'}, default='hard'
        Lateral inhibition: 'hard' winner-take-all (one spike per step and sample; the winner
        resets every membrane), 'soft' subtracts ``inhibition_strength`` times the number of
        other neurons that spiked at the previous step.
    inhibition_strength : float, default=1.0
    rule : {'pair', 'triplet'}, default='pair'
    trace : {'all-to-all', 'nearest'}, default='all-to-all'
        Spike pairing scheme of the traces.
    weight_dependence : {'additive', 'multiplicative'}, default='additive'
    a_plus, a_minus : float, default=1e-3, 1e-4
        Pair amplitudes ``A2+`` (potentiation) and ``A2-`` (depression). Keep
        ``a_minus * tau_minus < a_plus * tau_plus``: under rate coding the pair rule then
        potentiates the synapses of active inputs (Hebbian), otherwise it depresses them.
    init : {'samples', 'random'}, default='samples'
        Initial weights: randomly chosen (scaled) training samples plus 5% uniform noise, as
        k-means starts from data points (faster, better receptive fields on small data sets), or
        uniform random as in Diehl & Cook (also used for 3D input). Both are then normalised.
    tau_plus, tau_minus : float, default=17.0, 34.0
        Time constants (steps) of the pair traces.
    a3_plus, a3_minus : float, default=6.5e-3, 0.0
        Triplet amplitudes (``rule='triplet'``).
    tau_x, tau_y : float, default=100.0, 125.0
        Time constants (steps) of the slow triplet traces.
    w_max : float, default=1.0
        Upper weight bound (the lower bound is 0).
    weight_norm : float or None, default=0.1
        After each update every neuron's weights are rescaled to sum to
        ``weight_norm * n_features`` (None: no normalisation).
    target_rate : 'auto' or (float, float), default='auto'
        Firing-rate band (spikes per step) homeostasis keeps each neuron in; 'auto' is
        ``(0.5 / n_components, 2 / n_components)``, i.e. an equal share of a layer that fires
        about once per step.
    homeostasis_rate : float, default=0.05
        Threshold change per batch, in units of ``threshold`` per unit of relative distance to
        the band (0 switches homeostasis off).
    output : {'counts', 'rates'}, default='counts'
        Spike counts, or counts divided by the number of steps.
    max_iter : int, default=3
        Passes (epochs) over the data in ``fit``.
    batch_size : int, default=64
    input_scaling : 'auto' or None, default='auto'
        'auto' maps 2D features to [0, 1] with the min/max seen in the first fit; None uses X
        as given (spike probabilities are clipped to [0, 1]).
    device : {'auto', 'cpu', 'cuda'}, default='auto'
    torch_num_threads : int or None, default=None
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the order of the samples and the spike trains of learning.
    verbose : int, default=0

    Attributes
    ----------
    module_ : sklearn_snn._core.stdp.WTALayer
        The learned state (``weight`` and ``theta`` buffers).
    learned_weights_ : ndarray of shape (n_components, n_features)
        Input weights of every neuron (receptive fields; see :func:`plot_receptive_fields`).
    thresholds_ : ndarray of shape (n_components,)
        Firing thresholds after homeostasis.
    firing_rates_ : ndarray of shape (n_components,)
        Spikes per step of each neuron, mean over the last epoch of learning.
    n_iter_ : int
        Epochs run (``partial_fit`` adds one per call).
    n_features_in_, feature_names_in_ : as in scikit-learn
    input_ndim_, n_steps_in_ : int
        2 or 3, and the number of steps of 3D input.

    References
    ----------
    P. U. Diehl and M. Cook, "Unsupervised learning of digit recognition using
    spike-timing-dependent plasticity", Front. Comput. Neurosci. 9:99 (2015).
    J.-P. Pfister and W. Gerstner, "Triplets of spikes in a model of spike timing-dependent
    plasticity", J. Neurosci. 26(38) (2006).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn.stdp import STDPTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> stdp = STDPTransformer(n_components=20, n_steps=20, max_iter=1, random_state=0)
    >>> stdp.fit_transform(X[:200]).shape
    (200, 20)
    >>> stdp.learned_weights_.shape
    (20, 64)
    """

    _parameter_constraints = {
        "n_components": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_steps": NETWORK_CONSTRAINTS["n_steps"],
        "encoder": [StrOptions({"rate", "current", "latency"})],
        "intensity": [Interval(Real, 0, None, closed="neither")],
        "inference_input": [StrOptions({"expected", "spikes"})],
        "neuron": [StrOptions({"lif", "alif"})],
        "tau_mem": _pos,
        "threshold": _pos,
        "reset": [StrOptions(set(RESET_MODES))],
        "adapt": _nonneg,
        "tau_adapt": _pos,
        "inhibition": [StrOptions(set(core.INHIBITION))],
        "inhibition_strength": _nonneg,
        "rule": [StrOptions(set(core.RULES))],
        "trace": [StrOptions(set(core.TRACES))],
        "weight_dependence": [StrOptions(set(core.WEIGHT_DEPENDENCE))],
        "a_plus": _nonneg,
        "a_minus": _nonneg,
        "init": [StrOptions({"samples", "random"})],
        "tau_plus": _pos,
        "tau_minus": _pos,
        "a3_plus": _nonneg,
        "a3_minus": _nonneg,
        "tau_x": _pos,
        "tau_y": _pos,
        "w_max": _pos,
        "weight_norm": [Interval(Real, 0, None, closed="neither"), None],
        "target_rate": [StrOptions({"auto"}), tuple, list],
        "homeostasis_rate": _nonneg,
        "output": [StrOptions({"counts", "rates"})],
        "max_iter": [IntervalNotBool(Integral, 1, None, closed="left")],
        "batch_size": [IntervalNotBool(Integral, 1, None, closed="left")],
        "input_scaling": NETWORK_CONSTRAINTS["input_scaling"],
        "device": NETWORK_CONSTRAINTS["device"],
        "torch_num_threads": NETWORK_CONSTRAINTS["torch_num_threads"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        A transformer has no score of its own: search it in a pipeline ending in a classifier,
        whose space (if any) is added. ``n_components`` (16 to 256, log), ``n_steps`` (20 to 60),
        ``intensity`` (0.1 to 1, log; a spike probability per step, so at most 1), ``tau_mem`` (5
        to 50 steps, log), ``a_plus`` (3e-4 to 1e-2, log; above ``a_minus * tau_minus /
        tau_plus`` with the defaults, so the rule stays Hebbian), ``adapt`` (0.01 to 0.5, log),
        ``homeostasis_rate`` (0.01 to 0.2, log) and ``weight_norm`` (0.05 to 0.3, log).
        ``max_iter`` and ``batch_size`` set the cost of a trial and are left to the user.

        Returns
        -------
        space : dict of str to optuna.distributions.BaseDistribution
        """
        from optuna.distributions import FloatDistribution, IntDistribution

        return {
            "n_components": IntDistribution(16, 256, log=True),
            "n_steps": IntDistribution(20, 60, step=10),
            "intensity": FloatDistribution(0.1, 1.0, log=True),
            "tau_mem": FloatDistribution(5.0, 50.0, log=True),
            "a_plus": FloatDistribution(3e-4, 1e-2, log=True),
            "adapt": FloatDistribution(0.01, 0.5, log=True),
            "homeostasis_rate": FloatDistribution(0.01, 0.2, log=True),
            "weight_norm": FloatDistribution(0.05, 0.3, log=True),
        }

    def __init__(self, n_components=400, *, n_steps=50, encoder="rate", intensity=0.3, inference_input="expected",
                 neuron="alif", tau_mem=20.0, threshold=1.0, reset="zero", adapt=0.1, tau_adapt=20.0,
                 inhibition="hard", inhibition_strength=1.0, rule="pair", trace="all-to-all",
                 weight_dependence="additive", a_plus=1e-3, a_minus=1e-4, init="samples", tau_plus=17.0, tau_minus=34.0,
                 a3_plus=6.5e-3, a3_minus=0.0, tau_x=100.0, tau_y=125.0, w_max=1.0, weight_norm=0.1,
                 target_rate="auto", homeostasis_rate=0.05, output="counts", max_iter=3, batch_size=64,
                 input_scaling="auto", device="auto", torch_num_threads=None, random_state=None, verbose=0):
        self.n_components = n_components
        self.n_steps = n_steps
        self.encoder = encoder
        self.intensity = intensity
        self.inference_input = inference_input
        self.neuron = neuron
        self.tau_mem = tau_mem
        self.threshold = threshold
        self.reset = reset
        self.adapt = adapt
        self.tau_adapt = tau_adapt
        self.inhibition = inhibition
        self.inhibition_strength = inhibition_strength
        self.rule = rule
        self.trace = trace
        self.weight_dependence = weight_dependence
        self.a_plus = a_plus
        self.a_minus = a_minus
        self.init = init
        self.tau_plus = tau_plus
        self.tau_minus = tau_minus
        self.a3_plus = a3_plus
        self.a3_minus = a3_minus
        self.tau_x = tau_x
        self.tau_y = tau_y
        self.w_max = w_max
        self.weight_norm = weight_norm
        self.target_rate = target_rate
        self.homeostasis_rate = homeostasis_rate
        self.output = output
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.input_scaling = input_scaling
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    # --- specs -------------------------------------------------------------------------------
    def _band(self):
        if isinstance(self.target_rate, str):
            n = self.n_components
            return (0.5 / n, 2.0 / n)
        if len(self.target_rate) != 2 or not 0 <= self.target_rate[0] <= self.target_rate[1] <= 1 \
                or self.target_rate[1] <= 0:
            raise ValueError(f"target_rate must be 'auto' or (low, high) with 0 <= low <= high <= 1 and "
                             f"high > 0 spikes per step, got {self.target_rate!r}.")
        return (float(self.target_rate[0]), float(self.target_rate[1]))

    _fitted_attributes = {"n_iter_": "int", "firing_rates_": "array", "learned_weights_": "array",
                          "thresholds_": "array"}

    def _rebuild_module(self, name="module_"):
        """An empty layer of the fitted size (``sklearn_snn.load`` loads the learned state after)."""
        return core.WTALayer(self.n_features_in_, self.n_components, self._wta_spec())

    def _wta_spec(self):
        neuron = NeuronSpec(model=self.neuron, beta=as_decay(self.tau_mem), threshold=float(self.threshold),
                            reset=self.reset, rho=as_decay(self.tau_adapt), adapt=float(self.adapt))
        return core.WTASpec(neuron=neuron, inhibition=self.inhibition,
                            inhibition_strength=float(self.inhibition_strength), target_rate=self._band(),
                            homeostasis_rate=float(self.homeostasis_rate))

    def _rule(self):
        return core.STDPRule(rule=self.rule, trace=self.trace, weight_dependence=self.weight_dependence,
                             a_plus=self.a_plus, a_minus=self.a_minus, tau_plus=self.tau_plus,
                             tau_minus=self.tau_minus, a3_plus=self.a3_plus, a3_minus=self.a3_minus,
                             tau_x=self.tau_x, tau_y=self.tau_y, w_min=0.0, w_max=float(self.w_max))

    # --- input -------------------------------------------------------------------------------
    def _fit_scaler(self, X):
        # spike encoders read values as probabilities: min-max to [0, 1]
        if X.ndim != 2 or self.input_scaling is None:
            self.input_offset_, self.input_scale_ = None, None
            return
        off = X.min(0)
        sc = X.max(0) - off
        self.input_offset_ = off.astype(np.float64)
        self.input_scale_ = np.where(sc > 1e-12, sc, 1.0).astype(np.float64)

    def _encode(self, xb, train, generator=None):
        if xb.dim() == 3:  # given spike trains / currents (B, T, F)
            return xb.transpose(0, 1)
        p = xb * self.intensity
        if not train and self.encoder == "rate" and self.inference_input == "expected":
            return enc.current(p.clamp(0.0, 1.0), self.n_steps)
        return enc.encode(p, self.encoder, self.n_steps, generator=generator, train=train)

    # --- learning ----------------------------------------------------------------------------
    def _initialise(self, X):
        self._generator = make_generator(self.random_state)
        self._fit_scaler(X)
        spec = self._wta_spec()
        w_init = 0.3 * self.w_max
        module = core.WTALayer(self.n_features_in_, self.n_components, spec, w_init=w_init,
                               generator=self._generator)
        if self.init == "samples" and X.ndim == 2:
            Xs = self._scale(X)
            idx = torch.randint(0, Xs.shape[0], (self.n_components,), generator=self._generator).numpy()
            noise = torch.rand((self.n_components, self.n_features_in_), generator=self._generator,
                               dtype=torch.float64).numpy()
            seed = np.clip(Xs[idx], 0.0, 1.0) + 0.05 * noise
            module.weight.copy_(torch.tensor(seed * w_init / max(seed.mean(), 1e-12), dtype=torch.float32))
        if self.weight_norm is not None:
            module.weight.copy_(core.normalize_rows(module.weight, self.weight_norm * self.n_features_in_)
                                .clamp(0.0, self.w_max))
        self.module_ = module.to(self._device())
        self.n_iter_ = 0

    def _epoch(self, X):
        spec, rule = self._wta_spec(), self._rule()
        self.module_.spec = spec
        if not hasattr(self, "_generator"):  # unpickled: the generator is not persisted
            self._generator = make_generator(self.random_state)
        device = self._device()
        Xs = self._scale(X)
        n = Xs.shape[0]
        order = torch.randperm(n, generator=self._generator).numpy()
        W, theta = self.module_.weight, self.module_.theta
        total = torch.zeros(self.n_components, dtype=torch.float64)
        n_steps_seen = 0
        with torch.no_grad(), self._threads():
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                xb = self._to_tensor(Xs[idx], device=device)
                x = self._encode(xb, train=True, generator=self._generator)
                W, theta, counts = core.train_batch(x, W, theta, spec, rule, self.weight_norm)
                total += counts.sum(0).double().cpu()
                n_steps_seen += x.shape[0] * len(idx)
        self.module_.weight.copy_(W)
        self.module_.theta.copy_(theta)
        self.firing_rates_ = (total / max(n_steps_seen, 1)).numpy()
        self._sync()
        return {"mean_rate": float(self.firing_rates_.mean()), "silent": int((self.firing_rates_ == 0).sum())}

    def _train(self, X, n_epochs, epoch_callback, incremental):
        """``n_epochs`` plasticity passes over X on the one trainer (no stopping rule: STDP has
        no global error to monitor; ``max_iter`` epochs run)."""
        state = LoopState(n_iter=self.n_iter_)

        def sync(st):
            self.n_iter_ = st.n_iter

        method = Method(lambda: self._epoch(X), describe=lambda n, info: (
            f"Epoch {n}, mean rate = {info['mean_rate']:.5f} spikes/step, silent neurons = {info['silent']}"))
        run_training(self, method, n_epochs, state, epoch_callback=epoch_callback, sync=sync,
                     incremental=incremental, what="STDP training", keeps="the weights of the last complete epoch")

    def _sync(self):
        self.learned_weights_ = self.module_.weight.detach().double().cpu().numpy()
        self.thresholds_ = self.threshold + self.module_.theta.detach().double().cpu().numpy()

    @property
    def _n_features_out(self):
        return self.n_components

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, epoch_callback=None):
        """Learn the weights from X by STDP (``max_iter`` epochs; ``y`` is ignored).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        y : ignored
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, epoch, info) -> bool`` after every epoch; truthy stops
            (``info``: ``mean_rate``, ``silent``, ``time``).

        Returns
        -------
        self
        """
        X, _ = validate_snn_input(self, X, reset=True)
        self._band()
        self._initialise(X)
        self._train(X, self.max_iter, epoch_callback, incremental=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One more epoch of STDP over X (initialises on the first call)."""
        first = not hasattr(self, "module_")
        X, _ = validate_snn_input(self, X, reset=first)
        self._band()
        if first:
            self._initialise(X)
        self._train(X, 1, None, incremental=True)
        return self

    def transform(self, X):
        """Spike counts (or rates) of the excitatory layer, (n_samples, n_components).

        The output has the dtype of the validated input (float32 or float64).
        """
        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)
        self.module_.spec = self._wta_spec()
        T = X.shape[1] if X.ndim == 3 else self.n_steps
        out = self._batched(X, lambda m, x: m(x).cpu().numpy())
        if self.output == "rates":
            out = out / T
        return out.astype(X.dtype, copy=False)

    def simulate(self, X):
        """Run the winner-take-all layer on X (no learning) and return its activity.

        Memory is bounded by one batch (``inference_batch_size``) during the simulation.

        Returns
        -------
        dict with
            ``spikes``: ``[array (n_samples, n_steps, n_components)]``, 0/1, axis 1 is time;
            ``membrane``: ``[array]`` of the same layout, membrane potentials before reset;
            ``output``: (n_samples, n_components), what :meth:`transform` returns; ``layers``:
            ``['wta']``; ``n_steps``: int; ``synops``, ``macs``: (n_samples, 1) operations of the
            input synapses (MACs for a non-binary input such as the expected current, counted once
            when constant), ``ann_macs``: (1,); ``input_spikes``: (n_samples,) (NaN when the
            input is not binary).
        """
        from .metrics import SynapticOpCounter

        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)
        self.module_.spec = self._wta_spec()
        counter = SynapticOpCounter([(0, -1, self.module_.weight)])

        def fn(m, x):
            s, u = core.record_wta(x, m.weight, m.theta, m.spec)
            spikes = s.transpose(0, 1).cpu().numpy()
            return {"spikes": [spikes.astype(np.float32, copy=False)],
                    "membrane": [u.transpose(0, 1).float().cpu().numpy()],
                    **counter(x, [spikes.sum(1)])}

        res = self._batched(X, fn)
        T = res["spikes"][0].shape[1]
        counts = res["spikes"][0].sum(1, dtype=np.float64)
        res["output"] = (counts / T if self.output == "rates" else counts).astype(X.dtype, copy=False)
        res["layers"] = ["wta"]
        res["n_steps"] = int(T)
        res["ann_macs"] = counter.ann_macs.copy()
        return res

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.positive_only = False
        return tags


def plot_receptive_fields(transformer, image_shape, ax=None, n_cols=None, cmap="hot_r"):
    """Draw the learned weights of a fitted :class:`STDPTransformer` as images, one per neuron.

    Parameters
    ----------
    transformer : STDPTransformer
        Fitted (or a pipeline step that is one).
    image_shape : tuple of int
        ``(height, width)`` of one input image; ``height * width == n_features_in_``.
    ax : matplotlib Axes, optional
        Where to draw (a new figure otherwise); the fields are tiled in one image.
    n_cols : int, optional
        Fields per row (default: about the square root of ``n_components``).
    cmap : str, default='hot_r'

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> X, _ = load_digits(return_X_y=True)
    >>> stdp = STDPTransformer(n_components=9, n_steps=10, max_iter=1, random_state=0).fit(X[:100])
    >>> ax = plot_receptive_fields(stdp, (8, 8))
    >>> ax.images[0].get_array().shape
    (26, 26)
    """
    import matplotlib.pyplot as plt

    check_is_fitted(transformer, "learned_weights_")
    W = transformer.learned_weights_
    h, w = (int(v) for v in image_shape)
    if h * w != W.shape[1]:
        raise ValueError(f"image_shape {tuple(image_shape)} holds {h * w} pixels, but the transformer has "
                         f"{W.shape[1]} input features.")
    n = W.shape[0]
    cols = n_cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    tile = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        tile[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = W[k].reshape(h, w)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2 + cols * 0.6, 12), min(2 + rows * 0.6, 12)))
    ax.imshow(tile, cmap=cmap, vmin=0.0, vmax=float(np.nanmax(tile)) or 1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Receptive fields of {n} neurons")
    return ax
