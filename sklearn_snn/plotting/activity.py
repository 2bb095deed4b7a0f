"""Displays of recorded network activity: spike rasters, membrane traces, firing rates.

They read ``estimator.simulate(X)`` through :func:`sklearn_snn.metrics.record_activity`.
"""

from __future__ import annotations

import numpy as np

from ._base import get_axes, select_layers, take_sample

__all__ = ["SpikeRasterDisplay", "MembraneTraceDisplay", "FiringRateDisplay"]


# ------------------------------------------------------------------------------------------
class SpikeRasterDisplay:
    """Spike raster (time step against neuron) of one sample, one panel per layer.

    Parameters
    ----------
    spikes : list of ndarray of shape (n_steps, n_units)
        Spike trains of each layer for one sample (non-zero = spike).
    layer_names : list of str, default=None
        Panel titles; ``'layer_<i>'`` when None.

    Attributes
    ----------
    scatters_ : list of matplotlib PathCollection
        One per panel; panel ``i`` has exactly as many points as layer ``i`` has spikes.
    axes_ : list of matplotlib Axes
    ax_ : matplotlib Axes
        The first panel.
    figure_ : matplotlib Figure

    See Also
    --------
    MembraneTraceDisplay : Membrane potentials of chosen neurons.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_snn.plotting import SpikeRasterDisplay
    >>> s = np.zeros((10, 4)); s[[1, 3, 5], [0, 2, 2]] = 1
    >>> disp = SpikeRasterDisplay([s], ["hidden"]).plot()
    >>> len(disp.scatters_[0].get_offsets())
    3
    """

    def __init__(self, spikes, layer_names=None):
        self.spikes = [np.asarray(s) for s in spikes]
        self.layer_names = list(layer_names) if layer_names is not None else \
            [f"layer_{i}" for i in range(len(self.spikes))]

    def plot(self, ax=None, *, marker="|", color="black", markersize=None, **kwargs):
        """Draw the raster.

        Parameters
        ----------
        ax : matplotlib Axes or sequence of Axes, default=None
            One Axes per layer; None makes a new figure with stacked panels.
        marker, color, markersize :
            Passed to :meth:`~matplotlib.axes.Axes.scatter` (``markersize`` as ``s``).
        **kwargs :
            More keyword arguments for ``scatter``.

        Returns
        -------
        self
        """
        fig, axes = get_axes(ax, "SpikeRasterDisplay.plot", len(self.spikes))
        self.scatters_ = []
        for a, s, name in zip(axes, self.spikes, self.layer_names):
            t, n = np.nonzero(s)
            sc = a.scatter(t, n, marker=marker, c=color, s=markersize if markersize is not None else 30,
                           linewidths=1.0, **kwargs)
            a.set_ylabel(f"{name}\nneuron")
            a.set_xlim(-0.5, s.shape[0] - 0.5)
            a.set_ylim(-0.5, s.shape[1] - 0.5)
            self.scatters_.append(sc)
        axes[-1].set_xlabel("time step")
        self.axes_, self.ax_, self.figure_ = axes, axes[0], fig
        return self

    @classmethod
    def from_estimator(cls, estimator, X, *, sample=0, layers="all", ax=None, **kwargs):
        """Simulate a fitted SNN on ``X`` and draw the raster of one sample.

        Parameters
        ----------
        estimator : fitted SNN estimator (or Pipeline / search ending in one)
            Anything :func:`~sklearn_snn.metrics.spike_stats` accepts.
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
            Only ``X[sample]`` is simulated.
        sample : int, default=0
            Row of ``X`` to simulate, in ``[-len(X), len(X) - 1]`` (IndexError otherwise).
        layers : 'all', int, str or list, default='all'
            Spiking layers to draw (indices or names).
        ax : Axes or list of Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        SpikeRasterDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_iris
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.plotting import SpikeRasterDisplay
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SurrogateSNNClassifier((8,), max_iter=2, random_state=0).fit(X, y)
        >>> disp = SpikeRasterDisplay.from_estimator(clf, X, sample=3)
        >>> disp.layer_names
        ['hidden_0']
        """
        from ..metrics import record_activity

        X = take_sample(X, sample)
        act = record_activity(estimator, X)
        names = list(act["layers"])[: len(act["spikes"])]
        idx = select_layers(names, layers)
        disp = cls([act["spikes"][i][0] for i in idx], [names[i] for i in idx])
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_spikes(cls, spikes, *, layer_names=None, ax=None, **kwargs):
        """Draw given spike trains, e.g. the input of a 3D data set.

        Parameters
        ----------
        spikes : ndarray of shape (n_steps, n_units) or list of them
        layer_names : list of str, default=None
        ax : Axes or list of Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        SpikeRasterDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn_snn.datasets import make_randman
        >>> from sklearn_snn.plotting import SpikeRasterDisplay
        >>> X, y = make_randman(n_samples=4, n_units=6, n_steps=20, random_state=0)
        >>> disp = SpikeRasterDisplay.from_spikes(X[0], layer_names=["input"])
        >>> len(disp.scatters_[0].get_offsets())   # every input neuron fires once
        6
        """
        if isinstance(spikes, np.ndarray) and spikes.ndim == 2:
            spikes = [spikes]
        return cls(spikes, layer_names).plot(ax=ax, **kwargs)



