"""Safe save / load of fitted estimators (and pipelines of them).

``pickle`` and ``joblib`` work on every estimator, but unpickling runs code from the file. The
format here does not. A file is written with ``torch.save`` and holds only plain containers,
strings, numbers and tensors: a class name, the constructor parameters, the fitted attributes
(numpy arrays stored as tensors) and the ``state_dict`` of each torch module.

What :func:`load` will construct, and nothing else:

* an estimator class named in :func:`model_classes` (the package's estimators) or a step of a
  :class:`~sklearn.pipeline.Pipeline` whose class is named in :func:`pipeline_step_classes`;
  a class name is looked up in these tables, never imported by name from the file;
* with the parameters that class's constructor takes, validated by its own parameter
  constraints before anything else runs (an unknown or invalid parameter refuses the file);
* with only the fitted attributes that class declares (``_fitted_attributes``, each with its
  expected kind: integer, float, string, numeric array, label array, list of floats, ...);
  any other attribute, or one of the wrong kind, refuses the file;
* with torch modules rebuilt by the class itself from those attributes (``_rebuild_module``),
  whose weights must then match the file's tensors name for name and shape for shape.

A class may name constructor parameters (``_unsaved_parameters``) and fitted attributes
(``_unsaved_attributes``) that hold a user's objects, which the format cannot store (e.g.
``ConvertedSNN``'s ``ann`` and ``ann_``): such a parameter is written as None (a file that sets it
is refused) and such an attribute is left out (a file that holds it is refused).

Everything is read with ``torch.load(weights_only=True)``, so no object of the file is
unpickled. A file that is not of this format (empty, text, joblib/pickle, truncated) is refused
with ``ValueError: ... is not an sklearn-snn model file``. A version stamp is checked: a file
written by a different major version (or a newer minor version) is refused with a message
naming both versions.
"""

from __future__ import annotations

import functools
import numbers
import os
import pickle

import numpy as np
import torch
from sklearn.utils._param_validation import InvalidParameterError

from ._version import __version__
from .base import resolve_device

__all__ = ["save", "load", "FORMAT", "model_classes", "pipeline_step_classes", "declared_attributes"]

FORMAT = "sklearn-snn/1"

_PIPELINE = "sklearn.pipeline.Pipeline"


@functools.cache
def model_classes():
    """``"module.Class" -> class``: the estimators :func:`load` builds (the allowlist)."""
    from .conversion import ConvertedSNN
    from .eventprop import EventPropClassifier
    from .evolution import EvolvedSNN
    from .meta import MetaSNNClassifier
    from .stdp import STDPTransformer
    from .surrogate import SurrogateSNNClassifier, SurrogateSNNRegressor

    classes = (ConvertedSNN, EventPropClassifier, EvolvedSNN, MetaSNNClassifier, STDPTransformer,
               SurrogateSNNClassifier, SurrogateSNNRegressor)
    return {f"{c.__module__}.{c.__name__}": c for c in classes}


