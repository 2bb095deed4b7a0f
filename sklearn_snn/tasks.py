"""Few-shot tasks for meta learning: N-way K-shot episodes and task streams.

- :class:`FewShotTaskSampler`: N-way K-shot episodes (:class:`Episode`) from sklearn's digits,
  from freshly drawn random manifolds (:func:`~sklearn_snn.datasets.make_randman`) or from any
  labelled data.
- :class:`InstanceTaskSampler`: unsupervised meta-training episodes in which every class is one
  image and its samples are random affine distortions of it (UMTRA-style task construction).
- :class:`TaskStream`, :func:`as_task`, :func:`check_task_layouts`: how
  :meth:`sklearn_snn.meta.MetaSNNClassifier.meta_fit` draws, relabels and checks its tasks.

:class:`FewShotTaskSampler` and :class:`Episode` are also importable from :mod:`sklearn_snn.meta`.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "Episode",
    "EpisodeSampler",
    "FewShotTaskSampler",
    "InstanceTaskSampler",
    "RandmanTaskSampler",
    "TaskStream",
    "as_task",
    "check_task_layouts",
    "random_affine",
    "random_thickness",
]


# --------------------------------------------------------------------------------------------
# Few-shot tasks
# --------------------------------------------------------------------------------------------

Episode = namedtuple("Episode", ["X_support", "y_support", "X_query", "y_query", "classes"])
Episode.__doc__ = """An N-way K-shot task: support and query sets with labels 0..N-1 (``classes`` holds
the original class of each label)."""


class EpisodeSampler:
    """What every task sampler shares: lists of episodes and an endless stream, both drawn with
    the subclass's ``sample(random_state)`` and seeded by its ``random_state``."""

    def episodes(self, n, random_state=None):
        """A list of ``n`` episodes (seeded by ``random_state``, else the sampler's)."""
        rng = check_random_state(self.random_state if random_state is None else random_state)
        return [self.sample(rng) for _ in range(n)]

    def __iter__(self):
        rng = check_random_state(self.random_state)
        while True:
            yield self.sample(rng)


