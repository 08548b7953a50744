"""Image formation of the synthetic CAMUS: sector, tissue reflectivities, speckle, quality."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from tfds_camus.phantom.anatomy import ViewGeometry, shape_sizes
from tfds_camus.vocabulary import GOOD, MEDIUM, POOR


class ViewRenderer:
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
        attenuation = {GOOD: 0.004, MEDIUM: 0.006, POOR: 0.009}[quality]
        self.gain = (np.exp(-attenuation * radius) * (1.0 - 0.6 * np.exp(-radius / 6.0))).astype(
            np.float32
        )
        # Echo dropouts: angular bands of weak signal, where a rib or the lung shadows.
        dropout = np.ones_like(self.gain)
        bands = {GOOD: 0, MEDIUM: 1, POOR: 2}[quality]
        for _ in range(bands):
            centre = rng.uniform(-0.8, 0.8) * g.half_angle
            width = math.radians(rng.uniform(5.0, 10.0))
            depth_factor = 0.15 if quality == POOR else 0.5
            dropout *= 1.0 - (1.0 - depth_factor) * np.exp(-(((theta - centre) / width) ** 2))
        self.gain *= dropout
        # Slowly varying tissue texture and two speckle fields (Rayleigh, unit mean).
        self.texture = self._smooth_field(rng, (rows, cols), 6.0 / pixel, 0.35)
        self.speckle = [self._speckle(rng) for _ in range(2)]
        levels = {
            GOOD: (0.02, 0.7, 0.2),
            MEDIUM: (0.04, 0.55, 0.2),
            POOR: (0.12, 0.42, 0.22),
        }
        self.blood, self.myocardium, self.tissue = levels[quality]
        self.dynamic_range = {GOOD: 42.0, MEDIUM: 38.0, POOR: 30.0}[quality]
        self.noise = {GOOD: 0.004, MEDIUM: 0.01, POOR: 0.03}[quality]
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
        g, z = self.g, shape_sizes(self.g, s)
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


def motion(num: int) -> np.ndarray:
    """ED (0) to ES (1) over ``num`` frames, slow at both ends."""
    return 0.5 * (1.0 - np.cos(np.pi * np.arange(num) / max(num - 1, 1)))


def whole_cycle(pre: int, half: int, post: int) -> np.ndarray:
    """Motion over a whole cycle: late filling, ED..ES, relaxation."""
    before = np.linspace(0.12, 0.0, pre + 1)[:-1]
    after = 0.5 * (1.0 + np.cos(np.pi * np.arange(1, post + 1) / (post + 1))) * 0.9 + 0.1
    return np.concatenate([before, motion(half), after])
