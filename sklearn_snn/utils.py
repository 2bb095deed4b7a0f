"""Discovery of the package's estimators, and tiny fast configurations of them for tests.

:func:`all_estimators` imports every public module of :mod:`sklearn_snn` that may hold estimators
(an import error propagates: a package module that does not import is a bug, not a gap) and
returns the scikit-learn estimator classes defined there, so a test parametrized over it covers every estimator present at that moment.
:func:`fast_instance` gives an instance of such a class configured to fit in well under a
second on a few dozen samples.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

__all__ = ["all_estimators", "fast_instance", "FAST_PARAMS"]

# Public modules that hold no estimator (not imported by the discovery: some are slow to import).
# "preprocessing" holds EventBinner, an estimator but no spiking network: all_estimators() lists the
# networks that the shared test suites parametrize over, and the binner is tested on its own.
_NOT_ESTIMATOR_MODULES = frozenset({
    "base", "callbacks", "cli", "datasets", "metrics", "persistence", "plotting", "preprocessing", "tasks", "training",
    "utils", "validation",
})

#: Tiny configurations per class name (merged over :data:`_GENERIC` by :func:`fast_instance`).
FAST_PARAMS = {
    "SurrogateSNNClassifier": dict(hidden_layer_sizes=(8,), n_steps=4, max_iter=3),
    "SurrogateSNNRegressor": dict(hidden_layer_sizes=(8,), n_steps=4, max_iter=3),
    "ConvertedSNN": dict(hidden_layer_sizes=(8,), n_steps=8, max_iter=3, calibration_size=64),
    "EventPropClassifier": dict(hidden_layer_sizes=(8,), n_steps=10, max_iter=2, batch_size=32),
    "STDPTransformer": dict(n_components=8, n_steps=10, intensity=1.0, max_iter=1, batch_size=64),
    "EvolvedSNN": dict(hidden_layer_sizes=(8,), population_size=8, max_iter=3, n_steps=4),
    "MetaSNNClassifier": dict(hidden_layer_sizes=(8,), n_steps=4, max_iter=3, n_meta_iter=2),
}

# Applied to any estimator that has the parameter (so a new estimator is small by default too).
_GENERIC = dict(hidden_layer_sizes=(8,), n_steps=4, max_iter=2, n_components=8, population_size=8,
                device="cpu", random_state=0, verbose=0)


def _is_estimator_class(obj, package):
    from sklearn.base import BaseEstimator

    return (inspect.isclass(obj) and issubclass(obj, BaseEstimator) and obj.__module__.startswith(package)
            and not obj.__name__.startswith("_") and not inspect.isabstract(obj)
            and obj.__module__.split(".")[-1] != "base")


def all_estimators(type_filter=None, include_meta=False):
    """The estimator classes of :mod:`sklearn_snn`, as sorted ``(name, class)`` pairs.

    Parameters
    ----------
    type_filter : {'classifier', 'regressor', 'transformer'}, list of them, or None
        Keep only estimators of these kinds (``None``: all).
    include_meta : bool, default=False
        Include meta-estimators that wrap another estimator (searches), which need one to be
        built and are not networks themselves.

    Returns
    -------
    list of (str, type)

    Examples
    --------
    >>> from sklearn_snn.utils import all_estimators
    >>> names = [name for name, _ in all_estimators()]
    >>> "SurrogateSNNClassifier" in names
    True
    >>> all(name.endswith(("Classifier", "Regressor", "SNN", "Transformer")) for name in names)
    True
    """
    from sklearn.base import (
        ClassifierMixin,
        MetaEstimatorMixin,
        RegressorMixin,
        TransformerMixin,
    )

    import sklearn_snn

    package = sklearn_snn.__name__
    found = {}
    for info in pkgutil.iter_modules(sklearn_snn.__path__):
        name = info.name
        if name.startswith("_") or name in _NOT_ESTIMATOR_MODULES:
            continue
        # a package module that fails to import is a bug: the error surfaces here, not a gap
        module = importlib.import_module(f"{package}.{name}")
        for cls_name, obj in vars(module).items():
            if _is_estimator_class(obj, package):
                found[cls_name] = obj
    kinds = {"classifier": ClassifierMixin, "regressor": RegressorMixin, "transformer": TransformerMixin}
    if type_filter is not None:
        wanted = [type_filter] if isinstance(type_filter, str) else list(type_filter)
        unknown = set(wanted) - set(kinds)
        if unknown:
            raise ValueError(f"type_filter must be among {sorted(kinds)}, got {sorted(unknown)}.")
    out = []
    for name, cls in sorted(found.items()):
        if not include_meta and issubclass(cls, MetaEstimatorMixin):
            continue
        if type_filter is not None and not any(issubclass(cls, kinds[k]) for k in wanted):
            continue
        out.append((name, cls))
    return out


def fast_instance(cls, **overrides):
    """An instance of ``cls`` small enough to fit in well under a second on tiny data.

    Uses :data:`FAST_PARAMS` for the estimators it knows and small generic values (hidden width 8,
    4 steps, 2 epochs, CPU, ``random_state=0``) for the parameters any other estimator has.

    Examples
    --------
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.utils import fast_instance
    >>> fast_instance(SurrogateSNNClassifier).get_params()["hidden_layer_sizes"]
    (8,)
    """
    params = set(cls().get_params(deep=False))
    kw = {k: v for k, v in {**_GENERIC, **FAST_PARAMS.get(cls.__name__, {}), **overrides}.items() if k in params}
    return cls(**kw)
