"""The synthetic patients' anatomy: view geometry, shapes in mm, Simpson's biplane volumes.

Every patient is drawn from its own random generator seeded by ``(seed, patient number)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfds_camus.vocabulary import QUALITIES, SEXES, VIEW_4CH, VIEWS

QUALITY_PROBABILITIES = (0.35, 0.46, 0.19)  # CAMUS: 35 / 46 / 19 % (folds README)
NUM_DISKS = 20


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


def patient_number(patient_id: str) -> int:
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
    rng = np.random.default_rng([int(seed), patient_number(patient_id)])
    drawn_quality = QUALITIES[rng.choice(3, p=QUALITY_PROBABILITIES)]
    quality = quality or drawn_quality
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
    female, male = SEXES
    sex = male if rng.random() < 0.66 else female
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
    for view in VIEWS:
        four = view == VIEW_4CH
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


def shape_sizes(g: ViewGeometry, s: float) -> dict[str, float]:
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
    z = shape_sizes(g, s)
    u = (np.arange(num_disks) + 0.5) / num_disks * z["L"]
    diameters = 2.0 * z["b"] * np.sqrt(np.clip(1.0 - ((u - z["a"]) / z["a"]) ** 2, 0.0, None))
    return z["L"], diameters


def biplane_volume_ml(g2: ViewGeometry, g4: ViewGeometry, s: float) -> float:
    """LV volume (ml) by Simpson's biplane method of disks of the drawn 2CH and 4CH cavities."""
    l2, d2 = cavity_diameters(g2, s)
    l4, d4 = cavity_diameters(g4, s)
    return float(math.pi / 4.0 * np.sum(d2 * d4) * max(l2, l4) / NUM_DISKS / 1000.0)
