"""A synthetic CAMUS: apical 2CH/4CH echo-like images drawn from known shapes, on disk in the
exact layout of either CAMUS release.

Nobody can redistribute CAMUS, so this module writes a stand-in with the same files, sizes,
spacings and ``Info_*.cfg`` keys. It is the data of the demo, the tests and the benchmarks.

What is drawn, per patient and view (all geometry in mm, then sampled on the pixel grid):

- a sector-shaped field of view with its apex (the probe) at the top centre; outside it the
  image is 0;
- the left ventricle as a truncated ellipse (apex at the top, mitral plane at the bottom),
  its myocardium as a thicker ellipse around it, and the left atrium below the mitral plane;
  in the 4CH view also a right ventricle and right atrium (not labelled, as in CAMUS);
- tissue reflectivities (dark blood, bright myocardium and pericardium), Rayleigh speckle,
  depth attenuation and log compression;
- the three image-quality levels: ``Good``, ``Medium`` and ``Poor`` (lower contrast, hazy
  cavities, echo dropouts in angular bands).

The ground-truth masks (0 background, 1 LV cavity, 2 myocardium, 3 left atrium) are the shapes
that drew the image. Between ED and ES the cavity shortens and narrows, the myocardium thickens
and the atrium grows; ``Info_*.cfg`` holds ED/ES/NbFrame of the written sequences, the image
quality, and EF (and, original release, EDV/ESV) computed from the drawn shapes by Simpson's
biplane method of disks (20 disks, the 2CH and 4CH cavities).

Every patient is drawn from its own random generator seeded by ``(seed, patient number)``: a
patient is the same whatever the number of patients written or of worker processes.

Example:
    >>> from tfds_camus import phantom
    >>> root = phantom.write_synthetic_camus("/tmp/camus", num_patients=3, scale=0.25)
    >>> # tfds.builder("camus").download_and_prepare(
    >>> #     download_config=tfds.download.DownloadConfig(manual_dir=root))

Command line: ``camus-synth OUT_DIR -n 500 --layout nifti`` (see ``camus-synth --help``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from tfds_camus import reader

logger = logging.getLogger(__name__)

QUALITIES = ("Good", "Medium", "Poor")
QUALITY_PROBABILITIES = (0.35, 0.46, 0.19)  # CAMUS: 35 / 46 / 19 % (folds README)
NUM_DISKS = 20
# The original challenge release kept patients 0451..0500 as its test set, without masks.
ORIGINAL_TESTING_FROM = 451


@dataclasses.dataclass(frozen=True)
class ViewGeometry:
    """Grid and shapes of one view; lengths in mm, angles in radians."""

    rows: int
    cols: int
    row_mm: float
    col_mm: float
    half_angle: float  # half opening angle of the sector
    apex_depth: float  # depth of the LV endocardial apex
    lv_x: float  # lateral position of the LV apex (0 = centre line)
    tilt: float  # angle of the LV long axis from the vertical
    length: float  # LV cavity long axis at ED (apex to mitral plane)
    half_width: float  # LV cavity semi-minor axis at ED
    length_factor: float  # ES / ED long axis
    width_factor: float  # ES / ED semi-minor axis
    thickness: float  # myocardium at ED
    thickening: float  # relative thickening at ES
    la_length: float  # LA vertical semi-axis at ES
    la_width: float  # LA horizontal semi-axis at ES
    la_offset: float  # lateral offset of the LA centre from the LV axis
    four_chamber: bool


@dataclasses.dataclass(frozen=True)
class PatientParams:
    """Everything random about one synthetic patient."""

    patient_id: str
    quality: str
    sex: str
    age: int
    views: dict
    half_frames: dict  # view -> frames of the ED-to-ES half sequence
    pre_frames: dict  # view -> frames before ED in the whole cycle (original release)
    post_frames: dict  # view -> frames after ES in the whole cycle
    frame_rate: float


def _patient_number(patient_id: str) -> int:
    return int(patient_id[len("patient") :])


def patient_params(
    patient_id: str,
    seed: int = 0,
    *,
    scale: float = 1.0,
    half_sequence_frames: tuple[int, int] = (15, 25),
    quality: str | None = None,
) -> PatientParams:
    """Draws the parameters of one synthetic patient (deterministic in ``(seed, patient)``).

    Args:
        patient_id: ``"patientXXXX"``.
        seed: dataset seed.
        scale: image size factor (0.5 halves rows and cols and doubles the spacing: the same
            anatomy on a coarser grid).
        half_sequence_frames: inclusive range of the number of frames from ED to ES.
        quality: force ``"Good"``, ``"Medium"`` or ``"Poor"`` instead of drawing it.
    """
    rng = np.random.default_rng([int(seed), _patient_number(patient_id)])
    drawn_quality = QUALITIES[rng.choice(3, p=QUALITY_PROBABILITIES)]
    quality = quality or drawn_quality
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
    sex = "M" if rng.random() < 0.66 else "F"
    age = int(rng.integers(20, 91))
    # Ejection fraction bands of CAMUS (<=45, 45..55, >=55 %: 49 / 32 / 19 %).
    band = rng.choice(3, p=(0.49, 0.32, 0.19))
    ef_target = (rng.uniform(0.2, 0.45), rng.uniform(0.45, 0.55), rng.uniform(0.55, 0.72))[band]
    length = rng.uniform(60.0, 74.0)
    half_width = rng.uniform(19.0, 26.0) * (1.1 if ef_target < 0.4 else 1.0)
    length_factor = rng.uniform(0.86, 0.94)
    width_factor = float(np.clip(math.sqrt((1.0 - ef_target) / length_factor), 0.45, 0.98))
    thickness = rng.uniform(8.0, 11.0)
    thickening = rng.uniform(0.25, 0.45) * (1.0 - width_factor) / 0.3
    apex_depth = rng.uniform(14.0, 22.0)
    la_length = rng.uniform(14.0, 18.0)
    la_width = rng.uniform(15.0, 20.0)
    frame_rate = float(rng.choice([25.0, 30.0, 34.0, 40.0]))
    lo, hi = half_sequence_frames
    if not 2 <= lo <= hi:
        raise ValueError(
            f"half_sequence_frames must satisfy 2 <= lo <= hi, got {half_sequence_frames}"
        )
    views, half, pre, post = {}, {}, {}, {}
    for view in reader.VIEWS:
        four = view == "4CH"
        half_angle = math.radians(rng.uniform(36.0, 40.0))
        lv_x = rng.uniform(2.0, 12.0) if four else rng.uniform(-6.0, 6.0)
        tilt = math.radians(rng.uniform(-10.0, 10.0))
        view_half_width = half_width * rng.uniform(0.92, 1.08)
        view_width_factor = float(np.clip(width_factor * rng.uniform(0.97, 1.03), 0.4, 0.99))
        lv_x, tilt, view_apex_depth = _fit_in_sector(
            lv_x,
            tilt,
            apex_depth,
            [
                (length, view_half_width, thickness),
                (
                    length * length_factor,
                    view_half_width * view_width_factor,
                    thickness * (1.0 + thickening),
                ),
            ],
            half_angle,
        )
        # The LV must fit above the bottom of the sector, the LA mostly (LA bottom at
        # apex + L + 1.6 LA; as in CAMUS, the sector may cut the bottom of the atrium).
        needed = max(105.0, view_apex_depth + length + 1.25 * la_length * 1.05 + 2.0)
        depth = rng.uniform(needed, needed + 12.0)
        rows = int(round(np.clip(rng.normal(780, 30), 700, 860) * scale))
        cols = int(round(np.clip(rng.normal(550, 25), 480, 620) * scale))
        width = 2 * depth * math.sin(half_angle) * rng.uniform(1.0, 1.08)
        views[view] = ViewGeometry(
            rows=rows,
            cols=cols,
            row_mm=depth / rows,
            col_mm=width / cols,
            half_angle=half_angle,
            apex_depth=view_apex_depth,
            lv_x=lv_x,
            tilt=tilt,
            length=length,
            half_width=view_half_width,
            length_factor=length_factor,
            width_factor=view_width_factor,
            thickness=thickness,
            thickening=thickening,
            la_length=la_length,
            la_width=la_width * rng.uniform(0.9, 1.1),
            la_offset=rng.uniform(-4.0, 4.0),
            four_chamber=four,
        )
        half[view] = int(rng.integers(lo, hi + 1))
        pre[view] = int(rng.integers(1, 4))
        post[view] = int(rng.integers(max(1, half[view] // 2), half[view] + 1))
    return PatientParams(patient_id, quality, sex, age, views, half, pre, post, frame_rate)


def _fit_in_sector(lv_x, tilt, apex_depth, shapes, half_angle):
    """Moves the LV towards the centre line, then deeper, until its epicardium lies inside
    the sector with a 2 mm margin at ED and at ES, so that the field of view never cuts the
    masks. ``shapes``: ``(length, half_width, thickness)`` at ED and at ES.

    Returns:
        ``(lv_x, tilt, apex_depth)``.
    """
    profiles = []
    for length, half_width, thickness in shapes:
        a = length / 1.5
        u = np.linspace(-thickness, length, 64)
        w = (half_width + thickness) * np.sqrt(
            np.clip(1.0 - ((u - a) / (a + thickness)) ** 2, 0.0, None)
        )
        profiles.append((u, w))
    for attempt in range(60):
        fits = True
        for u, w in profiles:
            x = lv_x + u * math.sin(tilt)
            y = apex_depth + u * math.cos(tilt)
            fits &= bool(np.all(np.abs(x) + w <= y * math.tan(half_angle) - 2.0))
        if fits:
            break
        if attempt < 6:
            lv_x, tilt = 0.7 * lv_x, 0.7 * tilt
        else:
            apex_depth += 1.0
    return lv_x, tilt, apex_depth


# --- shapes ------------------------------------------------------------------------------


def _shape_sizes(g: ViewGeometry, s: float) -> dict[str, float]:
    """Sizes of the drawn shapes at motion fraction ``s`` (0 = ED, 1 = ES)."""
    length = g.length * (1.0 - s * (1.0 - g.length_factor))
    b = g.half_width * (1.0 - s * (1.0 - g.width_factor))
    return {
        "L": length,
        "a": length / 1.5,  # the cavity is an ellipse from u = 0 to 2a, cut at u = L = 1.5a
        "b": b,
        "t": g.thickness * (1.0 + s * g.thickening),
        "la_a": g.la_length * (0.82 + 0.18 * s),
        "la_b": g.la_width * (0.88 + 0.12 * s),
    }


def cavity_diameters(
    g: ViewGeometry, s: float, num_disks: int = NUM_DISKS
) -> tuple[float, np.ndarray]:
    """Long axis (mm) and disk diameters (mm) of the drawn LV cavity, for Simpson's rule."""
    z = _shape_sizes(g, s)
    u = (np.arange(num_disks) + 0.5) / num_disks * z["L"]
    diameters = 2.0 * z["b"] * np.sqrt(np.clip(1.0 - ((u - z["a"]) / z["a"]) ** 2, 0.0, None))
    return z["L"], diameters


