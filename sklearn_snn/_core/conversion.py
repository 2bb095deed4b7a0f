"""ANN-to-SNN conversion: parsing, BatchNorm folding, normalisation, IF simulation, calibration.

The pipeline (torch only; the estimator in ``sklearn_snn.conversion`` drives it):

1. :func:`parse_ann` turns a torch model (an ``nn.Sequential``, nested or not, or an ``nn.Module``
   whose forward is a plain chain, traced with ``torch.fx``) into a *canonical ANN*: an
   ``nn.Sequential`` of ``Linear``/``Conv2d`` (BatchNorm folded in, bias always present),
   ``AvgPool2d``, ``MaxPool2d``, ``Flatten`` and activations (``nn.ReLU``, :class:`ClipReLU`,
   :class:`QCFS`). Dropout and Identity are removed, a trailing softmax is dropped (it does not
   change the arg-max; probabilities are taken with a softmax anyway), and a max-pool placed
   before a ReLU is moved after it (``relu(maxpool(z)) == maxpool(relu(z))`` for any monotone
   activation), so that the max-pool always sees spikes.
2. :func:`activation_scales` measures every activation layer's scale ``lambda_l`` on a data
   sample: the maximum or a robust percentile of its positive activations (Rueckauer et al. 2017);
   for :class:`ClipReLU` / :class:`QCFS` the trained clipping threshold is used.
3. :func:`convert` builds a :class:`SpikingNetwork`: weights are normalised so that every
   integrate-and-fire layer has threshold 1 (``W_l <- W_l lambda_{l-1} / lambda_l``,
   ``b_l <- b_l / lambda_l``), spikes are binary, reset is by subtraction and the membrane starts
   at half the threshold (Bu et al. 2022). The last weighted layer is not spiking: its input
   currents are averaged over time and read out as logits in the ANN's units.
4. :func:`calibrate_bias` corrects the remaining conversion error layer by layer on a small data
   set: the *bias calibration* ("light calibration") of Li et al. (ICML 2021).

Max-pooling in the SNN (:class:`SpikingMaxPool2d`) emits, at every step, the increment of the
maximum over the window of the *cumulative* input spike counts. Counts grow by at most one per
step, so the output is again binary, and after ``t`` steps the pool has emitted exactly
``max_j count_j(t)`` spikes: the spike count of the max-pool equals the maximum of the input
spike counts at every time step (a causal, exact form of the rate-based gating of Rueckauer et al.
2017), so the pooled rate converges to the ANN's max of activations.

The simulation is layer-major: each layer receives the input currents of all ``T`` steps as one
``(T, B, ...)`` tensor (synaptic layers are applied to all steps in one batched call) and the
integrate-and-fire scan over time is the only Python loop. Because the dynamics are causal, the
output of a ``T``-step run also gives the result of every shorter run (its prefix), which makes
accuracy-vs-steps curves cost one simulation.

References
----------
Rueckauer, Lungu, Hu, Pfeiffer, Liu (2017). Conversion of continuous-valued deep networks to
efficient event-driven networks for image classification. Frontiers in Neuroscience 11:682.
Bu, Fang, Ding, Dai, Yu, Huang (2022). Optimal ANN-SNN conversion for high-accuracy and
ultra-low-latency spiking neural networks. ICLR 2022 (QCFS).
Li, Deng, Dong, Gong, Gu (2021). A free lunch from ANN: towards efficient, accurate spiking neural
networks calibration. ICML 2021.
"""

from __future__ import annotations

import copy
import operator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .neurons import NeuronSpec, neuron_step

__all__ = [
    "ConversionError",
    "ClipReLU",
    "QCFS",
    "parse_ann",
    "fold_batchnorm",
    "layer_outputs",
    "activation_scales",
    "convert",
    "IFNeurons",
    "SpikingMaxPool2d",
    "Stepwise",
    "SpikingNetwork",
    "calibrate_bias",
    "mlp_from_weights",
    "build_mlp",
    "layer_specs",
    "sequential_from_specs",
    "MAX_SPEC_PARAMETERS",
]

SUPPORTED_LAYERS = (
    "Linear, Conv2d, AvgPool2d, MaxPool2d, BatchNorm1d, BatchNorm2d (after a Linear/Conv2d), ReLU, "
    "ReLU6, ClipReLU, QCFS, Flatten, Dropout, Identity, and a final Softmax/LogSoftmax"
)


class ConversionError(ValueError):
    """Raised when a network contains a layer or an operation that cannot be converted."""