# ------------------------------------------------------------------------------------------
class MembraneTraceDisplay:
    """Membrane potential over time of chosen neurons, with their spikes and the threshold.

    Parameters
    ----------
    membrane : ndarray of shape (n_steps, n_neurons)
        Membrane traces (before reset) of the chosen neurons.
    neurons : sequence of int
        Indices of the neurons, for the legend.
    spikes : ndarray of shape (n_steps, n_neurons) or None, default=None
        Spikes of the same neurons, marked on the traces.
    threshold : float or None, default=None
        Drawn as a dashed horizontal line.
    layer_name : str, default=''

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        One trace per neuron.
    spike_markers_ : list of matplotlib Line2D
        One marker line per neuron with spikes (empty without ``spikes``); its points are the
        spikes of that neuron.
    threshold_line_ : matplotlib Line2D or None
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_snn.plotting import MembraneTraceDisplay
    >>> v = np.cumsum(np.full((8, 2), 0.3), axis=0)
    >>> disp = MembraneTraceDisplay(v, [0, 1], threshold=1.0).plot()
    >>> len(disp.lines_)
    2
    """

    def __init__(self, membrane, neurons, *, spikes=None, threshold=None, layer_name=""):
        self.membrane = np.asarray(membrane)
        self.neurons = list(neurons)
        self.spikes = None if spikes is None else np.asarray(spikes)
        self.threshold = threshold
        self.layer_name = layer_name

    def plot(self, ax=None, **kwargs):
        """Draw the traces.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.plot` for every trace.

        Returns
        -------
        self
        """
        fig, (ax,) = get_axes(ax, "MembraneTraceDisplay.plot")
        t = np.arange(self.membrane.shape[0])
        self.lines_, self.spike_markers_ = [], []
        for k, n in enumerate(self.neurons):
            (line,) = ax.plot(t, self.membrane[:, k], label=f"neuron {n}", **kwargs)
            self.lines_.append(line)
            if self.spikes is not None:
                ts = np.nonzero(self.spikes[:, k])[0]
                if ts.size:
                    (m,) = ax.plot(ts, self.membrane[ts, k], "o", color=line.get_color(), markersize=4)
                    self.spike_markers_.append(m)
        self.threshold_line_ = None
        if self.threshold is not None:
            self.threshold_line_ = ax.axhline(self.threshold, color="grey", linestyle="--", label="threshold")
        ax.set_xlabel("time step")
        ax.set_ylabel("membrane potential" + (f" ({self.layer_name})" if self.layer_name else ""))
        ax.legend(loc="best", fontsize="small")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_estimator(cls, estimator, X, *, sample=0, layer=0, neurons=None, ax=None, **kwargs):
        """Simulate a fitted SNN on one sample and draw membrane traces of a layer.

        Reads ``estimator.simulate`` (every estimator of the package has it).

        Parameters
        ----------
        estimator : fitted SNN estimator (or Pipeline / search ending in one)
        X : array-like
            Only ``X[sample]`` is simulated.
        sample : int, default=0
            Row of ``X`` to simulate, in ``[-len(X), len(X) - 1]`` (IndexError otherwise).
        layer : int, default=0
            Index into ``simulate(X)['membrane']`` (the readout is the last one, ``-1``).
        neurons : sequence of int or None, default=None
            None picks up to 5 neurons, the most active first.
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        MembraneTraceDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_iris
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.plotting import MembraneTraceDisplay
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SurrogateSNNClassifier((8,), max_iter=2, random_state=0).fit(X, y)
        >>> disp = MembraneTraceDisplay.from_estimator(clf, X, neurons=[0, 1])
        >>> len(disp.lines_), disp.threshold
        (2, 1.0)
        """
        from ..metrics import final_estimator, record_activity

        est, _ = final_estimator(estimator)
        act = record_activity(estimator, take_sample(X, sample))
        if "membrane" not in act:
            raise TypeError(f"{type(est).__name__} does not record membrane potentials (its simulate(X) has no "
                            "'membrane' entry).")
        mems = act["membrane"]
        if not -len(mems) <= layer < len(mems):
            raise ValueError(f"layer={layer} out of range: the network has {len(mems)} membrane layers.")
        layer = layer % len(mems)
        v = mems[layer][0]
        s = act["spikes"][layer][0] if layer < len(act["spikes"]) else None
        if neurons is None:
            order = np.argsort(-(s.sum(0) if s is not None else v.max(0)), kind="stable")
            neurons = sorted(order[: min(5, v.shape[1])].tolist())
        neurons = [int(n) for n in neurons]
        if any(not 0 <= n < v.shape[1] for n in neurons):
            raise ValueError(f"neurons must lie in [0, {v.shape[1]}), got {neurons}.")
        spiking = s is not None
        thr = float(getattr(est, "threshold", 1.0)) if spiking else None
        names = act.get("layers", [])
        name = names[layer] if layer < len(names) else ("output" if layer == len(mems) - 1 else f"layer_{layer}")
        disp = cls(v[:, neurons], neurons, spikes=s[:, neurons] if spiking else None, threshold=thr,
                   layer_name=name)
        return disp.plot(ax=ax, **kwargs)


