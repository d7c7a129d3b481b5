"""Random scenes built around motifs, the situations the query types need.

* ``position``: 2-3 identical objects spread along x or y and moving in formation;
* ``relation``: two identical objects, each next to a different, uniquely-looking reference
  object (edge gap 6-18 px, or a slight overlap), both in the direction of one relation word,
  the two pairs placed at random and far apart, so absolute position says nothing and only the
  reference tells the twins apart; half of the references get no sentence of their own
  (``Motif.silent``);
* ``motion``: 2-3 identical objects moving in different directions (1.5-2.6 px/frame), or
  still; their paths may cross;
* ``temporal``: two objects differing only in colour, slow (<= 0.8 px/frame) and side by side,
  under a shadow that fades in or out between two annotated frames (about half of the annotated
  frames dark), hiding both colours there.

Other objects (*fillers*) have looks no other object has; some stand still, some cross a frame
edge, many pass over or (mostly) under another object. Draw order is random otherwise. A draw
that cannot be placed returns None; the caller draws again.
"""

from __future__ import annotations

import math

import numpy as np

from clawcrane.datasets.synth.scene import (
    ALL_LOOKS,
    MOTIONS,
    RADIUS_RANGE,
    RELATIONS,
    Look,
    Motif,
    Obj,
    Scene,
    Shadow,
    motion_label,
)


def _radius(rng: np.random.Generator, size: str) -> float:
    lo, hi = RADIUS_RANGE[size]
    return round(float(rng.uniform(lo, hi)), 2)


def _span(r: float, v: float, T: int, extent: int, margin: float) -> tuple[float, float]:
    """Start-coordinate range keeping a centre within [r + margin, extent - r - margin] all clip long."""
    travel = v * (T - 1)
    return r + margin - min(0.0, travel), extent - r - margin - max(0.0, travel)


def _start_inside(rng, r, v, T, W, H, margin=4.0) -> tuple[float, float] | None:
    (xl, xh), (yl, yh) = _span(r, v[0], T, W, margin), _span(r, v[1], T, H, margin)
    if xl > xh or yl > yh:
        return None
    return (float(rng.uniform(xl, xh)), float(rng.uniform(yl, yh)))


def _velocity(rng, speed_range, direction: str | None = None, jitter_deg: float = 12.0) -> tuple[float, float]:
    """A velocity with speed in ``speed_range``; along ``direction`` (+- jitter) or any direction."""
    speed = float(rng.uniform(*speed_range))
    if speed == 0.0 or direction == "static":
        return (0.0, 0.0)
    base = {"right": 0.0, "down": 90.0, "left": 180.0, "up": 270.0}
    if direction is None:
        angle = float(rng.uniform(0, 360))
    else:
        angle = base[direction] + float(rng.uniform(-jitter_deg, jitter_deg))
    a = math.radians(angle)
    return (round(speed * math.cos(a), 3), round(speed * math.sin(a), 3))


class _Builder:
    """Collects objects while a scene is being sampled."""

    def __init__(self, *, rng: np.random.Generator, W: int, H: int, T: int):
        self.rng, self.W, self.H, self.T = rng, W, H, T
        self.specs: list[dict] = []
        self.used_looks: set[Look] = set()
        self.behind: list[tuple[int, int]] = []
        """(i, j): object i must be drawn before (behind) object j."""

    def add(self, look: Look, radius: float, start, velocity, role: str) -> int:
        self.specs.append(dict(shape=look[0], colour=look[1], size=look[2], radius=radius,
                               start=(round(start[0], 2), round(start[1], 2)), velocity=velocity, role=role))
        self.used_looks.add(look)
        return len(self.specs) - 1

    def fresh_look(self, shape: str | None = None, size: str | None = None) -> Look | None:
        """A look no object has yet (optionally with a given shape/size), reserved; None if none left."""
        free = [lk for lk in ALL_LOOKS if lk not in self.used_looks
                and (shape is None or lk[0] == shape) and (size is None or lk[2] == size)]
        if not free:
            return None
        look = free[int(self.rng.integers(len(free)))]
        self.used_looks.add(look)
        return look


