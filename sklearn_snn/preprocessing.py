"""Preprocessing of spiking data: from event streams to the dense spike tensors the networks take.

- :class:`EventBinner`: bins a list of per-sample event streams (address-event representation) into
  ``(n_samples, n_steps, n_channels)`` uint8 spike counts on one time grid shared by all samples.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

__all__ = ["EventBinner"]

_TIME_FIELDS = ("t",)
_CHANNEL_FIELDS = ("channel", "x")
_POLARITY_FIELDS = ("p",)
_MAX_COUNT = np.iinfo(np.uint8).max


class EventBinner(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Bin event streams into ``(n_samples, n_steps, n_channels)`` uint8 spike counts.

    Event-based data (neuromorphic audio such as SHD, DVS recordings flattened to one channel axis,
    the output of :func:`~sklearn_snn.datasets.make_randman_events`) comes as one variable-length
    list of events per sample. ``EventBinner`` counts the events of each sample in the time steps
    of **one fixed grid** shared by every sample (learned in :meth:`fit` or given), so that samples
    of different lengths keep their timing: a sample that ends early is padded with empty steps,
    never stretched to its own length. The result is the 3D spike input every estimator of the
    package takes, so the binner can lead a :class:`~sklearn.pipeline.Pipeline` and its parameters
    can be tuned by :class:`~sklearn.model_selection.GridSearchCV` (``bin__bin_width``).

    **Input.** ``X`` is a list (or tuple, or 1-D object array) with one entry per sample, each
    either

    - a structured NumPy array with the fields ``t`` (time), ``channel`` or ``x`` (the channel
      index: exactly one of the two) and optionally ``p`` (polarity); other fields are ignored,
      except ``y``: 2-D sensor events (``x``, ``y``) are refused, flatten them into one
      ``channel`` field first (e.g. ``channel = y * width + x``);
    - or a plain numeric array of shape ``(n_events, 2)`` or ``(n_events, 3)`` whose columns are
      time, channel and (optionally) polarity. A sample with no events (shape ``(0,)``,
      ``(0, 2)`` or a structured array of length 0) gives all zeros.

    Times may be integers (e.g. microseconds) or floats and need not be sorted: binning does not
    depend on the order of the events. Channels must be non-negative integers (integer-valued
    floats are accepted). A polarity ``p > 0`` is ON and ``p <= 0`` is OFF, so 0/1, -1/+1 and bool
    polarities all work.

    **Time grid.** Step ``k`` is the half-open interval
    ``[t_start + k * bin_width_, t_start + (k + 1) * bin_width_)`` and the grid ends at
    ``t_start + duration_``. An event at or after the end of the grid is dropped; every call of
    :meth:`transform` that drops events emits one :class:`UserWarning` with the number of events
    and of samples affected. An event before ``t_start`` is an error. When ``duration`` is None it is
    learned from the training samples as the shortest grid that holds their latest event:

    - with ``bin_width``: ``n_steps_ = floor((t_max - t_start) / bin_width) + 1`` steps;
    - with ``n_steps``: ``bin_width_ = (t_max - t_start) / (n_steps - 1)``, so the latest training
      event opens the last step (for ``n_steps=1`` the one step ends just after it).

    With integer time stamps ``0 .. T-1`` both ``bin_width=1`` and ``n_steps=T`` thus give the
    ``T`` steps one expects. When ``duration`` and ``bin_width`` are both given and ``duration`` is
    not a multiple of ``bin_width``, the last step is shorter (it ends at ``t_start + duration``).

    **Channels.** ``channel_pool=k`` sums groups of ``k`` adjacent channels (the last group holds
    the remainder when ``k`` does not divide the number of channels): 700 channels with ``k=5``
    give 140. ``polarity='split'`` then doubles them: the OFF events fill channels
    ``[0, n)``, the ON events ``[n, 2n)``, where ``n`` is the number of pooled channels.

    **Counts** are stored as uint8 and saturate at 255 (a larger count in one step and channel
    becomes 255); use a smaller ``bin_width`` or no pooling if that matters.

    Parameters
    ----------
    bin_width : float > 0 or None, default=None
        Width of a time step, in the units of the event times. Give exactly one of ``bin_width``
        and ``n_steps``.
    n_steps : int >= 1 or None, default=None
        Number of time steps of the grid. Give exactly one of ``bin_width`` and ``n_steps``.
    duration : float > 0 or None, default=None
        Length of the time grid. None: learned in :meth:`fit` from the latest event of the training
        samples (see above), one grid for all samples.
    n_channels : int >= 1 or None, default=None
        Number of input channels. None: learned in :meth:`fit` as the largest channel index of the
        training samples + 1. A channel index at or above it is an error in :meth:`fit` (when
        given) and in :meth:`transform`.
    polarity : {'merge', 'split'}, default='merge'
        ``'merge'`` ignores the polarity; ``'split'`` counts OFF and ON events in separate
        channels (the samples then need a polarity).
    channel_pool : int >= 1, default=1
        Sum groups of this many adjacent channels.
    t_start : float, default=0.0
        Start of the time grid.

    Attributes
    ----------
    n_steps_ : int
        Number of time steps of the output.
    bin_width_ : float
        Width of a time step.
    duration_ : float
        Length of the time grid; events at ``t >= t_start + duration_`` are dropped.
    n_channels_in_ : int
        Number of input channels (given or learned).
    n_channels_out_ : int
        Number of output channels: ``ceil(n_channels_in_ / channel_pool)``, doubled by
        ``polarity='split'``.

    Notes
    -----
    ``n_features_in_`` is not set: an event list has no fixed number of features (the downstream
    estimator sets its own ``n_features_in_ = n_channels_out_`` from the 3D array).
    ``get_feature_names_out`` is not defined and ``set_output`` is not offered: the output is a
    3D array, which has no column names and no DataFrame form (``Pipeline.set_output(transform=
    'pandas')`` therefore raises for a pipeline holding the binner).

    The binning is vectorised: the events of all samples are concatenated with their sample index
    and counted with one :func:`numpy.unique` over the flat (sample, step, channel) index, so the
    memory used beyond the output is proportional to the number of events.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_snn.preprocessing import EventBinner
    >>> ev = np.dtype([("t", float), ("channel", int)])
    >>> X = [np.array([(0.1, 0), (0.3, 1), (0.35, 1)], dtype=ev),
    ...      np.array([(0.0, 2)], dtype=ev)]
    >>> binner = EventBinner(bin_width=0.2).fit(X)
    >>> binner.n_steps_, binner.n_channels_out_
    (2, 3)
    >>> binner.transform(X)[0]
    array([[1, 0, 0],
           [0, 2, 0]], dtype=uint8)
    >>> binner.transform([np.array([[0.25, 1.0], [0.1, 2.0]])]).shape   # (time, channel) columns
    (1, 2, 3)
    """

    _parameter_constraints: dict = {
        "bin_width": [Interval(Real, 0, None, closed="neither"), None],
        "n_steps": [Interval(Integral, 1, None, closed="left"), None],
        "duration": [Interval(Real, 0, None, closed="neither"), None],
        "n_channels": [Interval(Integral, 1, None, closed="left"), None],
        "polarity": [StrOptions({"merge", "split"})],
        "channel_pool": [Interval(Integral, 1, None, closed="left")],
        "t_start": [Interval(Real, None, None, closed="neither")],
    }

    def __init__(self, bin_width=None, n_steps=None, *, duration=None, n_channels=None, polarity="merge",
                 channel_pool=1, t_start=0.0):
        self.bin_width = bin_width
        self.n_steps = n_steps
        self.duration = duration
        self.n_channels = n_channels
        self.polarity = polarity
        self.channel_pool = channel_pool
        self.t_start = t_start

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a list of per-sample event arrays, neither a 2D nor a 3D array
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []
        tags.requires_fit = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the time grid and the number of channels from the training event streams.

        Parameters
        ----------
        X : list of event arrays
            One structured or ``(n_events, 2|3)`` array per sample (see the class description).
        y : None
            Ignored.

        Returns
        -------
        self : EventBinner
        """
        if (self.bin_width is None) == (self.n_steps is None):
            raise ValueError(
                "EventBinner needs exactly one of bin_width and n_steps; got "
                f"bin_width={self.bin_width!r} and n_steps={self.n_steps!r}.")
        t_start = float(self.t_start)  # finite: the Interval constraint refuses NaN and inf
        ev = _gather_events(X, t_start=t_start, need_polarity=self.polarity == "split",
                            n_channels=self.n_channels)

        if self.n_channels is not None:
            n_channels = int(self.n_channels)
        elif ev.channel.size:
            n_channels = int(ev.channel.max()) + 1
        else:
            raise ValueError("EventBinner cannot learn n_channels: the training samples hold no events. "
                             "Pass n_channels.")

        if self.duration is not None:
            duration = float(self.duration)
            if self.bin_width is not None:
                bin_width = float(self.bin_width)
                # tolerate float round-off such as 1.0 / 0.1 = 10.000000000000002
                n_steps = max(1, math.ceil(duration / bin_width * (1 - 1e-12)))
            else:
                n_steps = int(self.n_steps)
                bin_width = duration / n_steps
        else:
            t_max = float(ev.t.max()) - t_start if ev.t.size else None
            if self.bin_width is not None:
                if t_max is None:
                    raise ValueError("EventBinner cannot learn duration: the training samples hold no events. "
                                     "Pass duration.")
                bin_width = float(self.bin_width)
                n_steps = math.floor(t_max / bin_width) + 1
                duration = n_steps * bin_width
                # the latest event must lie inside the grid despite round-off in the division
                if not t_max < duration:
                    n_steps += 1
                    duration = n_steps * bin_width
            else:
                n_steps = int(self.n_steps)
                if t_max is None or t_max <= 0:
                    raise ValueError(
                        "EventBinner cannot learn duration with n_steps: the training samples hold no event "
                        "after t_start. Pass duration, or bin_width instead of n_steps.")
                if n_steps == 1:
                    duration = float(np.nextafter(t_max, np.inf))
                    bin_width = duration
                else:
                    bin_width = t_max / (n_steps - 1)
                    duration = n_steps * bin_width

        self.n_steps_ = int(n_steps)
        self.bin_width_ = float(bin_width)
        self.duration_ = float(duration)
        self.n_channels_in_ = n_channels
        n_pooled = -(-n_channels // int(self.channel_pool))
        self.n_channels_out_ = n_pooled * (2 if self.polarity == "split" else 1)
        return self

    def transform(self, X):
        """Bin the event streams of ``X`` on the fitted grid.

        Parameters
        ----------
        X : list of event arrays
            One structured or ``(n_events, 2|3)`` array per sample (see the class description).

        Returns
        -------
        spikes : ndarray of shape (n_samples, ``n_steps_``, ``n_channels_out_``), dtype uint8
            Event counts per step and channel, saturated at 255.

        Warns
        -----
        UserWarning
            Once per call when events lie at or after ``t_start + duration_`` (they are dropped).
        """
        check_is_fitted(self, "n_steps_")
        t_start = float(self.t_start)
        split = self.polarity == "split"
        ev = _gather_events(X, t_start=t_start, need_polarity=split, n_channels=self.n_channels_in_,
                            fitted=self.n_channels is None)
        n_samples, T, C = ev.n_samples, self.n_steps_, self.n_channels_out_
        out = np.zeros((n_samples, T, C), dtype=np.uint8)
        rel = ev.t - t_start
        inside = rel < self.duration_
        n_dropped = int(rel.size - np.count_nonzero(inside))
        if n_dropped:
            n_hit = np.unique(ev.sample[~inside]).size
            warnings.warn(
                f"EventBinner dropped {n_dropped} event(s) in {n_hit} of {n_samples} sample(s): they lie at or "
                f"after the end of the time grid (t >= t_start + duration_ = {t_start + self.duration_:g}). "
                "Pass a larger duration to keep them.", UserWarning, stacklevel=2)
        if not np.any(inside):
            return out
        step = np.floor(rel[inside] / self.bin_width_).astype(np.int64)
        np.minimum(step, T - 1, out=step)  # round-off can push an event of the last step to T
        chan = ev.channel[inside] // int(self.channel_pool)
        if split:
            n_pooled = C // 2
            chan = chan + n_pooled * (ev.polarity[inside] > 0)
        flat = (ev.sample[inside] * T + step) * C + chan
        idx, counts = np.unique(flat, return_counts=True)
        out.reshape(-1)[idx] = np.minimum(counts, _MAX_COUNT).astype(np.uint8)
        return out


class _Events:
    """The events of all samples, concatenated, with the index of the sample of each event."""

    __slots__ = ("channel", "n_samples", "polarity", "sample", "t")

    def __init__(self, n_samples, sample, t, channel, polarity):
        self.n_samples, self.sample, self.t, self.channel, self.polarity = n_samples, sample, t, channel, polarity


def _as_samples(X):
    if isinstance(X, np.ndarray):
        if X.dtype == object and X.ndim == 1:
            return list(X)
        if X.dtype != object and X.ndim == 3:  # equal-length plain (n_events, 2|3) samples
            return list(X)
        raise ValueError(
            "EventBinner takes X as a list (or 1-D object array) with one event array per sample; got an "
            f"ndarray of shape {X.shape} and dtype {X.dtype}. Wrap a single sample in a list: [events].")
    if isinstance(X, (str, bytes, dict)) or not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
        raise ValueError("EventBinner takes X as a list (or 1-D object array) with one event array per sample; "
                         f"got {type(X).__name__}.")
    return list(X)


def _split_sample(i, s, need_polarity):
    """(t, channel, polarity or None, channel field name) of sample ``i``."""
    s = np.asarray(s)
    names = s.dtype.names
    if names is not None:
        if s.ndim != 1:
            raise ValueError(f"EventBinner: sample {i} is a structured array of shape {s.shape}; expected 1-D.")
        if "t" not in names:
            raise ValueError(f"EventBinner: sample {i} has no time field 't' (fields: {names}); the accepted fields "
                             "are 't' (time), 'channel' or 'x' (channel) and 'p' (polarity).")
        if "y" in names:
            raise ValueError(f"EventBinner: sample {i} has fields 'x' and 'y' (2-D sensor events); flatten them into "
                             "one 'channel' field first, e.g. channel = y * width + x.")
        cf = [f for f in _CHANNEL_FIELDS if f in names]
        if len(cf) != 1:
            raise ValueError(
                f"EventBinner: sample {i} needs exactly one channel field, 'channel' or 'x'; its fields are {names}.")
        cf = cf[0]
        p = s["p"] if "p" in names else None
        if need_polarity and p is None:
            raise ValueError(f"EventBinner: sample {i} has no polarity field 'p' (fields: {names}), which "
                             "polarity='split' needs.")
        return s["t"], s[cf], p, "t", cf, "p"
    if s.ndim == 1 and s.size == 0:
        s = s.reshape(0, 2)
    if s.ndim != 2 or s.shape[1] not in (2, 3):
        raise ValueError(f"EventBinner: sample {i} has shape {s.shape}; expected a structured array or a plain "
                         "(n_events, 2) or (n_events, 3) array of (time, channel[, polarity]).")
    if need_polarity and s.shape[1] != 3:
        raise ValueError(f"EventBinner: sample {i} has no polarity (column 2, field 'p'), which polarity='split' "
                         "needs: give (n_events, 3) arrays.")
    p = s[:, 2] if s.shape[1] == 3 else None
    return s[:, 0], s[:, 1], p, "t (column 0)", "channel (column 1)", "p (column 2)"


def _gather_events(X, *, t_start, need_polarity, n_channels=None, fitted=False):
    """Validate every sample and concatenate their events. A loop over samples (not events) is
    needed to unpack the per-sample arrays; every check runs once on the concatenated events."""
    samples = _as_samples(X)
    if not samples:
        raise ValueError("EventBinner got an empty list of samples; X needs at least one sample.")
    ts, cs, ps, lengths, labels = [], [], [], [], []
    for i, s in enumerate(samples):
        t, c, p, tl, cl, pl = _split_sample(i, s, need_polarity)
        checks = [(t, tl, "iuf"), (c, cl, "iuf")] + ([(p, pl, "iufb")] if need_polarity else [])
        for arr, label, kinds in checks:
            if arr.dtype.kind not in kinds:
                raise ValueError(f"EventBinner: sample {i}, field '{label}' has dtype {arr.dtype}; expected "
                                 + ("integers or floats." if kinds == "iuf" else "numbers or bools."))
        ts.append(t)
        cs.append(c)
        if need_polarity:
            ps.append(p)
        lengths.append(t.size)
        labels.append((tl, cl, pl))
    sample = np.repeat(np.arange(len(samples), dtype=np.int64), lengths)
    t = np.concatenate([np.asarray(a, dtype=np.float64) for a in ts])
    craw = np.concatenate([np.asarray(a, dtype=np.float64) if a.dtype.kind == "f" else np.asarray(a, np.int64)
                           for a in cs])

    def fail(mask, field, what):
        k = int(np.flatnonzero(mask)[0])
        i = int(sample[k])
        name = labels[i][field]
        raise ValueError(f"EventBinner: sample {i}, field '{name}': {what(k)}.")

    bad = ~np.isfinite(t)
    if bad.any():
        fail(bad, 0, lambda k: f"time {t[k]} is not finite (NaN or inf)")
    bad = t < t_start
    if bad.any():
        fail(bad, 0, lambda k: f"time {t[k]:g} lies before t_start={t_start:g} (times must be >= t_start)")
    if craw.dtype.kind == "f":
        bad = ~np.isfinite(craw) | (craw != np.round(craw))
        if bad.any():
            fail(bad, 1, lambda k: f"channel {craw[k]} is not an integer")
    if craw.size and craw.min() < 0:
        fail(craw < 0, 1, lambda k: f"channel {craw[k]:g} is negative")
    channel = craw.astype(np.int64)
    if n_channels is not None and channel.size and channel.max() >= n_channels:
        hint = (" (learned in fit as the largest training channel + 1; pass n_channels to fix it)" if fitted else "")
        fail(channel >= n_channels, 1, lambda k: f"channel {channel[k]} is out of range for n_channels="
             f"{n_channels}{hint}")
    polarity = None
    if need_polarity:
        polarity = np.concatenate([np.asarray(a, dtype=np.float64) for a in ps])
        bad = np.isnan(polarity)
        if bad.any():
            fail(bad, 2, lambda k: "polarity is NaN")
    return _Events(len(samples), sample, t, channel, polarity)
