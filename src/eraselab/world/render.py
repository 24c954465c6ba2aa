"""Deterministic renderer of the toy world: one antialiased object on a dark background."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path

RGB = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.12, 0.72, 0.22),
    "blue": (0.15, 0.32, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.62, 0.18, 0.82),
}
BACKGROUND = (0.10, 0.10, 0.10)
PATTERN = (1.0, 1.0, 1.0)  # stripes and dots are drawn in white over the object's colour
SUPERSAMPLE = 4


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), -radii * np.sin(angles)], 1)  # image y points down


def _triangle() -> np.ndarray:
    angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
    return np.stack([np.cos(angles), -np.sin(angles) + 0.15], 1)  # nudged down to sit centred


POLYGONS = {"triangle": Path(_triangle()), "star": Path(_star())}


def shape_mask(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside-test in unit object coordinates (object radius 1)."""
    if shape == "circle":
        return x**2 + y**2 <= 1.0
    if shape == "square":
        return np.maximum(abs(x), abs(y)) <= 0.8
    if shape == "cross":
        return ((abs(x) <= 0.32) & (abs(y) <= 0.95)) | ((abs(y) <= 0.32) & (abs(x) <= 0.95))
    if shape in POLYGONS:
        pts = np.stack([x.ravel(), y.ravel()], 1)
        return POLYGONS[shape].contains_points(pts).reshape(x.shape)
    raise ValueError(f"unknown shape {shape!r}; valid: circle, square, cross, {', '.join(POLYGONS)}")


def texture_mask(texture: str, px: np.ndarray, py: np.ndarray, period: float, spacing: float) -> np.ndarray:
    """Where the white pattern shows, in pixel offsets from the object centre."""
    if texture == "plain":
        return np.zeros(px.shape, bool)
    if texture == "striped":
        return np.mod(py + period / 4, period) < period / 2
    if texture == "dotted":
        dx = np.mod(px + spacing / 2, spacing) - spacing / 2
        dy = np.mod(py + spacing / 2, spacing) - spacing / 2
        return dx**2 + dy**2 <= (0.27 * spacing) ** 2
    raise ValueError(f"unknown texture {texture!r}; valid: plain, striped, dotted")


@dataclass(frozen=True)
class Geometry:
    radius: tuple[float, float]  # fraction of image size
    jitter: float  # max centre offset, fraction of image size
    rotation: float  # max rotation, degrees
    stripe_period: float  # pixels
    dot_spacing: float  # pixels
    colour_jitter: float


def render(shape: str, colour: str, texture: str, size: int, geometry: Geometry, rng: np.random.Generator) -> np.ndarray:
    """One HxWx3 uint8 image. All randomness comes from ``rng`` so a seed fixes the image."""
    radius = rng.uniform(*geometry.radius) * size
    cx, cy = size / 2 + rng.uniform(-1, 1, 2) * geometry.jitter * size
    theta = np.deg2rad(rng.uniform(-1, 1) * geometry.rotation)
    tint = np.clip(np.array(RGB[colour]) + rng.uniform(-1, 1, 3) * geometry.colour_jitter, 0, 1)

    n = size * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / SUPERSAMPLE
    gx, gy = np.meshgrid(coords - cx, coords - cy)
    cos, sin = np.cos(theta), np.sin(theta)
    px, py = cos * gx + sin * gy, -sin * gx + cos * gy  # object frame, pixels
    inside = shape_mask(shape, px / radius, py / radius)
    pattern = inside & texture_mask(texture, px, py, geometry.stripe_period, geometry.dot_spacing)

    image = np.empty((n, n, 3))
    image[:] = BACKGROUND
    image[inside] = tint
    image[pattern] = PATTERN
    image = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3))  # box-filter antialiasing
    return np.round(image * 255).astype(np.uint8)