# --------------------------------------------------------------------------- activations


class ClipReLU(nn.Module):
    """ReLU clipped at a (trainable) threshold: ``lam * clamp(x / lam, 0, 1)``.

    Parameters
    ----------
    threshold : float
        Initial clipping threshold ``lam``.
    trainable : bool
        Learn ``lam`` with the weights (as in threshold-ReLU conversion methods).

    Examples
    --------
    >>> import torch
    >>> ClipReLU(2.0)(torch.tensor([-1.0, 1.0, 3.0])).detach()
    tensor([0., 1., 2.])
    """

    def __init__(self, threshold: float = 4.0, trainable: bool = True):
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(float(threshold)), requires_grad=trainable)

    def clip_value(self) -> float:
        return float(self.threshold.detach().abs().clamp_min(1e-3))

    def forward(self, x):
        lam = self.threshold.abs().clamp_min(1e-3)
        return torch.minimum(F.relu(x), lam)


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation (Bu et al., ICLR 2022).

    ``lam * clamp(floor(x * L / lam + 1/2) / L, 0, 1)`` with a trainable threshold ``lam`` and
    ``L`` quantisation levels; the floor has a straight-through gradient. An integrate-and-fire
    neuron with threshold ``lam``, reset by subtraction and initial membrane ``lam / 2`` fed the
    constant input ``x`` for ``L`` steps emits exactly ``L * QCFS(x) / lam`` spikes.

    Parameters
    ----------
    levels : int
        Quantisation levels ``L`` (the number of time steps the activation is tuned for).
    threshold : float
        Initial threshold ``lam``.

    Examples
    --------
    >>> import torch
    >>> QCFS(levels=4, threshold=1.0)(torch.tensor([-0.3, 0.1, 0.2, 0.6, 2.0])).detach()
    tensor([0.0000, 0.0000, 0.2500, 0.5000, 1.0000])
    """

    def __init__(self, levels: int = 8, threshold: float = 8.0):
        super().__init__()
        self.levels = int(levels)
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def clip_value(self) -> float:
        return float(self.threshold.detach().abs().clamp_min(1e-3))

    def forward(self, x):
        lam = self.threshold.abs().clamp_min(1e-3)
        q = _FloorSTE.apply(x * (self.levels / lam) + 0.5) / self.levels
        return lam * q.clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def _is_activation(m) -> bool:
    return isinstance(m, (nn.ReLU, ClipReLU, QCFS))


def _is_weighted(m) -> bool:
    return isinstance(m, (nn.Linear, nn.Conv2d))


# --------------------------------------------------------------------------- parsing


def fold_batchnorm(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """Return a copy of ``layer`` (Linear or Conv2d) with the BatchNorm ``bn`` folded in.

    Uses the running statistics (the network's behaviour in ``eval`` mode):
    ``W' = W * g / sqrt(var + eps)`` per output channel and ``b' = (b - mean) g / sqrt(var + eps) + beta``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> lin, bn = nn.Linear(3, 2), nn.BatchNorm1d(2).eval()
    >>> bn.running_mean.fill_(0.5); bn.running_var.fill_(4.0)  # doctest: +ELLIPSIS
    tensor(...)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(fold_batchnorm(lin, bn)(x), bn(lin(x)), atol=1e-6)
    True
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ConversionError(
            f"{type(bn).__name__} has no running statistics (track_running_stats=False); "
            "it cannot be folded into the preceding layer."
        )
    if bn.num_features != layer.weight.shape[0]:
        raise ConversionError(
            f"{type(bn).__name__}({bn.num_features}) does not match the "
            f"{layer.weight.shape[0]} output channels of the preceding {type(layer).__name__}."
        )
    with torch.no_grad():
        w = layer.weight.detach()
        b = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
        gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
        beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(bn.running_mean)
        scale = gamma / torch.sqrt(bn.running_var + bn.eps)
        new = _with_bias(layer)
        new.weight.copy_(w * scale.reshape((-1,) + (1,) * (w.dim() - 1)).to(w.dtype))
        new.bias.copy_(((b - bn.running_mean) * scale + beta).to(w.dtype))
    return new


def _with_bias(layer: nn.Module) -> nn.Module:
    """A detached copy of a Linear/Conv2d that always has a bias (calibration needs one)."""
    w = layer.weight.detach()
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
    else:
        new = nn.Conv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
            padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=True,
            padding_mode=layer.padding_mode,
        )
    new = new.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if layer.bias is not None:
            new.bias.copy_(layer.bias.detach())
        else:
            new.bias.zero_()
    new.requires_grad_(False)
    return new


