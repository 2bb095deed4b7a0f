"""Callbacks for the one trainer (``fit(..., epoch_callback=...)`` of every iterative estimator).

A callback is any callable ``cb(estimator, epoch, info) -> bool`` (truthy stops training); a list of
them is accepted too. ``info`` holds ``epoch``, ``time`` and what the method measured: ``loss`` and
``reg`` for gradient training (``val_score`` with ``early_stopping``), ``fitness`` for evolution,
``mean_rate`` for STDP, ``meta_loss`` for meta-training. When the estimator is handed over, its
history (``n_iter_``, ``loss_curve_``, ...) is up to date. A callback may also have an
``on_train_end(estimator, info)`` method, called when training ends for any reason
(``info['reason']``); see :mod:`sklearn_snn.training`.
"""

from __future__ import annotations

import io
import math
import os

from sklearn.exceptions import NotFittedError


class Checkpoint:
    """Write the best model so far to ``path`` (safe format) every ``every`` epochs, and when
    training ends for any reason (``max_iter``, early stopping, another callback, Ctrl-C, a
    diverged loss), so a run cut short loses nothing.

    "Best" is the highest validation score with ``early_stopping=True``, else the lowest
    training loss (the highest fitness for ``EvolvedSNN``); for a method with no such measure
    (STDP) the latest epoch. The file holds the whole fitted state of that epoch, history included
    (``n_iter_``, ``loss_curve_``, ``t_``, ``best_loss_``, ...). Resume a long run with
    ``sklearn_snn.load(path)`` followed by ``set_params(warm_start=True).fit(...)`` or
    ``partial_fit``.

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
        The epoch of each state written (the best epoch so far at each write).

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
        from .persistence import save

        key, higher = next(((k, h) for k, h in (("val_score", True), ("fitness", True), ("loss", False))
                            if k in info), (None, True))
        value = info[key] if key is not None else float(epoch)
        if math.isnan(self.best_) or (value > self.best_ if higher else value < self.best_):
            buf = io.BytesIO()  # snapshot the best state now; written at the next check
            try:
                save(estimator, buf)
            except NotFittedError:   # no network yet (ConvertedSNN trains its ANN before converting)
                return False
            self.best_ = value
            self._pending = (epoch, buf.getvalue())
        last = epoch >= getattr(estimator, "max_iter_", getattr(estimator, "max_iter", epoch))  # max_iter_: 'auto' resolved
        if epoch % self.every == 0 or last:
            self._write()
        return False

    def on_train_end(self, estimator, info):
        """Training ended (``info['reason']``): write the best state not yet on disk."""
        self._write()

    def _write(self):
        if self._pending is None:
            return
        epoch, data = self._pending
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.path)  # never leave a half-written checkpoint behind
        self.saved_epochs_.append(epoch)
        self._pending = None
