"""Which models a benchmark runs: the SNN estimators and classical models that fit the data's shape.

Every model is a :class:`ModelSpec`: a name, whether it is spiking, the input shapes it takes
(2D tables, 3D spike arrays), a factory and, for classical models, a small search space (the SNN
estimators declare their own through ``default_search_space()``).

On 3D spike data ``(n_samples, n_steps, n_channels)`` the classical models see either the
flattened array (``-flat``: one feature per step and channel) or the spike count of each channel
(``-counts``: the time axis summed), through a :class:`~sklearn.preprocessing.FunctionTransformer`
at the head of their pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ModelSpec", "available_models", "count_spikes", "flatten_time", "quick_mode", "select_models"]


def quick_mode(quick=None):
    """Whether to train with tiny budgets: ``quick`` if given, else ``SKLEARN_SNN_QUICK == "1"``.

    Examples
    --------
    >>> quick_mode(True), quick_mode(False)
    (True, False)
    """
    if quick is None:
        return os.environ.get("SKLEARN_SNN_QUICK") == "1"
    return bool(quick)


def flatten_time(X):
    """``(n, T, C)`` spikes -> ``(n, T * C)`` float32 features (one per step and channel).

    Examples
    --------
    >>> flatten_time(np.ones((2, 3, 4), dtype=np.uint8)).shape
    (2, 12)
    """
    X = np.asarray(X)
    return X.reshape(len(X), -1).astype(np.float32, copy=False)


def count_spikes(X):
    """``(n, T, C)`` spikes -> ``(n, C)`` float32 spike count per channel (the time axis summed).

    Examples
    --------
    >>> count_spikes(np.ones((2, 3, 4), dtype=np.uint8))[0]
    array([3., 3., 3., 3.], dtype=float32)
    """
    return np.asarray(X).sum(axis=1, dtype=np.float32)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a benchmark.

    Parameters
    ----------
    name : str
        Name in the report and for ``models=`` / ``--models``.
    snn : bool
        Spiking (its row gets SynOps and energy) or classical.
    ndims : frozenset of int
        Input dimensionalities it takes (2: table, 3: spike array).
    build : callable
        ``build(quick, random_state) -> estimator`` (unfitted).
    space : callable or None
        ``space() -> dict`` of optuna distributions with pipeline-prefixed names, or None for the
        estimator's own ``default_search_space()`` (see
        :func:`sklearn_snn.model_selection.default_search_space`).
    default : bool
        Part of the default selection for its shapes.
    prune : bool
        Let a search prune its trials per epoch (where the estimator reports epochs).
    """

    name: str
    snn: bool
    ndims: frozenset
    build: object = field(repr=False)
    space: object = field(default=None, repr=False)
    default: bool = True
    prune: bool = True

    def make(self, quick=False, random_state=0):
        """A fresh unfitted estimator."""
        return self.build(bool(quick), random_state)


# ----------------------------------------------------------------------------- search spaces
# Small, honest spaces for the classical models: the parameters that matter most, over ranges
# that contain the library defaults, so a search can only help them.


def _space_logreg(prefix):
    def space():
        from optuna.distributions import FloatDistribution

        return {f"{prefix}C": FloatDistribution(1e-3, 1e2, log=True)}
    return space


def _space_svc(prefix):
    def space():
        from optuna.distributions import FloatDistribution

        return {f"{prefix}C": FloatDistribution(1e-2, 1e3, log=True),
                f"{prefix}gamma": FloatDistribution(1e-4, 1.0, log=True)}
    return space


def _space_mlp(prefix):
    def space():
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {f"{prefix}hidden_layer_sizes": CategoricalDistribution(["64", "100", "256", "128x64"]),
                f"{prefix}alpha": FloatDistribution(1e-6, 1e-1, log=True),
                f"{prefix}learning_rate_init": FloatDistribution(1e-4, 1e-2, log=True)}
    return space


def _space_forest(prefix):
    def space():
        from optuna.distributions import CategoricalDistribution, IntDistribution

        return {f"{prefix}n_estimators": IntDistribution(50, 400, log=True),
                f"{prefix}max_features": CategoricalDistribution(["sqrt", "log2", 0.5]),
                f"{prefix}min_samples_leaf": IntDistribution(1, 8)}
    return space


