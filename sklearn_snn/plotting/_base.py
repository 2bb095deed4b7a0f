"""Helpers shared by the displays of :mod:`sklearn_snn.plotting`."""

from __future__ import annotations

from numbers import Integral

import numpy as np


def check_matplotlib(caller):
    """Raise an ImportError naming ``caller`` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{caller} requires matplotlib; install it with `pip install matplotlib` "
                          "(or the extra: `pip install sklearn-snn[plot]`).") from exc


def get_axes(ax, caller, n=1, sharex=True):
    """One Axes (or ``n`` stacked Axes) to draw on: the given one(s), or a new figure."""
    check_matplotlib(caller)
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(n, 1, sharex=sharex, squeeze=False, figsize=(6.4, max(2.2 * n, 3.6)),
                                 layout="constrained")
        axes = list(axes[:, 0])
    else:
        axes = list(np.atleast_1d(ax).ravel())
        if len(axes) != n:
            raise ValueError(f"{caller} draws {n} panel(s) but got {len(axes)} Axes.")
        fig = axes[0].figure
    return fig, axes


def select_layers(names, layers):
    if layers == "all" or layers is None:
        return list(range(len(names)))
    idx = [layers] if np.isscalar(layers) else list(layers)
    out = []
    for i in idx:
        if isinstance(i, str):
            if i not in names:
                raise ValueError(f"Unknown layer {i!r}; the layers are {names}.")
            i = names.index(i)
        i = int(i)
        if not -len(names) <= i < len(names):
            raise ValueError(f"layer index {i} out of range for {len(names)} layer(s) {names}.")
        out.append(i % len(names))
    return out



def take_sample(X, sample):
    if not hasattr(X, "iloc"):
        X = np.asarray(X) if not hasattr(X, "shape") else X
    n = X.shape[0]
    if isinstance(sample, bool) or not isinstance(sample, (Integral, np.integer)):
        raise TypeError(f"sample must be an integer (the row of X to simulate), got {type(sample).__name__} "
                        f"{sample!r}.")
    if not -n <= sample < n:
        valid = f"0 to {n - 1} (or -{n} to -1 from the end)" if n else "none: X is empty"
        raise IndexError(f"sample={sample} is out of range for X with {n} samples; valid rows are {valid}.")
    if hasattr(X, "iloc"):
        return X.iloc[[sample]]
    return X[[sample]]

