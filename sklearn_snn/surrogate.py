"""Surrogate-gradient spiking networks: ``SurrogateSNNClassifier`` and ``SurrogateSNNRegressor``.

Exact spikes in the forward pass, a smooth pseudo-derivative in the backward pass, trained by
backpropagation through time (BPTT) over the unrolled network -- or truncated BPTT in windows of
``bptt_window`` steps for long inputs -- on the shared training loop of ``sklearn_snn._core``.
"""

from __future__ import annotations

import dataclasses
from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._core.eprop import eprop_step
from ._core.network import READOUTS, SNN, activity_penalty
from ._core.neurons import NEURON_MODELS
from .base import BaseSNN, GradientSNNMixin, SNNClassifierMixin, settings_from_params
from .validation import (
    NETWORK_CONSTRAINTS,
    TRAINING_CONSTRAINTS,
    check_hidden_layer_sizes,
    standardize_target,
)

_REG_CONSTRAINTS = {
    "spike_l1": [Interval(Real, 0, None, closed="left")],
    "spike_l2": [Interval(Real, 0, None, closed="left")],
    "target_rate": [tuple, list, None],
    "rate_penalty": [Interval(Real, 0, None, closed="left")],
    "normalization": [StrOptions({"bntt", "tdbn"}), None],
    "grad_clip": [Interval(Real, 0, None, closed="neither"), None],
    "learn_tau": ["boolean"],
    "learn_threshold": ["boolean"],
}


@dataclasses.dataclass(frozen=True)
class SurrogateOptions:
    """The surrogate-gradient network's training options; an estimator built on it without one of
    these parameters (``MetaSNNClassifier``) takes the default declared here."""

    credit_assignment: str = "bptt"
    bptt_window: int | None = None
    normalization: str | None = None
    spike_l1: float = 0.0
    spike_l2: float = 0.0
    target_rate: tuple | None = None
    rate_penalty: float = 0.0


def spike_time_constant(n_steps):
    """The 'auto' time constant (in steps) for 3D input of ``n_steps`` steps: a fifth of the
    sequence, at least 5 steps, so that a neuron integrates input spikes spread over the
    sequence.

    Examples
    --------
    >>> spike_time_constant(100), spike_time_constant(10)
    (20.0, 5.0)
    """
    return max(5.0, n_steps / 5.0)


#: What ``'auto'`` means for the neuron and its time constants: (2D tabular input, 3D spike
#: trains / sequences). 2D input keeps the LIF network tuned on tabular data; on 3D input the
#: answer depends on *when* inputs arrive, so the neuron integrates its input spikes in a synaptic
#: current ('cuba') with time constants of a fifth of the sequence (``benchmarks/spike_defaults.py``
#: compares them with a grid on random-manifold tasks of several sizes).
SPIKE_INPUT_DEFAULTS = {"neuron": ("lif", "cuba"), "tau_mem": (10.0, spike_time_constant),
                        "tau_syn": (5.0, spike_time_constant)}