# ------------------------------------------------------------------------------------------
class FiringRateDisplay:
    """Histogram of the firing rates (spikes per neuron per step) of every spiking layer.

    Parameters
    ----------
    rates : list of ndarray
        Per-neuron firing rates of each layer.
    layer_names : list of str, default=None

    Attributes
    ----------
    counts_ : list of ndarray
        Histogram counts per layer (they sum to the layer's number of neurons).
    patches_ : list
        The bar containers drawn by :meth:`~matplotlib.axes.Axes.hist`, one per layer.
    bins_ : ndarray
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    sklearn_snn.metrics.spike_stats : The numbers behind the histogram.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_snn.plotting import FiringRateDisplay
    >>> disp = FiringRateDisplay([np.array([0.0, 0.1, 0.1, 0.5])], ["hidden"]).plot(bins=5)
    >>> int(disp.counts_[0].sum())
    4
    """

    def __init__(self, rates, layer_names=None):
        self.rates = [np.asarray(r, dtype=float) for r in rates]
        self.layer_names = list(layer_names) if layer_names is not None else \
            [f"layer_{i}" for i in range(len(self.rates))]

    def plot(self, ax=None, *, bins=20, alpha=0.6, **kwargs):
        """Draw overlaid histograms, one per layer, on common bins over [0, max rate].

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        bins : int, default=20
        alpha : float, default=0.6
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.hist`.

        Returns
        -------
        self
        """
        fig, (ax,) = get_axes(ax, "FiringRateDisplay.plot")
        top = max([float(r.max()) for r in self.rates if r.size] + [1e-3])
        self.bins_ = np.linspace(0.0, top, int(bins) + 1)
        self.counts_, self.patches_ = [], []
        for r, name in zip(self.rates, self.layer_names):
            counts, _, patches = ax.hist(r, bins=self.bins_, alpha=alpha, label=name, **kwargs)
            self.counts_.append(np.asarray(counts))
            self.patches_.append(patches)
        ax.set_xlabel("firing rate (spikes per neuron per step)")
        ax.set_ylabel("number of neurons")
        ax.legend(loc="best", fontsize="small")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_estimator(cls, estimator, X, *, ax=None, **kwargs):
        """Measure per-neuron firing rates on ``X`` (:func:`~sklearn_snn.metrics.spike_stats`).

        Parameters
        ----------
        estimator : fitted SNN estimator (or Pipeline / search ending in one)
        X : array-like
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        FiringRateDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_iris
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.plotting import FiringRateDisplay
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SurrogateSNNClassifier((8,), max_iter=2, random_state=0).fit(X, y)
        >>> int(FiringRateDisplay.from_estimator(clf, X).counts_[0].sum())
        8
        """
        from ..metrics import spike_stats

        stats = spike_stats(estimator, X)
        names = stats.layers[: len(stats.neuron_firing_rates)]
        return cls(stats.neuron_firing_rates, names).plot(ax=ax, **kwargs)


