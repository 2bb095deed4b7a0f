"""Soft nearest-neighbour prototypes (``prototype_per='sample'``), the nearest-neighbour fit
(``readout_init='nearest'``) and the ridge-regression head (``prototype_per='ridge'``) of
MetaSNNClassifier."""

import numpy as np
import pytest
import torch

from sklearn_snn import load, save
from sklearn_snn._core.meta_proto import (
    nearest_logits,
    prototype_logits,
    readout_features,
    ridge_logits,
)
from sklearn_snn.meta import MetaSNNClassifier, RandmanTaskSampler

KW = {"hidden_layer_sizes": (48,), "neuron": "cuba", "tau_mem": 6.0, "tau_syn": 6.0, "readout": "membrane_mean",
      "meta_algorithm": "protonet", "meta_batch_size": 2, "random_state": 0}
SHAPE = {"n_units": 12, "n_steps": 16}


def _train():
    return RandmanTaskSampler(4, 3, 6, **SHAPE, task_seeds=range(1000), random_state=0)


def _test_episodes(n=6, k_shot=3):
    return RandmanTaskSampler(4, k_shot, 8, **SHAPE, task_seeds=range(10**6, 10**6 + 1000)).episodes(n, random_state=1)


def test_nearest_logits_is_the_log_sum_over_each_class_and_tends_to_one_nearest_neighbour():
    g = torch.Generator().manual_seed(0)
    phi, phi_s = torch.rand(30, 5, generator=g, dtype=torch.float64), torch.rand(9, 5, generator=g, dtype=torch.float64)
    y_s = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1])
    got = nearest_logits(phi, phi_s, y_s, 4, 3.0)
    d = -3.0 * ((phi[:, None, :] - phi_s[None]) ** 2).sum(-1)
    for k in range(3):
        torch.testing.assert_close(got[:, k], torch.logsumexp(d[:, y_s == k], dim=1))
    assert torch.isinf(got[:, 3]).all() and (got[:, 3] < 0).all()    # a class without support samples
    nearest = y_s[torch.cdist(phi, phi_s).argmin(1)]
    assert torch.equal(nearest_logits(phi, phi_s, y_s, 3, 1e4).argmax(1), nearest)
    # cosine: the same log-sum over the cosine scores
    cos = prototype_logits(phi, phi_s, 2.0, "cosine")
    torch.testing.assert_close(nearest_logits(phi, phi_s, y_s, 3, 2.0, "cosine")[:, 1],
                               torch.logsumexp(cos[:, y_s == 1], dim=1))


def test_sample_prototypes_meta_train_differently_from_class_means():
    a = MetaSNNClassifier(**KW, n_meta_iter=3, prototype_per="class").meta_fit(_train())
    b = MetaSNNClassifier(**KW, n_meta_iter=3, prototype_per="sample").meta_fit(_train())
    assert not torch.equal(a.meta_module_.hidden[0].weight, b.meta_module_.hidden[0].weight)
    assert np.isfinite(b.meta_loss_curve_).all() and len(b.meta_loss_curve_) == 3
    with pytest.raises(ValueError, match="prototype_per"):
        MetaSNNClassifier(**KW, prototype_per="pixel").meta_fit(_train())


def test_nearest_fit_predicts_by_the_soft_nearest_neighbour_of_the_support_features(tmp_path):
    meta = MetaSNNClassifier(**KW, n_meta_iter=2, prototype_per="sample", readout_init="nearest").meta_fit(_train())
    ep, ep2 = _test_episodes(2)
    meta.fit(ep.X_support, ep.y_support)
    assert meta.n_iter_ == 0 and meta.support_features_.shape == (len(ep.y_support), 48)
    np.testing.assert_array_equal(meta.support_targets_, ep.y_support)
    enc = lambda X: meta._encode(meta._to_tensor(meta._scale(X)).double(), train=False)
    with torch.no_grad():
        m = meta.module_.double()
        phi_s, phi_q = readout_features(m, enc(ep.X_support))[0], readout_features(m, enc(ep.X_query))[0]
        meta.module_.float()
        ref = nearest_logits(phi_q, phi_s, torch.as_tensor(ep.y_support), 4, meta.meta_scale_)
    np.testing.assert_allclose(meta.decision_function(ep.X_query), ref.numpy(), rtol=1e-6, atol=1e-6)
    proba = meta.predict_proba(ep.X_query)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(meta.predict(ep.X_query), meta.classes_[ref.argmax(1).numpy()])
    # saved and loaded, it predicts the same; a new support set replaces the stored features
    save(meta, tmp_path / "m.snn")
    np.testing.assert_array_equal(load(tmp_path / "m.snn").predict(ep.X_query), meta.predict(ep.X_query))
    meta.fit(ep2.X_support, ep2.y_support)
    assert not np.array_equal(meta.support_features_[:3], phi_s[:3].numpy())
    with pytest.raises(ValueError, match="cannot weigh them"):
        meta.fit(ep.X_support, ep.y_support, sample_weight=np.ones(len(ep.y_support)))
    # other readout starts (and a plain fit) drop the stored features and take gradient steps
    meta.set_params(readout_init="prototypes", n_adapt_steps=2).fit(ep.X_support, ep.y_support)
    assert not hasattr(meta, "support_features_") and meta.n_iter_ == 2


def test_nearest_start_beats_a_plain_fit_on_fresh_spike_timing_tasks():
    """Held-out random-manifold tasks: the meta-trained nearest-neighbour start against the same
    network trained from scratch (lr 2e-2, 60 epochs) on the support set, and against the start
    after a single meta-iteration (the meta-training is what makes it work: about 0.68, 0.61, 0.40)."""
    eps = _test_episodes(6)

    def accuracy(n_meta_iter):
        meta = MetaSNNClassifier(**KW, n_meta_iter=n_meta_iter, prototype_per="sample", readout_init="nearest",
                                 meta_lr=1e-2).meta_fit(_train())
        return np.mean([meta.fit(e.X_support, e.y_support).score(e.X_query, e.y_query) for e in eps])

    acc, untrained = accuracy(40), accuracy(1)
    scratch = np.mean([MetaSNNClassifier(**KW, learning_rate_init=2e-2, max_iter=60).fit(e.X_support, e.y_support)
                       .score(e.X_query, e.y_query) for e in eps])
    assert acc > scratch + 0.03, (acc, scratch)
    assert acc > untrained + 0.15, (acc, untrained)


def test_ridge_head_is_the_closed_form_ridge_regression_and_meta_trains():
    from sklearn.linear_model import Ridge

    g = torch.Generator().manual_seed(1)
    phi_s, phi = torch.rand(12, 7, generator=g, dtype=torch.float64), torch.rand(5, 7, generator=g, dtype=torch.float64)
    y_s = torch.arange(12) % 3
    lam = 0.5 * float((phi_s ** 2).sum(1).mean())
    ref = Ridge(alpha=lam, fit_intercept=False).fit(phi_s.numpy(), np.eye(3)[y_s.numpy()])
    got = ridge_logits(phi, phi_s, y_s, 3, 2.0, ridge=0.5)
    np.testing.assert_allclose(got.numpy(), 2.0 * ref.predict(phi.numpy()), rtol=1e-8, atol=1e-10)
    meta = MetaSNNClassifier(**KW, n_meta_iter=3, prototype_per="ridge").meta_fit(_train())
    assert meta.meta_scale_ != pytest.approx(10.0) and meta.meta_scale_ == pytest.approx(10.0, rel=0.2)
    assert np.isfinite(meta.meta_loss_curve_).all()
