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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .neurons import NeuronSpec
from .numba_backend import LeakyCompiled, ScanCompiled, leaky_ok, numba_kernels, scan_ok
from .projections import (
    NARROW_MAX_OUT,
    NARROW_MIN_ROWS,
    SPARSE_DENSITY,
    SPARSE_MIN_OUT,
    sparse_linear,
)
from .scan_torch import LeakyTorch, ScanTorch, is_tensor, reference_scan, wta_scan
from .surrogate import get_surrogate

__all__ = ["NARROW_MAX_OUT", "NARROW_MIN_ROWS", "SPARSE_DENSITY", "SPARSE_MIN_OUT", "Backend", "backend_names",
           "leaky_integrate", "reference_scan", "register_backend", "select_backend", "sparse_linear",
           "spiking_scan"]


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