class FewShotTaskSampler(EpisodeSampler):
    """N-way K-shot classification episodes from shipped data.

    Every episode draws ``n_way`` classes, ``k_shot`` support and ``n_query`` query samples per
    class (without overlap), and relabels the classes 0..N-1 in a random order, so a learner cannot
    memorise a fixed class-to-output mapping.

    Parameters
    ----------
    n_way, k_shot, n_query : int, default=5, 5, 15
    source : 'digits', 'randman' or (X, y), default='digits'
        ``'digits'``: sklearn's 8x8 digits (2D, 64 features). ``'randman'``: every episode draws
        ``n_way`` new random manifolds (:func:`~sklearn_snn.datasets.make_randman`, 3D spike
        trains), so no two episodes share a class. ``(X, y)``: any labelled data.
    classes : sequence or None, default=None
        Restrict the episodes to these classes (e.g. hold some digits out for testing).
    n_units, n_steps, dim_manifold : int, default=20, 50, 1
        Shape of the ``'randman'`` tasks.
    random_state : int, RandomState or None, default=None
        Seeds iteration (``iter(sampler)``) and :meth:`episodes`.

    Examples
    --------
    >>> sampler = FewShotTaskSampler(n_way=3, k_shot=2, n_query=4, classes=[0, 1, 2, 3], random_state=0)
    >>> ep = sampler.sample(random_state=0)
    >>> ep.X_support.shape, sorted(set(ep.y_support.tolist())), ep.X_query.shape
    ((6, 64), [0, 1, 2], (12, 64))
    """

    def __init__(self, n_way=5, k_shot=5, n_query=15, source="digits", classes=None, n_units=20, n_steps=50,
                 dim_manifold=1, random_state=None):
        self.n_way, self.k_shot, self.n_query = int(n_way), int(k_shot), int(n_query)
        self.source, self.classes = source, classes
        self.n_units, self.n_steps, self.dim_manifold = n_units, n_steps, dim_manifold
        self.random_state = random_state
        if self.n_way < 2 or self.k_shot < 1 or self.n_query < 0:
            raise ValueError("n_way must be >= 2, k_shot >= 1 and n_query >= 0.")
        self._X, self._y = None, None
        if isinstance(source, str):
            if source == "digits":
                from sklearn.datasets import load_digits

                self._X, self._y = load_digits(return_X_y=True)
            elif source != "randman":
                raise ValueError(f"source must be 'digits', 'randman' or (X, y), got {source!r}.")
        else:
            X, y = source
            self._X, self._y = np.asarray(X), np.asarray(y)
        if self._X is not None:
            pool = np.unique(self._y) if classes is None else np.asarray(classes)
            missing = np.setdiff1d(pool, self._y)
            if missing.size:
                raise ValueError(f"classes {missing.tolist()} do not occur in the data.")
            counts = np.array([(self._y == c).sum() for c in pool])
            if pool.size < self.n_way:
                raise ValueError(f"n_way={self.n_way} needs at least {self.n_way} classes, got {pool.size}.")
            if counts.min() < self.k_shot + self.n_query:
                raise ValueError(f"Every class needs k_shot + n_query = {self.k_shot + self.n_query} samples; "
                                 f"the smallest has {counts.min()}.")
            self._pool = pool
            self._index = {c: np.flatnonzero(self._y == c) for c in pool}

    def sample(self, random_state=None):
        """Draw one :class:`Episode`."""
        rng = check_random_state(random_state)
        k, q = self.k_shot, self.n_query
        if self._X is None:
            from .datasets import make_randman

            X, y = make_randman(n_samples=self.n_way * (k + q), n_classes=self.n_way, n_units=self.n_units,
                                n_steps=self.n_steps, dim_manifold=self.dim_manifold,
                                random_state=rng.randint(np.iinfo(np.int32).max))
            groups = [np.flatnonzero(y == c) for c in range(self.n_way)]
            chosen = np.arange(self.n_way)
        else:
            X = self._X
            chosen = rng.choice(self._pool, self.n_way, replace=False)
            groups = [rng.choice(self._index[c], k + q, replace=False) for c in chosen]
        order = rng.permutation(self.n_way)  # label of the i-th chosen class
        sup = np.concatenate([g[:k] for g in groups])
        qry = np.concatenate([g[k:k + q] for g in groups])
        lab = np.repeat(order, k), np.repeat(order, q)
        classes = np.empty(self.n_way, dtype=np.asarray(chosen).dtype)
        classes[order] = chosen
        return Episode(X[sup], lab[0], X[qry], lab[1], classes)

    def __repr__(self):
        src = self.source if isinstance(self.source, str) else "(X, y)"
        return f"FewShotTaskSampler(n_way={self.n_way}, k_shot={self.k_shot}, n_query={self.n_query}, source={src!r})"


