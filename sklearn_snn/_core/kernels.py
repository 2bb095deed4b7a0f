"""Fused time loops: the entry points of the neuron scan, and the registry of their backends.

:func:`spiking_scan` runs a population of spiking neurons over all time steps of precomputed input
currents ``x`` of shape ``(T, B, H)`` as one autograd node with a hand-written backward pass (the
adjoint math is in :mod:`~sklearn_snn._core.scan_torch`); :func:`leaky_integrate` is the
non-spiking leaky integrator, :func:`sparse_linear` the input projection for mostly-zero inputs
(spike trains, see :mod:`~sklearn_snn._core.projections`), :func:`reference_scan` the plain
per-step autograd loop the tests hold the backends to.

Backends. Each operation (``'scan'``, ``'leaky'``) has implementations registered under a name
with :func:`register_backend`: ``'torch'`` (:mod:`~sklearn_snn._core.scan_torch`: any device, any
dtype, always accepted) and ``'numba'`` (:mod:`~sklearn_snn._core.numba_backend`: compiled loops
for CPU float32/float64 tensors, when numba is installed). :func:`select_backend` picks one per
call: ``backend='auto'`` takes the highest-priority backend that accepts the arguments and is
available, a name forces that backend (an error when it cannot run). ``SKLEARN_SNN_NUMBA=0``
disables the compiled one. Thread policy is in :mod:`~sklearn_snn._core.threads`.

When compiling pays. Compiling a kernel costs seconds once per machine (then it loads from the disk
cache), so ``'auto'`` on CPU runs the torch loops instead during a fit whose whole work is too small
to repay compiling (decided from the arguments only, so every process gives the same bits):
:func:`worth_compiling` (for the scan, the fit's minibatch steps x
(T + T B H / 12000) against :data:`COMPILE_MIN_WORK`; the trainer
declares the steps).
Both backends compute the same values (up to float rounding); a named backend,
``SKLEARN_SNN_NUMBA=1`` (always compiled) and ``SKLEARN_SNN_NUMBA=0`` (never) bypass the rule.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, NamedTuple

import torch

from .neurons import NeuronSpec
from .numba_backend import (
    LeakyCompiled,
    ScanCompiled,
    cache_dir,
    leaky_ok,
    numba_kernels,
    scan_ok,
)
from .projections import (
    NARROW_MAX_OUT,
    NARROW_MIN_ROWS,
    SPARSE_DENSITY,
    SPARSE_MIN_OUT,
    sparse_linear,
)
from .scan_torch import LeakyTorch, ScanTorch, is_tensor, reference_scan, wta_scan
from .surrogate import get_surrogate

__all__ = ["COMPILE_MIN_WORK", "NARROW_MAX_OUT", "NARROW_MIN_ROWS", "SPARSE_DENSITY", "SPARSE_MIN_OUT", "Backend", "backend_names", "fit_work",
           "leaky_integrate", "listed_families", "reference_scan", "register_backend", "select_backend", "sparse_linear",
           "spiking_scan", "worth_compiling"]


# ---- backend registry -------------------------------------------------------------------------

class Backend(NamedTuple):
    """One implementation of an operation (an autograd ``Function``) and when it can run it."""

    name: str
    impl: Any
    ok: Callable[..., bool] | None       # accepts the call's arguments (None: always)
    available: Callable[[], bool] | None  # installed and enabled (None: always)
    priority: int                          # 'auto' tries higher first
    needs: str                             # why it is unavailable (ImportError when forced)
    accepts: str                           # what it runs (ValueError when forced on other input)


_BACKENDS: dict[str, dict[str, Backend]] = {}   # op -> name -> backend, in registration order
_AUTO: dict[str, list[Backend]] = {}            # op -> its backends by priority, for 'auto'


def register_backend(op, name, impl, ok=None, available=None, priority=0, needs="", accepts=""):
    """Register ``impl`` (an autograd ``Function``) as backend ``name`` of operation ``op``.

    ``ok(*args)`` says whether it runs the arguments :func:`select_backend` receives,
    ``available()`` whether it can run at all (e.g. its compiler is installed); ``backend='auto'``
    tries the backends of ``op`` from the highest ``priority`` down. Registering a name again
    replaces that backend.
    """
    table = _BACKENDS.setdefault(op, {})
    table[name] = Backend(name, impl, ok, available, priority, needs, accepts)
    _AUTO[op] = sorted(table.values(), key=lambda b: -b.priority)   # stable: ties keep their order


def backend_names(op="scan"):
    """The values of the ``backend`` argument for ``op``: ``'auto'`` and every registered name."""
    return ["auto", *_BACKENDS[op]]


def select_backend(op, backend, *args):
    """The implementation of ``op`` to run on ``args`` for the ``backend`` argument.

    ``'auto'``: the first backend by priority that accepts ``args`` and is available (its
    ``ok`` is asked first, so an unaccepted call never loads a backend). A name: that backend;
    ``ImportError`` when it is unavailable, ``ValueError`` when it does not accept ``args``.

    Examples
    --------
    >>> import torch
    >>> select_backend("scan", "torch", torch.zeros(2, 1, 1), None, (0.9, 0.9, 1.0)).__name__
    'ScanTorch'
    """
    if backend == "auto":
        for b in _AUTO[op]:
            if (b.ok is None or b.ok(*args)) and (b.available is None or b.available()):
                return b.impl
    else:
        b = _BACKENDS[op].get(backend)
        if b is not None:
            if b.available is not None and not b.available():
                raise ImportError(f"backend={backend!r} needs {b.needs}.")
            if b.ok is not None and not b.ok(*args):
                raise ValueError(f"backend={backend!r} runs {b.accepts} only.")
            return b.impl
    names = backend_names(op)
    raise ValueError(f"backend must be {', '.join(map(repr, names[:-1]))} or {names[-1]!r}, got {backend!r}.")


def _numba_available():
    return numba_kernels() is not None


_NUMBA = {"available": _numba_available, "priority": 10, "needs": "numba (pip install numba)",
          "accepts": "CPU float32/float64 tensors with per-neuron parameters"}
register_backend("scan", "torch", ScanTorch)
register_backend("scan", "numba", ScanCompiled, ok=scan_ok, **_NUMBA)
register_backend("leaky", "torch", LeakyTorch)
register_backend("leaky", "numba", LeakyCompiled, ok=leaky_ok, **_NUMBA)


# ---- when compiling pays (the rule of backend='auto' for kernels not yet compiled here) ----------

COMPILE_MIN_WORK = {"scan": 2e5, "leaky": 3e4, "sparse_project": 5e8, "narrow_gx": 5e8}
"""The work below which ``backend='auto'`` runs the torch loops rather than compile a kernel not in the
kernel cache yet (:func:`worth_compiling`), over the whole fit (its epochs x minibatches): scan, T + T B H / 12000 (compiling its
forward and backward costs 1-1.5 s; it saves 2-11 us a step, 0.1-1.3 ns a neuron-step); leaky
readout, steps (0.2-0.7 s; about 20 us a step); projections, input elements (sparse loops 2-3 s;
about 4 ns an element). Measured on the 2-core machine (``benchmarks/first_call.py --compiled``)."""
_SCOPE, _LISTED = threading.local(), [None, frozenset()]    # a fit's steps; ((path, mtime), listed families)
FITTING = []                    # one entry per fit epoch running (any thread)


@contextlib.contextmanager
def fit_work(calls):
    """Within: this thread's compiled-kernel decisions (:func:`worth_compiling`) count each call
    ``calls`` times (the fit's minibatch steps; the trainer sets it)."""
    prev = getattr(_SCOPE, "calls", None)
    _SCOPE.calls = max(1, int(calls))
    FITTING.append(calls)       # the background warm-up stops loading while a fit runs (sklearn_snn.warmup)
    try:
        yield
    finally:
        _SCOPE.calls = prev
        FITTING.pop()


@contextlib.contextmanager
def inference_work(calls):
    """Within: as :func:`fit_work`, for an inference call (predict, transform, simulate) of ``calls``
    batches: a call too small to repay compiling a kernel runs the torch loops (forward only; on
    the CPU in float64, where the two paths agree to rounding). The background warm-up keeps loading.

    Examples
    --------
    >>> with inference_work(calls=4):
    ...     worth_compiling(("scan",), work=100)      # 400 < 2e5: the torch loops
    False
    """
    prev = getattr(_SCOPE, "calls", None)
    _SCOPE.calls = max(1, int(calls))
    try:
        yield
    finally:
        _SCOPE.calls = prev


@contextlib.contextmanager
def calls_per_step(n):
    """Within: each kernel call counts as one of ``n`` per minibatch step of the current fit (truncated
    BPTT runs every window twice), so :func:`worth_compiling` weighs the fit's whole work. Outside a
    fit nothing changes.

    Examples
    --------
    >>> with fit_work(calls=10), calls_per_step(8):
    ...     worth_compiling(("scan",), work=2500)       # 10 steps x 8 calls x 2500 = 2e5
    True
    """
    calls = getattr(_SCOPE, "calls", None)
    if calls is None:
        yield
        return
    _SCOPE.calls = calls * max(1, int(n))
    try:
        yield
    finally:
        _SCOPE.calls = calls


def listed_families():
    """The kernel families on the warm-up list (what this machine's earlier processes compiled), read
    without importing numba; empty without numba or a list.

    Examples
    --------
    >>> isinstance(listed_families(), frozenset)
    True
    """
    try:
        version = _LISTED[2] if len(_LISTED) > 2 else _LISTED.append(metadata.version("numba")) or _LISTED[2]
        path = os.path.join(cache_dir(), f"warm_up_numba{version}.pkl")
        key = (path, os.stat(path).st_mtime_ns)
    except Exception:  # noqa: BLE001 -- no numba, no list: nothing compiled here yet
        return frozenset()
    if _LISTED[0] != key:
        import pickle

        class Stub:      # numba's signature types, unpickled without importing numba (the warm-up
            def __init__(self, *a, **k):      # thread may be importing it: no concurrent import)
                pass

            def __setstate__(self, state):
                pass

        class NoNumba(pickle.Unpickler):
            def find_class(self, module, name):
                return Stub if module.split(".")[0] in ("numba", "llvmlite") else super().find_class(module, name)

        fams = set()
        with contextlib.suppress(Exception), open(path, "rb") as f:
            for (where, name, _), _age in NoNumba(f).load():
                if where[0] == "fwd":
                    fl = dict(where[1:])
                    fams.add(("scan", fl["rec"], fl["cuba"], fl["alif"], fl["subtract"]))
                else:
                    fams.add((name.rsplit("_", 1)[0] if name.endswith(("_ser", "_par")) else name,))
        _LISTED[:2] = [key, frozenset(fams)]
    return _LISTED[1]


def worth_compiling(family, work):
    """Whether ``backend='auto'`` runs the compiled kernels of ``family`` for a call of ``work``.

    Yes outside a fit or an inference call (:func:`fit_work`, :func:`inference_work`: direct kernel
    calls), with ``SKLEARN_SNN_NUMBA=1``, or when ``work`` times the call's minibatch steps reaches
    :data:`COMPILE_MIN_WORK`; otherwise the torch loops (the same values up to float rounding) cost
    this call less than compiling. The choice depends on the
    arguments only, never on timing, the kernel cache or what this process ran before, so a fit
    gives the same bits in every process (loky and Dask workers included). ``family``:
    ``('scan', rec, cuba, alif, subtract)``, ``('leaky',)``, ``('sparse_project',)`` or
    ``('narrow_gx',)``.

    Examples
    --------
    >>> COMPILE_MIN_WORK["example"] = 1000       # 10 steps of work 50 or 200
    >>> with fit_work(calls=10):
    ...     worth_compiling(("example",), work=50), worth_compiling(("example",), work=200)
    (False, True)
    >>> del COMPILE_MIN_WORK["example"]
    """
    calls = getattr(_SCOPE, "calls", None)
    if calls is None or os.environ.get("SKLEARN_SNN_NUMBA") == "1":
        return True             # outside a fit or an inference call (direct calls), or forced: compiled
    return work * calls >= COMPILE_MIN_WORK[family[0]]


# ---- entry points -----------------------------------------------------------------------------

def _as_param(value, like):
    if is_tensor(value):
        return value.to(dtype=like.dtype)
    return float(value)


def spiking_scan(x, spec: NeuronSpec, surrogate="fast_sigmoid", slope=10.0, w_rec=None,
                 beta=None, alpha=None, threshold=None, state=None, backend="auto", inplace=False, wta=False):
    """Run a spiking population over all steps of the input currents ``x`` (T, B, H).

    Parameters
    ----------
    x : Tensor of shape (T, B, H)
        Input current per step (already projected through the feed-forward weights).
    spec : NeuronSpec
    surrogate, slope :
        Surrogate derivative used in the backward pass.
    w_rec : Tensor of shape (H, H), optional
        Recurrent weights: step ``t`` receives ``s_{t-1} @ w_rec``.
    beta, alpha, threshold : float or Tensor broadcastable to (H,), optional
        Override the spec (learned neuron parameters; gradients flow to tensors).
    state : tuple, optional
        ``(v, syn, a, s)`` to start from (no gradient flows into it), e.g. from the previous
        window in truncated BPTT.
    backend : {'auto', 'torch', 'numba'}
        ``'auto'`` runs the compiled loops when numba is installed and the tensors are on CPU
        (float32/float64), the torch loops otherwise (e.g. on CUDA); both compute the same.
    inplace : bool
        Memory saving for callers that own ``x`` (an intermediate such as a layer's projected
        current): the membrane is written over ``x``, and the compiled backward pass writes the
        input gradient over the stored membrane. ``x`` (and the returned membrane) must not be
        read after the backward pass, and that backward pass can run only once.
    wta : bool, default=False
        Hard winner-take-all, forward only: every step at most one neuron per sample spikes, the
        one furthest above its threshold (the first on ties, and only if it is at or above it),
        and that winner then resets every membrane of its sample to 0 (after its own reset).
        Runs on the torch backend (``'auto'`` picks it; ``'numba'`` / ``'triton'`` raise
        ``ValueError``), builds no graph (``ValueError`` when a gradient would be required: call
        it under ``torch.no_grad()``); ``surrogate``, ``slope`` and ``inplace`` are unused.
        Soft inhibition needs no option: ``w_rec = -k (1 1^T - I)`` subtracts ``k`` times the
        number of other neurons that spiked at the previous step.

    Returns
    -------
    spikes : Tensor (T, B, H)
    membrane : Tensor (T, B, H)
        Membrane before reset (no gradient).
    state : tuple
        Final ``(v, syn, a, s)``, detached.

    Examples
    --------
    >>> import torch
    >>> spec = NeuronSpec("lif", beta=0.5)
    >>> s, u, _ = spiking_scan(torch.full((3, 1, 1), 0.8), spec)
    >>> s.flatten().tolist(), [round(v, 2) for v in u.flatten().tolist()]
    ([0.0, 1.0, 0.0], [0.8, 1.2, 0.9])

    With ``wta=True`` only the neuron furthest above its threshold spikes, and it resets both
    (without it, neuron 0 spikes at step 1 on the membrane kept from step 0):

    >>> x = torch.tensor([[[0.8, 1.5]], [[0.6, 0.0]]])
    >>> spiking_scan(x, spec, wta=True)[0].squeeze(1).tolist(), spiking_scan(x, spec)[0].squeeze(1).tolist()
    ([[0.0, 1.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]])
    """
    T, B, H = x.shape
    beta = _as_param(spec.beta if beta is None else beta, x)
    alpha = _as_param(spec.alpha if alpha is None else alpha, x)
    thr = _as_param(spec.threshold if threshold is None else threshold, x)
    if state is None:
        z = x.new_zeros((B, H))
        state = (z, z, z, z)
    v0, syn0, a0, s0 = (x.new_zeros((B, H)) if t is None else t.detach().to(x.dtype) for t in state)
    if wta:  # hard winner-take-all: torch forward only (scan_torch.wta_scan)
        if backend not in ("auto", "torch"):
            if backend in _BACKENDS["scan"]:
                raise ValueError(f"spiking_scan(wta=True) runs on the torch backend only, got backend={backend!r}: "
                                 f"pass backend='auto' or 'torch'.")
            select_backend("scan", backend, x, w_rec, (beta, alpha, thr))  # an unknown name: its error
        out = wta_scan(x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec)
        return out[0], out[1], tuple(out[2:])
    family = ("scan", w_rec is not None, spec.uses_synapse, spec.adaptive, spec.reset == "subtract")
    if backend == "auto" and x.device.type == "cpu" and not worth_compiling(family, T + T * B * H / 12000):
        backend = "torch"       # compiling would cost this fit more than it saves (module docstring)
    fn = select_backend("scan", backend, x, w_rec, (beta, alpha, thr))
    inplace = bool(inplace) and x.is_contiguous()
    out = fn.apply(x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, get_surrogate(surrogate), float(slope),
                   inplace, torch.is_grad_enabled())
    return out[0], out[1], tuple(out[2:])


def leaky_integrate(x, beta, backend="auto"):
    """Non-spiking leaky integrator ``v_t = beta v_{t-1} + x_t`` over (T, B, O) in a fused loop.

    Examples
    --------
    >>> import torch
    >>> leaky_integrate(torch.ones(3, 1, 1), 0.5).flatten().tolist()
    [1.0, 1.5, 1.75]
    """
    beta = _as_param(beta, x)
    if backend == "auto" and x.device.type == "cpu" and x.dim() == 3 and not worth_compiling(("leaky",), x.shape[0]):
        backend = "torch"
    return select_backend("leaky", backend, x, beta).apply(x, beta)


# ---- Triton backend registration (H5, issue #21; the backend is in triton_backend.py) ----------
# 'auto' picks it for CUDA float32/float16/bfloat16 tensors when triton imports; CPU tensors only
# in Triton's interpreter on request (TRITON_INTERPRET=1 and SKLEARN_SNN_TRITON_CPU=1, for tests).
from .triton_backend import TRITON as _TRITON
from .triton_backend import LeakyTriton, ScanTriton
from .triton_backend import leaky_ok as _triton_leaky_ok
from .triton_backend import scan_ok as _triton_scan_ok

register_backend("scan", "triton", ScanTriton, ok=_triton_scan_ok, **_TRITON)
register_backend("leaky", "triton", LeakyTriton, ok=_triton_leaky_ok, **_TRITON)
# ---- end of the Triton backend registration ---------------------------------------------------
