"""Every estimator owns a default search space of its real parameters with valid values.

For each estimator of :func:`sklearn_snn.utils.all_estimators`: the classmethod
``default_search_space()`` is non-empty, names only constructor parameters, every value a
distribution can produce (bounds, a middle and random points, every choice) passes the class's
``_parameter_constraints``, and a 2-trial :class:`OptunaSearchCV` with that default space runs on
tiny data.
"""

import math

import numpy as np
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from sklearn.base import is_classifier, is_regressor
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sklearn_snn.model_selection import (
    OptunaSearchCV,
    decode_params,
    default_search_space,
    prepare_search_space,
)
from sklearn_snn.utils import all_estimators, fast_instance

ESTIMATORS = all_estimators()
IDS = [name for name, _ in ESTIMATORS]


def _values(dist, n_random=3, seed=0):
    """Bounds, a middle point, a few random points of ``dist``, or all its choices."""
    rng = np.random.RandomState(seed)
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        lo, hi, step = dist.low, dist.high, dist.step
        mid = math.isqrt(lo * hi) if dist.log else (lo + hi) // 2
        points = [lo, hi, mid, *rng.randint(lo, hi + 1, size=n_random)]
        # onto the step grid, as Optuna samples
        return sorted({int(lo + (p - lo) // step * step) for p in points})
    if isinstance(dist, FloatDistribution):
        lo, hi = dist.low, dist.high
        if dist.log:
            mid = math.sqrt(lo * hi)
            rand = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n_random))
        else:
            mid = (lo + hi) / 2
            rand = rng.uniform(lo, hi, size=n_random)
        points = [lo, hi, mid, *rand]
        if dist.step is not None:
            points = [lo + round((p - lo) / dist.step) * dist.step for p in points]
        return [float(min(max(p, lo), hi)) for p in points]
    raise AssertionError(f"unexpected distribution {dist!r}")


def check_default_space(cls):
    """Assert that ``cls.default_search_space()`` is a valid space of ``cls``'s parameters."""
    assert callable(getattr(cls, "default_search_space", None)), (
        f"{cls.__name__} has no default_search_space classmethod")
    space = cls.default_search_space()
    assert isinstance(space, dict) and space, f"{cls.__name__}.default_search_space() is empty"
    params = cls().get_params(deep=False)
    unknown = sorted(set(space) - set(params))
    assert not unknown, f"{cls.__name__}.default_search_space() names non-parameters {unknown}"
    for name, dist in space.items():
        assert isinstance(dist, BaseDistribution), (cls.__name__, name, dist)
    # what the search passes to set_params: stored choices decoded (e.g. "128x64" -> (128, 64))
    stored, decoders = prepare_search_space(space)
    for name, dist in stored.items():
        assert name in cls._parameter_constraints, (
            f"{cls.__name__}.{name} is searched but has no _parameter_constraints entry")
        for value in _values(dist):
            assert dist._contains(dist.to_internal_repr(value)), (cls.__name__, name, value)
            decoded = decode_params({name: value}, decoders)
            # raises InvalidParameterError if a value breaks the class's constraints
            cls().set_params(**decoded)._validate_params()
    return space


def test_every_estimator_is_discovered():
    names = set(IDS)
    assert {"SurrogateSNNClassifier", "SurrogateSNNRegressor", "EventPropClassifier", "EvolvedSNN",
            "ConvertedSNN", "STDPTransformer", "MetaSNNClassifier"} <= names


@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_default_space_names_valid_parameter_values(name, cls):
    assert "default_search_space" in {k for c in cls.__mro__ for k in vars(c)}
    space = check_default_space(cls)
    # the function the search calls finds the class's own space
    assert default_search_space(cls()) == space


def test_meta_classifier_has_its_own_space():
    from sklearn_snn.meta import MetaSNNClassifier
    from sklearn_snn.surrogate import SurrogateSNNClassifier

    assert "default_search_space" in vars(MetaSNNClassifier)
    assert MetaSNNClassifier.default_search_space() != SurrogateSNNClassifier.default_search_space()


def test_eventprop_time_constants_never_coincide():
    # EventProp needs tau_mem != tau_syn, which _parameter_constraints cannot say
    from sklearn_snn.eventprop import EventPropClassifier

    space = EventPropClassifier.default_search_space()
    assert space["tau_syn"].high < space["tau_mem"].low
    est = EventPropClassifier()  # the defaults for 2D input lie inside the space, not on its edge
    for name, default in (("tau_mem", 20.0), ("tau_syn", 5.0)):
        assert est._auto_parameters[name][0] == default
        assert space[name].low < default < space[name].high


class _Broken:
    """Subclasses of SurrogateSNNClassifier with broken spaces, to show the check fails."""

    @staticmethod
    def make(space):
        from sklearn_snn.surrogate import SurrogateSNNClassifier

        class Broken(SurrogateSNNClassifier):
            @classmethod
            def default_search_space(cls):
                return space

        return Broken


@pytest.mark.parametrize("space, match", [
    ({}, "is empty"),
    ({"percentile": FloatDistribution(90.0, 100.0)}, "non-parameters"),
    ({"tau_mem": FloatDistribution(-1.0, 10.0)}, "tau_mem"),
    ({"n_steps": IntDistribution(0, 10)}, "n_steps"),
    ({"surrogate": CategoricalDistribution(["fast_sigmoid", "no_such_surrogate"])}, "surrogate"),
    ({"hidden_layer_sizes": CategoricalDistribution(["64", "0x8"])}, "hidden_layer_sizes"),
])
def test_the_check_fails_on_broken_spaces(space, match):
    with pytest.raises((AssertionError, ValueError), match=match):
        check_default_space(_Broken.make(space))


@pytest.fixture(scope="module")
def tiny_iris():
    X, y = load_iris(return_X_y=True)
    idx = np.r_[0:15, 50:65, 100:115]  # 45 samples, 15 per class
    return X[idx], y[idx]


@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_search_with_the_default_space_runs(name, cls, tiny_iris):
    X, y = tiny_iris
    est = fast_instance(cls)
    if is_regressor(est):
        X, y = X[:, :3], X[:, 3]  # petal width from the other measurements
    if is_classifier(est) or is_regressor(est):
        model, prefix = est, ""
    else:  # a transformer has no score: search it in front of a classifier
        model, prefix = Pipeline([("snn", est), ("clf", LogisticRegression(max_iter=500))]), "snn__"
    space = default_search_space(model)
    assert set(space) == {prefix + k for k in cls.default_search_space()}
    search = OptunaSearchCV(model, cv=2, n_trials=2, random_state=0, error_score="raise")
    search.fit(X, y)
    assert list(search.cv_results_["state"]) == ["COMPLETE", "COMPLETE"]
    assert set(search.best_params_) == set(space)
    assert np.isfinite(search.best_score_)
    for key, value in search.best_params_.items():
        if key.endswith("hidden_layer_sizes"):
            assert isinstance(value, tuple)
    # the refitted best estimator carries the sampled values
    best = search.best_estimator_.get_params()
    assert all(best[k] == v for k, v in search.best_params_.items())
    assert search.predict(X).shape == (len(X),)