class _LeafTracer(torch.fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, (ClipReLU, QCFS)) or super().is_leaf_module(m, qualname)


_RELU_FUNCS = {F.relu, torch.relu, torch.nn.functional.relu}
_SKIP_FUNCS = {F.dropout, torch.dropout}


def _trace_chain(model: nn.Module, name: str):
    """Yield ``(name, module)`` for a module whose forward is a plain chain of layers."""
    try:
        gm = torch.fx.GraphModule(model, _LeafTracer().trace(model))
    except Exception as exc:  # noqa: BLE001 -- any tracing failure gets the same advice
        raise ConversionError(
            f"Cannot trace {name or type(model).__name__} ({type(model).__name__}) with torch.fx "
            f"({type(exc).__name__}: {exc}). Give the network as an nn.Sequential of {SUPPORTED_LAYERS}."
        ) from exc
    modules = dict(gm.named_modules())
    prev = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                raise ConversionError(f"{type(model).__name__}.forward takes more than one input.")
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise ConversionError(
                    f"{type(model).__name__}.forward does not return the end of a single chain of layers."
                )
            continue
        if node.op == "call_method" and node.target == "size":
            continue  # used by x.view(x.size(0), -1)
        first = node.args[0] if node.args else None
        if first is not prev:
            raise ConversionError(
                f"Cannot convert operation {node.target!s} (node '{node.name}') in "
                f"{type(model).__name__}: only a single chain of layers (no branches or skip "
                f"connections) can be converted."
            )
        full = f"{name}.{node.target}" if name else str(node.target)
        if node.op == "call_module":
            yield from _flatten_modules(modules[node.target], full)
        elif node.op == "call_function" and node.target in _RELU_FUNCS:
            yield full, nn.ReLU()
        elif node.op == "call_function" and node.target in _SKIP_FUNCS:
            pass
        elif node.op == "call_function" and node.target is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            if start != 1:
                raise ConversionError(f"torch.flatten in '{node.name}' must use start_dim=1.")
            yield full, nn.Flatten()
        elif node.op == "call_method" and node.target in ("view", "reshape", "flatten"):
            shape = node.args[1:]
            ok = (node.target == "flatten" and shape in ((1,),)) or (
                len(shape) == 2 and shape[1] == -1
            )
            if not ok:
                raise ConversionError(
                    f"Cannot convert x.{node.target}{tuple(shape)} (node '{node.name}'): only "
                    "flattening to (batch, -1) is supported."
                )
            yield full, nn.Flatten()
        elif node.op == "call_method" and node.target == "relu":
            yield full, nn.ReLU()
        else:
            what = getattr(node.target, "__name__", str(node.target))
            if node.target in (operator.add, torch.add, torch.cat):
                hint = " (residual/concatenation connections are not supported)"
            else:
                hint = ""
            raise ConversionError(
                f"Cannot convert operation '{what}' (node '{node.name}') in {type(model).__name__}"
                f"{hint}. Supported: {SUPPORTED_LAYERS}."
            )
        prev = node


def _flatten_modules(model: nn.Module, name: str = ""):
    """Yield ``(qualified_name, leaf_module)`` in execution order."""
    if isinstance(model, nn.Sequential):
        for child_name, child in model.named_children():
            yield from _flatten_modules(child, f"{name}.{child_name}" if name else child_name)
    elif isinstance(
        model,
        (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU,
         nn.ReLU6, ClipReLU, QCFS, nn.Flatten, nn.Dropout, nn.Identity, nn.Softmax, nn.LogSoftmax),
    ):
        yield name, model
    elif type(model).__module__.startswith("torch.nn"):
        raise ConversionError(_unsupported(name, model))
    else:
        yield from _trace_chain(model, name)


def _unsupported(name, module) -> str:
    return (
        f"Cannot convert layer '{name}' ({type(module).__name__}): it has no spiking equivalent here. "
        f"Supported layers: {SUPPORTED_LAYERS}."
    )


