"""Foils: objects that defeat the shortcut of ignoring a sentence's noun phrase.

Each position, size, speed, motion and relation motif gets one object of another look that the
clause alone would pick: further out than the group's first or last member along its axis (when
the frame has room; it moves with the group); bigger than the largest or smaller than the
smallest of a size group; faster than the faster or slower than the slower of a speed pair;
moving like one member of a motion group; next to one reference, on another side than its twin
(so "the object next to the box" is ambiguous while "the triangle next to the box" is not). Each
returns the foil's index, or None when it does not fit (the scene is then drawn again).
"""

from __future__ import annotations

import math

from clawcrane.datasets.synth.hard import motion as mo
from clawcrane.datasets.synth.hard.builder import Builder, span


def size_foil(b: Builder, radii: list[float], placed: list[tuple]) -> int | None:
    """An object of another look bigger than the largest or smaller than the smallest of a size group."""
    look = b.fresh_look()
    lo, hi = min(radii), max(radii)
    bigger = (b.rng.random() < 0.5 or lo / 1.25 < 8.0) and hi * 1.25 <= 40.0
    if look is None or (not bigger and lo / 1.25 < 8.0):
        return None
    r = b.uniform(1.25 * hi, min(40.0, 1.6 * hi)) if bigger else b.uniform(max(8.0, lo / 1.6), lo / 1.25)
    v = b.any_velocity(0.4, 1.9, static_share=0.3)
    for _ in range(30):
        s = b.start_inside(r, v)
        if s is not None and b.apart(s, v, r, placed, gap=8.0):
            return b.add(look, r, s, v, "foil")
    return None


def relation_foil(b: Builder, member: int, ref: int) -> int | None:
    """An object of another look next to the reference, >= 90 degrees around it from the member."""
    look = b.fresh_look()
    if look is None:
        return None
    m, q = b.specs[member], b.specs[ref]
    r = b.uniform(10, 22)
    away = math.atan2(m["start"][1] - q["start"][1], m["start"][0] - q["start"][0])
    for _ in range(20):
        a = away + math.radians(b.uniform(90, 270))
        d = q["radius"] + r + b.uniform(3, 14)
        start = (q["start"][0] + d * math.cos(a), q["start"][1] + d * math.sin(a))
        if math.dist(start, m["start"]) < m["radius"] + r + 6:
            continue
        (xl, xh), (yl, yh) = (span(r, q["velocity"][k], b.T, e, 2.0) for k, e in ((0, b.W), (1, b.H)))
        if xl <= start[0] <= xh and yl <= start[1] <= yh:
            return b.add(look, r, start, q["velocity"], "foil")
    return None


def velocity_foil(b: Builder, v: tuple[float, float]) -> int | None:
    """An object of another look with velocity ``v``, its mid-clip centre drawn as for motion objects."""
    look = b.fresh_look()
    if look is None:
        return None
    r = b.uniform(11, 24)
    mid = mo.mid_clip_centre(b.rng, r, b.T, b.W, b.H)
    return None if mid is None else b.add(look, r, mo.start_from_mid(mid, v, b.T), v, "foil")


def position_foil(b: Builder, members: tuple[int, ...], axis: str) -> int | None:
    """An object of another look beyond the first or last member along ``axis``, moving with them;
    -1 when the frame has no room on either side (the motif keeps no foil)."""
    look = b.fresh_look()
    if look is None:
        return None
    ax, other = (0, 1) if axis == "x" else (1, 0)
    extent, other_extent = (b.W, b.H) if axis == "x" else (b.H, b.W)
    first = b.specs[members[0]]
    r, v = first["radius"], first["velocity"]
    coords = sorted(b.specs[i]["start"][ax] for i in members)
    r_f = b.uniform(10, 20)
    lo, hi = span(r_f, v[ax], b.T, extent, 4.0)
    olo, ohi = span(r_f, v[other], b.T, other_extent, 4.0)
    sides = [(lo, coords[0] - r - r_f - 8), (coords[-1] + r + r_f + 8, hi)]
    if b.rng.random() < 0.5:
        sides.reverse()
    for a, z in sides:
        if a <= z and olo <= ohi:
            start = [0.0, 0.0]
            start[ax], start[other] = b.uniform(a, z), b.uniform(olo, ohi)
            return b.add(look, r_f, start, v, "foil")
    return -1