def biplane_volume_ml(g2: ViewGeometry, g4: ViewGeometry, s: float) -> float:
    """LV volume (ml) by Simpson's biplane method of disks of the drawn 2CH and 4CH cavities."""
    l2, d2 = cavity_diameters(g2, s)
    l4, d4 = cavity_diameters(g4, s)
    return float(math.pi / 4.0 * np.sum(d2 * d4) * max(l2, l4) / NUM_DISKS / 1000.0)


class _ViewRenderer:
    """Draws the frames of one view: precomputes the grid, the speckle and the smooth fields."""

    def __init__(self, g: ViewGeometry, quality: str, rng: np.random.Generator):
        self.g = g
        self.quality = quality
        rows, cols = g.rows, g.cols
        y = ((np.arange(rows, dtype=np.float32) + 0.5) * g.row_mm)[:, None]
        x = ((np.arange(cols, dtype=np.float32) + 0.5 - cols / 2.0) * g.col_mm)[None, :]
        radius = np.sqrt(y * y + x * x)
        theta = np.arctan2(x, y)
        depth = rows * g.row_mm
        pixel = max(g.row_mm, g.col_mm)
        # Field of view: soft over ~one pixel at the edges of the sector.
        edge_angle = np.clip((g.half_angle - np.abs(theta)) * radius / pixel + 0.5, 0.0, 1.0)
        edge_depth = np.clip((depth - radius) / pixel + 0.5, 0.0, 1.0)
        self.fov_soft = (edge_angle * edge_depth).astype(np.float32)
        self.fov = self.fov_soft >= 0.5
        # LV frame: u along the long axis from the apex (downwards), v across it.
        cos_t, sin_t = math.cos(g.tilt), math.sin(g.tilt)
        dy, dx = y - g.apex_depth, x - g.lv_x
        self.u = (dy * cos_t + dx * sin_t).astype(np.float32)
        self.v = (-dy * sin_t + dx * cos_t).astype(np.float32)
        self.edge = 1.0  # mm, width of the soft edges
        # Depth attenuation, partly compensated by the time-gain control.
        attenuation = {"Good": 0.004, "Medium": 0.006, "Poor": 0.009}[quality]
        self.gain = (np.exp(-attenuation * radius) * (1.0 - 0.6 * np.exp(-radius / 6.0))).astype(
            np.float32
        )
        # Echo dropouts: angular bands of weak signal, where a rib or the lung shadows.
        dropout = np.ones_like(self.gain)
        bands = {"Good": 0, "Medium": 1, "Poor": 2}[quality]
        for _ in range(bands):
            centre = rng.uniform(-0.8, 0.8) * g.half_angle
            width = math.radians(rng.uniform(5.0, 10.0))
            depth_factor = 0.15 if quality == "Poor" else 0.5
            dropout *= 1.0 - (1.0 - depth_factor) * np.exp(-(((theta - centre) / width) ** 2))
        self.gain *= dropout
        # Slowly varying tissue texture and two speckle fields (Rayleigh, unit mean).
        self.texture = self._smooth_field(rng, (rows, cols), 6.0 / pixel, 0.35)
        self.speckle = [self._speckle(rng) for _ in range(2)]
        levels = {
            "Good": (0.02, 0.7, 0.2),
            "Medium": (0.04, 0.55, 0.2),
            "Poor": (0.12, 0.42, 0.22),
        }
        self.blood, self.myocardium, self.tissue = levels[quality]
        self.dynamic_range = {"Good": 42.0, "Medium": 38.0, "Poor": 30.0}[quality]
        self.noise = {"Good": 0.004, "Medium": 0.01, "Poor": 0.03}[quality]
        self.rng = rng

    @staticmethod
    def _smooth_field(rng, shape, sigma_px: float, amplitude: float) -> np.ndarray:
        step = max(1, int(sigma_px))
        small = rng.standard_normal((shape[0] // step + 2, shape[1] // step + 2)).astype(np.float32)
        small = ndimage.gaussian_filter(small, 1.0)
        small /= small.std() + 1e-6
        field = ndimage.zoom(small, step, order=1)[: shape[0], : shape[1]]
        return np.exp(amplitude * field).astype(np.float32)

    def _speckle(self, rng) -> np.ndarray:
        g = self.g
        pad = 8
        shape = (g.rows + 2 * pad, g.cols + 2 * pad)
        sigma = (max(0.3 / g.row_mm, 0.6), max(0.9 / g.col_mm, 0.6))
        re = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
        im = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
        envelope = np.hypot(re, im)
        return envelope / envelope.mean()

    def _soft_ellipse(self, cu: float, cv: float, au: float, bv: float) -> np.ndarray:
        """Membership in an ellipse (1 inside, 0 outside, linear over ``edge`` mm)."""
        q = np.sqrt(((self.u - cu) / au) ** 2 + ((self.v - cv) / bv) ** 2)
        return np.clip((1.0 - q) * min(au, bv) / self.edge + 0.5, 0.0, 1.0)

    def _soft_below(self, level: float) -> np.ndarray:
        """Membership of u < level (above the plane, towards the apex)."""
        return np.clip((level - self.u) / self.edge + 0.5, 0.0, 1.0)

    def frame(self, s: float, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draws one frame at motion fraction ``s``; returns ``(image, mask)``, uint8."""
        g, z = self.g, _shape_sizes(self.g, s)
        L, a, b, t = z["L"], z["a"], z["b"], z["t"]
        above = self._soft_below(L)
        endo = self._soft_ellipse(a, 0.0, a, b) * above
        epi = self._soft_ellipse(a, 0.0, a + t, b + t) * above
        peri = self._soft_ellipse(a, 0.0, a + t + 2.0, b + t + 2.0) * above
        la_cu = L + 0.6 * z["la_a"]
        la = self._soft_ellipse(la_cu, g.la_offset, z["la_a"], z["la_b"]) * (1.0 - above)
        la_wall = self._soft_ellipse(la_cu, g.la_offset, z["la_a"] + 3.0, z["la_b"] + 3.0)
        mask = np.zeros((g.rows, g.cols), np.uint8)
        mask[la >= 0.5] = 3
        mask[epi >= 0.5] = 2
        mask[endo >= 0.5] = 1
        mask[~self.fov] = 0

        r = self.tissue * self.texture
        r += (0.55 * self.myocardium - r) * la_wall
        r += (1.4 * self.myocardium - r) * (peri - epi).clip(0.0, 1.0)
        r += (self.myocardium - r) * epi
        if g.four_chamber:  # right heart, to the left of the septum; not labelled
            rv_b = 0.65 * b
            rv_cv = -(b + t + 3.0 + rv_b)
            rv_wall = self._soft_ellipse(0.55 * L, rv_cv, 0.5 * L + 4.0, rv_b + 4.0) * above
            r += (0.8 * self.myocardium - r) * rv_wall * (1.0 - epi)
            r += (self.blood - r) * self._soft_ellipse(0.55 * L, rv_cv, 0.5 * L, rv_b) * above
            ra_a, ra_b = 0.9 * z["la_a"], 0.9 * z["la_b"]
            ra_cv = rv_cv - 2.0
            r += (
                (0.5 * self.myocardium - r)
                * self._soft_ellipse(L + 0.6 * ra_a, ra_cv, ra_a + 3.0, ra_b + 3.0)
                * (1.0 - above)
                * (1.0 - la)
            )
            r += (
                (self.blood - r)
                * self._soft_ellipse(L + 0.6 * ra_a, ra_cv, ra_a, ra_b)
                * (1.0 - above)
            )
        r += (self.blood - r) * endo
        r += (self.blood - r) * la
        # Mitral leaflets: closed (a bright line on the mitral plane) towards ES.
        leaflets = np.exp(-(((self.u - L) / 0.9) ** 2)) * (np.abs(self.v) < 0.85 * b)
        r += (0.8 * self.myocardium - r) * leaflets * (0.2 + 0.8 * s)

        shift = int(round(3 * s))
        pad = 8
        sp0 = self.speckle[0][pad + shift : pad + shift + g.rows, pad : pad + g.cols]
        sp1 = self.speckle[1][pad : pad + g.rows, pad - shift : pad - shift + g.cols]
        w = 0.5 * (1.0 - math.cos(math.pi * (index % 7) / 7.0)) * 0.6
        speckle = np.sqrt((1.0 - w) * sp0 * sp0 + w * sp1 * sp1)
        env = r * speckle * self.gain
        env += self.noise * np.abs(self.rng.standard_normal(env.shape, dtype=np.float32))
        db = 20.0 * np.log10(env + 1e-4)
        top = 20.0 * math.log10(1.4)
        image = np.clip((db - (top - self.dynamic_range)) / self.dynamic_range, 0.0, 1.0)
        image = np.round(255.0 * image * self.fov_soft).astype(np.uint8)
        return image, mask


def _motion(num: int) -> np.ndarray:
    """ED (0) to ES (1) over ``num`` frames, slow at both ends."""
    return 0.5 * (1.0 - np.cos(np.pi * np.arange(num) / max(num - 1, 1)))


def _whole_cycle(pre: int, half: int, post: int) -> np.ndarray:
    """Motion over a whole cycle: late filling, ED..ES, relaxation."""
    before = np.linspace(0.12, 0.0, pre + 1)[:-1]
    after = 0.5 * (1.0 + np.cos(np.pi * np.arange(1, post + 1) / (post + 1))) * 0.9 + 0.1
    return np.concatenate([before, _motion(half), after])


# --- writing -------------------------------------------------------------------------------


def _to_sitk(array: np.ndarray, row_mm: float, col_mm: float) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    if array.ndim == 2:
        image.SetSpacing((float(col_mm), float(row_mm)))
    else:
        image.SetSpacing((float(col_mm), float(row_mm), 1.0))
    return image


def _write_image(array, path: Path, g: ViewGeometry, compression_level: int) -> None:
    image = _to_sitk(array, g.row_mm, g.col_mm)
    if path.name.endswith(".nii.gz"):
        sitk.WriteImage(image, str(path), True, compression_level)
    else:
        sitk.WriteImage(image, str(path), False)


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _write_cfg(path: Path, values: dict) -> None:
    path.write_text("".join(f"{k}: {_format_value(v)}\n" for k, v in values.items()))


def _patient_volumes(p: PatientParams) -> tuple[float, float, float]:
    g2, g4 = p.views["2CH"], p.views["4CH"]
    edv = round(biplane_volume_ml(g2, g4, 0.0), 1)
    esv = round(biplane_volume_ml(g2, g4, 1.0), 1)
    ef = round(100.0 * (edv - esv) / edv, 1)
    return edv, esv, ef


def _write_patient(
    patient_dir: Path,
    p: PatientParams,
    layout: str,
    with_gt: bool,
    seed: int,
    compression_level: int,
) -> None:
    """Writes one patient's files into ``patient_dir`` (which exists and is empty)."""
    edv, esv, ef = _patient_volumes(p)
    rng = np.random.default_rng([int(seed), _patient_number(p.patient_id), 1])
    ext = reader.EXTENSIONS[layout]
    pid = p.patient_id
    for view in reader.VIEWS:
        g = p.views[view]
        renderer = _ViewRenderer(g, p.quality, rng)
        half = p.half_frames[view]
        if layout == reader.NIFTI:
            motion = _motion(half)
            ed_index, es_index = 0, half - 1
        else:
            motion = _whole_cycle(p.pre_frames[view], half, p.post_frames[view])
            ed_index = p.pre_frames[view]
            es_index = ed_index + half - 1
        frames = [renderer.frame(float(s), i) for i, s in enumerate(motion)]
        images = np.stack([f[0] for f in frames])
        masks = np.stack([f[1] for f in frames])
        for instant, index in (("ED", ed_index), ("ES", es_index)):
            _write_image(
                images[index], patient_dir / f"{pid}_{view}_{instant}{ext}", g, compression_level
            )
            if with_gt:
                _write_image(
                    masks[index],
                    patient_dir / f"{pid}_{view}_{instant}_gt{ext}",
                    g,
                    compression_level,
                )
        if layout == reader.NIFTI:
            _write_image(
                images, patient_dir / f"{pid}_{view}_half_sequence{ext}", g, compression_level
            )
            if with_gt:
                _write_image(
                    masks, patient_dir / f"{pid}_{view}_half_sequence_gt{ext}", g, compression_level
                )
            cfg = {
                "ED": 1,
                "ES": half,
                "NbFrame": half,
                "Sex": p.sex,
                "Age": p.age,
                "ImageQuality": p.quality,
                "EF": ef,
                "FrameRate": p.frame_rate,
            }
        else:
            _write_image(images, patient_dir / f"{pid}_{view}_sequence{ext}", g, compression_level)
            cfg = {
                "ED": ed_index + 1,
                "ES": es_index + 1,
                "NbFrame": len(motion),
                "Sex": p.sex,
                "Age": p.age,
                "ImageQuality": p.quality,
                "LVedv": edv,
                "LVesv": esv,
                "LVef": ef,
            }
        _write_cfg(patient_dir / f"Info_{view}.cfg", cfg)


def _write_patient_atomically(job: dict) -> str:
    """Writes a patient into a temporary folder beside its destination, then renames it."""
    final = Path(job["final"])
    params = patient_params(
        job["patient_id"],
        job["seed"],
        scale=job["scale"],
        half_sequence_frames=job["half_sequence_frames"],
        quality=job["quality"],
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private
        _write_patient(
            tmp, params, job["layout"], job["with_gt"], job["seed"], job["compression_level"]
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return job["patient_id"]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _patient_ids(num_patients: int, first_patient: int, patient_ids) -> list[str]:
    if patient_ids is not None:
        ids = []
        for p in patient_ids:
            pid = f"patient{int(p):04d}" if not str(p).startswith("patient") else str(p)
            if not reader.PATIENT_ID_RE.match(pid):
                raise ValueError(f"not a patient id: {p!r}")
            ids.append(pid)
        if len(set(ids)) != len(ids):
            raise ValueError("patient_ids has duplicates")
        return ids
    if num_patients < 1 or first_patient < 1 or first_patient + num_patients - 1 > 9999:
        raise ValueError(f"invalid patient range: {num_patients} from {first_patient}")
    return [f"patient{i:04d}" for i in range(first_patient, first_patient + num_patients)]


def _split_lists(ids: Sequence[str]) -> dict[str, list[str]]:
    """A synthetic ``database_split``: 451..500 test, every 9th other patient validation."""
    lists = {name: [] for name in reader.SPLIT_NAMES}
    for pid in ids:
        n = _patient_number(pid)
        if n >= ORIGINAL_TESTING_FROM:
            lists["subgroup_testing"].append(pid)
        elif n % 9 == 0:
            lists["subgroup_validation"].append(pid)
        else:
            lists["subgroup_training"].append(pid)
    return lists


def write_synthetic_camus(
    out_dir: str | os.PathLike,
    num_patients: int = 10,
    layout: str = reader.NIFTI,
    seed: int = 0,
    *,
    scale: float = 1.0,
    first_patient: int = 1,
    patient_ids: Sequence[str | int] | None = None,
    half_sequence_frames: tuple[int, int] = (15, 25),
    quality: str | None = None,
    original_testing_from: int | None = ORIGINAL_TESTING_FROM,
    workers: int = 1,
    compression_level: int = 1,
) -> Path:
    """Writes a synthetic CAMUS in the layout of either release.

    Args:
        out_dir: folder to write into (created). ``layout="nifti"`` writes
            ``out_dir/CAMUS_public/database_nifti/`` and ``.../database_split/``;
            ``layout="original"`` writes ``out_dir/training/`` and ``out_dir/testing/``.
            Patients already there are replaced.
        num_patients: number of patients, numbered from ``first_patient``.
        layout: ``"nifti"`` (2023 release) or ``"original"`` (challenge release).
        seed: random seed; each patient depends only on ``(seed, its number)``.
        scale: image size factor; 1 gives CAMUS sizes (~780 x 550), 0.25 tiny test images
            (spacing grows accordingly: the anatomy keeps its size in mm).
        first_patient: number of the first patient.
        patient_ids: explicit patient ids or numbers (overrides ``num_patients`` and
            ``first_patient``), e.g. to include patients of given folds.
        half_sequence_frames: inclusive range of the number of frames from ED to ES.
        quality: force every patient's image quality (``"Good"``, ``"Medium"``, ``"Poor"``).
        original_testing_from: original layout only: patients with this number or higher go
            to ``testing/`` without masks, as in the challenge release (None: all to
            ``training/`` with masks).
        workers: processes to use.
        compression_level: gzip level of the ``.nii.gz`` files (1 is fast).

    Returns:
        ``out_dir`` as a Path: the folder to pass as the builder's ``manual_dir``.
    """
    if layout not in reader.LAYOUTS:
        raise ValueError(f"layout must be one of {reader.LAYOUTS}, got {layout!r}")
    if not 0.05 <= scale <= 2.0:
        raise ValueError(f"scale must be within 0.05..2, got {scale}")
    out_dir = Path(out_dir)
    ids = _patient_ids(num_patients, first_patient, patient_ids)
    jobs = []
    for pid in ids:
        if layout == reader.NIFTI:
            folder = out_dir / "CAMUS_public" / "database_nifti"
            with_gt = True
        else:
            testing = (
                original_testing_from is not None and _patient_number(pid) >= original_testing_from
            )
            folder = out_dir / ("testing" if testing else "training")
            with_gt = not testing
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append(
            dict(
                final=str(folder / pid),
                patient_id=pid,
                seed=seed,
                scale=scale,
                half_sequence_frames=tuple(half_sequence_frames),
                quality=quality,
                layout=layout,
                with_gt=with_gt,
                compression_level=compression_level,
            )
        )
    logger.info("writing %d synthetic patients (%s layout) to %s", len(ids), layout, out_dir)
    if workers > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            for done, pid in enumerate(pool.map(_write_patient_atomically, jobs), start=1):
                logger.debug("wrote %s (%d/%d)", pid, done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            _write_patient_atomically(job)
            logger.debug("wrote %s (%d/%d)", job["patient_id"], done, len(jobs))
    if layout == reader.NIFTI:
        split_dir = out_dir / "CAMUS_public" / "database_split"
        split_dir.mkdir(parents=True, exist_ok=True)
        present = sorted(
            p.name
            for p in (out_dir / "CAMUS_public" / "database_nifti").iterdir()
            if reader.PATIENT_ID_RE.match(p.name)
        )
        for name, members in _split_lists(present).items():
            _atomic_write_text(split_dir / f"{name}.txt", "".join(f"{m}\n" for m in members))
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    """``camus-synth``: writes a synthetic CAMUS and prints the folder to use as manual_dir."""
    parser = argparse.ArgumentParser(
        prog="camus-synth",
        description="Write a synthetic CAMUS (apical 2CH/4CH echo-like images with their "
        "masks and Info_*.cfg) in the layout of either CAMUS release.",
    )
    parser.add_argument("out_dir", help="folder to write into")
    parser.add_argument("-n", "--num-patients", type=int, default=10)
    parser.add_argument("--layout", choices=reader.LAYOUTS, default=reader.NIFTI)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="image size factor (default 1)")
    parser.add_argument("--first-patient", type=int, default=1)
    parser.add_argument(
        "--patients",
        help="comma-separated patient numbers or ids (overrides -n and --first-patient)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        nargs=2,
        default=(15, 25),
        metavar=("MIN", "MAX"),
        help="frames from ED to ES (default 15 25)",
    )
    parser.add_argument("--quality", choices=QUALITIES, help="force the image quality")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        root = write_synthetic_camus(
            args.out_dir,
            num_patients=args.num_patients,
            layout=args.layout,
            seed=args.seed,
            scale=args.scale,
            first_patient=args.first_patient,
            patient_ids=args.patients.split(",") if args.patients else None,
            half_sequence_frames=tuple(args.frames),
            quality=args.quality,
            workers=args.workers,
        )
    except (ValueError, OSError) as e:
        print(f"camus-synth: error: {e}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