class _SurrogateBase(GradientSNNMixin, BaseSNN):
    _parameter_constraints = {**NETWORK_CONSTRAINTS, **TRAINING_CONSTRAINTS, **_REG_CONSTRAINTS,
                              "neuron": [StrOptions(set(NEURON_MODELS) | {"auto"})],
                              "tau_mem": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
                              "tau_syn": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
                              "readout": [StrOptions(set(READOUTS) | {"auto"})]}
    _fitted_attributes = {"neuron_": "str", "tau_mem_": "float", "tau_syn_": "float", "readout_": "str"}

    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        ``neuron`` ('lif' or 'cuba'; ``tau_syn`` acts through the synaptic current of 'cuba'),
        ``tau_mem`` (2 to 40 steps, log), ``tau_syn`` (2 to 20 steps, log), ``threshold`` (0.5 to
        2), ``surrogate`` and ``surrogate_slope`` (1 to 25, log), ``hidden_layer_sizes`` (64, 128,
        256, 128x64), ``learning_rate_init`` (5e-4 to 2e-2, log), ``n_steps`` (5 to 30),
        ``encoder`` (current, rate, latency) and ``alpha`` (1e-6 to 1e-2, log). ``max_iter`` and
        ``batch_size`` set the cost of a trial and are left to the user.

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
            "neuron": CategoricalDistribution(["lif", "cuba"]),
            "tau_mem": FloatDistribution(2.0, 40.0, log=True),
            "tau_syn": FloatDistribution(2.0, 20.0, log=True),
            "threshold": FloatDistribution(0.5, 2.0),
            "surrogate": CategoricalDistribution(["fast_sigmoid", "sigmoid", "arctan", "triangle"]),
            "surrogate_slope": FloatDistribution(1.0, 25.0, log=True),
            "hidden_layer_sizes": CategoricalDistribution(["64", "128", "256", "128x64"]),
            "learning_rate_init": FloatDistribution(5e-4, 2e-2, log=True),
            "n_steps": IntDistribution(5, 30, step=5),
            "encoder": CategoricalDistribution(["current", "rate", "latency"]),
            "alpha": FloatDistribution(1e-6, 1e-2, log=True),
        }

    def __init__(self, hidden_layer_sizes=(128,), *, n_steps=10, neuron="auto", tau_mem="auto", tau_syn="auto",
                 threshold=1.0, reset="subtract", surrogate="fast_sigmoid", surrogate_slope=5.0, recurrent=False,
                 encoder="current", readout="auto", input_scaling="auto", alpha=1e-4, batch_size="auto",
                 learning_rate_init=2e-3, solver="adam", lr_schedule="constant", max_iter=50,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 credit_assignment="bptt", bptt_window=None, grad_clip=None,
                 spike_l1=0.0, spike_l2=0.0, target_rate=None, rate_penalty=0.0, normalization=None,
                 learn_tau=False, learn_threshold=False, warm_start=False, device="auto", torch_num_threads=None,
                 random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_steps = n_steps
        self.neuron = neuron
        self.tau_mem = tau_mem
        self.tau_syn = tau_syn
        self.threshold = threshold
        self.reset = reset
        self.surrogate = surrogate
        self.surrogate_slope = surrogate_slope
        self.recurrent = recurrent
        self.encoder = encoder
        self.readout = readout
        self.input_scaling = input_scaling
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
        self.credit_assignment = credit_assignment
        self.bptt_window = bptt_window
        self.grad_clip = grad_clip
        self.spike_l1 = spike_l1
        self.spike_l2 = spike_l2
        self.target_rate = target_rate
        self.rate_penalty = rate_penalty
        self.normalization = normalization
        self.learn_tau = learn_tau
        self.learn_threshold = learn_threshold
        self.warm_start = warm_start
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    @property
    def _readout(self):
        return self._resolved("readout")

    def _build_module(self, n_in, n_out, generator):
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes)
        opts = settings_from_params(self, SurrogateOptions)
        if opts.target_rate is not None:
            lo, hi = opts.target_rate
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"target_rate must be (low, high) with 0 <= low <= high <= 1 spikes per step, "
                                 f"got {opts.target_rate}.")
        if opts.credit_assignment == "tbptt" and self._readout == "first_spike":
            raise ValueError("readout='first_spike' cannot be trained with truncated BPTT; use "
                             "credit_assignment='bptt'.")
        if opts.credit_assignment == "tbptt" and opts.normalization == "bntt":
            raise ValueError("normalization='bntt' keeps statistics per absolute step and cannot be combined "
                             "with credit_assignment='tbptt'; use normalization='tdbn'.")
        n_steps = self.n_steps_in_ if self.input_ndim_ == 3 else self.n_steps
        net = SNN(n_in, hidden, n_out, self._neuron_spec(), self.surrogate, self.surrogate_slope,
                  recurrent=self.recurrent, readout=self._readout, learn_tau=self.learn_tau,
                  learn_threshold=self.learn_threshold, normalization=opts.normalization, n_steps=n_steps,
                  generator=generator)
        if opts.credit_assignment == "eprop":
            from ._core.eprop import check_eprop_support

            check_eprop_support(net)
        return net

    def _check_steps(self, X):
        if (X.ndim == 3 and settings_from_params(self, SurrogateOptions).normalization == "bntt"
                and X.shape[1] != self.n_steps_in_):
            raise ValueError(f"This model keeps per-step batch-norm statistics for {self.n_steps_in_} steps; "
                             f"got X with {X.shape[1]} steps. Pass sequences of the fitted length.")

    def _regulariser(self, opts):
        if not (opts.spike_l1 or opts.spike_l2 or (opts.target_rate is not None and opts.rate_penalty)):
            return None
        # hidden layers only: run() appends the output layer's spikes for a spiking readout
        spiking_out = self._readout in ("spike_count", "first_spike")
        return lambda spikes: activity_penalty(spikes[:-1] if spiking_out and len(spikes) > 1 else spikes,
                                               opts.spike_l1, opts.spike_l2, opts.target_rate, opts.rate_penalty)

    def _make_step(self, generator):
        opts = settings_from_params(self, SurrogateOptions)
        reg_fn = self._regulariser(opts)
        method = opts.credit_assignment
        window = (opts.bptt_window or 32) if method == "tbptt" else None

        def step(module, xb, yb, wb):
            x = self._encode(xb, train=True, generator=generator)
            if method == "eprop":
                return eprop_step(module, x, lambda logits: self._loss(logits, yb, wb), reg_fn)
            if window is not None and window < x.shape[0]:
                return module.tbptt_backward(x, lambda logits: self._loss(logits, yb, wb), window, reg_fn)
            logits, spikes = module(x)
            loss = self._loss(logits, yb, wb)
            reg = reg_fn(spikes) if reg_fn is not None else None
            # the float spike trains are not read by the backward pass (each layer keeps what it
            # needs, spikes as uint8): dropping them here lowers the peak memory of the step
            del spikes
            total = loss + reg if reg is not None else loss
            total.backward()
            return float(loss.detach()), float(reg.detach()) if reg is not None else 0.0

        return step

    def learned_neuron_parameters(self):
        """Per layer, the fitted decays (``beta``, ``alpha``) and thresholds as numpy arrays.

        Only the parameters switched on with ``learn_tau`` / ``learn_threshold`` are present.
        """
        check_is_fitted(self)
        out = []
        for layer in self.module_.layers:
            d = {}
            with torch.no_grad():
                if hasattr(layer, "neuron_params"):
                    beta, alpha, thr = layer.neuron_params()
                    if beta is not None:
                        d["beta"] = beta.cpu().numpy()
                        d["tau_mem"] = -1.0 / np.log(d["beta"])
                    if alpha is not None:
                        d["alpha"] = alpha.cpu().numpy()
                        d["tau_syn"] = -1.0 / np.log(d["alpha"])
                    if thr is not None:
                        d["threshold"] = thr.cpu().numpy()
                elif getattr(layer, "learn_tau", False):
                    d["beta"] = torch.sigmoid(layer.beta_raw).cpu().numpy()
                    d["tau_mem"] = -1.0 / np.log(d["beta"])
            out.append(d)
        return out


