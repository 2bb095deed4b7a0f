"""Event streams as EventProp input: exact event times, no binning.

An event stream is a list (or tuple, or 1-D object array) with one structured NumPy array per
sample, with a time field ``t`` (integers or floats) and a unit field ``x`` (or ``channel``, as
:class:`sklearn_snn.preprocessing.EventBinner` takes them; exactly one of the two) of integers.
:func:`check_event_streams` validates all samples at once and concatenates their events
(:class:`EventSet`: memory grows with the number of events); :meth:`EventSet.encode` turns a
batch into the simulator's :class:`~sklearn_snn._core.eventprop.SpikeEvents`, every event at
its exact time (its step ``floor(t / dt)`` and its offset inside the step).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .eventprop import SpikeEvents

UNIT_FIELDS = ("x", "channel")


def is_event_stream(X) -> bool:
    """True when ``X`` is a non-empty list / tuple / 1-D object array of structured arrays.

    Examples
    --------
    >>> import numpy as np
    >>> ev = np.array([(0.5, 1)], dtype=[("t", "f8"), ("x", "i4")])
    >>> is_event_stream([ev]), is_event_stream(np.zeros((2, 3)))
    (True, False)
    """
    if isinstance(X, np.ndarray):
        if X.dtype != object or X.ndim != 1:
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    return len(X) > 0 and isinstance(X[0], np.ndarray) and X[0].dtype.names is not None


class EventSet:
    """The events of ``n_samples`` samples, concatenated: sample ``s`` owns
    ``times[ptr[s]:ptr[s + 1]]`` (float64, in the estimator's time unit) and the same slice of
    ``units`` (int64).

    ``len`` and ``take(indices)`` (a batch source for the training loop), ``shape[0]`` and
    slicing (for batched inference) hand out :class:`EventSet` subsets; :meth:`encode` makes the
    simulator's input of a batch.

    Examples
    --------
    >>> import numpy as np
    >>> es = EventSet(np.array([0.5, 2.25, 1.0]), np.array([0, 1, 1]), np.array([0, 2, 3]))
    >>> len(es), es.take([1]).times.tolist()
    (2, [1.0])
    >>> sp = es.encode(n_units=2, dt=1.0, n_steps=4)
    >>> sp.step.tolist(), sp.neuron.tolist(), sp.offset.tolist()  # bias spikes (unit 2) first
    ([0, 0, 0, 1, 2], [2, 2, 0, 1, 1], [0.0, 0.0, 0.5, 0.0, 0.25])
    """

    ndim = 3  # read as spike input, as 3D arrays are

    def __init__(self, times, units, ptr):
        self.times, self.units, self.ptr = times, units, np.asarray(ptr, dtype=np.int64)

    def __len__(self):
        return len(self.ptr) - 1

    @property
    def shape(self):
        return (len(self),)

    @property
    def n_events(self):
        return int(self.ptr[-1] - self.ptr[0])

    def take(self, indices):
        idx = indices.cpu().numpy() if torch.is_tensor(indices) else np.asarray(indices, dtype=np.int64)
        counts = self.ptr[idx + 1] - self.ptr[idx]
        ptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        # positions of every event of the chosen samples, without a loop over samples
        pos = np.repeat(self.ptr[idx] - ptr[:-1], counts) + np.arange(ptr[-1])
        return EventSet(self.times[pos], self.units[pos], ptr)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(np.atleast_1d(np.asarray(key)))

    def encode(self, n_units, dt, n_steps):
        """:class:`SpikeEvents` of these samples on a grid of ``n_steps`` steps of ``dt``, plus
        one bias spike (unit ``n_units``) at ``t = 0`` per sample. Events at or after
        ``n_steps * dt`` are dropped (:func:`check_event_streams` warns about them)."""
        B = len(self)
        a = self.ptr[0]
        t = self.times[a:self.ptr[-1]]
        b = np.repeat(np.arange(B, dtype=np.int64), np.diff(self.ptr))
        keep = t < n_steps * dt
        t, b, f = t[keep], b[keep], self.units[a:self.ptr[-1]][keep]
        k = np.minimum(np.floor(t / dt).astype(np.int64), n_steps - 1)
        off = np.clip(t - k * dt, 0.0, math.nextafter(dt, 0.0))
        # within a step: by sample, then unit (the order of the 3D array path, so that events on the
        # grid give bit for bit the same simulation as the binned array), then time
        order = np.lexsort((off, f, b, k))
        k = np.concatenate([np.zeros(B, np.int64), k[order]])
        b = np.concatenate([np.arange(B, dtype=np.int64), b[order]])
        f = np.concatenate([np.full(B, n_units, np.int64), f[order]])
        off = np.concatenate([np.zeros(B), off[order]])
        order = np.argsort(k, kind="stable")
        return SpikeEvents(torch.from_numpy(k[order]), torch.from_numpy(b[order]), torch.from_numpy(f[order]),
                           torch.from_numpy(off[order]), n_steps, B, n_units + 1)


def check_event_streams(X, *, name, time_scale=1.0, n_units=None, dt=1.0, n_steps=None):
    """Validate event streams and concatenate them into an :class:`EventSet`.

    Times are divided by ``time_scale`` (the length of one time unit of the estimator in the
    units of the event times). ``n_units``: the number of input units learned in fit (a unit
    at or above it is an error); None in fit. ``n_steps``: the fitted grid; events at or after
    its end are dropped with one warning. Raises ValueError naming the sample and the problem.

    Examples
    --------
    >>> import numpy as np
    >>> ev = np.array([(0.5, 1), (3.0, 0)], dtype=[("t", "f8"), ("x", "i4")])
    >>> es = check_event_streams([ev, ev[:1]], name="est")
    >>> es.ptr.tolist(), es.units.tolist()
    ([0, 2, 3], [1, 0, 1])
    """
    if not is_event_stream(X):
        raise ValueError(f"{name} takes event streams as a list with one structured array (fields 't' and 'x') per "
                         "sample.")
    ts, us, lengths = [], [], []
    for i, s in enumerate(X):
        if not isinstance(s, np.ndarray) or s.dtype.names is None:
            raise ValueError(f"{name}: sample {i} of the event stream is a {type(s).__name__}, not a structured "
                             "array; give every sample as a structured array with fields 't' (time) and 'x' (unit), "
                             "e.g. np.array([(0.5, 3)], dtype=[('t', 'f8'), ('x', 'i4')]).")
        names = s.dtype.names
        if s.ndim != 1:
            raise ValueError(f"{name}: sample {i} is a structured array of shape {s.shape}; expected 1-D.")
        fields = [f for f in UNIT_FIELDS if f in names]
        if "t" not in names or len(fields) != 1 or "y" in names:
            raise ValueError(f"{name}: sample {i} has the fields {names}; an event needs a time field 't' and one "
                             "unit field 'x' (or 'channel'). 2-D sensor events (x, y) must be flattened into one "
                             "unit index first, e.g. x = y * width + x.")
        t, u = s["t"], s[fields[0]]
        if t.dtype.kind not in "iuf":
            raise ValueError(f"{name}: sample {i}, field 't' has dtype {t.dtype}; event times must be integers or "
                             "floats.")
        if u.dtype.kind not in "iu":
            raise ValueError(f"{name}: sample {i}, field '{fields[0]}' has dtype {u.dtype}; units must be integers "
                             "(the index of the input unit).")
        ts.append(t)
        us.append(u)
        lengths.append(t.size)
    ptr = np.zeros(len(X) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    times = np.concatenate([np.asarray(t, dtype=np.float64) for t in ts]) / float(time_scale)
    units = np.concatenate([np.asarray(u, dtype=np.int64) for u in us])

    def sample_of(mask):
        k = int(np.flatnonzero(mask)[0])
        return int(np.searchsorted(ptr, k, side="right") - 1), k

    bad = ~np.isfinite(times)
    if bad.any():
        i, k = sample_of(bad)
        raise ValueError(f"{name}: sample {i} has the event time {times[k] * time_scale} (NaN or inf); event times "
                         "must be finite.")
    bad = times < 0
    if bad.any():
        i, k = sample_of(bad)
        raise ValueError(f"{name}: sample {i} has the negative event time {times[k] * time_scale:g}; event times "
                         "must be >= 0 (the start of the simulation). Shift the times of your recording.")
    bad = units < 0
    if n_units is not None:
        bad |= units >= n_units
    if bad.any():
        i, k = sample_of(bad)
        rng = "must be >= 0" if n_units is None else (f"must lie in [0, {n_units}): the estimator was fitted on "
                                                       f"{n_units} input units")
        raise ValueError(f"{name}: sample {i} has the unit {units[k]}, out of range; units {rng}.")
    if n_steps is not None:
        late = times >= n_steps * dt
        if late.any():
            import warnings

            n_s = np.unique(np.searchsorted(ptr, np.flatnonzero(late), side="right")).size
            warnings.warn(f"{name}: {int(late.sum())} events of {n_s} samples lie at or after the end of the "
                          f"simulated time ({n_steps * dt:g} in the estimator's units, learned in fit from the latest "
                          "training event) and are dropped.", UserWarning, stacklevel=3)
    return EventSet(times, units, ptr)
