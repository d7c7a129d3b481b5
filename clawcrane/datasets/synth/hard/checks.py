"""The generator's uniqueness checks for the hard world: which meanings single a target out.

Every check runs on the annotated frames where the target is annotated (``Geometry.listed``);
every annotated object of such a frame is a potential distractor, and an object whose shade the
shadow hides (strength >= ``LIT``) matches any shade. Outside temporal queries the target shows
at least ``MIN_TARGET_FRAC`` of itself and is lit in each of these frames, and there are at least
``MIN_FRAMES`` of them (an occluded target simply has fewer).

* appearance: the shortest noun phrase (shape; then shade and shape) matching only the target.
  No size words: sizes are continuous in the hard world, and size is a query type of its own.
* position: the group's noun phrase matches >= 2 objects in every frame; the target's rank along
  an axis (visible-box centres, >= ``POS_MARGIN`` px from its neighbours) is the same in every
  frame; 'second' needs >= 3 matches, 'third' >= 4, 'middle' (always along x) exactly 3 forming
  a row (``ROW_RATIO``). Every valid (axis, end, rank) is a candidate meaning.
* size: every frame shows exactly the group's objects under the noun phrase, each with at least
  ``SIZE_VISIBLE`` of itself; the target's radius is >= ``SIZE_RATIO`` times every other's
  (largest) or <= 1 / ``SIZE_RATIO`` times (smallest).
* relation: the reference's noun phrase matches only the reference; the target holds the
  relation to it (edge gap <= ``NEAR_GAP``, direction within ~31 degrees); every other match of
  the target's noun phrase is more than ``FAR_GAP`` from the reference.
* motion: the target's velocity has a clear label (``motion.direction_label``); every other match
  is static or moves >= 90 degrees away from it (target moving), or clearly moves (target static).
* speed (type motion): exactly the pair matches in every frame, both move, and their speeds
  differ by a factor >= ``motion.SPEED_RATIO``.
* temporal: the noun phrase (with the shade) is unique in the frames where the target is lit
  (shadow < ``LIT_TEMPORAL``); in >= 1 annotated frame it is dark (> ``DARK``) and a look-alike of
  the same shape, radius and motion is dark too; no frame in between.
"""

from __future__ import annotations

import math

import numpy as np

from clawcrane.datasets.synth.geometry import Geometry
from clawcrane.datasets.synth.hard import motion as mo
from clawcrane.datasets.synth.hard.meaning import Meaning, NounPhrase
from clawcrane.datasets.synth.scene import Scene
from clawcrane.datasets.synth.sentences import (  # the same visibility and geometry margins as the original world
    DARK,
    FAR_GAP,
    LIT,
    LIT_TEMPORAL,
    MIN_FRAMES,
    MIN_TARGET_FRAC,
    NEAR_GAP,
    POS_MARGIN,
    relation_holds,
)

SIZE_RATIO = 1.35
SIZE_VISIBLE = 0.8
"""Size: radius ratio to every other look-alike, and the share of itself each must show."""
ROW_RATIO = 2.0
"""'the middle X': the three matches spread along x at least this many times as far as along y."""


