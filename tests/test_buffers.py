"""The reuse pool for the training path's whole-sequence buffers (sklearn_snn._core.buffers)."""

import threading

import numpy as np
import pytest
import torch

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn._core import buffers, numba_backend
from sklearn_snn._core.buffers import BufferPool
from sklearn_snn._core.network import SNN
from sklearn_snn._core.neurons import NeuronSpec

BIG = (256, 1024)          # 1 MiB of float32: pooled
needs_numba = pytest.mark.skipif(numba_backend.numba_kernels() is None, reason="numba not installed")


def test_free_buffer_is_reused_and_busy_one_is_not():
    pool = BufferPool()
    a = pool.empty(BIG, torch.float32)
    ptr = a.data_ptr()
    b = pool.empty(BIG, torch.float32)
    assert b.data_ptr() != ptr                     # a is still alive
    a.fill_(1.0)
    b.fill_(2.0)
    assert float(a.sum()) == a.numel()             # b did not write over a
    del a
    c = pool.empty(BIG, torch.float32)
    assert c.data_ptr() == ptr                     # a's buffer came back
    assert c.data_ptr() % 64 == 0
    assert pool.nbytes() < 2.1 * 4 * np.prod(BIG)


def test_views_and_saved_tensors_keep_a_buffer_busy():
    pool = BufferPool()
    a = pool.empty(BIG, torch.float32)
    ptr = a.data_ptr()
    row = a[3]
    del a
    assert pool.empty(BIG, torch.float32).data_ptr() != ptr    # the view still uses it
    del row
    assert pool.empty(BIG, torch.float32).data_ptr() == ptr


def test_smaller_request_reuses_larger_buffer_only_up_to_twice_its_size():
    pool = BufferPool()
    ptr = pool.empty(BIG, torch.float32).data_ptr()
    half = pool.empty((BIG[0] // 2 + 1, BIG[1]), torch.float32)
    assert half.data_ptr() == ptr and half.shape == (BIG[0] // 2 + 1, BIG[1])
    del half
    assert pool.empty((BIG[0] // 4, BIG[1]), torch.float32).data_ptr() != ptr


def test_small_requests_bypass_the_pool_and_release_frees_idle_buffers():
    pool = BufferPool()
    pool.empty((8, 8), torch.float32)
    assert pool.nbytes() == 0
    keep = pool.empty(BIG, torch.float64)
    pool.empty(BIG, torch.uint8)
    assert pool.nbytes() >= keep.numel() * 9
    pool.release()
    assert keep.numel() * 8 <= pool.nbytes() < keep.numel() * 9     # only the busy one is left
    del keep
    pool.release()
    assert pool.nbytes() == 0


def test_long_unused_buffers_are_dropped(monkeypatch):
    monkeypatch.setattr(buffers, "MAX_IDLE", 3)
    pool = BufferPool()
    pool.empty((BIG[0] * 4, BIG[1]), torch.float32)     # freed at once, never asked for again
    for _ in range(5):
        pool.empty(BIG, torch.float32)
    assert pool.nbytes() < 2 * 4 * np.prod(BIG)


def test_threads_never_share_a_busy_buffer():
    pool = BufferPool()
    errors = []

    def work(k):
        for i in range(50):
            t = pool.empty(BIG, torch.float32)
            t.fill_(float(k))
            if float(t[-1, -1]) != k or float(t.min()) != float(t.max()):
                errors.append((k, i))
            del t      # one buffer per thread at a time: at most four in the pool

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert pool.nbytes() <= 4 * (4 * np.prod(BIG) + 64)


@needs_numba
@pytest.mark.parametrize("recurrent", [False, True])
def test_two_graphs_alive_at_once_give_the_gradients_of_one_at_a_time(recurrent):
    # both forward passes run before either backward pass: the second must not take the buffers
    # the first graph still holds (membrane, stored spikes, projected current)
    T, B, F, H, O = 40, 16, 60, 64, 5
    g = torch.Generator().manual_seed(0)
    xs = [(torch.rand(T, B, F, generator=g) < 0.2).float() for _ in range(2)]
    net = SNN(F, (H,), O, NeuronSpec("lif", beta=0.9), "fast_sigmoid", 10.0, recurrent=recurrent,
              readout="spike_count", generator=g)

    def grads_of(x):
        net.zero_grad()
        logits, _ = net(x)
        logits.square().sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    one_at_a_time = [grads_of(x) for x in xs]
    net.zero_grad()
    losses = [net(x)[0].square().sum() for x in xs]
    both = []
    for loss in losses:
        net.zero_grad()
        loss.backward()
        both.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(one_at_a_time, both):
        for ga, gb in zip(a, b):
            torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


@needs_numba
def test_fit_leaves_no_buffers_behind():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 30)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    buffers.release()
    SurrogateSNNClassifier(hidden_layer_sizes=(64,), n_steps=40, batch_size=120, max_iter=2,
                           random_state=0).fit(X, y)
    assert buffers.POOL.nbytes() == 0


@needs_numba
def test_inference_takes_nothing_from_the_pool_training_does():
    # under no_grad the recurrent weights still "need" a gradient as far as the scan can see;
    # grad mode decides: no pooled buffers and no stored spikes for a backward pass that never runs
    g = torch.Generator().manual_seed(1)
    net = SNN(40, (64,), 5, NeuronSpec("lif", beta=0.9), "fast_sigmoid", 10.0, recurrent=True,
              readout="spike_count", generator=g)
    x = (torch.rand(50, 32, 40, generator=g) < 0.2).float()
    buffers.release()
    with torch.no_grad():
        net(x)
    assert buffers.POOL.nbytes() == 0
    logits = net(x)[0]
    assert buffers.POOL.nbytes() >= 50 * 32 * 64 * 4
    logits.sum().backward()
    del logits
    buffers.release()
    assert buffers.POOL.nbytes() == 0
