"""Activity and cost metrics of spiking networks: spike counts, firing rates, synaptic
operations and an energy estimate against the equivalent ANN.

How the operations are counted
------------------------------
Work is counted per *synaptic connection* (a weight matrix) and charged to the layer it feeds:

- a binary spike of a presynaptic neuron ``j`` triggers one accumulate (AC) at each of its
  ``fan_out_j`` postsynaptic targets: ``SynOps = sum_j spikes_j * fan_out_j``, with ``fan_out_j``
  the number of non-zero weights leaving ``j`` (pruned or evolved-away synapses cost nothing);
- a non-binary input (a current injected by the ``'current'`` or ``'population'`` encoders,
  real-valued 3D input, or average-pooled spikes) needs a multiplication: each non-zero value
  costs one multiply-accumulate (MAC) per target. A constant current is projected once, not once
  per step, exactly as the package computes it;
- the *equivalent ANN* has the same connections (same non-zero weights) and computes every one of
  them once per sample for 2D input (one forward pass), once per step for 3D input (a network
  applied at every step), so ``ANN MACs = nnz(W) * ann_steps``.

Neuron state updates (leak, threshold, reset) and memory traffic are not counted, in either
network, as is usual for SynOps comparisons; the figures are a first-order estimate, not a
measurement of any chip.

Energy per operation
--------------------
Horowitz (2014) estimates, for a 45 nm CMOS process at 0.9 V: 32-bit floating-point add 0.9 pJ,
32-bit floating-point multiply 3.7 pJ. So a MAC costs ``3.7 + 0.9 = 4.6`` pJ and an AC ``0.9`` pJ
(:data:`ENERGY_PER_OP`); pass other figures (e.g. integer arithmetic) through ``energy_per_op``.

References
----------
M. Horowitz, "1.1 Computing's energy problem (and what we can do about it)", IEEE International
Solid-State Circuits Conference (ISSCC), 2014, pp. 10-14.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

__all__ = ["ENERGY_PER_OP", "SpikeStats", "spike_stats", "ann_macs"]

#: Energy in joules of one 32-bit floating-point MAC (multiply 3.7 pJ + add 0.9 pJ) and one
#: accumulate (add, 0.9 pJ), 45 nm process (Horowitz, ISSCC 2014).
ENERGY_PER_OP = {"mac": 4.6e-12, "ac": 0.9e-12}

_COLUMNS = ("layer", "n_neurons", "spikes", "firing_rate", "synops", "snn_macs", "ann_macs",
            "snn_energy", "ann_energy")


class SpikeStats(Bunch):
    """Result of :func:`spike_stats`: a :class:`~sklearn.utils.Bunch` with a table view.

    Per-layer entries are arrays with one value per layer (``layers`` gives the names), all
    *per sample* (means over the samples of ``X``); see :func:`spike_stats` for the keys.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.metrics import spike_stats
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SurrogateSNNClassifier((16,), max_iter=2, random_state=0).fit(X[:200], y[:200])
    >>> stats = spike_stats(clf, X[:50])
    >>> sorted(stats.as_table())[:3]
    ['ann_energy', 'ann_macs', 'firing_rate']
    >>> len(stats.as_table()["layer"])   # two layers and the total
    3
    """

    def as_table(self, total=True):
        """Columns of a per-layer table (a dict of lists), ready for ``pandas.DataFrame``.

        Parameters
        ----------
        total : bool, default=True
            Append a row ``'total'`` with the sums (spikes, operations, energy) over layers and
            the overall firing rate.

        Returns
        -------
        dict of str to list
            Columns ``layer, n_neurons, spikes, firing_rate, synops, snn_macs, ann_macs,
            snn_energy, ann_energy`` (energies in joules per sample).

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.metrics import spike_stats
        >>> X, y = load_digits(return_X_y=True)
        >>> clf = SurrogateSNNClassifier((16,), max_iter=2, random_state=0).fit(X[:200], y[:200])
        >>> spike_stats(clf, X[:20]).as_table()["layer"]
        ['hidden_0', 'output', 'total']
        """
        cols = {
            "layer": list(self.layers),
            "n_neurons": [int(n) for n in self.n_neurons],
            "spikes": [float(v) for v in self.spike_counts],
            "firing_rate": [float(v) for v in self.firing_rates],
            "synops": [float(v) for v in self.synops],
            "snn_macs": [float(v) for v in self.snn_macs],
            "ann_macs": [float(v) for v in self.ann_macs],
            "snn_energy": [float(v) for v in self.snn_energy_per_layer],
            "ann_energy": [float(v) for v in self.ann_energy_per_layer],
        }
        if total:
            cols["layer"].append("total")
            cols["n_neurons"].append(int(np.sum(self.n_neurons)))
            cols["spikes"].append(float(self.total_spikes))
            cols["firing_rate"].append(float(self.mean_firing_rate))
            cols["synops"].append(float(self.total_synops))
            cols["snn_macs"].append(float(np.nansum(self.snn_macs)))
            cols["ann_macs"].append(float(self.total_ann_macs))
            cols["snn_energy"].append(float(self.snn_energy))
            cols["ann_energy"].append(float(self.ann_energy))
        return {k: cols[k] for k in _COLUMNS}

    def to_frame(self, total=True):
        """The table of :meth:`as_table` as a ``pandas.DataFrame`` indexed by layer (needs pandas).

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.metrics import spike_stats
        >>> X, y = load_digits(return_X_y=True)
        >>> clf = SurrogateSNNClassifier((16,), max_iter=2, random_state=0).fit(X[:200], y[:200])
        >>> spike_stats(clf, X[:20]).to_frame().shape
        (3, 8)
        """
        import pandas as pd

        return pd.DataFrame(self.as_table(total=total)).set_index("layer")


def _check_energy_per_op(energy_per_op):
    """The ``{'mac': joules, 'ac': joules}`` dict of :func:`spike_stats`, as floats, or an error.

    A single number is refused: it cannot say which of the two operations it prices.
    """
    if energy_per_op is None:
        return dict(ENERGY_PER_OP)
    if not isinstance(energy_per_op, Mapping):
        raise TypeError(
            f"energy_per_op must be a dict {{'mac': joules, 'ac': joules}} (the energy of one "
            f"multiply-accumulate and of one accumulate) or None for the 45 nm defaults "
            f"{ENERGY_PER_OP}; got {type(energy_per_op).__name__} {energy_per_op!r}. A single number "
            f"cannot price both operations: pass e.g. {{'mac': 4.6e-12, 'ac': 0.9e-12}}.")
    if set(energy_per_op) != {"mac", "ac"}:
        raise ValueError(f"energy_per_op must have the keys 'mac' and 'ac', got {sorted(energy_per_op)}.")
    costs = {}
    for key in ("mac", "ac"):
        value = energy_per_op[key]
        ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        if not ok:
            raise ValueError(f"energy_per_op[{key!r}] must be a finite number >= 0 (joules per operation), "
                             f"got {value!r}.")
        costs[key] = float(value)
    return costs


# ------------------------------------------------------------------------------------------
# the public function
# ------------------------------------------------------------------------------------------
def spike_stats(estimator, X, *, energy_per_op=None, ann_steps="auto"):
    """Spike counts, firing rates, synaptic operations and energy of a fitted SNN on ``X``.

    Works for every SNN estimator of the package: those with a ``simulate(X)`` method (the
    gradient-trained networks, EventProp, EvolvedSNN, and any estimator whose ``simulate``
    returns ``{'spikes': [per layer (n_samples, n_steps, n_units)], ...}``), ``ConvertedSNN``
    (simulated layer by layer here) and ``STDPTransformer`` (its winner-take-all layer). In a
    :class:`~sklearn.pipeline.Pipeline` the last spiking step is measured, on ``X`` transformed
    by the steps before it; a fitted search object stands for its ``best_estimator_``. The counting rules and energy figures are in the module
    docstring (:mod:`sklearn_snn.metrics`).

    Parameters
    ----------
    estimator : fitted SNN estimator, Pipeline holding one, or fitted search
    X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        Input as the estimator takes it.
    energy_per_op : dict or None, default=None
        ``{'mac': joules, 'ac': joules}``: the energy of one multiply-accumulate and of one
        accumulate, finite and ``>= 0``; None uses :data:`ENERGY_PER_OP` (45 nm, Horowitz 2014).
        A single number is refused (it cannot price both operations).
    ann_steps : 'auto' or int, default='auto'
        How many times the equivalent ANN evaluates each connection per sample: 'auto' is 1 for
        2D input and the number of steps for 3D input.

    Returns
    -------
    stats : SpikeStats
        A :class:`~sklearn.utils.Bunch` (all per-sample means over ``X``) with

        - ``layers`` (list of str) and ``n_neurons`` (ndarray): the neuron layers, readout last;
        - ``n_samples``, ``n_steps``;
        - ``spike_counts``: spikes per sample of each layer (NaN for a non-spiking readout);
        - ``firing_rates``: spikes per neuron per step of each layer (NaN if non-spiking);
        - ``neuron_firing_rates``: list, per spiking layer, of the per-neuron rates (ndarray);
        - ``input_spikes``: spikes per sample of the (encoded) input, NaN for analog input;
        - ``synops``, ``snn_macs``, ``ann_macs``: operations per sample into each layer
          (accumulates triggered by spikes, MACs of analog input, MACs of the equivalent ANN);
        - ``total_spikes``, ``mean_firing_rate``, ``total_synops``, ``total_ann_macs``;
        - ``snn_energy_per_layer``, ``ann_energy_per_layer``, ``snn_energy``, ``ann_energy``
          (joules per sample) and ``energy_ratio`` (``ann_energy / snn_energy``, above 1 when
          the SNN is cheaper);
        - ``energy_per_op``: the figures used; ``notes``: list of str (what could not be
          counted, if anything).

        ``as_table()`` / ``to_frame()`` give one row per layer.

    Raises
    ------
    TypeError
        If the estimator has neither ``simulate(X)`` nor a known converted network, or if
        ``energy_per_op`` is not a dict.
    ValueError
        If ``energy_per_op`` lacks a key or holds a negative or non-finite cost.

    See Also
    --------
    sklearn_snn.plotting.FiringRateDisplay : Histogram of the per-neuron firing rates.

    Notes
    -----
    The energy model prices only synaptic arithmetic (see the module docstring). It favours the
    SNN when activity is sparse and is no statement about a particular neuromorphic chip, whose
    costs are dominated by memory access and routing.

    References
    ----------
    M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.metrics import spike_stats
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SurrogateSNNClassifier((32,), max_iter=3, random_state=0).fit(X[:300], y[:300])
    >>> stats = spike_stats(clf, X[:100])
    >>> stats.layers
    ['hidden_0', 'output']
    >>> int(stats.ann_macs.sum()) == 64 * 32 + 32 * 10   # one dense forward pass
    True
    >>> bool(stats.snn_energy > 0 and stats.energy_ratio > 0)
    True
    """
    costs = _check_energy_per_op(energy_per_op)
    if ann_steps != "auto" and (isinstance(ann_steps, bool) or int(ann_steps) < 1):
        raise ValueError(f"ann_steps must be 'auto' or a positive integer, got {ann_steps!r}.")
    estimator, X = _unwrap(estimator, X)
    check_is_fitted(estimator)
    module = getattr(estimator, "module_", None)
    from ._core.conversion import SpikingNetwork
    from ._core.stdp import WTALayer

    if isinstance(module, SpikingNetwork):
        raw = _collect_converted(estimator, X)
    elif isinstance(module, WTALayer) and not hasattr(estimator, "simulate"):
        raw = _collect_wta(estimator, X)
    elif hasattr(estimator, "simulate"):
        raw = _collect_simulated(estimator, X)
    else:
        raise TypeError(
            f"spike_stats needs an estimator with a simulate(X) method returning "
            f"{{'spikes': [per layer (n_samples, n_steps, n_units)], ...}} or a converted network; "
            f"{type(estimator).__name__} has neither."
        )
    if ann_steps == "auto":
        ann_steps = raw["n_steps"] if getattr(estimator, "input_ndim_", 2) == 3 else 1
    return _summarise(raw, costs, int(ann_steps))


def ann_macs(estimator):
    """Multiply-accumulates per sample of one forward pass of a dense ANN.

    Counts ``n_in * n_out`` per weight matrix (``coefs_``) of a fitted
    :class:`~sklearn.neural_network.MLPClassifier` or ``MLPRegressor`` (a Pipeline or search
    ending in one is accepted); biases and activations are not counted. Multiply by
    ``ENERGY_PER_OP['mac']`` for its energy estimate, to set beside :func:`spike_stats`.

    Parameters
    ----------
    estimator : fitted MLPClassifier or MLPRegressor

    Returns
    -------
    int

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sklearn_snn.metrics import ann_macs
    >>> X, y = load_iris(return_X_y=True)
    >>> ann_macs(MLPClassifier((10,), max_iter=300, random_state=0).fit(X, y))
    70
    """
    est, _ = _unwrap(estimator, None)
    coefs = getattr(est, "coefs_", None)
    if coefs is None:
        raise TypeError(f"ann_macs needs a fitted estimator with coefs_ (an MLP); got {type(est).__name__}.")
    return int(sum(np.asarray(c).size for c in coefs))


# ------------------------------------------------------------------------------------------
# collecting activity
# ------------------------------------------------------------------------------------------
def _unwrap(estimator, X):
    est = getattr(estimator, "best_estimator_", estimator)
    if hasattr(est, "steps"):  # Pipeline: the last spiking step, X transformed by the steps before it
        steps = [s for _, s in est.steps]
        k = next((i for i in range(len(steps) - 1, -1, -1)
                  if hasattr(steps[i], "simulate") or hasattr(steps[i], "module_")), len(steps) - 1)
        if X is not None and k > 0:
            X = est[:k].transform(X)
        est = steps[k]
    return est, X


def _fan_out(W):
    """Non-zero outgoing weights of every presynaptic neuron of a (n_post, n_pre) matrix."""
    return (W.detach() != 0).sum(0).double().cpu().numpy()


def _nnz(W):
    return float((W.detach() != 0).sum())


def _input_events(est, X):
    """Per sample and input channel, the non-zero input values (counted once for a constant
    current) and whether the encoded input is binary spikes."""
    from ._core.encoding import is_static

    dtype = est._inference_dtype() if hasattr(est, "_inference_dtype") else torch.float64
    Xs = est._scale(X) if hasattr(est, "_scale") else X
    counts, binary, n_steps = [], True, None
    with torch.no_grad():
        for start in range(0, X.shape[0], 512):
            xb = torch.tensor(np.asarray(Xs[start:start + 512]), dtype=dtype)
            x = est._encode(xb, train=False)
            if isinstance(x, torch.Tensor):
                n_steps = x.shape[0]
                binary = binary and bool(((x == 0) | (x == 1)).all())
                nz = (x[:1] if is_static(x) else x) != 0
                counts.append(nz.sum(0).double().numpy())
            else:  # a sparse event list (EventProp's SpikeEvents): every entry is a spike
                n_steps = x.n_steps
                c = torch.zeros(x.batch_size * x.n_neurons, dtype=torch.float64)
                c.index_add_(0, x.batch * x.n_neurons + x.neuron, torch.ones(len(x), dtype=torch.float64))
                counts.append(c.view(x.batch_size, x.n_neurons).numpy())
    return np.concatenate(counts), binary, n_steps


def _connections(module):
    """(target row, source row or -1 for the input, weight (n_post, n_pre)) of known modules."""
    from ._core.network import SNN

    if isinstance(module, SNN):
        conns = []
        for i, layer in enumerate(module.hidden):
            conns.append((i, i - 1, layer.weight))
            if getattr(layer, "w_rec", None) is not None:
                conns.append((i, i, layer.w_rec))
        conns.append((len(module.hidden), len(module.hidden) - 1, module.out.weight))
        return conns, len(module.hidden) + 1
    weights = getattr(module, "weights", None)
    recurrent = getattr(module, "recurrent", None)
    if weights is not None and isinstance(recurrent, tuple):  # EventPropNet
        conns, k = [], 0
        for i, rec in enumerate(recurrent):
            conns.append((i, i - 1, weights[k]))
            k += 1
            if rec:
                conns.append((i, i, weights[k]))
                k += 1
        conns.append((len(recurrent), len(recurrent) - 1, weights[k]))
        return conns, len(recurrent) + 1
    W = getattr(module, "weight", None)
    if isinstance(W, torch.Tensor) and W.dim() == 2:  # one layer (e.g. a WTA layer)
        return [(0, -1, W)], 1
    return None, None


def _collect_simulated(est, X):
    from .validation import validate_snn_input

    Xv, _ = validate_snn_input(est, X, reset=False)
    sim = est.simulate(Xv)
    spikes = [np.asarray(s) for s in sim["spikes"]]
    n = Xv.shape[0]
    n_steps = spikes[0].shape[1] if spikes else None
    counts = [s.sum(1) for s in spikes]  # (n, H)
    notes = []
    conns, n_rows = _connections(getattr(est, "module_", None))
    if conns is None:
        notes.append(f"the network of {type(est).__name__} is not known to spike_stats: spike counts and "
                     "rates only, no operation counts")
        n_rows = len(spikes)
    in_counts, binary = None, True
    if conns is not None:
        try:
            in_counts, binary, enc_steps = _input_events(est, Xv)
            n_steps = n_steps or enc_steps
        except (AttributeError, TypeError, ValueError) as exc:
            notes.append(f"the encoded input could not be rebuilt ({exc}); input operations not counted")
    widths = []
    for r in range(n_rows):
        if r < len(counts):
            widths.append(counts[r].shape[1])
        else:
            widths.append(int(next(W.shape[0] for t, _, W in conns if t == r)))
    synops, macs, annm = np.zeros((n, n_rows)), np.zeros((n, n_rows)), np.zeros(n_rows)
    for target, source, W in conns or []:
        fan = _fan_out(W)
        annm[target] += _nnz(W)
        if source < 0:
            if in_counts is None:
                macs[:, target] = np.nan
                continue
            ops = in_counts @ fan
            (synops if binary else macs)[:, target] += ops
        else:
            synops[:, target] += counts[source] @ fan
    return dict(layers=_row_names(n_rows, est), widths=widths, counts=counts, n=n, n_steps=n_steps,
                synops=synops, macs=macs, ann_macs=annm,
                input_spikes=in_counts.sum(1).mean() if (in_counts is not None and binary) else np.nan,
                notes=notes)


def _collect_wta(est, X):
    """A winner-take-all STDP layer: spike counts from its forward pass (no per-step record)."""
    from .validation import validate_snn_input

    Xv, _ = validate_snn_input(est, X, reset=False)
    counts = est._batched(Xv, lambda m, x: m(x).double().cpu().numpy())
    in_counts, binary, n_steps = _input_events(est, Xv)
    W = est.module_.weight
    ops = in_counts @ _fan_out(W)
    zeros = np.zeros((Xv.shape[0], 1))
    return dict(layers=["wta"], widths=[counts.shape[1]], counts=[counts], n=Xv.shape[0], n_steps=n_steps,
                synops=ops[:, None] if binary else zeros, macs=zeros if binary else ops[:, None],
                ann_macs=np.array([_nnz(W)]), input_spikes=in_counts.sum(1).mean() if binary else np.nan,
                notes=[])


def _row_names(n_rows, est):
    return [f"hidden_{i}" for i in range(n_rows - 1)] + ["output"]


def _collect_converted(est, X):
    """Simulate a ConvertedSNN layer by layer, counting spikes and operations."""
    from ._core.conversion import IFNeurons, Stepwise

    Xv = est._validated(X)
    n_steps = int(est.n_steps)
    layers = est.module_.layers
    n_if = sum(isinstance(m, IFNeurons) for m in layers)
    n_rows = n_if + 1

    def fn(m, x):
        B = x.shape[0]
        h = x.unsqueeze(0)
        row = 0
        ac = torch.zeros(B, n_rows, dtype=torch.float64)
        mac = torch.zeros(B, n_rows, dtype=torch.float64)
        ann = torch.zeros(B, n_rows, dtype=torch.float64)
        spikes = []
        for i, layer in enumerate(m.layers):
            inner = layer.module if isinstance(layer, Stepwise) else None
            if isinstance(inner, (torch.nn.Linear, torch.nn.Conv2d)):
                binary = bool(((h == 0) | (h == 1)).all())
                events = (h != 0).to(torch.float64).sum(0)  # (B, ...) non-zero inputs over time
                ind = (inner.weight != 0).to(torch.float64)
                if isinstance(inner, torch.nn.Linear):
                    ops = torch.nn.functional.linear(events, ind)
                    full = torch.nn.functional.linear(torch.ones_like(events[:1]), ind)
                else:
                    kw = dict(stride=inner.stride, padding=inner.padding, dilation=inner.dilation,
                              groups=inner.groups)
                    ops = torch.nn.functional.conv2d(events, ind, **kw)
                    full = torch.nn.functional.conv2d(torch.ones_like(events[:1]), ind, **kw)
                (ac if binary else mac)[:, row] += ops.reshape(B, -1).sum(1)
                ann[:, row] += float(full.sum())
            h = m.step_layer(i, h, n_steps)
            if isinstance(layer, IFNeurons):
                spikes.append(h.sum(0).reshape(B, -1).double().cpu().numpy())
                row += 1
        out_width = h.reshape(h.shape[0], B, -1).shape[-1]
        return {"spikes": spikes, "ac": ac.numpy(), "mac": mac.numpy(), "ann": ann.numpy(),
                "width": np.full(B, out_width)}

    res = est._batched(Xv, fn)
    counts = res["spikes"]
    names = [k for k in est.firing_rates_] + ["output"]
    widths = [c.shape[1] for c in counts] + [int(res["width"][0])]
    return dict(layers=names, widths=widths, counts=counts, n=Xv.shape[0], n_steps=n_steps,
                synops=res["ac"], macs=res["mac"], ann_macs=res["ann"][0], input_spikes=np.nan, notes=[])


# ------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------
def _activity(estimator, X):
    """``simulate``'s dict for any SNN estimator (ConvertedSNN simulated here: spikes only)."""
    from ._core.conversion import IFNeurons, SpikingNetwork

    estimator, X = _unwrap(estimator, X)
    check_is_fitted(estimator)
    if isinstance(getattr(estimator, "module_", None), SpikingNetwork):
        Xv = estimator._validated(X)
        n_steps = int(estimator.n_steps)

        def fn(m, x):
            h, spikes = x.unsqueeze(0), []
            for i, layer in enumerate(m.layers):
                h = m.step_layer(i, h, n_steps)
                if isinstance(layer, IFNeurons):
                    spikes.append(h.reshape(n_steps, x.shape[0], -1).transpose(0, 1).float().cpu().numpy())
            return {"spikes": spikes}

        out = estimator._batched(Xv, fn)
        out["layers"] = list(estimator.firing_rates_)
        return out
    if not hasattr(estimator, "simulate"):
        raise TypeError(f"{type(estimator).__name__} has no simulate(X) method, so its activity cannot be "
                        "recorded; simulate(X) must return {'spikes': [per layer (n_samples, n_steps, n_units)], "
                        "'membrane': [...], 'output': ...}.")
    out = dict(estimator.simulate(X))
    n_hidden = len(out["spikes"])
    conns, n_rows = _connections(getattr(estimator, "module_", None))
    out["layers"] = _row_names(n_rows, estimator)[:n_hidden] if conns is not None else \
        [f"layer_{i}" for i in range(n_hidden)]
    return out