def parse_ann(model: nn.Module) -> nn.Sequential:
    """Canonical form of a torch ANN for conversion (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        An ``nn.Sequential`` (possibly nested) or a module whose forward is a single chain.

    Returns
    -------
    nn.Sequential
        Copies of the layers (the input model is left untouched), in ``eval`` mode, with no
        gradients: BatchNorm folded, Dropout/Identity/final softmax removed, every max-pool placed
        after its activation, ReLU6 turned into a fixed :class:`ClipReLU`.

    Raises
    ------
    ConversionError
        Naming the first layer or operation that cannot be converted.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),
    ...                     nn.Linear(8, 3))
    >>> parse_ann(net)
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=3, bias=True)
    )
    >>> parse_ann(nn.Sequential(nn.Linear(4, 8), nn.Tanh()))
    Traceback (most recent call last):
    ...
    sklearn_snn._core.conversion.ConversionError: Cannot convert layer '1' (Tanh): ...
    """
    items = list(_flatten_modules(model))
    # drop no-ops and a final softmax
    kept = []
    for i, (name, m) in enumerate(items):
        if isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            if any(not isinstance(k, (nn.Dropout, nn.Identity)) for _, k in items[i + 1:]):
                raise ConversionError(
                    f"Cannot convert layer '{name}' ({type(m).__name__}): a softmax is only "
                    "allowed as the last layer."
                )
            continue
        kept.append((name, m))
    layers: list[nn.Module] = []
    for name, m in kept:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not layers or not _is_weighted(layers[-1]):
                raise ConversionError(
                    f"Cannot convert layer '{name}' ({type(m).__name__}): BatchNorm can only be folded "
                    "into a directly preceding Linear or Conv2d layer."
                )
            if isinstance(m, nn.BatchNorm2d) != isinstance(layers[-1], nn.Conv2d):
                raise ConversionError(
                    f"Cannot convert layer '{name}' ({type(m).__name__}) after a "
                    f"{type(layers[-1]).__name__}."
                )
            layers[-1] = fold_batchnorm(layers[-1], m)
        elif _is_weighted(m):
            layers.append(_with_bias(m))
        elif isinstance(m, nn.ReLU6):
            layers.append(ClipReLU(6.0, trainable=False))
        elif isinstance(m, nn.MaxPool2d) and m.return_indices:
            raise ConversionError(f"Cannot convert layer '{name}' (MaxPool2d with return_indices=True).")
        elif isinstance(m, nn.Flatten) and m.start_dim != 1:
            raise ConversionError(f"Cannot convert layer '{name}' (Flatten): start_dim must be 1.")
        else:
            layers.append(copy.deepcopy(m))
    # move a max-pool that directly precedes an activation behind it
    i = 0
    while i < len(layers) - 1:
        if isinstance(layers[i], nn.MaxPool2d) and _is_activation(layers[i + 1]):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            i = max(i - 1, 0)
        else:
            i += 1
    if not any(_is_weighted(m) for m in layers):
        raise ConversionError("The network has no Linear or Conv2d layer to convert.")
    seq = nn.Sequential(*layers).eval()
    seq.requires_grad_(False)
    return seq


def mlp_from_weights(coefs, intercepts, *, binary_logistic=False, dtype=torch.float32) -> nn.Sequential:
    """A ReLU MLP from weight matrices ``(n_in, n_out)`` and bias vectors (the ``MLPClassifier`` layout).

    With ``binary_logistic`` the single logistic output unit ``z`` becomes two logits
    ``(-z/2, z/2)``, whose softmax equals ``(1 - sigmoid(z), sigmoid(z))``.

    Examples
    --------
    >>> import numpy as np
    >>> net = mlp_from_weights([np.ones((3, 4)), np.ones((4, 1))], [np.zeros(4), np.zeros(1)],
    ...                        binary_logistic=True)
    >>> [type(m).__name__ for m in net], net[-1].out_features
    (['Linear', 'ReLU', 'Linear'], 2)
    """
    layers = []
    n = len(coefs)
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        w = torch.as_tensor(np.asarray(w), dtype=dtype).T.contiguous()
        b = torch.as_tensor(np.asarray(b), dtype=dtype)
        if i == n - 1 and binary_logistic:
            w = torch.cat([-w / 2, w / 2], 0)
            b = torch.cat([-b / 2, b / 2], 0)
        lin = nn.Linear(w.shape[1], w.shape[0]).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers.append(lin)
        if i < n - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def build_mlp(n_in, hidden_layer_sizes, n_out, activation="relu", *, levels=8, threshold=8.0,
              generator=None, dtype=torch.float32) -> nn.Sequential:
    """A trainable MLP with ReLU, :class:`ClipReLU` or :class:`QCFS` hidden activations.

    Weights are initialised like ``nn.Linear`` (Kaiming-uniform), drawn from ``generator``.

    Examples
    --------
    >>> import torch
    >>> build_mlp(4, (8,), 3, "qcfs", levels=4, generator=torch.Generator().manual_seed(0))
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): QCFS(levels=4)
      (2): Linear(in_features=8, out_features=3, bias=True)
    )
    """
    sizes = [int(n_in), *[int(h) for h in hidden_layer_sizes], int(n_out)]
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1]).to(dtype)
        bound = 1.0 / np.sqrt(sizes[i])
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=generator)
            lin.bias.uniform_(-bound, bound, generator=generator)
        layers.append(lin)
        if i < len(sizes) - 2:
            if activation == "relu":
                layers.append(nn.ReLU())
            elif activation == "clip":
                layers.append(ClipReLU(threshold))
            elif activation == "qcfs":
                layers.append(QCFS(levels, threshold))
            else:
                raise ValueError(f"activation must be 'relu', 'clip' or 'qcfs', got {activation!r}.")
    return nn.Sequential(*layers).to(dtype)