_COMMON_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(128,)
        Width of each hidden spiking layer.
    n_steps : int, default=10
        Number of simulation steps for 2D input (3D input brings its own).
    neuron : {'auto', 'lif', 'cuba', 'alif', 'if'}, default='auto'
        Neuron model (equations in :mod:`sklearn_snn._core.neurons`). 'auto' is 'lif' for 2D
        input and 'cuba' (a synaptic current integrates the input spikes, which makes the network
        sensitive to spike timing) for 3D input; the fitted ``neuron_`` says which.
    tau_mem, tau_syn : float or 'auto', default='auto'
        Membrane and synaptic time constants in steps (> 1), or decay factors in (0, 1]. 'auto'
        is 10.0 and 5.0 for 2D input; for 3D input both are a fifth of the number of steps, at
        least 5 (20.0 for 100 steps; fitted ``tau_mem_``, ``tau_syn_``).
    threshold : float, default=1.0
        Firing threshold.
    reset : {'subtract', 'zero'}, default='subtract'
    surrogate : str or callable, default='fast_sigmoid'
        Pseudo-derivative used backward: 'fast_sigmoid', 'sigmoid', 'arctan', 'triangle',
        'gaussian', 'exponential', 'straight_through' or ``f(x, slope)``.
    surrogate_slope : float, default=5.0
    recurrent : bool, default=False
        Recurrent connections within each hidden layer.
    encoder : {'current', 'rate', 'latency', 'population', 'delta'}, default='current'
        How 2D input becomes input over time ('delta' applies to 3D time series).
    readout : {'auto', 'membrane_max', 'membrane_last', 'membrane_mean', 'spike_count', 'first_spike'}
        How the output layer's activity over time becomes the prediction; 'auto' is
        'membrane_mean' for the regressor and for the classifier on 3D input, 'membrane_max' for
        the classifier on 2D input (fitted ``readout_``).
    input_scaling : 'auto' or None, default='auto'
        'auto' standardises 2D features with training statistics (min-max to [0, 1] for spike
        encoders); None uses X as given. 3D input is never rescaled.
    alpha : float, default=1e-4
        L2 penalty (weight decay).
    batch_size : int or 'auto', default='auto'
        ``min(200, n_samples)`` for 'auto'.
    learning_rate_init : float, default=2e-3
    solver : {'adam', 'adamw', 'sgd', 'adam-hd', 'sgd-hd'}, default='adam'
        '-hd' variants adapt the learning rate by hypergradient descent.
    lr_schedule : {'constant', 'cosine', 'plateau'}, default='constant'
    max_iter : int, default=50
        Maximum number of epochs.
    early_stopping, validation_fraction, n_iter_no_change, tol :
        As in :class:`~sklearn.neural_network.MLPClassifier`.
    credit_assignment : {'bptt', 'tbptt', 'eprop'}, default='bptt'
        How errors reach the weights: backpropagation through time over the whole input;
        truncated BPTT in windows of ``bptt_window`` steps (memory of one window); or e-prop
        (Bellec et al. 2020), eligibility traces forward in time times a learning signal
        (memory independent of the input length; :mod:`sklearn_snn._core.eprop`).
    bptt_window : int or None, default=None
        Window length for ``credit_assignment='tbptt'`` (None: 32 steps).
    grad_clip : float or None, default=None
        Clip the global gradient norm to this value before each step (recommended for recurrent
        networks, whose BPTT gradients through the recurrent weights can explode).
    spike_l1, spike_l2 : float, default=0.0
        Penalties on hidden spike counts.
    target_rate : (float, float) or None, default=None
        Firing-rate band (spikes per step) per hidden neuron, enforced with ``rate_penalty``.
    rate_penalty : float, default=0.0
    normalization : {None, 'bntt', 'tdbn'}, default=None
        Batch norm through time on the hidden layers' input current.
    learn_tau, learn_threshold : bool, default=False
        Learn per-neuron time constants / thresholds (kept valid by parametrisation).
    warm_start : bool, default=False
        ``fit`` continues from the fitted weights and history (a fresh optimizer). Parameters that
        change the architecture (``hidden_layer_sizes``, ``neuron``, ``recurrent``, ...) then raise
        a ValueError: set ``warm_start=False`` to train a new network.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
        'auto' uses CUDA when available.
    torch_num_threads : int or None, default=None
        Intra-op threads for torch during fit/predict (set 1 per worker when running many).
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
        1 prints a line per epoch; 2 adds a progress bar.
