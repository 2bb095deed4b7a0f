"""The scikit-learn side shared by every estimator: device, random_state, scaling and encoding,
batched inference, simulation, pickling, and the gradient estimators' fit on the one trainer.
Input and parameter validation live in :mod:`sklearn_snn.validation`.

Data flows one way: arrays -> ``validation.validate_snn_input`` -> tensors (time, batch, features) ->
``sklearn_snn._core`` -> tensors -> arrays.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

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
from ._core.neurons import NeuronSpec, as_decay
from ._core.training import DivergedError, TrainConfig, gradient_epochs, new_state
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


@contextmanager
def torch_threads(n):
    """Temporarily set torch's intra-op thread count (``None`` leaves it alone)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


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

    # --- devices and randomness -------------------------------------------------------------
    def _device(self):
        return resolve_device(getattr(self, "device", "auto"))

    def _threads(self):
        return torch_threads(getattr(self, "torch_num_threads", None))

    # --- input scaling and encoding ----------------------------------------------------------
    def _fit_scaler(self, X):
        """Per-feature scaling learned in fit (2D input only): standardisation for the current
        encoder, min-max to [0, 1] for the spike encoders (which read values as probabilities or
        latencies)."""
        if X.ndim != 2 or getattr(self, "input_scaling", "auto") is None:
            self.input_offset_, self.input_scale_ = None, None
            return
        if getattr(self, "encoder", "current") == "current":
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

    def _scale(self, X):
        if X.ndim == 2 and getattr(self, "input_offset_", None) is not None:
            X = (X - self.input_offset_) / self.input_scale_
        return X

    def _encode(self, xb, train, generator=None):
        """(B, F) or (B, T, F) tensor -> (T, B, F') input for the network."""
        if xb.dim() == 3:
            xb = xb.transpose(0, 1)
            return enc.encode(xb, getattr(self, "encoder", "current"), xb.shape[0])
        return enc.encode(xb, getattr(self, "encoder", "current"), self.n_steps, generator=generator, train=train)

    def _n_encoded(self, n_features):
        return enc.encoded_width(getattr(self, "encoder", "current"), n_features)

    def _to_tensor(self, X, dtype=torch.float32, device=None):
        # torch.tensor copies, which also makes read-only memmaps safe
        return torch.tensor(np.asarray(X), dtype=dtype, device=device or self._device())

    # --- inference ---------------------------------------------------------------------------
    def _inference_module(self, dtype):
        """A copy of the fitted module for inference (float64 on CPU so that batch composition
        cannot flip a spike through rounding)."""
        m = copy.deepcopy(self.module_).to(self._device(), dtype=dtype)
        m.eval()
        return m

    def _training_logits(self, Xt):
        """Readout of the module being trained (its own dtype, eval mode, no copy) on a scaled
        tensor input, in batches: the per-epoch validation score of early stopping."""
        m = self.module_
        was_training = m.training
        m.eval()
        bs = getattr(self, "inference_batch_size", None) or 512
        try:
            with torch.no_grad():
                outs = [m(self._encode(Xt[i:i + bs], train=False))[0] for i in range(0, Xt.shape[0], bs)]
        finally:
            m.train(was_training)
        return torch.cat(outs).double().cpu().numpy()

    def _inference_dtype(self):
        return torch.float64 if self._device().type == "cpu" else torch.float32

    def _batched(self, X, fn, batch_size=None):
        """Apply ``fn(module, encoded_batch)`` over X in batches; concatenates numpy outputs.

        Memory is bounded by one batch whatever the size of X.
        """
        dtype = self._inference_dtype()
        module = self._inference_module(dtype)
        X = self._scale(X)
        bs = batch_size or getattr(self, "inference_batch_size", None) or 512
        outs = []
        with torch.no_grad(), self._threads():
            for start in range(0, X.shape[0], bs):
                xb = self._to_tensor(X[start:start + bs], dtype=dtype)
                outs.append(fn(module, self._encode(xb, train=False)))
        if isinstance(outs[0], dict):
            return {k: np.concatenate([o[k] for o in outs]) if not isinstance(outs[0][k], list)
                    else [np.concatenate([o[k][i] for o in outs]) for i in range(len(outs[0][k]))]
                    for k in outs[0]}
        return np.concatenate(outs)

    # --- the network shared by every estimator whose module_ is an SNN ----------------------
    def _neuron_spec(self):
        return NeuronSpec(
            model=self.neuron,
            beta=as_decay(self.tau_mem),
            alpha=as_decay(self.tau_syn),
            threshold=float(self.threshold),
            reset=self.reset,
        )

    def _logits(self, X):
        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)
        self._check_steps(X)
        return self._batched(X, lambda m, x: m(x)[0].double().cpu().numpy())

    def _check_steps(self, X):
        if X.ndim == 3 and getattr(self, "normalization", None) == "bntt" and X.shape[1] != self.n_steps_in_:
            raise ValueError(f"This model keeps per-step batch-norm statistics for {self.n_steps_in_} steps; "
                             f"got X with {X.shape[1]} steps. Pass sequences of the fitted length.")

    @available_if(lambda self: not hasattr(self, "module_") or hasattr(self.module_, "run"))
    def simulate(self, X):
        """Run the fitted network on X and return its activity as numpy arrays.

        Returns
        -------
        dict with
            ``spikes``: list, per spiking layer, of arrays (n_samples, n_steps, n_units);
            ``membrane``: list, per layer (readout last), of membrane potentials before reset,
            same layout; ``output``: array (n_samples, n_outputs), the readout values.
        """
        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)

        def fn(m, x):
            out, spikes, mems, _ = m.run(x)
            return {
                "spikes": [s.transpose(0, 1).float().cpu().numpy() for s in spikes],
                "membrane": [u.transpose(0, 1).float().cpu().numpy() for u in mems],
                "output": m.aggregate(out).double().cpu().numpy(),
            }

        return self._batched(X, fn)

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

    # --- tags --------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags


