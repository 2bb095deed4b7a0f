"""Loading the user's data for a benchmark, and refusing data a benchmark cannot use.

:func:`load_data` reads

- a table (``.csv``, ``.tsv``, ``.parquet``; pandas, Parquet also needs pyarrow): the ``target``
  column holds the labels (default: the last column), every other column must be numeric;
- ``.npz`` with arrays ``X`` and ``y`` (``X`` 2D, or 3D spikes ``(n_samples, n_steps,
  n_channels)``), or event data: flat arrays ``t``, ``channel`` (or ``x``), optionally ``p``, the
  sample index of each event ``sample`` and the per-sample labels ``y``, binned with
  :class:`~sklearn_snn.preprocessing.EventBinner`;
- ``.npy`` (``X``, memory-mapped) with the labels in a second ``.npy`` passed as ``target``, or a
  folder holding ``X.npy`` and ``y.npy`` (``X`` memory-mapped);
- ``.h5`` / ``.hdf5`` in the SHD/SSC layout, through :func:`sklearn_snn.datasets.load_spike_hdf5`.

:func:`check_data` refuses, before any training, what would fail late or mean nothing: a single
class, fewer samples of a class than folds, non-numeric or missing features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["DataInfo", "bin_events", "check_data", "load_data", "non_numeric_columns"]

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
HDF5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class DataInfo:
    """Where the data came from, for the report: ``source``, ``description``, ``feature_names``."""

    source: str
    description: str
    feature_names: list | None = None


def _suffix(path):
    return os.path.splitext(str(path))[1].lower()


def _read_table(path):
    import pandas as pd

    suffix = _suffix(path)
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ValueError(f"Reading Parquet needs pyarrow (pip install pyarrow): {exc}") from None
    sep = "\t" if suffix == ".tsv" else None
    return pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")


def non_numeric_columns(frame):
    """Names of the columns of a pandas DataFrame that are neither numeric nor boolean.

    Examples
    --------
    >>> import pandas as pd
    >>> non_numeric_columns(pd.DataFrame({"a": [1.0], "b": ["x"], "c": [True]}))
    ['b']
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return [c for c in frame.columns if not (is_numeric_dtype(frame[c].dtype) or is_bool_dtype(frame[c].dtype))]