def _summarise(raw, costs, ann_steps):
    n_rows = len(raw["layers"])
    counts, T = raw["counts"], raw["n_steps"]
    widths = np.asarray(raw["widths"])
    spikes = np.full(n_rows, np.nan)
    rates = np.full(n_rows, np.nan)
    neuron_rates = []
    for r, c in enumerate(counts[:n_rows]):
        spikes[r] = c.sum(1).mean()
        neuron_rates.append(c.mean(0) / T)
        rates[r] = spikes[r] / (widths[r] * T)
    synops = raw["synops"].mean(0)
    macs = raw["macs"].mean(0)
    annm = np.asarray(raw["ann_macs"], dtype=float) * ann_steps
    snn_e = synops * costs["ac"] + np.nan_to_num(macs) * costs["mac"]
    ann_e = annm * costs["mac"]
    spiking = ~np.isnan(spikes)
    total_spikes = float(spikes[spiking].sum())
    snn_energy, ann_energy = float(snn_e.sum()), float(ann_e.sum())
    return SpikeStats(
        layers=list(raw["layers"]), n_neurons=widths, n_samples=int(raw["n"]), n_steps=int(T),
        spike_counts=spikes, firing_rates=rates, neuron_firing_rates=neuron_rates,
        input_spikes=float(raw["input_spikes"]),
        synops=synops, snn_macs=macs, ann_macs=annm,
        total_spikes=total_spikes,
        mean_firing_rate=total_spikes / (widths[spiking].sum() * T) if spiking.any() else float("nan"),
        total_synops=float(synops.sum()), total_ann_macs=float(annm.sum()),
        snn_energy_per_layer=snn_e, ann_energy_per_layer=ann_e,
        snn_energy=snn_energy, ann_energy=ann_energy,
        energy_ratio=ann_energy / snn_energy if snn_energy > 0 else float("inf"),
        energy_per_op=costs, notes=list(raw["notes"]),
    )
