"""Instance episodes (one image per class, affine distortions as samples) for meta learning."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.datasets import load_digits

from sklearn_snn.meta import InstanceTaskSampler, MetaSNNClassifier
from sklearn_snn.tasks import random_affine


def test_random_affine_matches_scipy_reference():
    rng = np.random.RandomState(0)
    imgs = rng.rand(5, 8, 8)
    out = random_affine(imgs, rotation=30, scale=0.2, shift=1.5, random_state=3)
    # the same draws, warped one image at a time by scipy (bilinear, zero outside)
    r = np.random.RandomState(3)
    a, z, t = np.deg2rad(r.uniform(-30, 30, 5)), 1 + r.uniform(-0.2, 0.2, 5), r.uniform(-1.5, 1.5, (5, 2))
    c = np.array([3.5, 3.5])
    for i in range(5):
        m = np.array([[np.cos(a[i]), -np.sin(a[i])], [np.sin(a[i]), np.cos(a[i])]]) / z[i]
        ref = ndimage.affine_transform(imgs[i], m, offset=c - m @ c + t[i], order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(out[i], ref, atol=1e-9)
    # identity and whole-pixel shifts are exact
    np.testing.assert_allclose(random_affine(imgs, 0, 0, 0), imgs)
    with pytest.raises(ValueError, match="3D"):
        random_affine(imgs.reshape(5, 64))


def test_instance_task_sampler_episodes():
    X, y = load_digits(return_X_y=True)
    s = InstanceTaskSampler(X[y < 5], n_way=6, k_shot=2, n_query=3, random_state=0)
    ep = s.sample(random_state=0)
    assert ep.X_support.shape == (12, 64) and ep.X_query.shape == (18, 64)
    assert ep.y_support.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5] and np.bincount(ep.y_query).tolist() == [3] * 6
    # without distortion every sample is its class's image
    plain = InstanceTaskSampler(X[y < 5], n_way=6, k_shot=2, n_query=3, rotation=0, scale=0, shift=0).sample(0)
    src = X[y < 5][plain.classes]
    np.testing.assert_allclose(plain.X_support, src[plain.y_support])
    np.testing.assert_allclose(plain.X_query, src[plain.y_query])
    assert not np.allclose(ep.X_support[0], ep.X_support[1])    # two different distortions
    a, b = s.episodes(2, random_state=4), s.episodes(2, random_state=4)
    assert all(np.array_equal(u.X_query, v.X_query) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="64 columns"):
        InstanceTaskSampler(X[:, :10])
    with pytest.raises(ValueError, match="n_way=20"):
        InstanceTaskSampler(X[:5])


def test_instance_episodes_meta_train_a_prototype_start():
    X, y = load_digits(return_X_y=True)
    clf = MetaSNNClassifier((32,), n_steps=4, meta_algorithm="protonet", n_meta_iter=30, meta_batch_size=2,
                            n_adapt_steps=2, learning_rate_init=2e-3, meta_lr=1e-2, random_state=0)
    clf.meta_fit(InstanceTaskSampler(X[y < 5], n_way=8, k_shot=2, n_query=2, random_state=0))
    loss = np.asarray(clf.meta_loss_curve_)
    assert loss[-10:].mean() < loss[:5].mean() - 0.2, loss      # the instance episodes are learned
    assert clf.meta_n_way_ == 8
    held = y >= 5
    clf.fit(X[held][:40], y[held][:40])
    assert clf.score(X[held][40:200], y[held][40:200]) > 0.6
