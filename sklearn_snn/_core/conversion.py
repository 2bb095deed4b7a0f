"""ANN-to-SNN conversion: parsing, BatchNorm folding, normalisation, IF simulation, calibration.

The pipeline (torch only; the estimator in ``sklearn_snn.conversion`` drives it):

1. :func:`~sklearn_snn._core.ann_parsing.parse_ann` turns a torch model (an ``nn.Sequential``,
   nested or not, or an ``nn.Module`` whose forward is a plain chain, traced with ``torch.fx``)
   into a *canonical ANN*: an ``nn.Sequential`` of ``Linear``/``Conv2d`` (BatchNorm folded in, bias
   always present), ``AvgPool2d``, ``MaxPool2d``, ``Flatten`` and activations (``nn.ReLU``,
   :class:`ClipReLU`, :class:`QCFS`). Dropout and Identity are removed, a trailing softmax is
   dropped (it does not change the arg-max; probabilities are taken with a softmax anyway), and a
   max-pool placed before a ReLU is moved after it (``relu(maxpool(z)) == maxpool(relu(z))`` for
   any monotone activation), so that the max-pool always sees spikes.
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

This module holds steps 2 to 4 (normalisation, the spiking network with IF neurons, calibration).
Step 1 lives in :mod:`~sklearn_snn._core.ann_parsing` and the weight-free layer specifications in
:mod:`~sklearn_snn._core.layer_specs`; this module re-exports their public names.

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

import numpy as np
import torch
from torch import nn

from .ann_parsing import (
    QCFS,
    ClipReLU,
    ConversionError,
    build_mlp,
    fold_batchnorm,
    is_activation,
    is_weighted,
    mlp_from_weights,
    parse_ann,
    unsupported_message,
    with_bias,
)
from .kernels import spiking_scan
from .layer_specs import MAX_SPEC_PARAMETERS, layer_specs, sequential_from_specs
from .neurons import NeuronSpec

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
    current) and returns binary spikes ``(n_steps, B, ...)``. The time loop is the package's one
    scan, :func:`sklearn_snn._core.kernels.spiking_scan` with the ``'if'`` model (compiled on the
    CPU when numba is installed), started from the membrane ``v_init * threshold``.

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
        return self.trace(current, n_steps)[0]

    def trace(self, current, n_steps: int):
        """As :meth:`forward`, also returning the membrane before reset ``(n_steps, B, ...)``."""
        shape = (n_steps, *current.shape[1:])
        # (T, B, ...) -> (T, B, units): the scan runs any layout of units, convolutional maps too
        x = current.expand(shape) if current.shape[0] == 1 else current[:n_steps]
        x = x.reshape(n_steps, shape[1], -1).contiguous()
        v0 = torch.full_like(x[0], self.v_init * self.spec.threshold)
        with torch.no_grad():
            spikes, membrane, _ = spiking_scan(x, self.spec, state=(v0, None, None, torch.zeros_like(v0)))
        return spikes.reshape(shape), membrane.reshape(shape)


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


def check_scales(ann: nn.Sequential, scales) -> None:
    """One scale per layer, a finite positive number at every activation layer (ValueError)."""
    if not isinstance(scales, (list, tuple)) or len(scales) != len(ann):
        raise ValueError(f"scales must be a list of {len(ann)} entries (one per layer), got "
                         f"{len(scales) if isinstance(scales, (list, tuple)) else type(scales).__name__}.")
    for i, (m, lam) in enumerate(zip(ann, scales)):
        if is_activation(m) and (isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating))
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
    check_scales(ann, scales)
    layers, out_scales, weighted_for = [], [], []
    scale = 1.0
    last_weighted = None
    for i, m in enumerate(ann):
        wf = None
        if is_weighted(m):
            nxt = next((j for j in range(i + 1, n) if is_activation(ann[j]) or is_weighted(ann[j])), None)
            s_out = scales[nxt] if nxt is not None and is_activation(ann[nxt]) else 1.0
            new = with_bias(m)
            with torch.no_grad():
                new.weight.mul_(scale / s_out)
                new.bias.div_(s_out)
            layers.append(Stepwise(new))
            scale = s_out
            last_weighted = i
        elif is_activation(m):
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
            raise ConversionError(unsupported_message(str(i), m))
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
        if isinstance(m, Stepwise) and is_weighted(m.module):
            w_output = h
        target_layer = isinstance(m, IFNeurons) and snn.weighted_for[i] is not None
        is_readout = readout and i == n - 1 and isinstance(m, Stepwise) and is_weighted(m.module)
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
