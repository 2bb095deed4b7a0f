"""Search spaces: the default space of an estimator, and making a space storable by Optuna.

Every estimator of the package owns its default space, the classmethod
``default_search_space()`` of its class (optuna is imported inside it, so importing an
estimator does not import optuna).  :func:`default_search_space` finds it on an estimator or on
the steps of a pipeline.  :func:`prepare_search_space` codes the choices Optuna cannot store
(tuples such as ``hidden_layer_sizes``) as strings and :func:`decode_params` turns sampled
values back into constructor values.
"""

from __future__ import annotations

import numbers

from optuna.distributions import BaseDistribution, CategoricalDistribution
from sklearn.pipeline import Pipeline

__all__ = ["LAYERS_SEP", "decode_layers", "decode_params", "default_search_space",
           "prepare_search_space"]

#: Separator of the layer widths in a coded ``hidden_layer_sizes`` choice (``"128x64"``).
LAYERS_SEP = "x"


def _own_space(est):
    """The space the estimator's class declares, checked against its parameters; or None."""
    method = getattr(type(est), "default_search_space", None)
    if method is None or not callable(method):
        return None
    space = dict(method())
    unknown = sorted(set(space) - set(est.get_params(deep=False)))
    if unknown:
        # a default space naming no parameter would silently search nothing: refuse it
        raise ValueError(
            f"{type(est).__name__}.default_search_space() names {unknown}, which are not "
            f"parameters of {type(est).__name__}."
        )
    return space


def default_search_space(estimator):
    """Optuna distributions for the important parameters of an estimator.

    Each estimator of the package owns its space: the classmethod
    ``default_search_space()`` of its class (for instance
    ``SurrogateSNNClassifier.default_search_space()``), which names only that estimator's
    constructor parameters.  In a :class:`~sklearn.pipeline.Pipeline` every step
    that has such a space (the last one, and e.g. an ``STDPTransformer`` before a classifier)
    contributes it with ``step__param`` names; nested pipelines are searched too.  Any estimator
    class (also outside the package) may declare the classmethod.

    Parameters
    ----------
    estimator : estimator instance
        An estimator whose class has a ``default_search_space`` classmethod, or a pipeline
        holding one.

    Returns
    -------
    space : dict of str to optuna.distributions.BaseDistribution
        ``hidden_layer_sizes`` is categorical over strings such as ``"128x64"`` (Optuna stores
        only primitive choices); :class:`OptunaSearchCV` decodes them to tuples (see
        :func:`decode_params`).

    Raises
    ------
    ValueError
        If neither ``estimator`` nor a step of it declares a default space (pass
        ``param_distributions`` then), or if a declared space names a parameter the estimator
        does not have.

    Notes
    -----
    ``max_iter``, ``batch_size`` and the device are left to the user in every space, since
    they set the cost of a trial rather than the model.

    Examples
    --------
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> space = default_search_space(SurrogateSNNClassifier())
    >>> space["neuron"].choices
    ('lif', 'cuba')
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> pipe = make_pipeline(StandardScaler(), SurrogateSNNClassifier())
    >>> sorted(default_search_space(pipe))[:2]
    ['surrogatesnnclassifier__alpha', 'surrogatesnnclassifier__encoder']
    >>> from sklearn.linear_model import LogisticRegression
    >>> default_search_space(LogisticRegression())
    Traceback (most recent call last):
    ...
    ValueError: No default search space for LogisticRegression...
    """
    if isinstance(estimator, Pipeline):
        space = {}
        for name, step in estimator.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if isinstance(step, Pipeline):
                try:
                    sub = default_search_space(step)
                except ValueError as exc:
                    if not str(exc).startswith("No default search space"):
                        raise
                    sub = None
            else:
                sub = _own_space(step)
            if sub:
                space.update({f"{name}__{k}": v for k, v in sub.items()})
    else:
        space = _own_space(estimator)
    if space:
        return space
    raise ValueError(
        f"No default search space for {type(estimator).__name__}: neither it nor a step of it "
        "has a default_search_space() classmethod (every sklearn_snn estimator has one). Pass "
        "param_distributions, a dict of parameter names to optuna distributions."
    )


def decode_layers(value):
    """``'128x64'`` -> ``(128, 64)``; anything else unchanged.

    >>> decode_layers("128x64"), decode_layers("relu")
    ((128, 64), 'relu')
    """
    if isinstance(value, str):
        parts = value.split(LAYERS_SEP)
        if parts and all(p.isdigit() for p in parts):
            return tuple(int(p) for p in parts)
    return value


class _CategoricalChoices:
    # a plain list of choices, before it becomes a CategoricalDistribution
    # (constructing one with tuple choices warns)
    def __init__(self, choices):
        self.choices = choices


def prepare_search_space(space):
    """Make every choice of a search space storable by Optuna.

    Parameters
    ----------
    space : dict of str to distribution or list
        Optuna distributions or lists of choices, keyed by parameter name.

    Returns
    -------
    space : dict of str to optuna.distributions.BaseDistribution
        The space with every categorical choice a primitive (tuples coded as strings).
    decoders : dict of str to dict
        Per coded parameter, the map from the stored choice to the constructor value; pass it
        to :func:`decode_params`.  ``hidden_layer_sizes`` strings such as ``"128x64"`` are
        decoded to tuples.

    Examples
    --------
    >>> space, decoders = prepare_search_space({"hidden_layer_sizes": [(8,), (16, 8)]})
    >>> space["hidden_layer_sizes"].choices
    ('8', '16x8')
    >>> decode_params({"hidden_layer_sizes": "16x8"}, decoders)
    {'hidden_layer_sizes': (16, 8)}
    """
    if not isinstance(space, dict) or not space:
        raise ValueError("param_distributions must be a non-empty dict.")
    out, decoders = {}, {}
    for name, dist in space.items():
        if isinstance(dist, (list, tuple)):
            dist = _CategoricalChoices(list(dist))
        if not isinstance(dist, (BaseDistribution, _CategoricalChoices)):
            raise TypeError(
                f"param_distributions[{name!r}] must be an optuna distribution or a "
                f"list of choices, got {type(dist).__name__}."
            )
        if isinstance(dist, (CategoricalDistribution, _CategoricalChoices)):
            choices = list(dist.choices)
            primitive = all(
                c is None or isinstance(c, (bool, int, float, str)) for c in choices
            )
            if not primitive:
                # store each choice under a string key, decode after sampling
                keys = [LAYERS_SEP.join(map(str, c)) if isinstance(c, tuple)
                        and all(isinstance(i, numbers.Integral) for i in c)
                        else repr(c) for c in choices]
                if len(set(keys)) != len(keys):
                    keys = [f"choice_{i}" for i in range(len(choices))]
                decoders[name] = dict(zip(keys, choices))
                dist = CategoricalDistribution(keys)
            else:
                if name.split("__")[-1] == "hidden_layer_sizes":
                    decoders[name] = {c: decode_layers(c) for c in choices}
                dist = CategoricalDistribution(choices)
        out[name] = dist
    return out, decoders


def decode_params(params, decoders):
    """Constructor values of sampled ``params``.

    Parameters
    ----------
    params : dict
        Parameter values as Optuna sampled them (e.g. ``trial.params``).
    decoders : dict
        The decoders returned by :func:`prepare_search_space`.

    Returns
    -------
    params : dict
        The values to pass to ``set_params`` (coded choices decoded).
    """
    return {
        k: decoders[k].get(v, v) if k in decoders else v for k, v in params.items()
    }
