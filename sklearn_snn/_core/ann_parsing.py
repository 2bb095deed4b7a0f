"""ANN parsing for conversion: the canonical ANN, BatchNorm folding, clipped activations.

:func:`parse_ann` turns a torch model (an ``nn.Sequential``, nested or not, or an ``nn.Module``
whose forward is a plain chain, traced with ``torch.fx``) into a *canonical ANN*: an
``nn.Sequential`` of ``Linear``/``Conv2d`` (BatchNorm folded in by :func:`fold_batchnorm`, bias
always present), ``AvgPool2d``, ``MaxPool2d``, ``Flatten`` and activations (``nn.ReLU``,
:class:`ClipReLU`, :class:`QCFS`). Dropout and Identity are removed, a trailing softmax is dropped
(it does not change the arg-max; probabilities are taken with a softmax anyway), and a max-pool
placed before a ReLU is moved after it (``relu(maxpool(z)) == maxpool(relu(z))`` for any monotone
activation), so that the max-pool always sees spikes. :func:`mlp_from_weights` and
:func:`build_mlp` build canonical MLPs directly. The rest of the pipeline is described in
:mod:`~sklearn_snn._core.conversion`; the layer specifications that describe a canonical ANN
without its weights are in :mod:`~sklearn_snn._core.layer_specs`.
"""

from __future__ import annotations

import copy
import operator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SUPPORTED_LAYERS", "ClipReLU", "ConversionError", "QCFS", "build_mlp", "fold_batchnorm",
           "is_activation", "is_weighted", "mlp_from_weights", "parse_ann", "unsupported_message", "with_bias"]


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


def is_activation(m) -> bool:
    """Whether ``m`` is an activation of a canonical ANN (ReLU, :class:`ClipReLU`, :class:`QCFS`)."""
    return isinstance(m, (nn.ReLU, ClipReLU, QCFS))


def is_weighted(m) -> bool:
    """Whether ``m`` is a weighted layer of a canonical ANN (Linear, Conv2d)."""
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
        new = with_bias(layer)
        new.weight.copy_(w * scale.reshape((-1,) + (1,) * (w.dim() - 1)).to(w.dtype))
        new.bias.copy_(((b - bn.running_mean) * scale + beta).to(w.dtype))
    return new


def with_bias(layer: nn.Module) -> nn.Module:
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
        raise ConversionError(unsupported_message(name, model))
    else:
        yield from _trace_chain(model, name)


def unsupported_message(name, module) -> str:
    """The :class:`ConversionError` message for a layer with no spiking equivalent."""
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
    sklearn_snn._core.ann_parsing.ConversionError: Cannot convert layer '1' (Tanh): ...
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
            if not layers or not is_weighted(layers[-1]):
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
        elif is_weighted(m):
            layers.append(with_bias(m))
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
        if isinstance(layers[i], nn.MaxPool2d) and is_activation(layers[i + 1]):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            i = max(i - 1, 0)
        else:
            i += 1
    if not any(is_weighted(m) for m in layers):
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