@functools.cache
def pipeline_step_classes():
    """``"module.Class" -> (class, declared attributes)``: the scikit-learn estimators that may
    stand beside the package's in a saved pipeline, those whose fitted state is a few numeric
    arrays, declared here attribute by attribute."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    common = {"n_features_in_": "int", "feature_names_in_": "labels"}
    return {
        "sklearn.preprocessing.StandardScaler": (StandardScaler, {
            **common, "mean_": "array?", "var_": "array?", "scale_": "array?", "n_samples_seen_": "array_or_float"}),
        "sklearn.preprocessing.MinMaxScaler": (MinMaxScaler, {
            **common, "min_": "array", "scale_": "array", "data_min_": "array", "data_max_": "array",
            "data_range_": "array", "n_samples_seen_": "int"}),
        "sklearn.preprocessing.MaxAbsScaler": (MaxAbsScaler, {
            **common, "max_abs_": "array", "scale_": "array", "n_samples_seen_": "int"}),
        "sklearn.linear_model.LogisticRegression": (LogisticRegression, {
            **common, "classes_": "labels", "coef_": "array", "intercept_": "array", "n_iter_": "array"}),
    }


def _not_a_model_file(path, why):
    return ValueError(f"{os.fspath(path) if not hasattr(path, 'read') else 'The stream'} is not an sklearn-snn "
                      f"model file ({why}). Such files are written by sklearn_snn.save(estimator, path).")


# ------------------------------------------------------------------------------------------------
# encoding of values as plain containers and tensors
# ------------------------------------------------------------------------------------------------
def _encode(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value)).clone(), "dtype": str(value.dtype)}
        if value.dtype.kind in "OUS":
            items = value.tolist()
            if all(isinstance(v, (str, int, float, bool)) for v in np.ravel(value).tolist()):
                return {"__ndarray_obj__": items, "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        enc = [_encode(v, where) for v in value]
        return {"__tuple__": enc} if isinstance(value, tuple) else enc
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, where) for k, v in value.items()}}
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().clone()}
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which the safe format cannot store. "
        "Use pickle/joblib for this estimator (only load such files from sources you trust)."
    )


_ALLOWED_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                   "float16", "float32", "float64"}


def _decode(value, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, where) for v in value]
    if isinstance(value, dict) and len(value) in (1, 2):
        if "__ndarray__" in value and isinstance(value["__ndarray__"], torch.Tensor):
            dtype = value.get("dtype")
            if dtype not in _ALLOWED_DTYPES:
                raise ValueError(f"{where}: array of unsupported dtype {dtype!r}")
            return value["__ndarray__"].numpy().astype(dtype, copy=True)
        if "__ndarray_obj__" in value:
            dtype = str(value.get("dtype", ""))
            if not (dtype == "object" or dtype.startswith(("<U", ">U", "|S", "<S", ">S", "|U"))):
                raise ValueError(f"{where}: label array of unsupported dtype {dtype!r}")
            items = value["__ndarray_obj__"]
            flat = np.ravel(np.array(items, dtype=object)).tolist() if isinstance(items, list) else [items]
            if not all(isinstance(v, (str, int, float, bool)) for v in flat):
                raise ValueError(f"{where}: label array with non-plain entries")
            return np.array(items, dtype=dtype)
        if "__tuple__" in value and isinstance(value["__tuple__"], list):
            return tuple(_decode(v, where) for v in value["__tuple__"])
        if "__dict__" in value and isinstance(value["__dict__"], dict):
            return {str(k): _decode(v, where) for k, v in value["__dict__"].items()}
        if "__tensor__" in value and isinstance(value["__tensor__"], torch.Tensor):
            return value["__tensor__"]
    raise ValueError(f"{where}: unreadable value of type {type(value).__name__}")


# ------------------------------------------------------------------------------------------------
# declared fitted attributes
# ------------------------------------------------------------------------------------------------
def declared_attributes(cls):
    """``name -> kind`` of the fitted attributes ``cls`` declares (its own and its bases')."""
    declared = {}
    for klass in reversed(cls.__mro__):
        declared.update(vars(klass).get("_fitted_attributes", {}))
    return declared


def _is_float(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_labels(v):
    return isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "biufUSO"


_KINDS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_float,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, np.ndarray) and v.dtype.kind in "biuf",
    "array_or_float": lambda v: _is_float(v) or (isinstance(v, np.ndarray) and v.dtype.kind in "biuf"),
    "labels": _is_labels,
    "floats": lambda v: isinstance(v, list) and all(_is_float(x) for x in v),
    "ints": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
    "optional_floats": lambda v: isinstance(v, list) and all(x is None or _is_float(x) for x in v),
    "tensor": lambda v: isinstance(v, torch.Tensor),
    "float_map": lambda v: isinstance(v, dict) and all(_is_float(x) for x in v.values()),
    "records": lambda v: isinstance(v, (list, dict)),
}


