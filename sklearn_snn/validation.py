"""Input and parameter validation shared by every estimator: 2D / 3D input, targets, sample
weights, and the parameter constraints of the network and training parameters.

2D input goes through sklearn's ``validate_data``; 3D spike or current input
``(n_samples, n_steps, n_features)`` is checked here (sklearn would take axis 1 as the features).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_array, validate_data

from ._core import encoding as enc
from ._core.network import READOUTS
from ._core.neurons import NEURON_MODELS, RESET_MODES
from ._core.surrogate import SURROGATES

__all__ = [
    "NETWORK_CONSTRAINTS", "TRAINING_CONSTRAINTS", "HiddenLayerSizes", "IntervalNotBool", "check_float32_range",
    "check_hidden_layer_sizes", "check_input_ndim", "check_sample_weight", "input_ndim", "standardize_target",
    "validate_snn_input",
]


def input_ndim(X):
    nd = getattr(X, "ndim", None)
    if nd is None:
        try:
            nd = np.ndim(X)
        except Exception:  # ragged nested lists: let check_array explain
            nd = 2
    return nd


def validate_snn_input(est, X, y=None, *, reset, y_numeric=False, allow_3d=True, dtype=(np.float64, np.float32)):
    """Validate 2D ``(n_samples, n_features)`` or 3D ``(n_samples, n_steps, n_features)`` input.

    2D input goes through sklearn's ``validate_data`` (feature names, ``n_features_in_``). 3D
    input is checked with ``check_array(allow_nd=True)`` and ``n_features_in_`` is set to the last
    axis by hand (sklearn would take axis 1). Also sets ``input_ndim_`` and ``n_steps_in_`` on
    ``reset`` and refuses a change of dimensionality afterwards.

    3D input keeps a compact dtype (bool, integer spikes) and is not copied (memmaps included):
    see :func:`_check_3d_array`.

    Returns
    -------
    X : ndarray, 2D (float32 or float64) or 3D (float32, float64, bool or integer)
    y : ndarray or None
    """
    nd = input_ndim(X)
    name = type(est).__name__
    if nd == 3 and allow_3d:
        X = _check_3d_array(X, dtype, name)
        if y is not None:
            from sklearn.utils.validation import check_consistent_length, column_or_1d

            y = np.asarray(y)
            if not y_numeric or y.ndim == 1:
                y = column_or_1d(y, warn=True) if y.ndim > 1 and y.shape[1] == 1 else y
            check_consistent_length(X, y)
            if y_numeric:
                y = check_array(y, ensure_2d=False, dtype=np.float64)
        if X.shape[1] < 1 or X.shape[2] < 1:
            raise ValueError(f"3D X needs at least one step and one feature, got shape {X.shape}.")
        if reset:
            est.n_features_in_ = X.shape[2]
            est.n_steps_in_ = X.shape[1]
            est.input_ndim_ = 3
            if hasattr(est, "feature_names_in_"):
                del est.feature_names_in_
        else:
            check_input_ndim(est, 3, name)
            if X.shape[2] != est.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[2]} features, but {name} is expecting {est.n_features_in_} features as input."
                )
        check_float32_range(X, name)
        return X, y
    if nd not in (1, 2):
        raise ValueError(
            f"X must be 2D (n_samples, n_features) or 3D (n_samples, n_steps, n_features); got {nd}D input."
            + ("" if allow_3d else f" {name} takes 2D input only.")
        )
    if not reset:
        check_input_ndim(est, 2, name)
    if y is None:
        X = validate_data(est, X, reset=reset, dtype=list(dtype))
    else:
        X, y = validate_data(est, X, y, reset=reset, dtype=list(dtype), y_numeric=y_numeric,
                             multi_output=y_numeric)
    if reset:
        est.input_ndim_ = 2
        est.n_steps_in_ = None
    check_float32_range(X, name)
    return X, y


def _check_3d_array(X, dtype, name):
    """3D input as it comes: spikes as ``bool`` or integers (``uint8``, ``int8``, counts in wider
    ints) and float32 / float64 values keep their dtype and memory (no copy, also for a read-only
    memmap from ``np.load(path, mmap_mode='r')``: it stays on disk); the networks convert one batch
    at a time. float16 becomes float32; other floats and objects (e.g. nested lists of floats)
    become float64 as sklearn does. Complex, string, date and other non-numeric dtypes are
    refused. Only floats are checked for NaN / inf (integers cannot hold them)."""
    kind = getattr(getattr(X, "dtype", None), "kind", None)
    if kind in ("c", "U", "S", "M", "m", "V"):
        raise ValueError(
            f"{name} takes 3D X (n_samples, n_steps, n_features) as bool or integer spikes (e.g. uint8, int8) or "
            f"float32 / float64 values; got dtype {X.dtype}. Convert it, e.g. X.astype(np.float32)"
            + (" (complex values have no meaning as input currents)." if kind == "c" else "."))
    if kind in ("b", "i", "u"):
        return check_array(X, allow_nd=True, dtype=None, ensure_all_finite=False, ensure_min_samples=1)
    if kind == "f" and X.dtype.itemsize < 4:
        return check_array(X, allow_nd=True, dtype=np.float32, ensure_min_samples=1)
    return check_array(X, allow_nd=True, dtype=list(dtype), ensure_min_samples=1)


def check_float32_range(X, name):
    """The networks compute in float32: refuse finite values that would become inf there."""
    big = np.finfo(np.float32).max
    if X.dtype == np.float64 and X.size and np.abs(X).max() > big:
        raise ValueError(f"X contains values of magnitude up to {np.abs(X).max():.3g}, beyond the float32 range "
                         f"({big:.3g}) in which {name} computes; rescale X (e.g. StandardScaler).")


def standardize_target(y, name, mean=None, scale=None):
    """``(y - mean) / scale`` as a 2D float64 array, refusing targets the float32 networks cannot
    learn: y beyond the float32 range, or a standardisation that overflows or leaves it.

    ``mean`` and ``scale`` default to y's own mean and std (floored at 1e-12 to 1).

    Returns
    -------
    z, mean, scale : ndarray
    """
    y2 = np.asarray(y, dtype=np.float64)
    y2 = y2.reshape(len(y2), -1)
    big = np.finfo(np.float32).max
    hint = (f"; {name} computes in float32. Rescale y, e.g. with sklearn.compose.TransformedTargetRegressor"
            "(regressor=..., transformer=StandardScaler()).")
    peak = np.abs(y2).max() if y2.size else 0.0
    if peak > big:
        raise ValueError(f"y contains values of magnitude up to {peak:.3g}, beyond the float32 range ({big:.3g})"
                         + hint)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if mean is None:
            mean, scale = y2.mean(0), y2.std(0)
            scale = np.where(scale > 1e-12, scale, 1.0)
        z = (y2 - mean) / scale
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and np.isfinite(z).all()
            and (not z.size or np.abs(z).max() <= big)):
        raise ValueError(f"y (magnitude up to {peak:.3g}) overflows the float32 range when standardised with "
                         f"mean {np.asarray(mean).ravel()[:3].tolist()} and scale "
                         f"{np.asarray(scale).ravel()[:3].tolist()}" + hint)
    return z, mean, scale


def check_sample_weight(sample_weight, X):
    """sklearn's ``_check_sample_weight`` refusing negative weights too (one negative weight turns
    the weighted-mean loss into one to maximise: it diverges). NaN, inf, a wrong length and
    all-zero weights are refused by sklearn's check itself."""
    if sample_weight is None:
        return None
    return _check_sample_weight(sample_weight, X, ensure_non_negative=True)


