"""Data generators for spiking tasks (nothing is downloaded).

- :func:`make_randman`: the random-manifold spike-timing task of Zenke & Vogels (2021);
- :func:`make_randman_events`: the same task as per-sample event streams (for
  :class:`~sklearn_snn.preprocessing.EventBinner`);
- :func:`make_yinyang`: the Yin-Yang task of Kriener et al. (2021);
- :func:`load_digits_spikes`: sklearn's shipped 8x8 digits as rate-coded spike trains.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from ._yinyang import make_yinyang

__all__ = ["make_randman", "make_randman_events", "make_yinyang", "load_digits_spikes"]


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