class RandmanTaskSampler(EpisodeSampler):
    """N-way K-shot spike-timing tasks, a fresh random-manifold task per episode, by task seed.

    Every episode is one task of :func:`~sklearn_snn.datasets.make_randman`: ``n_way`` new random
    manifolds (the classes: which input neuron fires when) drawn from a task seed, with
    ``k_shot`` support and ``n_query`` query samples each. No two task seeds share a class, so
    what transfers between episodes is how to read spike timing, not the classes. Disjoint
    ``task_seeds`` ranges give disjoint training and test task families.

    Parameters
    ----------
    n_way, k_shot, n_query : int, default=5, 5, 15
    n_units, n_steps, dim_manifold, alpha, jitter : default=20, 30, 1, 2.0, 0.0
        Shape and difficulty of the tasks (as in :func:`~sklearn_snn.datasets.make_randman`).
    task_seeds : range or sequence of int, default=range(1_000_000)
        The task seeds episodes are drawn from.
    events : bool, default=False
        Return each sample as an event stream (a structured array with fields ``t`` and
        ``channel``, :func:`~sklearn_snn.datasets.make_randman_events`; bin it with
        :class:`~sklearn_snn.preprocessing.EventBinner`) instead of a dense (n_steps, n_units) array.
    random_state : int, RandomState or None, default=None
        Seeds iteration (``iter(sampler)``) and :meth:`episodes`.

    Examples
    --------
    >>> s = RandmanTaskSampler(n_way=3, k_shot=2, n_query=4, n_units=6, n_steps=10)
    >>> ep = s.task(7)
    >>> ep.X_support.shape, ep.X_query.shape, sorted(set(ep.y_support.tolist()))
    ((6, 10, 6), (12, 10, 6), [0, 1, 2])
    >>> bool((s.task(7).X_query == ep.X_query).all())
    True
    """

    def __init__(self, n_way=5, k_shot=5, n_query=15, n_units=20, n_steps=30, dim_manifold=1, alpha=2.0,
                 jitter=0.0, task_seeds=range(1_000_000), events=False, random_state=None):
        self.n_way, self.k_shot, self.n_query = int(n_way), int(k_shot), int(n_query)
        if self.n_way < 2 or self.k_shot < 1 or self.n_query < 0:
            raise ValueError("n_way must be >= 2, k_shot >= 1 and n_query >= 0.")
        self.n_units, self.n_steps, self.dim_manifold = int(n_units), int(n_steps), int(dim_manifold)
        self.alpha, self.jitter, self.events = alpha, jitter, bool(events)
        self.task_seeds = task_seeds
        if len(task_seeds) < 1:
            raise ValueError("task_seeds is empty; pass a range or sequence of task seeds.")
        self.random_state = random_state

    def task(self, seed):
        """The :class:`Episode` of task seed ``seed`` (the same arrays every time)."""
        from .datasets import make_randman, make_randman_events

        k, q, n = self.k_shot, self.n_query, self.n_way
        make = make_randman_events if self.events else make_randman
        X, y = make(n_samples=n * (k + q) * 2, n_classes=n, n_units=self.n_units, n_steps=self.n_steps,
                    dim_manifold=self.dim_manifold, alpha=self.alpha, jitter=self.jitter, random_state=int(seed))
        groups = [np.flatnonzero(np.asarray(y) == c)[:k + q] for c in range(n)]
        if min(len(g) for g in groups) < k + q:
            raise ValueError(f"task seed {seed} drew fewer than k_shot + n_query = {k + q} samples of a class.")
        sup = np.concatenate([g[:k] for g in groups])
        qry = np.concatenate([g[k:] for g in groups])
        pick = (lambda idx: [X[i] for i in idx]) if self.events else (lambda idx: X[idx])
        return Episode(pick(sup), np.repeat(np.arange(n), k), pick(qry), np.repeat(np.arange(n), q), np.arange(n))

    def sample(self, random_state=None):
        """Draw one :class:`Episode`: a task seed from ``task_seeds``, then its task."""
        rng = check_random_state(random_state)
        return self.task(self.task_seeds[rng.randint(len(self.task_seeds))])

    def __repr__(self):
        return (f"RandmanTaskSampler(n_way={self.n_way}, k_shot={self.k_shot}, n_query={self.n_query}, "
                f"n_units={self.n_units}, n_steps={self.n_steps})")


# --------------------------------------------------------------------------------------------
# Instance episodes: one image per class, random affine distortions as its samples
# --------------------------------------------------------------------------------------------

def _check_range(name, value, upper=None, strict=False):
    """``value`` as a float in [0, upper) (or [0, upper] unless ``strict``), else a clear ValueError."""
    v = float(value)
    if not np.isfinite(v) or v < 0 or (upper is not None and (v >= upper if strict else v > upper)):
        bound = "" if upper is None else f" and {'below' if strict else 'at most'} {upper}"
        raise ValueError(f"{name} must be a finite number >= 0{bound} (the half-width of its random range), "
                         f"got {value!r}.")
    return v


