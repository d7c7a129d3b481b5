"""Occlusion in the hard world: an object passes behind a larger one, vanishes, and reappears.

``add_occluder`` gives an object an *occluder*: a circle or square of its own look, drawn in
front of it, whose inradius exceeds the object's circumradius by 4-8 px and whose centre passes
over the object's centre at frame ``t_hide`` with a relative speed of 4.5-6.5 px/frame; the
object is then fully hidden (not annotated, not listed) for a few consecutive frames.
``place_occlusion`` makes a small object of its own look (radius 8-12; referred to by its look)
and its occluder. The sampler picks the annotated frames so that one falls in the hidden span
with clear frames on both sides.
"""

from __future__ import annotations

import math

import numpy as np

from clawcrane.datasets.synth.geometry import shape_vertices
from clawcrane.datasets.synth.hard import motion as mo
from clawcrane.datasets.synth.hard.builder import Builder

OCCLUDER_SHAPES = ("circle", "square")


def circumradius(shape: str, r: float) -> float:
    """Distance from the centre to the farthest point of the shape."""
    v = shape_vertices(shape, 0.0, 0.0, 1.0)
    return r if v is None else r * float(np.linalg.norm(v, axis=1).max())


def inradius(shape: str, r: float) -> float:
    """Radius of the largest circle around the centre inside the shape."""
    v = shape_vertices(shape, 0.0, 0.0, 1.0)
    if v is None:
        return r
    a, b = v, np.roll(v, -1, axis=0)
    edge = b - a
    dist = np.abs(edge[:, 0] * a[:, 1] - edge[:, 1] * a[:, 0]) / np.linalg.norm(edge, axis=1)
    return r * float(dist.min())


def place_occlusion(b: Builder, t_hide: int) -> tuple[int, int] | None:
    """(occluded, occluder): a small object of its own look and the occluder crossing it at ``t_hide``."""
    look_p = b.fresh_look()
    if look_p is None:
        return None
    r_p = b.uniform(8, 12)
    band = "slow" if b.rng.random() < 0.5 else "medium"
    v_p = b.any_velocity(*mo.SPEED_BANDS[band], static_share=0.3)
    mid = mo.mid_clip_centre(b.rng, r_p, b.T, b.W, b.H)
    if mid is None:
        return None
    i_p = b.add(look_p, r_p, mo.start_from_mid(mid, v_p, b.T), v_p, "occluded")
    i_o = add_occluder(b, i_p, t_hide)
    return None if i_o is None else (i_p, i_o)


def add_occluder(b: Builder, i_p: int, t_hide: int) -> int | None:
    """A circle or square of its own look, drawn in front of object ``i_p``, whose centre passes over
    it at frame ``t_hide`` at 4.5-6.5 px/frame relative speed; big enough to hide it fully."""
    look_o = b.fresh_look(shapes=OCCLUDER_SHAPES)
    if look_o is None:
        return None
    p = b.specs[i_p]
    (sx, sy), (vx, vy) = p["start"], p["velocity"]
    circ = circumradius(p["shape"], p["radius"])
    inner = circ + b.uniform(4, 8)
    r_o = inner / inradius(look_o[0], 1.0)
    rel, phi = b.uniform(4.5, 6.5), b.uniform(0, 2 * math.pi)
    v_o = (round(vx + rel * math.cos(phi), 3), round(vy + rel * math.sin(phi), 3))
    side = b.uniform(-0.3, 0.3) * (inner - circ)  # across the path: the occluded one stays fully covered
    meet = (sx + vx * t_hide - side * math.sin(phi), sy + vy * t_hide + side * math.cos(phi))
    i_o = b.add(look_o, r_o, (meet[0] - v_o[0] * t_hide, meet[1] - v_o[1] * t_hide), v_o, "occluder")
    b.behind.append((i_p, i_o))
    return i_o
