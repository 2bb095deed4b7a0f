"""Data generators for spiking tasks (nothing is downloaded).

- :func:`make_randman`: the random-manifold spike-timing task of Zenke & Vogels (2021);
- :func:`make_randman_events`: the same task as per-sample event streams (for
  :class:`~sklearn_snn.preprocessing.EventBinner`);
- :func:`make_yinyang`: the Yin-Yang task of Kriener et al. (2021);
- :func:`load_digits_spikes`: sklearn's shipped 8x8 digits as rate-coded spike trains;
- :func:`load_spike_hdf5`: reads a spike file of the Spiking Heidelberg Digits / Spiking Speech
  Commands layout (the user's own copy: nothing is downloaded).
"""

from __future__ import annotations

import mmap
import os
import warnings

import numpy as np
from sklearn.utils import check_random_state

from ._yinyang import make_yinyang

__all__ = ["make_randman", "make_randman_events", "make_yinyang", "load_digits_spikes", "load_spike_hdf5",
           "SharedMemmap", "open_shared_memmap"]


def make_randman(n_samples=1000, n_classes=10, n_units=50, n_steps=100, dim_manifold=1, alpha=2.0,
                 n_basis=3, jitter=0.0, random_state=None):
    """Random-manifold spike-timing classification (Zenke & Vogels 2021).

    Each class is a smooth random manifold of dimension ``dim_manifold`` embedded in the space of
    firing times of ``n_units`` input neurons. Coordinate ``i`` of class ``c`` is a random smooth
    function of the manifold position ``x`` in [0, 1)^D,

    .. math:: f_{c,i}(x) = \\sum_{d=1}^{D} \\sum_{k=1}^{K} \\frac{a_{c,i,d,k}}{k^{\\alpha}}
              \\sin\\big(2\\pi (k\\, x_d + \\phi_{c,i,d,k})\\big),

    with amplitudes ``a ~ U(0, 1)``, phases ``phi ~ U(0, 1)``, ``K = n_basis`` frequencies and
    smoothness ``alpha``; each coordinate is rescaled to [0, 1] over its class. A sample draws
    ``x`` uniformly and every input neuron fires exactly once, at step
    ``round(f_{c,i}(x) (n_steps - 1))`` (plus Gaussian ``jitter`` in steps). Classes differ only in
    *when* the neurons fire, not in how often, so a rate code cannot solve the task.

    Parameters
    ----------
    n_samples : int, default=1000
        Total number of samples (split as evenly as possible between classes).
    n_classes, n_units, n_steps, dim_manifold : int
    alpha : float, default=2.0
        Smoothness: higher values damp the high-frequency components.
    n_basis : int, default=3
        Number of sine components per dimension.
    jitter : float, default=0.0
        Standard deviation of spike-time noise, in steps.
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_steps, n_units), float32 spikes in {0, 1}
    y : ndarray of shape (n_samples,), int class labels

    Examples
    --------
    >>> X, y = make_randman(n_samples=20, n_classes=2, n_units=5, n_steps=30, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((20, 30, 5), [0, 1])
    >>> bool((X.sum(1) == 1).all())   # every neuron fires exactly once
    True
    """
    rng = check_random_state(random_state)
    D, K = dim_manifold, n_basis
    amp = rng.uniform(0, 1, (n_classes, n_units, D, K))
    phase = rng.uniform(0, 1, (n_classes, n_units, D, K))
    k = np.arange(1, K + 1, dtype=np.float64)

    def embed(c, x):  # x: (m, D) -> (m, n_units)
        arg = 2 * np.pi * (x[:, None, :, None] * k + phase[c][None])
        return (amp[c][None] / k ** alpha * np.sin(arg)).sum((2, 3))

    # per-class rescaling to [0, 1] from a dense reference sample of the manifold
    ref = rng.uniform(0, 1, (2000, D))
    lo, hi = [], []
    for c in range(n_classes):
        e = embed(c, ref)
        lo.append(e.min(0))
        hi.append(e.max(0))
    counts = np.full(n_classes, n_samples // n_classes)
    counts[: n_samples % n_classes] += 1
    y = np.repeat(np.arange(n_classes), counts)
    rng.shuffle(y)
    x = rng.uniform(0, 1, (n_samples, D))
    vals = np.empty((n_samples, n_units))
    for c in range(n_classes):  # a loop over classes, not samples
        m = y == c
        vals[m] = (embed(c, x[m]) - lo[c]) / np.maximum(hi[c] - lo[c], 1e-12)
    t = vals.clip(0, 1) * (n_steps - 1)
    if jitter:
        t = t + rng.normal(0, jitter, t.shape)
    t = np.clip(np.round(t), 0, n_steps - 1).astype(int)
    X = np.zeros((n_samples, n_steps, n_units), dtype=np.float32)
    X[np.arange(n_samples)[:, None], t, np.arange(n_units)[None, :]] = 1.0
    return X, y


def make_randman_events(n_samples=1000, n_classes=10, n_units=50, n_steps=100, dim_manifold=1, alpha=2.0,
                        n_basis=3, jitter=0.0, duration=1.0, random_state=None):
    """The random-manifold task of :func:`make_randman` as per-sample event streams.

    Draws exactly the spikes of :func:`make_randman` with the same arguments (same
    ``random_state``, same samples and labels) and returns each sample as a list of events
    instead of a dense array: the spike of unit ``i`` at step ``k`` becomes the event
    ``(t=(k + 0.5) * duration / n_steps, channel=i)``, in the middle of its step. Hence
    ``EventBinner(bin_width=duration / n_steps, duration=duration).fit_transform(events)``
    gives back the dense ``X`` of :func:`make_randman` (as uint8).

    Parameters
    ----------
    n_samples, n_classes, n_units, n_steps, dim_manifold, alpha, n_basis, jitter, random_state
        As in :func:`make_randman` (``n_steps`` is the time resolution of the spike times).
    duration : float, default=1.0
        Length of a sample in time units: the events lie in ``[0, duration)``.

    Returns
    -------
    events : list of ndarray
        One structured array per sample with fields ``t`` (float64) and ``channel`` (int32),
        ``n_units`` events each (every unit fires once), sorted by time then channel.
    y : ndarray of shape (n_samples,), int class labels

    Examples
    --------
    >>> from sklearn_snn.datasets import make_randman_events
    >>> events, y = make_randman_events(n_samples=4, n_classes=2, n_units=3, n_steps=10, random_state=0)
    >>> len(events), events[0].dtype.names, events[0].shape
    (4, ('t', 'channel'), (3,))
    >>> bool(((events[0]["t"] >= 0) & (events[0]["t"] < 1.0)).all())
    True
    """
    X, y = make_randman(n_samples=n_samples, n_classes=n_classes, n_units=n_units, n_steps=n_steps,
                        dim_manifold=dim_manifold, alpha=alpha, n_basis=n_basis, jitter=jitter,
                        random_state=random_state)
    dt = float(duration) / n_steps
    sample, step, unit = np.nonzero(X)  # sorted by sample, then step, then unit
    ev = np.empty(sample.size, dtype=[("t", np.float64), ("channel", np.int32)])
    ev["t"] = (step + 0.5) * dt
    ev["channel"] = unit
    bounds = np.searchsorted(sample, np.arange(1, n_samples))
    return np.split(ev, bounds), y


def load_digits_spikes(n_steps=20, random_state=None):
    """sklearn's 8x8 digits as Bernoulli rate-coded spike trains, (1797, n_steps, 64).

    Pixel intensity / 16 is the spike probability per step.

    Examples
    --------
    >>> X, y = load_digits_spikes(n_steps=5, random_state=0)
    >>> X.shape
    (1797, 5, 64)
    """
    from sklearn.datasets import load_digits

    Xd, y = load_digits(return_X_y=True)
    rng = check_random_state(random_state)
    p = Xd / 16.0
    X = (rng.uniform(size=(Xd.shape[0], n_steps, Xd.shape[1])) < p[:, None, :]).astype(np.float32)
    return X, y


_HDF5_KEYS = ("spikes/times", "spikes/units", "labels")


def _open_spike_hdf5(path):
    try:
        import h5py
    except ImportError:
        raise ImportError("load_spike_hdf5 needs h5py to read HDF5 files: pip install h5py "
                          "(or pip install 'sklearn-snn[hdf5]').") from None
    f = h5py.File(path, "r")
    missing = [k for k in _HDF5_KEYS if k not in f]
    if missing:
        found = []
        f.visit(lambda name: found.append(name) if isinstance(f[name], h5py.Dataset) else None)
        f.close()
        raise ValueError(
            f"{path} is not a spike file in the SHD/SSC layout: it lacks {', '.join(missing)}. Expected the "
            "datasets 'spikes/times' (per-sample spike times in seconds), 'spikes/units' (per-sample channel "
            "indices) and 'labels'; found " + (", ".join(repr(k) for k in found[:20]) or "no datasets")
            + (f" and {len(found) - 20} more" if len(found) > 20 else "") + ".")
    n = len(f["labels"])
    if len(f["spikes/times"]) != n or len(f["spikes/units"]) != n:
        lens = (len(f["spikes/times"]), len(f["spikes/units"]), n)
        f.close()
        raise ValueError(f"{path}: 'spikes/times', 'spikes/units' and 'labels' must have one entry per sample; "
                         f"their lengths are {lens[0]}, {lens[1]} and {lens[2]}.")
    return f


def _read_events(f, start, stop):
    """The events of samples ``start:stop`` concatenated: (t, units, per-sample counts)."""
    times = f["spikes/times"][start:stop]
    units = f["spikes/units"][start:stop]
    counts = np.fromiter(map(len, times), dtype=np.int64, count=len(times))
    if not np.array_equal(counts, np.fromiter(map(len, units), dtype=np.int64, count=len(units))):
        bad = int(np.flatnonzero(counts != np.fromiter(map(len, units), dtype=np.int64, count=len(units)))[0])
        raise ValueError(f"sample {start + bad} has {len(times[bad])} spike times but {len(units[bad])} units; "
                         "'spikes/times' and 'spikes/units' must pair up event by event.")
    t = np.concatenate(list(times)).astype(np.float64) if counts.sum() else np.zeros(0)
    u = np.concatenate(list(units)).astype(np.int64) if counts.sum() else np.zeros(0, np.int64)
    return t, u, counts


def load_spike_hdf5(path, *, return_events=False, n_steps=None, bin_width=None, duration=None, max_samples=None,
                    n_units=None, channel_pool=1, out=None, chunk_size=512):
    """Read a spike file in the layout of the Spiking Heidelberg Digits (SHD) and Speech Commands (SSC).

    The HDF5 files of SHD and SSC (Cramer et al. 2020) hold, per recording, a variable-length array
    of spike times in seconds (``spikes/times``) and one of channel indices (``spikes/units``, 700
    channels of a cochlea model), and one label per recording (``labels``). Nothing is downloaded:
    get the files from the Heidelberg spiking datasets page
    (https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/) and pass the path of your copy
    (e.g. ``shd_train.h5`` after ``gunzip``). Any file in this layout is read, e.g. one written by
    your own sensor pipeline.

    **Binned form** (default): the events are counted on **one time grid for all samples**,
    exactly as :class:`~sklearn_snn.preprocessing.EventBinner` does with the same ``n_steps`` /
    ``bin_width`` / ``duration`` (a duration left as None is the shortest grid that holds the
    latest event in the samples read). Events at or past the end of the grid are dropped, with one
    :class:`UserWarning` giving their number. The file is read ``chunk_size`` samples at a time,
    so the memory used is the output plus one chunk; with ``out=path`` the output itself goes to a
    ``.npy`` file on disk and is returned as a read-only memory map (``np.load(path,
    mmap_mode='r')``), which every estimator of the package reads one batch at a time and which
    joblib / Dask workers share without copying: data larger than memory trains.

    **Event form** (``return_events=True``): one structured array per sample with the fields
    ``t`` (float64 seconds) and ``channel`` (int64), the input
    :class:`~sklearn_snn.preprocessing.EventBinner` takes (and the form of
    :func:`make_randman_events`). This holds every event in memory.

    Parameters
    ----------
    path : str or path-like
        The HDF5 file.
    return_events : bool, default=False
        Return the events instead of binned counts.
    n_steps : int or None, default=None
        Number of time steps of the grid. When neither ``n_steps`` nor ``bin_width`` is given,
        ``n_steps=100`` (10 ms steps for SHD's ~1 s recordings).
    bin_width : float or None, default=None
        Width of a time step in seconds (give at most one of ``n_steps`` and ``bin_width``).
    duration : float or None, default=None
        Length of the grid in seconds; None: learned from the latest event of the samples read.
    max_samples : int or None, default=None
        Read only the first ``max_samples`` samples.
    n_units : int or None, default=None
        Number of input channels (700 for SHD/SSC); None: the largest unit index read + 1.
    channel_pool : int, default=1
        Sum groups of this many adjacent channels (as in ``EventBinner``): 5 gives 140 channels.
    out : str, path-like or None, default=None
        Where the binned array goes: None keeps it in memory; a path writes it there as a ``.npy``
        file chunk by chunk (an existing file there is overwritten: do not point it at a file that
        an array in use maps) and returns it as a read-only :class:`SharedMemmap`.
    chunk_size : int, default=512
        Number of samples read and binned at a time.

    Returns
    -------
    X : ndarray of shape (n_samples, n_steps, n_channels), uint8, or list of ndarray
        Binned spike counts (saturated at 255; a read-only memmap when ``out`` is given), or with
        ``return_events=True`` one structured event array per sample.
    y : ndarray of shape (n_samples,)
        The labels.

    Raises
    ------
    ImportError
        When h5py is missing (``pip install h5py``).
    ValueError
        When the file is not in this layout (the message lists the datasets found).

    Examples
    --------
    >>> import os, tempfile
    >>> import h5py, numpy as np
    >>> from sklearn_snn.datasets import load_spike_hdf5
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.h5")
    >>> with h5py.File(path, "w") as f:
    ...     t = f.create_dataset("spikes/times", (2,), dtype=h5py.vlen_dtype(np.float32))
    ...     u = f.create_dataset("spikes/units", (2,), dtype=h5py.vlen_dtype(np.uint16))
    ...     t[0], u[0] = np.array([0.05, 0.3], np.float32), np.array([1, 2], np.uint16)
    ...     t[1], u[1] = np.array([0.2], np.float32), np.array([0], np.uint16)
    ...     _ = f.create_dataset("labels", data=[3, 7])
    >>> X, y = load_spike_hdf5(path, n_steps=4, duration=0.4, n_units=3)
    >>> X.shape, X.dtype, y.tolist()
    ((2, 4, 3), dtype('uint8'), [3, 7])
    >>> X[0]
    array([[0, 1, 0],
           [0, 0, 0],
           [0, 0, 0],
           [0, 0, 1]], dtype=uint8)
    >>> events, y = load_spike_hdf5(path, return_events=True)
    >>> events[1]["t"].round(2).tolist(), events[1]["channel"].tolist()
    ([0.2], [0])
    """
    from .preprocessing import EventBinner

    if n_steps is not None and bin_width is not None:
        raise ValueError(f"load_spike_hdf5 takes at most one of n_steps and bin_width; got n_steps={n_steps!r} "
                         f"and bin_width={bin_width!r}.")
    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) != max_samples
                                    or max_samples < 1):
        raise ValueError(f"max_samples must be a positive integer or None; got {max_samples!r}.")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}.")
    chunk_size = int(chunk_size)
    with _open_spike_hdf5(path) as f:
        n = len(f["labels"]) if max_samples is None else min(int(max_samples), len(f["labels"]))
        y = np.asarray(f["labels"][:n])
        if return_events:
            t, u, counts = _read_events(f, 0, n)
            ev = np.empty(t.size, dtype=[("t", np.float64), ("channel", np.int64)])
            ev["t"], ev["channel"] = t, u
            return np.split(ev, np.cumsum(counts)[:-1]), y
        if n_steps is None and bin_width is None:
            n_steps = 100
        # one pass for what fit needs (latest time, largest unit) unless both are given
        t_max, u_max = -np.inf, -1
        if duration is None or n_units is None:
            for start in range(0, n, chunk_size):
                t, u, _ = _read_events(f, start, min(n, start + chunk_size))
                if t.size:
                    t_max, u_max = max(t_max, float(t.max())), max(u_max, int(u.max()))
        if n_units is None and u_max < 0:
            raise ValueError(f"{path}: the {n} sample(s) read hold no spikes; cannot learn the number of channels "
                             "(pass n_units).")
        if n_units is not None and u_max >= int(n_units):
            raise ValueError(f"{path} holds unit {u_max}, out of range for n_units={n_units}; pass a larger n_units "
                             "(or None to learn it).")
        binner = EventBinner(bin_width=bin_width, n_steps=n_steps, duration=duration, n_channels=n_units,
                             channel_pool=channel_pool)
        # EventBinner.fit depends on the events only through the latest time and the largest channel
        probe = np.array([[t_max if np.isfinite(t_max) else 0.0, max(u_max, 0)]])
        binner.fit([probe])
        shape = (n, binner.n_steps_, binner.n_channels_out_)
        if out is None:
            X = np.zeros(shape, dtype=np.uint8)
        else:
            X = np.lib.format.open_memmap(os.fspath(out), mode="w+", dtype=np.uint8, shape=shape)
        n_dropped, n_hit, end = 0, 0, binner.t_start + binner.duration_
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            t, u, counts = _read_events(f, start, stop)
            late = t >= end
            if late.any():
                n_dropped += int(late.sum())
                n_hit += np.unique(np.repeat(np.arange(stop - start), counts)[late]).size
            bounds = np.cumsum(counts)[:-1]
            samples = np.split(np.stack([t, u.astype(np.float64)], axis=1), bounds)
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="EventBinner dropped", category=UserWarning)
                    X[start:stop] = binner.transform(samples)
            except ValueError as exc:  # name the sample in the file, not in the chunk
                raise ValueError(f"{path}, in the chunk of samples {start} to {stop - 1} (sample numbers below "
                                 f"count from {start}): {exc}") from None
    if n_dropped:
        warnings.warn(f"load_spike_hdf5 dropped {n_dropped} event(s) in {n_hit} of {n} sample(s): they lie at or "
                      f"after the end of the time grid (t >= {end:g} s). Pass a larger duration to keep them.",
                      UserWarning, stacklevel=2)
    if out is not None:
        X.flush()
        del X
        X = open_shared_memmap(out)
    return X, y