def random_affine(images, rotation=25.0, scale=0.2, shift=1.5, random_state=None, *, shear=0.0, stretch=0.0,
                  elastic=0.0, elastic_sigma=1.0):
    """Random affine (and optionally elastic) distortions of a batch of images, bilinear, zero outside.

    Each image gets its own rotation (uniform in +-``rotation`` degrees), zoom (uniform in
    1 +- ``scale``) and translation (uniform in +-``shift`` pixels per axis) about its centre;
    all images are warped at once (no loop over samples). Three optional distortions, off by
    default (then the draws and the result are those without them):

    - ``shear``: a horizontal shear (slant), every row shifted along the columns in proportion to
      its distance from the centre, by an angle uniform in +-``shear`` degrees;
    - ``stretch``: anisotropic zoom, rows zoomed by a further ``1 + s`` and columns by ``1 - s``,
      ``s`` uniform in +-``stretch``;
    - ``elastic``: a smooth random displacement field added to every pixel's source position
      (Simard et al. 2003): white noise smoothed by a Gaussian of ``elastic_sigma`` pixels, scaled
      so that its largest displacement is uniform in [0, ``elastic``] pixels.

    Parameters
    ----------
    images : ndarray of shape (n, height, width)
    rotation, scale, shift : float, default=25, 0.2, 1.5
        ``scale`` must be below 1.
    random_state : int, RandomState or None
    shear, stretch, elastic : float, default=0
        Degrees (below 90), relative (below 1), pixels.
    elastic_sigma : float, default=1.0
        Smoothness (pixels) of the elastic field; must be > 0.

    Returns
    -------
    warped : ndarray of shape (n, height, width), float

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(16.0).reshape(1, 4, 4)
    >>> np.allclose(random_affine(img, rotation=0, scale=0, shift=0), img)
    True
    >>> random_affine(np.ones((3, 8, 8)), random_state=0).shape
    (3, 8, 8)
    >>> random_affine(np.ones((3, 8, 8)), random_state=0, shear=10, stretch=0.1, elastic=0.5).shape
    (3, 8, 8)
    """
    rng = check_random_state(random_state)
    images = np.asarray(images, dtype=float)
    if images.ndim != 3:
        raise ValueError(f"images must be 3D (n, height, width), got shape {images.shape}.")
    _check_range("scale", scale, 1.0, strict=True)
    shear = _check_range("shear", shear, 90.0, strict=True)
    stretch = _check_range("stretch", stretch, 1.0, strict=True)
    elastic = _check_range("elastic", elastic)
    if not (np.isfinite(float(elastic_sigma)) and float(elastic_sigma) > 0):
        raise ValueError(f"elastic_sigma must be a finite number > 0 (pixels), got {elastic_sigma!r}.")
    n, h, w = images.shape
    a = np.deg2rad(rng.uniform(-rotation, rotation, n))
    z = 1.0 + rng.uniform(-scale, scale, n)
    t = rng.uniform(-shift, shift, (n, 2))
    k = np.tan(np.deg2rad(rng.uniform(-shear, shear, n)))[:, None] if shear else 0.0
    s = rng.uniform(-stretch, stretch, n) if stretch else 0.0
    zy, zx = (z * (1 + s))[:, None], (z * (1 - s))[:, None]
    rows, cols = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    dy, dx = rows.ravel() - cy, cols.ravel() - cx            # output pixel -> source pixel
    cos, sin = np.cos(a)[:, None], np.sin(a)[:, None]
    # source = diag(1/zy, 1/zx) @ [[1, 0], [k, 1]] @ [[cos, -sin], [sin, cos]] @ (output - centre)
    sy = (cos / zy) * dy + (-sin / zy) * dx + cy + t[:, :1]
    sx = ((k * cos + sin) / zx) * dy + ((cos - k * sin) / zx) * dx + cx + t[:, 1:]
    if elastic:
        from scipy.ndimage import gaussian_filter

        field = gaussian_filter(rng.standard_normal((n, 2, h, w)), sigma=(0, 0, elastic_sigma, elastic_sigma),
                                mode="constant")
        peak = np.sqrt((field ** 2).sum(1)).reshape(n, -1).max(1)
        field *= (elastic * rng.uniform(0, 1, n) / np.maximum(peak, 1e-12))[:, None, None, None]
        sy = sy + field[:, 0].reshape(n, -1)
        sx = sx + field[:, 1].reshape(n, -1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    fy, fx = sy - y0, sx - x0
    flat = images.reshape(n, h * w)
    idx = np.arange(n)[:, None]

    def at(yy, xx):
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        return np.where(ok, flat[idx, np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)], 0.0)

    out = ((1 - fy) * (1 - fx) * at(y0, x0) + (1 - fy) * fx * at(y0, x0 + 1)
           + fy * (1 - fx) * at(y0 + 1, x0) + fy * fx * at(y0 + 1, x0 + 1))
    return out.reshape(n, h, w)


