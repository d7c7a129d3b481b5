"""The object collector of the hard world's placement code: looks, spans, distances.

A *look* is (shape, shade): sizes are continuous, so two objects look alike when shape and shade
agree. ``Builder`` reserves looks (``fresh_look``; ``close_look``: a free look that shares its
shape with a placed object and is close to its shade), adds object specs (each with its jittered
colour), and offers the small geometric helpers the placers share.
"""

from __future__ import annotations

import numpy as np

from clawcrane.datasets.synth.hard import motion as mo
from clawcrane.datasets.synth.hard.palette import SHADES, close_to, jittered_rgb
from clawcrane.datasets.synth.scene import SHAPES

Look = tuple[str, str]
ALL_LOOKS: tuple[Look, ...] = tuple((sh, c) for sh in SHAPES for c in SHADES)


def span(r: float, v: float, T: int, extent: int, margin: float) -> tuple[float, float]:
    """Start-coordinate range keeping a centre within [r + margin, extent - r - margin] all clip long."""
    travel = v * (T - 1)
    return r + margin - min(0.0, travel), extent - r - margin - max(0.0, travel)


class Builder:
    """Collects object specs (dicts of ``scene.Obj`` fields but ``index`` and ``depth``) while a scene is drawn."""

    def __init__(self, *, rng: np.random.Generator, W: int, H: int, T: int):
        self.rng, self.W, self.H, self.T = rng, W, H, T
        self.specs: list[dict] = []
        self.used: set[Look] = set()
        self.behind: list[tuple[int, int]] = []
        """(i, j): object i must be drawn before (behind) object j."""

    def add(self, look: Look, radius: float, start, velocity, role: str) -> int:
        self.specs.append(dict(shape=look[0], colour=look[1], size="", radius=round(float(radius), 2),
                               start=(round(float(start[0]), 2), round(float(start[1]), 2)),
                               velocity=(float(velocity[0]), float(velocity[1])), role=role,
                               rgb=jittered_rgb(self.rng, look[1])))
        self.used.add(look)
        return len(self.specs) - 1

    def fresh_look(self, *, shapes=None, shades=None) -> Look | None:
        """A look no object has yet (optionally of given shapes / shades), reserved; None if none left."""
        free = [lk for lk in ALL_LOOKS if lk not in self.used
                and (shapes is None or lk[0] in shapes) and (shades is None or lk[1] in shades)]
        if not free:
            return None
        look = free[int(self.rng.integers(len(free)))]
        self.used.add(look)
        return look

    def close_look(self) -> Look | None:
        """A free look sharing its shape with a placed object and close to its shade; None if none."""
        near = sorted({(sh, c) for sh, col in self.used for c in close_to(col)} - self.used)
        if not near:
            return None
        look = near[int(self.rng.integers(len(near)))]
        self.used.add(look)
        return look

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def start_inside(self, r: float, v, margin: float = 4.0) -> tuple[float, float] | None:
        (xl, xh), (yl, yh) = span(r, v[0], self.T, self.W, margin), span(r, v[1], self.T, self.H, margin)
        if xl > xh or yl > yh:
            return None
        return (self.uniform(xl, xh), self.uniform(yl, yh))

    def apart(self, start, v, r: float, others: list[tuple], gap: float) -> bool:
        """Centre distance >= r + r_other + gap in every third frame (and the last) to each (start, v, r)."""
        ts = np.array(sorted(set(range(0, self.T, 3)) | {self.T - 1}), np.float64)
        p = np.asarray(start)[None] + ts[:, None] * np.asarray(v)[None]
        for s2, v2, r2 in others:
            q = np.asarray(s2)[None] + ts[:, None] * np.asarray(v2)[None]
            if np.hypot(*(p - q).T).min() < r + r2 + gap:
                return False
        return True

    def any_velocity(self, lo: float, hi: float, static_share: float) -> tuple[float, float]:
        """Static (share ``static_share``) or a speed in [lo, hi] along a random direction."""
        if self.rng.random() < static_share:
            return (0.0, 0.0)
        return mo.velocity(self.rng, str(self.rng.choice(list(mo.DIRECTIONS))), self.uniform(lo, hi))
