"""Convexity, simplicity (paper eqs. 2-3) and Simpson's biplane volumes."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull
from skimage.draw import disk, ellipse, polygon
from skimage.measure import perimeter
from skimage.morphology import convex_hull_image

from keras_runet.evaluation import (
    biplane_volume_from_disks,
    convexity,
    ejection_fraction,
    lv_disks,
    perimeter4,
    simplicity,
    simpson_biplane_volume,
)


def _convex_polygon(rng, shape=(300, 260)):
    pts = rng.uniform([20, 20], [shape[0] - 20, shape[1] - 20], size=(12, 2))
    hull = pts[ConvexHull(pts).vertices]
    m = np.zeros(shape, bool)
    rr, cc = polygon(hull[:, 0], hull[:, 1], shape)
    m[rr, cc] = True
    return m


def test_convexity_of_convex_polygons_is_one(rng):
    for _ in range(10):
        assert convexity(_convex_polygon(rng)) == pytest.approx(1.0, abs=1e-12)
    m = np.zeros((50, 50), bool)
    m[10:40, 5:45] = True
    assert convexity(m) == 1.0


def test_convexity_of_non_convex_shapes():
    m = np.zeros((100, 100), bool)
    m[10:90, 10:30] = True
    m[70:90, 10:90] = True  # an L: 2800 pixels in a hull of ~4600
    cx = convexity(m)
    assert 0.58 < cx < 0.64
    ring = np.zeros((101, 101), bool)
    rr, cc = disk((50, 50), 40)
    ring[rr, cc] = True
    rr, cc = disk((50, 50), 30)
    ring[rr, cc] = False
    assert convexity(ring) == pytest.approx(1 - 30**2 / 40**2, abs=0.03)


def test_convexity_matches_skimage_hull_of_pixel_centres(rng):
    for i in range(40):
        shape = (int(rng.integers(10, 60)), int(rng.integers(10, 60)))
        m = ndi.binary_opening(rng.random(shape) < 0.7) if i % 2 else rng.random(shape) < 0.2
        if m.sum() < 3 or np.linalg.matrix_rank(np.argwhere(m) - np.argwhere(m)[0]) < 2:
            continue
        expected = m.sum() / convex_hull_image(m, offset_coordinates=False).sum()
        assert convexity(m) == pytest.approx(expected, abs=1e-12)


def test_perimeter4_is_skimages_neighbourhood_4_estimator(rng):
    for i in range(30):
        shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
        m = ndi.binary_opening(rng.random(shape) < 0.7) if i % 2 else rng.random(shape) < 0.3
        m[0, :] |= i % 3 == 0  # touching the border
        assert perimeter4(m) == pytest.approx(perimeter(m, neighborhood=4), abs=1e-9)


def _disk(r):
    m = np.zeros((2 * r + 9, 2 * r + 9), bool)
    rr, cc = disk((r + 4, r + 4), r)
    m[rr, cc] = True
    return m


def test_simplicity_of_a_disk_approaches_one_as_it_grows():
    # The pinned estimator (skimage, 4-neighbourhood) reads a digital circle's perimeter
    # ~5 % long: Sp settles at ~0.95 instead of 1, and stays there.
    values = {r: simplicity(_disk(r)) for r in (20, 50, 100, 200)}
    for sp in values.values():
        assert 0.94 < sp <= 1.0
    assert abs(values[200] - values[100]) < 0.005
    assert abs(1 - values[200]) < 0.055


def test_simplicity_orders_shapes():
    circle = simplicity(_disk(60))
    long_ellipse = np.zeros((300, 100), bool)
    rr, cc = ellipse(150, 50, 140, 35)
    long_ellipse[rr, cc] = True
    star = np.zeros((200, 200), bool)
    angles = np.linspace(0, 2 * np.pi, 21)[:-1]
    radii = np.where(np.arange(20) % 2 == 0, 90, 35)
    rr, cc = polygon(100 + radii * np.sin(angles), 100 + radii * np.cos(angles), star.shape)
    star[rr, cc] = True
    assert circle > simplicity(long_ellipse) > simplicity(star)


def test_simplicity_is_measured_in_mm_on_anisotropic_grids():
    # A circle of radius 30 mm on 0.15 x 0.3 mm pixels is an ellipse in pixels.
    spacing = (0.15, 0.3)
    m = np.zeros((450, 230), bool)
    rr, cc = ellipse(225, 115, 30 / spacing[0], 30 / spacing[1])
    m[rr, cc] = True
    iso = simplicity(_disk(200))
    assert simplicity(m, spacing) == pytest.approx(iso, abs=0.01)
    assert simplicity(m) < iso - 0.05  # on the pixel grid it looks elongated


def test_empty_masks_give_nan():
    e = np.zeros((10, 10), bool)
    assert math.isnan(convexity(e))
    assert math.isnan(simplicity(e))
    assert perimeter4(e) == 0.0


def test_shape_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="mask must be a 2D"):
        convexity(np.zeros((3, 3, 3), bool))
    with pytest.raises(ValueError, match="boolean"):
        simplicity(np.zeros((3, 3), np.float64))
    with pytest.raises(ValueError, match="spacing"):
        simplicity(np.ones((3, 3), bool), spacing=(0.1, -1))


# ----------------------------------------------------------------- Simpson's biplane


def half_prolate_section(a, b, spacing, shape, base_row, tilt_deg=0.0):
    """Section through the long axis of a half ellipsoid (flat base at ``base_row``)."""
    sr, sc = spacing
    rows = (np.arange(shape[0])[:, None] - base_row) * sr
    cols = (np.arange(shape[1])[None, :] - shape[1] / 2) * sc
    t = math.radians(tilt_deg)
    height = -(rows * math.cos(t) + cols * math.sin(t))  # along the axis, from the base
    across = -rows * math.sin(t) + cols * math.cos(t)
    return (height >= 0) & ((height / a) ** 2 + (across / b) ** 2 <= 1)


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_simpson_biplane_recovers_a_half_prolate_ellipsoid(tilt):
    a, b, c = 80.0, 24.0, 20.0  # long semi-axis, and the two short ones (mm)
    sp2, sp4 = (0.154, 0.308), (0.17, 0.29)
    m2 = half_prolate_section(a, b, sp2, (780, 550), 690, tilt)
    m4 = half_prolate_section(a, c, sp4, (700, 500), 620, -tilt)
    volume = 2.0 / 3.0 * math.pi * a * b * c / 1000.0
    assert simpson_biplane_volume(m2, m4, sp2, sp4) == pytest.approx(volume, rel=0.03)
    length, diameters = lv_disks(m2, sp2)
    assert length == pytest.approx(a, rel=0.02)
    assert diameters.shape == (20,)
    assert diameters[0] == pytest.approx(2 * b * math.sqrt(1 - (0.5 / 20) ** 2), rel=0.03)


def test_biplane_formula_and_ejection_fraction():
    d = np.full(20, 40.0)
    # A cylinder of diameter 40 mm and length 80 mm: pi * 20^2 * 80 mm^3.
    assert biplane_volume_from_disks(80, d, 70, d) == pytest.approx(math.pi * 400 * 80 / 1000)
    assert ejection_fraction(100.0, 40.0) == pytest.approx(60.0)
    assert math.isnan(ejection_fraction(0.0, 10.0))
    assert math.isnan(ejection_fraction(float("nan"), 10.0))
    assert math.isnan(biplane_volume_from_disks(float("nan"), d, 70, d))
    with pytest.raises(ValueError, match="same nonzero length"):
        biplane_volume_from_disks(80, d, 70, d[:10])


def test_volumes_of_empty_masks_are_nan():
    e = np.zeros((50, 50), bool)
    m = np.zeros((50, 50), bool)
    m[10:40, 20:30] = True
    assert math.isnan(simpson_biplane_volume(e, m, (1, 1), (1, 1)))
    length, diameters = lv_disks(e, (1, 1))
    assert math.isnan(length) and np.isnan(diameters).all()
    with pytest.raises(ValueError, match="n_disks"):
        lv_disks(m, (1, 1), n_disks=0)