def random_thickness(images, thickness=0.3, random_state=None):
    """Random stroke-thickness changes of a batch of images (grey-level dilation / erosion).

    Each image is blended with its grey-level dilation (thicker strokes) or erosion (thinner
    strokes) by a 3x3 cross: ``x + |u| (dilate(x) - x)`` for ``u > 0`` and ``x + |u| (erode(x) -
    x)`` for ``u < 0``, ``u`` uniform in +-``thickness``; all images at once. Borders repeat the
    nearest pixel.

    Parameters
    ----------
    images : ndarray of shape (n, height, width)
    thickness : float in [0, 1], default=0.3
        0 returns the images unchanged; 1 allows a full dilation or erosion.
    random_state : int, RandomState or None

    Returns
    -------
    out : ndarray of shape (n, height, width), float

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((1, 5, 5)); img[0, 2, 2] = 1.0
    >>> bool((random_thickness(img, 0.0, random_state=0) == img).all())
    True
    >>> out = random_thickness(np.repeat(img, 4, axis=0), 1.0, random_state=1)
    >>> (out > 0).sum(axis=(1, 2)).tolist()   # dilated: a 3x3 cross; eroded: fainter, one pixel
    [1, 5, 1, 1]
    """
    from scipy.ndimage import grey_dilation, grey_erosion

    rng = check_random_state(random_state)
    images = np.asarray(images, dtype=float)
    if images.ndim != 3:
        raise ValueError(f"images must be 3D (n, height, width), got shape {images.shape}.")
    thickness = _check_range("thickness", thickness, 1.0)
    if not thickness:
        return images.copy()
    u = rng.uniform(-thickness, thickness, len(images))[:, None, None]
    cross = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=bool)
    thick = grey_dilation(images, footprint=cross, mode="nearest")
    thin = grey_erosion(images, footprint=cross, mode="nearest")
    return images + np.abs(u) * (np.where(u > 0, thick, thin) - images)


class InstanceTaskSampler(EpisodeSampler):
    """Meta-training episodes whose classes are single images and whose samples are distortions.

    Every episode draws ``n_way`` images of ``X`` (labels are not used) and makes ``k_shot``
    support and ``n_query`` query samples of each by :func:`random_affine` distortions
    (Khodadadeh et al. 2019's UMTRA construction; instance discrimination). Meta-training on
    them teaches an embedding invariance to small rotations, zooms and shifts without tying it
    to a few base classes: with only five base digit classes, class episodes over-specialise
    the prototype embedding (see the user guide's meta-learning page).

    Parameters
    ----------
    X : array-like of shape (n_samples, height * width)
        The images (e.g. the base classes' digits), flattened.
    image_shape : tuple of int, default=(8, 8)
    n_way, k_shot, n_query : int, default=20, 5, 5
    rotation, scale, shift : float, default=25, 0.2, 1.5
        Ranges of the distortions (degrees, relative zoom, pixels).
    shear, stretch, elastic, elastic_sigma : float, default=0, 0, 0, 1.0
        Optional further distortions of :func:`random_affine` (shear in degrees, anisotropic
        zoom, largest elastic displacement in pixels and its smoothness); off by default.
    thickness : float in [0, 1], default=0
        Optional stroke-thickness changes (:func:`random_thickness`, before the warp); off by
        default. With all optional distortions off the episodes are those without them.
    random_state : int, RandomState or None, default=None
        Seeds iteration (``iter(sampler)``) and :meth:`episodes`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> ep = InstanceTaskSampler(X[y < 5], n_way=4, k_shot=2, n_query=3).sample(random_state=0)
    >>> ep.X_support.shape, ep.y_support.tolist(), ep.X_query.shape
    ((8, 64), [0, 0, 1, 1, 2, 2, 3, 3], (12, 64))
    """

    def __init__(self, X, image_shape=(8, 8), n_way=20, k_shot=5, n_query=5, rotation=25.0, scale=0.2, shift=1.5,
                 random_state=None, *, shear=0.0, stretch=0.0, elastic=0.0, elastic_sigma=1.0, thickness=0.0):
        self.X = np.asarray(X, dtype=float)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.n_way, self.k_shot, self.n_query = int(n_way), int(k_shot), int(n_query)
        self.rotation, self.scale, self.shift = rotation, scale, shift
        self.shear, self.stretch, self.elastic, self.elastic_sigma = shear, stretch, elastic, elastic_sigma
        self.thickness = thickness
        self.random_state = random_state
        # fail at construction, not at the first episode
        random_affine(np.zeros((1, 2, 2)), rotation, scale, shift, 0, shear=shear, stretch=stretch, elastic=elastic,
                      elastic_sigma=elastic_sigma)
        random_thickness(np.zeros((1, 2, 2)), thickness, 0)
        if self.n_way < 2 or self.k_shot < 1 or self.n_query < 0:
            raise ValueError("n_way must be >= 2, k_shot >= 1 and n_query >= 0.")
        if self.X.ndim != 2 or self.X.shape[1] != int(np.prod(self.image_shape)):
            raise ValueError(f"X must be 2D with height * width = {int(np.prod(self.image_shape))} columns "
                             f"(image_shape={self.image_shape}), got shape {self.X.shape}.")
        if len(self.X) < self.n_way:
            raise ValueError(f"n_way={self.n_way} needs at least {self.n_way} images, got {len(self.X)}.")

    def sample(self, random_state=None):
        """Draw one :class:`Episode` (``classes`` holds the row of ``X`` of each label)."""
        rng = check_random_state(random_state)
        n, k, q = self.n_way, self.k_shot, self.n_query
        chosen = rng.choice(len(self.X), n, replace=False)
        imgs = np.repeat(self.X[chosen], k + q, axis=0).reshape(-1, *self.image_shape)
        if self.thickness:
            imgs = random_thickness(imgs, self.thickness, rng)
        imgs = random_affine(imgs, self.rotation, self.scale, self.shift, rng, shear=self.shear, stretch=self.stretch,
                             elastic=self.elastic, elastic_sigma=self.elastic_sigma).reshape(n, k + q, -1)
        return Episode(imgs[:, :k].reshape(n * k, -1), np.repeat(np.arange(n), k),
                       imgs[:, k:].reshape(n * q, -1), np.repeat(np.arange(n), q), chosen)

    def __repr__(self):
        return (f"InstanceTaskSampler(n_way={self.n_way}, k_shot={self.k_shot}, n_query={self.n_query}, "
                f"image_shape={self.image_shape})")


