"""The scikit-learn side shared by every estimator: device, random_state, scaling and encoding,
batched inference, simulation, pickling, and the gradient estimators' fit on the one trainer.
Input and parameter validation live in :mod:`sklearn_snn.validation`.

Data flows one way: arrays -> ``validation.validate_snn_input`` -> tensors (time, batch, features) ->
``sklearn_snn._core`` -> tensors -> arrays.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
)

from ._core import encoding as enc
from ._core.kernels import inference_work
from ._core.neurons import NeuronSpec, as_decay
from ._core.threads import torch_threads  # thread policy lives in _core.threads
from ._core.training import ArrayBatches, DivergedError, TrainConfig, gradient_epochs, new_state
from .training import run_training
from .validation import (
    check_sample_weight,
    validate_snn_input,
)

__all__ = [
    "BaseSNN",
    "GradientSNNMixin",
    "SNNClassifierMixin",
    "resolve_device",
    "make_generator",
    "torch_threads",
    "DivergedError",
]


def resolve_device(device) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu' / 'cuda' / 'cuda:1' / torch.device as given.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use device='auto' or 'cpu'.")
    return dev


def make_generator(random_state, device="cpu") -> torch.Generator:
    """A local torch generator seeded from ``random_state``; torch's global RNG is never touched.

    Examples
    --------
    >>> g1, g2 = make_generator(0), make_generator(0)
    >>> bool(torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2)))
    True
    """
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def settings_from_params(estimator, record):
    """``record`` (a dataclass of settings with defaults) filled from the estimator's own
    parameters: each estimator's configuration is its parameters, and what an estimator does not
    have takes the default the record declares (no attribute lookups with ad-hoc defaults).

    Examples
    --------
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> settings_from_params(SurrogateSNNClassifier(early_stopping=True), FitSettings).early_stopping
    True
    """
    params = estimator.get_params(deep=False)
    resolved = getattr(estimator, "_resolved", lambda name: params[name])  # 'auto' parameters resolved
    return record(**{f.name: resolved(f.name) for f in dataclasses.fields(record) if f.name in params})


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """What :class:`GradientSNNMixin`'s fit reads besides the optimiser's ``TrainConfig``."""

    warm_start: bool = False
    early_stopping: bool = False
    validation_fraction: float = 0.1


class BaseSNN(BaseEstimator):
    """Shared machinery: device, generator, input scaling, encoding, batched inference, pickling.

    Subclasses keep their torch module in ``module_`` (an ``nn.Module``); everything else they
    learn ends in ``_`` as usual.
    """

    _torch_attributes = ("module_",)

    #: Fitted attributes and their kinds (see :mod:`sklearn_snn.persistence`): what the safe
    #: format stores and what ``load`` accepts. Subclasses declare their own beside these.
    _fitted_attributes = {
        "n_features_in_": "int", "feature_names_in_": "labels", "input_ndim_": "int", "n_steps_in_": "int?",
        "input_offset_": "array?", "input_scale_": "array?",
    }

    #: Rows per batch in predict / transform / simulate (and the per-epoch validation pass): memory
    #: of inference is bounded by one batch. Not a parameter; set it on an instance to change it.
    inference_batch_size = 512
    #: dtype of predict / transform / simulate. None: float64 on the CPU (so that the composition
    #: of a batch can never flip a spike through rounding), float32 on a GPU. Not a parameter; set
    #: it on an instance (e.g. ``torch.float32``) for faster, rounding-sensitive inference.
    inference_dtype = None

    # --- devices and randomness -------------------------------------------------------------
    def _device(self):
        return resolve_device(self.device)

    def _threads(self):
        return torch_threads(self.torch_num_threads)

    # --- input scaling and encoding ----------------------------------------------------------
    def _fit_scaler(self, X):
        """Per-feature scaling learned in fit (2D input only): standardisation for the current
        encoder, min-max to [0, 1] for the spike encoders (which read values as probabilities or
        latencies)."""
        kind = self._input_scaling_kind()
        if X.ndim != 2 or kind is None:
            self.input_offset_, self.input_scale_ = None, None
            return
        if kind == "standardize":
            # centre per feature; divide by the feature's std, floored at the median std so that
            # nearly constant features (e.g. border pixels) are not blown up into noise
            off = X.mean(0)
            std = X.std(0)
            sc = np.maximum(std, np.median(std[std > 1e-12]) if np.any(std > 1e-12) else 1.0)
        else:
            off = X.min(0)
            sc = X.max(0) - off
        sc = np.where(sc > 1e-12, sc, 1.0)
        self.input_offset_, self.input_scale_ = off.astype(np.float64), sc.astype(np.float64)

    def _input_scaling_kind(self):
        """'standardize' (the current encoder), 'minmax' (spike encoders read values as
        probabilities or latencies) or None (``input_scaling=None``)."""
        if self.input_scaling is None:
            return None
        return "standardize" if self.encoder == "current" else "minmax"

    def _scale(self, X):
        if X.ndim == 2 and getattr(self, "input_offset_", None) is not None:
            X = (X - self.input_offset_) / self.input_scale_
        return X

    def _encode(self, xb, train, generator=None):
        """(B, F) or (B, T, F) tensor -> (T, B, F') input for the network."""
        if xb.dim() == 3:
            xb = xb.transpose(0, 1)
            return enc.encode(xb, self.encoder, xb.shape[0])
        return enc.encode(xb, self.encoder, self.n_steps, generator=generator, train=train)

    def _n_encoded(self, n_features):
        return enc.encoded_width(self.encoder, n_features)

    def _to_tensor(self, X, dtype=torch.float32, device=None):
        # torch.tensor copies, which also makes read-only memmaps safe; a compact array (bool /
        # uint8 spikes) is moved as it is and converted to ``dtype`` on the device
        X = np.asarray(X)
        device = device or self._device()
        if X.dtype.kind in "biu" and not (X.dtype.kind == "u" and X.dtype.itemsize > 1):
            return torch.tensor(X, device=device).to(dtype)
        return torch.tensor(X, dtype=dtype, device=device)

    # --- inference ---------------------------------------------------------------------------
    def _inference_module(self, dtype):
        """A copy of the fitted module for inference (float64 on CPU so that batch composition
        cannot flip a spike through rounding)."""
        m = copy.deepcopy(self.module_).to(self._device(), dtype=dtype)
        m.eval()
        return m

    def _training_logits(self, Xt):
        """Readout of the module being trained (its own dtype, eval mode, no copy) on a scaled
        input, in batches: the per-epoch validation score of early stopping. ``Xt``: a tensor, or
        an ``ArrayBatches`` (3D input kept in its dtype) converted per batch."""
        m = self.module_
        was_training = m.training
        m.eval()
        bs = self.inference_batch_size
        n = len(Xt)
        if isinstance(Xt, ArrayBatches):
            batch = lambda i: Xt.take(np.arange(i, min(i + bs, n)))  # noqa: E731
        else:
            batch = lambda i: Xt[i:i + bs]  # noqa: E731
        try:
            with torch.no_grad():
                outs = [m(self._encode(batch(i), train=False))[0] for i in range(0, n, bs)]
        finally:
            m.train(was_training)
        return torch.cat(outs).double().cpu().numpy()

    def _inference_dtype(self):
        if self.inference_dtype is not None:
            return self.inference_dtype
        return torch.float64 if self._device().type == "cpu" else torch.float32

    def _batched(self, X, fn, batch_size=None):
        """Apply ``fn(module, encoded_batch)`` over X in batches; concatenates numpy outputs.

        Memory is bounded by one batch whatever the size of X.
        """
        dtype = self._inference_dtype()
        module = self._inference_module(dtype)
        bs = batch_size or self.inference_batch_size
        outs = []
        with torch.no_grad(), self._threads(), inference_work(-(-X.shape[0] // bs)):
            for start in range(0, X.shape[0], bs):
                # scaled and converted per batch (3D spikes stay bool / uint8 until here)
                xb = self._to_tensor(self._scale(X[start:start + bs]), dtype=dtype)
                outs.append(fn(module, self._encode(xb, train=False)))
        if isinstance(outs[0], dict):
            return {k: np.concatenate([o[k] for o in outs]) if not isinstance(outs[0][k], list)
                    else [np.concatenate([o[k][i] for o in outs]) for i in range(len(outs[0][k]))]
                    for k in outs[0]}
        return np.concatenate(outs)

    # --- the network shared by every estimator whose module_ is an SNN ----------------------
    #: Parameters that accept ``'auto'``, resolved at fit from the layout of the training input:
    #: ``name -> (value for 2D input, value for 3D input)``; a callable 3D value is called with
    #: the number of steps of the training input. The resolved value is the fitted attribute
    #: ``name + '_'``; the parameter itself keeps ``'auto'`` (sklearn's contract).
    _auto_parameters = {}

    def _resolved(self, name):
        """The value of parameter ``name`` the network uses: ``'auto'`` resolved for the fitted
        input layout (2D before any fit), any other value as given."""
        value = getattr(self, name)
        if name in self._auto_parameters and isinstance(value, str) and value == "auto":
            two_d, three_d = self._auto_parameters[name]
            if getattr(self, "input_ndim_", 2) != 3:
                return two_d
            return three_d(self.n_steps_in_) if callable(three_d) else three_d
        return value

    def _set_resolved_parameters(self):
        """Record the resolved ``'auto'`` parameters as fitted attributes (``neuron_``, ...)."""
        for name in self._auto_parameters:
            setattr(self, name + "_", self._resolved(name))

    def _neuron_spec(self):
        return NeuronSpec(
            model=self._resolved("neuron"),
            beta=as_decay(self._resolved("tau_mem")),
            alpha=as_decay(self._resolved("tau_syn")),
            threshold=float(self.threshold),
            reset=self.reset,
        )

    def _logits(self, X):
        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)
        self._check_steps(X)
        return self._batched(X, lambda m, x: m(x)[0].double().cpu().numpy())

    def _check_steps(self, X):
        """Hook: refuse 3D input whose number of steps the fitted network cannot take (none here)."""

    @available_if(lambda self: not hasattr(self, "module_") or hasattr(self.module_, "run"))
    def simulate(self, X):
        """Run the fitted network on X and return its activity as numpy arrays.

        Memory is bounded by one batch (``inference_batch_size``) during the simulation.

        Returns
        -------
        dict with
            ``spikes``: list, per spiking layer, of arrays (n_samples, n_steps, n_units), 0/1,
            axis 1 is time; ``membrane``: list, per layer (readout last), of membrane potentials
            before reset, same layout; ``output``: array (n_samples, n_outputs), the readout
            values; ``layers``: names of the layers (``spikes[i]`` and ``membrane[i]`` belong to
            ``layers[i]``); ``n_steps``: int; ``synops``, ``macs``: (n_samples, n_layers)
            operations per layer and ``ann_macs``: (n_layers,) the equivalent ANN's, and
            ``input_spikes``: (n_samples,) (NaN for non-binary input), counted as
            :mod:`sklearn_snn.metrics` documents.
        """
        from .metrics import SynapticOpCounter

        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)
        net = self.module_
        counter = None
        if hasattr(net, "hidden") and hasattr(net, "out"):
            conns = []
            for i, layer in enumerate(net.hidden):
                conns.append((i, i - 1, layer.weight))
                if getattr(layer, "w_rec", None) is not None:
                    conns.append((i, i, layer.w_rec))
            conns.append((len(net.hidden), len(net.hidden) - 1, net.out.weight))
            counter = SynapticOpCounter(conns)

        def fn(m, x):
            out, spikes, mems, _ = m.run(x)
            res = {
                "spikes": [s.transpose(0, 1).float().cpu().numpy() for s in spikes],
                "membrane": [u.transpose(0, 1).float().cpu().numpy() for u in mems],
                "output": m.aggregate(out).double().cpu().numpy(),
            }
            if counter is not None:
                res.update(counter(x, [s.sum(1) for s in res["spikes"]]))
            return res

        res = self._batched(X, fn)
        n_layers = len(res["membrane"])
        res["layers"] = [f"hidden_{i}" for i in range(n_layers - 1)] + ["output"]
        res["n_steps"] = int(res["membrane"][0].shape[1])
        if counter is not None:
            res["ann_macs"] = counter.ann_macs.copy()
        return res

    # --- persistence -------------------------------------------------------------------------
    def __getstate__(self):
        state = super().__getstate__()
        for name in self._torch_attributes:
            m = state.get(name)
            if isinstance(m, torch.nn.Module):
                # CPU copy, so a model trained on a GPU unpickles on a CPU-only machine
                state[name] = copy.deepcopy(m).cpu()
        state.pop("_train_state", None)  # optimizer state is not persisted; see docs
        state.pop("_generator", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def save(self, path):
        """Save the fitted estimator in a safe format (no code runs when loading).

        The file holds the constructor parameters, the fitted numpy attributes and the torch
        module's state dict as plain tensors, written with ``torch.save``. Load it with
        :func:`sklearn_snn.load` (``torch.load(weights_only=True)`` underneath).
        """
        from .persistence import save

        save(self, path)

    def to_nir(self, path=None, *, dt=1e-3, unit_r=False):
        """Export the fitted network as a NIR graph (see :func:`sklearn_snn.nir.to_nir`).

        Parameters
        ----------
        path : str or path-like, optional
            Also write the graph there (``nir.write``).
        dt : float, default=1e-3
            Seconds per simulation step.
        unit_r : bool, default=False
            Fold each neuron's resistance into its incoming weights (for importers that ignore ``r``).

        Returns
        -------
        graph : nir.NIRGraph
        """
        from .nir import to_nir

        return to_nir(self, dt=dt, path=path, unit_r=unit_r)

    # --- tags --------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags


class GradientSNNMixin:
    """fit / partial_fit on the shared training loop for estimators trained by gradients.

    A subclass provides ``_prepare_targets(y, reset)`` -> (targets tensor, n_outputs),
    ``_build_module(n_in, n_out, generator)``, ``_make_step(generator)`` -> ``step(module, xb, yb, wb)
    -> (loss, reg)`` for one minibatch (forward, loss, backward), ``_loss(logits, yb, wb)`` and optionally
    ``_validation_score(logits, y_val)`` (the readout of the module being trained on the held-out
    split, as numpy, and its targets).
    """

    _fitted_attributes = {
        "n_iter_": "int", "t_": "int", "loss_curve_": "floats", "reg_curve_": "floats",
        "validation_scores_": "floats?", "best_validation_score_": "float?", "best_loss_": "float?",
    }

    def _train_config(self):
        """The optimiser's settings, from the estimator's own parameters (``TrainConfig``'s
        defaults for those it does not have)."""
        return settings_from_params(self, TrainConfig)

    def _fit(self, X, y, sample_weight=None, *, incremental, epoch_callback=None, classes=None):
        fs = settings_from_params(self, FitSettings)
        first = not (incremental or fs.warm_start) or not hasattr(self, "module_")
        if incremental and fs.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True; use fit, or set early_stopping=False.")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X, y = self._fit_input(X, y, reset=first)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X)
        targets, n_out = self._prepare_targets(y, reset=first, classes=classes)
        device = self._device()
        if first:
            self._set_resolved_parameters()
            self._generator = make_generator(self.random_state)
            self._fit_scaler(X)
            self.module_ = self._build_module(self._n_encoded(self.n_features_in_), n_out, self._generator).to(device)
            self._train_state = new_state(self.module_, self._train_config())
        else:
            self._check_architecture_unchanged(n_out)
        if not first and (not incremental or not hasattr(self, "_train_state")):
            # fit with warm_start: keep the weights and history, start a fresh optimizer (as MLP does);
            # partial_fit keeps the optimizer state between calls
            self.module_.to(device)
            old = getattr(self, "_train_state", None)
            self._train_state = new_state(self.module_, self._train_config())
            if old is not None:
                for k in ("n_iter", "t", "loss_curve", "reg_curve", "validation_scores", "best_loss",
                          "best_validation_score"):
                    setattr(self._train_state, k, getattr(old, k))
            if not hasattr(self, "_generator"):
                self._generator = make_generator(self.random_state)
        cfg = self._train_config()
        Xs = self._scale(X)
        validate = None
        idx_train = np.arange(len(X))
        split = fs.early_stopping and not incremental
        if split:
            idx_train, idx_val = self._validation_split(y, fs.validation_fraction)
        Xt = self._batch_source(Xs, idx_train if split else None, device)
        Xv = self._batch_source(Xs, idx_val, device) if split else None
        if split:
            # each epoch runs the module being trained on the held-out split
            y_val = y[idx_val]
            validate = lambda: self._validation_score(self._training_logits(Xv), y_val)  # noqa: E731
        yt = targets[idx_train].to(device)
        wt = None if sample_weight is None else torch.tensor(sample_weight[idx_train], dtype=torch.float32, device=device)
        max_iter = self._resolved("max_iter")
        n_epochs = 1 if incremental else max_iter
        state = self._train_state
        if first or not incremental:
            state.no_improve = 0
        method = gradient_epochs(self.module_, state, Xt, yt, self._make_step(self._generator), cfg, n_epochs,
                                 generator=self._generator, sample_weight=wt, validate=validate)
        with self._threads():
            run_training(self, method, n_epochs, state, epoch_callback=epoch_callback, sync=self._sync_history,
                         incremental=incremental,
                         keeps=f"the weights {'of the best validation score' if fs.early_stopping else 'reached'}"
                               " so far",
                         converge_message=f"Stochastic optimizer: maximum iterations ({max_iter}) reached and "
                                          "the optimization hasn't converged yet.")
        return self

    def _fit_input(self, X, y, reset):
        """Hook of ``_fit``: the validated ``(X, y)``. A subclass that takes another input kind
        (EventProp's event streams) overrides it; its ``X`` needs ``len``, ``_fit_scaler``,
        ``_scale`` and ``_batch_source``."""
        X, y = validate_snn_input(self, X, y, reset=reset, y_numeric=self._y_numeric)
        if X.shape[0] < 1:
            raise ValueError("Found array with 0 sample(s); at least 1 is required.")
        return X, y

    def _batch_source(self, Xs, rows, device):
        """Hook of ``_fit``: what the trainer draws minibatches from, for ``rows`` of the scaled
        input (all rows if None). 2D (tabular) input is converted once; 3D input (spike trains,
        currents) stays the validated array, in its dtype (bool / uint8 spikes, a memmap), gathered
        and converted one minibatch at a time: no float copy of the whole set."""
        if Xs.ndim == 3:
            return ArrayBatches(Xs, rows=rows, device=device)
        return self._to_tensor(Xs if rows is None else Xs[rows], device=device)

    def _check_architecture_unchanged(self, n_out):
        """warm_start / partial_fit continue the fitted network: refuse parameters that now ask for
        another one (a silently kept old network would not match them, nor load once saved)."""
        wanted = self._build_module(self._n_encoded(self.n_features_in_), n_out, torch.Generator().manual_seed(0))
        have = {k: tuple(v.shape) for k, v in self.module_.state_dict().items()}
        want = {k: tuple(v.shape) for k, v in wanted.state_dict().items()}
        if have != want:
            diff = sorted(set(have.items()) ^ set(want.items()))[:4]
            raise ValueError(
                f"{type(self).__name__} continues its fitted network (warm_start=True or partial_fit), but the "
                f"parameters now describe another architecture (e.g. {diff}). Set warm_start=False (or fit "
                "again) to train a new network, or restore the parameters it was fitted with.")

    def _rebuild_module(self, name="module_"):
        """A freshly built network of the fitted architecture (weights are loaded after)."""
        n_out = len(self.classes_) if hasattr(self, "classes_") else self.n_outputs_
        return self._build_module(self._n_encoded(self.n_features_in_), n_out, torch.Generator().manual_seed(0))

    def _sync_history(self, state):
        self.n_iter_ = state.n_iter
        self.t_ = state.t
        self.loss_curve_ = list(state.loss_curve)
        self.reg_curve_ = list(state.reg_curve)
        if settings_from_params(self, FitSettings).early_stopping:
            self.validation_scores_ = list(state.validation_scores)
            self.best_validation_score_ = state.best_validation_score
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = state.best_loss

    def _validation_split(self, y, validation_fraction):
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(y))
        stratify = y if (not self._y_numeric and np.unique(y).size > 1) else None
        n_val = max(1, int(round(validation_fraction * len(y))))
        if stratify is not None and n_val < np.unique(y).size:
            stratify = None
        if len(y) - n_val < 1:
            raise ValueError("The validation split leaves no training samples; lower validation_fraction "
                             "or set early_stopping=False.")
        tr, va = train_test_split(idx, test_size=n_val, random_state=check_random_state(self.random_state).randint(
            np.iinfo(np.int32).max), stratify=stratify)
        return tr, va

class SNNClassifierMixin:
    """The classifier surface shared by the network classifiers: labels -> class indices, a
    (sample-weighted) cross-entropy on the readout, and readout -> labels / probabilities."""

    _y_numeric = False
    _fitted_attributes = {"classes_": "labels"}

    def _prepare_targets(self, y, reset, classes=None):
        check_classification_targets(y)
        if classes is not None:
            # sorted and deduplicated, as sklearn's partial_fit takes it: the class indices below
            # come from np.searchsorted, which needs sorted classes_
            classes = np.unique(np.asarray(classes))
        if reset:
            labels = np.unique(y) if classes is None else classes
            if labels.size < 2:
                if classes is None:
                    raise ValueError(
                        f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data "
                        f"contains only one class: {labels[0]!r}."
                    )
                raise ValueError(f"{type(self).__name__} needs at least 2 classes, but classes={labels.tolist()} "
                                 f"holds {labels.size} distinct class{'' if labels.size == 1 else 'es'}.")
            self.classes_ = labels
        elif classes is not None and not np.array_equal(classes, self.classes_):
            raise ValueError(f"classes={classes.tolist()} differs from the classes of the first call "
                             f"{self.classes_.tolist()}.")
        if len(y):
            unseen = np.setdiff1d(np.unique(y), self.classes_)
            if unseen.size:
                if reset:
                    raise ValueError(f"y contains labels not in classes={self.classes_.tolist()}: {unseen.tolist()}.")
                raise ValueError(f"y contains labels not seen in the first fit/partial_fit: {unseen.tolist()}; "
                                 f"the estimator knows {self.classes_.tolist()}. Pass all labels with "
                                 "partial_fit(..., classes=...) on the first call.")
        idx = np.searchsorted(self.classes_, y)
        return torch.as_tensor(idx, dtype=torch.long), len(self.classes_)

    def _loss(self, logits, yb, wb):
        loss = torch.nn.functional.cross_entropy(logits, yb, reduction="none")
        if wb is None:
            return loss.mean()
        return (loss * wb).sum() / wb.sum().clamp(min=1e-12)

    def _validation_score(self, logits, y):
        return float(np.mean(self._labels(logits) == y))

    def _labels(self, logits):
        return self.classes_[np.argmax(logits, axis=1)]

    def decision_function(self, X):
        """Readout values (logits) per class, (n_samples, n_classes); (n_samples,) for two classes."""
        logits = self._logits(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X):
        """Class probabilities: softmax of the readout, (n_samples, n_classes)."""
        return softmax(self._logits(X), axis=1)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably from the readout."""
        return log_softmax(self._logits(X), axis=1)

    def predict(self, X):
        """Predicted class labels."""
        return self._labels(self._logits(X))
