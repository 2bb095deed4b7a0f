"""The Yin-Yang classification task (Kriener, Göltz & Petrovici 2021)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state


def _yinyang_class(x, y, r_small, r_big):
    """Class of points (x, y) inside the big disc: 0 = yang, 1 = yin, 2 = dots."""
    # centres of the two small dots, on the horizontal diameter
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    # yin: the right dot, the upper half outside the right half-disc, and the left half-disc
    # (radius r_big / 2 around the left dot's centre) minus the left dot
    yin = (d_right <= r_small) | ((d_left > r_small) & (d_left <= 0.5 * r_big)) | \
          ((y > r_big) & (d_right > 0.5 * r_big))
    dots = (d_right < r_small) | (d_left < r_small)
    return np.where(dots, 2, yin.astype(int))


def make_yinyang(n_samples=1000, r_small=0.1, r_big=0.5, random_state=None):
    """Generate the Yin-Yang dataset (Kriener et al. 2021).

    Points are drawn uniformly in the disc of radius ``r_big`` centred at ``(r_big, r_big)``
    and labelled by the region they fall in: yang (0), yin (1) or one of the two dots of
    radius ``r_small`` (2). Classes are balanced by drawing each sample's class first (in
    turn) and rejection-sampling a point of that class. The features are ``(x, y, 1 - x,
    1 - y)`` (for ``r_big = 0.5`` all in ``[0, 1]``), which makes the summed input of every
    sample the same, a property the original task relies on for spike-time coding.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of points; classes get ``n_samples // 3`` each, the first
        ``n_samples % 3`` classes one more.
    r_small : float, default=0.1
        Radius of the two dots.
    r_big : float, default=0.5
        Radius of the whole disc.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible data.

    Returns
    -------
    X : ndarray of shape (n_samples, 4)
        ``(x, y, 1 - x, 1 - y)``.
    y : ndarray of shape (n_samples,)
        Labels in ``{0, 1, 2}``.

    References
    ----------
    L. Kriener, J. Göltz, M. A. Petrovici, "The Yin-Yang dataset", NICE 2022
    (arXiv:2102.08211).

    Examples
    --------
    >>> from sklearn_snn._yinyang import make_yinyang
    >>> X, y = make_yinyang(300, random_state=0)
    >>> X.shape, sorted(set(y.tolist())), int((y == 2).sum())
    ((300, 4), [0, 1, 2], 100)
    """
    if int(n_samples) < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}.")
    if not 0 < r_small < 0.5 * r_big:
        raise ValueError("Need 0 < r_small < r_big / 2.")
    n_samples = int(n_samples)
    rng = check_random_state(random_state)
    target = np.arange(n_samples) % 3
    # class of each sample drawn in turn; shuffle the order so labels are not periodic
    rng.shuffle(target)
    need = np.bincount(target, minlength=3)
    pools = [np.empty((0, 2)) for _ in range(3)]
    while any(len(p) < n for p, n in zip(pools, need)):
        m = max(256, 4 * int(max(need)))
        pts = rng.uniform(0.0, 2 * r_big, size=(m, 2))
        inside = np.hypot(pts[:, 0] - r_big, pts[:, 1] - r_big) <= r_big
        pts = pts[inside]
        cls = _yinyang_class(pts[:, 0], pts[:, 1], r_small, r_big)
        for c in range(3):
            if len(pools[c]) < need[c]:
                pools[c] = np.vstack([pools[c], pts[cls == c]])
    xy = np.empty((n_samples, 2))
    for c in range(3):
        xy[target == c] = pools[c][: need[c]]
    X = np.column_stack([xy[:, 0], xy[:, 1], 1 - xy[:, 0], 1 - xy[:, 1]])
    return X, target.astype(int)
