"""Input projections ``x @ W.T + b`` over whole sequences, chosen by the shape of the work.

:func:`sparse_linear` is the projection of every layer on CPU: mostly-zero inputs (spike trains)
take :class:`SparseLinear`, which touches only the nonzeros; projections into few neurons over many
rows (readouts) take :class:`NarrowLinear`; the others :class:`DenseLinear` (BLAS, the output in a
pooled buffer while training) or plain ``torch.nn.functional.linear``. The sparse and narrow paths
run loops of the compiled backend (:mod:`~sklearn_snn._core.numba_backend`) and are taken only when
it is available; without it, mostly-zero inputs into many neurons take :class:`TorchSparseLinear`
(embedding bags, torch ops only).
"""

from __future__ import annotations

import numpy as np
import torch

from . import buffers
from .numba_backend import as_numpy, kernels, numba_kernels

__all__ = ["NARROW_MAX_OUT", "NARROW_MIN_ROWS", "SPARSE_DENSITY", "SPARSE_MIN_OUT", "TORCH_SPARSE_MIN_OUT",
           "WGRAD_BLOCK", "DenseLinear", "NarrowLinear", "SparseLinear", "TorchSparseLinear", "sparse_linear"]

_buf = buffers.empty       # a CPU buffer for the kernels: from the reuse pool while training (pooled)


SPARSE_DENSITY = 0.25
"""Inputs with at most this fraction of nonzeros take the sparse projection path."""

SPARSE_MIN_OUT = 48
"""Projections into fewer neurons stay dense: finding the nonzeros costs more than the product
(measured, forward and backward, 10-20% spikes: 128 -> 10 dense 0.56 ms vs sparse 1.37 ms, 256 -> 32
equal, 256 -> 64 sparse 1.3x faster, 700 -> 256 sparse 2.6x faster)."""

WGRAD_BLOCK = 256
"""Rows per block in the sparse weight gradient (a block of the output gradient stays in cache)."""


