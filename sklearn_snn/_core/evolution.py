"""Gradient-free training: the batched population SNN that evolution strategies search.

- :class:`PopulationSNN` evaluates a whole population of networks that share one architecture
  (an :class:`~sklearn_snn._core.network.SNN` used as the template) as *one* program. Every
  individual is a row of a ``(P, D)`` parameter matrix. The input is shared by the population, so
  the first layer's currents of all individuals come from a single matrix product with the
  population's stacked first-layer weights, ``(P * H, F) @ (F, B)`` (once for a constant-current
  input, once per step otherwise). On CPU, when numba is installed, one compiled kernel then runs
  the neuron updates, the products with the individual weights of the later layers and the
  readout of every individual, time step after time step, in buffers that stay in the cache
  (a few times ``H * B`` values per individual; nothing of size ``T x P x B x H`` is built unless
  the spikes are asked for, then as bytes). Elsewhere (CUDA, no numba, ``backend='torch'``) the
  same computation runs as batched torch ops without autograd: layer after layer over chunks of
  time steps, one ``bmm`` over the population per layer and chunk, the neuron update of the whole
  population in a few in-place ops per step, in buffers reused from call to call. Optional
  architecture genes (connectivity masks, hidden-unit gates) are extra columns of the same matrix.
- The search strategies live in :mod:`~sklearn_snn._core.strategies` (re-exported here).
"""

from __future__ import annotations

import threading
import types

import numpy as np
import torch

from .encoding import is_static
from .network import SNN, SPIKING_READOUTS
from .numba_backend import numba_kernels
from .population_kernel import READOUT_CODES, population_kernel
from .strategies import (  # noqa: F401 -- re-exported: the strategies' former home (imports, pickles)
    CMAES,
    FULL_CMA_MAX_DIM,
    SNES,
    STRATEGIES,
    GeneticAlgorithm,
    OpenAIES,
    SepCMAES,
    Strategy,
    centered_ranks,
    make_strategy,
)
from .threads import kernel_threads

ARCHITECTURE_MODES = ("connectivity", "width", "both")
BACKENDS = ("auto", "torch", "numba")
_CHUNK_ELEMENTS = 1 << 20   # first-layer currents computed per population chunk (4 MB in float32)
_TORCH_CHUNK_ELEMENTS = 1 << 20   # torch path: a layer's currents per chunk of time steps (P x H x steps x B)


# --------------------------------------------------------------------------------------------
# the compiled population kernel (numba, optional; generated in population_kernel.py from the
# neuron update of the scan's template)
# --------------------------------------------------------------------------------------------
def compiled_kernels():
    """The compiled population kernels (a namespace: ``numba``, the serial ``ser`` and parallel
    ``par`` builds of :func:`~sklearn_snn._core.population_kernel.population_kernel`), or None
    without numba (or with ``SKLEARN_SNN_NUMBA=0``). numba compiles each build on its first call
    (or loads it from the shared kernel cache)."""
    nb = numba_kernels()  # honours SKLEARN_SNN_NUMBA=0; starts numba's pool
    if nb is None:
        return None
    return types.SimpleNamespace(numba=nb.numba, ser=population_kernel(False), par=population_kernel(True))


