"""Safe save / load of fitted estimators.

``pickle`` and ``joblib`` work on every estimator (torch modules are pickled on the CPU, so a model
fitted on a GPU unpickles on a CPU-only machine), but unpickling runs code from the file. The
format here does not: the file is written with ``torch.save`` and holds only plain containers,
strings, numbers and tensors -- the estimator's class name, its constructor parameters, its fitted
attributes (numpy arrays stored as tensors) and the torch module's ``state_dict``. :func:`load` reads
it with ``torch.load(weights_only=True)``, accepts only classes of this package, rebuilds the
network from the fitted attributes and loads the weights on the CPU (or ``device``).

A version stamp is checked: a file written by a different major version (or a newer minor
version) is refused with a message naming both versions.
"""

from __future__ import annotations

import importlib
import numbers

import numpy as np
import torch

FORMAT = "sklearn-snn/1"


def _version():
    from . import __version__

    return __version__


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


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy().astype(value["dtype"], copy=True)
        if "__ndarray_obj__" in value:
            return np.array(value["__ndarray_obj__"], dtype=value["dtype"])
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode(v) for k, v in value["__dict__"].items()}
        if "__tensor__" in value:
            return value["__tensor__"]
    return value


def save(estimator, path):
    """Write a fitted estimator of this package to ``path`` in the safe format.

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
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    cls = type(estimator)
    if not cls.__module__.startswith("sklearn_snn"):
        raise TypeError(f"save() stores estimators of sklearn_snn only, got {cls.__module__}.{cls.__name__}.")
    if not hasattr(estimator, "_rebuild_module"):
        raise TypeError(f"{cls.__name__} does not support the safe format yet; use pickle or joblib.")
    params = {k: _encode(v, f"parameter {k!r}") for k, v in estimator.get_params(deep=False).items()}
    attrs = {}
    for k, v in vars(estimator).items():
        if k.endswith("_") and not k.startswith("__") and k not in getattr(estimator, "_torch_attributes", ()):
            attrs[k] = _encode(v, f"fitted attribute {k!r}")
    private = {k: _encode(v, k) for k, v in vars(estimator).items() if k in getattr(estimator, "_persist_private", ())}
    modules = {}
    for name in getattr(estimator, "_torch_attributes", ("module_",)):
        m = getattr(estimator, name, None)
        if m is not None:
            modules[name] = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
    torch.save({
        "format": FORMAT,
        "version": _version(),
        "class": f"{cls.__module__}.{cls.__name__}",
        "params": params,
        "attributes": attrs,
        "private": private,
        "modules": modules,
    }, path)


def _check_version(saved):
    cur = _version()
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


def load(path, device="cpu"):
    """Load an estimator written by :func:`save`; no code from the file is executed.

    Parameters
    ----------
    path : str or path-like
    device : str, default='cpu'
        Where the weights go; the estimator's ``device`` parameter is kept as saved.
    """
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path!s} is not an sklearn-snn model file (format {FORMAT}).")
    _check_version(blob["version"])
    mod_name, _, cls_name = blob["class"].rpartition(".")
    if not mod_name.startswith("sklearn_snn"):
        raise ValueError(f"Refusing to load class {blob['class']!r}: only sklearn_snn estimators are allowed.")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    est = cls(**{k: _decode(v) for k, v in blob["params"].items()})
    for k, v in blob["attributes"].items():
        setattr(est, k, _decode(v))
    for k, v in blob.get("private", {}).items():
        setattr(est, k, _decode(v))
    for name, state in blob["modules"].items():
        module = est._rebuild_module(name)
        module.load_state_dict(state)
        setattr(est, name, module.to(device))
    return est
