"""Gradient-free training: evolution strategies, a genetic algorithm and a batched population SNN.

Two halves:

- :class:`PopulationSNN` evaluates a whole population of networks that share one architecture
  (an :class:`~sklearn_snn._core.network.SNN` used as the template) as *one* program. Every
  individual is a row of a ``(P, D)`` parameter matrix. The input is shared by the population, so
  the first layer's currents of all individuals come from a single matrix product with the
  population's stacked first-layer weights, ``(P * H, F) @ (F, B)`` (once for a constant-current
  input, once per step otherwise). On CPU, when numba is installed, one compiled kernel then runs
  the neuron updates, the products with the individual weights of the later layers and the
  readout of every individual, time step after time step, in buffers that stay in the cache
  (a few times ``H * B`` values per individual; nothing of size ``T x P x B x H`` is built unless
  the spikes are asked for, then as bytes). Elsewhere (CUDA, no numba) the same computation runs
  as batched torch ops (stacked weights, ``bmm``, the population folded into the batch dimension
  of :func:`~sklearn_snn._core.kernels.spiking_scan`). Optional architecture genes (connectivity
  masks, hidden-unit gates) are extra columns of the same matrix.
- Search strategies with an ask/tell interface that *maximise* a fitness:
  :class:`OpenAIES` (Salimans et al. 2017), :class:`CMAES` (full covariance, Hansen 2016),
  :class:`SepCMAES` (diagonal, Ros & Hansen 2008), :class:`SNES` (Schaul et al. 2011) and
  :class:`GeneticAlgorithm`. They draw all random numbers from a ``torch.Generator`` passed to
  :meth:`ask` (kept on the CPU so that results do not depend on the device) and hold no
  generator themselves, so they pickle.
"""

from __future__ import annotations

import math
import threading
import types

import numpy as np
import torch

from .encoding import is_static
from .kernels import leaky_integrate, spiking_scan
from .network import SNN, SPIKING_READOUTS

ARCHITECTURE_MODES = ("connectivity", "width", "both")
READOUT_CODES = {"spike_count": 0, "first_spike": 1, "membrane_max": 2, "membrane_last": 3, "membrane_mean": 4}
BACKENDS = ("auto", "torch", "numba")
_CHUNK_ELEMENTS = 1 << 20   # first-layer currents computed per population chunk (4 MB in float32)


# --------------------------------------------------------------------------------------------
# the compiled population kernel (numba, optional)
# --------------------------------------------------------------------------------------------
prange = range   # numba.prange once the kernel is compiled


def _population_kernel(cur0, W, p_base, n_p, lay, fpar, consts, ipar, logits, spk, counts,
                       V_, S_, SYN_, A_, ACC_, VO_, AGG_, SURV_, CNT_):
    """Every individual ``p_base + p`` (p < n_p) of the population over all steps and layers.

    ``cur0`` (n_p * H0, Tc * B): first-layer currents (bias included) of the chunk, column
    ``t * B + b`` (``Tc == 1``: the same current every step). ``W`` (P, n_weights): effective
    weights. ``lay`` (L, 8) per layer: weight offset, bias offset, n_out, n_in, offset of its
    units in the state (-1: leaky readout), synaptic current, adaptation, subtractive reset.
    ``fpar`` (L, 6): beta, alpha, threshold, adapt, rho of the layer. ``consts``: one, zero,
    n_steps. ``ipar``: n_steps, readout code, save spikes, count spikes, static input.
    The state of one individual, (units, B) per array, lives in the ``*_[c]`` scratch of the
    chunk ``c`` of individuals that one thread walks; the lanes of the inner loops are the
    samples of the minibatch.
    """
    B, O = logits.shape[1], logits.shape[2]
    T, rcode, save, count, static = ipar[0], ipar[1], ipar[2] != 0, ipar[3] != 0, ipar[4] != 0
    one, zero, fT = consts[0], consts[1], consts[2]
    L = lay.shape[0]
    H0 = lay[0, 2]
    nchunks = V_.shape[0]
    step = (n_p + nchunks - 1) // nchunks
    for c in prange(nchunks):
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
                                        u = beta * V[q, b] + cur0[row, col + b]
                                        s = one if u >= thr else zero
                                        S[q, b] = s
                                        V[q, b] = u - thr * s
                                else:
                                    for b in range(B):
                                        u = beta * V[q, b] + ACC[h, b]
                                        s = one if u >= thr else zero
                                        S[q, b] = s
                                        V[q, b] = u - thr * s
                            else:
                                for b in range(B):
                                    cx = cur0[row, col + b] if k == 0 else ACC[h, b]
                                    if cuba:
                                        cx = alpha * SYN[q, b] + cx
                                        SYN[q, b] = cx
                                    u = beta * V[q, b] + cx
                                    th = thr + adapt * A[q, b] if alif else thr
                                    s = one if u >= th else zero
                                    S[q, b] = s
                                    if subtract:
                                        V[q, b] = u - thr * s
                                    else:
                                        V[q, b] = u * (one - s)
                                    if alif:
                                        A[q, b] = rho * A[q, b] + s
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


_KERNEL = None   # namespace of the compiled kernels once built, False when numba is unavailable
_KERNEL_LOCK = threading.Lock()


