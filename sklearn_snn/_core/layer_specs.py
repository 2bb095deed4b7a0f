"""Layer specifications: a canonical ANN described without its weights, and rebuilt from that.

:func:`layer_specs` gives one plain dict per layer of a canonical ANN (its type and settings;
weights are not part of a spec), :func:`sequential_from_specs` validates such a list and builds the
network again (on the meta device first, so an absurd description fails before any allocation;
:data:`MAX_SPEC_PARAMETERS` bounds its size). The safe format of ``ConvertedSNN`` stores these
specs with the weights and rebuilds the network from them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .ann_parsing import (
    QCFS,
    ClipReLU,
    ConversionError,
    is_weighted,
    unsupported_message,
)

__all__ = ["MAX_SPEC_PARAMETERS", "layer_specs", "sequential_from_specs"]


#: Most weights :func:`sequential_from_specs` builds (2**31 numbers, 8 GiB in float32): a guard
#: against a file that describes an absurdly large network.
MAX_SPEC_PARAMETERS = 2 ** 31

_MAX_SIZE = 2 ** 31 - 1
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# type name -> the settings its spec holds (besides "type"); weights are not part of a spec
_SPEC_FIELDS = {
    "Linear": ("in_features", "out_features"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
               "padding_mode"),
    "ReLU": ("inplace",),
    "ClipReLU": (),
    "QCFS": ("levels",),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "Flatten": ("start_dim", "end_dim"),
}


def _plain_size(v):
    """An int stays an int; a tuple (or list) of ints becomes a list of ints."""
    return int(v) if isinstance(v, (int, np.integer)) else [int(x) for x in v]


def layer_specs(seq: nn.Sequential) -> list:
    """Describe every layer of a canonical ANN with plain values (no weights).

    The inverse of :func:`sequential_from_specs`: the weights are kept apart (as a
    ``state_dict``), so that a network can be stored without pickling any object.

    Parameters
    ----------
    seq : nn.Sequential
        A canonical ANN (the output of :func:`~sklearn_snn._core.ann_parsing.parse_ann`).

    Returns
    -------
    list of dict
        One dict per layer: ``"type"`` (``Linear``, ``Conv2d``, ``ReLU``, ``ClipReLU``, ``QCFS``,
        ``AvgPool2d``, ``MaxPool2d`` or ``Flatten``) and that layer's settings (sizes, kernel,
        stride, padding, ...), all ints, bools, strings, ``None`` or lists of ints.

    Raises
    ------
    ConversionError
        For a layer that the canonical form does not hold.

    Examples
    --------
    >>> from torch import nn
    >>> specs = layer_specs(nn.Sequential(nn.Linear(4, 8), QCFS(levels=4), nn.Linear(8, 3)))
    >>> specs[:2]
    [{'type': 'Linear', 'in_features': 4, 'out_features': 8}, {'type': 'QCFS', 'levels': 4}]
    """
    specs = []
    for i, m in enumerate(seq):
        if isinstance(m, nn.Linear):
            spec = {"type": "Linear", "in_features": int(m.in_features), "out_features": int(m.out_features)}
        elif isinstance(m, nn.Conv2d):
            spec = {"type": "Conv2d", "in_channels": int(m.in_channels), "out_channels": int(m.out_channels),
                    "kernel_size": _plain_size(m.kernel_size), "stride": _plain_size(m.stride),
                    "padding": m.padding if isinstance(m.padding, str) else _plain_size(m.padding),
                    "dilation": _plain_size(m.dilation), "groups": int(m.groups),
                    "padding_mode": str(m.padding_mode)}
        elif isinstance(m, ClipReLU):
            spec = {"type": "ClipReLU"}
        elif isinstance(m, QCFS):
            spec = {"type": "QCFS", "levels": int(m.levels)}
        elif isinstance(m, nn.ReLU):
            spec = {"type": "ReLU", "inplace": bool(m.inplace)}
        elif isinstance(m, nn.AvgPool2d):
            spec = {"type": "AvgPool2d", "kernel_size": _plain_size(m.kernel_size),
                    "stride": _plain_size(m.stride if m.stride is not None else m.kernel_size),
                    "padding": _plain_size(m.padding), "ceil_mode": bool(m.ceil_mode),
                    "count_include_pad": bool(m.count_include_pad),
                    "divisor_override": None if m.divisor_override is None else int(m.divisor_override)}
        elif isinstance(m, nn.MaxPool2d) and not m.return_indices:
            spec = {"type": "MaxPool2d", "kernel_size": _plain_size(m.kernel_size),
                    "stride": _plain_size(m.stride if m.stride is not None else m.kernel_size),
                    "padding": _plain_size(m.padding), "dilation": _plain_size(m.dilation),
                    "ceil_mode": bool(m.ceil_mode)}
        elif isinstance(m, nn.Flatten):
            spec = {"type": "Flatten", "start_dim": int(m.start_dim), "end_dim": int(m.end_dim)}
        else:
            raise ConversionError(unsupported_message(str(i), m))
        specs.append(spec)
    return specs


def _spec_int(spec, key, where, low=1, high=_MAX_SIZE):
    v = spec[key]
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"{where}: {key} must be an integer in [{low}, {high}], got {v!r}.")
    return v


def _spec_size(spec, key, where, low=1, pair_only=False):
    """An int or a pair of ints in [low, _MAX_SIZE] (returned as an int or a tuple)."""
    v = spec[key]
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return tuple(_spec_int({key: x}, key, where, low) for x in v)
    if not pair_only and isinstance(v, int) and not isinstance(v, bool):
        return _spec_int(spec, key, where, low)
    raise ValueError(f"{where}: {key} must be {'' if pair_only else 'an integer or '}a pair of integers "
                     f">= {low}, got {v!r}.")


def _spec_bool(spec, key, where):
    v = spec[key]
    if not isinstance(v, bool):
        raise ValueError(f"{where}: {key} must be True or False, got {v!r}.")
    return v


def _layer_from_spec(spec, i):
    if not isinstance(spec, dict):
        raise ValueError(f"layer {i}: a layer spec must be a table, got {type(spec).__name__}.")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _SPEC_FIELDS:
        raise ValueError(f"layer {i}: unknown layer type {kind!r}; a canonical network holds only "
                         f"{', '.join(_SPEC_FIELDS)}.")
    where = f"layer {i} ({kind})"
    expected = {"type", *_SPEC_FIELDS[kind]}
    if set(spec) != expected:
        missing, unknown = sorted(expected - set(spec)), sorted(map(str, set(spec) - expected))
        raise ValueError(f"{where}: the spec must hold exactly {sorted(expected)}"
                         f"{f'; missing {missing}' if missing else ''}{f'; unknown {unknown}' if unknown else ''}.")
    if kind == "Linear":
        return nn.Linear(_spec_int(spec, "in_features", where), _spec_int(spec, "out_features", where))
    if kind == "Conv2d":
        padding = spec["padding"]
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{where}: padding must be 'same', 'valid' or a pair of integers, got {padding!r}.")
        else:
            padding = _spec_size(spec, "padding", where, low=0, pair_only=True)
        if spec["padding_mode"] not in _PADDING_MODES:
            raise ValueError(f"{where}: padding_mode must be one of {_PADDING_MODES}, got {spec['padding_mode']!r}.")
        args = {"kernel_size": _spec_size(spec, "kernel_size", where, pair_only=True),
                "stride": _spec_size(spec, "stride", where, pair_only=True), "padding": padding,
                "dilation": _spec_size(spec, "dilation", where, pair_only=True),
                "groups": _spec_int(spec, "groups", where), "padding_mode": spec["padding_mode"]}
        try:
            return nn.Conv2d(_spec_int(spec, "in_channels", where), _spec_int(spec, "out_channels", where),
                             bias=True, **args)
        except (ValueError, RuntimeError, TypeError) as exc:  # e.g. groups that do not divide the channels
            raise ValueError(f"{where}: {exc}") from None
    if kind == "ReLU":
        return nn.ReLU(inplace=_spec_bool(spec, "inplace", where))
    if kind == "ClipReLU":
        return ClipReLU(1.0, trainable=False)
    if kind == "QCFS":
        return QCFS(levels=_spec_int(spec, "levels", where), threshold=1.0)
    if kind == "AvgPool2d":
        div = spec["divisor_override"]
        if div is not None:
            div = _spec_int(spec, "divisor_override", where)
        return nn.AvgPool2d(_spec_size(spec, "kernel_size", where), _spec_size(spec, "stride", where),
                            _spec_size(spec, "padding", where, low=0), ceil_mode=_spec_bool(spec, "ceil_mode", where),
                            count_include_pad=_spec_bool(spec, "count_include_pad", where), divisor_override=div)
    if kind == "MaxPool2d":
        return nn.MaxPool2d(_spec_size(spec, "kernel_size", where), _spec_size(spec, "stride", where),
                            _spec_size(spec, "padding", where, low=0), _spec_size(spec, "dilation", where),
                            ceil_mode=_spec_bool(spec, "ceil_mode", where))
    # Flatten: the canonical form flattens everything but the batch dimension
    if type(spec["start_dim"]) is not int or spec["start_dim"] != 1:
        raise ValueError(f"{where}: start_dim must be 1, got {spec['start_dim']!r}.")
    end = spec["end_dim"]
    if isinstance(end, bool) or not isinstance(end, int) or not -8 <= end <= 8:
        raise ValueError(f"{where}: end_dim must be an integer in [-8, 8], got {end!r}.")
    return nn.Flatten(1, end)


def sequential_from_specs(specs, *, input_shape=None, n_outputs=None) -> nn.Sequential:
    """Rebuild a canonical ANN from :func:`layer_specs` (weights zero; load a ``state_dict`` after).

    Every spec is checked (type from the allowlist of :func:`layer_specs`, exactly its settings,
    each of the right type and range) before anything is built; the layers are first built on
    the ``meta`` device (no memory), their size checked against :data:`MAX_SPEC_PARAMETERS`, and,
    with ``input_shape``, the chain applied to one sample of that shape, so that layers that do not
    fit together are refused before any weight is allocated.

    Parameters
    ----------
    specs : list of dict
        From :func:`layer_specs`.
    input_shape : tuple of int, optional
        Shape of one sample; checks that the network can be applied to it.
    n_outputs : int, optional
        With ``input_shape``: the number of outputs the network must have.

    Returns
    -------
    nn.Sequential
        In ``eval`` mode, float32 on the CPU, with no gradients and every weight zero.

    Raises
    ------
    ValueError
        For an unknown layer type, a missing, unknown or invalid setting, a network without
        a Linear/Conv2d layer, one larger than :data:`MAX_SPEC_PARAMETERS` weights, or one that
        does not apply to ``input_shape`` / does not give ``n_outputs`` outputs.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
    ...                     nn.Linear(64, 10))
    >>> sequential_from_specs(layer_specs(net), input_shape=(1, 8, 8), n_outputs=10)[0]
    Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> sequential_from_specs([{"type": "Linear", "in_features": -3, "out_features": 2}])
    Traceback (most recent call last):
    ...
    ValueError: layer 0 (Linear): in_features must be an integer in [1, 2147483647], got -3.
    """
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ValueError(f"The layer specs must be a non-empty list, got {type(specs).__name__}.")
    with torch.device("meta"):
        layers = [_layer_from_spec(spec, i) for i, spec in enumerate(specs)]
    if not any(is_weighted(m) for m in layers):
        raise ValueError("The layer specs describe no Linear or Conv2d layer.")
    seq = nn.Sequential(*layers)
    n_weights = sum(p.numel() for p in seq.parameters())
    if n_weights > MAX_SPEC_PARAMETERS:
        raise ValueError(f"The layer specs describe {n_weights} weights, more than the {MAX_SPEC_PARAMETERS} "
                         "allowed.")
    if input_shape is not None:
        shape = tuple(input_shape)
        try:
            out = seq(torch.empty((1, *shape), device="meta"))
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"The layers described cannot be applied to samples of shape {shape}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if out.dim() != 2 or (n_outputs is not None and out.shape[1] != n_outputs):
            expected = "one vector" if n_outputs is None else f"({n_outputs},)"
            raise ValueError(f"The layers described give outputs of shape {tuple(out.shape[1:])} per sample; "
                             f"expected {expected}.")
    seq = seq.to_empty(device="cpu")
    with torch.no_grad():
        for t in (*seq.parameters(), *seq.buffers()):
            t.zero_()
    seq.eval().requires_grad_(False)
    return seq