class SparseLinear(torch.autograd.Function):
    """``x @ W.T + b`` for a mostly-zero ``x`` (N, F): touches only the nonzeros.

    The forward pass reads each row once, accumulates ``W[:, f]`` for its nonzero entries and
    keeps them in CSR form for the weight gradient ``G.T @ x``; the input gradient (when the input
    needs one, e.g. the spikes of a previous layer) is the dense ``G @ W``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, counts, binary, pool):
        nb, n = kernels()
        N, F = x.shape
        H = weight.shape[0]
        indptr = torch.zeros(N + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=indptr[1:])
        nnz = int(indptr[-1])
        indices = _buf((nnz,), torch.int32, pool)
        values = _buf((0 if binary else nnz,), x.dtype, pool)   # spikes: all ones, not stored
        out = _buf((N, H), x.dtype, pool)
        wT = weight.detach().t().contiguous()
        b = bias.detach() if bias is not None else x.new_zeros(H)
        nb.sparse_project(as_numpy(x), as_numpy(wT), as_numpy(b.contiguous()), as_numpy(indptr), as_numpy(indices), as_numpy(values), as_numpy(out),
                          binary, max(1, min(n, N)))
        ctx.binary = binary
        ctx.save_for_backward(indptr, indices, values, weight)
        ctx.shape = (N, F)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, G):
        nb, n = kernels()
        indptr, indices, values, weight = ctx.saved_tensors
        G = G.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.mm(G, weight.detach(), out=_buf(ctx.shape, G.dtype))
        if ctx.needs_input_grad[1]:
            F = ctx.shape[1]
            gwT = torch.zeros((F, G.shape[1]), dtype=G.dtype)
            # each extra thread sums into its own (F, H) buffer: at most one per 4F nonzeros, so
            # adding the buffers up costs at most a quarter of the work it splits
            chunks = max(1, min(n, G.shape[0], int(indptr[-1]) // (4 * F)))
            nb.sparse_wgrad(as_numpy(indptr), as_numpy(indices), as_numpy(values), as_numpy(G), as_numpy(gwT), chunks, ctx.binary, WGRAD_BLOCK)
            gw = gwT.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb, None, None, None


NARROW_MAX_OUT = 20
"""Dense projections into at most this many neurons (readout layers) take :class:`NarrowLinear`."""

NARROW_MIN_ROWS = 4096


class NarrowLinear(torch.autograd.Function):
    """``x @ W.T + b`` into few outputs (a readout layer over all steps): the forward pass is a BLAS
    matmul; the input gradient ``G @ W`` (N x K times K x H with small K) is the compiled row
    kernel, which beats BLAS for this shape once N is large. Spike inputs (every entry 0 or 1) are
    kept for the weight gradient packed eight to a byte (a 32nd of the float32 copy, so the float
    spikes of the layer below are freed after the forward pass), and the weight gradient adds the
    rows of ``G`` at the set bits; other inputs are kept as they are (BLAS weight gradient)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        out = _linear_into(x, weight, bias, _buf((x.shape[0], weight.shape[0]), x.dtype))
        keep, packed = x, False
        if ctx.needs_input_grad[1]:
            P = _buf((x.shape[0], (x.shape[1] + 7) // 8), torch.uint8)
            if numba_kernels().pack_bits(as_numpy(x.contiguous()), as_numpy(P)):
                keep, packed = P, True
        ctx.save_for_backward(keep, weight)
        ctx.packed, ctx.has_bias, ctx.n_in = packed, bias is not None, x.shape[1]
        return out

    @staticmethod
    def backward(ctx, G):
        x, weight = ctx.saved_tensors
        nb, n = kernels()
        G = G.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _buf((G.shape[0], weight.shape[1]), G.dtype)
            nb.narrow_gx(as_numpy(G), as_numpy(weight.detach().contiguous()), as_numpy(gx), max(1, min(n, G.shape[0])))
        if ctx.needs_input_grad[1]:
            if ctx.packed:
                gw = torch.zeros((G.shape[1], ctx.n_in), dtype=G.dtype)
                nb.bits_wgrad(as_numpy(x), as_numpy(G), as_numpy(gw), max(1, min(n, G.shape[0] // 1024)))
            else:
                gw = G.t() @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb


TORCH_SPARSE_MIN_OUT = 128
"""Without the compiled backend, projections into at least this many neurons of a mostly-zero
input take :class:`TorchSparseLinear`: finding the nonzeros in torch ops costs about what a dense
product into 64-128 neurons does (measured, 6400 x 700 spikes at 10%, one thread: ``nonzero``
about 10 ms, the dense forward and weight gradient 27 ms each into 256 neurons, the
``embedding_bag`` forward 5 ms and weight gradient 8 ms)."""


class TorchSparseLinear(torch.autograd.Function):
    """``x @ W.T + b`` for a mostly-zero ``x`` (N, F) in torch ops (no compiled backend needed).

    The nonzeros of ``x`` (flat indices ``flat``, row-major) are bags of rows of ``W.T``: the
    forward pass is one ``embedding_bag`` (sum, weighted by the values unless every nonzero is 1).
    The weight gradient ``G.T @ x`` is another: the nonzeros regrouped by column (a stable
    argsort), each column summing the rows of ``G`` at its nonzeros. The input gradient (when the
    input needs one) is the dense ``G @ W``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, flat, binary):
        N, F = x.shape
        rows = torch.div(flat, F, rounding_mode="floor")
        cols = flat - rows * F
        offsets = torch.zeros(N, dtype=flat.dtype)
        torch.cumsum(torch.bincount(rows, minlength=N)[:-1], 0, out=offsets[1:])
        vals = None if binary else torch.index_select(x.detach().reshape(-1), 0, flat)
        out = torch.nn.functional.embedding_bag(cols, weight.detach().t().contiguous(), offsets, mode="sum",
                                                per_sample_weights=vals)
        if bias is not None:
            out.add_(bias.detach())
        ctx.save_for_backward(rows, cols, vals, weight)
        ctx.shape, ctx.has_bias = (N, F), bias is not None
        return out

    @staticmethod
    def backward(ctx, G):
        rows, cols, vals, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = G @ weight.detach()
        if ctx.needs_input_grad[1]:
            F = ctx.shape[1]
            # the narrowest key sorts fastest
            key = cols.to(torch.int16 if F < 2 ** 15 else torch.int32 if F < 2 ** 31 else torch.int64)
            perm = torch.argsort(key, stable=True)
            offsets = torch.zeros(F, dtype=rows.dtype)
            torch.cumsum(torch.bincount(cols, minlength=F)[:-1], 0, out=offsets[1:])
            gwT = torch.nn.functional.embedding_bag(
                torch.index_select(rows, 0, perm), G.contiguous(), offsets, mode="sum",
                per_sample_weights=None if vals is None else torch.index_select(vals, 0, perm))
            gw = gwT.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb, None, None


def _torch_sparse_linear(x, weight, bias, max_density):
    """The projection of a mostly-zero ``x`` without the compiled backend (CPU); ``None`` when
    ``x`` is too dense for it (the caller then runs the dense product)."""
    x2 = x.reshape(-1, x.shape[-1])
    probe = x2[:256]
    if int(torch.count_nonzero(probe)) > 2 * max_density * probe.numel():
        return None
    # numpy's comparison and flat nonzero (one thread: several times torch's ``!=`` and faster than
    # its ``nonzero``); the mask in a reused buffer while training (a fresh one costs its page faults)
    xn = x2.detach().reshape(-1).numpy()
    mask = _buf((xn.size,), torch.bool, torch.is_grad_enabled()).numpy()
    flat = torch.from_numpy(np.flatnonzero(np.not_equal(xn, 0, out=mask)))
    if flat.numel() > max_density * x2.numel():
        return None
    # every nonzero is 1 exactly when the ones are as many as the nonzeros
    binary = int(np.count_nonzero(np.equal(xn, 1, out=mask))) == flat.numel()
    out = TorchSparseLinear.apply(x2, weight, bias, flat, binary)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], weight.shape[0])


def _linear_into(x, weight, bias, out):
    """``x @ weight.T + bias`` (2D ``x``) written into ``out``, no autograd."""
    w = weight.detach().t()
    if bias is None:
        return torch.mm(x.detach(), w, out=out)
    return torch.addmm(bias.detach(), x.detach(), w, out=out)


class DenseLinear(torch.autograd.Function):
    """``x @ W.T + b`` (2D ``x``) with its output in a pooled buffer; the gradients as autograd's."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)
        ctx.has_bias = bias is not None
        return _linear_into(x, weight, bias, _buf((x.shape[0], weight.shape[0]), x.dtype))

    @staticmethod
    def backward(ctx, G):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.mm(G, weight.detach(), out=_buf((G.shape[0], weight.shape[1]), G.dtype))
        if ctx.needs_input_grad[1]:
            gw = G.t() @ x.detach()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = G.sum(0)
        return gx, gw, gb


def _dense_linear(x, weight, bias, cpu):
    """``linear`` for a CPU training step: the whole-sequence output from the reuse pool."""
    training = cpu and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if not training or x.numel() // max(x.shape[-1], 1) * weight.shape[0] * x.element_size() < buffers.MIN_BYTES:
        return torch.nn.functional.linear(x, weight, bias)
    x2 = x.reshape(-1, x.shape[-1])
    return DenseLinear.apply(x2, weight, bias).reshape(*x.shape[:-1], weight.shape[0])


def sparse_linear(x, weight, bias=None, max_density=None):
    """``torch.nn.functional.linear`` that exploits a mostly-zero input (e.g. spikes) on CPU.

    Falls back to the dense ``linear`` when the tensors are not CPU float32/float64 or more than
    ``max_density`` (default :data:`SPARSE_DENSITY`) of the input is nonzero. Without the compiled
    backend the sparse path is :class:`TorchSparseLinear`, for at least
    :data:`TORCH_SPARSE_MIN_OUT` outputs. All paths compute the same values (up to summation order).

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(4, 6); x[0, 1] = x[3, 5] = 1.0
    >>> w, b = torch.randn(3, 6), torch.randn(3)
    >>> torch.allclose(sparse_linear(x, w, b), torch.nn.functional.linear(x, w, b), atol=1e-6)
    True
    """
    from .kernels import worth_compiling   # (kernels imports this module)

    max_density = SPARSE_DENSITY if max_density is None else max_density
    nb = None
    cpu = (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
           and weight.device.type == "cpu" and x.dim() >= 2)
    if (cpu and weight.shape[0] <= NARROW_MAX_OUT and x.requires_grad and torch.is_grad_enabled()
            and x.numel() >= NARROW_MIN_ROWS * x.shape[-1] and worth_compiling(("narrow_gx",), x.numel())
            and numba_kernels() is not None):
        x2 = x.reshape(-1, x.shape[-1])
        return NarrowLinear.apply(x2, weight, bias).reshape(*x.shape[:-1], weight.shape[0])
    if (cpu and x.shape[-1] >= 16 and weight.shape[0] >= SPARSE_MIN_OUT and max_density > 0
            and worth_compiling(("sparse_project",), x.numel())):
        nb = numba_kernels()
    if nb is None:
        if (cpu and x.shape[-1] >= 16 and weight.shape[0] >= TORCH_SPARSE_MIN_OUT
                and max_density > 0 and x.is_contiguous()):
            out = _torch_sparse_linear(x, weight, bias, max_density)
            if out is not None:
                return out
        return _dense_linear(x, weight, bias, cpu)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    if not x2.is_contiguous():
        return torch.nn.functional.linear(x, weight, bias)
    # a dense input (e.g. the scaled features of the first layer) is recognised from its first rows,
    # without the full counting pass
    probe = x2[:256]
    if int(torch.count_nonzero(probe)) > 2 * max_density * probe.numel():
        return _dense_linear(x, weight, bias, True)
    nb, _ = kernels()
    counts = torch.empty(x2.shape[0], dtype=torch.int64)
    other = torch.empty(x2.shape[0], dtype=torch.int64)
    nb.sparse_count(as_numpy(x2), as_numpy(counts), as_numpy(other))
    if int(counts.sum()) > max_density * x2.numel():
        return _dense_linear(x, weight, bias, True)
    training = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    out = SparseLinear.apply(x2, weight, bias, counts, not bool(other.any()), training)
    return out.reshape(*lead, weight.shape[0])
