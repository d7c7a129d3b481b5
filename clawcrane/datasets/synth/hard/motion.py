"""Motion of the hard world: eight directions, speed bands, and placement that hides direction.

Image coordinates: x grows to the right, y downwards, so 'up' is a negative y velocity and the
angle of a velocity is measured clockwise from 'right' (``DIRECTIONS``). A moving object's
velocity lies within ``ANGLE_JITTER`` degrees of one of the eight directions and its speed in
one of the ``SPEED_BANDS``; ``direction_label`` names it only within ``LABEL_CONE`` degrees
(a clear-cut direction), and only from ``MIN_MOVING`` px/frame on.

A single frame must not tell which way an object goes: objects of the motion motifs get their
*mid-clip* centre drawn from one region, the frame shrunk by the object's radius, a margin and
half the largest travel any object can make (``MAX_SPEED * (T - 1) / 2``), whatever their
velocity (``mid_clip_centre``); the clip then runs from ``mid - v (T - 1) / 2`` to
``mid + v (T - 1) / 2``. Averaged over the frames, where an object is says nothing about where it
goes (the draws of the mid-clip centre do not depend on the velocity at all), and every object
stays inside the frame the whole clip.
"""

from __future__ import annotations

import math

import numpy as np

DIRECTIONS: dict[str, float] = {
    "right": 0.0, "down-right": 45.0, "down": 90.0, "down-left": 135.0,
    "left": 180.0, "up-left": 225.0, "up": 270.0, "up-right": 315.0,
}
"""Direction label -> angle in degrees, clockwise from 'right' (y grows downwards)."""
SPEED_BANDS: dict[str, tuple[float, float]] = {"slow": (0.5, 0.9), "medium": (1.3, 1.9), "fast": (2.4, 3.2)}
"""Speeds in px/frame; a moving object of a motion motif has a speed in one band."""
MAX_SPEED = 3.2
ANGLE_JITTER = 10.0
"""A velocity lies within this many degrees of its direction."""
LABEL_CONE = 15.0
"""``direction_label`` names a velocity within this many degrees of a direction."""
MIN_MOVING = 0.45
"""Below this speed (but not 0) an object is neither static nor clearly moving: no label."""
MIN_APART = 90.0
"""Look-alikes of a motion motif move at least this many degrees apart (or one is static)."""
SPEED_RATIO = 1.8
"""In a speed pair the faster object is at least this many times as fast as the slower one."""
DRAW_SPEED_RATIO = 1.85
"""``speed_pair`` draws with this ratio (a margin over ``SPEED_RATIO`` for the rounded velocities)."""


def speed_of(velocity) -> float:
    return math.hypot(velocity[0], velocity[1])


def angle_of(velocity) -> float:
    """Degrees in [0, 360), clockwise from 'right' in image coordinates."""
    return math.degrees(math.atan2(velocity[1], velocity[0])) % 360.0


def angle_gap(a: float, b: float) -> float:
    """Smallest difference of two angles in degrees, in [0, 180]."""
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def direction_label(velocity) -> str | None:
    """'static' (zero velocity), one of ``DIRECTIONS`` (within ``LABEL_CONE``), or None (unclear)."""
    speed = speed_of(velocity)
    if speed == 0.0:
        return "static"
    if speed < MIN_MOVING:
        return None
    a = angle_of(velocity)
    name, gap = min(((n, angle_gap(a, d)) for n, d in DIRECTIONS.items()), key=lambda kv: kv[1])
    return name if gap <= LABEL_CONE else None


def labels_apart(a: str, b: str) -> bool:
    """Two labels clearly differ: one is static and the other not, or >= ``MIN_APART`` degrees."""
    if "static" in (a, b):
        return a != b
    return angle_gap(DIRECTIONS[a], DIRECTIONS[b]) >= MIN_APART


def velocity(rng: np.random.Generator, direction: str, speed: float) -> tuple[float, float]:
    """A velocity of ``speed`` px/frame within ``ANGLE_JITTER`` degrees of ``direction``."""
    if direction == "static" or speed == 0.0:
        return (0.0, 0.0)
    a = math.radians(DIRECTIONS[direction] + float(rng.uniform(-ANGLE_JITTER, ANGLE_JITTER)))
    return (round(speed * math.cos(a), 3), round(speed * math.sin(a), 3))


def band_speed(rng: np.random.Generator, band: str | None = None) -> float:
    """A speed from ``band`` (default: a random band)."""
    if band is None:
        band = str(rng.choice(list(SPEED_BANDS)))
    return float(rng.uniform(*SPEED_BANDS[band]))


def distinct_labels(rng: np.random.Generator, n: int, static_share: float = 0.25) -> list[str] | None:
    """``n`` labels pairwise ``labels_apart`` (at most one 'static'); None when none fit."""
    pool = list(DIRECTIONS)
    out: list[str] = ["static"] if rng.random() < static_share else []
    for k in rng.permutation(len(pool)):
        if len(out) == n:
            break
        if all(labels_apart(pool[int(k)], b) for b in out):
            out.append(pool[int(k)])
    if len(out) < n:
        return None
    return [out[int(k)] for k in rng.permutation(n)]


def speed_pair(rng: np.random.Generator) -> tuple[float, float]:
    """(faster, slower) speeds from the bands with a ratio of at least ``DRAW_SPEED_RATIO``."""
    while True:
        a, b = sorted((band_speed(rng), band_speed(rng)), reverse=True)
        if a >= DRAW_SPEED_RATIO * b:
            return a, b


def mid_clip_centre(rng: np.random.Generator, radius: float, T: int, W: int, H: int,
                    margin: float = 4.0) -> tuple[float, float] | None:
    """A mid-clip centre drawn the same way for every velocity; None when the frame is too small."""
    keep = radius + margin + MAX_SPEED * (T - 1) / 2
    if 2 * keep >= min(W, H):
        return None
    return (float(rng.uniform(keep, W - keep)), float(rng.uniform(keep, H - keep)))


def start_from_mid(mid: tuple[float, float], v: tuple[float, float], T: int) -> tuple[float, float]:
    """The frame-0 centre of an object that is at ``mid`` half-way through a ``T``-frame clip."""
    h = (T - 1) / 2
    return (mid[0] - v[0] * h, mid[1] - v[1] * h)
