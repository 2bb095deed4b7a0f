"""Optional distortions of instance episodes: shear, anisotropic zoom, elastic fields, stroke thickness."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.datasets import load_digits

from sklearn_snn.meta import InstanceTaskSampler
from sklearn_snn.tasks import random_affine, random_thickness


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[y < 5]


def test_zero_size_distortions_return_the_images():
    imgs = np.random.RandomState(0).rand(6, 8, 8)
    out = random_affine(imgs, 0, 0, 0, random_state=1, shear=0, stretch=0, elastic=0)
    np.testing.assert_array_equal(out, imgs)
    np.testing.assert_array_equal(random_thickness(imgs, 0.0, random_state=1), imgs)
    # the defaults of the new options are off: the same draws and the same images as without them
    np.testing.assert_array_equal(random_affine(imgs, random_state=5),
                                  random_affine(imgs, random_state=5, shear=0.0, stretch=0.0, elastic=0.0))


def test_shear_and_stretch_match_scipy_reference():
    imgs = np.random.RandomState(0).rand(5, 8, 8)
    out = random_affine(imgs, rotation=20, scale=0.1, shift=1.0, random_state=3, shear=15, stretch=0.2)
    assert out.shape == (5, 8, 8)
    r = np.random.RandomState(3)    # the draws in their order: rotation, zoom, shift, shear, stretch
    a, z, t = np.deg2rad(r.uniform(-20, 20, 5)), 1 + r.uniform(-0.1, 0.1, 5), r.uniform(-1, 1, (5, 2))
    k, s = np.tan(np.deg2rad(r.uniform(-15, 15, 5))), r.uniform(-0.2, 0.2, 5)
    c = np.array([3.5, 3.5])
    for i in range(5):
        rot = np.array([[np.cos(a[i]), -np.sin(a[i])], [np.sin(a[i]), np.cos(a[i])]])
        m = np.diag([1 / (z[i] * (1 + s[i])), 1 / (z[i] * (1 - s[i]))]) @ np.array([[1, 0], [k[i], 1]]) @ rot
        ref = ndimage.affine_transform(imgs[i], m, offset=c - m @ c + t[i], order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(out[i], ref, atol=1e-9)
    # a pure shear moves pixels along the rows only: an image constant along the rows stays
    # where its sources lie inside (sources off the image are zero)
    stripes = np.repeat(np.arange(1.0, 9.0)[None, :, None], 8, axis=2).repeat(3, axis=0)
    sheared = random_affine(stripes, 0, 0, 0, random_state=0, shear=30)
    np.testing.assert_allclose(sheared[:, :, 3:5], stripes[:, :, 3:5], atol=1e-12)
    assert not np.allclose(sheared, stripes)


def test_elastic_field_is_bounded_smooth_and_seeded():
    h = w = 16
    rows, cols = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    n = 4
    # bilinear sampling of a linear ramp is exact, so the warped ramps read the field off
    ry = random_affine(np.repeat(rows[None], n, 0), 0, 0, 0, random_state=7, elastic=1.0, elastic_sigma=2.0)
    rx = random_affine(np.repeat(cols[None], n, 0), 0, 0, 0, random_state=7, elastic=1.0, elastic_sigma=2.0)
    inner = (slice(None), slice(1, h - 1), slice(1, w - 1))
    dy, dx = (ry - rows)[inner], (rx - cols)[inner]
    norm = np.sqrt(dy ** 2 + dx ** 2)
    assert norm.max() <= 1.0 + 1e-9                      # bounded by ``elastic`` pixels
    assert (norm.reshape(n, -1).max(1) > 0.05).all()      # and there is a field in every image
    assert np.abs(np.diff(dy, axis=1)).max() < 0.5        # smooth: neighbours move alike
    again = random_affine(np.repeat(rows[None], n, 0), 0, 0, 0, random_state=7, elastic=1.0, elastic_sigma=2.0)
    np.testing.assert_array_equal(again, ry)
    other = random_affine(np.repeat(rows[None], n, 0), 0, 0, 0, random_state=8, elastic=1.0, elastic_sigma=2.0)
    assert not np.allclose(other, ry)


def test_thickness_is_a_blend_with_dilation_or_erosion():
    imgs = np.random.RandomState(1).rand(6, 7, 9)
    out = random_thickness(imgs, 1.0, random_state=2)
    u = np.random.RandomState(2).uniform(-1, 1, 6)
    pad = np.pad(imgs, ((0, 0), (1, 1), (1, 1)), mode="edge")
    cross = np.stack([pad[:, 1:-1, 1:-1], pad[:, :-2, 1:-1], pad[:, 2:, 1:-1], pad[:, 1:-1, :-2], pad[:, 1:-1, 2:]])
    target = np.where(u[:, None, None] > 0, cross.max(0), cross.min(0))
    ref = imgs + np.abs(u)[:, None, None] * (target - imgs)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert (u > 0).any() and (u < 0).any()


def test_sampler_with_distortions_is_seeded_and_shaped(digits):
    kw = {"n_way": 6, "k_shot": 2, "n_query": 3, "shear": 10, "stretch": 0.1, "elastic": 0.8, "thickness": 0.4}
    s = InstanceTaskSampler(digits, random_state=0, **kw)
    a, b = s.episodes(2, random_state=4), s.episodes(2, random_state=4)
    assert a[0].X_support.shape == (12, 64) and a[0].X_query.shape == (18, 64)
    assert all(np.array_equal(u.X_query, v.X_query) for u, v in zip(a, b))
    c = s.episodes(2, random_state=5)
    assert not np.array_equal(a[0].X_support, c[0].X_support)
    # the optional distortions change the samples of the same draws of images
    plain = InstanceTaskSampler(digits, n_way=6, k_shot=2, n_query=3).sample(4)
    assert not np.allclose(plain.X_support, s.sample(4).X_support)
    # all distortions off: every sample is its class's image
    off = InstanceTaskSampler(digits, n_way=6, k_shot=2, n_query=3, rotation=0, scale=0, shift=0, shear=0,
                              stretch=0, elastic=0, thickness=0).sample(0)
    np.testing.assert_array_equal(off.X_support, digits[off.classes][off.y_support])


@pytest.mark.parametrize("kw, match", [
    ({"shear": 90}, "shear must be a finite number >= 0 and below 90"),
    ({"shear": -5}, "shear must be"),
    ({"stretch": 1.0}, "stretch must be a finite number >= 0 and below 1"),
    ({"elastic": -0.5}, "elastic must be a finite number >= 0"),
    ({"elastic": np.nan}, "elastic must be"),
    ({"elastic_sigma": 0}, "elastic_sigma must be a finite number > 0"),
    ({"scale": 1.0}, "scale must be a finite number >= 0 and below 1"),
])
def test_bad_distortion_parameters_raise(kw, match, digits):
    with pytest.raises(ValueError, match=match):
        random_affine(np.zeros((2, 8, 8)), random_state=0, **kw)
    with pytest.raises(ValueError, match=match):
        InstanceTaskSampler(digits, **kw)


def test_bad_thickness_raises(digits):
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match="thickness must be a finite number >= 0 and at most 1"):
            random_thickness(np.zeros((2, 8, 8)), bad)
        with pytest.raises(ValueError, match="thickness must be"):
            InstanceTaskSampler(digits, thickness=bad)
    with pytest.raises(ValueError, match="3D"):
        random_thickness(np.zeros((8, 8)), 0.3)