def _place_position(b: _Builder, n: int, axis: str) -> tuple[int, ...] | None:
    rng, T = b.rng, b.T
    look = b.fresh_look()
    if look is None:
        return None
    r = _radius(rng, look[2])
    v = (0.0, 0.0) if rng.random() < 0.25 else _velocity(rng, (0.4, 1.8))
    W, H = b.W, b.H
    extent = W if axis == "x" else H
    gap = max(2 * r + 4, 2 * r * 0.8 + 18)
    ax = 0 if axis == "x" else 1
    lo, hi = _span(r, v[ax], T, extent, 4.0)
    if hi - lo < (n - 1) * gap:
        return None
    for _ in range(50):
        coords = np.sort(rng.uniform(lo, hi, size=n))
        if np.all(np.diff(coords) >= gap):
            break
    else:
        return None
    other = 1 - ax
    olo, ohi = _span(r, v[other], T, H if axis == "x" else W, 4.0)
    if olo > ohi:
        return None
    idx = []
    for c in coords:
        start = [0.0, 0.0]
        start[ax], start[other] = float(c), float(rng.uniform(olo, ohi))
        idx.append(b.add(look, r, start, v, "position"))
    return tuple(idx)


def _offset(rng, rel: str, ra: float, rb: float) -> tuple[float, float]:
    """Reference centre minus target centre for 'target REL reference'.

    Edge gap 6-18 px, or (a third of the time) a slight overlap: one occludes the other.
    """
    gap = float(rng.uniform(-0.35 * min(ra, rb), 0.0)) if rng.random() < 0.35 else float(rng.uniform(6, 18))
    dist = ra + rb + gap
    side = float(rng.uniform(-0.25, 0.25)) * (ra + rb)
    if rel == "above":  # target above reference: reference below
        return (side, dist)
    if rel == "below":
        return (side, -dist)
    if rel == "left of":
        return (dist, side)
    if rel == "right of":
        return (-dist, side)
    a = float(rng.uniform(0, 2 * math.pi))  # next to: any direction
    return (dist * math.cos(a), dist * math.sin(a))


def _place_relation(b: _Builder) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]] | None:
    rng, T, W, H = b.rng, b.T, b.W, b.H
    look, ref_looks = b.fresh_look(), [b.fresh_look(), b.fresh_look()]
    if look is None or None in ref_looks:
        return None
    r = _radius(rng, look[2])
    # one relation word for both: the twins then sit alike relative to their references, so where
    # the target is (e.g. low in the frame, leaving room above for its reference) says nothing
    rels = (str(rng.choice(RELATIONS)),) * 2
    pairs = []
    for ref_look, rel in zip(ref_looks, rels):
        rr = _radius(rng, ref_look[2])
        off = _offset(rng, rel, r, rr)
        v = (0.0, 0.0) if rng.random() < 0.3 else _velocity(rng, (0.3, 1.0))
        # the pair's bounding extent around the target centre
        x_lo, x_hi = min(-r, off[0] - rr), max(r, off[0] + rr)
        y_lo, y_hi = min(-r, off[1] - rr), max(r, off[1] + rr)
        (sxl, sxh) = _span(0.0, v[0], T, W, 4.0)
        (syl, syh) = _span(0.0, v[1], T, H, 4.0)
        sxl, sxh, syl, syh = sxl - x_lo, sxh - x_hi, syl - y_lo, syh - y_hi
        if sxl > sxh or syl > syh:
            return None
        start = (float(rng.uniform(sxl, sxh)), float(rng.uniform(syl, syh)))
        pairs.append((start, off, v, ref_look, rr))
    (sa, oa, va, _, rra), (sb, ob, vb, _, rrb) = pairs
    # each target must stay far from the other pair's reference (checked again per frame later)
    for t in (0, T - 1):
        a = np.add(sa, np.multiply(va, t))
        bb = np.add(sb, np.multiply(vb, t))
        if np.hypot(*(a - (bb + ob))) < r + rrb + 60 or np.hypot(*(bb - (a + oa))) < r + rra + 60:
            return None
        if np.hypot(*(a - bb)) < 2 * r + 20:
            return None
    members, refs = [], []
    for start, off, v, ref_look, rr in pairs:
        members.append(b.add(look, r, start, v, "relation"))
        refs.append(b.add(ref_look, rr, (start[0] + off[0], start[1] + off[1]), v, "reference"))
    return tuple(members), tuple(refs), rels


