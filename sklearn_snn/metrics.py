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

Where the numbers come from
---------------------------
Everything is read from the estimator's public ``simulate(X)`` (the activity contract of
:func:`record_activity`): its spikes, layer names and the operation counts the estimator makes
with :class:`SynapticOpCounter` (or, for a converted network with convolutions, with the same
rules layer by layer). Nothing here depends on the kind of network.

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

__all__ = ["ENERGY_PER_OP", "SpikeStats", "spike_stats", "ann_macs", "record_activity", "final_estimator"]

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

    Works for every estimator with a ``simulate(X)`` method (every network of the package):
    the spikes, the operation counts and the layer names all come from ``simulate``'s dict
    (see :func:`record_activity`); an estimator whose ``simulate`` reports no operation counts
    gets spike counts and rates only (and a note). In a :class:`~sklearn.pipeline.Pipeline` the
    last step with ``simulate`` is measured, on ``X`` transformed by the steps before it; a
    fitted search object stands for its ``best_estimator_``. The counting rules and energy
    figures are in the module docstring (:mod:`sklearn_snn.metrics`).

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
    estimator, X = final_estimator(estimator, X)
    raw = _from_activity(record_activity(estimator, X))
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
    est, _ = final_estimator(estimator)
    coefs = getattr(est, "coefs_", None)
    if coefs is None:
        raise TypeError(f"ann_macs needs a fitted estimator with coefs_ (an MLP); got {type(est).__name__}.")
    return int(sum(np.asarray(c).size for c in coefs))


# ------------------------------------------------------------------------------------------
# the activity contract: every estimator's simulate(X)
# ------------------------------------------------------------------------------------------
def final_estimator(estimator, X=None):
    """The network a metric or display measures, and ``X`` as that network receives it.

    A fitted search object stands for its ``best_estimator_``; in a
    :class:`~sklearn.pipeline.Pipeline` the last step with a ``simulate`` method is taken (the
    last step when none has one) and ``X`` is passed through the steps before it with their
    public ``transform``.

    Parameters
    ----------
    estimator : estimator, Pipeline or fitted search
    X : array-like or None, default=None
        None skips the transformation.

    Returns
    -------
    estimator, X

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.metrics import final_estimator
    >>> pipe = make_pipeline(MinMaxScaler(), SurrogateSNNClassifier())
    >>> type(final_estimator(pipe)[0]).__name__
    'SurrogateSNNClassifier'
    """
    est = getattr(estimator, "best_estimator_", estimator)
    if hasattr(est, "steps"):
        steps = [s for _, s in est.steps]
        k = next((i for i in range(len(steps) - 1, -1, -1) if hasattr(steps[i], "simulate")), len(steps) - 1)
        if X is not None and k > 0:
            X = est[:k].transform(X)
        est = steps[k]
    return est, X


def record_activity(estimator, X):
    """``estimator.simulate(X)`` (after :func:`final_estimator`), checked against the contract.

    Every estimator of the package returns from ``simulate(X)`` a dict with at least

    - ``spikes``: list, one entry per spiking layer, of arrays (n_samples, n_steps, n_units)
      holding 0/1 (axis 1 is time);
    - ``membrane``: list, one entry per layer with a membrane, same layout (membrane potential
      before reset; a layer without state, such as the converted network's readout, has none);
    - ``output``: array (n_samples, n_outputs), the readout values;
    - ``layers``: list of str, the names of the layers, ``spikes[i]`` and ``membrane[i]``
      belonging to ``layers[i]`` (a last name without spikes is a non-spiking readout);
    - ``n_steps``: int, the number of simulated steps;

    and, where the estimator counts its operations, ``synops`` and ``macs`` (n_samples,
    n_layers), ``ann_macs`` (n_layers,) and ``input_spikes`` (n_samples,), see
    :class:`SynapticOpCounter`. This function fills ``layers`` and ``n_steps`` when a third-party
    ``simulate`` leaves them out.

    Parameters
    ----------
    estimator : fitted estimator with ``simulate``, Pipeline holding one, or fitted search
    X : array-like

    Returns
    -------
    dict

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.metrics import record_activity
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SurrogateSNNClassifier((8,), n_steps=5, max_iter=2, random_state=0).fit(X, y)
    >>> act = record_activity(clf, X[:3])
    >>> act["layers"], act["spikes"][0].shape, act["output"].shape
    (['hidden_0', 'output'], (3, 5, 8), (3, 3))
    """
    est, X = final_estimator(estimator, X)
    if not hasattr(est, "simulate"):
        raise TypeError(
            f"{type(est).__name__} has no simulate(X) method, so its activity cannot be recorded; "
            f"simulate(X) must return {{'spikes': [per layer (n_samples, n_steps, n_units)], "
            f"'membrane': [...], 'output': ...}}.")
    check_is_fitted(est)
    act = dict(est.simulate(X))
    if "spikes" not in act:
        raise TypeError(f"{type(est).__name__}.simulate(X) returned no 'spikes' entry (keys {sorted(act)}).")
    act["spikes"] = [np.asarray(s) for s in act["spikes"]]
    if "layers" not in act:
        act["layers"] = [f"layer_{i}" for i in range(max(len(act["spikes"]), len(act.get("membrane", []))))]
    if "n_steps" not in act:
        traces = act["spikes"] or act.get("membrane", [])
        act["n_steps"] = int(np.asarray(traces[0]).shape[1]) if len(traces) else 0
    return act


