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


# ------------------------------------------------------- measurement conventions


def _l_shape(k, shape=None):
    # A 2k x 2k square without its top-right k x k quarter: area 3 k^2, hull ~3.5 k^2.
    m = np.zeros(shape or (2 * k + 10, 2 * k + 10), bool)
    m[5 : 5 + 2 * k, 5 : 5 + 2 * k] = True
    m[5 : 5 + k, 5 + k : 5 + 2 * k] = False
    return m


def test_conventions_of_a_disk_square_and_l_shape():
    from skimage.transform import resize

    from keras_runet.evaluation.shapes import GRIDS, resample_isotropic

    d = _disk(40)
    sq = np.zeros((60, 60), bool)
    sq[10:50, 10:50] = True
    ell = _l_shape(50)
    big = np.zeros((512, 512), bool)  # sampled at every other pixel on the 256 grid
    big[disk((255.5, 255.5), 200)] = True
    spacing = (0.15, 0.3)
    for grid in GRIDS:
        # Digitised convex shapes: Cx = 1 on every grid with the pixel-centre hull (a
        # subsampled digital disk is a digital disk; an upsampled one is a staircase).
        assert convexity(d if grid != "model" else big, spacing, grid=grid) == 1.0
        assert convexity(sq, spacing, grid=grid) == pytest.approx(1.0, abs=1e-12)
        # The L: area 3 k^2 over a hull of ~3.5 k^2 (6/7), up to the digitisation.
        assert convexity(ell, spacing, grid=grid) == pytest.approx(6 / 7, abs=0.02)
    assert 0.98 < convexity(d, grid="model") < 1.0
    # skimage's hull (pixel edge midpoints) takes in some pixel centres just outside a
    # digitised disk or L, none outside a rectangle: compared with skimage itself.
    for m in (d, sq, ell):
        expected = m.sum() / convex_hull_image(m).sum()
        assert convexity(m, hull="skimage") == pytest.approx(expected, abs=1e-12)
    assert convexity(sq, hull="skimage") == 1.0
    assert 0.97 < convexity(d, hull="skimage") < 1.0
    # The grids, against independent resamplings of the whole mask.
    model = resize(ell.astype(np.uint8), (256, 256), order=0, mode="edge", anti_aliasing=False)
    assert convexity(ell, grid="model") == convexity(model > 0)
    assert simplicity(ell, grid="model") == simplicity(model > 0)
    iso = resample_isotropic(ell, spacing)
    assert convexity(ell, spacing, grid="isotropic") == convexity(iso)
    assert simplicity(ell, spacing, grid="native") == simplicity(ell)


def test_default_convention_keeps_todays_numbers():
    from keras_runet.evaluation import evaluate_pair
    from keras_runet.evaluation.shapes import DEFAULT_CONVENTION, shape_metrics

    ref = np.zeros((120, 90), np.uint8)
    rr, cc = ellipse(60, 45, 50, 30)
    ref[rr, cc] = 2
    rr, cc = ellipse(62, 45, 40, 20)
    ref[rr, cc] = 1
    ref[20:40, 40:60] = 0  # a notch: not convex
    spacing = (0.15, 0.3)
    row = evaluate_pair(ref, ref, spacing, instant="ED")
    for name, labels in (("LVendo", (1,)), ("LVepi", (1, 2))):
        m = np.isin(ref, labels)
        cx, sp = shape_metrics(m, spacing)
        assert (cx, sp) == (row[f"{name}_ref_convexity"], row[f"{name}_ref_simplicity"])
        assert cx == convexity(m) and sp == simplicity(m, spacing)
    assert DEFAULT_CONVENTION.name == "default"
    assert (DEFAULT_CONVENTION.simplicity_grid, DEFAULT_CONVENTION.convexity_grid) == (
        "isotropic",
        "native",
    )


def test_bad_convention_names_are_one_clear_error():
    from keras_runet.evaluation.shapes import ShapeConvention, shape_convention

    m = _disk(5)
    with pytest.raises(ValueError, match=r"unknown shape convention 'paper'; choose from default"):
        shape_convention("paper")
    with pytest.raises(ValueError, match="grid must be one of native, model, isotropic; got 'mm'"):
        convexity(m, grid="mm")
    with pytest.raises(ValueError, match="hull must be one of pixel_centres, skimage"):
        convexity(m, hull="centres")
    with pytest.raises(ValueError, match="simplicity_grid must be one of"):
        ShapeConvention(simplicity_grid="fine")
    with pytest.raises(ValueError, match="model_size"):
        ShapeConvention(model_size=(256,))
    with pytest.raises(ValueError, match="unknown ShapeConvention fields"):
        ShapeConvention.from_dict({"grid": "native"})
    c = shape_convention("vital", hull="pixel_centres")
    assert (c.simplicity_grid, c.hull, c.name) == ("model", "pixel_centres", "model")
    assert ShapeConvention.from_dict(c.to_dict()) == c