def _check_kind(value, kind, where):
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None and optional:
        return
    if not _KINDS[base](value):
        raise ValueError(f"{where} should be {'None or ' if optional else ''}{base}, "
                         f"got {type(value).__name__}")
    if base == "records":
        _check_plain(value, where)


def _check_plain(value, where):
    """Nested lists / dicts of plain values only (architecture summaries and the like)."""
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray)):
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_plain(v, where)
        return
    if isinstance(value, dict):
        for v in value.values():
            _check_plain(v, where)
        return
    raise ValueError(f"{where} holds a {type(value).__name__}")


# ------------------------------------------------------------------------------------------------
# save
# ------------------------------------------------------------------------------------------------
def _unsaved(cls):
    """``(parameters written as None, fitted attributes left out)`` as ``cls`` names them."""
    return tuple(getattr(cls, "_unsaved_parameters", ())), tuple(getattr(cls, "_unsaved_attributes", ()))


def _has_fitted_state(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
        return True
    except NotFittedError:
        # e.g. a MetaSNNClassifier that is meta-fitted but not yet adapted to a task
        return any(getattr(estimator, n, None) is not None for n in getattr(estimator, "_torch_attributes", ()))


def _estimator_record(estimator, where):
    cls = type(estimator)
    name = f"{cls.__module__}.{cls.__name__}"
    steps = {klass: (key, attrs) for key, (klass, attrs) in pipeline_step_classes().items()}
    if model_classes().get(name) is cls:
        declared = declared_attributes(cls)
        torch_names = tuple(getattr(cls, "_torch_attributes", ()))
    elif cls in steps and where != "the estimator":
        name, declared = steps[cls]
        torch_names = ()
    else:
        raise TypeError(f"{where} is a {name}, which the safe format does not store: it stores the estimators of "
                        f"sklearn_snn and pipelines of them (with {', '.join(sorted(k.rsplit('.', 1)[1] for k in pipeline_step_classes()))}). "
                        "Use pickle/joblib for it (only load such files from sources you trust).")
    if not _has_fitted_state(estimator):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"{where} ({cls.__name__}) is not fitted yet; call fit before saving it.")
    unsaved_params, unsaved_attrs = _unsaved(cls)
    params = {k: _encode(None if k in unsaved_params else v, f"{where}: parameter {k!r}")
              for k, v in estimator.get_params(deep=False).items()}
    attributes, modules = {}, {}
    for k, v in vars(estimator).items():
        if k in unsaved_attrs:
            continue
        if k in torch_names:
            if v is not None:
                modules[k] = {n: t.detach().cpu().clone() for n, t in v.state_dict().items()}
                _check_rebuilds(estimator, k, modules[k], where)
            continue
        fitted = k.endswith("_") and not k.startswith("__")
        if k not in declared:
            if fitted:  # a learned attribute the class does not declare would be lost: say so
                raise TypeError(f"{where}: {cls.__name__}.{k} is not a declared fitted attribute; add it to "
                                f"{cls.__name__}._fitted_attributes so that the safe format keeps it.")
            continue
        attributes[k] = _encode(v, f"{where}: fitted attribute {k!r}")
    return {"class": name, "params": params, "attributes": attributes, "modules": modules}


def _check_rebuilds(estimator, name, state, where):
    """The file must load: the network the parameters describe must hold these weights (it does
    not after e.g. ``set_params(hidden_layer_sizes=...)`` on a fitted estimator)."""
    want = {k: tuple(t.shape) for k, t in estimator._rebuild_module(name).state_dict().items()}
    have = {k: tuple(t.shape) for k, t in state.items()}
    if want != have:
        diff = sorted(set(have.items()) ^ set(want.items()))[:4]
        raise ValueError(f"{where}: the parameters of this {type(estimator).__name__} no longer describe its fitted "
                         f"network {name} (e.g. {diff}); set_params after fit? Restore the parameters it was "
                         "fitted with, or fit again, before saving.")


