"""Colours and light of the hard world: close shades, per-object jitter, lighting drift.

``SHADES`` names eight colours with ordinary words; several pairs are close enough that only a
careful look tells them apart (``CLOSE_SHADES``: red/orange, orange/yellow, blue/teal,
green/teal, purple/pink, red/pink, blue/purple). Each object is drawn in its shade plus a small
jitter (Gaussian, ``JITTER_SIGMA`` per channel, at most ``JITTER_MAX``), so no two objects share
exact pixel values; its name stays the shade's. None of the shades is near ``render.SHADOW_GREY``
(the colour of an object in full shadow).

Every video gets a ``scene.Lighting``: a constant brightness/colour temperature, or (share
``DRIFT_SHARE``) a drift between the first and the last frame of at least ``MIN_DRIFT`` in
brightness, applied to every pixel; within a frame all colours scale alike, so comparisons
between objects survive it while absolute colour values do not.
"""

from __future__ import annotations

import numpy as np

from clawcrane.datasets.synth.scene import Lighting

SHADES: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 44),
    "orange": (240, 132, 30),
    "yellow": (234, 206, 44),
    "green": (46, 166, 62),
    "teal": (26, 158, 154),
    "blue": (48, 88, 230),
    "purple": (138, 62, 206),
    "pink": (234, 112, 186),
}
"""Shade name -> RGB of the hard palette."""
CLOSE_SHADES = (("red", "orange"), ("orange", "yellow"), ("blue", "teal"), ("green", "teal"), ("purple", "pink"),
                ("red", "pink"), ("blue", "purple"))
"""Pairs of shades a quick look can confuse (temporal pairs prefer them)."""
JITTER_SIGMA = 6.0
JITTER_MAX = 12
GAIN_RANGE = (0.8, 1.14)
"""Brightness factors a video's light takes."""
WARM_RANGE = (-0.07, 0.07)
"""Colour temperature shifts a video's light takes."""
DRIFT_SHARE = 0.65
MIN_DRIFT = 0.14
"""A drifting video's brightness changes by at least this much between its first and last frame."""


def jittered_rgb(rng: np.random.Generator, shade: str) -> tuple[int, int, int]:
    """The shade's RGB plus a clipped Gaussian jitter per channel."""
    jitter = np.clip(rng.normal(0.0, JITTER_SIGMA, size=3), -JITTER_MAX, JITTER_MAX)
    rgb = np.clip(np.round(np.asarray(SHADES[shade], np.float64) + jitter), 0, 255).astype(int)
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def close_to(shade: str) -> tuple[str, ...]:
    """The shades listed as close to ``shade``."""
    return tuple(b if a == shade else a for a, b in CLOSE_SHADES if shade in (a, b))


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """A constant light, or (share ``DRIFT_SHARE``) a brightness and colour-temperature drift."""
    lo, hi = GAIN_RANGE
    gain0 = float(rng.uniform(lo, hi))
    warm0 = float(rng.uniform(*WARM_RANGE))
    if rng.random() >= DRIFT_SHARE:
        return Lighting(gain0=round(gain0, 3), gain1=round(gain0, 3), warm0=round(warm0, 3), warm1=round(warm0, 3))
    step = float(rng.uniform(MIN_DRIFT, hi - lo))
    can_up, can_down = gain0 + step <= hi, gain0 - step >= lo
    if not (can_up or can_down):  # the step fits from one end only: start there
        gain0 = lo if rng.random() < 0.5 else hi
        can_up, can_down = gain0 == lo, gain0 == hi
    up = can_up and (not can_down or rng.random() < 0.5)
    gain1 = gain0 + step if up else gain0 - step
    warm1 = float(rng.uniform(*WARM_RANGE))
    return Lighting(gain0=round(gain0, 3), gain1=round(gain1, 3), warm0=round(warm0, 3), warm1=round(warm1, 3))