def _compiled():
    """The compiled population kernels (serial and parallel), or None without numba."""
    global _KERNEL, prange
    if _KERNEL is None:
        with _KERNEL_LOCK:
            if _KERNEL is None:
                from . import numba_backend

                nb = numba_backend.numba_kernels()  # honours SKLEARN_SNN_NUMBA=0; starts numba's pool
                if nb is None:
                    _KERNEL = False
                else:
                    numba = nb.numba
                    prange = numba.prange
                    opts = dict(cache=True, nogil=True)
                    # the parallel build under its own name (numba's disk cache ignores the options)
                    par_fn = numba_backend.variant(_population_kernel, "par")
                    _KERNEL = types.SimpleNamespace(numba=numba, ser=numba.njit(**opts)(_population_kernel),
                                                    par=numba.njit(parallel=True, **opts)(par_fn))
    return _KERNEL or None


def _kernel_threads(kern, n_p):
    """(kernel, number of chunks) for this thread: parallel only from the main thread."""
    n = max(1, min(torch.get_num_threads(), kern.numba.config.NUMBA_NUM_THREADS, n_p))
    if n == 1 or threading.current_thread() is not threading.main_thread():
        return kern.ser, 1
    kern.numba.set_num_threads(n)
    return kern.par, n


# --------------------------------------------------------------------------------------------
# population network
# --------------------------------------------------------------------------------------------
class PopulationSNN:
    """A population of networks with the template's architecture, evaluated in one program.

    Genome layout: the template's parameters flattened in ``named_parameters`` order (what
    :func:`torch.nn.utils.parameters_to_vector` gives), followed by the architecture genes:

    - ``architecture='connectivity'``: one gene per weight of every layer; the connection exists
      where the gene is > 0;
    - ``architecture='width'``: one gene per hidden unit; the unit exists where the gene is > 0
      (a removed unit receives no input, so it never spikes and contributes nothing);
    - ``'both'``: both blocks, connectivity first.

    Parameters
    ----------
    template : SNN
        Feed-forward network (no recurrence, no learned neuron parameters, no normalisation).
    architecture : None or {'connectivity', 'width', 'both'}
    backend : {'auto', 'torch', 'numba'}, default='auto'
        ``'numba'``: the compiled kernel (CPU float32/float64 tensors, numba installed);
        ``'torch'``: batched torch ops on any device; ``'auto'``: the kernel where it applies.
        Both compute the same values.

    Examples
    --------
    >>> import torch
    >>> from sklearn_snn._core.neurons import NeuronSpec
    >>> net = SNN(4, (8,), 3, NeuronSpec(), generator=torch.Generator().manual_seed(0))
    >>> pop = PopulationSNN(net)
    >>> genomes = pop.initial_genome().repeat(5, 1)       # 5 identical individuals
    >>> logits, spikes = pop.forward(genomes, torch.rand(10, 2, 4))
    >>> logits.shape, spikes[0].shape
    (torch.Size([5, 2, 3]), torch.Size([10, 5, 2, 8]))
    >>> logits, counts = pop.evaluate(genomes, torch.rand(10, 2, 4), spike_counts=True)
    >>> counts.shape                                      # spikes per individual and sample
    torch.Size([5, 2])
    """

    def __init__(self, template: SNN, architecture=None, backend="auto"):
        if architecture is not None and architecture not in ARCHITECTURE_MODES:
            raise ValueError(f"architecture must be None or one of {ARCHITECTURE_MODES}, got {architecture!r}.")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        for layer in template.hidden:
            if layer.w_rec is not None or layer.norm is not None or layer.learn_tau or layer.learn_threshold:
                raise ValueError("PopulationSNN supports feed-forward layers without normalisation or learned "
                                 "neuron parameters.")
        self.template = template
        self.architecture = architecture
        self.backend = backend
        self.layers = template.layers
        self.slices = []  # per layer: (weight slice, bias slice, (out, in))
        offset = 0
        names = dict(template.named_parameters())
        order = list(names)
        expected = []
        for i, layer in enumerate(self.layers):
            prefix = f"hidden.{i}." if i < len(template.hidden) else "out."
            expected += [prefix + "weight", prefix + "bias"]
            n_out, n_in = layer.weight.shape
            w = slice(offset, offset + n_out * n_in)
            offset += n_out * n_in
            b = slice(offset, offset + n_out)
            offset += n_out
            self.slices.append((w, b, (n_out, n_in)))
        if order != expected:  # the genome follows parameters_to_vector's order
            raise ValueError(f"Unexpected template parameters {order}; PopulationSNN needs {expected}.")
        self.n_weights = offset
        self.mask_slices, self.gate_slices = [], []
        if architecture in ("connectivity", "both"):
            for _, _, (n_out, n_in) in self.slices:
                self.mask_slices.append(slice(offset, offset + n_out * n_in))
                offset += n_out * n_in
        if architecture in ("width", "both"):
            for _, _, (n_out, _) in self.slices[:-1]:
                self.gate_slices.append(slice(offset, offset + n_out))
                offset += n_out
        self.n_genes = offset
        self._layer_table()
        self._workspace = {}                 # buffers of the compiled path, reused from call to call
        self._lock = threading.Lock()        # ... so one call at a time uses them

    def _layer_table(self):
        """Per-layer integers and floats of the compiled kernel."""
        spiking_out = self.template.readout in SPIKING_READOUTS
        lay, fpar, h_off = [], [], 0
        for k, ((ws, bs, (n_out, n_in)), layer) in enumerate(zip(self.slices, self.layers)):
            spiking = k < len(self.slices) - 1 or spiking_out
            if spiking:
                s = layer.spec
                lay.append([ws.start, bs.start, n_out, n_in, h_off, s.uses_synapse, s.adaptive,
                            s.reset == "subtract"])
                fpar.append([s.beta, s.alpha, s.threshold, s.adapt, s.rho, 0.0])
                h_off += n_out
            else:
                lay.append([ws.start, bs.start, n_out, n_in, -1, 0, 0, 0])
                fpar.append([layer.beta0, 0.0, 0.0, 0.0, 0.0, 0.0])
        self._lay = np.asarray(lay, dtype=np.int64)
        self._fpar = np.asarray(fpar, dtype=np.float64)
        self.n_spiking_units = h_off                           # spiking units, all layers
        self._max_width = max(n_out for _, _, (n_out, _) in self.slices)
        self._spiking_sizes = [(int(r[4]), int(r[2])) for r in lay if r[4] >= 0]

    # --- genome <-> template ---------------------------------------------------------------
    def initial_genome(self, arch_init=1.0):
        """The template's parameters, then every architecture gene at ``arch_init`` (all on)."""
        w = torch.nn.utils.parameters_to_vector(self.template.parameters()).detach()
        extra = torch.full((self.n_genes - self.n_weights,), float(arch_init), dtype=w.dtype, device=w.device)
        return torch.cat([w, extra])

    def effective_weights(self, genomes, dtype=None):
        """Weights with the architecture applied (masked connections / removed units set to 0).

        ``genomes`` (P, n_genes) or (n_genes,) -> (P, n_weights) or (n_weights,), contiguous, in
        ``dtype`` (default: the genomes' dtype).
        """
        single = genomes.dim() == 1
        g = genomes.unsqueeze(0) if single else genomes
        w = g[:, :self.n_weights].to(dtype=dtype or g.dtype, memory_format=torch.contiguous_format, copy=True)
        for k, (ws, bs, _) in enumerate(self.slices):
            if self.mask_slices:
                w[:, ws] *= (g[:, self.mask_slices[k]] > 0).to(w.dtype)
            if self.gate_slices and k < len(self.gate_slices):
                gate = (g[:, self.gate_slices[k]] > 0).to(w.dtype)  # (P, H)
                n_out, n_in = self.slices[k][2]
                w[:, ws] = (w[:, ws].view(-1, n_out, n_in) * gate.unsqueeze(-1)).reshape(-1, n_out * n_in)
                w[:, bs] *= gate
        return w[0] if single else w

    def architecture_summary(self, genome):
        """Active connections per layer and active hidden units per layer, for one genome."""
        out = {}
        if self.mask_slices:
            out["connections"] = [int((genome[s] > 0).sum()) for s in self.mask_slices]
        if self.gate_slices:
            out["widths"] = [int((genome[s] > 0).sum()) for s in self.gate_slices]
        return out

    def active_fraction(self, genomes):
        """(P,) fraction of the architecture genes that are on (1 when nothing is evolved)."""
        if self.n_genes == self.n_weights:
            return genomes.new_ones(genomes.shape[0])
        return (genomes[:, self.n_weights:] > 0).to(genomes.dtype).mean(1)

    def load_into(self, module: SNN, genome):
        """Write one genome (architecture applied) into ``module``'s parameters."""
        w = self.effective_weights(genome.detach())
        p = next(module.parameters())
        torch.nn.utils.vector_to_parameters(w.to(device=p.device, dtype=p.dtype), module.parameters())
        return module

    # --- the batched forward ---------------------------------------------------------------
    def _use_kernel(self, x, backend):
        backend = self.backend if backend is None else backend
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        if backend == "torch":
            return False
        ok = (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.dim() == 3
              and len(self.template.hidden) > 0)
        if backend == "numba":
            if not ok:
                raise ValueError("backend='numba' runs CPU float32/float64 inputs only.")
            if _compiled() is None:
                raise ImportError("backend='numba' needs numba (pip install numba).")
            return True
        return ok and _compiled() is not None

    def evaluate(self, genomes, x, spike_counts=False, backend=None):
        """Readout of every individual (and its spike count per sample), without gradients.

        What :meth:`forward` gives, reduced to what a fitness needs: the compiled kernel
        keeps no spike trains.

        Parameters
        ----------
        genomes : Tensor (P, n_genes)
        x : Tensor (T, B, F)
            Encoded input, shared by the population.
        spike_counts : bool
            Also return the spikes per individual and sample, summed over the spiking layers
            and the steps.
        backend : None or {'auto', 'torch', 'numba'}
            Overrides the population's ``backend``.

        Returns
        -------
        logits : Tensor (P, B, n_out)
        counts : Tensor (P, B) or None
        """
        with torch.no_grad():
            if self._use_kernel(x, backend):
                logits, counts, _ = self._run_kernel(genomes, x, save_spikes=False, count=spike_counts)
                return logits, counts
            logits, spikes = self._forward_torch(genomes, x)
            counts = sum(s.sum((0, 3)) for s in spikes).to(x.dtype) if spike_counts else None
            return logits, counts

    def forward(self, genomes, x, backend=None):
        """Evaluate every individual on the same input, as one batched program.

        Parameters
        ----------
        genomes : Tensor (P, n_genes)
        x : Tensor (T, B, F)
            Encoded input, shared by the population (a stride-0 constant current is projected
            once, not once per step).
        backend : None or {'auto', 'torch', 'numba'}
            Overrides the population's ``backend``.

        Returns
        -------
        logits : Tensor (P, B, n_out)
            The readout of every individual (what ``SNN.forward`` gives for that individual).
        spikes : list of Tensor (T, P, B, H)
            Spikes of every spiking layer (the output layer too for spiking readouts).
        """
        with torch.no_grad():
            if self._use_kernel(x, backend):
                logits, _, spk = self._run_kernel(genomes, x, save_spikes=True, count=False)
                # (T, P, units, B) bytes -> per layer (T, P, B, H) in the input's dtype
                spikes = [spk[:, :, o:o + n].permute(0, 1, 3, 2).to(x.dtype, memory_format=torch.contiguous_format)
                          for o, n in self._spiking_sizes]
                return logits, spikes
            return self._forward_torch(genomes, x)

    def _buffers(self, key, make):
        buf = self._workspace.get(key)
        if buf is None:
            if len(self._workspace) > 8:
                self._workspace.clear()
            buf = self._workspace[key] = make()
        return buf

    def _run_kernel(self, genomes, x, save_spikes, count):
        with self._lock:
            return self._run_kernel_locked(genomes, x, save_spikes, count)

    def _run_kernel_locked(self, genomes, x, save_spikes, count):
        """The compiled path: one GEMM per population chunk for the first layer's currents, then
        the kernel for everything else. Buffers are reused from call to call."""
        kern = _compiled()
        P = genomes.shape[0]
        T, B, F = x.shape
        dt = x.dtype
        npdt = np.float32 if dt == torch.float32 else np.float64
        static = is_static(x)
        Tc = 1 if static else T
        W = self.effective_weights(genomes.detach().to("cpu"), dtype=dt)        # (P, n_weights)
        ws, bs, (H0, n_in0) = self.slices[0]
        if n_in0 != F:
            raise ValueError(f"The input has {F} features; the population expects {n_in0}.")
        O = self.slices[-1][2][0]
        xt = (x[0] if static else x.reshape(T * B, F)).t().contiguous()      # (F, Tc * B)
        Pc = max(1, min(P, _CHUNK_ELEMENTS // max(1, H0 * Tc * B)))
        fn, nthreads = _kernel_threads(kern, min(P, Pc))
        Hs, Hm = max(self.n_spiking_units, 1), self._max_width

        def make():
            z = lambda *s: np.zeros(s, dtype=npdt)  # noqa: E731
            lay = self._lay
            cuba = bool(lay[:, 5].any())
            alif = bool(lay[:, 6].any())
            return dict(
                W0=torch.empty((Pc * H0, F), dtype=dt), b0=torch.empty((Pc * H0, 1), dtype=dt),
                cur0=torch.empty((Pc * H0, Tc * B), dtype=dt),
                scratch=[z(nthreads, Hs, B), z(nthreads, Hs, B), z(nthreads, Hs if cuba else 1, B),
                         z(nthreads, Hs if alif else 1, B), z(nthreads, Hm, B), z(nthreads, O, B),
                         z(nthreads, O, B), z(nthreads, O, B), z(nthreads, B)],
                fpar=self._fpar.astype(npdt), consts=np.array([1.0, 0.0, T], dtype=npdt))

        buf = self._buffers((Pc, B, Tc, T, dt, nthreads), make)
        logits = torch.empty((P, B, O), dtype=dt)
        counts = torch.zeros((P, B), dtype=dt) if count else torch.zeros((1, 1), dtype=dt)
        spk = (torch.zeros((T, P, self.n_spiking_units, B), dtype=torch.uint8) if save_spikes
               else torch.zeros((1, 1, 1, 1), dtype=torch.uint8))
        ipar = np.array([T, READOUT_CODES[self.template.readout], save_spikes, count, static], dtype=np.int64)
        W_np, l_np, c_np, s_np = W.numpy(), logits.numpy(), counts.numpy(), spk.numpy()
        for p0 in range(0, P, Pc):
            n = min(Pc, P - p0)
            W0, b0, cur0 = buf["W0"][:n * H0], buf["b0"][:n * H0], buf["cur0"][:n * H0]
            W0.view(n, H0 * F).copy_(W[p0:p0 + n, ws])
            b0.view(n, H0).copy_(W[p0:p0 + n, bs])
            torch.addmm(b0, W0, xt, out=cur0)                     # all individuals' first layer at once
            fn(cur0.numpy(), W_np, p0, n, self._lay, buf["fpar"], buf["consts"], ipar, l_np, s_np, c_np,
               *buf["scratch"])
        return logits, (counts if count else None), (spk if save_spikes else None)

    def _forward_torch(self, genomes, x):
        """Batched torch ops: stacked weights, ``bmm`` over the population, the population folded
        into the batch dimension of the fused scan (any device)."""
        P = genomes.shape[0]
        T, B, F = x.shape
        w_all = self.effective_weights(genomes, dtype=x.dtype)
        tmpl = self.template
        n_hidden = len(tmpl.hidden)
        spikes = []
        h = x.unsqueeze(1)                                              # (T, 1, B, F): shared input
        static = is_static(x)
        for k, layer in enumerate(self.layers):
            ws, bs, (n_out, n_in) = self.slices[k]
            Wt = w_all[:, ws].view(P, n_out, n_in).transpose(1, 2)     # (P, F, H)
            b = w_all[:, bs].view(P, 1, n_out)
            if static:
                # constant current: one (P, B, F) x (P, F, H) product for all steps, kept stride-0 in time
                cur = torch.baddbmm(b, x[0].expand(P, B, F), Wt).reshape(1, P * B, n_out).expand(T, P * B, n_out)
            else:
                cur = (torch.matmul(h, Wt) + b).reshape(T, P * B, n_out)   # batched matmul over P
            static = False
            if k < n_hidden or tmpl.readout in SPIKING_READOUTS:
                # the population folded into the batch dimension of the fused scan
                s, _, _ = spiking_scan(cur, layer.spec, layer.surrogate, layer.slope)
                out = s
                h = s.view(T, P, B, n_out)
                spikes.append(h)
            else:
                out = leaky_integrate(cur, layer.beta0)
        logits = tmpl.aggregate(out).view(P, B, -1)
        return logits, spikes


# --------------------------------------------------------------------------------------------
# strategies (all maximise)
# --------------------------------------------------------------------------------------------
def centered_ranks(f):
    """Ranks of ``f`` mapped linearly onto [-0.5, 0.5], tied values sharing their mean rank.

    Tie averaging matters for step-like fitness (accuracy): an antithetic pair with equal
    fitness then contributes nothing to the search gradient instead of a random direction.

    Examples
    --------
    >>> centered_ranks(torch.tensor([3.0, -1.0, 10.0])).tolist()
    [0.0, -0.5, 0.5]
    >>> centered_ranks(torch.tensor([1.0, 1.0, 0.0])).tolist()
    [0.25, 0.25, -0.5]
    """
    f = f.reshape(-1)
    n = f.numel()
    less = (f.unsqueeze(0) < f.unsqueeze(1)).sum(1).to(torch.float64)
    equal = (f.unsqueeze(0) == f.unsqueeze(1)).sum(1).to(torch.float64)
    return (less + (equal - 1) / 2) / max(n - 1, 1) - 0.5


def _randn(generator, shape, like):
    """Standard normals from a CPU generator, moved to ``like``'s device (device-independent)."""
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(like.device)


class Strategy:
    """Common interface: ``ask(generator) -> (P, D)``, ``tell(fitness (P,))``, ``incumbent``."""

    name = "strategy"

    def __init__(self, mean, sigma, popsize):
        self.mean = mean.detach().to(torch.float64).clone()
        self.dim = self.mean.numel()
        self.sigma = float(sigma)
        self.popsize = int(popsize)
        self.generation = 0
        self._pending = None
        # the incumbent's fitness on the last told generation when the strategy knows it (an
        # evaluated individual), None when it must be evaluated (a distribution mean)
        self.incumbent_fitness = None

    @property
    def incumbent(self):
        """The strategy's current estimate of the optimum."""
        return self.mean

    def ask(self, generator):  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement ask(generator).")

    def tell(self, fitness):  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must implement tell(fitness).")

    def _check_tell(self, fitness):
        if self._pending is None:
            raise RuntimeError("tell() needs a preceding ask().")
        fitness = torch.as_tensor(fitness, dtype=torch.float64, device=self.mean.device).reshape(-1)
        if fitness.numel() != self.popsize:
            raise ValueError(f"tell() expects {self.popsize} fitness values, got {fitness.numel()}.")
        # a non-finite fitness (a diverged individual, a broken objective) ranks last
        finite = torch.isfinite(fitness)
        if not finite.any():
            raise ValueError(f"All {fitness.numel()} fitness values are non-finite (NaN or inf); there is nothing "
                             "to select. Check the objective, or lower sigma.")
        return torch.where(finite, fitness, torch.full_like(fitness, -math.inf))


class OpenAIES(Strategy):
    """OpenAI evolution strategy (Salimans et al. 2017).

    Antithetic pairs ``mean +- sigma * eps``; fitness replaced by centred ranks; the search
    gradient ``sum_i r_i eps_i / (P sigma)`` is followed by Adam (ascent) with L2 weight decay.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = OpenAIES(torch.zeros(3), sigma=0.1, popsize=20, lr=0.05)
    >>> target = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    >>> for _ in range(200):
    ...     pop = es.ask(g)
    ...     es.tell(-((pop - target) ** 2).sum(1))
    >>> bool(torch.allclose(es.mean, target, atol=0.1))
    True
    """

    name = "openai-es"

    def __init__(self, mean, sigma=0.05, popsize=64, lr=0.03, weight_decay=0.0, betas=(0.9, 0.999)):
        super().__init__(mean, sigma, popsize + (popsize % 2))
        self.lr, self.weight_decay, self.betas = float(lr), float(weight_decay), betas
        self.m = torch.zeros_like(self.mean)
        self.v = torch.zeros_like(self.mean)
        self.t = 0

    def ask(self, generator):
        eps = _randn(generator, (self.popsize // 2, self.dim), self.mean)
        self._pending = eps
        return torch.cat([self.mean + self.sigma * eps, self.mean - self.sigma * eps])

    def tell(self, fitness):
        f = self._check_tell(fitness)
        eps, self._pending = self._pending, None
        r = centered_ranks(f)
        half = self.popsize // 2
        grad = (r[:half] - r[half:]) @ eps / (self.popsize * self.sigma)
        grad = grad - self.weight_decay * self.mean
        self.t += 1
        b1, b2 = self.betas
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        mhat = self.m / (1 - b1 ** self.t)
        vhat = self.v / (1 - b2 ** self.t)
        self.mean += self.lr * mhat / (vhat.sqrt() + 1e-8)
        self.generation += 1


def _recombination_weights(popsize, mu):
    w = math.log(mu + 0.5) - torch.log(torch.arange(1, mu + 1, dtype=torch.float64))
    w = w / w.sum()
    return w, float(1.0 / (w ** 2).sum())


class _CMABase(Strategy):
    """Shared (mu/mu_w, lambda) parameters of the CMA-ES family (Hansen 2016, table 1)."""

    def __init__(self, mean, sigma, popsize):
        n = mean.numel()
        popsize = popsize or 4 + int(3 * math.log(n))
        super().__init__(mean, sigma, max(popsize, 4))
        lam = self.popsize
        self.mu = lam // 2
        w, self.mueff = _recombination_weights(lam, self.mu)
        self.weights = w.to(self.mean.device)
        mueff = self.mueff
        self.cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        self.cs = (mueff + 2) / (n + mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + mueff)
        self.cmu = min(1 - self.c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
        self.damps = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.pc = torch.zeros_like(self.mean)
        self.ps = torch.zeros_like(self.mean)

    def _sigma_and_hsig(self):
        n = self.dim
        norm_ps = float(self.ps.norm())
        self.sigma *= math.exp(min(1.0, (self.cs / self.damps) * (norm_ps / self.chi_n - 1)))
        denom = math.sqrt(1 - (1 - self.cs) ** (2 * (self.generation + 1)))
        return 1.0 if norm_ps / denom / self.chi_n < 1.4 + 2 / (n + 1) else 0.0

    def _select(self, f, y):
        order = torch.argsort(f, descending=True, stable=True)[: self.mu]
        ysel = y[order]                                   # (mu, n) best first
        return ysel, self.weights @ ysel                  # y_w


class CMAES(_CMABase):
    """Full-covariance CMA-ES (Hansen 2016) with rank-one and rank-mu updates.

    Costs O(D^2) memory and an O(D^3) eigendecomposition of the covariance, refreshed lazily
    every ``eigen_interval = max(1, floor(1 / (10 D (c1 + cmu))))`` generations (Hansen 2016,
    B.2; the covariance itself is updated every generation): use it for up to a few hundred
    parameters (see :func:`make_strategy` for the automatic choice).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = CMAES(torch.ones(4), sigma=0.5)
    >>> for _ in range(150):
    ...     pop = es.ask(g)
    ...     es.tell(-(pop ** 2).sum(1))
    >>> bool(es.mean.abs().max() < 1e-3)
    True
    """

    name = "cma-es"

    def __init__(self, mean, sigma=0.1, popsize=None):
        super().__init__(mean, sigma, popsize)
        n = self.dim
        self.C = torch.eye(n, dtype=torch.float64, device=self.mean.device)
        self.B = torch.eye(n, dtype=torch.float64, device=self.mean.device)
        self.D = torch.ones(n, dtype=torch.float64, device=self.mean.device)
        self.eigen_interval = max(1, int(1.0 / (10.0 * n * (self.c1 + self.cmu))))
        self._eigen_generation = 0

    def ask(self, generator):
        z = _randn(generator, (self.popsize, self.dim), self.mean)
        y = (z * self.D) @ self.B.T                       # y ~ N(0, C)
        self._pending = y
        return self.mean + self.sigma * y

    def tell(self, fitness):
        f = self._check_tell(fitness)
        y, self._pending = self._pending, None
        ysel, yw = self._select(f, y)
        self.mean = self.mean + self.sigma * yw
        c_inv_sqrt_yw = self.B @ ((self.B.T @ yw) / self.D)
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * c_inv_sqrt_yw
        hsig = self._sigma_and_hsig()
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * yw
        rank_mu = (ysel * self.weights[:, None]).T @ ysel
        c1a = self.c1 * (1 - (1 - hsig) * self.cc * (2 - self.cc))
        self.C = ((1 - c1a - self.cmu) * self.C + self.c1 * torch.outer(self.pc, self.pc)
                  + self.cmu * rank_mu)
        self.C = (self.C + self.C.T) / 2
        self.generation += 1
        if self.generation - self._eigen_generation >= self.eigen_interval:
            evals, self.B = torch.linalg.eigh(self.C)
            self.D = evals.clamp(min=1e-20).sqrt()
            self._eigen_generation = self.generation

    @property
    def covariance(self):
        return self.C


class SepCMAES(_CMABase):
    """Separable CMA-ES (Ros & Hansen 2008): diagonal covariance, O(D) per sample.

    The learning rates of the covariance are raised by ``(D + 2) / 3`` as in the paper, so that
    per-coordinate scales adapt in a number of generations linear in D.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = SepCMAES(torch.ones(10), sigma=0.5)
    >>> scales = torch.logspace(0, 2, 10, dtype=torch.float64)
    >>> for _ in range(300):
    ...     pop = es.ask(g)
    ...     es.tell(-((scales * pop) ** 2).sum(1))
    >>> bool(es.mean.abs().max() < 1e-3)
    True
    """

    name = "sep-cma-es"

    def __init__(self, mean, sigma=0.1, popsize=None):
        super().__init__(mean, sigma, popsize)
        n = self.dim
        scale = (n + 2) / 3
        self.c1 = min(1.0, self.c1 * scale)
        self.cmu = min(1 - self.c1, self.cmu * scale)
        self.C = torch.ones(n, dtype=torch.float64, device=self.mean.device)

    def ask(self, generator):
        z = _randn(generator, (self.popsize, self.dim), self.mean)
        y = z * self.C.sqrt()
        self._pending = y
        return self.mean + self.sigma * y

    def tell(self, fitness):
        f = self._check_tell(fitness)
        y, self._pending = self._pending, None
        ysel, yw = self._select(f, y)
        self.mean = self.mean + self.sigma * yw
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * yw / self.C.sqrt()
        hsig = self._sigma_and_hsig()
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * yw
        c1a = self.c1 * (1 - (1 - hsig) * self.cc * (2 - self.cc))
        self.C = ((1 - c1a - self.cmu) * self.C + self.c1 * self.pc ** 2
                  + self.cmu * (self.weights @ ysel ** 2)).clamp(min=1e-20)
        self.generation += 1

    @property
    def covariance(self):
        return torch.diag(self.C)


class SNES(Strategy):
    """Separable natural evolution strategy (Schaul, Glasmachers & Schmidhuber 2011).

    A mean and one standard deviation per coordinate, updated by the natural gradient with
    rank-based utilities; scales linearly with D.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> es = SNES(torch.ones(5), sigma=0.5)
    >>> for _ in range(300):
    ...     pop = es.ask(g)
    ...     es.tell(-(pop ** 2).sum(1))
    >>> bool(es.mean.abs().max() < 1e-3)
    True
    """

    name = "snes"

    def __init__(self, mean, sigma=0.1, popsize=None, lr_mean=1.0, lr_sigma=None):
        n = mean.numel()
        popsize = popsize or 4 + int(3 * math.log(n))
        super().__init__(mean, sigma, max(popsize, 2))
        self.sigmas = torch.full_like(self.mean, float(sigma))
        self.lr_mean = float(lr_mean)
        self.lr_sigma = float(lr_sigma) if lr_sigma is not None else (3 + math.log(n)) / (5 * math.sqrt(n))
        lam = self.popsize
        u = (math.log(lam / 2 + 1) - torch.log(torch.arange(1, lam + 1, dtype=torch.float64))).clamp(min=0)
        self.utilities = (u / u.sum() - 1.0 / lam).to(self.mean.device)

    def ask(self, generator):
        s = _randn(generator, (self.popsize, self.dim), self.mean)
        self._pending = s
        return self.mean + self.sigmas * s

    def tell(self, fitness):
        f = self._check_tell(fitness)
        s, self._pending = self._pending, None
        order = torch.argsort(f, descending=True, stable=True)
        u = torch.empty_like(self.utilities)
        u[order] = self.utilities
        self.mean = self.mean + self.lr_mean * self.sigmas * (u @ s)
        self.sigmas = self.sigmas * torch.exp(0.5 * self.lr_sigma * (u @ (s ** 2 - 1)))
        self.sigma = float(self.sigmas.mean())
        self.generation += 1

    @property
    def covariance(self):
        return torch.diag(self.sigmas ** 2)


class GeneticAlgorithm(Strategy):
    """Real-coded generational GA: elitism, tournament selection, crossover, self-adaptive
    Gaussian mutation.

    The first population is the mean (individual 0, e.g. the network's initial weights) and
    Gaussian perturbations of it of scale ``sigma``. Each generation keeps the ``n_elite`` fittest
    unchanged and breeds the others:

    - *selection*: each parent is the fittest of ``tournament_size`` individuals drawn at random;
    - *crossover* (with probability ``crossover_rate``, otherwise the child copies its first
      parent): ``'arithmetic'`` (default) averages ``n_parents`` parents (intermediate
      recombination: what the parents share is kept, their independent mutations average out,
      which matters with thousands of genes), ``'blend'`` draws the child on the line through two
      parents (BLX-0.25: ``p1 + u (p2 - p1)``, ``u ~ U(-0.25, 1.25)``), ``'uniform'`` takes each
      gene from one of two parents;
    - *mutation*: every individual carries its own step size; a child's is the geometric mean of
      its parents' times ``exp(tau * N(0, 1))`` (log-normal self-adaptation, Schwefel), and it adds
      ``N(0, step^2)`` to a fraction ``mutation_rate`` of its genes. Selection keeps the step sizes
      that produce fit children, so the steps shrink as the search closes in (``sigma`` reports
      the geometric mean over the best quarter).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> ga = GeneticAlgorithm(torch.zeros(4), sigma=0.3, popsize=30)
    >>> target = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    >>> for _ in range(150):
    ...     pop = ga.ask(g)
    ...     ga.tell(-((pop - target) ** 2).sum(1))
    >>> bool(((ga.incumbent - target) ** 2).sum() < 1e-3)
    True
    """

    name = "ga"
    CROSSOVERS = ("arithmetic", "blend", "uniform")

    def __init__(self, mean, sigma=0.1, popsize=64, n_elite=None, tournament_size=None, crossover="arithmetic",
                 crossover_rate=0.9, n_parents=4, mutation_rate=1.0, tau=None):
        super().__init__(mean, sigma, max(int(popsize), 2))
        P = self.popsize
        if crossover not in self.CROSSOVERS:
            raise ValueError(f"crossover must be one of {self.CROSSOVERS}, got {crossover!r}.")
        self.n_elite = max(1, P // 16) if n_elite is None else min(max(int(n_elite), 0), P - 1)
        self.tournament_size = max(2, P // 8) if tournament_size is None else max(1, int(tournament_size))
        self.crossover = crossover
        self.crossover_rate = float(crossover_rate)
        self.n_parents = max(2, int(n_parents)) if crossover == "arithmetic" else 2
        self.mutation_rate = float(mutation_rate)
        self.tau = 1.0 / math.sqrt(2.0 * math.sqrt(self.dim)) if tau is None else float(tau)
        self.population = None
        self.step_sizes = None
        self._next = None
        self.best = self.mean.clone()
        self.incumbent_fitness = None

    @property
    def incumbent(self):
        return self.best

    def ask(self, generator):
        if self._next is not None:
            self._breed(generator)
        if self.population is None:
            noise = _randn(generator, (self.popsize, self.dim), self.mean)
            noise[0] = 0.0
            self.population = self.mean + self.sigma * noise
            self.step_sizes = torch.full((self.popsize,), self.sigma, dtype=torch.float64, device=self.mean.device)
        self._pending = True
        return self.population

    def _rand(self, generator, shape):
        return torch.rand(shape, generator=generator, dtype=torch.float64).to(self.mean.device)

    def tell(self, fitness):
        f = self._check_tell(fitness)
        self._pending = None
        order = torch.argsort(f, descending=True, stable=True)
        self.best = self.population[order[0]].clone()
        self.incumbent_fitness = float(f[order[0]])
        self.mean = self.best
        top = order[: max(1, self.popsize // 4)]
        self.sigma = float(self.step_sizes[top].log().mean().exp())
        self._next = (f, order)
        self.generation += 1

    def _breed(self, generator):
        """Build the next population from the last ``tell`` (done by the next :meth:`ask`, which
        holds the generator)."""
        f, order = self._next
        pop, steps = self.population, self.step_sizes
        P, n_kids = self.popsize, self.popsize - self.n_elite
        R = self.n_parents
        cand = torch.randint(0, P, (R, n_kids, self.tournament_size), generator=generator).to(pop.device)
        parents = cand.gather(2, f[cand].argmax(2, keepdim=True)).squeeze(2)     # (R, n_kids)
        mix = self._rand(generator, (n_kids,)) < self.crossover_rate
        log_steps = steps.log()
        if self.crossover == "arithmetic":
            kids = pop[parents].mean(0)
            kid_log_step = log_steps[parents].mean(0)
        else:
            p1, p2 = pop[parents[0]], pop[parents[1]]
            if self.crossover == "blend":
                u = self._rand(generator, (n_kids, 1)) * 1.5 - 0.25
                kids = p1 + u * (p2 - p1)
            else:
                kids = torch.where(self._rand(generator, (n_kids, self.dim)) < 0.5, p2, p1)
            kid_log_step = log_steps[parents[:2]].mean(0)
        kids = torch.where(mix[:, None], kids, pop[parents[0]])
        kid_log_step = torch.where(mix, kid_log_step, log_steps[parents[0]])
        kid_steps = torch.exp(kid_log_step + self.tau * _randn(generator, (n_kids,), pop))
        noise = _randn(generator, (n_kids, self.dim), pop)
        if self.mutation_rate < 1.0:
            noise = noise * (self._rand(generator, (n_kids, self.dim)) < self.mutation_rate)
        kids = kids + kid_steps[:, None] * noise
        elite = order[: self.n_elite]
        self.population = torch.cat([pop[elite], kids])
        self.step_sizes = torch.cat([steps[elite], kid_steps])
        self._next = None


STRATEGIES = ("openai-es", "cma-es", "full-cma-es", "sep-cma-es", "snes", "ga")
FULL_CMA_MAX_DIM = 400


def make_strategy(name, mean, sigma, popsize, **kw):
    """Build a strategy by name; ``'cma-es'`` picks full CMA-ES up to ``FULL_CMA_MAX_DIM``
    parameters and separable CMA-ES above.

    Examples
    --------
    >>> type(make_strategy("cma-es", torch.zeros(10), 0.1, None)).__name__
    'CMAES'
    >>> type(make_strategy("cma-es", torch.zeros(1000), 0.1, None)).__name__
    'SepCMAES'
    """
    if name == "openai-es":
        return OpenAIES(mean, sigma, popsize or 64, **kw)
    if name == "cma-es":
        name = "full-cma-es" if mean.numel() <= FULL_CMA_MAX_DIM else "sep-cma-es"
    if name == "full-cma-es":
        return CMAES(mean, sigma, popsize)
    if name == "sep-cma-es":
        return SepCMAES(mean, sigma, popsize)
    if name == "snes":
        return SNES(mean, sigma, popsize)
    if name == "ga":
        return GeneticAlgorithm(mean, sigma, popsize or 64, **kw)
    raise ValueError(f"Unknown strategy {name!r}; use one of {STRATEGIES}.")
