"""Prototype readouts of meta learning: the cosine metric and the outer step-size schedule."""

import numpy as np
import pytest
import torch

from sklearn_snn._core.meta_proto import (
    init_readout_from_prototypes,
    prototype_logits,
    prototypes,
    readout_features,
)
from sklearn_snn._core.network import SNN
from sklearn_snn._core.neurons import NeuronSpec
from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier

KW = {"hidden_layer_sizes": (32,), "n_steps": 4, "meta_algorithm": "protonet", "meta_batch_size": 2,
      "random_state": 0}


def _train():
    return FewShotTaskSampler(n_way=3, k_shot=3, n_query=4, classes=range(6), random_state=0)


def test_cosine_readout_classifies_as_the_cosine_prototypes():
    """The readout built for metric='cosine' (W_k ~ c_k / ||c_k||, no bias) gives every query the
    class of its most cosine-similar prototype, and its logits are the cosine scores times the
    scale over the support set's mean feature norm."""
    g = torch.Generator().manual_seed(0)
    net = SNN(6, (12,), 3, NeuronSpec(threshold=0.3), readout="membrane_last", generator=g)
    xs, xq = torch.rand(5, 9, 6, generator=g) * 3, torch.rand(5, 20, 6, generator=g) * 3
    ys = torch.arange(9) % 3
    init_readout_from_prototypes(net, xs, ys, 3, scale=7.0, metric="cosine")
    with torch.no_grad():
        phi_s, _ = readout_features(net, xs)
        phi_q, _ = readout_features(net, xq)
        cos = prototype_logits(phi_q, prototypes(phi_s, ys, 3), 7.0, "cosine")
        logits = phi_q @ net.out.weight.T
    torch.testing.assert_close(logits * phi_s.norm(dim=1).mean(), cos * phi_q.norm(dim=1, keepdim=True),
                               rtol=1e-5, atol=1e-5)
    assert torch.equal(net.out.bias, torch.zeros(3))
    with pytest.raises(ValueError, match="Unknown prototype metric 'dot'"):
        prototype_logits(phi_q, phi_s[:3], 1.0, "dot")


def test_cosine_prototype_meta_learning_start_and_held_out_accuracy():
    meta = MetaSNNClassifier(**KW, prototype_metric="cosine", n_meta_iter=10, learning_rate_init=2e-3,
                             n_adapt_steps=5).meta_fit(_train())
    assert meta.meta_scale_ != pytest.approx(10.0)          # the temperature is learned (from 10)
    test = FewShotTaskSampler(n_way=3, k_shot=3, n_query=6, classes=range(6, 10)).episodes(8, random_state=1)
    acc = np.mean([meta.fit(ep.X_support, ep.y_support).score(ep.X_query, ep.y_query) for ep in test])
    assert acc > 0.8, acc
    # without a step the fitted network is the cosine-prototype classifier of its hidden features
    ep = test[0]
    meta.set_params(n_adapt_steps=1, learning_rate_init=1e-12).fit(ep.X_support, ep.y_support)
    enc = lambda X: meta._encode(meta._to_tensor(meta._scale(X)), train=False)
    with torch.no_grad():
        phi_s, _ = readout_features(meta.module_, enc(ep.X_support))
        phi_q, _ = readout_features(meta.module_, enc(ep.X_query))
        best = prototype_logits(phi_q, prototypes(phi_s, torch.as_tensor(ep.y_support), 3), 1.0, "cosine").argmax(1)
    assert (meta.predict(ep.X_query) == best.numpy()).mean() >= 0.95


def test_cosine_meta_lr_schedule_halves_the_second_outer_step():
    """With 'cosine' over two meta-iterations the second outer step is half the constant one
    (same tasks, same first step, Adam's update is proportional to its step size)."""
    def weights(n, schedule):
        meta = MetaSNNClassifier(**KW, n_meta_iter=n, meta_lr=1e-2, meta_lr_schedule=schedule).meta_fit(_train())
        return meta.meta_module_.hidden[0].weight.detach().clone()

    first, const, cos = weights(1, "constant"), weights(2, "constant"), weights(2, "cosine")
    assert not torch.equal(const, first)
    torch.testing.assert_close(cos - first, (const - first) / 2, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="meta_lr_schedule"):
        MetaSNNClassifier(**KW, meta_lr_schedule="linear").meta_fit(_train())


@pytest.mark.parametrize("n_way", [3, 2])
def test_logistic_readout_start_is_logistic_regression_on_the_readout_features(n_way):
    """readout_init='logistic': before any step the network predicts as sklearn's logistic
    regression on the support set's readout features (binary too)."""
    from sklearn.linear_model import LogisticRegression

    meta = MetaSNNClassifier(**KW, readout="membrane_mean", n_meta_iter=3).meta_fit(_train())
    ep = FewShotTaskSampler(n_way=n_way, k_shot=4, n_query=6, classes=range(6, 10)).sample(random_state=2)
    meta.set_params(readout_init="logistic", n_adapt_steps=1, learning_rate_init=1e-12).fit(ep.X_support, ep.y_support)
    enc = lambda X: meta._encode(meta._to_tensor(meta._scale(X)), train=False)
    with torch.no_grad():
        phi_s, _ = readout_features(meta.module_, enc(ep.X_support))
        phi_q, _ = readout_features(meta.module_, enc(ep.X_query))
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(phi_s.double().numpy(), ep.y_support)
    np.testing.assert_array_equal(meta.predict(ep.X_query), ref.predict(phi_q.double().numpy()))
    # and the probabilities are the logistic regression's
    np.testing.assert_allclose(meta.predict_proba(ep.X_query), ref.predict_proba(phi_q.double().numpy()), atol=2e-3)
    with pytest.raises(ValueError, match="readout_init"):
        meta.set_params(readout_init="ridge").fit(ep.X_support, ep.y_support)