def _fan_out(W):
    """Non-zero outgoing weights of every presynaptic neuron of a (n_post, n_pre) matrix."""
    W = W.detach().cpu() if isinstance(W, torch.Tensor) else torch.as_tensor(np.asarray(W))
    return (W != 0).sum(0).double().numpy()


def input_events(x):
    """Non-zero input values per sample and channel of an encoded batch, and whether it is binary.

    Parameters
    ----------
    x : Tensor (n_steps, batch, n_in) or a sparse event list
        The encoded input a network receives. A constant current (a stride-0 time axis) is
        counted once, as it is projected once; an event list (``batch``, ``neuron``,
        ``batch_size``, ``n_neurons`` attributes) counts one spike per entry.

    Returns
    -------
    counts : ndarray (batch, n_in)
    binary : bool

    Examples
    --------
    >>> import torch
    >>> from sklearn_snn.metrics import input_events
    >>> counts, binary = input_events(torch.tensor([[[1., 0.]], [[1., 1.]]]))
    >>> counts.tolist(), binary
    ([[2.0, 1.0]], True)
    """
    from ._core.encoding import is_static

    if isinstance(x, torch.Tensor):
        binary = bool(((x == 0) | (x == 1)).all())
        nz = (x[:1] if is_static(x) else x) != 0
        return nz.sum(0).double().cpu().numpy(), binary
    c = torch.zeros(x.batch_size * x.n_neurons, dtype=torch.float64)
    c.index_add_(0, (x.batch * x.n_neurons + x.neuron).cpu(), torch.ones(len(x.batch), dtype=torch.float64))
    return c.view(x.batch_size, x.n_neurons).numpy(), True


class SynapticOpCounter:
    """Counts synaptic operations of simulated batches by the rules of :mod:`sklearn_snn.metrics`.

    For ``simulate`` implementations: built once from the network's connections, called on every
    batch with the encoded input and the spike counts of the layers.

    Parameters
    ----------
    connections : list of (target, source, weight)
        ``weight`` (n_post, n_pre) feeds layer ``target`` from layer ``source`` (``-1``: the
        input). Layers are numbered as in ``simulate``'s ``layers``.

    Attributes
    ----------
    ann_macs : ndarray (n_layers,)
        Non-zero weights feeding each layer: the equivalent ANN's MACs per forward pass.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_snn.metrics import SynapticOpCounter
    >>> counter = SynapticOpCounter([(0, -1, np.ones((2, 3))), (1, 0, np.ones((4, 2)))])
    >>> ops = counter(torch.ones(5, 1, 3), [np.array([[3.0, 0.0]])])
    >>> ops["synops"].tolist(), counter.ann_macs.tolist()
    ([[30.0, 12.0]], [6.0, 8.0])
    """

    def __init__(self, connections):
        self.n_layers = max(t for t, _, _ in connections) + 1
        self.connections = [(int(t), int(s), _fan_out(W)) for t, s, W in connections]
        self.ann_macs = np.zeros(self.n_layers)
        for t, _, fan in self.connections:
            self.ann_macs[t] += fan.sum()

    def __call__(self, x, spike_counts):
        """``synops``, ``macs`` (batch, n_layers) and ``input_spikes`` (batch,) of one batch.

        ``spike_counts[i]`` is (batch, n_units): the spikes of layer ``i`` summed over time.
        """
        in_counts, binary = input_events(x)
        n = in_counts.shape[0]
        synops, macs = np.zeros((n, self.n_layers)), np.zeros((n, self.n_layers))
        for target, source, fan in self.connections:
            if source < 0:
                (synops if binary else macs)[:, target] += in_counts @ fan
            else:
                synops[:, target] += np.asarray(spike_counts[source], dtype=float) @ fan
        input_spikes = in_counts.sum(1) if binary else np.full(n, np.nan)
        return {"synops": synops, "macs": macs, "input_spikes": input_spikes}


def _from_activity(act):
    """The per-layer tallies of :func:`_summarise` from a recorded activity."""
    spikes = act["spikes"]
    layers = list(act["layers"])
    n = int(np.asarray(act["output"]).shape[0]) if "output" in act else int(spikes[0].shape[0])
    counts = [s.sum(1).astype(float) for s in spikes]
    widths = [s.shape[2] for s in spikes]
    if len(layers) > len(widths) and "output" in act:
        widths.append(int(np.asarray(act["output"]).reshape(n, -1).shape[1]))
    layers = layers[:len(widths)]
    notes = []
    if "synops" in act and "macs" in act and "ann_macs" in act:
        synops = np.asarray(act["synops"], dtype=float)[:, :len(layers)]
        macs = np.asarray(act["macs"], dtype=float)[:, :len(layers)]
        annm = np.asarray(act["ann_macs"], dtype=float)[:len(layers)]
    else:
        notes.append("simulate(X) reports no operation counts: spike counts and rates only")
        synops, macs, annm = np.zeros((n, len(layers))), np.zeros((n, len(layers))), np.zeros(len(layers))
    inp = np.asarray(act.get("input_spikes", np.full(n, np.nan)), dtype=float)
    return dict(layers=layers, widths=widths, counts=counts, n=n, n_steps=int(act["n_steps"]), synops=synops,
                macs=macs, ann_macs=annm, input_spikes=float(inp.mean()) if inp.size else float("nan"),
                notes=notes)


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