"""


class SurrogateSNNClassifier(SNNClassifierMixin, ClassifierMixin, _SurrogateBase):
    __doc__ = """Spiking neural network classifier trained with surrogate gradients (BPTT).
""" + _COMMON_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    module_ : torch.nn.Module
        The trained network (:class:`sklearn_snn._core.network.SNN`).
    n_features_in_, feature_names_in_ : as in scikit-learn
    input_ndim_ : int
        2 or 3, the layout seen in fit.
    n_steps_in_ : int or None
        Number of steps of 3D training input.
    neuron_, tau_mem_, tau_syn_, readout_ : str, float, float, str
        The neuron model, time constants and readout the network uses: the parameters, with
        'auto' resolved for the layout of the training input.
    n_iter_ : int
        Epochs run.
    t_ : int
        Optimizer steps taken.
    loss_curve_, reg_curve_ : list of float
        Training loss and regularisation term per epoch.
    best_loss_, validation_scores_, best_validation_score_ :
        As in :class:`~sklearn.neural_network.MLPClassifier`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SurrogateSNNClassifier(max_iter=5, random_state=0).fit(X[:500], y[:500])
    >>> clf.predict_proba(X[:2]).shape
    (2, 10)
    >>> bool(clf.score(X[:500], y[:500]) > 0.8)
    True
    """

    _y_numeric = False
    # on 3D input the mean of the leaky readout over time (every step votes) learns spike
    # timing more reliably than its maximum (benchmarks/spike_defaults.py)
    _auto_parameters = {**SPIKE_INPUT_DEFAULTS, "readout": ("membrane_max", "membrane_mean")}


    # --- public API ---------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, epoch_callback=None):
        """Train on X, y for up to ``max_iter`` epochs (continues the weights with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples in the (weighted mean) loss.
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class SurrogateSNNRegressor(RegressorMixin, _SurrogateBase):
    __doc__ = """Spiking neural network regressor trained with surrogate gradients (BPTT).

    The readout's leaky integrators give the prediction (``readout='membrane_mean'`` by default).
    Targets are standardised internally (mean and scale from fit) and mapped back on predict.
