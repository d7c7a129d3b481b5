"""Placing the objects of the hard world: one function per motif, and fillers.

Every motif reserves looks (shape, shade) of its own (``Builder.fresh_look``), so its
look-alikes are exactly its members.

* position: 2-4 identical objects (one look, one radius) spread along x or y with gaps of at
  least max(2r + 6, 1.6r + 20) px, moving in formation (a quarter of them static);
* size: 2-3 objects of one look whose radii grow by a factor 1.38-1.75 from one to the next,
  kept apart all clip long (none hides another), each static or slowly moving on its own;
* relation: two identical objects, each next to its own reference (edge gap 6-18 px, or a slight
  overlap), both in the direction of one relation word, the two pairs far apart, so absolute
  position says nothing and only the reference tells the twins apart;
* motion: 2-3 identical objects whose directions are pairwise >= 90 degrees apart (one may be
  static), each at a speed from a random band; mid-clip centres drawn as ``motion`` describes;
  most trios are small, and one of them then passes behind an occluder;
* speed: two identical objects, one at least 1.85 times as fast as the other, half the time in
  the same direction; mid-clip centres as for motion;
* temporal: two objects of one shape and radius differing only in shade (a close shade when one
  is free), slow and side by side; returns the shadow core around them;
* fillers: looks of their own (half of them a close shade of an object of the same shape, so
  colour must be read carefully), radius 10-34; static, inside, crossing an edge, or
  overlapping another object (mostly behind it).

Position, size, speed, motion and relation motifs each bring a foil (``foils``); occluders are
placed by ``occlusion``.

Each function returns None when its draw does not fit; the scene is then drawn again.
"""

from __future__ import annotations

import math

import numpy as np

from clawcrane.datasets.synth.hard import motion as mo
from clawcrane.datasets.synth.hard.builder import Builder, Look, span
from clawcrane.datasets.synth.hard.foils import position_foil, relation_foil, size_foil, velocity_foil
from clawcrane.datasets.synth.hard.palette import close_to

RELATIONS = ("next to", "above", "below", "left of", "right of")


def place_position(b: Builder, n: int, axis: str) -> tuple[int, ...] | None:
    look = b.fresh_look()
    if look is None:
        return None
    r = b.uniform(11, 17) if n >= 4 else b.uniform(12, 22)
    v = b.any_velocity(0.4, 1.6, static_share=0.25)
    ax, other = (0, 1) if axis == "x" else (1, 0)
    extent, other_extent = (b.W, b.H) if axis == "x" else (b.H, b.W)
    gap = max(2 * r + 6, 1.6 * r + 20)
    lo, hi = span(r, v[ax], b.T, extent, 4.0)
    olo, ohi = span(r, v[other], b.T, other_extent, 4.0)
    slack = hi - lo - (n - 1) * gap
    if slack < 0 or olo > ohi:
        return None
    coords = lo + np.sort(b.rng.uniform(0, slack, size=n)) + gap * np.arange(n)  # uniform among valid spreads
    idx = []
    for c in coords:
        start = [0.0, 0.0]
        start[ax], start[other] = float(c), b.uniform(olo, ohi)
        idx.append(b.add(look, r, start, v, "position"))
    return tuple(idx) if position_foil(b, tuple(idx), axis) is not None else None


def place_size(b: Builder, n: int) -> tuple[int, ...] | None:
    look = b.fresh_look()
    if look is None:
        return None
    for _ in range(20):
        radii = [b.uniform(11, 18)]
        for _ in range(n - 1):
            radii.append(radii[-1] * b.uniform(1.38, 1.75))
        if radii[-1] <= 36:
            break
    else:
        return None
    placed: list[tuple] = []
    for r in radii:
        v = b.any_velocity(0.4, 1.9, static_share=0.3)
        for _ in range(30):
            s = b.start_inside(r, v)
            if s is None:
                return None
            if b.apart(s, v, r, placed, gap=8.0):
                placed.append((s, v, r))
                break
        else:
            return None
    members = tuple(b.add(look, r, s, v, "size") for s, v, r in placed)
    return members if size_foil(b, radii, placed) is not None else None


def _offset(rng: np.random.Generator, rel: str, ra: float, rb: float) -> tuple[float, float]:
    """Reference centre minus target centre for 'target REL reference' (edge gap 6-18 px or a slight overlap)."""
    gap = float(rng.uniform(-0.35 * min(ra, rb), 0.0)) if rng.random() < 0.35 else float(rng.uniform(6, 18))
    dist = ra + rb + gap
    side = float(rng.uniform(-0.25, 0.25)) * (ra + rb)
    if rel == "next to":
        a = float(rng.uniform(0, 2 * math.pi))
        return (dist * math.cos(a), dist * math.sin(a))
    return {"above": (side, dist), "below": (side, -dist), "left of": (dist, side), "right of": (-dist, side)}[rel]


