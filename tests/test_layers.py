"""The ROI-attention layers against independent numpy computations."""

import keras
import numpy as np
import pytest

from keras_runet.layers import (
    BoxDilation,
    DiskDilation,
    ForegroundProbability,
    ParametricSigmoid,
    RoiAttention,
)


def box_mean_reference(mask, dil):
    """Mean over the dil x dil window with TF's 'same' convention, by explicit summation."""
    before, after = (dil - 1) // 2, dil // 2
    padded = np.pad(mask.astype("float64"), ((before, after), (before, after)))
    out = np.zeros(mask.shape, "float64")
    for dr in range(dil):
        for dc in range(dil):
            out += padded[dr : dr + mask.shape[0], dc : dc + mask.shape[1]]
    return out / dil**2


def as_batch(a):
    return keras.ops.convert_to_tensor(a[None, ..., None].astype("float32"))


@pytest.mark.parametrize("slope,shift", [(100.0, 0.5), (100.0, 0.01), (10.0, 0.7), (1.0, 0.0)])
def test_parametric_sigmoid_matches_equation_1(slope, shift):
    x = np.linspace(-1, 2, 301).astype("float32")
    got = keras.ops.convert_to_numpy(ParametricSigmoid(slope, shift)(x))
    want = 1.0 / (1.0 + np.exp(-slope * (x.astype("float64") - shift)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    at_shift = keras.ops.convert_to_numpy(ParametricSigmoid(slope, shift)(np.float32([shift])))
    assert at_shift[0] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("dil", [1, 3, 4, 11, 30])
def test_box_dilation_turns_one_pixel_into_a_square(dil):
    size = 64
    image = np.zeros((size, size), "float32")
    image[20, 33] = 1.0
    out = keras.ops.convert_to_numpy(BoxDilation(dil)(as_batch(image)))[0, ..., 0]
    # 'same' convention: the pixel spreads dil // 2 before and (dil - 1) // 2 after.
    expected = np.zeros_like(image)
    r0, c0 = 20 - dil // 2, 33 - dil // 2
    expected[r0 : r0 + dil, c0 : c0 + dil] = 1.0 / dil**2
    np.testing.assert_allclose(out, expected, atol=1e-7)
    assert (out > 1e-9).sum() == dil * dil


@pytest.mark.parametrize("dil", [2, 5, 11, 30])
def test_box_dilation_is_the_box_mean(dil, rng):
    mask = (rng.random((48, 40)) < 0.1).astype("float32")
    out = keras.ops.convert_to_numpy(BoxDilation(dil)(as_batch(mask)))[0, ..., 0]
    np.testing.assert_allclose(out, box_mean_reference(mask, dil), atol=1e-6)


def test_box_dilation_channels_are_independent(rng):
    x = rng.random((2, 32, 24, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(BoxDilation(5)(x))
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(
                out[b, ..., c], box_mean_reference(x[b, ..., c], 5), atol=1e-6
            )


@pytest.mark.parametrize("dil", [5, 11, 30])
def test_dilation_then_sigmoid_dilates_a_mask(dil):
    """Box mean + sigmoid(shift 0.01) = binary dilation by the box, up to its far corners."""
    from scipy import ndimage

    size = 160
    rows, cols = np.mgrid[0:size, 0:size]
    mask = ((rows - 80) ** 2 / 30**2 + (cols - 70) ** 2 / 20**2) <= 1
    soft = BoxDilation(dil)(as_batch(mask))
    out = keras.ops.convert_to_numpy(ParametricSigmoid(100.0, 0.01)(soft))[0, ..., 0]
    binary = out > 0.5
    # Exactly "more than 1 % of the window is mask", from an independent computation.
    reference = box_mean_reference(mask, dil)
    clear = np.abs(reference - 0.01) > 1e-4  # a window exactly at 1 % is a coin toss
    np.testing.assert_array_equal(binary[clear], (reference > 0.01)[clear])
    # And that is a dilation: contains the mask, inside the dilation by the full box,
    # containing the dilation by a box a few pixels smaller (the corners fall below 1 %).
    square = np.ones((dil, dil), bool)
    full = ndimage.binary_dilation(mask, square)  # same centring as TF for even boxes
    assert binary[mask].all()
    assert not (binary & ~full).any()
    margin = int(np.ceil(0.1 * dil))
    if dil - 2 * margin >= 1:
        inner = ndimage.binary_dilation(mask, np.ones((dil - 2 * margin,) * 2, bool))
        assert binary[inner].all()
    assert binary.sum() > mask.sum()


def test_foreground_probability_sums_classes(rng):
    p = rng.random((2, 8, 8, 4)).astype("float32")
    p /= p.sum(-1, keepdims=True)
    got = keras.ops.convert_to_numpy(ForegroundProbability()(p))
    np.testing.assert_allclose(got[..., 0], 1.0 - p[..., 0], atol=1e-6)
    got = keras.ops.convert_to_numpy(ForegroundProbability([1, 3])(p))
    np.testing.assert_allclose(got[..., 0], p[..., 1] + p[..., 3], atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        ForegroundProbability([5])(p)


def test_roi_attention_masks_the_image_outside_the_dilated_roi():
    size = 64
    probs = np.zeros((1, size, size, 4), "float32")
    probs[..., 0] = 1.0
    probs[0, 20:30, 25:35, 0] = 0.0
    probs[0, 20:30, 25:35, 1] = 1.0
    image = np.full((1, size, size, 1), 0.7, "float32")
    masked, mask = RoiAttention(dil=5, shift=0.5)([image, probs], return_mask=True)
    masked, mask = keras.ops.convert_to_numpy(masked), keras.ops.convert_to_numpy(mask)
    inside = np.zeros((size, size), bool)
    inside[18:32, 23:37] = True  # the 10 x 10 ROI dilated by 2 on each side
    edge = inside.copy()
    edge[19:31, 24:36] = False
    # Inside the ROI (but its last ring, where the box sees few ROI pixels) the mask is 1.
    np.testing.assert_allclose(mask[0, ..., 0][inside & ~edge], 1.0, atol=1e-4)
    assert (mask[0, ..., 0][edge] > 0.95).all()
    # Outside, the box mean is 0 and eq. (1) with slope 100, shift 0.01 gives sig(-1): the
    # paper's attention attenuates the background to 27 %, it does not zero it.
    np.testing.assert_allclose(mask[0, ..., 0][~inside], 1.0 / (1.0 + np.e), atol=1e-5)
    np.testing.assert_allclose(masked, image * mask, atol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        ParametricSigmoid(slope=50.0, shift=0.3),
        BoxDilation(dil=7),
        DiskDilation(dil=6),
        ForegroundProbability([1, 2]),
        RoiAttention(dil=13, shift=0.7, slope=80.0, foreground_classes=[1, 2]),
        RoiAttention(dil=9, kernel="disk"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip_and_no_weights(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # Registered: serialise by name and back.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    if isinstance(layer, RoiAttention):
        layer([np.zeros((1, 32, 32, 1), "float32"), np.zeros((1, 32, 32, 4), "float32")])
    elif isinstance(layer, ForegroundProbability):
        layer(np.zeros((1, 8, 8, 4), "float32"))
    else:
        layer(np.zeros((1, 8, 8, 1), "float32"))
    assert layer.weights == []


def test_box_dilation_rejects_bad_dil():
    with pytest.raises(ValueError, match="dil"):
        BoxDilation(0)
    with pytest.raises(ValueError, match="dil"):
        BoxDilation(2.5)


def test_layers_compute_in_float32_under_mixed_precision():
    layer = BoxDilation(30, dtype="mixed_bfloat16")
    assert layer.compute_dtype == "float32"
    x = np.zeros((1, 64, 64, 1), "float32")
    x[0, 32, 32, 0] = 1
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.dtype == np.float32
    assert (out > 0).sum() == 900


# --- the attention's open choices (issue 15): the dilation kernel, the ROI classes ----------


@pytest.mark.parametrize("dil", [1, 2, 3, 5, 8, 11, 30])
def test_disk_kernel_is_the_disk_of_diameter_dil(dil):
    from skimage.draw import disk

    from keras_runet.layers import disk_kernel

    centre = (dil - 1) / 2
    reference = np.zeros((dil, dil), bool)
    reference[disk((centre, centre), dil / 2, shape=(dil, dil))] = True
    np.testing.assert_array_equal(disk_kernel(dil), reference)
    assert disk_kernel(dil).any(axis=0).all() and disk_kernel(dil).any(axis=1).all()  # spans dil
    if dil <= 3:
        assert disk_kernel(dil).all()  # a disk this small is its box


@pytest.mark.parametrize("dil", [1, 4, 11, 30])
def test_disk_dilation_turns_one_pixel_into_a_disk(dil):
    from keras_runet.layers import disk_kernel

    image = np.zeros((64, 64), "float32")
    image[30, 33] = 1.0
    out = keras.ops.convert_to_numpy(DiskDilation(dil)(as_batch(image)))[0, ..., 0]
    footprint = disk_kernel(dil)
    expected = np.zeros_like(image)
    r0, c0 = 30 - dil // 2, 33 - dil // 2  # the 'same' convention of BoxDilation
    expected[r0 : r0 + dil, c0 : c0 + dil] = footprint / footprint.sum()
    np.testing.assert_allclose(out, expected, atol=1e-7)
    assert (out > 1e-9).sum() == footprint.sum()
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    per_channel = keras.ops.convert_to_numpy(DiskDilation(dil)(x))
    alone = keras.ops.convert_to_numpy(DiskDilation(dil)(x[..., 1:2]))
    np.testing.assert_allclose(per_channel[..., 1:2], alone, atol=1e-6)


def _half_plane_reach(kernel: str, dil: int) -> float:
    """How far RU-Net's mask (>= 0.5) reaches beyond a straight ROI edge, in pixels."""
    from scipy import ndimage

    size = 96
    roi = np.zeros((size, size), bool)
    roi[:, :40] = True
    probs = np.zeros((1, size, size, 4), "float32")
    probs[0, ..., 0] = ~roi
    probs[0, ..., 1] = roi
    _, mask = RoiAttention(dil=dil, kernel=kernel)(
        [np.ones((1, size, size, 1), "float32"), probs], return_mask=True
    )
    kept = keras.ops.convert_to_numpy(mask)[0, ..., 0] >= 0.5
    return float(ndimage.distance_transform_edt(~roi)[kept].max())


@pytest.mark.parametrize("dil", [5, 11, 30])
def test_roi_margin_along_the_axes_is_half_the_kernel_for_both_kernels(dil):
    assert _half_plane_reach("box", dil) == (dil - 1) // 2
    assert _half_plane_reach("disk", dil) == (dil - 1) // 2


def test_roi_of_lv_and_myocardium_excludes_the_atrium():
    from keras_runet.config import ROI_CLASSES

    size = 64
    probs = np.zeros((1, size, size, 4), "float32")
    probs[..., 0] = 1.0
    probs[0, 5:15, 20:30] = [0, 0, 0, 1]  # atrium
    probs[0, 40:50, 20:30] = [0, 1, 0, 0]  # LV cavity
    image = np.ones((1, size, size, 1), "float32")
    background = 1.0 / (1.0 + np.e)  # sig(-1): what the mask is outside the ROI
    for name, atrium_kept in (("all", True), ("lvepi", False)):
        layer = RoiAttention(dil=3, foreground_classes=ROI_CLASSES[name])
        _, mask = layer([image, probs], return_mask=True)
        mask = keras.ops.convert_to_numpy(mask)[0, ..., 0]
        assert mask[45, 25] == pytest.approx(1.0, abs=1e-4)
        assert mask[10, 25] == pytest.approx(1.0 if atrium_kept else background, abs=1e-4)
    assert ROI_CLASSES["lvepi"] == (1, 2) and ROI_CLASSES["all"] == (1, 2, 3)


def test_roi_attention_configs_saved_before_the_kernel_option_still_load():
    layer = RoiAttention(dil=13, shift=0.7, kernel="disk")
    assert isinstance(layer.dilate, DiskDilation) and layer.get_config()["kernel"] == "disk"
    assert RoiAttention.from_config(layer.get_config()).kernel == "disk"
    old = RoiAttention(dil=13, shift=0.7).get_config()
    del old["kernel"]  # what get_config wrote before this option existed
    restored = RoiAttention.from_config(old)
    assert restored.kernel == "box" and isinstance(restored.dilate, BoxDilation)
    assert (restored.dil, restored.shift, restored.slope) == (13, 0.7, 100.0)
    serialized = keras.saving.serialize_keras_object(RoiAttention(dil=5))
    del serialized["config"]["kernel"]
    assert keras.saving.deserialize_keras_object(serialized).kernel == "box"
    with pytest.raises(ValueError, match="kernel must be box or disk, got 'ring'"):
        RoiAttention(kernel="ring")
