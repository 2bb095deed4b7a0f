"""The compiled population kernel of :class:`~sklearn_snn._core.evolution.PopulationSNN`, generated
from the neuron update of the time scan's forward template.

:func:`kernel_source` writes the kernel's source; its neuron updates -- a lean one for the common
case (no synaptic current, no adaptation, subtractive reset) and a general one whose model and
reset are per-layer run-time flags -- are rendered by
:func:`~sklearn_snn._core.neuron_source.neuron_update`, which also renders the scan's (one
definition of the arithmetic). :func:`population_kernel` compiles it through the numba backend's
source modules (:func:`~sklearn_snn._core.numba_backend.shared_module`): the file is named after a
hash of its source, so numba's disk cache of it is shared by every process, as for the scan's
kernels. One kernel serves every network configuration (one compilation per dtype); two builds: a
parallel one for the main thread and a serial one for calls from other threads (see
:mod:`~sklearn_snn._core.threads`). Importing this module does not import numba.
"""

from __future__ import annotations

import threading

from .neuron_source import neuron_update
from .numba_backend import shared_module

__all__ = ["READOUT_CODES", "kernel_source", "population_kernel"]

READOUT_CODES = {"spike_count": 0, "first_spike": 1, "membrane_max": 2, "membrane_last": 3, "membrane_mean": 4}

_TEMPLATE = '''\
import numba
from numba import prange


@numba.njit(cache=True, nogil=True, error_model="numpy"{par})
def population_kernel(cur0, W, p_base, n_p, lay, fpar, consts, ipar, logits, spk, counts,
                      V_, S_, SYN_, A_, ACC_, VO_, AGG_, SURV_, CNT_):
    # Every individual p_base + p (p < n_p) of the population over all steps and layers. cur0
    # (n_p * H0, Tc * B): first-layer currents (bias included) of the chunk, column t * B + b
    # (Tc == 1: the same current every step). W (P, n_weights): effective weights. lay (L, 8) per
    # layer: weight offset, bias offset, n_out, n_in, offset of its units in the state (-1: leaky
    # readout), synaptic current, adaptation, subtractive reset. fpar (L, 6): beta, alpha,
    # threshold, adapt, rho of the layer. consts: one, zero, n_steps. ipar: n_steps, readout code,
    # save spikes, count spikes, static input. The state of one individual, (units, B) per array,
    # lives in the *_[c] scratch of the chunk c of individuals one thread walks; the lanes of the
    # inner loops are the samples of the minibatch.
    B, O = logits.shape[1], logits.shape[2]
    T, rcode, save, count, static = ipar[0], ipar[1], ipar[2] != 0, ipar[3] != 0, ipar[4] != 0
    one, zero, fT = consts[0], consts[1], consts[2]
    L = lay.shape[0]
    H0 = lay[0, 2]
    nchunks = V_.shape[0]
    step = (n_p + nchunks - 1) // nchunks
    for c in {loop}(nchunks):
        V, S, SYN, A, ACC = V_[c], S_[c], SYN_[c], A_[c], ACC_[c]
        VO, AGG, SURV, CNT = VO_[c], AGG_[c], SURV_[c], CNT_[c]
        for p in range(c * step, min(n_p, (c + 1) * step)):
            pg = p_base + p
            V[:] = zero
            SYN[:] = zero
            A[:] = zero
            VO[:] = zero
            AGG[:] = zero
            SURV[:] = one
            CNT[:] = zero
            for t in range(T):
                col = 0 if static else t * B
                for k in range(L):
                    w_off, b_off, n_out, n_in, h_off = lay[k, 0], lay[k, 1], lay[k, 2], lay[k, 3], lay[k, 4]
                    if k > 0:
                        # ACC = bias + W_k @ spikes of layer k-1, two outputs x four inputs per pass
                        prev = lay[k - 1, 4]
                        for o in range(n_out):
                            bo = W[pg, b_off + o]
                            for b in range(B):
                                ACC[o, b] = bo
                        o = 0
                        while o < n_out:
                            o2 = o + 1 if o + 1 < n_out else o
                            two = o2 > o
                            base0 = w_off + o * n_in
                            base1 = w_off + o2 * n_in
                            j = 0
                            while j + 4 <= n_in:
                                w00 = W[pg, base0 + j]
                                w01 = W[pg, base0 + j + 1]
                                w02 = W[pg, base0 + j + 2]
                                w03 = W[pg, base0 + j + 3]
                                w10 = W[pg, base1 + j] if two else zero
                                w11 = W[pg, base1 + j + 1] if two else zero
                                w12 = W[pg, base1 + j + 2] if two else zero
                                w13 = W[pg, base1 + j + 3] if two else zero
                                j0 = prev + j
                                for b in range(B):
                                    x0 = S[j0, b]
                                    x1 = S[j0 + 1, b]
                                    x2 = S[j0 + 2, b]
                                    x3 = S[j0 + 3, b]
                                    ACC[o, b] += w00 * x0 + w01 * x1 + w02 * x2 + w03 * x3
                                    ACC[o2, b] += w10 * x0 + w11 * x1 + w12 * x2 + w13 * x3
                                j += 4
                            while j < n_in:
                                w00 = W[pg, base0 + j]
                                w10 = W[pg, base1 + j] if two else zero
                                for b in range(B):
                                    x0 = S[prev + j, b]
                                    ACC[o, b] += w00 * x0
                                    ACC[o2, b] += w10 * x0
                                j += 1
                            o += 2
                    if h_off >= 0:
                        beta, alpha, thr, adapt, rho = fpar[k, 0], fpar[k, 1], fpar[k, 2], fpar[k, 3], fpar[k, 4]
                        cuba, alif, subtract = lay[k, 5] != 0, lay[k, 6] != 0, lay[k, 7] != 0
                        for h in range(n_out):
                            row = p * H0 + h
                            q = h_off + h
                            if not cuba and not alif and subtract:      # the common case, kept lean
                                if k == 0:
                                    for b in range(B):
{lean_first}\
                                else:
                                    for b in range(B):
{lean_later}\
                            else:
                                for b in range(B):
{general}\
                            if save:
                                for b in range(B):
                                    spk[t, pg, q, b] = S[q, b] != zero
                            if count:
                                for b in range(B):
                                    CNT[b] += S[q, b]
                        if k == L - 1:            # spiking readout
                            for o in range(n_out):
                                q = h_off + o
                                if rcode == 0:
                                    for b in range(B):
                                        AGG[o, b] += S[q, b]
                                else:
                                    for b in range(B):
                                        SURV[o, b] = SURV[o, b] * (one - S[q, b])
                                        AGG[o, b] += SURV[o, b]
                    else:                         # leaky (non-spiking) readout
                        beta = fpar[k, 0]
                        for o in range(n_out):
                            if rcode == 2:
                                for b in range(B):
                                    v = beta * VO[o, b] + ACC[o, b]
                                    VO[o, b] = v
                                    # NaN propagates as in torch's max
                                    if t == 0 or v > AGG[o, b] or v != v:
                                        AGG[o, b] = v
                            elif rcode == 3:
                                for b in range(B):
                                    VO[o, b] = beta * VO[o, b] + ACC[o, b]
                                if t == T - 1:
                                    for b in range(B):
                                        AGG[o, b] = VO[o, b]
                            else:
                                for b in range(B):
                                    v = beta * VO[o, b] + ACC[o, b]
                                    VO[o, b] = v
                                    AGG[o, b] += v
            for o in range(O):
                for b in range(B):
                    v = AGG[o, b]
                    if rcode == 4:
                        v = v / fT
                    elif rcode == 1:
                        v = -v
                    logits[pg, b, o] = v
            if count:
                for b in range(B):
                    counts[pg, b] = CNT[b]
'''