class SharedMemmap(np.memmap):
    """A read-only memory-mapped array that travels to other processes as its file, not its data.

    Pickling an ordinary :class:`numpy.memmap` copies its data (a Dask worker receives an
    in-memory array: the whole data set per worker). A ``SharedMemmap`` (or a contiguous slice of
    it) pickles as ``(file, offset, shape, dtype)`` and is reopened read-only in the receiving
    process, so joblib (loky or Dask) and Dask workers on the same machine, or on machines that
    see the file at the same path (a shared file system), read the one file. Anything else derived
    from it (fancy indexing, arithmetic) is an ordinary in-memory array. Create it with
    :func:`open_shared_memmap`.
    """

    def __reduce_ex__(self, protocol):
        ref = self._file_reference()
        if ref is None:  # not a contiguous view of the mapped file: pickle the data
            return np.asarray(self).copy().__reduce_ex__(protocol)
        return _reopen_shared_memmap, ref

    def __reduce__(self):
        return self.__reduce_ex__(2)

    def _file_reference(self):
        m = getattr(self, "_mmap", None)
        if m is None or self.filename is None or not self.flags.c_contiguous:
            return None
        start = np.frombuffer(m, dtype=np.uint8).ctypes.data  # the map begins at offset rounded down
        file_offset = self.offset - self.offset % mmap.ALLOCATIONGRANULARITY + (self.ctypes.data - start)
        return (self.filename, int(file_offset), tuple(self.shape), self.dtype.str)