class HardChecker:
    """Uniqueness checks of meanings against a hard scene's geometry."""

    def __init__(self, scene: Scene, geo: Geometry):
        self.scene, self.geo, self.objs = scene, geo, scene.objects
        self.listed = geo.listed  # (T, n) frames, objects
        self.frac = geo.visible_frac  # (T, n)
        self.box_centres = geo.box_centres()  # (T, n, 2) x, y

    def frames_of(self, i: int) -> tuple[int, ...]:
        return tuple(t for t in self.scene.annotated if self.listed[t, i])

    def usable(self, i: int) -> tuple[int, ...] | None:
        """The target's frames when it is well visible and lit in each and has enough of them."""
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES:
            return None
        if any(self.frac[t, i] < MIN_TARGET_FRAC or self.geo.shadow[t, i] >= LIT for t in frames):
            return None
        return frames

    def matches(self, j: int, np_: NounPhrase, t: int) -> bool:
        o = self.objs[j]
        if o.shape != np_.shape:
            return False
        return np_.colour is None or o.colour == np_.colour or self.geo.shadow[t, j] >= LIT

    def matching(self, np_: NounPhrase, t: int) -> list[int]:
        return [int(j) for j in np.flatnonzero(self.listed[t]) if self.matches(int(j), np_, t)]

    def unique_np(self, i: int, frames) -> NounPhrase | None:
        o = self.objs[i]
        for np_ in (NounPhrase(shape=o.shape), NounPhrase(shape=o.shape, colour=o.colour)):
            if all(self.matching(np_, t) == [i] for t in frames):
                return np_
        return None

    def group_np(self, i: int) -> NounPhrase:
        """Shape alone when no other object has it, else shade and shape (true looks, every object)."""
        o = self.objs[i]
        look_alikes = {p.index for p in self.objs if p.shape == o.shape and p.colour == o.colour}
        same_shape = {p.index for p in self.objs if p.shape == o.shape}
        return NounPhrase(shape=o.shape) if same_shape == look_alikes else NounPhrase(shape=o.shape, colour=o.colour)

    # ---- one check per query type -----------------------------------------------------------

    def appearance(self, i: int) -> list[Meaning]:
        frames = self.usable(i)
        np_ = None if frames is None else self.unique_np(i, frames)
        return [] if np_ is None else [Meaning(query_type="appearance", target=np_)]

    def position(self, i: int) -> list[Meaning]:
        frames = self.usable(i)
        if frames is None:
            return []
        np_ = self.group_np(i)
        out = []
        for axis, ax, ends in (("x", 0, ("left", "right")), ("y", 1, ("top", "bottom"))):
            ranks = []
            for t in frames:
                m = self.matching(np_, t)
                if len(m) < 2:
                    return []
                order = sorted(m, key=lambda j: self.box_centres[t, j, ax])
                c = [self.box_centres[t, j, ax] for j in order]
                k = order.index(i)
                gaps = ([c[k] - c[k - 1]] if k > 0 else []) + ([c[k + 1] - c[k]] if k < len(c) - 1 else [])
                ranks.append((k, len(c) - 1 - k, len(c)) if min(gaps) >= POS_MARGIN else None)
            if None in ranks:
                continue
            fewest = min(r[2] for r in ranks)
            for side in (0, 1):
                vals = {r[side] for r in ranks}
                rank = vals.pop() if len(vals) == 1 else None
                if rank is not None and (rank == 0 or (rank <= 2 and fewest >= rank + 2)):
                    out.append(Meaning(query_type="position", target=np_, axis=axis, end=ends[side], rank=rank))
            if axis == "x" and all(r == (1, 1, 3) for r in ranks) and self._row(np_, frames):
                out.append(Meaning(query_type="position", target=np_, axis=axis, end="middle", rank=1))
        return out

    def _row(self, np_: NounPhrase, frames) -> bool:
        """The matches form a row in every frame: spread along x at least ``ROW_RATIO`` times along y."""
        for t in frames:
            c = self.box_centres[t, self.matching(np_, t)]
            if np.ptp(c[:, 0]) < ROW_RATIO * np.ptp(c[:, 1]):
                return False
        return True

    def size(self, i: int, group: tuple[int, ...]) -> list[Meaning]:
        frames = self.usable(i)
        if frames is None or len(group) not in (2, 3):
            return []
        np_ = self.group_np(i)
        for t in frames:
            if sorted(self.matching(np_, t)) != sorted(group) or any(self.frac[t, j] < SIZE_VISIBLE for j in group):
                return []
        r = self.objs[i].radius
        others = [self.objs[j].radius for j in group if j != i]
        if r >= SIZE_RATIO * max(others):
            extreme = "largest"
        elif r * SIZE_RATIO <= min(others):
            extreme = "smallest"
        else:
            return []
        return [Meaning(query_type="size", target=np_, extreme=extreme, group=len(group))]

    def relation(self, i: int, ref: int, rel: str) -> list[Meaning]:
        frames = self.usable(i)
        if frames is None or any(not self.listed[t, ref] for t in frames):
            return []
        if any(self.frac[t, ref] < MIN_TARGET_FRAC or self.geo.shadow[t, ref] >= LIT for t in frames):
            return []
        ref_np = self.unique_np(ref, frames)
        if ref_np is None:
            return []
        np_ = self.group_np(i)
        c = self.geo.centres
        ri, rr = self.objs[i].radius, self.objs[ref].radius
        for t in frames:
            m = self.matching(np_, t)
            if len(m) < 2 or not relation_holds(rel, c[t, i], c[t, ref], ri, rr, near=NEAR_GAP):
                return []
            if any(j not in (i, ref) and math.hypot(*(c[t, j] - c[t, ref])) - self.objs[j].radius - rr <= FAR_GAP
                   for j in m):
                return []
        return [Meaning(query_type="relation", target=np_, relation=rel, reference=ref_np)]

    def motion(self, i: int) -> list[Meaning]:
        frames = self.usable(i)
        o = self.objs[i]
        label = mo.direction_label(o.velocity)
        if frames is None or label is None:
            return []
        np_ = self.group_np(i)
        for t in frames:
            m = self.matching(np_, t)
            if len(m) < 2:
                return []
            for j in m:
                v = self.objs[j].velocity
                if j == i:
                    continue
                if label == "static":
                    if mo.speed_of(v) < mo.MIN_MOVING:
                        return []
                elif mo.speed_of(v) != 0.0 and (mo.speed_of(v) < mo.MIN_MOVING
                                                 or mo.angle_gap(mo.angle_of(v), mo.DIRECTIONS[label]) < mo.MIN_APART):
                    return []
        return [Meaning(query_type="motion", target=np_, motion=label)]

    def speed(self, i: int, group: tuple[int, ...]) -> list[Meaning]:
        frames = self.usable(i)
        if frames is None or len(group) != 2:
            return []
        np_ = self.group_np(i)
        if any(sorted(self.matching(np_, t)) != sorted(group) for t in frames):
            return []
        s_i, s_j = (mo.speed_of(self.objs[j].velocity) for j in (i, next(j for j in group if j != i)))
        if min(s_i, s_j) < mo.MIN_MOVING:
            return []
        if s_i >= mo.SPEED_RATIO * s_j:
            return [Meaning(query_type="motion", target=np_, speed="faster", group=2)]
        if s_j >= mo.SPEED_RATIO * s_i:
            return [Meaning(query_type="motion", target=np_, speed="slower", group=2)]
        return []

    def temporal(self, i: int) -> list[Meaning]:
        frames = self.frames_of(i)
        if len(frames) < MIN_FRAMES or any(self.frac[t, i] < MIN_TARGET_FRAC for t in frames):
            return []
        s = self.geo.shadow
        lit = tuple(t for t in frames if s[t, i] < LIT_TEMPORAL)
        dark = tuple(t for t in frames if s[t, i] > DARK)
        if not lit or not dark or len(lit) + len(dark) != len(frames):
            return []
        np_ = self.unique_np(i, lit)
        if np_ is None or np_.colour is None:
            return []
        o = self.objs[i]
        for t in dark:  # in the dark a look-alike of the same shape, radius and motion sits in the shadow too
            if not any(j != i and s[t, j] > DARK and self.frac[t, j] >= MIN_TARGET_FRAC
                       and self.objs[j].shape == o.shape and abs(self.objs[j].radius - o.radius) <= 0.1 * o.radius
                       and self.objs[j].velocity == o.velocity for j in np.flatnonzero(self.listed[t])):
                return []
        return [Meaning(query_type="temporal", target=np_)]