def _update(indent, x, cuba, alif, subtract):
    return neuron_update(indent, cuba=cuba, alif=alif, subtract=subtract, x=x, v="V[q, b]", syn="SYN[q, b]",
                         a="A[q, b]", beta="beta", alpha="alpha", thr="thr", adapt="adapt", rho="rho",
                         on_spike=["S[q, b] = s"])


def kernel_source(parallel=False):
    """The population kernel's source.

    The layers' neuron models and resets, the readout, whether spikes are saved or counted and
    whether the input is static are run-time arguments, so one compiled kernel serves every
    network configuration. The neuron update is :func:`~sklearn_snn._core.neuron_source.neuron_update`:
    resolved for the lean common case (no synaptic current, no adaptation, subtractive reset),
    with per-layer branches otherwise.

    Parameters
    ----------
    parallel : bool, default=False
        The build whose loop over chunks of individuals is a ``prange``.

    Returns
    -------
    str
        A module defining ``population_kernel`` (numba-compiled on its first call).

    Examples
    --------
    >>> src = kernel_source()
    >>> "def population_kernel(" in src, "prange(nchunks)" in src, "prange(nchunks)" in kernel_source(True)
    (True, False, True)
    """
    lean = {"cuba": False, "alif": False, "subtract": True}
    return _TEMPLATE.format(
        par=", parallel=True" if parallel else "", loop="prange" if parallel else "range",
        lean_first=_update(40, "cur0[row, col + b]", **lean), lean_later=_update(40, "ACC[h, b]", **lean),
        general=_update(36, "cur0[row, col + b] if k == 0 else ACC[h, b]", cuba="cuba", alif="alif",
                        subtract="subtract"))


_KERNELS = {}
_LOCK = threading.Lock()


def population_kernel(parallel=False):
    """The compiled population kernel (see :func:`kernel_source`), serial or parallel build.

    Rendered once per build and imported through
    :func:`~sklearn_snn._core.numba_backend.shared_module` (the shared kernel cache, keyed by a
    hash of the source); numba compiles it on the first call (once per dtype) or loads it from its
    disk cache. Needs numba.

    Examples
    --------
    >>> fn = population_kernel()
    >>> fn is population_kernel(), fn is population_kernel(parallel=True)
    (True, False)
    """
    key = bool(parallel)
    fn = _KERNELS.get(key)
    if fn is None:
        with _LOCK:
            fn = _KERNELS.get(key)
            if fn is None:
                fn = _KERNELS[key] = shared_module("snn_population", kernel_source(key)).population_kernel
    return fn