def _kernel_and_chunks(kern, n_p):
    """(kernel, number of chunks) for ``n_p`` individuals called from this thread: the thread
    policy of :func:`~sklearn_snn._core.threads.kernel_threads` (parallel only from the main
    thread), at most one chunk per individual."""
    n = min(kernel_threads(kern.numba), n_p)
    return (kern.par, n) if n > 1 else (kern.ser, 1)


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
        self._torch_ws = {}                  # ... and of the torch path
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
            if compiled_kernels() is None:
                raise ImportError("backend='numba' needs numba (pip install numba).")
            return True
        return ok and compiled_kernels() is not None

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
            logits, counts, _ = self._run_torch(genomes, x, save_spikes=False, count=spike_counts)
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
            logits, _, spikes = self._run_torch(genomes, x, save_spikes=True, count=False)
            return logits, spikes

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
        kern = compiled_kernels()
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
        fn, nthreads = _kernel_and_chunks(kern, min(P, Pc))
        Hs, Hm = max(self.n_spiking_units, 1), self._max_width

        def make():
            def z(*shape):
                return np.zeros(shape, dtype=npdt)

            lay = self._lay
            cuba = bool(lay[:, 5].any())
            alif = bool(lay[:, 6].any())
            return {
                "W0": torch.empty((Pc * H0, F), dtype=dt), "b0": torch.empty((Pc * H0, 1), dtype=dt),
                "cur0": torch.empty((Pc * H0, Tc * B), dtype=dt),
                "scratch": [z(nthreads, Hs, B), z(nthreads, Hs, B), z(nthreads, Hs if cuba else 1, B),
                            z(nthreads, Hs if alif else 1, B), z(nthreads, Hm, B), z(nthreads, O, B),
                            z(nthreads, O, B), z(nthreads, O, B), z(nthreads, B)],
                "fpar": self._fpar.astype(npdt), "consts": np.array([1.0, 0.0, T], dtype=npdt)}

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

    # --- the torch path ------------------------------------------------------------------------
    def _scratch(self, name, shape, dtype, device):
        """A reused buffer of ``shape`` (views of one flat buffer per role, grown when needed): a
        fresh buffer of this size costs its page faults on first touch, about as much as the ops
        that fill it."""
        n = 1
        for d in shape:
            n *= int(d)
        buf = self._torch_ws.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != device:
            buf = self._torch_ws[name] = torch.empty(max(n, 1), dtype=dtype, device=device)
        return buf[:n].view(shape)

    def _run_torch(self, genomes, x, save_spikes, count):
        with self._lock:
            return self._run_torch_locked(genomes, x, save_spikes, count)

    def _run_torch_locked(self, genomes, x, save_spikes, count):
        """Batched torch ops on any device, layer after layer over chunks of time steps.

        Within a chunk of ``n`` steps, a layer's currents of every individual, step and sample come
        from one batched product ``(P, H, K) @ (P, K, n * B)`` (the first layer's once for a
        constant-current input); the neuron update then runs step by step, three in-place ops per
        step in the common case, over the whole population at once, writing each step's spikes
        over the currents it has read; the next layer's product reads those spikes. The state of
        every layer is carried from chunk to chunk, so the result equals the compiled kernel's
        step-by-step order. Buffers are reused from call to call."""
        P = genomes.shape[0]
        T, B, F = x.shape
        dt, dev = x.dtype, x.device
        W = self.effective_weights(genomes.detach().to(dev), dtype=dt)         # (P, n_weights)
        n_in0 = self.slices[0][2][1]
        if n_in0 != F:
            raise ValueError(f"The input has {F} features; the population expects {n_in0}.")
        L = len(self.slices)
        O = self.slices[-1][2][0]
        rcode = READOUT_CODES[self.template.readout]
        static = is_static(x)
        nt = max(1, min(T, _TORCH_CHUNK_ELEMENTS // max(1, P * self._max_width * B)))
        xt = (x[0] if static else x.reshape(T * B, F)).t()                      # (F, Tc * B) view
        ws = [(W[:, w].view(P, n_out, n_in), W[:, b].view(P, n_out, 1)) for w, b, (n_out, n_in) in self.slices]

        def scratch(name, *shape):
            return self._scratch(name, shape, dt, dev)

        states = []                       # per layer: v (or the readout's membrane), syn, a
        for k, (_, _, (n_out, _)) in enumerate(self.slices):
            cuba, alif = bool(self._lay[k, 5]), bool(self._lay[k, 6])
            # not zeroed: the first step starts from the zero state by itself (see _scan_torch)
            states.append([scratch(f"v{k}", P, n_out, B), scratch(f"syn{k}", P, n_out, B) if cuba else None,
                           scratch(f"a{k}", P, n_out, B) if alif else None])
        agg = scratch("agg", P, O, B).zero_()
        surv = scratch("surv", P, O, B).fill_(1.0) if rcode == 1 else None
        cnt = torch.zeros((P, B), dtype=dt, device=dev) if count else None
        spikes = [torch.empty((T, P, B, n), dtype=dt, device=dev) for _, n in self._spiking_sizes] if save_spikes \
            else None
        cur0 = torch.baddbmm(ws[0][1], ws[0][0], xt.expand(P, F, B), out=scratch("cur0", P, self.slices[0][2][0], B)) \
            if static else None
        for t0 in range(0, T, nt):
            n = min(nt, T - t0)
            h, i_spk = None, 0
            for k in range(L):
                w, b = ws[k]
                n_out = self.slices[k][2][0]
                buf = scratch(f"buf{k % 2}", P, n_out, n * B)
                if k == 0 and static:
                    cur = None                                     # every step reads cur0
                else:
                    inp = xt[:, t0 * B:(t0 + n) * B].expand(P, F, n * B) if k == 0 else h
                    cur = torch.baddbmm(b, w, inp, out=buf)
                if self._lay[k, 4] >= 0:                           # spiking layer: its spikes overwrite buf
                    self._scan_torch(k, cur0 if cur is None else cur, buf, states[k], n, B, cur is None, t0 == 0)
                    s4 = buf.view(P, n_out, n, B)
                    if count:
                        cnt += s4.sum((1, 2))
                    if save_spikes:
                        spikes[i_spk][t0:t0 + n].copy_(s4.permute(2, 0, 3, 1))
                        i_spk += 1
                    if k == L - 1:                                 # spiking readout
                        if rcode == 0:
                            agg += s4.sum(2)
                        else:                                      # survival: 1 until the first spike
                            c = torch.cumprod(1.0 - s4, 2).mul_(surv.unsqueeze(2))
                            agg += c.sum(2)
                            surv.copy_(c[:, :, -1])
                    h = buf
                else:                                              # leaky readout over the chunk, in place
                    vo = states[k][0]
                    beta = float(self._fpar[k, 0])
                    for j in range(n):
                        cj = cur[:, :, j * B:(j + 1) * B]
                        if t0 + j == 0:
                            vo.copy_(cj)                           # from v = 0
                        else:
                            torch.add(cj, vo, alpha=beta, out=vo)  # v = beta * v + current
                        if rcode == 2:
                            if t0 + j == 0:
                                agg.copy_(vo)
                            else:
                                torch.maximum(agg, vo, out=agg)    # NaN propagates, as in the kernel
                        elif rcode == 4:
                            agg += vo
                    if rcode == 3:
                        agg.copy_(vo)
        logits = agg.transpose(1, 2)
        logits = -logits if rcode == 1 else (logits / T if rcode == 4 else logits)
        return logits.contiguous(), cnt, spikes

    def _scan_torch(self, k, cur, out, state, n, B, static, first):
        """Neuron update of layer ``k`` over ``n`` steps: currents ``cur`` (P, H, n * B), or
        (P, H, B) every step when ``static``; the spikes go to ``out`` (may be ``cur``: step ``t``
        writes its spikes over the currents it has read). ``first``: the chunk starts at step 0,
        from the zero state (whatever the state buffers hold)."""
        v, syn, a = state
        cuba, alif, subtract = (bool(f) for f in self._lay[k, 5:8])
        beta, alpha, thr, adapt, rho = (float(f) for f in self._fpar[k, :5])
        tmp = self._scratch("thr", v.shape, v.dtype, v.device) if alif else None
        for j in range(n):
            xj = cur if static else cur[:, :, j * B:(j + 1) * B]
            s = out[:, :, j * B:(j + 1) * B]
            zero = first and j == 0
            if cuba:
                if zero:
                    syn.copy_(xj)
                else:
                    torch.add(xj, syn, alpha=alpha, out=syn)       # syn = alpha * syn + x
                xj = syn
            if zero:
                v.copy_(xj)                                        # u = x from v = 0
            else:
                torch.add(xj, v, alpha=beta, out=v)                # u = beta * v + x, in v
            if alif:
                if zero:
                    torch.ge(v, thr, out=s)
                    a.copy_(s)                                     # a = s from a = 0
                else:
                    torch.mul(a, adapt, out=tmp)
                    torch.ge(v, tmp.add_(thr), out=s)              # u >= thr + adapt * a
                    a.mul_(rho).add_(s)                            # a = rho * a + s
            else:
                torch.ge(v, thr, out=s)
            if subtract:
                v.sub_(s, alpha=thr)                               # v = u - thr * s
            else:
                v.addcmul_(v, s, value=-1.0)                       # v = u (1 - s)