def check_hidden_layer_sizes(value, name="hidden_layer_sizes", allow_empty=True) -> tuple:
    """``hidden_layer_sizes`` as a tuple of Python ints; refuses what would be silently changed.

    Accepts an int or a sequence (tuple, list, 1D array) of ints >= 1; integral floats (``8.0``)
    are taken as ints. Refuses bools, non-integral or non-finite floats, values < 1, strings,
    nested sequences and (``allow_empty=False``) an empty sequence, with a ValueError naming
    ``name``.

    Examples
    --------
    >>> check_hidden_layer_sizes([16, 8.0])
    (16, 8)
    >>> check_hidden_layer_sizes(8)
    (8,)
    """
    def unit(h):
        if isinstance(h, (bool, np.bool_)):
            return None
        if isinstance(h, (Integral, np.integer)):
            return int(h)
        if isinstance(h, (Real, np.floating)) and np.isfinite(h) and float(h).is_integer():
            return int(h)
        return None

    if isinstance(value, (str, bytes)):
        sizes = [None]
    elif np.ndim(value) == 0 and not isinstance(value, (list, tuple)):
        sizes = [unit(value)]
    else:
        try:
            sizes = [unit(h) if np.ndim(h) == 0 and not isinstance(h, (str, bytes)) else None for h in value]
        except TypeError:
            sizes = [None]
    if any(h is None or h < 1 for h in sizes) or (not sizes and not allow_empty):
        raise ValueError(f"{name} must be {'' if allow_empty else 'one or more '}positive integers (an int or a "
                         f"sequence of ints >= 1), got {value!r}.")
    return tuple(sizes)


