"""The compiled backend (optional): numba loops over time for the neuron scan on CPU tensors.

On CPU float32/float64 tensors, when numba is installed (optional: ``pip install numba``), the
compiled ``ScanCompiled`` runs each loop over time as one call -- the forward scan and the adjoint
recurrence of :mod:`~sklearn_snn._core.scan_torch` parallel over the batch (the rows are
independent, even with recurrent weights), named surrogates evaluated inside the loop, the
recurrent input of binary spikes summed from the rows of the neurons that spiked, one 128-byte
column block at a time from a block-major copy of ``W_rec`` (``numba_loops.add_row_blocks``) -- and
stores only the membrane, the spikes (the layer's output, which the next layer keeps
anyway) and, for ``alif``, the adaptation; nothing else of size (T, B, H) is built. A recurrent
layer's adjoint has a dense term ``gi_{t+1} W_rec^T``; a sample's row of it needs only that
sample's adjoint, so the backward kernel (``backward_rec``) still walks time per block of the batch,
each thread computing its rows of the product with a register-blocked loop
(:func:`~sklearn_snn._core.numba_loops.rows_times`, at the core's multiply-add peak: as fast as MKL
on one thread, and twice as fast on two, where one matmul per step over the whole batch gained
little from the second core). The kernels use numpy's error
model (no zero-division check), without which the surrogate's division keeps the lane loops from
vectorising (2.3x slower backward).

The scan kernels are rendered from templates for each combination of flags (constants, so dead
branches vanish) by :func:`specialised`; the other loops are in
:mod:`~sklearn_snn._core.numba_loops`. Everything is compiled lazily on first use and cached on
disk; importing the package does not import numba in the calling thread (a background thread
loads the kernels the last processes used, see :mod:`sklearn_snn.warmup`). :func:`numba_kernels` loads the backend
(``None`` without numba, or with ``SKLEARN_SNN_NUMBA=0``), :func:`kernels` gives the build to use
from the calling thread, :func:`variant` copies a function for a second build. Without numba, for
CUDA tensors, for dtypes other than float32/float64 or for per-neuron parameters not broadcastable
to (H,), the pure-torch ``ScanTorch`` runs instead (see :mod:`~sklearn_snn._core.kernels`): it
computes the same values.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import types

import torch

from . import buffers
from .neuron_source import neuron_update
from .scan_torch import is_tensor, param_grads, reduce_to
from .threads import kernel_threads, start_numba_pool

__all__ = ["LeakyCompiled", "ScanCompiled", "as_numpy", "cache_dir", "kernels", "leaky_ok", "note_kernels", "numba_kernels",
           "per_neuron", "reset_locks", "scan_ok", "shared_module", "specialised", "variant", "warm_list_path", "warm_up"]


_SURROGATE_CODES = {"fast_sigmoid": 0, "sigmoid": 1, "arctan": 2, "triangle": 3, "gaussian": 4,
                    "exponential": 5, "straight_through": 6}
# fpar slots: 0 adapt, 1 rho, 2 one, 3 zero, 4 k, 5..6 surrogate constants
_NPAR = 8


def _surrogate_code(deriv):
    from .surrogate import SURROGATES

    for name, fn in SURROGATES.items():
        if fn is deriv:
            return _SURROGATE_CODES[name]
    return -1


def _surrogate_consts(code, k):
    import math

    if code == 2:
        return 0.5 * k, 0.5 * math.pi * k
    if code == 4:
        return k / math.sqrt(2.0 * math.pi), 0.5
    if code == 5:
        return 0.5 * k, 0.0
    return 0.0, 0.0


_FWD_TEMPLATE = '''
import numpy as np
import numba
from numba import prange

REC, CUBA, ALIF, SUBTRACT, SAVEQ, INPLACE = {rec}, {cuba}, {alif}, {subtract}, {saveq}, {inplace}
# {row_blocks}
from sklearn_snn._core.numba_loops import add_row_blocks


@numba.njit(cache=True, nogil=True, error_model="numpy"{par})
def forward(t0, t1, x, wrec, wpack, beta, alpha, thr, fpar, U, S, Q, A, v, syn, a, sp, nchunks):
    # Steps t0..t1-1. v, syn, a, sp: (B, H) state, current on entry, updated on exit. The batch is
    # split into nchunks blocks (one per thread); each walks time in the outer loop so memory
    # streams. U may be x itself (the membrane overwrites the current it was computed from); Q is
    # a uint8 copy of the spikes, written only when the backward pass needs them.
    # The recurrent input s_(t-1) @ wrec is a sum of the rows of the neurons that spiked: each
    # sample's spiking neurons are listed without branches, then the rows are summed one column
    # block at a time (add_row_blocks) from wpack, wrec's first NB * L columns copied here block
    # by block (wpack[c, j] = wrec[j, c*L:(c+1)*L]) so that a block's rows lie together in L1 while
    # every sample of the thread's share adds from it; the columns past NB * L row by row.
    T, B, H = x.shape
    adapt, rho, one, zero = fpar[0], fpar[1], fpar[2], fpar[3]
    step = (B + nchunks - 1) // nchunks
    NB, L = wpack.shape[0], wpack.shape[2]
    if REC:
        for cb in range(NB):
            for j in range(H):
                pr, wr = wpack[cb, j], wrec[j]
                for q in range(L):
                    pr[q] = wr[cb * L + q]
    for c in {loop}(nchunks):
        b0, b1 = c * step, min(B, (c + 1) * step)
        nl = max(1, b1 - b0) if REC else 1      # the spike lists only a recurrent layer needs
        lists = np.empty((nl, H + 1 if REC else 1), np.int32)
        counts = np.empty(nl, np.int64)
        for t in range(t0, t1):
            if REC:
                for b in range(b0, b1):
                    spb, ur, li = sp[b], U[t, b], lists[b - b0]
                    k = 0
                    for j in range(H):
                        li[k] = j
                        k += spb[j] != zero
                    counts[b - b0] = k
                    if not INPLACE:
                        xr = x[t, b]
                        for h in range(H):
                            ur[h] = xr[h]
                    for q in range(k):
                        wr = wrec[li[q]]
                        for h in range(NB * L, H):
                            ur[h] += wr[h]
                for cb in range(NB):
                    P = wpack[cb]
                    for b in range(b0, b1):
                        add_row_blocks(U[t, b], P, lists[b - b0], 0, counts[b - b0], cb * L)
            for b in range(b0, b1):
                vb, synb, ab, spb = v[b], syn[b], a[b], sp[b]
                ur, sr = U[t, b], S[t, b]
                if INPLACE or REC:
                    xr = ur
                else:
                    xr = x[t, b]
                if ALIF:
                    ar = A[t, b]
                if SAVEQ:
                    qr = Q[t, b]
                for h in range(H):
''' + neuron_update(  # the neuron update, written once (neuron_source.py; the population kernel's too)
    20, cuba="CUBA", alif="ALIF", subtract="SUBTRACT", x="xr[h]", v="vb[h]", syn="synb[h]", a="ab[h]",
    beta="beta[h]", alpha="alpha[h]", thr="thr[h]", adapt="adapt", rho="rho", on_membrane=["ur[h] = u"],
    on_adapt=["ar[h] = ab[h]"], on_spike=["sr[h] = s", "if SAVEQ:", "    qr[h] = 1 if s != zero else 0"],
    on_end=["spb[h] = s"])

_SURR_SRC = {
    -1: "sg = sgr[h]",
    0: "q = one / (one + k * abs(d))\n{ind}sg = q * q",
    1: "q = one / (one + np.exp(-(k * d)))\n{ind}sg = k * q * (one - q)",
    2: "q = c2 * d\n{ind}sg = c1 / (one + q * q)",
    3: "q = one - k * abs(d)\n{ind}sg = k * (q if q > zero else zero)",
    4: "q = k * d\n{ind}sg = c1 * np.exp(-(c2 * (q * q)))",
    5: "sg = c1 * np.exp(-(k * abs(d)))",
    6: "sg = one",
}

_BWD_TEMPLATE = '''
import numpy as np
import numba
from numba import prange

REC, CUBA, ALIF, SUBTRACT, DETACH = {rec}, {cuba}, {alif}, {subtract}, {detach}
NEED_GU, NEED_GS, HAS_GS, INPLACE = {need_gu}, {need_gs}, {has_gs}, {inplace}
{rows_times}

@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def lane(t, b, H, gS, U, Q, A, SG, beta, alpha, thr, rt, gu, ga, gsyn, GX, GU, GS, fpar):
    # Q: the spikes as uint8. With INPLACE the input gradient overwrites the membrane it was
    # computed from (each element is read before it is written), so GX is U.
    adapt, rho, one, zero, k, c1, c2 = fpar[0], fpar[1], fpar[2], fpar[3], fpar[4], fpar[5], fpar[6]
    ur = U[t, b]
    if INPLACE:
        gxr = ur
    else:
        gxr = GX[t, b]
    if HAS_GS:
        gsr = gS[t, b]
    if REC:
        rtr = rt[b]
    if ALIF:
        ar = A[t, b]
    if not SUBTRACT:
        sr = Q[t, b]
    if NEED_GS:
        gso = GS[t, b]
    if NEED_GU:
        guo = GU[t, b]
    if {code} < 0:
        sgr = SG[t, b]
    for h in range(H):
        gv = gu[h] * beta[h]
        if HAS_GS:
            G = gsr[h]
        else:
            G = zero
        if REC:
            G = G + rtr[h]
        if ALIF:
            G = G + ga[h]
        u = ur[h]
        if DETACH:
            gs = G
        elif SUBTRACT:
            gs = G + gv * (-thr[h])
        else:
            gs = G + gv * (-u)
        if NEED_GS:
            gso[h] = gs
        if ALIF:
            d = u - (ar[h] * adapt + thr[h])
        else:
            d = u - thr[h]
        {surrogate}
        gsg = gs * sg
        if SUBTRACT:
            g = gsg + gv
        else:
            g = gsg + (zero if sr[h] != 0 else gv)
        gu[h] = g
        if NEED_GU:
            guo[h] = g
        if ALIF:
            ga[h] = ga[h] * rho - adapt * gsg
        if CUBA:
            g = g + alpha[h] * gsyn[h]
            gsyn[h] = g
        gxr[h] = g


@numba.njit(cache=True, nogil=True, error_model="numpy"{par})
def backward(t_hi, t_lo, gS, U, Q, A, SG, beta, alpha, thr, fpar, GX, GU, GS, gu, ga, gsyn, rt, nchunks):
    # Steps t_hi-1 down to t_lo of a layer without recurrent weights. gu, ga, gsyn: (B, H)
    # adjoint state, carried between calls.
    B = U.shape[1]
    H = U.shape[2]
    step = (B + nchunks - 1) // nchunks
    for c in {loop}(nchunks):
        for t in range(t_hi - 1, t_lo - 1, -1):
            for b in range(c * step, min(B, (c + 1) * step)):
                lane(t, b, H, gS, U, Q, A, SG, beta, alpha, thr, rt, gu[b], ga[b], gsyn[b], GX, GU, GS, fpar)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={{"contract"}}{par})
def backward_rec(gS, U, Q, A, SG, beta, alpha, thr, fpar, GX, GU, GS, gu, ga, gsyn, rt, wT, nchunks):
    # All steps of a recurrent layer, last to first. Each step needs rt = (the next step's input
    # adjoint) @ W_rec^T; a sample's row of it depends only on that sample's own adjoint, so each
    # thread walks time for its block of the batch with its own product (rows_times) and no
    # synchronisation between steps. wT: W_rec^T, contiguous. Multiply-adds may be fused (FMA).
    T, B, H = U.shape
    src = gsyn if CUBA else gu
    step = (B + nchunks - 1) // nchunks
    for c in {loop}(nchunks):
        b0, b1 = c * step, min(B, (c + 1) * step)
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                rows_times(src, wT, rt, b0, b1)
            for b in range(b0, b1):
                lane(t, b, H, gS, U, Q, A, SG, beta, alpha, thr, rt, gu[b], ga[b], gsyn[b], GX, GU, GS, fpar)
'''


def cache_dir():
    """The kernel cache directory: ``SKLEARN_SNN_KERNEL_CACHE``, else ``~/.cache/sklearn_snn/kernels``
    (``$XDG_CACHE_HOME`` honoured), else a per-user folder in the temporary directory."""
    d = os.environ.get("SKLEARN_SNN_KERNEL_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "sklearn_snn", "kernels")
    try:
        os.makedirs(d, exist_ok=True)
        if not os.access(d, os.W_OK):
            raise OSError
    except OSError:
        import tempfile

        d = os.path.join(tempfile.gettempdir(), f"sklearn_snn_kernels_{os.getuid() if hasattr(os, 'getuid') else 0}")
        os.makedirs(d, exist_ok=True)
    return d


_MODULES = {}
_MODULE_LOCK = threading.Lock()
SCAN_KERNEL_NAMES = ("forward", "backward", "backward_rec")
"""The kernels of the modules :func:`specialised` renders (what the warm-up list records)."""


def specialised(kind, **flags):
    """The module of kernels compiled for these flags (constants, so dead branches vanish).

    Each flag combination is rendered from a template into a small source file in a cache
    directory (``SKLEARN_SNN_KERNEL_CACHE``, default ``~/.cache/sklearn_snn/kernels``) and imported
    from there, so numba's on-disk cache keeps the machine code between processes.
    """
    key = (kind,) + tuple(sorted(flags.items()))
    mod = _MODULES.get(key)
    if mod is not None:
        return mod
    with _MODULE_LOCK:
        mod = _MODULES.get(key)
        if mod is not None:
            return mod
        parallel = flags.pop("parallel")
        fmt = dict(flags, par=", parallel=True" if parallel else "", loop="prange" if parallel else "range",
                   rows_times=_inlined_src("rows_times"), row_blocks=_loops_digest())
        if kind == "fwd":
            src = _FWD_TEMPLATE.format(**fmt)
        else:
            fmt["surrogate"] = _SURR_SRC[fmt["code"]].format(ind=" " * 8)
            src = _BWD_TEMPLATE.format(**fmt)
        mod = _MODULES[key] = shared_module(f"snn_{kind}", src)
        return mod


def shared_module(prefix, src):
    """Import ``src`` as a module from a file in the shared kernel cache directory.

    The file is named after a hash of the source and of numba's version, so numba's on-disk cache
    next to it (``__pycache__``) is shared by every process that runs the same kernels with the
    same numba: loky and Dask workers, later sessions, and other virtual environments (whose
    package copies live at other paths, which numba's own per-file cache would keep apart).
    """
    import hashlib
    import importlib.util

    import numba

    digest = hashlib.sha1((numba.__version__ + "\n" + src).encode()).hexdigest()[:16]
    name = f"{prefix}_{digest}"
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    path = os.path.join(cache_dir(), name + ".py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(src)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod      # numba's cache pickles functions by module name
    spec.loader.exec_module(mod)
    return mod


def _loops_digest():
    """A hash of :mod:`~sklearn_snn._core.numba_loops`'s source, written into the rendered forward
    kernel that imports ``add_row_blocks`` from it, so a change there renders (and compiles) anew."""
    import hashlib
    import inspect

    from . import numba_loops

    return hashlib.sha1(inspect.getsource(numba_loops).encode()).hexdigest()[:16]


def _inlined_src(name):
    """The source of a helper of :mod:`~sklearn_snn._core.numba_loops` (``rows_times``) as the
    templates' inlined copy (one definition; numba's disk cache needs the package's source files
    anyway, and a change to the helper changes the rendered file's hash)."""
    import inspect

    from . import numba_loops

    fn = getattr(numba_loops, name)
    src = inspect.getsource(fn.py_func if hasattr(fn, "py_func") else fn)
    return ('\n\n@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")\n'
            + src[src.index(f"def {name}("):])


_LOADED = []                  # [the namespace or None] once loaded
_LOAD_LOCK = threading.Lock()


def numba_kernels():
    """The compiled kernels (a namespace: ``numba``, the ``par`` and ``ser`` builds of
    :data:`~sklearn_snn._core.numba_loops.KERNELS`, ``pack_bits``), or ``None`` when numba is not
    installed (one ``RuntimeWarning`` then says what to install) or disabled with
    ``SKLEARN_SNN_NUMBA=0``. Loads the backend on the first call, once, also when a background
    :func:`warm_up` and the main thread ask at the same time; ``numba_kernels.cache_clear()``
    forgets it (tests)."""
    if not _LOADED:
        with _LOAD_LOCK:
            if not _LOADED:
                _LOADED.append(_load_numba_kernels())
    return _LOADED[0]


numba_kernels.cache_clear = _LOADED.clear


def _load_numba_kernels():
    if os.environ.get("SKLEARN_SNN_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        import warnings

        warnings.warn("numba is not installed, so sklearn-snn runs its pure-torch loops on CPU, which are "
                      "several times slower; install it for the compiled kernels: pip install numba "
                      "(set SKLEARN_SNN_NUMBA=0 to choose the torch loops and silence this warning).",
                      RuntimeWarning, stacklevel=2)
        return None
    # numpy's error model, as the templates: no zero-division checks (with them the W_rec
    # gradient's column-block loop is 1.3x slower, benchmarks/recurrent_sums.py)
    opts = {"cache": True, "nogil": True, "error_model": "numpy"}
    numba_loops = _loops_module(opts)
    par = dict(opts, parallel=True)
    # parallel kernels for the main thread; serial ones (compiled only if used) for calls from
    # other threads, so no threading layer ever sees nested or concurrent launches. The pool is
    # started from the main thread (a background warm-up leaves it to the first kernel_threads())
    if threading.current_thread() is threading.main_thread():
        start_numba_pool(numba)
    fns = numba_loops.KERNELS
    ser = {k: numba.njit(**opts)(variant(f, "ser")) for k, f in fns.items() if k != "sparse_wgrad"}
    # the serial weight gradient is its helper itself (one thread, no per-thread buffers): one
    # compilation less on an empty cache (about 0.6 s)
    ser["sparse_wgrad"] = _serial_wgrad(numba_loops.sparse_wgrad)
    return types.SimpleNamespace(
        numba=numba,
        par=types.SimpleNamespace(**{k: numba.njit(**par)(variant(f, "par")) for k, f in fns.items()}),
        ser=types.SimpleNamespace(**ser),
        helpers=types.SimpleNamespace(sparse_wgrad=numba_loops.sparse_wgrad, pack_bits=numba_loops.pack_bits),
        pack_bits=numba_loops.pack_bits,
    )


def _serial_wgrad(helper):
    def sparse_wgrad(indptr, indices, values, G, gwT, nchunks, binary, block):
        # sparse_wgrad_par with one chunk: the helper over all rows, into gwT (zero on entry)
        helper(indptr, indices, values, G, gwT, 0, G.shape[0], binary, block)

    return sparse_wgrad


def warm_up(background=False):
    """Pay ahead the one-time cost of the compiled backend in a process: import numba and load from
    the disk cache the kernels this machine's earlier processes used (the list :func:`note_kernels`
    keeps; on a first run, with no list, nothing). ``background=True`` does it in a daemon
    thread and returns it (see :mod:`sklearn_snn.warmup`, which ``import sklearn_snn`` starts;
    ``None`` when turned off).

    Examples
    --------
    >>> warm_up() is None
    True
    """
    # the thread, and what os.fork() and the interpreter's exit need of it, live in the package
    from .. import warmup

    if background:
        return warmup.start()
    warmup.load_kernels()
    return None


def reset_locks():
    """New locks for the backend's loading (in a child after ``os.fork()``: see :mod:`sklearn_snn.warmup`)."""
    global _LOAD_LOCK, _MODULE_LOCK
    _LOAD_LOCK, _MODULE_LOCK = threading.Lock(), threading.Lock()


_NOTED = [-1]                   # the kernel count of the last note_kernels() write
WARM_LOADED = set()
"""The kernels the warm-up loaded in this process (:func:`note_kernels` does not count them as used)."""
WARM_MAX, WARM_AGE = 48, 10     # the list's length; processes an entry stays on it without a first use


def warm_list_path():
    """The file of the warm-up's kernel list in :func:`cache_dir` (one per numba version)."""
    import numba

    return os.path.join(cache_dir(), f"warm_up_numba{numba.__version__}.pkl")


def _compiled(nb):
    """The kernels compiled in this process: ``[(where, name, signature)]``, where is ``(build,)``
    for the loops or the key of :func:`specialised` for a template's module."""
    out = []
    for build in ("par", "ser", "helpers"):
        for name, fn in vars(getattr(nb, build)).items():
            out.extend(((build,), name, sig) for sig in getattr(fn, "signatures", ()))
    for key, mod in list(_MODULES.items()):
        for name in SCAN_KERNEL_NAMES:
            out.extend((key, name, sig) for sig in getattr(getattr(mod, name, None), "signatures", ()))
    return out


def note_kernels():
    """Put the kernels this process loaded on the warm-up's list (what :func:`warm_up` loads in the
    next processes; the trainer calls this when a ``fit`` ends, and it runs at exit). Does nothing
    when the backend was not loaded or nothing new was loaded."""
    if not _LOADED or _LOADED[0] is None:
        return
    import pickle

    try:
        mine = _compiled(_LOADED[0])
        if len(mine) == _NOTED[0]:
            return
        path = warm_list_path()
        old = {}
        if os.path.exists(path):
            with open(path, "rb") as f, contextlib.suppress(Exception):    # an unreadable list starts anew
                old = dict(pickle.load(f))
        # {entry: age}: 0 for what this process loaded itself (a first use), one more for the rest,
        # so what no process has needed for WARM_AGE processes leaves the list
        ages = {e: 0 for e in mine if e not in WARM_LOADED}
        for e, age in old.items():
            if e not in ages and age < WARM_AGE:
                ages[e] = age + 1
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(sorted(ages.items(), key=lambda item: item[1])[:WARM_MAX], f)
        os.replace(tmp, path)
        _NOTED[0] = len(mine)
    except Exception:  # noqa: BLE001 -- the list is an optimisation: a read-only or odd cache skips it
        return


atexit.register(note_kernels)     # what ran after the last fit (predict) goes on the list too


def _loops_module(opts):
    """:mod:`~sklearn_snn._core.numba_loops`, imported from its copy in the shared kernel cache (see
    :func:`shared_module`); the package's own module when the cache cannot be written. The copy's
    name hashes the compile options too (``opts``, written into it as a comment): numba's disk
    cache keys a function by its source, not by the options it was compiled with."""
    import inspect

    from . import numba_loops

    try:
        return shared_module("snn_loops", inspect.getsource(numba_loops) + f"\n# compiled with {sorted(opts.items())}\n")
    except OSError:
        return numba_loops


def variant(fn, tag):
    """A copy of ``fn`` under its own name: numba's disk cache is keyed by the function's name and
    line, not by its compile options, so the parallel and the serial build of one function would
    share (and load each other's) cache entries."""
    f = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_{tag}", fn.__defaults__, fn.__closure__)
    f.__qualname__ = f"{fn.__qualname__}_{tag}"
    f.__module__ = fn.__module__
    return f


def kernels():
    """The compiled kernels to use from this thread and their thread count (numba's set to torch's;
    parallel only from the main thread, see :func:`~sklearn_snn._core.threads.kernel_threads`)."""
    nb = numba_kernels()
    n = kernel_threads(nb.numba)
    return (nb.ser, 1) if n == 1 else (nb.par, n)


def as_numpy(t):
    """The numpy view of a CPU tensor, for the kernels' arguments."""
    return t.detach().numpy()


_buf = buffers.empty       # a CPU buffer for the kernels: from the reuse pool while training (pooled)


def per_neuron(p, H, like):
    """A parameter as a contiguous (H,) tensor, or None when it does not broadcast to (H,)."""
    t = torch.as_tensor(p, dtype=like.dtype, device=like.device).detach()
    if t.dim() > 1 and any(n != 1 for n in t.shape[:-1]):
        return None
    t = t.reshape(-1) if t.dim() else t.reshape(1)
    if t.numel() not in (1, H):
        return None
    return t.expand(H).contiguous()


_PN_CACHE = {}


def _pn(p, H, like):
    """:func:`per_neuron` as a numpy array for the kernels; constants are built once."""
    if is_tensor(p):
        return as_numpy(per_neuron(p, H, like))
    key = (float(p), H, like.dtype)
    a = _PN_CACHE.get(key)
    if a is None:
        if len(_PN_CACHE) > 256:
            _PN_CACHE.clear()
        a = _PN_CACHE[key] = as_numpy(per_neuron(p, H, like))
    return a


def scan_ok(x, w_rec, params):
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.dim() != 3:
        return False
    if w_rec is not None and (w_rec.device.type != "cpu" or w_rec.dtype != x.dtype):
        return False
    return all(not is_tensor(p) or (p.device.type == "cpu" and per_neuron(p, x.shape[2], x) is not None)
               for p in params)


class ScanCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_rec, beta, alpha, thr, v0, syn0, a0, s0, spec, deriv, slope, inplace, record):
        _, n = kernels()
        T, B, H = x.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract = spec.reset == "subtract"
        bt, at, tt = (_pn(p, H, x) for p in (beta, alpha, thr))
        xc = x.detach()
        inplace = bool(inplace) and xc.is_contiguous()
        if not inplace:
            xc = xc.contiguous()
        # a graph is recorded (record: grad mode was on outside; needs_input_grad alone also says
        # True under no_grad for parameters): then the whole-sequence buffers come from the reuse
        # pool (see buffers.py), and the spikes are kept for the backward pass where it reads them
        train = record and any(ctx.needs_input_grad[:5])
        U = xc if inplace else _buf((T, B, H), xc.dtype, train)
        S = _buf((T, B, H), xc.dtype, train)
        # the backward pass reads the spikes only for zero reset, recurrent weights and the
        # parameter gradients; then they are kept as uint8 (a quarter of the float copy)
        need_params = any(ctx.needs_input_grad[2:5])
        save_q = train and (not subtract or rec or need_params)
        Q = _buf((T, B, H), torch.uint8, train) if save_q else torch.empty((1, 1, 1), dtype=torch.uint8)
        A = _buf((T, B, H), xc.dtype, train) if alif else xc.new_empty((1, 1, 1))
        fin = [s.detach().to(x.dtype, copy=True).contiguous() for s in (v0, syn0, a0, s0)]
        fpar = _fpar(spec, x.dtype, slope, -1)
        wr = w_rec.detach().contiguous() if rec else _dummy(xc.dtype, 2)
        mod = specialised("fwd", rec=rec, cuba=cuba, alif=alif, subtract=subtract, saveq=save_q,
                           inplace=inplace, parallel=n > 1)
        # the recurrent weights' column blocks, filled by the kernel (see its comment): a torch
        # buffer, so each block's rows start 64-byte aligned
        from .numba_loops import ROW_BLOCK_BYTES

        width = ROW_BLOCK_BYTES // xc.element_size()
        wpack = torch.empty((H // width, H, width), dtype=xc.dtype) if rec else _dummy(xc.dtype, 3)
        mod.forward(0, T, as_numpy(xc), as_numpy(wr), as_numpy(wpack), bt, at, tt, fpar,
                    *(as_numpy(a) for a in (U, S, Q, A, *fin)), min(n, B))
        ctx.spec, ctx.deriv, ctx.slope = spec, deriv, slope
        ctx.params = (beta, alpha, thr)
        ctx.set_materialize_grads(False)      # no (T, B, H) zeros for the membrane's unused gradient
        ctx.inplace, ctx.consumed = inplace, False
        ctx.save_for_backward(w_rec, U, Q if save_q else None, A if alif else None, v0, syn0, a0, s0)
        final = tuple(fin)
        ctx.mark_non_differentiable(U, *final)
        return (S, U) + final

    @staticmethod
    def backward(ctx, gS, gU, *g_final):
        if ctx.consumed:
            raise RuntimeError(
                "This spiking layer's backward pass already ran and reused its stored membrane for the "
                "gradient (to save memory), so it cannot run twice (retain_graph=True). Run the "
                "forward pass again for a second backward pass.")
        _, n = kernels()
        w_rec, U, Q, A, v0, syn0, a0, s0 = ctx.saved_tensors
        spec, deriv, slope = ctx.spec, ctx.deriv, ctx.slope
        beta, alpha, thr = ctx.params
        T, B, H = U.shape
        cuba, alif, rec = spec.uses_synapse, spec.adaptive, w_rec is not None
        subtract = spec.reset == "subtract"
        need_params = any(ctx.needs_input_grad[2:5])
        code = _surrogate_code(deriv)
        SG = _dummy(U.dtype, 3)
        if code < 0 or need_params:
            theta = (A * spec.adapt + thr) if alif else thr
            SG = deriv(U - theta, slope).contiguous()
            code = -1
        bt, at, tt = (_pn(p, H, U) for p in (beta, alpha, thr))
        need_gu = cuba and need_params
        need_gs = bool(ctx.needs_input_grad[4])
        # the input gradient may take the membrane's buffer when the membrane is not needed
        # afterwards (the parameter gradients read it) and the caller handed it over (inplace)
        inplace = ctx.inplace and not need_params
        GX = U if inplace else _buf((T, B, H), U.dtype)
        GU = _buf((T, B, H), U.dtype) if need_gu else _dummy(U.dtype, 3)
        GS = _buf((T, B, H), U.dtype) if need_gs else _dummy(U.dtype, 3)
        has_gs = gS is not None
        gSc = gS.contiguous() if has_gs else _dummy(U.dtype, 3)
        Ac = A if alif else _dummy(U.dtype, 3)
        Qc = Q if Q is not None else torch.empty((1, 1, 1), dtype=torch.uint8)
        fpar = _fpar(spec, U.dtype, slope, code)
        mod = specialised("bwd", rec=rec, cuba=cuba, alif=alif, subtract=subtract, detach=spec.detach_reset,
                           code=code, need_gu=need_gu, need_gs=need_gs, has_gs=has_gs, inplace=inplace,
                           parallel=n > 1)
        gu, ga, gsyn = (torch.zeros((B, H), dtype=U.dtype) for _ in range(3))
        rt = torch.zeros((B, H), dtype=U.dtype) if rec else _dummy(U.dtype, 2)
        arrs = [as_numpy(a) for a in (gSc, U, Qc, Ac, SG)]
        tail = [as_numpy(a) for a in (GX, GU, GS, gu, ga, gsyn, rt)]
        if not rec:
            mod.backward(T, 0, *arrs, bt, at, tt, fpar, *tail, min(n, B))
        else:
            # W_rec^T made contiguous once: the rows of the per-step products
            wT = w_rec.detach().t().contiguous()
            mod.backward_rec(*arrs, bt, at, tt, fpar, *tail, as_numpy(wT), min(n, B))
        grads = [None] * 14
        if rec and ctx.needs_input_grad[1]:
            # sum_t s_(t-1)^T gi_t from the stored uint8 spikes, after the loop: the samples split
            # between the threads, each summing into its own (H, H) (q0: the initial spikes, t = 0)
            nb, _ = kernels()
            q0 = (s0.detach() != 0).to(torch.uint8).expand(B, H).contiguous()
            gw = torch.zeros((H, H), dtype=U.dtype)
            nb.rec_wgrad(as_numpy(Q), as_numpy(q0), as_numpy(GX), as_numpy(gw), max(1, min(n, B)))
            grads[1] = gw
        ctx.consumed = inplace
        if not cuba:
            GU = GX
        grads[0] = GX if ctx.needs_input_grad[0] else None
        if need_params:
            S = Q.to(U.dtype)
            grads[2:5] = param_grads(ctx.needs_input_grad, U, S, GU, GX, GS, SG, v0, syn0,
                                      beta, alpha, thr, cuba, subtract)
        return tuple(grads)


_DUMMIES = {}


def _dummy(dtype, ndim):
    """A tiny placeholder array for kernel arguments a specialisation never reads."""
    key = (dtype, ndim)
    d = _DUMMIES.get(key)
    if d is None:
        d = _DUMMIES[key] = torch.zeros((1,) * ndim, dtype=dtype)
    return d


_FPAR_CACHE = {}


def _fpar(spec, dtype, slope, code):
    key = (spec.adapt, spec.rho, dtype, slope, code)
    a = _FPAR_CACHE.get(key)
    if a is None:
        import numpy

        c1, c2 = _surrogate_consts(code, slope)
        nd = numpy.float32 if dtype == torch.float32 else numpy.float64
        if len(_FPAR_CACHE) > 256:
            _FPAR_CACHE.clear()
        a = _FPAR_CACHE[key] = numpy.array([spec.adapt, spec.rho, 1.0, 0.0, slope, c1, c2, 0.0], dtype=nd)
    return a


class LeakyCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta):
        nb, _ = kernels()
        bt = per_neuron(beta, x.shape[2], x)
        xc = x.detach().contiguous()
        V = torch.empty_like(xc)
        nb.leaky(as_numpy(xc), as_numpy(bt), as_numpy(V), False)
        ctx.beta = beta
        ctx.save_for_backward(V if is_tensor(beta) else None, bt)
        return V

    @staticmethod
    def backward(ctx, gV):
        nb, _ = kernels()
        V, bt = ctx.saved_tensors
        G = torch.empty_like(gV, memory_format=torch.contiguous_format)
        nb.leaky(as_numpy(gV.contiguous()), as_numpy(bt), as_numpy(G), True)
        gbeta = None
        if is_tensor(ctx.beta) and ctx.needs_input_grad[1]:
            V_prev = torch.cat([torch.zeros_like(V[:1]), V[:-1]], 0)
            gbeta = reduce_to((G * V_prev).sum((0, 1)), ctx.beta)
        return G, gbeta


def leaky_ok(x, beta):
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.dim() == 3
            and (not is_tensor(beta) or (beta.device.type == "cpu" and per_neuron(beta, x.shape[2], x) is not None)))