def place_relation(b: Builder) -> tuple[tuple[int, ...], tuple[int, ...], str] | None:
    rng, T = b.rng, b.T
    look, refs = b.fresh_look(), (b.fresh_look(), b.fresh_look())
    if look is None or None in refs:
        return None
    r = b.uniform(12, 22)
    rel = str(rng.choice(RELATIONS))  # one word for both: where a twin is says nothing
    pairs = []
    for ref_look in refs:
        rr = b.uniform(11, 28)
        off = _offset(rng, rel, r, rr)
        v = b.any_velocity(0.3, 1.0, static_share=0.3)
        x_lo, x_hi = min(-r, off[0] - rr), max(r, off[0] + rr)
        y_lo, y_hi = min(-r, off[1] - rr), max(r, off[1] + rr)
        (sxl, sxh), (syl, syh) = span(0.0, v[0], T, b.W, 4.0), span(0.0, v[1], T, b.H, 4.0)
        sxl, sxh, syl, syh = sxl - x_lo, sxh - x_hi, syl - y_lo, syh - y_hi
        if sxl > sxh or syl > syh:
            return None
        pairs.append(((b.uniform(sxl, sxh), b.uniform(syl, syh)), off, v, ref_look, rr))
    (sa, oa, va, _, ra), (sb, ob, vb, _, rb) = pairs
    for t in range(0, T, 3):  # each twin far from the other pair's reference and from the other twin
        a, c = np.add(sa, np.multiply(va, t)), np.add(sb, np.multiply(vb, t))
        if np.hypot(*(a - (c + ob))) < r + rb + 60 or np.hypot(*(c - (a + oa))) < r + ra + 60:
            return None
        if np.hypot(*(a - c)) < 2 * r + 20:
            return None
    members, references = [], []
    for start, off, v, ref_look, rr in pairs:
        members.append(b.add(look, r, start, v, "relation"))
        references.append(b.add(ref_look, rr, (start[0] + off[0], start[1] + off[1]), v, "reference"))
    k = int(rng.integers(2))
    if relation_foil(b, members[k], references[k]) is None:
        return None
    return tuple(members), tuple(references), rel


def _mid_clip_group(b: Builder, r: float, velocities, role: str, look: Look) -> tuple[int, ...] | None:
    """Objects of one look with the given velocities, mid-clip centres drawn independently of them."""
    placed: list[tuple] = []
    for v in velocities:
        for _ in range(30):
            mid = mo.mid_clip_centre(b.rng, r, b.T, b.W, b.H)
            if mid is None:
                return None
            s = mo.start_from_mid(mid, v, b.T)
            if b.apart(s, v, r, placed, gap=-0.7 * r):  # paths may cross: brief overlaps
                placed.append((s, v, r))
                break
        else:
            return None
    return tuple(b.add(look, r, s, v, role) for s, v, _ in placed)


def place_motion(b: Builder, n: int, *, small: bool = False) -> tuple[int, ...] | None:
    """A motion group (``small``: radius 10-15, small enough for an occluder to hide) and its foil."""
    look = b.fresh_look()
    labels = mo.distinct_labels(b.rng, n)
    if look is None or labels is None:
        return None
    r = b.uniform(10, 15) if small else b.uniform(12, 24)
    velocities = [mo.velocity(b.rng, lab, mo.band_speed(b.rng)) for lab in labels]
    members = _mid_clip_group(b, r, velocities, "motion", look)
    if members is None:
        return None
    copied = labels[int(b.rng.integers(n))]  # the foil moves like one member
    foil_v = mo.velocity(b.rng, copied, mo.band_speed(b.rng)) if copied != "static" else (0.0, 0.0)
    return members if velocity_foil(b, foil_v) is not None else None


def place_speed(b: Builder) -> tuple[int, ...] | None:
    look = b.fresh_look()
    if look is None:
        return None
    r = b.uniform(12, 24)
    fast, slow = mo.speed_pair(b.rng)
    names = list(mo.DIRECTIONS)
    d1 = str(b.rng.choice(names))
    d2 = d1 if b.rng.random() < 0.5 else str(b.rng.choice(names))
    velocities = [mo.velocity(b.rng, d1, fast), mo.velocity(b.rng, d2, slow)]
    if b.rng.random() < 0.5:
        velocities.reverse()
    members = _mid_clip_group(b, r, velocities, "speed", look)
    if members is None:
        return None
    foil_speed = b.uniform(1.2 * fast, min(4.0, 1.45 * fast)) if b.rng.random() < 0.5 or slow < 0.5 else \
        b.uniform(max(0.3, slow / 1.6), slow / 1.2)
    foil_v = mo.velocity(b.rng, str(b.rng.choice(names)), foil_speed)
    return members if velocity_foil(b, foil_v) is not None else None


