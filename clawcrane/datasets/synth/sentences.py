"""Referring sentences for a scene, each kept only when it singles its target out.

Every check runs on the annotated frames where the target is annotated (``Geometry.listed``);
all annotated objects of such a frame are potential distractors. An object whose colour is
hidden by the shadow matches any colour (it could be anything). Sentence forms (lower case):

* appearance: ``the [small|large] [colour] <shape>``: the shortest description (shape always
  named, then colour, then size, then both) matching only the target in every frame.
* position:   ``the leftmost X`` / ``the rightmost X`` / ``the X at the top`` / ``the X at the bottom``
  / ``the second X from the left|right|top|bottom``: X matches the target and >= 1 identical
  distractor in every frame; the target's rank along the axis (visible-box centres, gaps of at
  least ``POS_MARGIN`` px to its neighbours) is the same in every frame.
* relation:   ``the X next to|above|below|left of|right of the Y``: X matches >= 2 objects,
  Y exactly one (the reference); the target holds the relation to Y (edge gap <= ``NEAR_GAP``,
  direction within ~31 degrees), every other X is farther than ``FAR_GAP`` from Y.
* motion:     ``the X moving left|right|up|down`` / ``the static X``: X matches >= 2 objects and
  only the target moves that way (the direction is visible through its trail).
* temporal:   ``the X`` with X naming the colour: unique in the frames where the target is lit,
  while in >= 1 annotated frame the shadow hides its colour and an identical-looking object sits
  in the shadow too; only other frames (a tracker) resolve it.

``FLIP_WORDS`` lists the words a horizontal flip swaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from clawcrane.datasets.synth.geometry import Geometry
from clawcrane.datasets.synth.scene import Obj, Scene, motion_label

QUERY_TYPES = ("appearance", "position", "relation", "motion", "temporal")
VOCABULARY = (
    "the", "small", "large", "red", "green", "blue", "yellow", "purple", "circle", "square", "triangle",
    "diamond", "leftmost", "rightmost", "at", "top", "bottom", "second", "from", "left", "right", "next",
    "to", "above", "below", "of", "moving", "up", "down", "static",
)
FLIP_WORDS = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}
"""Word swaps that keep a sentence true when the frames are mirrored left-right."""

ATTR_SETS = (("shape",), ("colour", "shape"), ("size", "shape"), ("size", "colour", "shape"))
"""Descriptions tried in order; the first that works is the minimal one."""
LIT = 0.2
"""Colour is visible below this shadow strength (targets need it); above it, it counts as hidden."""
LIT_TEMPORAL = 0.12
DARK = 0.88
"""Temporal queries: a frame is lit below LIT_TEMPORAL, dark above DARK, never in between."""
MIN_TARGET_FRAC = 0.55
"""A target shows at least this share of its shape in every frame it is annotated in."""
MIN_FRAMES = 2
POS_MARGIN = 16.0
NEAR_GAP = 24.0
FAR_GAP = 44.0
DIR_RATIO = 0.6
MOTION_MIN_SPEED = 1.2


@dataclass(frozen=True, kw_only=True)
class QuerySpec:
    target: int
    """Object index (instance id - 1)."""
    query_type: str
    sentence: str
    reason: str
    """Why the sentence is unique, in words (stored in synth_scenes.json)."""
    frames: tuple[int, ...]
    """Annotated frames where the target is annotated (the query's samples)."""
    detail: dict = field(default_factory=dict)


def phrase(obj: Obj, attrs: tuple[str, ...]) -> str:
    return " ".join(getattr(obj, a) for a in ("size", "colour", "shape") if a in attrs)


def relation_holds(rel: str, target_c, ref_c, r_target: float, r_ref: float, *, near: float = NEAR_GAP,
                   ratio: float = DIR_RATIO) -> bool:
    """'target REL reference' from centres and radii; y grows downwards."""
    dx, dy = ref_c[0] - target_c[0], ref_c[1] - target_c[1]
    if math.hypot(dx, dy) - r_target - r_ref > near:
        return False
    if rel == "next to":
        return True
    if rel == "above":
        return dy > 0 and abs(dx) <= ratio * dy
    if rel == "below":
        return dy < 0 and abs(dx) <= ratio * -dy
    if rel == "left of":
        return dx > 0 and abs(dy) <= ratio * dx
    if rel == "right of":
        return dx < 0 and abs(dy) <= ratio * -dx
    raise ValueError(f"unknown relation {rel!r}")


class SceneChecker:
    """Uniqueness checks of descriptions against a scene's geometry."""

    def __init__(self, scene: Scene, geo: Geometry):
        self.scene, self.geo = scene, geo
        self.objs = scene.objects
        self.listed = geo.listed
        self.frac = geo.visible_frac

    def frames_of(self, i: int) -> tuple[int, ...]:
        return tuple(t for t in self.scene.annotated if self.listed[t, i])

    def matches(self, j: int, attrs, look_of: Obj, t: int, *, lit: float = LIT) -> bool:
        o = self.objs[j]
        for a in attrs:
            if a == "colour" and self.geo.shadow[t, j] >= lit:
                continue  # colour hidden: could be any
            if getattr(o, a) != getattr(look_of, a):
                return False
        return True

    def matching(self, attrs, look_of: Obj, t: int) -> list[int]:
        return [j for j in np.flatnonzero(self.listed[t]) if self.matches(int(j), attrs, look_of, t)]

    def clear(self, i: int, frames) -> bool:
        """The target is well visible and lit in every frame."""
        return all(self.frac[t, i] >= MIN_TARGET_FRAC and self.geo.shadow[t, i] < LIT for t in frames)

    def unique_attrs(self, i: int, frames) -> tuple[str, ...] | None:
        """Shortest description matching only object i in every frame."""
        for attrs in ATTR_SETS:
            if all(self.matching(attrs, self.objs[i], t) == [i] for t in frames):
                return attrs
        return None

    def group_attrs(self, group: tuple[int, ...]) -> tuple[str, ...]:
        """Shortest description whose matches among all objects are exactly ``group`` (true looks)."""
        for attrs in ATTR_SETS:
            hit = {o.index for o in self.objs if all(getattr(o, a) == getattr(self.objs[group[0]], a) for a in attrs)}
            if hit == set(group):
                return attrs
        return ATTR_SETS[-1]

    # ---- one check per query type -----------------------------------------------------------

    def appearance(self, i: int) -> QuerySpec | None:
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES or not self.clear(i, frames):
            return None
        attrs = self.unique_attrs(i, frames)
        if attrs is None:
            return None
        desc = phrase(self.objs[i], attrs)
        return QuerySpec(target=i, query_type="appearance", sentence=f"the {desc}",
                         reason=f"the only {desc} in frames {list(frames)}", frames=frames, detail={"attrs": list(attrs)})

    def position(self, i: int, group: tuple[int, ...], axis: str) -> QuerySpec | None:
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES or not self.clear(i, frames):
            return None
        attrs = self.group_attrs(group)
        centres = self.geo.box_centres()
        valid: dict[tuple[str, int], int] = {}
        for ax_name, ax, ends in (("x", 0, ("left", "right")), ("y", 1, ("top", "bottom"))):
            ranks = []
            for t in frames:
                m = self.matching(attrs, self.objs[i], t)
                if len(m) < 2:
                    return None
                order = sorted(m, key=lambda j: centres[t, j, ax])
                k = order.index(i)
                coords = [centres[t, j, ax] for j in order]
                gaps = [coords[k] - coords[k - 1]] if k > 0 else []
                gaps += [coords[k + 1] - coords[k]] if k < len(order) - 1 else []
                ranks.append((k, len(order) - 1 - k) if min(gaps) >= POS_MARGIN else None)
            for side in (0, 1):
                vals = {r[side] if r is not None else None for r in ranks}
                if len(vals) == 1 and None not in vals and vals.pop() <= 1:
                    valid[(ends[side], ranks[0][side])] = 0 if ax_name == axis else 1
        if not valid:
            return None
        # prefer the extremes ('leftmost'), then the planned axis
        (end, rank), _ = min(valid.items(), key=lambda kv: (kv[0][1], kv[1], kv[0][0]))
        desc = phrase(self.objs[i], attrs)
        if rank == 0:
            sentence = {"left": f"the leftmost {desc}", "right": f"the rightmost {desc}",
                        "top": f"the {desc} at the top", "bottom": f"the {desc} at the bottom"}[end]
        else:
            sentence = f"the second {desc} from the {end}"
        reason = (f"{rank + 1}{'st' if rank == 0 else 'nd'} {desc} from the {end} (of >= 2) in frames "
                  f"{list(frames)}, >= {POS_MARGIN:.0f} px from its neighbours")
        return QuerySpec(target=i, query_type="position", sentence=sentence, reason=reason, frames=frames,
                         detail={"attrs": list(attrs), "end": end, "rank": rank})

    def relation(self, i: int, ref: int, rel: str) -> QuerySpec | None:
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES or not self.clear(i, frames):
            return None
        if any(not self.listed[t, ref] for t in frames) or not self.clear(ref, frames):
            return None
        ref_attrs = self.unique_attrs(ref, frames)
        if ref_attrs is None:
            return None
        attrs = self.group_attrs(tuple(o.index for o in self.objs if o.look == self.objs[i].look))
        c = self.geo.centres
        ri, rr = self.objs[i].radius, self.objs[ref].radius
        for t in frames:
            m = self.matching(attrs, self.objs[i], t)
            if len(m) < 2 or not relation_holds(rel, c[t, i], c[t, ref], ri, rr):
                return None
            for j in m:
                if j != i and math.hypot(*(c[t, j] - c[t, ref])) - self.objs[j].radius - rr <= FAR_GAP:
                    return None
        desc, ref_desc = phrase(self.objs[i], attrs), phrase(self.objs[ref], ref_attrs)
        reason = (f"the only {desc} {rel} the {ref_desc} (the only {ref_desc}) in frames {list(frames)}; "
                  f"every other {desc} is > {FAR_GAP:.0f} px from it")
        return QuerySpec(target=i, query_type="relation", sentence=f"the {desc} {rel} the {ref_desc}", reason=reason,
                         frames=frames, detail={"attrs": list(attrs), "relation": rel, "reference": ref + 1,
                                                "ref_attrs": list(ref_attrs)})

    def motion(self, i: int) -> QuerySpec | None:
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES or not self.clear(i, frames):
            return None
        o = self.objs[i]
        label = motion_label(o.velocity, min_speed=MOTION_MIN_SPEED, cone_deg=25.0)
        if label is None:
            return None
        attrs = self.group_attrs(tuple(p.index for p in self.objs if p.look == o.look))
        speed = math.hypot(*o.velocity)
        for t in frames:
            m = self.matching(attrs, o, t)
            if len(m) < 2:
                return None
            for j in m:
                if j == i:
                    continue
                v = self.objs[j].velocity
                if label == "static":
                    if math.hypot(*v) < MOTION_MIN_SPEED:
                        return None
                elif (v[0] * o.velocity[0] + v[1] * o.velocity[1]) / speed > 0.6:
                    return None  # the distractor also moves that way
        desc = phrase(o, attrs)
        sentence = f"the static {desc}" if label == "static" else f"the {desc} moving {label}"
        how = "standing still" if label == "static" else f"moving {label}"
        return QuerySpec(target=i, query_type="motion", sentence=sentence,
                         reason=f"the only {desc} {how} among >= 2 in frames {list(frames)}", frames=frames,
                         detail={"attrs": list(attrs), "motion": label})

    def temporal(self, i: int) -> QuerySpec | None:
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES or any(self.frac[t, i] < MIN_TARGET_FRAC for t in frames):
            return None
        s = self.geo.shadow
        lit = tuple(t for t in frames if s[t, i] < LIT_TEMPORAL)
        dark = tuple(t for t in frames if s[t, i] > DARK)
        if not lit or not dark or len(lit) + len(dark) != len(frames):
            return None
        attrs = self.unique_attrs(i, lit)
        if attrs is None or "colour" not in attrs:
            return None
        o = self.objs[i]
        twins = {}
        for t in dark:  # in the dark an identical-looking object sits in the shadow too
            same = [j for j in np.flatnonzero(self.listed[t]) if j != i and s[t, j] > DARK
                    and self.frac[t, j] >= MIN_TARGET_FRAC and self.objs[j].shape == o.shape
                    and self.objs[j].size == o.size and motion_label(self.objs[j].velocity) == motion_label(o.velocity)]
            if not same:
                return None
            twins[t] = [int(j) + 1 for j in same]
        desc = phrase(o, attrs)
        reason = (f"the only {desc} in lit frames {list(lit)}; in shadow at frames {list(dark)} it looks like "
                  f"instance(s) {sorted({j for v in twins.values() for j in v})}")
        return QuerySpec(target=i, query_type="temporal", sentence=f"the {desc}", reason=reason, frames=frames,
                         detail={"attrs": list(attrs), "lit": list(lit), "dark": list(dark)})


def scene_queries(scene: Scene, geo: Geometry) -> tuple[list[QuerySpec], list[str]]:
    """At most one query per object: the motif's query for motif members, else appearance.

    Returns the queries (by target index) and the planned motif queries that failed their check.
    """
    chk = SceneChecker(scene, geo)
    out: dict[int, QuerySpec] = {}
    failed: list[str] = []
    for motif in scene.motifs:
        for k, i in enumerate(motif.members):
            if motif.kind == "position":
                q = chk.position(i, motif.members, motif.words[0])
            elif motif.kind == "relation":
                q = chk.relation(i, motif.refs[k], motif.words[k])
            elif motif.kind == "motion":
                q = chk.motion(i)
            else:
                q = chk.temporal(i)
            if q is None:
                failed.append(f"{motif.kind}:{i + 1}")
            else:
                out[i] = q
    silent = {j for m in scene.motifs for j in m.silent}
    for o in scene.objects:
        if o.index not in out and o.index not in silent and o.role in ("filler", "reference"):
            q = chk.appearance(o.index)
            if q is not None:
                out[o.index] = q
    return [out[i] for i in sorted(out)], failed
