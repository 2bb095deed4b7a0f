"""ANN-to-SNN conversion: ``ConvertedSNN``.

Train an ANN (or take one), convert it to an integrate-and-fire spiking network with weight
normalisation, reset by subtraction and half-threshold initial membranes, calibrate it on a small
sample, and run it for any number of time steps. The torch side lives in
:mod:`sklearn_snn._core.conversion`; its docstring describes the method in detail.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._core import conversion as conv
from ._core.training import TrainConfig, gradient_epochs, new_state
from .base import BaseSNN, make_generator
from .training import run_training
from .validation import (
    NETWORK_CONSTRAINTS,
    TRAINING_CONSTRAINTS,
    IntervalNotBool,
    check_hidden_layer_sizes,
    input_ndim,
    validate_snn_input,
)

__all__ = ["ConvertedSNN"]



def _check_2d(est, X):
    """Refuse input of 3 or more dimensions with a message that says how to pass it (flattened
    samples and ``input_shape``); 1D input is left to sklearn's validation."""
    nd = input_ndim(X)
    if nd > 2:
        shape = tuple(np.shape(X))
        raise ValueError(
            f"{type(est).__name__} takes 2D input (n_samples, n_features) only; got {nd}D input of shape {shape}. "
            f"For images, flatten each sample with X.reshape(len(X), -1) and give the sample shape as "
            f"input_shape={shape[1:]}. Time series (n_samples, n_steps, n_features) need an estimator that "
            f"takes 3D input, such as SurrogateSNNClassifier."
        )


