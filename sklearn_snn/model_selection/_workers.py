"""Keeping torch from oversubscribing cores: a context manager and a Dask worker plugin."""

from __future__ import annotations

import contextlib
import os

__all__ = ["TorchThreadsPlugin", "limit_torch_threads"]


@contextlib.contextmanager
def limit_torch_threads(n_threads):
    """Limit torch's intra-op thread pool inside a ``with`` block.

    ``torch.set_num_threads`` is per process, so the limit applies to every
    thread of the process while the block runs; the previous value is restored
    on exit.  Use it (or the estimators' ``torch_num_threads`` parameter) where
    several fits share a machine: a process pool with ``k`` workers on ``c``
    cores wants ``n_threads = c // k``.  joblib's loky workers already receive
    ``OMP_NUM_THREADS = cpu_count // n_jobs`` and Dask nanny workers
    ``OMP_NUM_THREADS=1``, which torch reads when it starts; threads-only
    setups (``Client(processes=False)``, Optuna ``n_jobs`` threads) get no
    such limit and need this helper or :class:`TorchThreadsPlugin`.

    Parameters
    ----------
    n_threads : int or None
        Number of threads; ``None`` leaves torch alone.

    Examples
    --------
    >>> import torch
    >>> with limit_torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    from ..base import torch_threads  # imports torch; keep it out of module import

    with torch_threads(n_threads):
        yield


class TorchThreadsPlugin:
    """Dask worker plugin that sets torch's thread count on every worker.

    Register it with ``client.register_plugin(TorchThreadsPlugin(1))`` before
    running a search under ``joblib.parallel_config(backend="dask")``.  With
    one worker process per core and ``n_threads=1`` the workers do not
    oversubscribe the machine.

    Parameters
    ----------
    n_threads : int, default=1
        Threads per worker process.

    Examples
    --------
    >>> plugin = TorchThreadsPlugin(1)
    >>> plugin.n_threads
    1
    """

    idempotent = True
    name = "sklearn-snn-torch-threads"

    def __init__(self, n_threads=1):
        self.n_threads = n_threads

    def setup(self, worker=None):
        os.environ["OMP_NUM_THREADS"] = str(self.n_threads)
        import torch

        torch.set_num_threads(int(self.n_threads))

    def teardown(self, worker=None):
        pass

    def transition(self, key, start, finish, **kwargs):
        pass

    def release_key(self, *args, **kwargs):
        pass