# --------------------------------------------------------------------------- layer specifications

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
        A canonical ANN (the output of :func:`parse_ann`).

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
            raise ConversionError(_unsupported(str(i), m))
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
    if not any(_is_weighted(m) for m in layers):
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


# --------------------------------------------------------------------------- normalisation


@torch.no_grad()
def layer_outputs(ann: nn.Sequential, x: torch.Tensor) -> list:
    """Outputs of every layer of a canonical ANN (``out[i]`` = output of ``ann[i]``)."""
    outs = []
    for m in ann:
        x = m(x)
        outs.append(x)
    return outs


def _positive_percentile(a: torch.Tensor, q: float) -> float:
    pos = a[a > 0]
    if pos.numel() == 0:
        return 0.0
    if q >= 100.0:
        return float(pos.max())
    return float(np.percentile(pos.double().cpu().numpy(), q))


@torch.no_grad()
def activation_scales(ann: nn.Sequential, x: torch.Tensor, method="percentile", percentile=99.9) -> list:
    """Per-layer normalisation scale ``lambda_l`` of the activation layers of a canonical ANN.

    Parameters
    ----------
    ann : nn.Sequential
        From :func:`parse_ann`.
    x : Tensor
        A data sample, shaped as the network's input.
    method : {'max', 'percentile'}
        ``'max'``: the largest activation (Diehl et al. 2015); ``'percentile'``: the
        ``percentile``-th percentile of the positive activations (robust normalisation of
        Rueckauer et al. 2017). Clipped (:class:`ClipReLU`, :class:`QCFS`) layers always use
        their clipping threshold, which bounds their activations exactly.
    percentile : float
        In (0, 100].

    Returns
    -------
    list
        ``lambda_l`` (float) at the index of every activation layer, ``None`` elsewhere. A layer
        that never fires on ``x`` gets 1.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> ann = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> with torch.no_grad():
    ...     ann[0].weight.copy_(torch.eye(2)); ann[0].bias.zero_()  # doctest: +ELLIPSIS
    Parameter...
    >>> activation_scales(ann, torch.tensor([[1.0, 3.0], [2.0, -1.0]]), method="max")
    [None, 3.0, None]
    """
    if method not in ("max", "percentile"):
        raise ValueError(f"normalisation must be 'max' or 'percentile', got {method!r}.")
    outs = layer_outputs(ann, x)
    scales = []
    for m, a in zip(ann, outs):
        if isinstance(m, (ClipReLU, QCFS)):
            scales.append(m.clip_value())
        elif isinstance(m, nn.ReLU):
            lam = _positive_percentile(a, 100.0 if method == "max" else float(percentile))
            scales.append(lam if lam > 0 else 1.0)
        else:
            scales.append(None)
    return scales


# --------------------------------------------------------------------------- spiking layers