def save(estimator, path):
    """Write a fitted estimator of this package (or a pipeline of them) to ``path`` safely.

    The file holds no code: see the module documentation for what :func:`load` will build from
    it. Fitted on a GPU, the weights are written from the CPU.

    Parameters
    ----------
    estimator : a fitted estimator of sklearn_snn, or a fitted Pipeline of them
        Pipeline steps may also be ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``,
        or ``LogisticRegression`` (``'passthrough'`` too).
    path : str, path-like or a writable binary stream

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.persistence import save, load
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.snn")
    >>> save(clf, path)
    >>> bool((load(path).predict(X) == clf.predict(X)).all())
    True
    """
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline) and type(estimator) is Pipeline:
        steps = []
        for i, (name, step) in enumerate(estimator.steps):
            if step is None or (isinstance(step, str) and step == "passthrough"):
                steps.append([str(name), "passthrough"])
            else:
                steps.append([str(name), _estimator_record(step, f"pipeline step {i} ({name!r})")])
        record = {"class": _PIPELINE, "params": {"verbose": bool(estimator.verbose)}, "steps": steps}
    else:
        record = _estimator_record(estimator, "the estimator")
    torch.save({"format": FORMAT, "version": __version__, **record}, path)


# ------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------
def _check_version(saved):
    cur = __version__
    c_major, c_minor = (int(p) for p in cur.split(".")[:2])
    try:
        s_major, s_minor = (int(p) for p in str(saved).split(".")[:2])
    except ValueError:
        raise ValueError(f"This file carries an unreadable version stamp {saved!r}; the installed sklearn-snn is "
                         f"{cur}. Re-save the model with the version that wrote it.") from None
    if s_major != c_major or s_minor > c_minor:
        raise ValueError(
            f"This file was written by sklearn-snn {saved}, which is not compatible with the installed "
            f"version {cur}. Install sklearn-snn {s_major}.{s_minor} to load it."
        )


