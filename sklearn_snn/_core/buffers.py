"""A reuse pool for the large per-step buffers of the compiled CPU training path.

A training step of a spiking layer allocates a few buffers of the size of the whole sequence
(T, B, H) -- the projected current, the spikes, the stored spikes for the backward pass, the
gradient of the spikes -- and frees them again at the end of the step. With glibc's allocator
that churn costs memory: after the first such buffer is freed, glibc raises its mmap threshold
above it, so every later one is carved from the heap, where freed blocks are kept (they are
rarely at the heap's top, so they cannot be returned) and the resident size of training grows to
about twice the live buffers. (The per-step loops of other libraries allocate (B, H) pieces that
glibc recycles well; it is the whole-sequence buffers of a fused scan that fragment.)

The pool keeps those buffers and hands them out again, the way a caching GPU allocator does: a
buffer is free again when no tensor refers to it any more (its reference count is back to the
pool's own), so a step reuses the buffers of the step before, and the resident size stays at the
peak of what is live. Buffers below :data:`MIN_BYTES` are left to the allocator. Buffers unused
for :data:`MAX_IDLE` acquisitions are dropped, and :func:`release` drops every free one (the
training loop calls it when ``fit`` ends), so nothing outlives training.

Only the CPU kernels of :mod:`~sklearn_snn._core.kernels` use it, and only while training
(forward passes that record gradients and the backward pass); inference allocates as usual.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import torch

MIN_BYTES = 1 << 18
"""Buffers smaller than this (256 KiB) are not pooled."""

MAX_IDLE = 256
"""A free buffer not handed out in this many acquisitions is dropped."""

_ALIGN = 64

_NP = {torch.float32: np.float32, torch.float64: np.float64, torch.uint8: np.uint8, torch.int32: np.int32,
       torch.int64: np.int64, torch.bool: np.bool_}


class BufferPool:
    """Reusable CPU buffers, shared between threads (a lock guards the bookkeeping)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._bufs = []          # [array of bytes, aligned offset, tick of last use]
        self._tick = 0
        self._base = None        # reference count of a buffer that only the pool holds

    def empty(self, shape, dtype):
        """An uninitialised CPU tensor of ``shape`` and ``dtype``, from the pool when large."""
        shape = tuple(int(s) for s in shape)
        nd = _NP.get(dtype)
        nbytes = math.prod(shape) * np.dtype(nd).itemsize if nd is not None else 0
        if nd is None or nbytes < MIN_BYTES:
            return torch.empty(shape, dtype=dtype)
        with self._lock:
            self._tick += 1
            if self._base is None:
                self._base = self._count([np.empty(1, np.uint8), 0, 0])
            best = None
            keep = []
            for entry in self._bufs:
                size = entry[0].nbytes - _ALIGN
                free = self._count(entry) <= self._base
                if free and self._tick - entry[2] > MAX_IDLE:
                    continue          # dropped: free and long unused
                keep.append(entry)
                # reuse a free buffer that is large enough and not more than twice the size
                if free and nbytes <= size <= 2 * nbytes and (best is None or size < best[0].nbytes - _ALIGN):
                    best = entry
            self._bufs = keep
            if best is None:
                raw = np.empty(nbytes + _ALIGN, np.uint8)
                best = [raw, (-raw.ctypes.data) % _ALIGN, 0]
                self._bufs.append(best)
            best[2] = self._tick
            raw, off = best[0], best[1]
            view = raw[off:off + nbytes].view(nd).reshape(shape)
        return torch.from_numpy(view)

    @staticmethod
    def _count(entry):
        # references to the raw array: the entry's, this call's argument, the local name below, and
        # one per live view (each tensor handed out keeps its numpy view, whose base is the array)
        a = entry[0]
        return sys.getrefcount(a)

    def release(self):
        """Drop every free buffer (buffers still in use are freed with their last tensor)."""
        with self._lock:
            if self._base is None:
                return
            self._bufs = [e for e in self._bufs if self._count(e) > self._base]

    def nbytes(self):
        """Bytes held by the pool (free and in use)."""
        with self._lock:
            return sum(e[0].nbytes for e in self._bufs)


POOL = BufferPool()


def empty(shape, dtype, pooled=True):
    """``torch.empty`` on CPU, from :data:`POOL` when ``pooled`` (and the buffer is large)."""
    return POOL.empty(shape, dtype) if pooled else torch.empty(tuple(shape), dtype=dtype)


def release():
    """Return the pool's free buffers to the allocator."""
    POOL.release()