class GradientSNNMixin:
    """fit / partial_fit on the shared training loop for estimators trained by gradients.

    A subclass provides ``_prepare_targets(y, reset)`` -> (targets tensor, n_outputs),
    ``_build_module(n_in, n_out, generator)``, ``_loss(logits, yb, wb)`` and optionally
    ``_validation_score(logits, y_val)`` (the readout of the module being trained on the held-out
    split, as numpy, and its targets).
    """

    _fitted_attributes = {
        "n_iter_": "int", "t_": "int", "loss_curve_": "floats", "reg_curve_": "floats",
        "validation_scores_": "floats?", "best_validation_score_": "float?", "best_loss_": "float?",
    }

    def _train_config(self):
        return TrainConfig(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            learning_rate_init=self.learning_rate_init,
            alpha=self.alpha,
            solver=getattr(self, "solver", "adam"),
            lr_schedule=getattr(self, "lr_schedule", "constant"),
            early_stopping=self.early_stopping,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=int(self.verbose),
            grad_clip=getattr(self, "grad_clip", None),
        )

    def _regulariser(self):
        from ._core.network import activity_penalty

        l1, l2 = getattr(self, "spike_l1", 0.0), getattr(self, "spike_l2", 0.0)
        band, strength = getattr(self, "target_rate", None), getattr(self, "rate_penalty", 0.0)
        if not (l1 or l2 or (band is not None and strength)):
            return None
        # hidden layers only: run() appends the output layer's spikes for a spiking readout
        spiking_out = getattr(self, "_readout", getattr(self, "readout", None)) in ("spike_count", "first_spike")
        return lambda spikes: activity_penalty(spikes[:-1] if spiking_out and len(spikes) > 1 else spikes,
                                               l1, l2, band, strength)

    def _make_step(self, generator):
        reg_fn = self._regulariser()
        method = getattr(self, "credit_assignment", "bptt")
        window = (self.bptt_window or 32) if method == "tbptt" else None

        def step(module, xb, yb, wb):
            x = self._encode(xb, train=True, generator=generator)
            if method == "eprop":
                from ._core.eprop import eprop_step

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

    def _fit(self, X, y, sample_weight=None, *, incremental, epoch_callback=None, classes=None):
        first = not (incremental or self.warm_start) or not hasattr(self, "module_")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True; use fit, or set early_stopping=False.")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X, y = validate_snn_input(self, X, y, reset=first, y_numeric=self._y_numeric)
        if X.shape[0] < 1:
            raise ValueError("Found array with 0 sample(s); at least 1 is required.")
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X)
        targets, n_out = self._prepare_targets(y, reset=first, classes=classes)
        device = self._device()
        if first:
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
        idx_train = np.arange(X.shape[0])
        if self.early_stopping and not incremental:
            idx_train, idx_val = self._validation_split(y)
            # validated, scaled and converted once; each epoch runs the module being trained
            Xv, y_val = self._to_tensor(Xs[idx_val], device=device), y[idx_val]
            validate = lambda: self._validation_score(self._training_logits(Xv), y_val)  # noqa: E731
        Xt = self._to_tensor(Xs[idx_train], device=device)
        yt = targets[idx_train].to(device)
        wt = None if sample_weight is None else torch.tensor(sample_weight[idx_train], dtype=torch.float32, device=device)
        n_epochs = 1 if incremental else self.max_iter
        state = self._train_state
        if first or not incremental:
            state.no_improve = 0
        method = gradient_epochs(self.module_, state, Xt, yt, self._make_step(self._generator), cfg, n_epochs,
                                 generator=self._generator, sample_weight=wt, validate=validate)
        with self._threads():
            run_training(self, method, n_epochs, state, epoch_callback=epoch_callback, sync=self._sync_history,
                         incremental=incremental,
                         keeps=f"the weights {'of the best validation score' if self.early_stopping else 'reached'}"
                               " so far",
                         converge_message=f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached and "
                                          "the optimization hasn't converged yet.")
        return self

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
        if self.early_stopping:
            self.validation_scores_ = list(state.validation_scores)
            self.best_validation_score_ = state.best_validation_score
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = state.best_loss

    def _validation_split(self, y):
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(y))
        stratify = y if (not self._y_numeric and np.unique(y).size > 1) else None
        n_val = max(1, int(round(self.validation_fraction * len(y))))
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