class Stepwise(nn.Module):
    """Apply a stateless layer to every time step of a ``(T, B, ...)`` tensor in one call."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, h):
        t, b = h.shape[:2]
        out = self.module(h.reshape(t * b, *h.shape[2:]))
        return out.reshape(t, b, *out.shape[1:])


class IFNeurons(nn.Module):
    """Integrate-and-fire neurons, reset by subtraction, membrane starting at ``v_init * threshold``.

    ``forward(current, n_steps)`` takes input currents ``(T, B, ...)`` (``T`` = 1 means a constant
    current) and returns binary spikes ``(n_steps, B, ...)``. The loop over time runs
    :func:`sklearn_snn._core.neurons.neuron_step` with the ``'if'`` model.

    Examples
    --------
    >>> import torch
    >>> IFNeurons()(torch.full((1, 1, 1), 0.3), 6).flatten()
    tensor([0., 1., 0., 0., 1., 0.])
    """

    def __init__(self, threshold: float = 1.0, v_init: float = 0.5):
        super().__init__()
        self.spec = NeuronSpec(model="if", threshold=float(threshold), reset="subtract")
        self.v_init = float(v_init)

    @property
    def threshold(self) -> float:
        return self.spec.threshold

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, v_init={self.v_init}, reset='subtract'"

    def forward(self, current, n_steps: int):
        thr = self.spec.threshold
        spike_fn = lambda z: (z >= 0).to(current.dtype)  # noqa: E731 -- inference only
        v = torch.full_like(current[0], self.v_init * thr)
        state = (v, None, None)
        out = current.new_empty((n_steps, *current.shape[1:]))
        static = current.shape[0] == 1
        for t in range(n_steps):
            out[t], _, state = neuron_step(self.spec, current[0 if static else t], state, spike_fn)
        return out

    def trace(self, current, n_steps: int):
        """As :meth:`forward`, also returning the membrane before reset ``(n_steps, B, ...)``."""
        thr = self.spec.threshold
        spike_fn = lambda z: (z >= 0).to(current.dtype)  # noqa: E731 -- inference only
        state = (torch.full_like(current[0], self.v_init * thr), None, None)
        out = current.new_empty((n_steps, *current.shape[1:]))
        mem = torch.empty_like(out)
        static = current.shape[0] == 1
        for t in range(n_steps):
            out[t], mem[t], state = neuron_step(self.spec, current[0 if static else t], state, spike_fn)
        return out, mem


class SpikingMaxPool2d(nn.Module):
    """Spiking max-pool whose spike count is the maximum of its inputs' spike counts.

    At step ``t`` it emits ``max_w C_w(t) - max_w C_w(t-1)`` with ``C_w(t)`` the cumulative input
    of window position ``w``; for binary input spikes the output is binary too (see the module
    docstring). A constant (``T`` = 1) input is max-pooled directly.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[1., 0.], [0., 1.], [1., 1.], [0., 1.]]).reshape(4, 1, 1, 1, 2)
    >>> SpikingMaxPool2d((1, 2))(s).flatten()   # counts (2, 3): three output spikes
    tensor([1., 0., 1., 1.])
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)

    def forward(self, h):
        if h.shape[0] == 1:
            return Stepwise(self.pool)(h)
        m = Stepwise(self.pool)(torch.cumsum(h, 0))
        return torch.diff(m, dim=0, prepend=torch.zeros_like(m[:1]))