def _reopen_shared_memmap(filename, offset, shape, dtype):
    _register_dask_serializer()
    return SharedMemmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


def _no_dask_serializer(x):
    # Dask's serializer protocol: raising NotImplementedError declines, so the next family (pickle) runs
    raise NotImplementedError("SharedMemmap travels by pickle (as a file reference)")


def _register_dask_serializer():
    """Make Dask send SharedMemmap by pickle (a file reference), not as numpy data; no-op without
    distributed installed."""
    try:
        from distributed.protocol import dask_serialize
    except ImportError:
        return
    dask_serialize.register(SharedMemmap)(_no_dask_serializer)  # idempotent


def open_shared_memmap(path):
    """Open a ``.npy`` file read-only as a :class:`SharedMemmap` (what ``np.load(path, mmap_mode='r')``
    gives, plus: it pickles as a file reference).

    Use it for spike data sets that worker processes share: ``cross_validate(..., n_jobs=...)``,
    a search under joblib's Dask backend with ``LocalCluster(processes=True)`` or a cluster whose
    machines see ``path`` (a shared file system). Every worker then maps the one file instead of
    receiving a copy of the data; only the rows of a task's training fold are read into memory
    (scikit-learn's cross-validation indexes them), in the file's compact dtype.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (e.g. written by ``np.save`` or by :func:`load_spike_hdf5` with ``out=``).

    Returns
    -------
    X : SharedMemmap
        Read-only, of the file's shape and dtype.

    Examples
    --------
    >>> import os, pickle, tempfile
    >>> import numpy as np
    >>> from sklearn_snn.datasets import open_shared_memmap
    >>> path = os.path.join(tempfile.mkdtemp(), "spikes.npy")
    >>> np.save(path, np.eye(3, dtype=bool)[None].repeat(1000, axis=0))
    >>> X = open_shared_memmap(path)
    >>> X.shape, X.dtype, X.flags.writeable
    ((1000, 3, 3), dtype('bool'), False)
    >>> len(pickle.dumps(X)) < 500                  # the file reference, not the 9000 bytes of data
    True
    >>> bool(np.array_equal(pickle.loads(pickle.dumps(X[10:20])), X[10:20]))
    True
    """
    _register_dask_serializer()
    try:
        arr = np.load(os.fspath(path), mmap_mode="r")
    except ValueError as exc:
        raise ValueError(f"{path} could not be memory-mapped ({exc}); save a numeric array with np.save.") from None
    if not isinstance(arr, np.memmap):
        raise ValueError(f"{path} could not be memory-mapped (it is not a .npy file of a numeric array); save "
                         "a numeric array with np.save.")
    return arr.view(SharedMemmap)