class ConvertedSNN(ClassifierMixin, BaseSNN):
    """Spiking classifier obtained by converting a ReLU network (ANN-to-SNN conversion).

    The ANN's ReLUs become integrate-and-fire (IF) neurons with reset by subtraction and membranes
    starting at half the threshold; the weights are normalised layer by layer so that every
    threshold is 1; the last layer integrates its input current (non-spiking readout) and the
    class is the arg-max of its time average. The SNN's firing rates approach the ANN's
    activations as ``n_steps`` grows; normalisation, the choice of activation and calibration
    decide how fast.

    Parameters
    ----------
    ann : None, MLPClassifier or torch.nn.Module, default=None
        - ``None``: ``fit`` trains its own MLP (``hidden_layer_sizes``, ``activation``) with Adam,
          then converts it.
        - a ``MLPClassifier`` with ``activation='relu'``: if fitted (directly, or wrapped in
          :class:`~sklearn.frozen.FrozenEstimator` so that it stays fitted through ``clone``), it
          is converted as is and ``fit`` only normalises and calibrates; if not fitted, ``fit``
          first fits a clone of it on ``X, y``.
        - a torch ``nn.Module``: an ``nn.Sequential`` (or a module whose forward is one chain) of
          ``Linear``, ``Conv2d``, ``AvgPool2d``, ``MaxPool2d``, ``BatchNorm1d/2d`` (folded into the
          preceding layer), ``ReLU``/``ReLU6``, ``Flatten`` and ``Dropout`` (removed), with the
          weights as given. Output ``k`` is taken as the ``k``-th class of ``np.unique(y)``.
          Anything else raises :class:`~sklearn_snn._core.conversion.ConversionError` naming the
          layer.
    hidden_layer_sizes : array-like of int, default=(100,)
        Hidden layers of the MLP trained when ``ann=None``.
    activation : {'relu', 'clip', 'qcfs'}, default='relu'
        Hidden activation of the MLP trained when ``ann=None``: plain ReLU, ReLU clipped at a
        trained threshold, or QCFS (quantisation-clip-floor-shift, Bu et al. 2022) with
        ``qcfs_levels`` levels, which makes the conversion accurate at a few time steps.
    qcfs_levels : int, default=8
        Quantisation levels ``L`` of QCFS (best with ``n_steps`` near ``L``).
    n_steps : int, default=32
        Time steps of the simulation for ``predict`` (and of calibration).
    normalization : {'percentile', 'max'}, default='percentile'
        Scale of each ReLU layer: the ``percentile``-th percentile of its positive activations
        on the calibration sample (robust normalisation, Rueckauer et al. 2017) or their maximum.
        Clipped and QCFS layers use their trained threshold.
    percentile : float, default=99.9
        Used by ``normalization='percentile'``.
    calibration : {'bias'} or None, default='bias'
        Layer-wise bias calibration (Li et al. 2021) at ``n_steps`` steps on the calibration
        sample; None converts without calibrating.
    calibration_size : int, default=512
        Number of training samples (drawn with ``random_state``) used to measure the scales and
        to calibrate.
    input_shape : tuple of int or None, default=None
        Shape of one sample for the network, e.g. ``(1, 8, 8)`` for a CNN on flattened 8x8
        images; None means ``(n_features,)``.
    alpha, batch_size, learning_rate_init, max_iter, tol, n_iter_no_change :
        Training of the MLP when ``ann=None``, as in
        :class:`~sklearn.neural_network.MLPClassifier` (Adam, loss-based stopping).
    device : {'auto', 'cpu', 'cuda'}, default='auto'
    torch_num_threads : int or None, default=None
        Intra-op threads for torch during fit/predict.
    random_state : int, RandomState or None, default=None
        Initialisation, shuffling and the calibration sample.
    verbose : int, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    ann_ : MLPClassifier or torch.nn.Module
        The ANN that was converted (the one trained in fit when ``ann=None``). Not kept by the
        safe format (:func:`sklearn_snn.save` / :func:`sklearn_snn.load`), which cannot hold a
        user's object: a loaded model has no ``ann_`` and its parameter ``ann`` is None (refitting
        it trains its own MLP unless ``ann`` is set again). It predicts exactly as before, since
        ``predict_ann`` and ``score_curve`` use ``canonical_ann_``. pickle/joblib keep both.
    canonical_ann_ : torch.nn.Sequential
        The ANN in the form converted (BatchNorm folded, Dropout removed, max-pools after their
        activations); its layer indices are those of ``module_``.
    canonical_layers_ : list of dict
        The architecture of ``canonical_ann_`` in plain values, one dict per layer: ``"type"``
        (``Linear``, ``Conv2d``, ``ReLU``, ``ClipReLU``, ``QCFS``, ``AvgPool2d``, ``MaxPool2d``,
        ``Flatten``) and its settings (see :func:`sklearn_snn._core.conversion.layer_specs`). The
        safe format stores it with the weights and rebuilds ``canonical_ann_`` and ``module_``
        from it and ``activation_scales_``.
    module_ : sklearn_snn._core.conversion.SpikingNetwork
        The converted spiking network (also ``snn_``).
    activation_scales_ : list of float or None
        Normalisation scale ``lambda`` of every activation layer of ``canonical_ann_`` (``None``
        at the other layers).
    calibration_errors_ : list of float or None
        Mean absolute error of each calibrated layer before its correction (ANN units).
    firing_rates_ : dict of str to float
        Mean firing rate (spikes per neuron per step) of each spiking layer on the calibration
        sample at ``n_steps``; keys ``'<index>:<ANN activation>'``.
    input_shape_ : tuple
    n_features_in_, feature_names_in_ : as in scikit-learn
    n_iter_, loss_curve_ : int, list
        Training of the MLP (``ann=None`` or an unfitted ``MLPClassifier``); 0 and [] otherwise.

    Notes
    -----
    Calibration is the bias ("light") calibration of Li et al. (2021): layer by layer, the mean
    difference between the ANN's activation and the SNN's rate (times the layer's scale), per
    neuron or conv channel, is added to the bias feeding the layer; later layers are measured
    after the earlier ones are corrected, so they also absorb the error those pass on. It is tuned
    for ``n_steps``; other step counts in ``predict`` or ``score_curve`` reuse it.

    The spiking max-pool emits the increment of the window's largest cumulative spike count, so
    its spike count equals the maximum of its inputs' counts at every step (binary, causal and
    exact in rate); see :class:`~sklearn_snn._core.conversion.SpikingMaxPool2d`.

    References
    ----------
    Rueckauer et al. (2017), Front. Neurosci. 11:682. Bu et al. (2022), ICLR. Li et al. (2021), ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn.conversion import ConvertedSNN
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> clf = ConvertedSNN(hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=1e-2,
    ...                    n_steps=16, random_state=0)
    >>> clf = clf.fit(X[:800], y[:800])
    >>> bool(clf.score(X[800:1200], y[800:1200]) > 0.85)
    True
    >>> curve = clf.score_curve(X[1000:], y[1000:], steps=[4, 16])
    >>> sorted(curve)
    ['accuracy', 'ann_accuracy', 'steps']
    """

    _torch_attributes = ("module_", "canonical_ann_", "ann_")

    # what sklearn_snn.save keeps (see sklearn_snn.persistence); module_ and canonical_ann_ are
    # rebuilt from canonical_layers_ and activation_scales_ by _rebuild_module
    _fitted_attributes = {
        "classes_": "labels", "input_shape_": "ints", "n_iter_": "int", "loss_curve_": "floats",
        "canonical_layers_": "records", "activation_scales_": "optional_floats",
        "calibration_errors_": "floats?", "firing_rates_": "float_map",
    }
    # the user's ANN (an MLPClassifier or any torch module) is an object the safe format cannot
    # hold: save writes the parameter ``ann`` as None and leaves ``ann_`` out (the converted form,
    # canonical_ann_, is what predictions use)
    _unsaved_parameters = ("ann",)
    _unsaved_attributes = ("ann_",)

    _parameter_constraints = {
        "ann": [None, torch.nn.Module, HasMethods(["fit", "predict"])],
        "hidden_layer_sizes": NETWORK_CONSTRAINTS["hidden_layer_sizes"],
        "activation": [StrOptions({"relu", "clip", "qcfs"})],
        "qcfs_levels": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_steps": NETWORK_CONSTRAINTS["n_steps"],
        "normalization": [StrOptions({"max", "percentile"})],
        "percentile": [Interval(Real, 0, 100, closed="right")],
        "calibration": [StrOptions({"bias"}), None],
        "calibration_size": [IntervalNotBool(Integral, 1, None, closed="left")],
        "input_shape": ["array-like", None],
        **{k: TRAINING_CONSTRAINTS[k] for k in
           ("alpha", "batch_size", "learning_rate_init", "max_iter", "tol", "n_iter_no_change")},
        **{k: NETWORK_CONSTRAINTS[k] for k in ("device", "torch_num_threads", "random_state", "verbose")},
    }

    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        The MLP trained when ``ann=None``: ``hidden_layer_sizes`` (64, 128, 256, 128x64),
        ``activation`` (relu, clip, qcfs), ``qcfs_levels`` (2 to 16, log), ``learning_rate_init``
        (1e-4 to 1e-2, log) and ``alpha`` (1e-6 to 1e-2, log); the conversion: ``n_steps`` (8 to
        64), ``normalization`` (percentile, max) and ``percentile`` (99 to 100). ``max_iter``,
        ``batch_size`` and ``calibration_size`` set the cost of a trial and are left to the user.

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
            "hidden_layer_sizes": CategoricalDistribution(["64", "128", "256", "128x64"]),
            "activation": CategoricalDistribution(["relu", "clip", "qcfs"]),
            "qcfs_levels": IntDistribution(2, 16, log=True),
            "learning_rate_init": FloatDistribution(1e-4, 1e-2, log=True),
            "alpha": FloatDistribution(1e-6, 1e-2, log=True),
            "n_steps": IntDistribution(8, 64, step=8),
            "normalization": CategoricalDistribution(["percentile", "max"]),
            "percentile": FloatDistribution(99.0, 100.0),
        }

    def __init__(self, ann=None, *, hidden_layer_sizes=(100,), activation="relu", qcfs_levels=8, n_steps=32,
                 normalization="percentile", percentile=99.9, calibration="bias", calibration_size=512,
                 input_shape=None, alpha=1e-4, batch_size="auto", learning_rate_init=1e-3, max_iter=200,
                 tol=1e-4, n_iter_no_change=10, device="auto", torch_num_threads=None, random_state=None,
                 verbose=0):
        self.ann = ann
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.qcfs_levels = qcfs_levels
        self.n_steps = n_steps
        self.normalization = normalization
        self.percentile = percentile
        self.calibration = calibration
        self.calibration_size = calibration_size
        self.input_shape = input_shape
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, epoch_callback=None):
        """Get the ANN (train it, fit it, or take it as given), convert, normalise and calibrate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened samples (see ``input_shape``).
        y : array-like of shape (n_samples,)
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, epoch, info) -> bool`` after every epoch of the ANN's
            training (``ann=None``); truthy stops it. The conversion follows.

        Returns
        -------
        self
        """
        _check_2d(self, X)
        X, y = validate_snn_input(self, X, y, reset=True, allow_3d=False)
        check_classification_targets(y)
        self.input_shape_ = self._resolve_input_shape()
        device = self._device()
        # conversion and calibration in float32 (fast conv kernels); predict uses _inference_dtype
        dtype = torch.float32
        generator = make_generator(self.random_state)
        self.n_iter_, self.loss_curve_ = 0, []
        # nn.Linear / nn.Conv2d constructors draw a default init from torch's global RNG (overwritten
        # right after): fork it so that fit leaves the user's global RNG state untouched
        cuda = [device.index or 0] if device.type == "cuda" else []
        interrupt = None
        if hasattr(self, "ann_"):
            del self.ann_
        with self._threads(), torch.random.fork_rng(devices=cuda):
            try:
                torch_ann = self._get_ann(X, y, device, generator, epoch_callback)
            except KeyboardInterrupt as exc:
                if self.ann is not None or not hasattr(self, "ann_"):
                    raise
                interrupt, torch_ann = exc, self.ann_   # convert what was trained, then say so
            self.canonical_ann_ = conv.parse_ann(torch_ann).to(device=device, dtype=dtype)
            self.canonical_layers_ = conv.layer_specs(self.canonical_ann_)
            if any(isinstance(m, torch.nn.Conv2d) for m in self.canonical_ann_) and len(self.input_shape_) != 3:
                raise ValueError(f"The network has Conv2d layers: set input_shape=(channels, height, width) "
                                 f"(e.g. (1, 8, 8)); got input_shape={self.input_shape}.")
            rng = check_random_state(self.random_state)
            n_cal = min(self.calibration_size, X.shape[0])
            idx = np.sort(rng.choice(X.shape[0], n_cal, replace=False)) if n_cal < X.shape[0] else np.arange(n_cal)
            xc = self._input_tensor(X[idx], dtype)
            try:
                n_out = self.canonical_ann_(xc[:1]).shape[-1]
            except RuntimeError as exc:
                raise ValueError(f"The network cannot be applied to samples of shape {self.input_shape_}: {exc}") from exc
            if n_out != len(self.classes_):
                raise ValueError(f"The network has {n_out} outputs but y has {len(self.classes_)} classes "
                                 f"{self.classes_.tolist()}; output k must stand for the k-th sorted class.")
            self.activation_scales_ = conv.activation_scales(
                self.canonical_ann_, xc, self.normalization, self.percentile)
            self.module_ = conv.convert(self.canonical_ann_, self.activation_scales_)
            self.calibration_errors_ = None
            if self.calibration == "bias":
                self.calibration_errors_, rates = conv.calibrate_bias(
                    self.module_, self.canonical_ann_, xc, self.n_steps)
            else:
                rates = self.module_.firing_rates(xc, self.n_steps)
            self.firing_rates_ = self._named_rates(rates)
        if interrupt is not None:
            raise interrupt
        return self

    def __sklearn_is_fitted__(self):
        # fitted once converted: while its ANN trains, the estimator has no network to run or save
        return hasattr(self, "module_")

    def _rebuild_module(self, name="module_"):
        """An empty network of the fitted architecture, for ``sklearn_snn.load`` (which loads the
        weights after): ``canonical_ann_`` from ``canonical_layers_``, and ``module_`` converted from
        it with ``activation_scales_`` (IF thresholds and per-layer scales derive from those; the
        calibrated weights and biases come from the file)."""
        if name not in ("module_", "canonical_ann_"):
            raise ValueError(f"{name} is not kept by the safe format: {type(self).__name__} rebuilds only "
                             "module_ and canonical_ann_.")
        shape = tuple(self.input_shape_)
        if not shape or any(s < 1 for s in shape) or int(np.prod(shape, dtype=object)) != self.n_features_in_:
            raise ValueError(f"input_shape_={shape} does not hold the {self.n_features_in_} input features.")
        ann = conv.sequential_from_specs(self.canonical_layers_, input_shape=shape, n_outputs=len(self.classes_))
        conv.check_scales(ann, self.activation_scales_)  # one per layer, positive at the activations
        if name == "canonical_ann_":
            return ann
        # convert builds its layers with torch's default init: leave the global RNG as it was
        with torch.random.fork_rng(devices=[]):
            return conv.convert(ann, self.activation_scales_)

    def _resolve_input_shape(self):
        if self.input_shape is None:
            return (self.n_features_in_,)
        shape = tuple(int(s) for s in np.atleast_1d(self.input_shape))
        if any(s < 1 for s in shape) or int(np.prod(shape)) != self.n_features_in_:
            raise ValueError(f"input_shape={self.input_shape} does not hold the {self.n_features_in_} features of X.")
        return shape

    def _get_ann(self, X, y, device, generator, epoch_callback=None):
        """Returns the torch ANN to convert; sets ``ann_``, ``classes_`` (and the training history)."""
        ann = self.ann
        if ann is None:
            self.classes_ = np.unique(y)
            self._check_two_classes()
            return self._train_mlp(X, y, device, generator, epoch_callback)
        if isinstance(ann, torch.nn.Module):
            self.classes_ = np.unique(y)
            self.ann_ = ann
            return ann
        est = getattr(ann, "estimator", ann) if type(ann).__name__ == "FrozenEstimator" else ann
        from sklearn.neural_network import MLPClassifier

        if not isinstance(est, MLPClassifier):
            raise TypeError(f"ann must be None, an MLPClassifier or a torch.nn.Module; got {type(ann).__name__}.")
        if est.activation != "relu":
            raise ValueError(f"Only a ReLU MLPClassifier can be converted; this one has activation={est.activation!r}.")
        if not hasattr(est, "coefs_"):
            from sklearn.base import clone

            est = ann = clone(est).fit(X, y)
            self.n_iter_, self.loss_curve_ = est.n_iter_, list(est.loss_curve_)
        if est.n_features_in_ != self.n_features_in_:
            raise ValueError(f"X has {self.n_features_in_} features, but the MLPClassifier was fitted on "
                             f"{est.n_features_in_}.")
        y_type = getattr(getattr(est, "_label_binarizer", None), "y_type_", None)
        if est.out_activation_ not in ("softmax", "logistic") or y_type == "multilabel-indicator":
            raise ValueError("Only single-label MLPClassifier models can be converted.")
        unknown = np.setdiff1d(np.unique(y), est.classes_)
        if unknown.size:
            raise ValueError(f"y has labels {unknown.tolist()} that the MLPClassifier does not know "
                             f"({est.classes_.tolist()}).")
        self.classes_ = est.classes_
        self.ann_ = ann
        return conv.mlp_from_weights(est.coefs_, est.intercepts_, binary_logistic=est.out_activation_ == "logistic")

    def _check_two_classes(self):
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, but the "
                             f"data contains only one class: {self.classes_[0]!r}.")

    def _train_mlp(self, X, y, device, generator, epoch_callback):
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes)
        if self.input_shape is not None and len(self.input_shape_) != 1:
            raise ValueError("ann=None trains an MLP: input_shape must be None or (n_features,); pass a torch "
                             "CNN as ann to convert a convolutional network.")
        net = conv.build_mlp(self.n_features_in_, hidden, len(self.classes_), self.activation,
                             levels=self.qcfs_levels, generator=generator).to(device)
        xt = torch.tensor(np.asarray(X), dtype=torch.float32, device=device)
        yt = torch.as_tensor(np.searchsorted(self.classes_, y), dtype=torch.long, device=device)
        if self.activation != "relu":  # start each clipping threshold at the scale of its layer
            with torch.no_grad():
                h = xt
                for m in net:
                    if isinstance(m, (conv.ClipReLU, conv.QCFS)):
                        pos = h[h > 0]
                        m.threshold.fill_(float(pos.quantile(0.99)) if pos.numel() else 1.0)
                    h = torch.relu(h) if isinstance(m, (conv.ClipReLU, conv.QCFS)) else m(h)
        cfg = TrainConfig(max_iter=self.max_iter, batch_size=self.batch_size,
                          learning_rate_init=self.learning_rate_init, alpha=self.alpha, tol=self.tol,
                          n_iter_no_change=self.n_iter_no_change, verbose=int(self.verbose))
        state = new_state(net, cfg)

        def step(module, xb, yb, wb):
            loss = torch.nn.functional.cross_entropy(module(xb), yb)
            loss.backward()
            return float(loss.detach()), 0.0

        def sync(st):
            self.n_iter_, self.loss_curve_ = st.n_iter, list(st.loss_curve)

        # the ANN's epochs run on the one trainer; after an interrupt, fit converts the weights reached
        # so far (``ann_`` holds them) and then raises it again
        try:
            run_training(self, gradient_epochs(net, state, xt, yt, step, cfg, self.max_iter, generator=generator),
                         self.max_iter, state, epoch_callback=epoch_callback, sync=sync, what="ANN training",
                         keeps="the ANN weights reached so far, converted",
                         converge_message=f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached and "
                                          "the optimization hasn't converged yet.")
        finally:
            self.ann_ = net.eval().requires_grad_(False).cpu()
        return self.ann_

    def _named_rates(self, rates):
        idx = self.module_.spiking_layers
        return {f"{i}:{type(self.canonical_ann_[i]).__name__}": r for i, r in zip(idx, rates)}

    # ------------------------------------------------------------------------------ inference
    @property
    def snn_(self):
        """The converted spiking network (same object as ``module_``)."""
        check_is_fitted(self)
        return self.module_

    def _input_tensor(self, X, dtype):
        return self._to_tensor(X, dtype=dtype).reshape(-1, *self.input_shape_)

    def _encode(self, xb, train, generator=None):
        # the converted network takes the sample itself as a constant input current
        return xb.reshape(xb.shape[0], *self.input_shape_)

    def _check_n_steps(self, n_steps):
        n_steps = self.n_steps if n_steps is None else n_steps
        if isinstance(n_steps, bool) or not isinstance(n_steps, (Integral, np.integer)) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
        return int(n_steps)

    def _validated(self, X):
        check_is_fitted(self)
        _check_2d(self, X)
        X, _ = validate_snn_input(self, X, reset=False, allow_3d=False)
        return X

    def _logits(self, X, n_steps=None):
        n_steps = self._check_n_steps(n_steps)
        X = self._validated(X)
        return self._batched(X, lambda m, x: m(x, n_steps)[-1].double().cpu().numpy())

    def decision_function(self, X, n_steps=None):
        """Time-averaged readout (logits estimate), (n_samples, n_classes); (n_samples,) for 2 classes."""
        z = self._logits(X, n_steps)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X, n_steps=None):
        """Softmax of the time-averaged readout after ``n_steps`` steps (default: ``self.n_steps``)."""
        return softmax(self._logits(X, n_steps), axis=1)

    def predict(self, X, n_steps=None):
        """Class labels after ``n_steps`` steps of simulation (default: ``self.n_steps``)."""
        logits = self._logits(X, n_steps)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_ann(self, X):
        """Class labels predicted by the converted ANN (``canonical_ann_``) itself."""
        X = self._validated(X)
        ann = self._inference_ann()
        z = self._batched(X, lambda m, x: ann(x).double().cpu().numpy())
        return self.classes_[np.argmax(z, axis=1)]

    def _inference_ann(self):
        return copy.deepcopy(self.canonical_ann_).to(self._device(), dtype=self._inference_dtype())

    def score_curve(self, X, y, steps=(1, 2, 4, 8, 16, 32, 64)):
        """Accuracy as a function of the number of time steps, with the ANN's accuracy.

        One simulation of ``max(steps)`` steps gives every shorter run (its prefix).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        steps : sequence of int

        Returns
        -------
        Bunch
            ``steps`` (ndarray), ``accuracy`` (ndarray, same length) and ``ann_accuracy`` (float).
        """
        steps = np.asarray([self._check_n_steps(int(s)) for s in np.atleast_1d(steps)])
        X = self._validated(X)
        y = np.asarray(y)
        t_max = int(steps.max())
        ann = self._inference_ann()

        def fn(m, x):
            logits = m(x, t_max)[steps - 1]  # (len(steps), B, C)
            return {"snn": logits.argmax(-1).T.cpu().numpy(), "ann": ann(x).argmax(-1).cpu().numpy()}

        out = self._batched(X, fn)
        acc = (self.classes_[out["snn"]] == y[:, None]).mean(0)
        return Bunch(steps=steps, accuracy=acc, ann_accuracy=float(np.mean(self.classes_[out["ann"]] == y)))

    def simulate(self, X, n_steps=None):
        """Run the converted network on X and return its activity as numpy arrays.

        Memory is bounded by one batch (``inference_batch_size``) during the simulation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        n_steps : int or None, default=None
            Steps to simulate (default: ``self.n_steps``).

        Returns
        -------
        dict with
            ``spikes``: list, per IF layer, of arrays (n_samples, n_steps, n_units) (units of a
            convolutional layer flattened), 0/1, axis 1 is time; ``membrane``: list, per IF
            layer, of membrane potentials before reset, same layout (the readout has no
            membrane: it is the time average of its input current); ``output``: (n_samples,
            n_outputs) the time-averaged readout (logits estimate, as ``decision_function`` before
            the binary reduction); ``layers``: the IF layers' names (keys of ``firing_rates_``)
            and ``'output'``; ``n_steps``: int; ``synops``, ``macs``: (n_samples, n_layers)
            operations per layer, ``ann_macs``: (n_layers,) the equivalent ANN's;
            ``input_spikes``: (n_samples,) NaN (the input is an analog current).
        """
        n_steps = self._check_n_steps(n_steps)
        X = self._validated(X)

        def fn(m, x):
            rec = m.record(x, n_steps)
            return {
                "spikes": [s.transpose(0, 1).float().cpu().numpy() for s in rec["spikes"]],
                "membrane": [u.transpose(0, 1).float().cpu().numpy() for u in rec["membrane"]],
                "output": rec["output"].double().cpu().numpy(),
                "synops": rec["ac"].numpy(), "macs": rec["mac"].numpy(),
                "ann_macs": rec["ann"].numpy()[None],
                "input_spikes": np.full(x.shape[0], np.nan),
            }

        res = self._batched(X, fn)
        res["ann_macs"] = res["ann_macs"][0]
        res["layers"] = list(self._named_rates([0.0] * len(self.module_.spiking_layers))) + ["output"]
        res["n_steps"] = n_steps
        return res

    def firing_rates(self, X, n_steps=None):
        """Mean firing rate (spikes per neuron per step) of each spiking layer on X.

        Returns
        -------
        dict
            ``'<index>:<ANN activation>' -> rate``, as ``firing_rates_``.
        """
        n_steps = self._check_n_steps(n_steps)
        X = self._validated(X)
        n = X.shape[0]
        out = self._batched(X, lambda m, x: np.array([m.firing_rates(x, n_steps)]) * x.shape[0])
        return self._named_rates((out.sum(0) / n).tolist())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.classifier_tags.multi_label = False
        return tags