""" + _COMMON_DOC + """
    Attributes
    ----------
    module_ : torch.nn.Module
    n_outputs_ : int
    neuron_, tau_mem_, tau_syn_, readout_ : str, float, float, str
        The parameters the network uses, 'auto' resolved for the training input's layout (as
        in :class:`SurrogateSNNClassifier`).
    y_mean_, y_scale_ : ndarray
        Target standardisation learned in fit.
    n_iter_, t_, loss_curve_, reg_curve_, best_loss_, validation_scores_, best_validation_score_ :
        As in :class:`~sklearn.neural_network.MLPRegressor`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_snn import SurrogateSNNRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, (200, 2)); y = X[:, 0] - 2 * X[:, 1]
    >>> reg = SurrogateSNNRegressor(max_iter=40, random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.8)
    True
    """

    _y_numeric = True
    _auto_parameters = {**SPIKE_INPUT_DEFAULTS, "readout": ("membrane_mean", "membrane_mean")}
    _fitted_attributes = {"n_outputs_": "int", "y_mean_": "array", "y_scale_": "array", "_y_1d": "bool"}


    def _prepare_targets(self, y, reset, classes=None):
        y = np.asarray(y, dtype=np.float64)
        y2 = y.reshape(len(y), -1)
        if reset:
            z, mean, scale = standardize_target(y2, type(self).__name__)
            self._y_1d = y.ndim == 1
            self.n_outputs_ = y2.shape[1]
            self.y_mean_, self.y_scale_ = mean, scale
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} outputs, but the estimator was fitted with {self.n_outputs_}.")
        else:
            z = standardize_target(y2, type(self).__name__, self.y_mean_, self.y_scale_)[0]
        return torch.as_tensor(z, dtype=torch.float32), self.n_outputs_

    def _loss(self, out, yb, wb):
        err = (out - yb).square().mean(1)
        if wb is None:
            return err.mean()
        return (err * wb).sum() / wb.sum().clamp(min=1e-12)

    def _validation_score(self, logits, y):
        return float(r2_score(y, self._targets(logits)))

    def _targets(self, logits):
        out = logits * self.y_scale_ + self.y_mean_
        return out.ravel() if self._y_1d else out

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, epoch_callback=None):
        """Train on X, y (see :meth:`SurrogateSNNClassifier.fit`)."""
        return self._fit(X, y, sample_weight, incremental=False, epoch_callback=epoch_callback)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train exactly one epoch over X, y."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets."""
        return self._targets(self._logits(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