def _place_motion(b: _Builder, n: int) -> tuple[int, ...] | None:
    rng, T, W, H = b.rng, b.T, b.W, b.H
    look = b.fresh_look()
    if look is None:
        return None
    r = _radius(rng, look[2])
    labels = [str(x) for x in rng.choice(MOTIONS, size=n, replace=False)]
    placed: list[tuple[tuple[float, float], tuple[float, float]]] = []
    for lab in labels:
        v = _velocity(rng, (1.5, 2.6), lab)
        for _ in range(30):
            s = _start_inside(rng, r, v, T, W, H)
            if s is None:
                return None
            if all(min(np.hypot(*(np.add(s, np.multiply(v, t)) - np.add(s2, np.multiply(v2, t)))) for t in range(0, T, 3))
                   >= 1.3 * r for s2, v2 in placed):  # paths may cross: brief occlusions
                placed.append((s, v))
                break
        else:
            return None
    return tuple(b.add(look, r, s, v, "motion") for s, v in placed)


def _place_temporal(b: _Builder) -> tuple[tuple[int, ...], tuple[float, float, float, float]] | None:
    """Two same-shape, same-size objects of different colours side by side; returns their shadow core."""
    rng, T, W, H = b.rng, b.T, b.W, b.H
    look_a = b.fresh_look()
    look_b = None if look_a is None else b.fresh_look(shape=look_a[0], size=look_a[2])
    if look_b is None:
        return None
    r = _radius(rng, look_a[2])
    v = (0.0, 0.0) if rng.random() < 0.3 else _velocity(rng, (0.3, 0.8))
    dist = 2 * r + float(rng.uniform(10, 40))
    ang = float(rng.uniform(0, 2 * math.pi))
    off = (dist * math.cos(ang), dist * math.sin(ang))
    (sxl, sxh), (syl, syh) = _span(r, v[0], T, W, 6.0), _span(r, v[1], T, H, 6.0)
    sxl, sxh = sxl - min(0.0, off[0]), sxh - max(0.0, off[0])
    syl, syh = syl - min(0.0, off[1]), syh - max(0.0, off[1])
    if sxl > sxh or syl > syh:
        return None
    sa = (float(rng.uniform(sxl, sxh)), float(rng.uniform(syl, syh)))
    sb = (sa[0] + off[0], sa[1] + off[1])
    ia = b.add(look_a, r, sa, v, "temporal")
    ib = b.add(look_b, r, sb, v, "temporal")
    mid = (T - 1) / 2
    cx, cy = sa[0] + off[0] / 2 + v[0] * mid, sa[1] + off[1] / 2 + v[1] * mid
    ax = abs(off[0]) / 2 + r + 14 + abs(v[0]) * mid
    ay = abs(off[1]) / 2 + r + 14 + abs(v[1]) * mid
    return (ia, ib), (cx, cy, ax, ay)