def _read(path):
    if not hasattr(path, "read"):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No model file at {path!r}.")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path!r} is a folder; pass the path of a file written by sklearn_snn.save.")
        if os.path.getsize(path) == 0:
            raise _not_a_model_file(path, "the file is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refused an object: the file asks for code to run (or is a plain pickle)
        raise pickle.UnpicklingError(
            f"{_not_a_model_file(path, 'it holds objects that would run code when unpickled')}\n"
            f"torch said: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except (EOFError, RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise _not_a_model_file(path, f"unreadable: {type(exc).__name__}: {str(exc)[:200]}") from None


def _build_estimator(record, where, device):
    if not isinstance(record, dict) or not isinstance(record.get("class"), str):
        raise ValueError(f"{where}: no class name")
    name = record["class"]
    if name in model_classes():
        cls = model_classes()[name]
        declared, torch_names = declared_attributes(cls), tuple(getattr(cls, "_torch_attributes", ()))
    elif name in pipeline_step_classes() and where != "the file":
        cls, declared = pipeline_step_classes()[name]
        torch_names = ()
    else:
        raise ValueError(f"Refusing to load class {name!r} ({where}): a model file may name only the estimators "
                         f"of sklearn_snn ({', '.join(sorted(c.rsplit('.', 1)[1] for c in model_classes()))})"
                         " or a Pipeline of them.")
    params, attributes, modules = (record.get(k) for k in ("params", "attributes", "modules"))
    if not (isinstance(params, dict) and isinstance(attributes, dict) and isinstance(modules, dict)):
        raise ValueError(f"{where}: params, attributes and modules must be tables")
    unsaved_params, unsaved_attrs = _unsaved(cls)
    torch_names = tuple(n for n in torch_names if n not in unsaved_attrs)
    set_unsaved = sorted(k for k in unsaved_params if params.get(k) is not None)
    if set_unsaved:
        raise ValueError(f"{where}: the safe format does not store {cls.__name__} parameter(s) {set_unsaved}; "
                         "they must be None")
    # 1. parameters: only the constructor's, validated by the class's own constraints
    known = set(cls._get_param_names())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no parameter(s) {unknown}")
    est = cls(**{k: _decode(v, f"{where}: parameter {k!r}") for k, v in params.items()})
    try:
        est._validate_params()
    except InvalidParameterError as exc:
        raise ValueError(f"{where}: invalid parameters for {cls.__name__}: {exc}") from None
    # 2. fitted attributes: only those the class declares, each of its declared kind
    for k, v in attributes.items():
        if k not in declared:
            raise ValueError(f"{where}: {cls.__name__} declares no fitted attribute {k!r}")
        value = _decode(v, f"{where}: attribute {k!r}")
        _check_kind(value, declared[k], f"{where}: attribute {k!r}")
        setattr(est, k, value)
    _check_attribute_shapes(est, where)
    # 3. torch modules: rebuilt by the class from its attributes; weights must match exactly
    unknown = sorted(set(modules) - set(torch_names))
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no torch module(s) {unknown}")
    for mname, state in modules.items():
        if not (isinstance(state, dict) and all(isinstance(t, torch.Tensor) for t in state.values())):
            raise ValueError(f"{where}: module {mname!r} must be a table of tensors")
        try:
            module = est._rebuild_module(mname)
            module.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{where}: the weights of {mname!r} do not fit the network the file describes "
                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
        setattr(est, mname, module.to(device))
    return est


def _check_attribute_shapes(est, where):
    """Arrays indexed by input features must have ``n_features_in_`` entries."""
    n = getattr(est, "n_features_in_", None)
    for k in ("input_offset_", "input_scale_", "meta_input_offset_", "meta_input_scale_", "feature_names_in_",
              "mean_", "var_", "scale_", "min_", "data_min_", "data_max_", "data_range_", "max_abs_"):
        v = getattr(est, k, None)
        if isinstance(v, np.ndarray) and n is not None and v.shape != (n,):
            raise ValueError(f"{where}: {k} has shape {v.shape}, expected ({n},) for {n} input features")


def load(path, device="cpu"):
    """Load an estimator (or pipeline) written by :func:`save`; no code from the file runs.

    Parameters
    ----------
    path : str, path-like or a readable binary stream
    device : str, default='cpu'
        Where the weights go ('cpu', 'cuda', 'cuda:1', 'auto'); the estimator's ``device``
        parameter is kept as saved. A CUDA device on a machine without one is refused, as in fit.

    Returns
    -------
    estimator

    Raises
    ------
    ValueError
        The file is not an sklearn-snn model file, names a class outside the allowlist, or holds
        parameters, attributes or weights that the class does not declare or accept.
    """
    dev = resolve_device(device)
    blob = _read(path)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise _not_a_model_file(path, f"no {FORMAT!r} format stamp")
    _check_version(blob.get("version"))
    try:
        if blob.get("class") == _PIPELINE:
            return _build_pipeline(blob, dev)
        return _build_estimator(blob, "the file", dev)
    except ValueError as exc:
        if str(exc).startswith("Refusing"):
            raise
        raise _not_a_model_file(path, str(exc)) from None


def _build_pipeline(blob, device):
    from sklearn.pipeline import Pipeline

    steps = blob.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ValueError("a pipeline without steps")
    built = []
    for i, entry in enumerate(steps):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise ValueError(f"pipeline step {i} is unreadable")
        name, record = entry
        where = f"pipeline step {i} ({name!r})"
        built.append((name, "passthrough" if record == "passthrough" else _build_estimator(record, where, device)))
    params = blob.get("params") or {}
    return Pipeline(built, verbose=bool(params.get("verbose", False)))