def _space_hgb(prefix):
    def space():
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {f"{prefix}learning_rate": FloatDistribution(0.01, 0.3, log=True),
                f"{prefix}max_leaf_nodes": IntDistribution(8, 64, log=True),
                f"{prefix}min_samples_leaf": IntDistribution(5, 50, log=True),
                f"{prefix}l2_regularization": CategoricalDistribution([0.0, 0.01, 0.1, 1.0])}
    return space


# ----------------------------------------------------------------------------- classical models


def _classical_estimator(kind, quick, random_state):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind == "LogisticRegression":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=200 if quick else 2000))
    if kind == "SVC":
        return make_pipeline(StandardScaler(), SVC())
    if kind == "MLPClassifier":
        return make_pipeline(StandardScaler(), MLPClassifier(max_iter=30 if quick else 300,
                                                             random_state=random_state))
    if kind == "RandomForest":
        return RandomForestClassifier(n_estimators=20 if quick else 100, random_state=random_state)
    if kind == "HistGradientBoosting":
        return HistGradientBoostingClassifier(max_iter=20 if quick else 100, random_state=random_state)
    raise ValueError(kind)


_CLASSICAL = {  # name -> (space factory, prefix of the model's parameters inside its 2D pipeline)
    "LogisticRegression": (_space_logreg, "logisticregression__"),
    "SVC": (_space_svc, "svc__"),
    "MLPClassifier": (_space_mlp, "mlpclassifier__"),
    "RandomForest": (_space_forest, ""),
    "HistGradientBoosting": (_space_hgb, ""),
}
_FEATURES_3D = {"flat": flatten_time, "counts": count_spikes}
# the 3D forms run by default: every classical model on the spike counts (cheap, one feature per
# channel) and the two that cope with many features on the flattened spikes
_DEFAULT_3D = {"flat": {"LogisticRegression", "MLPClassifier"}, "counts": set(_CLASSICAL)}


def _classical_2d(kind):
    return lambda quick, rs: _classical_estimator(kind, quick, rs)


def _classical_3d(kind, features):
    def build(quick, rs):
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer

        est = _classical_estimator(kind, quick, rs)
        head = ("features", FunctionTransformer(_FEATURES_3D[features]))
        steps = est.steps if isinstance(est, Pipeline) else [(type(est).__name__.lower(), est)]
        return Pipeline([head, *steps])
    return build


# ----------------------------------------------------------------------------- SNN estimators


def _snn(kind):
    def build(quick, rs):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import MinMaxScaler

        from sklearn_snn import (
            ConvertedSNN,
            EventPropClassifier,
            EvolvedSNN,
            STDPTransformer,
            SurrogateSNNClassifier,
        )

        e = 3 if quick else 60
        if kind == "SurrogateSNN":
            return SurrogateSNNClassifier(max_iter=e, random_state=rs)
        if kind == "SurrogateSNN-spikes":
            # spike-timing input: a current-based synapse integrates the input spikes
            return SurrogateSNNClassifier(max_iter=e, neuron="cuba", tau_syn=10.0, random_state=rs)
        if kind == "SurrogateSNN-recurrent":
            return SurrogateSNNClassifier(max_iter=e, neuron="cuba", tau_syn=10.0, recurrent=True,
                                          grad_clip=1.0, random_state=rs)
        if kind == "EventProp":
            return EventPropClassifier(max_iter=2 if quick else 10, random_state=rs)
        if kind == "ConvertedSNN":
            return ConvertedSNN(**({"max_iter": 30} if quick else {}), random_state=rs)
        if kind == "EvolvedSNN":
            return EvolvedSNN(max_iter=5 if quick else 150, random_state=rs)
        if kind == "STDP+LogReg":
            stdp = STDPTransformer(**({"n_components": 32, "max_iter": 1} if quick else {}), random_state=rs)
            return make_pipeline(MinMaxScaler(), stdp, LogisticRegression(max_iter=1000))
        if kind == "STDP3D+LogReg":
            stdp = STDPTransformer(**({"n_components": 32, "max_iter": 1} if quick else {}), random_state=rs)
            return make_pipeline(stdp, LogisticRegression(max_iter=1000))
        raise ValueError(kind)
    return build


