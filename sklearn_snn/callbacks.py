"""Epoch callbacks for the shared training loop (``fit(..., epoch_callback=...)``).

A callback is any callable ``cb(estimator, epoch, info) -> bool`` (truthy stops training); a list of
them is accepted too. ``info`` holds ``epoch``, ``loss``, ``reg``, ``time`` and, with
``early_stopping``, ``val_score``.
"""

from __future__ import annotations

import math
import os


class Checkpoint:
    """Write the best model so far to ``path`` (safe format) every ``every`` epochs.

    "Best" is the highest validation score with ``early_stopping=True``, else the lowest
    training loss. Resume a long run with ``sklearn_snn.load(path)`` followed by
    ``set_params(warm_start=True).fit(...)`` or ``partial_fit``.

    Parameters
    ----------
    path : str or path-like
    every : int, default=10
        Check (and write, if improved) every this many epochs; the last epoch is always checked.

    Attributes
    ----------
    best_ : float
        Best monitored value seen.
    saved_epochs_ : list of int
        Epochs at which a file was written.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_snn import SurrogateSNNClassifier, load
    >>> X, y = load_iris(return_X_y=True)
    >>> path = os.path.join(tempfile.mkdtemp(), "best.snn")
    >>> cb = Checkpoint(path, every=2)
    >>> clf = SurrogateSNNClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    >>> clf = clf.fit(X, y, epoch_callback=cb)
    >>> cb.saved_epochs_[0], os.path.exists(path)
    (2, True)
    >>> resumed = load(path).set_params(warm_start=True, max_iter=2).fit(X, y)
    """

    def __init__(self, path, every=10):
        self.path = os.fspath(path)
        self.every = int(every)
        self.best_ = math.nan
        self.saved_epochs_ = []
        self._pending = None

    def __call__(self, estimator, epoch, info):
        import io

        from .persistence import save

        higher = "val_score" in info
        value = info["val_score"] if higher else info["loss"]
        if math.isnan(self.best_) or (value > self.best_ if higher else value < self.best_):
            self.best_ = value
            buf = io.BytesIO()  # snapshot the best state now; written at the next check
            save(estimator, buf)
            self._pending = buf.getvalue()
        last = epoch >= getattr(estimator, "max_iter", epoch)
        if self._pending is not None and (epoch % self.every == 0 or last):
            tmp = self.path + ".tmp"
            with open(tmp, "wb") as fh:
                fh.write(self._pending)
            os.replace(tmp, self.path)  # never leave a half-written checkpoint behind
            self.saved_epochs_.append(epoch)
            self._pending = None
        return False