def scene_meanings(scene: Scene, geo: Geometry) -> tuple[dict[int, list[Meaning]], list[str]]:
    """Candidate meanings per target (at most one target per object), and the motif queries that failed.

    Motif members get their motif's meanings (position: every valid one on the planned axis, else
    on the other); fillers, foils, references, occluders and the occluded object of an occlusion
    motif get an appearance meaning when one works;
    ``Motif.silent`` objects and the middle of a size trio get none.
    """
    chk = HardChecker(scene, geo)
    out: dict[int, list[Meaning]] = {}
    failed: list[str] = []
    for motif in scene.motifs:
        targets = motif.members
        if motif.kind == "size" and len(targets) == 3:
            by_r = sorted(targets, key=lambda j: scene.objects[j].radius)
            targets = (by_r[0], by_r[2])
        for k, i in enumerate(targets):
            if motif.kind == "position":
                got = chk.position(i)
                planned = [m for m in got if m.axis == motif.words[0]]
                got = planned or got
            elif motif.kind == "size":
                got = chk.size(i, motif.members)
            elif motif.kind == "relation":
                got = chk.relation(i, motif.refs[k], motif.words[k])
            elif motif.kind == "motion":
                got = chk.motion(i)
            elif motif.kind == "speed":
                got = chk.speed(i, motif.members)
            elif motif.kind == "temporal":
                got = chk.temporal(i)
            else:  # occlusion: the occluded object is referred to by its look
                got = chk.appearance(i)
            if got:
                out[i] = got
            else:
                failed.append(f"{motif.kind}:{i + 1}")
    silent = {j for m in scene.motifs for j in m.silent}
    for o in scene.objects:
        if o.index not in out and o.index not in silent and o.role in ("filler", "foil", "reference", "occluder"):
            got = chk.appearance(o.index)
            if got:
                out[o.index] = got
    return out, failed