# --------------------------------------------------------------------------------------------
# Task streams of meta-training
# --------------------------------------------------------------------------------------------

def as_task(task, split, rng):
    """(X_support, y_support, X_query, y_query) with labels 0..k-1 from an Episode or (X, y)."""
    if len(task) >= 4:
        Xs, ys, Xq, yq = task[:4]
        classes, inv = np.unique(np.concatenate([np.asarray(ys), np.asarray(yq)]), return_inverse=True)
        return np.asarray(Xs), inv[:len(ys)], np.asarray(Xq), inv[len(ys):]
    X, y = task
    X, y = np.asarray(X), np.asarray(y)
    classes, inv = np.unique(y, return_inverse=True)
    if not split:
        return X, inv, X, inv
    # stratified halves: support / query
    sup = np.zeros(len(y), dtype=bool)
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(inv == c))
        sup[idx[: max(1, len(idx) // 2)]] = True
    if sup.all():
        return X, inv, X, inv
    return X[sup], inv[sup], X[~sup], inv[~sup]


class TaskStream:
    """Tasks for meta-training from a sampler, a sequence or an iterator."""

    def __init__(self, tasks, rng):
        self.rng = rng
        self.sampler = tasks if hasattr(tasks, "sample") and callable(tasks.sample) else None
        self.seq = None
        self.it = None
        if self.sampler is None:
            if hasattr(tasks, "__len__") and hasattr(tasks, "__getitem__"):
                self.seq = list(tasks)
                if not self.seq:
                    raise ValueError("tasks is empty.")
            else:
                self.it = iter(tasks)

    def next(self):
        if self.sampler is not None:
            return self.sampler.sample(self.rng)
        if self.seq is not None:
            return self.seq[self.rng.randint(len(self.seq))]
        return next(self.it)


def _task_layout(task, label):
    """(ndim, n_features) of the inputs of one task, before relabelling."""
    shapes = [np.shape(task[0])] + ([np.shape(task[2])] if len(task) >= 4 else [])
    layouts = [(len(sh), sh[-1] if sh else 0) for sh in shapes]
    if len(set(layouts)) > 1:
        raise ValueError(f"{label} has support inputs of shape {shapes[0]} but query inputs of shape {shapes[1]}; "
                         "both must have the same number of features.")
    return layouts[0]


def check_task_layouts(tasks, label):
    """Every task must have the input layout of the first: one network is meta-learned for all."""
    first = None
    for i, task in enumerate(tasks):
        nd, nf = _task_layout(task, label(i))
        if first is None:
            first = (nd, nf)
        elif (nd, nf) != first:
            dims = "" if nd == first[0] else f" ({nd}D input against {first[0]}D)"
            raise ValueError(f"{label(i)} has {nf} features but {label(0)} has {first[1]}{dims}; all tasks of "
                             "meta_fit must have the same input layout (one network is meta-learned for all of "
                             "them): select or pad the features so that every task has the same number.")
