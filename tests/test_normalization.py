"""Batch norm through time (BNTT, tdBN): forward against hand computation, train and eval mode."""
import numpy as np
import torch

from sklearn_snn._core.layers import TimeBatchNorm


def test_bntt_eval_uses_per_step_running_statistics():
    bn = TimeBatchNorm(2, n_steps=3, mode="bntt")
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]], [[-1.0, 4.0]]]))
        bn.running_var.copy_(torch.tensor([[[4.0, 1.0]], [[1.0, 9.0]], [[0.25, 1.0]]]))
        bn.weight.copy_(torch.tensor([[[2.0, 1.0]], [[1.0, 1.0]], [[1.0, 3.0]]]))
        bn.bias.copy_(torch.tensor([[[0.5, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]))
    bn.eval()
    x = torch.tensor([[[3.0, 2.0]], [[1.0, 3.0]], [[0.0, 5.0]]])
    out = bn(x)
    # step 0: (3-1)/2*2+.5 = 2.5, (2-2)/1*1 = 0 ; step 1: 1/1 = 1, 3/3+1 = 2 ; step 2: (0+1)/.5 = 2, (5-4)*3 = 3
    expected = torch.tensor([[[2.5, 0.0]], [[1.0, 2.0]], [[2.0, 3.0]]])
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_tdbn_normalises_over_time_and_batch_scaled_by_threshold():
    bn = TimeBatchNorm(1, n_steps=4, mode="tdbn", threshold=0.5, alpha=2.0)  # scale alpha * threshold = 1
    x = torch.arange(8.0).view(4, 2, 1)
    out = bn(x)  # training mode: batch statistics over (T, B)
    mean, std = x.mean(), x.std(unbiased=False)
    torch.testing.assert_close(out, (x - mean) / torch.sqrt(std ** 2 + 1e-5))
    # running stats moved by momentum 0.1 towards the (unbiased) batch statistics
    np.testing.assert_allclose(float(bn.running_mean), 0.1 * 3.5, rtol=1e-5)
    np.testing.assert_allclose(float(bn.running_var), 0.9 + 0.1 * x.var(unbiased=True).item(), rtol=1e-5)
    bn.eval()
    out_eval = bn(x)
    torch.testing.assert_close(out_eval, (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-5))


def test_bntt_training_statistics_are_per_step():
    bn = TimeBatchNorm(1, n_steps=2, mode="bntt")
    x = torch.tensor([[[0.0], [2.0]], [[10.0], [30.0]]])  # step 0: mean 1 ; step 1: mean 20
    out = bn(x)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([-1.0, -1.0]), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out[:, 1, 0], torch.tensor([1.0, 1.0]), rtol=1e-3, atol=1e-3)