class HiddenLayerSizes(Options):
    """Parameter constraint: a valid :func:`check_hidden_layer_sizes` value (``Options`` only so
    that sklearn's parameter validation takes it as a constraint object)."""

    def __init__(self, allow_empty=True):
        super().__init__(object, set())
        self.allow_empty = allow_empty

    def is_satisfied_by(self, val):
        try:
            check_hidden_layer_sizes(val, allow_empty=self.allow_empty)
        except (ValueError, TypeError):
            return False
        return True

    def __str__(self):
        return f"an int >= 1 or a{' non-empty' if not self.allow_empty else ''} sequence of ints >= 1"


class IntervalNotBool(Interval):
    """An ``IntervalNotBool(Integral, ...)`` that refuses bools (sklearn's accepts them: bool is Integral)."""

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def check_input_ndim(est, nd, name):
    fitted = getattr(est, "input_ndim_", None)
    if fitted is not None and fitted != nd:
        shapes = {2: "2D (n_samples, n_features)", 3: "3D (n_samples, n_steps, n_features)"}
        raise ValueError(f"{name} was fitted on {shapes[fitted]} input but got {shapes[nd]} input; "
                         "pass data of the same layout as in fit.")


# Parameter constraints shared by the network estimators (sklearn's InvalidParameterError).
NETWORK_CONSTRAINTS = {
    "hidden_layer_sizes": [HiddenLayerSizes()],
    "n_steps": [IntervalNotBool(Integral, 1, None, closed="left")],
    "neuron": [StrOptions(set(NEURON_MODELS))],
    "tau_mem": [Interval(Real, 0, None, closed="neither")],
    "tau_syn": [Interval(Real, 0, None, closed="neither")],
    "threshold": [Interval(Real, 0, None, closed="neither")],
    "reset": [StrOptions(set(RESET_MODES))],
    "surrogate": [StrOptions(set(SURROGATES)), callable],
    "surrogate_slope": [Interval(Real, 0, None, closed="neither")],
    "recurrent": ["boolean"],
    "encoder": [StrOptions(set(enc.ENCODERS))],
    "readout": [StrOptions(set(READOUTS))],
    "input_scaling": [StrOptions({"auto"}), None],
    "device": [StrOptions({"auto", "cpu", "cuda"}), torch.device, str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "torch_num_threads": [IntervalNotBool(Integral, 1, None, closed="left"), None],
}

TRAINING_CONSTRAINTS = {
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), IntervalNotBool(Integral, 1, None, closed="left")],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "solver": [StrOptions({"adam", "adamw", "sgd", "adam-hd", "sgd-hd"})],
    "lr_schedule": [StrOptions({"constant", "cosine", "plateau"})],
    "max_iter": [IntervalNotBool(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [IntervalNotBool(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "warm_start": ["boolean"],
    "credit_assignment": [StrOptions({"bptt", "tbptt", "eprop"})],
    "bptt_window": [IntervalNotBool(Integral, 1, None, closed="left"), None],
}