def place_temporal(b: Builder) -> tuple[tuple[int, ...], tuple[float, float, float, float]] | None:
    """Two objects of one shape and radius, differing in shade, side by side; returns their shadow core."""
    rng, T = b.rng, b.T
    look_a = b.fresh_look()
    if look_a is None:
        return None
    look_b = b.fresh_look(shapes=(look_a[0],), shades=close_to(look_a[1])) if rng.random() < 0.5 else None
    look_b = look_b or b.fresh_look(shapes=(look_a[0],))
    if look_b is None:
        return None
    r = b.uniform(12, 22)
    v = b.any_velocity(0.3, 0.8, static_share=0.3)
    dist = 2 * r + b.uniform(10, 40)
    ang = b.uniform(0, 2 * math.pi)
    off = (dist * math.cos(ang), dist * math.sin(ang))
    (sxl, sxh), (syl, syh) = span(r, v[0], T, b.W, 6.0), span(r, v[1], T, b.H, 6.0)
    sxl, sxh = sxl - min(0.0, off[0]), sxh - max(0.0, off[0])
    syl, syh = syl - min(0.0, off[1]), syh - max(0.0, off[1])
    if sxl > sxh or syl > syh:
        return None
    sa = (b.uniform(sxl, sxh), b.uniform(syl, syh))
    ia = b.add(look_a, r, sa, v, "temporal")
    ib = b.add(look_b, r, (sa[0] + off[0], sa[1] + off[1]), v, "temporal")
    mid = (T - 1) / 2
    cx, cy = sa[0] + off[0] / 2 + v[0] * mid, sa[1] + off[1] / 2 + v[1] * mid
    ax = abs(off[0]) / 2 + r + 14 + abs(v[0]) * mid
    ay = abs(off[1]) / 2 + r + 14 + abs(v[1]) * mid
    return (ia, ib), (cx, cy, ax, ay)


def place_filler(b: Builder) -> int | None:
    rng, T, W, H = b.rng, b.T, b.W, b.H
    look = (b.close_look() if rng.random() < 0.5 else None) or b.fresh_look()
    if look is None:
        return None
    r = b.uniform(10, 34)
    mode = str(rng.choice(["static", "inside", "cross", "overlap"], p=[0.15, 0.25, 0.2, 0.4])) if b.specs else "inside"
    if mode == "overlap":  # overlaps another object around some frame, mostly behind it
        j = int(rng.integers(len(b.specs)))
        other = b.specs[j]
        t_mid = b.uniform(0, T - 1)
        ox, oy = other["start"][0] + other["velocity"][0] * t_mid, other["start"][1] + other["velocity"][1] * t_mid
        d, a = (r + other["radius"]) * b.uniform(0.45, 0.95), b.uniform(0, 2 * math.pi)
        v = b.any_velocity(0.5, 2.0, static_share=0.3)
        i = b.add(look, r, (ox + d * math.cos(a) - v[0] * t_mid, oy + d * math.sin(a) - v[1] * t_mid), v, "filler")
        if rng.random() < 0.65:
            b.behind.append((i, j))
        return i
    if mode == "cross":  # enters or leaves through the frame edge it moves towards
        v = mo.velocity(rng, str(rng.choice(list(mo.DIRECTIONS))), b.uniform(2.0, 3.5))
        t_edge = int(rng.integers(T // 4, 3 * T // 4))
        horizontal = abs(v[0]) >= abs(v[1])
        if horizontal:
            edge = (W if v[0] > 0 else 0.0, b.uniform(r, H - r))
        else:
            edge = (b.uniform(r, W - r), H if v[1] > 0 else 0.0)
        if rng.random() < 0.5:  # entering: at t_edge it is on the opposite edge
            edge = (W - edge[0], edge[1]) if horizontal else (edge[0], H - edge[1])
        return b.add(look, r, (edge[0] - v[0] * t_edge, edge[1] - v[1] * t_edge), v, "filler")
    v = (0.0, 0.0) if mode == "static" else b.any_velocity(0.5, 3.0, static_share=0.0)
    start = b.start_inside(r, v, margin=-r * 0.3) or (W / 2, H / 2)
    return b.add(look, r, start, v, "filler")
