"""Contour distances and Dice: cross-checked against medpy (a test-only dependency)."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import ellipse, polygon

from keras_runet.evaluation import (
    contour,
    contour_distances,
    dice,
    distance_metrics,
    hausdorff_distance,
    mean_absolute_distance,
)

binary = pytest.importorskip("medpy.metric.binary")

SPACINGS = [(0.154, 0.308), (0.3, 0.17), (1.0, 1.0), (0.5, 2.3)]


def _random_masks(rng, n):
    """Blobs, speckle, thin lines, masks touching the image border."""
    out = []
    for i in range(n):
        shape = (int(rng.integers(8, 70)), int(rng.integers(8, 70)))
        kind = i % 4
        if kind == 0:
            m = ndi.binary_opening(rng.random(shape) < 0.65)
        elif kind == 1:
            m = rng.random(shape) < 0.15
        elif kind == 2:
            m = ndi.gaussian_filter(rng.random(shape), 2.0) > 0.5
        else:
            m = np.zeros(shape, bool)
            m[:, : shape[1] // 2] = True  # touches three image borders
            m[rng.integers(0, shape[0]), :] = True
        out.append(m)
    return out


def _hand_made():
    shape = (120, 90)
    a = np.zeros(shape, bool)
    rr, cc = ellipse(60, 45, 40, 25, shape)
    a[rr, cc] = True
    b = np.zeros(shape, bool)
    rr, cc = polygon([10, 110, 100, 20], [20, 30, 80, 70], shape)
    b[rr, cc] = True
    c = np.zeros(shape, bool)
    c[0:30, 0:20] = True  # in the corner of the image
    d = np.zeros(shape, bool)
    d[50, 40] = True  # one pixel
    e = a.copy()
    e[55:65, 40:50] = False  # a hole: an inner contour
    f = np.zeros(shape, bool)
    f[5:15, 5:15] = True
    f[90:110, 60:85] = True  # two components
    return [a, b, c, d, e, f]


def _medpy_pair(p, g, spacing):
    hd = binary.hd(p, g, voxelspacing=spacing)
    mad = 0.5 * (binary.asd(p, g, voxelspacing=spacing) + binary.asd(g, p, voxelspacing=spacing))
    return hd, mad


def test_hd_and_mad_equal_medpy_on_random_masks(rng):
    masks = _random_masks(rng, 80)
    checked = 0
    for i in range(0, len(masks) - 1, 2):
        p = masks[i]
        g = masks[i + 1]
        shape = (min(p.shape[0], g.shape[0]), min(p.shape[1], g.shape[1]))
        p, g = p[: shape[0], : shape[1]], g[: shape[0], : shape[1]]
        if not p.any() or not g.any():
            continue
        spacing = SPACINGS[i % len(SPACINGS)]
        hd, mad = _medpy_pair(p, g, spacing)
        assert hausdorff_distance(p, g, spacing) == pytest.approx(hd, abs=1e-9)
        assert mean_absolute_distance(p, g, spacing) == pytest.approx(mad, abs=1e-9)
        checked += 1
    assert checked >= 30


def test_hd_and_mad_equal_medpy_on_hand_made_masks():
    masks = _hand_made()
    for i, p in enumerate(masks):
        for j, g in enumerate(masks):
            spacing = SPACINGS[(i + j) % len(SPACINGS)]
            hd, mad = _medpy_pair(p, g, spacing)
            assert hausdorff_distance(p, g, spacing) == pytest.approx(hd, abs=1e-9), (i, j)
            assert mean_absolute_distance(p, g, spacing) == pytest.approx(mad, abs=1e-9), (i, j)


def test_contour_is_medpys_border():
    for m in _hand_made():
        expected = m ^ ndi.binary_erosion(m, structure=ndi.generate_binary_structure(2, 1))
        np.testing.assert_array_equal(contour(m), expected)


def test_pooled_mad_is_the_mean_over_both_contours():
    a, b = _hand_made()[:2]
    spacing = (0.154, 0.308)
    # Independent computation on the full image.
    ca, cb = contour(a), contour(b)
    d_ab = ndi.distance_transform_edt(~cb, sampling=spacing)[ca]
    d_ba = ndi.distance_transform_edt(~ca, sampling=spacing)[cb]
    pooled = np.concatenate([d_ab, d_ba]).mean()
    assert mean_absolute_distance(a, b, spacing, pooled=True) == pytest.approx(pooled, abs=1e-12)
    assert mean_absolute_distance(a, b, spacing) == pytest.approx(
        0.5 * (d_ab.mean() + d_ba.mean()), abs=1e-12
    )
    assert pooled != pytest.approx(0.5 * (d_ab.mean() + d_ba.mean()), abs=1e-6)
    dists = contour_distances(a, b, spacing)
    np.testing.assert_allclose(np.sort(dists[0]), np.sort(d_ab), atol=1e-12)
    np.testing.assert_allclose(np.sort(dists[1]), np.sort(d_ba), atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_column_shift_of_k_pixels_gives_hd_k_times_column_spacing(k):
    spacing = (0.154, 0.308)
    ref = np.zeros((200, 120), bool)
    ref[40:160, 30:80] = True
    pred = np.roll(ref, k, axis=1)
    assert hausdorff_distance(pred, ref, spacing) == pytest.approx(k * spacing[1], abs=1e-12)
    assert hausdorff_distance(ref, pred, spacing) == pytest.approx(k * spacing[1], abs=1e-12)


def test_transposing_masks_and_spacing_gives_the_same_numbers(rng):
    masks = _hand_made() + _random_masks(rng, 6)
    spacing = (0.154, 0.308)
    for p, g in zip(masks[:-1], masks[1:], strict=True):
        shape = (min(p.shape[0], g.shape[0]), min(p.shape[1], g.shape[1]))
        p, g = p[: shape[0], : shape[1]], g[: shape[0], : shape[1]]
        a = distance_metrics(p, g, spacing)
        b = distance_metrics(p.T, g.T, spacing[::-1])
        for key in a:
            if math.isnan(a[key]):
                assert math.isnan(b[key])
            else:
                assert b[key] == pytest.approx(a[key], abs=1e-12)
        assert dice(p.T, g.T) == pytest.approx(dice(p, g)) or math.isnan(dice(p, g))


def test_anisotropic_spacing_matters():
    ref = np.zeros((100, 100), bool)
    ref[30:70, 30:70] = True
    down = np.roll(ref, 2, axis=0)
    right = np.roll(ref, 2, axis=1)
    spacing = (0.15, 0.3)
    assert hausdorff_distance(down, ref, spacing) == pytest.approx(0.3)
    assert hausdorff_distance(right, ref, spacing) == pytest.approx(0.6)


def test_dice_values():
    a = np.zeros((10, 10), bool)
    a[:, :5] = True
    b = np.zeros((10, 10), bool)
    b[:, 2:7] = True
    assert dice(a, b) == pytest.approx(2 * 30 / 100)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert math.isnan(dice(np.zeros_like(a), np.zeros_like(a)))


def test_empty_masks_give_nan_not_exceptions():
    full = np.zeros((20, 20), bool)
    full[5:15, 5:15] = True
    empty = np.zeros((20, 20), bool)
    for p, g in ((full, empty), (empty, full), (empty, empty)):
        assert math.isnan(hausdorff_distance(p, g, (1, 1)))
        assert math.isnan(mean_absolute_distance(p, g, (1, 1)))
        assert math.isnan(mean_absolute_distance(p, g, (1, 1), pooled=True))
        assert contour_distances(p, g, (1, 1)) is None
        assert all(math.isnan(v) for v in distance_metrics(p, g, (1, 1)).values())


def test_integer_01_masks_are_accepted():
    a = np.zeros((20, 20), np.uint8)
    a[5:15, 5:15] = 1
    assert hausdorff_distance(a, a.astype(bool), (1, 1)) == 0.0


@pytest.mark.parametrize(
    ("pred", "ref", "spacing", "match"),
    [
        (np.zeros((5, 5), bool), np.zeros((5, 6), bool), (1, 1), "same shape"),
        (np.zeros((5, 5, 1), bool), np.zeros((5, 5, 1), bool), (1, 1), "pred must be a 2D"),
        (np.zeros((5, 5), np.float32), np.zeros((5, 5), bool), (1, 1), "pred must be a boolean"),
        (np.full((5, 5), 2, np.uint8), np.zeros((5, 5), bool), (1, 1), "pred must be a binary"),
        (np.zeros((5, 5), bool), np.zeros((5, 5), bool), (1, 0), "spacing"),
        (np.zeros((5, 5), bool), np.zeros((5, 5), bool), (1,), "spacing"),
        (np.zeros((5, 5), bool), np.zeros((5, 5), bool), (1, float("nan")), "spacing"),
        (np.zeros((5, 5), bool), np.zeros((5, 5), bool), "ab", "spacing"),
    ],
)
def test_wrong_inputs_raise_value_error_naming_them(pred, ref, spacing, match):
    with pytest.raises(ValueError, match=match):
        hausdorff_distance(pred, ref, spacing)


def test_kdtree_method_gives_the_edt_numbers(rng):
    masks = _hand_made() + _random_masks(rng, 30)
    checked = 0
    for i, (p, g) in enumerate(zip(masks[:-1], masks[1:], strict=True)):
        shape = (min(p.shape[0], g.shape[0]), min(p.shape[1], g.shape[1]))
        p, g = p[: shape[0], : shape[1]], g[: shape[0], : shape[1]]
        spacing = SPACINGS[i % len(SPACINGS)]
        a = distance_metrics(p, g, spacing)
        b = distance_metrics(p, g, spacing, method="kdtree")
        for key in a:
            if math.isnan(a[key]):
                assert math.isnan(b[key])
            else:
                assert b[key] == pytest.approx(a[key], abs=1e-12), key
                checked += 1
        if p.any() and g.any():
            hd, mad = _medpy_pair(p, g, spacing)
            assert b["hd_mm"] == pytest.approx(hd, abs=1e-9)
            assert b["mad_mm"] == pytest.approx(mad, abs=1e-9)
    assert checked > 50
    with pytest.raises(ValueError, match="method"):
        distance_metrics(masks[0], masks[0], (1, 1), method="fast")