def _table_to_xy(frame, target, path):
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if frame.shape[1] < 2:
        raise ValueError(f"{path} has {frame.shape[1]} column(s); a benchmark needs at least one feature "
                         "column and a target column.")
    if target is None:
        target = columns[-1]
    elif target not in columns:
        raise ValueError(f"Column {target!r} is not in {path}. Its columns are: {', '.join(columns)}. "
                         "Pass one of them as the target.")
    y = frame[target].to_numpy()
    features = frame.drop(columns=[target])
    bad = non_numeric_columns(features)
    if bad:
        shown = ", ".join(f"{c} ({features[c].dtype})" for c in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise ValueError(f"Non-numeric feature column(s) in {path}: {shown}. Encode them as numbers first "
                         "(e.g. pandas.get_dummies(df, columns=[...]) or sklearn's OneHotEncoder / "
                         f"OrdinalEncoder) or drop them. The target (label) column is {target!r}; choose "
                         "another with --target / target=.")
    X = features.to_numpy(dtype=np.float64)
    return X, y, list(features.columns), target


def bin_events(t, channel, sample, n_samples=None, *, p=None, n_steps=None, bin_width=None):
    """Bin flat event arrays into ``(n_samples, n_steps, n_channels)`` uint8 spike counts.

    The events of all samples come concatenated, with the index of the sample of each event in
    ``sample``; they are grouped per sample and binned by
    :class:`~sklearn_snn.preprocessing.EventBinner` on one time grid (learned from all samples: it
    depends on the event times only, not on the labels).

    Parameters
    ----------
    t, channel, sample : array-like of shape (n_events,)
        Event time, channel index and sample index (integers ``0 .. n_samples - 1``).
    n_samples : int or None, default=None
        Number of samples; None: ``sample.max() + 1``.
    p : array-like of shape (n_events,) or None, default=None
        Polarity (ignored: polarities are merged).
    n_steps, bin_width : int or float or None
        The time grid (see ``EventBinner``); both None: 100 steps.

    Returns
    -------
    X : ndarray of shape (n_samples, n_steps, n_channels), dtype uint8

    Examples
    --------
    >>> X = bin_events([0.0, 0.5, 0.9, 0.2], [0, 1, 1, 2], [0, 0, 1, 1], n_steps=2)
    >>> X.shape, int(X.sum())
    ((2, 2, 3), 4)
    """
    from sklearn_snn.preprocessing import EventBinner

    t = np.asarray(t)
    channel = np.asarray(channel)
    sample = np.asarray(sample).astype(np.int64)
    if not (t.shape == channel.shape == sample.shape) or t.ndim != 1:
        raise ValueError("Event arrays t, channel and sample must be 1-D and of the same length; got shapes "
                         f"{t.shape}, {channel.shape}, {sample.shape}.")
    if sample.size and sample.min() < 0:
        raise ValueError("Event sample indices must be >= 0.")
    if n_samples is None:
        n_samples = int(sample.max()) + 1 if sample.size else 0
    order = np.argsort(sample, kind="stable")
    ev = np.empty(t.size, dtype=[("t", t.dtype if t.dtype.kind == "f" else np.float64), ("channel", np.int64)])
    ev["t"] = t[order]
    ev["channel"] = channel[order]
    bounds = np.searchsorted(sample[order], np.arange(1, n_samples))
    per_sample = np.split(ev, bounds)
    if n_steps is None and bin_width is None:
        n_steps = 100
    return EventBinner(n_steps=n_steps, bin_width=bin_width).fit_transform(per_sample)


def _load_npz(path, n_steps, bin_width):
    with np.load(path, allow_pickle=False) as f:
        keys = list(f.keys())
        if "X" in keys and "y" in keys:
            return f["X"], f["y"], "arrays X and y"
        chan = "channel" if "channel" in keys else "x"
        if {"t", chan, "sample", "y"} <= set(keys):
            y = f["y"]
            X = bin_events(f["t"], f[chan], f["sample"], len(y), n_steps=n_steps, bin_width=bin_width)
            return X, y, f"events binned by EventBinner into {X.shape[1]} steps"
    raise ValueError(f"{path} holds the arrays {', '.join(keys) or '(none)'}; a benchmark needs 'X' and 'y' "
                     "(features or spikes, labels), or event arrays 't', 'channel' (or 'x'), 'sample' and "
                     "the per-sample labels 'y'.")


def _load_hdf5(path, n_steps, bin_width):
    try:
        from sklearn_snn.datasets import load_spike_hdf5
    except ImportError:
        raise ValueError("Reading HDF5 spike files needs sklearn_snn.datasets.load_spike_hdf5, which this "
                         "version of sklearn-snn lacks; convert the file to .npz (X, y) first.") from None
    kw = {}
    if n_steps is not None:
        kw["n_steps"] = n_steps
    if bin_width is not None:
        kw["bin_width"] = bin_width
    try:
        X, y = load_spike_hdf5(path, **kw)
    except ImportError as exc:
        raise ValueError(f"Reading HDF5 needs h5py (pip install h5py): {exc}") from None
    except KeyError as exc:
        raise ValueError(f"{path} is not in the SHD/SSC layout (spikes/times, spikes/units, labels): "
                         f"missing {exc}.") from None
    return X, np.asarray(y), "SHD/SSC spike file binned by load_spike_hdf5"


def load_data(path, target=None, *, n_steps=None, bin_width=None):
    """Read ``X`` and ``y`` from a file in one of the formats of the module description.

    Parameters
    ----------
    path : str or path-like
        The data file (or a folder holding ``X.npy`` and ``y.npy``).
    target : str or None, default=None
        Tables: the label column (default: the last column). ``.npy``: the path of the labels file.
    n_steps, bin_width : int, float or None, default=None
        Time grid for event and HDF5 data (default: 100 steps for events; the loader's default for
        HDF5).

    Returns
    -------
    X : ndarray or numpy.memmap
        2D features or 3D spikes (a 3D ``.npy`` is memory-mapped, read-only).
    y : ndarray of shape (n_samples,)
    info : DataInfo

    Raises
    ------
    ValueError
        Missing file, unknown format, unknown column (the message lists the columns), non-numeric
        feature columns (the message names them and says how to encode them).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(path, X=np.zeros((4, 3)), y=[0, 1, 0, 1])
    >>> X, y, info = load_data(path)
    >>> X.shape, info.description
    ((4, 3), 'arrays X and y')
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"Data file {path!r} does not exist; check the path.")
    if os.path.isdir(path):
        if target is not None:
            raise ValueError(f"Folder {path!r} takes its labels from y.npy; leave target (--target) out.")
        xs, ys = os.path.join(path, "X.npy"), os.path.join(path, "y.npy")
        if not (os.path.isfile(xs) and os.path.isfile(ys)):
            raise ValueError(f"Folder {path!r} must hold X.npy and y.npy; pass a data file instead.")
        X = np.load(xs, mmap_mode="r", allow_pickle=False)
        y = np.load(ys, allow_pickle=False)
        return X, y, DataInfo(path, "X.npy (memory-mapped) and y.npy")
    suffix = _suffix(path)
    if target is not None and suffix not in TABLE_SUFFIXES + (".npy",):
        raise ValueError(f"target applies to tables (the label column) and .npy files (the labels file), not to "
                         f"{suffix} files; leave it out.")
    if suffix in TABLE_SUFFIXES:
        X, y, names, col = _table_to_xy(_read_table(path), target, path)
        return X, y, DataInfo(path, f"table, target column {col!r}", names)
    if suffix == ".npz":
        X, y, what = _load_npz(path, n_steps, bin_width)
        return X, y, DataInfo(path, what)
    if suffix == ".npy":
        if target is None:
            raise ValueError(f"{path} holds only X; pass the labels as a second .npy file (--target y.npy).")
        if not os.path.isfile(target):
            raise ValueError(f"Labels file {target!r} does not exist; check the path.")
        X = np.load(path, mmap_mode="r", allow_pickle=False)
        y = np.load(target, allow_pickle=False)
        return X, y, DataInfo(path, f"X memory-mapped, labels from {target}")
    if suffix in HDF5_SUFFIXES:
        X, y, what = _load_hdf5(path, n_steps, bin_width)
        return X, y, DataInfo(path, what)
    raise ValueError(f"Unknown data format {suffix or '(no suffix)'!r} of {path!r}; use .csv, .tsv, .parquet, "
                     ".npz, .npy, .h5/.hdf5 or a folder holding X.npy and y.npy.")


def _label(value):
    return value.item() if isinstance(value, np.generic) else value


def _all_finite(X, chunk=4096):
    if X.dtype.kind in "iub":
        return True
    return all(np.isfinite(X[i:i + chunk]).all() for i in range(0, len(X), chunk))


def check_data(X, y, cv=5, search=0, feature_names=None):
    """Refuse data a cross-validated benchmark cannot use; return the class counts.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_channels)
    y : array-like of shape (n_samples,)
    cv : int, default=5
        Number of folds (stratified: every class needs at least ``cv`` samples).
    search : int, default=0
        Trials of the nested search; with a search every class needs enough samples for an
        inner 2-fold split of each outer training part too.
    feature_names : list of str or None
        Column names, to name the columns holding missing values.

    Returns
    -------
    classes : ndarray
    counts : ndarray
        Samples per class.

    Raises
    ------
    ValueError
        With a message saying what is wrong and what to do.

    Examples
    --------
    >>> check_data(np.zeros((6, 2)), [0, 0, 0, 1, 1, 1], cv=3)
    (array([0, 1]), array([3, 3]))
    >>> check_data(np.zeros((4, 2)), [0, 0, 0, 0], cv=2)
    Traceback (most recent call last):
    ...
    ValueError: y holds a single class (0); a classification benchmark needs at least two.
    """
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    if X.ndim not in (2, 3):
        raise ValueError(f"X must be 2D (n_samples, n_features) or 3D spikes (n_samples, n_steps, n_channels); "
                         f"got shape {X.shape}.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must be numeric, got dtype {X.dtype}; encode the non-numeric features as numbers "
                         "(e.g. pandas.get_dummies or sklearn's OneHotEncoder) first.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per sample), got shape {y.shape}.")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)} labels; they must match.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y holds missing (NaN) or infinite labels; drop those samples first.")
    if y.dtype.kind == "O" and any(v is None for v in y):
        raise ValueError("y holds missing labels (None); drop those samples first.")
    if not _all_finite(X):
        where = ""
        if X.ndim == 2 and feature_names is not None:
            bad = [n for n, ok in zip(feature_names, np.isfinite(X).all(axis=0)) if not ok]
            where = f" in column(s) {', '.join(bad[:10])}"
        raise ValueError(f"X holds missing (NaN) or infinite values{where}; impute them (e.g. "
                         "sklearn.impute.SimpleImputer) or drop those samples first.")
    if y.dtype.kind == "f" and np.any(y != np.round(y)):
        raise ValueError("y holds non-integer numbers, which look like a regression target; the benchmark compares "
                         "classifiers: pass class labels (or bin the target, e.g. with pandas.qcut).")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"y holds a single class ({classes[0] if len(classes) else 'none'}); "
                         "a classification benchmark needs at least two.")
    cv = int(cv)
    small = counts < cv
    if small.any():
        worst = int(np.argmin(counts))
        m = int(counts.min())
        fewer = f"use at most {m} folds (cv={m} / --cv {m}), " if m >= 2 else ""
        raise ValueError(
            f"Class {_label(classes[worst])!r} has only {counts[worst]} sample(s), fewer than the {cv} "
            f"cross-validation folds ({int(small.sum())} class(es) are too small): {fewer}drop the rarest "
            "classes, or gather more samples.")
    if search and int(counts.min()) * (cv - 1) // cv < 2:
        raise ValueError(
            f"Class {_label(classes[int(np.argmin(counts))])!r} has only {int(counts.min())} sample(s): too few "
            "for a search inside the cross-validation (every outer training part needs at least 2 per class). "
            "Run without search, or gather more samples.")
    return classes, counts