class SpikingNetwork(nn.Module):
    """A converted network: stateless layers applied per step, IF neurons, a non-spiking readout.

    Parameters
    ----------
    layers : list of nn.Module
        :class:`Stepwise`, :class:`SpikingMaxPool2d` or :class:`IFNeurons`, one per layer of the
        canonical ANN (same indices).
    scales : list of float
        ``scales[i]``: the ANN value that one unit of layer ``i``'s output stands for (the
        normalisation scale ``lambda`` of the last IF layer at or before ``i``; 1 before any).
    weighted_for : list
        For every IF layer index, the index of the weighted layer whose bias feeds it (used by
        calibration), ``None`` elsewhere.
    """

    def __init__(self, layers, scales, weighted_for):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.scales = [float(s) for s in scales]
        self.weighted_for = list(weighted_for)

    @property
    def spiking_layers(self) -> list:
        """Indices of the IF layers."""
        return [i for i, m in enumerate(self.layers) if isinstance(m, IFNeurons)]

    def step_layer(self, i: int, h, n_steps: int):
        m = self.layers[i]
        return m(h, n_steps) if isinstance(m, IFNeurons) else m(h)

    @torch.no_grad()
    def forward(self, x, n_steps: int, return_layers: bool = False):
        """Simulate ``n_steps`` steps of constant input ``x`` ``(B, ...)``.

        Returns
        -------
        logits : Tensor ``(n_steps, B, n_out)``
            Time-averaged output after ``t + 1`` steps, in the ANN's units (entry ``t`` is the
            result of a ``t + 1``-step simulation).
        layers : list of Tensor, only with ``return_layers``
            Time-averaged output of every layer over all ``n_steps``, in ANN units (for IF layers:
            firing rate times ``lambda``).
        """
        n_steps = int(n_steps)
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        h = x.unsqueeze(0)
        means = []
        for i in range(len(self.layers)):
            h = self.step_layer(i, h, n_steps)
            if return_layers:
                means.append(h.mean(0) * self.scales[i])
        h = h * self.scales[-1]
        if h.shape[0] == 1:
            h = h.expand(n_steps, *h.shape[1:])
        steps = torch.arange(1, n_steps + 1, device=h.device, dtype=h.dtype)
        logits = torch.cumsum(h, 0) / steps.reshape(-1, *([1] * (h.dim() - 1)))
        return (logits, means) if return_layers else logits

    @torch.no_grad()
    def record(self, x, n_steps: int) -> dict:
        """Simulate ``n_steps`` steps of constant input ``x`` ``(B, ...)``, recording every IF layer.

        Returns
        -------
        dict of
            ``spikes``, ``membrane``: lists, per IF layer, of ``(n_steps, B, n_units)`` (units
            flattened; membrane before reset); ``output``: ``(B, n_out)`` time-averaged readout (as
            the last entry of :meth:`forward`); ``ac``, ``mac``: ``(B, n_if + 1)`` accumulates
            driven by binary inputs and multiply-accumulates driven by non-binary ones (a
            constant input counted once), per IF layer and the readout, for the weighted layers
            feeding it; ``ann``: ``(n_if + 1,)`` non-zero weight applications of one ANN pass.
        """
        n_steps = int(n_steps)
        B = x.shape[0]
        n_rows = len(self.spiking_layers) + 1
        ac = torch.zeros(B, n_rows, dtype=torch.float64)
        mac = torch.zeros(B, n_rows, dtype=torch.float64)
        ann = torch.zeros(n_rows, dtype=torch.float64)
        spikes, mems = [], []
        h, row = x.unsqueeze(0), 0
        for i, layer in enumerate(self.layers):
            inner = layer.module if isinstance(layer, Stepwise) else None
            if isinstance(inner, (nn.Linear, nn.Conv2d)):
                binary = bool(((h == 0) | (h == 1)).all())
                events = (h != 0).to(torch.float64).sum(0)  # (B, ...) non-zero inputs over time
                ind = (inner.weight != 0).to(torch.float64)
                if isinstance(inner, nn.Linear):
                    ops = nn.functional.linear(events, ind)
                    full = nn.functional.linear(torch.ones_like(events[:1]), ind)
                else:
                    kw = dict(stride=inner.stride, padding=inner.padding, dilation=inner.dilation,
                              groups=inner.groups)
                    ops = nn.functional.conv2d(events, ind, **kw)
                    full = nn.functional.conv2d(torch.ones_like(events[:1]), ind, **kw)
                (ac if binary else mac)[:, row] += ops.reshape(B, -1).sum(1).cpu()
                ann[row] += float(full.sum())
            if isinstance(layer, IFNeurons):
                h, u = layer.trace(h, n_steps)
                spikes.append(h.reshape(n_steps, B, -1))
                mems.append(u.reshape(n_steps, B, -1))
                row += 1
            else:
                h = layer(h)
        h = (h * self.scales[-1]).reshape(h.shape[0], B, -1)
        return {"spikes": spikes, "membrane": mems, "output": h.mean(0), "ac": ac, "mac": mac, "ann": ann}

    @torch.no_grad()
    def firing_rates(self, x, n_steps: int) -> list:
        """Mean firing rate (spikes per neuron per step) of every IF layer on ``x``."""
        h = x.unsqueeze(0)
        rates = []
        for i in range(len(self.layers)):
            h = self.step_layer(i, h, n_steps)
            if isinstance(self.layers[i], IFNeurons):
                rates.append(float(h.mean()))
        return rates


def _check_scales(ann: nn.Sequential, scales) -> None:
    """One scale per layer, a finite positive number at every activation layer (ValueError)."""
    if not isinstance(scales, (list, tuple)) or len(scales) != len(ann):
        raise ValueError(f"scales must be a list of {len(ann)} entries (one per layer), got "
                         f"{len(scales) if isinstance(scales, (list, tuple)) else type(scales).__name__}.")
    for i, (m, lam) in enumerate(zip(ann, scales)):
        if _is_activation(m) and (isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating))
                                  or not np.isfinite(lam) or lam <= 0):
            raise ValueError(f"The scale of activation layer {i} ({type(m).__name__}) must be a finite "
                             f"positive number, got {lam!r}.")


