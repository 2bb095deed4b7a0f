"""``EventPropClassifier``: exact gradients through spike times (Wunderlich & Pehle 2021).

A current-based LIF network simulated in continuous time (exact spike times inside each step)
and trained with EventProp, the adjoint method with jumps at spike times
(:mod:`sklearn_snn._core.eventprop`), on the shared training loop of ``sklearn_snn._core``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._core import eventprop as ep
from ._core.eventprop_events import EventSet, check_event_streams, is_event_stream
from .base import (
    BaseSNN,
    GradientSNNMixin,
    SNNClassifierMixin,
)
from .validation import (
    NETWORK_CONSTRAINTS,
    TRAINING_CONSTRAINTS,
    HiddenLayerSizes,
    IntervalNotBool,
    check_hidden_layer_sizes,
    check_input_ndim,
    validate_snn_input,
)

_NETWORK = {k: NETWORK_CONSTRAINTS[k] for k in (
    "hidden_layer_sizes", "n_steps", "tau_mem", "tau_syn", "threshold", "recurrent", "input_scaling",
    "device", "random_state", "verbose", "torch_num_threads")}
_TRAINING = {k: TRAINING_CONSTRAINTS[k] for k in (
    "alpha", "batch_size", "learning_rate_init", "solver", "lr_schedule", "max_iter", "early_stopping",
    "validation_fraction", "n_iter_no_change", "tol", "warm_start")}


class EventPropNet(torch.nn.Module):
    """Weights of an EventProp network and the call into the exact simulator.

    ``forward(events)`` returns ``(logits, out)``: ``out`` the first spike times (``ttfs``) or
    maximum voltages (``voltage``) of the output neurons, ``logits = -out / tau0`` or ``out``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_snn._core.eventprop import EventPropSpec, SpikeEvents
    >>> net = EventPropNet(3, (8,), 2, EventPropSpec(dt=1.0, n_steps=30), generator=torch.Generator().manual_seed(0))
    >>> x = SpikeEvents.from_times(torch.tensor([[0.0, 3.0, 6.0]]), 1.0, 30)
    >>> net(x)[0].shape
    torch.Size([1, 2])
    """

    def __init__(self, n_in, hidden, n_out, spec, recurrent=False, tau0=0.25, init_mean=1.5, init_std=1.0,
                 generator=None):
        super().__init__()
        self.spec = spec
        self.tau0 = float(tau0)
        self.recurrent = tuple(bool(recurrent) for _ in hidden)
        kp = spec.kappa_peak()
        theta = spec.threshold
        weights, sizes = [], [n_in] + list(hidden)

        def normal(n_post, n_pre, mean, std):
            # scaled so that n_pre inputs of mean weight reach init_mean thresholds at the PSP peak
            w = torch.randn(n_post, n_pre, generator=generator) * (std * theta / (kp * math.sqrt(n_pre)))
            return torch.nn.Parameter(w + mean * theta / (kp * n_pre))

        for l, h in enumerate(hidden):
            weights.append(normal(h, sizes[l], init_mean, init_std))
            if recurrent:
                weights.append(normal(h, h, 0.0, 0.5 * init_std))
        weights.append(normal(n_out, sizes[-1], init_mean, init_std))
        self.weights = torch.nn.ParameterList(weights)

    def run_spec(self, events):
        return replace(self.spec, n_steps=max(self.spec.n_steps, events.n_steps))

    def forward(self, events):
        spec = self.run_spec(events)
        out = ep.eventprop(spec, events, list(self.weights), self.recurrent)
        logits = -out / self.tau0 if spec.output == "ttfs" else out
        return logits, out


class EventPropClassifier(SNNClassifierMixin, ClassifierMixin, GradientSNNMixin, BaseSNN):
    """Spiking classifier trained with EventProp: exact gradients through spike times.

    A current-based LIF network (``tau_mem dV/dt = -V + I``, ``tau_syn dI/dt = -I``, input
    spikes add their weight to ``I``, ``V`` resets to 0 at the threshold) is simulated in
    continuous time on a grid of step ``dt``: the state is propagated exactly over each step and
    every spike time is located inside its step by bracketed Newton root finding on the exact
    trajectory (see :mod:`sklearn_snn._core.eventprop` for the equations and why root finding).
    The gradient is computed by EventProp (Wunderlich & Pehle 2021): the adjoint equations run
    backwards in time with jumps at the stored spike times, so the backward pass keeps the
    spikes only and its memory grows with their number, not with the number of time steps.

    Input: 2D ``X`` is scaled to [0, 1] with the training min/max (``input_scaling='auto'``)
    and each feature becomes two spikes, at ``(1 - x) * input_window`` and at
    ``x * input_window`` (``input_encoding='pair'``; 'single' keeps only the first), plus one
    bias spike at ``t = 0``, as in the paper. 3D ``X`` of shape ``(n_samples, n_steps,
    n_features)`` (bool / uint8 spikes stay in their dtype) is read as spike trains on the grid:
    any value > 0 is one spike at the start of its step (step ``k`` is time ``k * dt``; plus the
    bias spike); the simulation then lasts ``max(n_steps, X.shape[1])`` steps.

    Event streams (exact times, no binning): ``X`` may be a list with one structured NumPy
    array per sample, fields ``t`` (time, integers or floats) and ``x`` (or ``channel``, as
    :class:`~sklearn_snn.preprocessing.EventBinner` takes them: the input unit, integers). Every
    event is one input spike at its exact time ``t / time_scale`` (in the estimator's time unit,
    steps with ``dt=1``; several events of a unit within one step all count), nothing is
    rounded to the grid. Fit learns the number of units (largest unit + 1) and the simulated
    duration (``n_steps_in_``, the step of the latest training event + 1; later events in
    predict are dropped with a warning). Event input is spike input, like 3D arrays
    (``input_ndim_ = 3``, ``loss='auto'`` is 'voltage'): an estimator fitted on either takes
    both, and events on the grid ``t = k * dt`` give the same results as the 3D array with a
    spike at step ``k``.

    Speed: feed-forward networks on the CPU run compiled event loops (numba, both the forward
    pass and the adjoint, identical to the torch loops up to rounding); recurrent networks, GPU
    tensors, or ``SKLEARN_SNN_NUMBA=0`` run the torch loops.

    Losses: ``loss='ttfs'`` (default for 2D input), the output neurons spike and the class is the one that
    spikes first; the loss is the cross-entropy of ``softmax(-t / tau0)`` plus the paper's
    regulariser ``ttfs_reg * (exp(t_label / tau1) - 1)`` that makes the correct neuron fire
    early. ``loss='voltage'`` (default for 3D input): non-spiking output neurons, cross-entropy of the maximum
    membrane potential over time.

    Output neurons that never spike (``ttfs``): instead of an infinite time, a silent neuron
    gets the pseudo spike time ``t_end + tau_mem (threshold - V_max) / threshold`` from its
    maximum voltage ``V_max``; it joins the spike times continuously at threshold, ranks
    silent neurons after all spiking ones, and its exact gradient (the adjoint jumps at the time
    of the maximum) pulls a silent correct neuron up towards firing, so training never stalls on
    a silent output layer and the loss stays finite.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int or 'auto', default='auto'
        Width of each hidden layer. 'auto': ``(200,)`` for 2D input, ``(400,)`` for spike
        input (3D arrays, event streams), whose classes lie in the timing pattern across many
        input units rather than in a few latencies: on the random-manifold task (50 units, 100
        steps) 400 hidden neurons reach 1.000 held-out where 200 reach 0.984
        (``benchmarks/eventprop.py --only spike``).
    loss : {'auto', 'ttfs', 'voltage'}, default='auto'
        Time-to-first-spike cross-entropy, or cross-entropy of the maximum output voltage.
        'auto': 'ttfs' for 2D input (latency-coded features), 'voltage' for 3D spike arrays,
        whose information can arrive late in the window (on the random-manifold task the
        voltage readout learns far better); the fitted attribute ``loss_`` holds the choice.
    n_steps : int, default=25
        Number of grid steps simulated for 2D input (duration ``n_steps * dt``).
    dt : float, default=1.0
        Grid step, in the unit of the time constants. With the default ``dt=1`` every time
        (``tau_mem``, ``tau_syn``, ``input_window``, ``tau0``, ``tau1``, the spike times of
        ``simulate``) is in steps, as for the other estimators of the package. Spike times are
        exact for any ``dt``; a smaller ``dt`` (with ``n_steps`` scaled up to keep the duration)
        only catches threshold crossings that a coarse grid misses and costs time, not backward
        memory. Step ``k`` of 3D input starts at time ``k * dt``.
    tau_mem, tau_syn : float or 'auto', default='auto'
        Membrane and synaptic time constants (must differ). 'auto': 20 and 5 for 2D input;
        for 3D spike arrays and event streams of ``T`` steps, ``max(20, T / 5)`` and a quarter
        of that (20 and 5 up to 100 steps), so that neurons integrate spikes spread over the
        sequence (fitted ``tau_mem_``, ``tau_syn_``). On the 25-step random-manifold events
        the floor of 20 (it was 10) took held-out accuracy from 0.96 / 0.95 to 1.000 on two data
        seeds not used by the benchmark. The 'auto' values are in steps (``dt=1``). The principle
        for 2D input: a hidden neuron must weigh the earliest and the latest latency spike of
        the input window (7.5 steps) alike to combine all features; with ``tau_mem=20`` a PSP
        has lost a third of its size across the window (``exp(-7.5/20)``), with 10 over
        half, so the features coded early count far less than the late ones. Measured: Yin-Yang 0.983 (3 seeds)
        against 0.973 with 10 / 2.5, iris 5-fold CV 0.960 against 0.947 (both with
        ``init_mean=1.5``).
    threshold : float, default=1.0
    recurrent : bool, default=False
        Recurrent weights in each hidden layer (spikes arrive one step ``dt`` later).
    input_window : float, default=7.5
        Input spike times lie in ``[0, input_window]``.
    tau0, tau1, ttfs_reg : float, default=0.25, 3.2, 3e-3
        Softmax temperature and regulariser time constant and strength of the ``ttfs`` loss.
    init_mean : float or 'auto', default='auto'
    init_std : float, default=1.0
        Weight initialisation, in units of the weight that takes a neuron with ``n_in`` equal
        inputs to threshold at the PSP peak: mean ``init_mean`` of that, standard deviation
        ``init_std`` of it times ``sqrt(n_in)``. 'auto': 2.5 for 2D input, 1.5 for spike input
        (fitted ``init_mean_``). The principle: EventProp's gradient flows only through
        neurons that spike (a silent hidden neuron has no spike time to move), so at the start
        a typical input should drive every hidden neuron past threshold; the unit above
        assumes all inputs arrive together, but latency-coded features arrive spread over the
        input window, so their summed PSP peaks lower and 2D input needs a mean of 2.5 units.
        With the 'auto' time constants, 2.5 instead of 1.5 meets the surrogate estimator to
        within 2 points on all five tabular sets (digits 0.914 -> 0.933, iris 0.960 -> 0.967;
        ``benchmarks/eventprop.py --only tabular``) and keeps Yin-Yang above 0.97.
    input_encoding : {'pair', 'single'}, default='pair'
        How a 2D feature ``x`` (scaled to [0, 1]) becomes input spikes: 'pair', two input
        neurons spiking at ``(1 - x) * input_window`` and ``x * input_window`` (so that both
        large and small values have an early spike, as Yin-Yang's mirrored coordinates do; this
        is what lets generic tabular features learn); 'single', only the first of them. 3D input
        is taken as given.
    input_scaling : 'auto' or None, default='auto'
        'auto' maps 2D features to [0, 1] with the training min/max; None takes X as given
        (values are clipped to [0, 1]).
    time_scale : float, default=1.0
        Event streams only: the length of the estimator's time unit (one step with ``dt=1``) in
        the units of the event times; an event at ``t`` is simulated at ``t / time_scale``. E.g.
        ``time_scale=1000`` for microsecond time stamps and 1 ms steps, or ``duration / n_steps``
        for :func:`~sklearn_snn.datasets.make_randman_events`.
    alpha : float, default=0.0
        L2 penalty (weight decay).
    batch_size : int or 'auto', default=32
    learning_rate_init : float, default=2e-2
    solver : {'adam', 'adamw', 'sgd', 'adam-hd', 'sgd-hd'}, default='adam'
    lr_schedule : {'constant', 'cosine', 'plateau'}, default='cosine'
    max_iter : int or 'auto', default='auto'
        Maximum number of epochs. 'auto': 35 for 2D input, 40 for spike input (fitted
        ``max_iter_``). Measured with the other defaults (``benchmarks/eventprop.py``): 35 epochs
        keep blobs, iris, wine, breast cancer and digits within a point of 40 and Yin-Yang at
        0.987, for seven eighths of the time; the random-manifold spike task needs the 40.
    early_stopping, validation_fraction, n_iter_no_change, tol :
        As in :class:`~sklearn.neural_network.MLPClassifier`.
    warm_start : bool, default=False
    device : {'auto', 'cpu', 'cuda'}, default='auto'
    torch_num_threads : int or None, default=None
    random_state : int, RandomState or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    loss_ : str
        The loss used ('ttfs' or 'voltage'; ``loss='auto'`` resolved for the training input).
    tau_mem_, tau_syn_ : float
        The time constants used (``'auto'`` resolved for the training input).
    module_ : EventPropNet
        The trained weights.
    n_features_in_, feature_names_in_ : as in scikit-learn
    input_ndim_, n_steps_in_ : int
        Layout of the training input (2 or 3) and its number of steps (3D only).
    input_offset_, input_scale_ : ndarray or None
        Min-max scaling of 2D input learned in fit.
    n_iter_, t_, loss_curve_, reg_curve_, best_loss_, validation_scores_, best_validation_score_ :
        As in :class:`~sklearn.neural_network.MLPClassifier` (``reg_curve_``: the ttfs regulariser).

    See Also
    --------
    SurrogateSNNClassifier : BPTT with surrogate gradients on a discrete-time network.

    References
    ----------
    T. C. Wunderlich and C. Pehle, "Event-based backpropagation can compute exact gradients for
    spiking neural networks", Scientific Reports 11, 12829 (2021).

    Examples
    --------
    >>> from sklearn_snn.eventprop import EventPropClassifier
    >>> from sklearn_snn._yinyang import make_yinyang
    >>> X, y = make_yinyang(150, random_state=0)
    >>> clf = EventPropClassifier(hidden_layer_sizes=(20,), n_steps=25, max_iter=2,
    ...                           random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> clf.simulate(X[:2])["spikes"][0].shape  # (samples, steps, hidden units)
    (2, 25, 20)
    """

    _parameter_constraints: ClassVar[dict] = {
        **_NETWORK, **_TRAINING,
        "hidden_layer_sizes": [HiddenLayerSizes(allow_empty=False), StrOptions({"auto"})],
        "max_iter": [IntervalNotBool(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "loss": [StrOptions({"auto", "ttfs", "voltage"})],
        "dt": [Interval(Real, 0, None, closed="neither")],
        "input_window": [Interval(Real, 0, None, closed="left")],
        "tau0": [Interval(Real, 0, None, closed="neither")],
        "tau1": [Interval(Real, 0, None, closed="neither")],
        "ttfs_reg": [Interval(Real, 0, None, closed="left")],
        "init_mean": [Interval(Real, None, None, closed="neither"), StrOptions({"auto"})],
        "init_std": [Interval(Real, 0, None, closed="left")],
        "input_encoding": [StrOptions({"pair", "single"})],
        "time_scale": [Interval(Real, 0, None, closed="neither")],
        "tau_mem": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "tau_syn": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    }
    _y_numeric = False
    #: ``loss='auto'``: first-spike times for 2D (latency-coded) input, maximum voltage for spike arrays
    #: and time constants (in steps) that span a fifth of a spike array's sequence (at least 10 steps)
    _auto_parameters: ClassVar[dict] = {"loss": ("ttfs", "voltage"), "tau_mem": (20.0, lambda n: max(20.0, n / 5.0)),
                        "tau_syn": (5.0, lambda n: max(20.0, n / 5.0) / 4.0), "init_mean": (2.5, 1.5),
                        "max_iter": (35, 40)}
    _fitted_attributes: ClassVar[dict] = {"loss_": "str", "tau_mem_": "float", "tau_syn_": "float", "init_mean_": "float",
                                          "max_iter_": "int"}

    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        ``hidden_layer_sizes`` (50, 100, 200, 100x50), ``tau_mem`` (8 to 40 steps, log) and
        ``tau_syn`` (1.5 to 7.5 steps, log; disjoint ranges, since the two must differ; the 2D
        defaults 20 / 5 lie inside), ``tau0`` (0.1
        to 1, log), ``tau1`` (1 to 10, log) and ``ttfs_reg`` (1e-4 to 1e-2, log) of the ttfs loss,
        ``init_mean`` (0.5 to 3), ``learning_rate_init`` (1e-3 to 2e-2, log) and ``alpha`` (1e-6
        to 1e-2, log). ``max_iter``, ``batch_size``, ``n_steps`` and ``dt`` set the cost of a
        trial and are left to the user.

        Returns
        -------
        space : dict of str to optuna.distributions.BaseDistribution
            ``hidden_layer_sizes`` choices are strings such as ``"128x64"``, which
            :class:`~sklearn_snn.model_selection.OptunaSearchCV` decodes to tuples.
        """
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "hidden_layer_sizes": CategoricalDistribution(["50", "100", "200", "100x50"]),
            "tau_mem": FloatDistribution(8.0, 40.0, log=True),
            "tau_syn": FloatDistribution(1.5, 7.5, log=True),
            "tau0": FloatDistribution(0.1, 1.0, log=True),
            "tau1": FloatDistribution(1.0, 10.0, log=True),
            "ttfs_reg": FloatDistribution(1e-4, 1e-2, log=True),
            "init_mean": FloatDistribution(0.5, 3.0),
            "learning_rate_init": FloatDistribution(1e-3, 2e-2, log=True),
            "alpha": FloatDistribution(1e-6, 1e-2, log=True),
        }

    def __init__(self, hidden_layer_sizes="auto", *, loss="auto", n_steps=25, dt=1.0, tau_mem="auto", tau_syn="auto",
                 threshold=1.0, recurrent=False, input_window=7.5, tau0=0.25, tau1=3.2, ttfs_reg=3e-3,
                 init_mean="auto", init_std=1.0, input_encoding="pair", input_scaling="auto", time_scale=1.0, alpha=0.0,
                 batch_size=32,
                 learning_rate_init=2e-2, solver="adam", lr_schedule="cosine", max_iter="auto", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, warm_start=False, device="auto",
                 torch_num_threads=None, random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.loss = loss
        self.n_steps = n_steps
        self.dt = dt
        self.tau_mem = tau_mem
        self.tau_syn = tau_syn
        self.threshold = threshold
        self.recurrent = recurrent
        self.input_window = input_window
        self.tau0 = tau0
        self.tau1 = tau1
        self.ttfs_reg = ttfs_reg
        self.init_mean = init_mean
        self.init_std = init_std
        self.input_encoding = input_encoding
        self.input_scaling = input_scaling
        self.time_scale = time_scale
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.lr_schedule = lr_schedule
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    # --- network, input, loss -------------------------------------------------------------------
    def _spec(self):
        return ep.EventPropSpec(tau_mem=float(self._resolved("tau_mem")), tau_syn=float(self._resolved("tau_syn")),
                                threshold=float(self.threshold), dt=float(self.dt), n_steps=int(self.n_steps),
                                output=self._resolved("loss"))

    def _build_module(self, n_in, n_out, generator):
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, str) and hidden == "auto":
            hidden = (400,) if getattr(self, "input_ndim_", 2) == 3 else (200,)
        hidden = check_hidden_layer_sizes(hidden, allow_empty=False)
        return EventPropNet(n_in, hidden, n_out, self._spec(), recurrent=self.recurrent, tau0=self.tau0,
                            init_mean=float(self._resolved("init_mean")), init_std=self.init_std, generator=generator)

    def _n_encoded(self, n_features):
        pair = self.input_encoding == "pair" and self.input_ndim_ == 2
        return n_features * (2 if pair else 1) + 1  # + the bias spike

    def _input_scaling_kind(self):
        # 2D input is min-max scaled to [0, 1], which _encode turns into spike latencies
        return None if self.input_scaling is None else "minmax"

    def _encode(self, xb, train=False, generator=None):
        """(B, F) values, (B, T, F) spike arrays or an :class:`EventSet` -> :class:`SpikeEvents`
        with a bias input."""
        dt, n_steps = float(self.dt), int(self.n_steps)
        if isinstance(xb, EventSet):
            return xb.encode(self.n_features_in_, dt, self._n_steps_events())
        if xb.dim() == 3:
            # sparse from the start: (sample, step, channel) of every value > 0, in the array's own
            # dtype (bool / uint8 spikes are never densified to float), plus the bias spike at t = 0
            B, T, F = xb.shape
            b, k, f = (xb > 0).nonzero(as_tuple=True)
            ar = torch.arange(B, device=xb.device)
            k = torch.cat([torch.zeros_like(ar), k])
            b = torch.cat([ar, b])
            f = torch.cat([torch.full_like(ar, F), f])
            order = torch.argsort(k, stable=True)
            off = torch.zeros(k.shape, dtype=torch.float32, device=xb.device)
            return ep.SpikeEvents(k[order], b[order], f[order], off, max(T, n_steps), B, F + 1)
        x = xb.clamp(0.0, 1.0)
        parts = [1.0 - x, x] if self.input_encoding == "pair" else [1.0 - x]
        times = torch.cat(parts + [torch.zeros_like(x[:, :1])], dim=1) * float(self.input_window)
        return ep.SpikeEvents.from_times(times, dt, n_steps)

    def _n_steps_events(self):
        return max(int(self.n_steps), int(self.n_steps_in_ or 0))

    def _scale(self, X):
        return X if isinstance(X, EventSet) else super()._scale(X)

    def _to_tensor(self, X, dtype=torch.float32, device=None):
        return X if isinstance(X, EventSet) else super()._to_tensor(X, dtype=dtype, device=device)

    def _validate(self, X, reset):
        """2D / 3D arrays through the package's validation; event streams to an :class:`EventSet`.

        Event streams are spike input like 3D arrays (``input_ndim_ = 3``): fitted on events, the
        estimator also takes 3D arrays on the same grid, and the other way round. In fit, the
        number of input units is the largest training unit + 1 and the simulated time (in
        steps, ``n_steps_in_``) holds the latest training event."""
        if not is_event_stream(X):
            return validate_snn_input(self, X, reset=reset)[0]
        name = type(self).__name__
        if reset:
            es = check_event_streams(X, name=name, time_scale=float(self.time_scale))
            if es.n_events == 0:
                raise ValueError(f"{name}: the training event streams hold no events at all; nothing to learn from.")
            self.n_features_in_ = int(es.units.max()) + 1
            self.n_steps_in_ = math.floor(float(es.times.max()) / float(self.dt)) + 1
            self.input_ndim_ = 3
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return es
        check_input_ndim(self, 3, name)
        return check_event_streams(X, name=name, time_scale=float(self.time_scale), n_units=self.n_features_in_,
                                   dt=float(self.dt), n_steps=self._n_steps_events())

    def _logits(self, X):
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return self._batched(X, lambda m, x: m(x)[0].double().cpu().numpy())

    def _fit_input(self, X, y, reset):
        """The shared fit's input hook: event streams become an :class:`EventSet`, arrays go
        through the package's validation."""
        if not is_event_stream(X):
            return super()._fit_input(X, y, reset)
        y = np.asarray(y)
        es = self._validate(X, reset=reset)
        if len(y) != len(es):
            raise ValueError(f"X holds {len(es)} event streams but y has {len(y)} labels.")
        return es, y

    def _fit_scaler(self, X):
        if isinstance(X, EventSet):
            self.input_offset_, self.input_scale_ = None, None
        else:
            super()._fit_scaler(X)

    def _batch_source(self, Xs, rows, device):
        if isinstance(Xs, EventSet):
            return Xs if rows is None else Xs.take(rows)
        return super()._batch_source(Xs, rows, device)

    def _loss_terms(self, logits, yb, wb):
        if self._resolved("loss") == "ttfs":
            t = -logits * self.tau0  # logits back to first spike times
            spec = self._spec()
            return ep.ttfs_loss(t, yb, self.tau0, self.tau1, self.ttfs_reg, t_cap=spec.t_end + spec.tau_mem,
                                sample_weight=wb)
        loss = ep.voltage_loss(logits, yb, wb)
        return loss, loss.new_zeros(())

    def _loss(self, logits, yb, wb):
        return self._loss_terms(logits, yb, wb)[0]

    def _make_step(self, generator):
        def step(module, xb, yb, wb):
            logits, _ = module(self._encode(xb, train=True))
            loss, reg = self._loss_terms(logits, yb, wb)
            loss.backward()
            return float(loss.detach() - reg.detach()), float(reg.detach())

        return step

    # --- public API -----------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, epoch_callback=None):
        """Train on X, y for up to ``max_iter`` epochs (continues the weights with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features), or list
            Features, spike arrays, or event streams (one structured array with fields ``t`` and
            ``x`` per sample; see the class description).
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
        epoch_callback : callable, optional
            ``epoch_callback(estimator, epoch, info) -> bool`` after every epoch; truthy stops.
        """
        return self._fit(X, y, sample_weight, incremental=False, epoch_callback=epoch_callback)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train exactly one epoch over X, y; ``classes`` is required on the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def simulate(self, X):
        """Run the fitted network on X and return its activity as numpy arrays.

        Returns
        -------
        dict with
            ``spikes``: list, per layer (output last; empty for ``loss='voltage'``), of arrays
            (n_samples, n_steps, n_units), 1 where a neuron spiked in that step;
            ``spike_offsets``: same layout, the exact spike time minus the step's start;
            ``membrane``: list, per layer, of membrane potentials at the end of each step
            (after reset); ``output``: (n_samples, n_classes) first spike times (``ttfs``,
            pseudo times for silent neurons) or maximum voltages (``voltage``);
            ``n_spikes``: (n_samples, n_spiking_layers) spike counts; ``layers``, ``n_steps``,
            ``synops``, ``macs``, ``ann_macs`` and ``input_spikes`` as in
            :meth:`sklearn_snn.base.BaseSNN.simulate`.
        """
        from .metrics import SynapticOpCounter

        check_is_fitted(self)
        X = self._validate(X, reset=False)
        conns, k = [], 0
        recurrent = tuple(self.module_.recurrent)
        for i, rec in enumerate(recurrent):
            conns.append((i, i - 1, self.module_.weights[k]))
            k += 1
            if rec:
                conns.append((i, i, self.module_.weights[k]))
                k += 1
        conns.append((len(recurrent), len(recurrent) - 1, self.module_.weights[k]))
        counter = SynapticOpCounter(conns)

        def fn(m, x):
            spec = m.run_spec(x)
            res = ep.simulate(spec, x, list(m.weights), m.recurrent, record=True)
            n_spiking = len(res["spikes"]) - (spec.output == "voltage")
            spikes = [s.transpose(0, 1).float().cpu().numpy() for s in res["spikes"][:n_spiking]]
            return {
                "spikes": spikes,
                "spike_offsets": [o.transpose(0, 1).cpu().numpy() for o in res["offsets"][:n_spiking]],
                "membrane": [v.transpose(0, 1).float().cpu().numpy() for v in res["voltages"]],
                "output": res["out"].double().cpu().numpy(),
                "n_spikes": np.stack([s.sum(axis=(1, 2)) for s in spikes], 1),
                **counter(x, [s.sum(1) for s in spikes]),
            }

        res = self._batched(X, fn)
        res["layers"] = [f"hidden_{i}" for i in range(len(recurrent))] + ["output"]
        res["n_steps"] = int(res["membrane"][0].shape[1])
        res["ann_macs"] = counter.ann_macs.copy()
        return res

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags
