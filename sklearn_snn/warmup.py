"""The compiled kernels, loaded in the background from the moment the package is imported.

The first ``fit`` of a process would otherwise pay for importing numba and loading the kernels it
needs from the disk cache (0.4-1 s; see ``benchmarks/first_call.py``). ``import sklearn_snn``
calls :func:`start`, which does that in a daemon thread while the program goes on (loading its
data, building its estimators): a ``fit`` that starts before the thread is done waits only for
the kernel being loaded and reuses what is loaded. What it loads is what this machine's earlier
processes used (the list kept in the kernel cache directory, see
:func:`~sklearn_snn._core.numba_backend.note_kernels`).

It loads nothing when no earlier process compiled a kernel (no list: numba is not even imported),
and it stops when a ``fit`` epoch starts (that fit loads what it uses; the thread would take GIL
time from it).

Set ``SKLEARN_SNN_WARMUP=0`` to turn it off (the kernels then load on first use, as before); with
``SKLEARN_SNN_NUMBA=0`` or without numba installed nothing starts. ``os.fork()`` waits for the
kernel being loaded (the child starts without the thread and loads what it needs itself).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import threading

__all__ = ["load_kernels", "start"]

_THREAD = []
_START_LOCK = threading.Lock()
_GATE = threading.RLock()       # held while one thing loads; os.fork() waits for it
_EXITING = []


def start():
    """Start loading the compiled kernels in a daemon thread; returns it, or ``None`` when nothing
    starts (``SKLEARN_SNN_WARMUP=0``, ``SKLEARN_SNN_NUMBA=0``, numba not installed). Called once by
    ``import sklearn_snn``; a later call returns the same thread.

    Examples
    --------
    >>> th = start()
    >>> th is None or th.name == "sklearn-snn-warm-up"
    True
    """
    if os.environ.get("SKLEARN_SNN_WARMUP", "1") == "0" or os.environ.get("SKLEARN_SNN_NUMBA", "1") == "0":
        return None
    if importlib.util.find_spec("numba") is None:
        return None     # the pure-torch loops; the first fit says so in its warning
    with _START_LOCK:
        if not _THREAD:
            th = threading.Thread(target=_quietly, name="sklearn-snn-warm-up", daemon=True)
            _THREAD.append(th)
            th.start()
        return _THREAD[0]


def _quietly():
    with contextlib.suppress(Exception):      # a warm-up that fails leaves the first fit to load the kernels
        load_kernels()


def load_kernels():
    """Import numba and load the kernels of the warm-up list
    (:func:`~sklearn_snn._core.numba_backend.note_kernels`), one at a time; on the first run, with
    no list yet, nothing (numba is not even imported). From any thread: a ``fit`` running meanwhile waits for
    the kernel being loaded and reuses it. Returns the number of kernels loaded.

    Examples
    --------
    >>> load_kernels() >= 0
    True
    """
    from ._core import kernels, numba_backend

    if not kernels.listed_families() or kernels.FITTING:
        # nothing compiled on this machine yet: nothing to load, and numba is not imported (a
        # first fit too small to repay compiling runs the torch loops; see worth_compiling)
        return 0
    with _GATE:
        nb = numba_backend.numba_kernels()
    if nb is None:
        return 0
    n = 0
    for load in _loaders(nb, numba_backend):
        with _GATE:               # one kernel at a time: a fork waits at most for the current one
            if _EXITING or kernels.FITTING:
                break       # a fit runs: it loads what it uses (GIL time taken from it otherwise)
            with contextlib.suppress(Exception):   # a stale entry (another template or numba) is skipped
                load()
                n += 1
    return n


def _loaders(nb, backend):
    import pickle

    try:
        with open(backend.warm_list_path(), "rb") as f:
            entries = [e for e, _ in pickle.load(f)]     # (entry, age) pairs, most recently used first
    except Exception:  # noqa: BLE001 -- no list yet (first run) or an unreadable one
        entries = []
    # parallel builds only where their thread pool runs already: loading one starts numba's pool,
    # which must start from the main thread with its passive wait policy (see _core/threads.py)
    from ._core.threads import pool_started

    par_ok = pool_started() or threading.current_thread() is threading.main_thread()
    entries = [e for e in entries if par_ok or not (e[0] == ("par",) or ("parallel", True) in e[0])]

    def first_use():
        import numpy

        x = numpy.zeros((1, 1, 1), numpy.float32)
        nb.ser.leaky(x, numpy.ones(1, numpy.float32), x.copy(), False)

    from numba.core.compiler_lock import global_compiler_lock

    def load(where, name, sig):
        if len(where) == 1:
            fn = getattr(getattr(nb, where[0]), name)
        else:
            fn = getattr(backend.specialised(where[0], **dict(where[1:])), name)
        with global_compiler_lock:
            if tuple(sig) in fn.overloads:
                return
            # from the disk cache only: a kernel that is not there (another numba, a changed
            # template, a cleared cache) is left to its first use rather than compiled here
            if fn._cache.load_overload(sig, fn.targetctx) is None:
                raise LookupError(name)
            fn.compile(sig)
        backend.WARM_LOADED.add((where, name, sig))

    if not entries:
        return [first_use]
    return [lambda e=e: load(*e) for e in entries]


def _before_fork():
    _GATE.acquire()


def _after_fork_in_parent():
    _GATE.release()


def _after_fork_in_child():
    # the warm-up thread did not survive the fork; it held nothing but the gate between loads, so
    # the backend's locks are free: new ones all the same (a fresh process's state)
    global _GATE, _START_LOCK
    _GATE, _START_LOCK = threading.RLock(), threading.Lock()
    _THREAD.clear()
    from ._core import numba_backend

    numba_backend.reset_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)

atexit.register(_EXITING.append, True)   # the thread stops after the kernel it is loading