def convert(ann: nn.Sequential, scales: list, v_init: float = 0.5) -> SpikingNetwork:
    """Build the :class:`SpikingNetwork` of a canonical ANN with per-layer scales.

    Weights of each Linear/Conv2d are multiplied by the scale of their input and both weights and
    bias divided by the scale of the next activation layer (none: 1, the readout), so every IF
    layer has threshold 1 and its binary spikes stand for ``lambda_l``. ``scales`` needs one entry
    per layer, a finite positive number at every activation layer (else ``ValueError``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> ann = parse_ann(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)))
    >>> x = torch.randn(64, 4)
    >>> snn = convert(ann, activation_scales(ann, x, "max"))
    >>> err = [float((snn(x, t)[-1] - ann(x)).abs().mean()) for t in (4, 64)]
    >>> err[1] < err[0]
    True
    """
    n = len(ann)
    _check_scales(ann, scales)
    layers, out_scales, weighted_for = [], [], []
    scale = 1.0
    last_weighted = None
    for i, m in enumerate(ann):
        wf = None
        if _is_weighted(m):
            nxt = next((j for j in range(i + 1, n) if _is_activation(ann[j]) or _is_weighted(ann[j])), None)
            s_out = scales[nxt] if nxt is not None and _is_activation(ann[nxt]) else 1.0
            new = _with_bias(m)
            with torch.no_grad():
                new.weight.mul_(scale / s_out)
                new.bias.div_(s_out)
            layers.append(Stepwise(new))
            scale = s_out
            last_weighted = i
        elif _is_activation(m):
            lam = scales[i]
            # threshold is 1 when a weighted layer normalised the input to this scale
            layers.append(IFNeurons(threshold=lam / scale, v_init=v_init))
            scale = lam
            wf = last_weighted
            last_weighted = None
        elif isinstance(m, nn.MaxPool2d):
            layers.append(SpikingMaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode))
        elif isinstance(m, (nn.AvgPool2d, nn.Flatten)):
            layers.append(Stepwise(copy.deepcopy(m)))
        else:  # pragma: no cover -- parse_ann only emits the types above
            raise ConversionError(_unsupported(str(i), m))
        out_scales.append(scale)
        weighted_for.append(wf)
    return SpikingNetwork(layers, out_scales, weighted_for)


@torch.no_grad()
def calibrate_bias(snn: SpikingNetwork, ann: nn.Sequential, x, n_steps: int, readout: bool = True):
    """Layer-wise bias calibration (Li et al., ICML 2021, "light calibration"), in place.

    Layers are visited in order, each one seeing the already calibrated layers before it. For an IF
    layer ``l`` the mean conversion error ``e_l = E[a_l^ANN] / lambda_l - E[rate_l]`` is measured
    per neuron (per channel for conv layers: averaged over samples and positions) on ``x``, with a
    ``n_steps`` simulation, and ``e_l`` (in threshold units) is added to the bias of the weighted
    layer that feeds it: a constant extra current of ``e`` per step raises the rate by ``e``. With
    ``readout`` the same is done for the logits.

    Returns
    -------
    errors : list of float
        Mean absolute error of each calibrated layer before its correction, in ANN units.
    rates : list of float
        Mean firing rate of every IF layer after calibration (as :meth:`SpikingNetwork.firing_rates`).
    """
    acts = layer_outputs(ann, x)
    h = x.unsqueeze(0)
    errs, rates = [], []
    w_output = None  # output of the most recent weighted layer: a correction only shifts it
    n = len(snn.layers)
    for i in range(n):
        m = snn.layers[i]
        h = snn.step_layer(i, h, n_steps)
        if isinstance(m, Stepwise) and _is_weighted(m.module):
            w_output = h
        target_layer = isinstance(m, IFNeurons) and snn.weighted_for[i] is not None
        is_readout = readout and i == n - 1 and isinstance(m, Stepwise) and _is_weighted(m.module)
        if target_layer or is_readout:
            j = snn.weighted_for[i] if target_layer else i
            scale = snn.scales[i]
            err = acts[i] / scale - h.mean(0)  # in units of this layer's output
            errs.append(float(err.abs().mean()) * scale)
            chan = err.mean(0)
            if chan.dim() == 3:  # conv: one correction per channel
                chan = chan.mean((1, 2))
            delta = chan * (m.threshold if isinstance(m, IFNeurons) else 1.0)
            snn.layers[j].module.bias.add_(delta)
            h = w_output + delta.reshape(delta.shape + (1,) * (w_output.dim() - 3))
            for k in range(j + 1, i + 1):
                h = snn.step_layer(k, h, n_steps)
        if isinstance(m, IFNeurons):
            rates.append(float(h.mean()))
    return errs, rates