def available_models():
    """Every model the benchmark knows, as :class:`ModelSpec` objects.

    Returns
    -------
    models : list of ModelSpec
        SNN estimators first, then the classical models (for 3D data in their ``-flat`` and
        ``-counts`` forms).

    Examples
    --------
    >>> names = [m.name for m in available_models() if 3 in m.ndims]
    >>> "SurrogateSNN-spikes" in names, "RandomForest-counts" in names, "ConvertedSNN" in names
    (True, True, False)
    """
    two, three, both = frozenset({2}), frozenset({3}), frozenset({2, 3})
    specs = [
        ModelSpec("SurrogateSNN", True, two, _snn("SurrogateSNN")),
        ModelSpec("SurrogateSNN-spikes", True, three, _snn("SurrogateSNN-spikes")),
        ModelSpec("SurrogateSNN-recurrent", True, three, _snn("SurrogateSNN-recurrent")),
        ModelSpec("EventProp", True, both, _snn("EventProp")),
        # its epoch callback runs while the ANN trains, before there is an SNN to score: a pruned
        # search would score an unfitted model, so its trials run to the end
        ModelSpec("ConvertedSNN", True, two, _snn("ConvertedSNN"), prune=False),
        ModelSpec("EvolvedSNN", True, both, _snn("EvolvedSNN"), default=True),
        ModelSpec("STDP+LogReg", True, two, _snn("STDP+LogReg")),
        ModelSpec("STDP3D+LogReg", True, three, _snn("STDP3D+LogReg"), default=False),
    ]
    for kind, (space, prefix) in _CLASSICAL.items():
        specs.append(ModelSpec(kind, False, two, _classical_2d(kind), space(prefix)))
    for features in ("counts", "flat"):
        for kind, (space, prefix) in _CLASSICAL.items():
            # inside the 3D pipeline a bare estimator is a step named after its class
            pre = prefix or ("randomforestclassifier__" if kind == "RandomForest"
                             else "histgradientboostingclassifier__")
            specs.append(ModelSpec(f"{kind}-{features}", False, three, _classical_3d(kind, features),
                                   space(pre), default=kind in _DEFAULT_3D[features]))
    return specs


def select_models(ndim, models=None):
    """The models to run on ``ndim``-dimensional data.

    Parameters
    ----------
    ndim : {2, 3}
        2 for a table ``(n_samples, n_features)``, 3 for spikes ``(n_samples, n_steps, n_channels)``.
    models : None, str or list of str, default=None
        None: every default model that takes this shape. Otherwise model names, in any case (a
        comma-separated string is split); ``"snn"`` and ``"classical"`` stand for every default
        model of that kind.

    Returns
    -------
    specs : list of ModelSpec

    Raises
    ------
    ValueError
        For an unknown name, or a model that does not take this shape (the message lists the valid
        names).

    Examples
    --------
    >>> [m.name for m in select_models(2, "SurrogateSNN,LogisticRegression")]
    ['SurrogateSNN', 'LogisticRegression']
    >>> select_models(3, ["ConvertedSNN"])
    Traceback (most recent call last):
    ...
    ValueError: Model 'ConvertedSNN' does not take 3D data...
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    specs = available_models()
    fit = [m for m in specs if ndim in m.ndims]
    if models is None:
        return [m for m in fit if m.default]
    if isinstance(models, str):
        models = models.split(",")
    names = [str(n).strip() for n in models if str(n).strip()]
    if not names:
        raise ValueError("No model named; pass model names or leave models=None for the default set.")
    by_name = {m.name.lower(): m for m in fit}  # names match regardless of case
    chosen, unknown, wrong_shape = [], [], []
    for name in names:
        if name.lower() in ("snn", "classical"):
            chosen += [m for m in fit if m.default and m.snn == (name.lower() == "snn")]
        elif name.lower() in by_name:
            chosen.append(by_name[name.lower()])
        elif any(m.name.lower() == name.lower() for m in specs):
            wrong_shape.append(name)
        else:
            unknown.append(name)
    valid = ", ".join(m.name for m in fit)
    if wrong_shape:
        raise ValueError(f"Model {wrong_shape[0]!r} does not take {ndim}D data. Models for {ndim}D data: "
                         f"{valid} (or 'snn', 'classical').")
    if unknown:
        raise ValueError(f"Unknown model name(s) {', '.join(map(repr, unknown))}. Models for {ndim}D data: "
                         f"{valid} (or 'snn', 'classical').")
    seen, out = set(), []
    for m in chosen:
        if m.name not in seen:
            seen.add(m.name)
            out.append(m)
    return out