def _place_filler(b: _Builder) -> int | None:
    rng, T, W, H = b.rng, b.T, b.W, b.H
    look = b.fresh_look()
    if look is None:
        return None
    r = _radius(rng, look[2])
    mode = rng.choice(["static", "inside", "cross", "overlap"], p=[0.15, 0.2, 0.2, 0.45]) if b.specs else "inside"
    if mode == "overlap":  # overlaps another object around some frame; mostly behind it
        j = int(rng.integers(len(b.specs)))
        other = b.specs[j]
        t_mid = float(rng.uniform(0, T - 1))
        ox, oy = other["start"][0] + other["velocity"][0] * t_mid, other["start"][1] + other["velocity"][1] * t_mid
        d, a = (r + other["radius"]) * float(rng.uniform(0.45, 0.95)), float(rng.uniform(0, 2 * math.pi))
        v = (0.0, 0.0) if rng.random() < 0.3 else _velocity(rng, (0.5, 2.0))
        start = (ox + d * math.cos(a) - v[0] * t_mid, oy + d * math.sin(a) - v[1] * t_mid)
        i = b.add(look, r, start, v, "filler")
        if rng.random() < 0.65:
            b.behind.append((i, j))
        return i
    elif mode == "cross":  # enters or leaves through a frame edge
        v = _velocity(rng, (2.0, 3.5))
        t_edge = int(rng.integers(T // 4, 3 * T // 4))
        # choose where it is at t_edge: on the frame edge it crosses
        side = motion_label(v, cone_deg=45.0) or "right"
        pos = {"right": (W, rng.uniform(r, H - r)), "left": (0.0, rng.uniform(r, H - r)),
               "down": (rng.uniform(r, W - r), H), "up": (rng.uniform(r, W - r), 0.0)}[side]
        entering = rng.random() < 0.5
        if entering:  # moving into the frame: it is at the opposite edge at t_edge
            pos = {"right": (0.0, pos[1]), "left": (W, pos[1]), "down": (pos[0], 0.0), "up": (pos[0], H)}[side]
        start = (float(pos[0] - v[0] * t_edge), float(pos[1] - v[1] * t_edge))
    else:
        v = (0.0, 0.0) if mode == "static" else _velocity(rng, (0.5, 3.0))
        start = _start_inside(rng, r, v, T, W, H, margin=-r * 0.3) or (W / 2, H / 2)
    return b.add(look, r, start, v, "filler")


def _annotated_frames(rng: np.random.Generator, T: int, k: int) -> tuple[int, ...]:
    base = np.linspace(1, T - 2, k)
    frames = sorted({int(np.clip(round(f + rng.uniform(-1, 1)), 0, T - 1)) for f in base})
    return tuple(frames)


def sample_scene(*, rng: np.random.Generator, video_id: str, split: str, motifs: tuple[tuple[str, int], ...],
                 fillers: int, width: int, height: int, num_frames: int, fps: float) -> Scene | None:
    """One random scene realising ``motifs`` ((kind, count) pairs) plus ``fillers`` other objects.

    Returns None when this draw cannot be placed (the caller draws again with the same rng).
    """
    W, H, T = width, height, num_frames
    b = _Builder(rng=rng, W=W, H=H, T=T)
    planned: list[Motif] = []
    core = None
    for kind, n in motifs:
        if kind == "position":
            axis = "x" if rng.random() < 0.65 else "y"
            got = _place_position(b, n, axis)
            if got is None:
                return None
            planned.append(Motif(kind="position", members=got, words=(axis,)))
        elif kind == "relation":
            got = _place_relation(b)
            if got is None:
                return None
            silent = tuple(j for j in got[1] if rng.random() < 0.5)
            planned.append(Motif(kind="relation", members=got[0], refs=got[1], words=got[2], silent=silent))
        elif kind == "motion":
            got = _place_motion(b, n)
            if got is None:
                return None
            planned.append(Motif(kind="motion", members=got))
        elif kind == "temporal":
            got = _place_temporal(b)
            if got is None:
                return None
            planned.append(Motif(kind="temporal", members=got[0]))
            core = got[1]
        else:
            raise ValueError(f"unknown motif {kind!r}")
    for _ in range(fillers):
        if _place_filler(b) is None:
            return None
    k = int(rng.integers(3, 6))
    annotated = _annotated_frames(rng, T, k)
    shadow = None
    if core is not None:
        shadow = _shadow(rng, core, annotated)
        if shadow is None:
            return None
    depth = rng.permutation(len(b.specs))
    for i, j in b.behind:
        if depth[i] > depth[j]:
            depth[i], depth[j] = depth[j], depth[i]
    objects = tuple(
        Obj(index=i, depth=int(depth[i]), **spec) for i, spec in enumerate(b.specs)
    )
    return Scene(video_id=video_id, split=split, width=W, height=H, num_frames=T, fps=fps, objects=objects,
                 annotated=annotated, motifs=tuple(planned), shadow=shadow,
                 texture_seed=int(rng.integers(0, 2**31 - 1)))


def _shadow(rng: np.random.Generator, core, annotated: tuple[int, ...]) -> Shadow | None:
    """Shadow fading between two consecutive annotated frames, about half of them in the dark."""
    k = len(annotated)
    fade = "in" if rng.random() < 0.5 else "out"
    m = k // 2 if rng.random() < 0.5 else (k + 1) // 2  # annotated frames before the change
    m = min(max(m, 1), k - 1)
    t0, t1 = annotated[m - 1], annotated[m]
    if t1 - t0 < 4:  # too abrupt to be gradual
        return None
    cx, cy, ax, ay = core
    return Shadow(cx=round(cx, 2), cy=round(cy, 2), ax=round(ax, 2), ay=round(ay, 2), soft=26.0,
                  t0=t0, t1=t1, fade=fade)
