"""Thread policy, in one place: torch's intra-op threads and numba's worker pool.

Two thread pools serve a training step: torch's (BLAS and the elementwise ops) and numba's (the
compiled kernels of :mod:`~sklearn_snn._core.numba_backend`). The rules:

- :func:`torch_threads` sets torch's thread count for a block (the estimators'
  ``torch_num_threads`` parameter, ``model_selection.limit_torch_threads``).
- The compiled kernels follow torch: :func:`kernel_threads` gives them torch's thread count
  (capped by numba's pool) and runs them in parallel only from the main thread, so no threading
  layer ever sees nested or concurrent launches; other threads take the serial builds.
- :func:`start_numba_pool` starts numba's pool once, from the main thread (the first parallel
  kernel call starts it), with a passive wait policy, without changing torch's thread count.
"""

from __future__ import annotations

import contextlib
import os
import threading
from contextlib import contextmanager

import torch

__all__ = ["kernel_threads", "pool_started", "start_numba_pool", "torch_threads"]


@contextmanager
def torch_threads(n):
    """Temporarily set torch's intra-op thread count (``None`` leaves it alone).

    Examples
    --------
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


_POOL = []          # [True] once numba's pool was started


def kernel_threads(numba):
    """Threads for a compiled kernel called from this thread: torch's count, capped by numba's pool,
    set as numba's count; 1 (the serial builds) off the main thread."""
    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if n == 1 or threading.current_thread() is not threading.main_thread():
        return 1
    if not _POOL:
        start_numba_pool(numba)      # not yet started when a background warm-up loaded numba
    numba.set_num_threads(n)
    return n


def pool_started():
    """Whether :func:`start_numba_pool` ran in this process."""
    return bool(_POOL)


def start_numba_pool(numba):
    """Start numba's worker threads with a passive wait policy.

    Numba's default threading layer is an OpenMP runtime separate from the one torch uses. With
    the default (active) policy its idle workers spin for milliseconds after each kernel and take
    the cores from torch's next op -- a training step alternates both many times (measured on
    S2: 109 ms per step instead of 56 ms). ``OMP_WAIT_POLICY`` is read once, when that runtime
    loads, so it is set only around that moment (unless the user chose a policy) and restored.
    """
    if _POOL:
        return
    _POOL.append(True)
    key = "OMP_WAIT_POLICY"
    had = key in os.environ
    if not had:
        os.environ[key] = "PASSIVE"
    n_torch = torch.get_num_threads()
    try:
        # a pool that cannot start leaves the serial kernels usable
        with contextlib.suppress(Exception):
            from numba.np.ufunc import parallel as _parallel

            _parallel._launch_threads()
    finally:
        if not had:
            os.environ.pop(key, None)
        # starting an OpenMP pool can reset the process-wide thread count torch reads
        if torch.get_num_threads() != n_torch:
            torch.set_num_threads(n_torch)
