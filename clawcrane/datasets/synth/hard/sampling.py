"""One random scene of the hard world: motifs and fillers placed, frames to annotate, shadow, light.

``sample_hard_scene`` places the motifs (``placement``, ``occlusion``; when the video has no
occlusion motif, most motion trios get an occluder for one member), then the fillers; picks the
annotated frames (3-5, spread over the clip; with an occlusion: one frame in the middle of the
occluded object's hidden span, clear frames before and after it, no frame where it is only
partly hidden); fades a shadow in or out between two annotated frames when a temporal motif asks
for it; silences some fillers, foils and occluders (a last motif, kind 'fillers', lists them);
orders the objects in depth (an occluded object behind its occluder); shuffles the object
indices (instance ids say nothing about roles, speeds or directions); and draws the light. Every
hard scene has ``trails=False``. A draw that cannot be placed returns None; the caller draws again.
"""

from __future__ import annotations

import numpy as np

from clawcrane.datasets.synth.geometry import MIN_VISIBLE_PX, compute_geometry
from clawcrane.datasets.synth.hard import placement as pl
from clawcrane.datasets.synth.hard.builder import Builder
from clawcrane.datasets.synth.hard.occlusion import add_occluder, place_occlusion
from clawcrane.datasets.synth.hard.palette import sample_lighting
from clawcrane.datasets.synth.scene import Motif, Obj, Scene, Shadow

CLEAR_FRAC = 0.75
"""An occluded object counts as clear of its occluder in a frame from this visible share on."""
QUIET_SHARE = 0.88
"""Share of fillers, foils and occluders that get no sentence (listed in the 'fillers' motif's
``silent``), so that appearance queries do not outnumber the others."""
OCCLUDED_TRIO_SHARE = 0.75
"""Share of motion trios (in videos without an occlusion motif) with one member passing behind an occluder."""
REFERENCE_QUIET_SHARE = 0.7
"""Share of relation references that get no sentence (``Motif.silent`` of their relation motif)."""


def _spread_frames(rng: np.random.Generator, T: int, k: int) -> tuple[int, ...]:
    base = np.linspace(1, T - 2, k)
    return tuple(sorted({int(np.clip(round(f + rng.uniform(-1, 1)), 0, T - 1)) for f in base}))


def _occlusion_frames(rng: np.random.Generator, b: Builder, occluded: int, occluder: int,
                      k: int) -> tuple[int, ...] | None:
    """Annotated frames around an occlusion: one hidden frame, clear frames on both sides of it."""
    T = b.T
    pair = tuple(Obj(index=n, depth=n, **b.specs[i]) for n, i in enumerate((occluded, occluder)))  # occluder in front
    geo = compute_geometry(Scene(video_id="", split="", width=b.W, height=b.H, num_frames=T, fps=1.0, objects=pair,
                                 annotated=()))
    px, frac = geo.visible_px[:, 0], geo.visible_frac[:, 0]  # (T,) the occluded object, alone with its occluder
    hidden = [t for t in range(T) if px[t] < MIN_VISIBLE_PX]
    clear = [t for t in range(T) if frac[t] >= CLEAR_FRAC]
    inner = [t for t in hidden if any(c < t for c in clear) and any(c > t for c in clear)]
    if not inner:
        return None
    t_h = inner[len(inner) // 2]
    before, after = [c for c in clear if c < t_h], [c for c in clear if c > t_h]
    frames = {t_h, int(rng.choice(before[: max(1, len(before) // 2 + 1)])),
              int(rng.choice(after[len(after) // 2:]))}
    extra = [t for t in clear if t not in frames and all(abs(t - f) >= 3 for f in frames)]
    while len(frames) < k and extra:
        t = int(rng.choice(extra))
        frames.add(t)
        extra = [e for e in extra if all(abs(e - f) >= 3 for f in frames)]
    return tuple(sorted(frames))


def _shadow(rng: np.random.Generator, core, annotated: tuple[int, ...]) -> Shadow | None:
    """A shadow fading between two consecutive annotated frames, about half of them in the dark."""
    k = len(annotated)
    fade = "in" if rng.random() < 0.5 else "out"
    m = k // 2 if rng.random() < 0.5 else (k + 1) // 2
    m = min(max(m, 1), k - 1)
    t0, t1 = annotated[m - 1], annotated[m]
    if t1 - t0 < 4:  # too abrupt to be gradual
        return None
    cx, cy, ax, ay = core
    return Shadow(cx=round(cx, 2), cy=round(cy, 2), ax=round(ax, 2), ay=round(ay, 2), soft=26.0, t0=t0, t1=t1,
                  fade=fade)


def _depths(rng: np.random.Generator, n: int, behind: list[tuple[int, int]]) -> np.ndarray | None:
    """A random draw order honouring every (behind, in front) pair; None when they conflict."""
    depth = rng.permutation(n)
    for _ in range(2 * n + 2):
        bad = [(i, j) for i, j in behind if depth[i] > depth[j]]
        if not bad:
            return depth
        i, j = bad[0]
        depth[i], depth[j] = depth[j], depth[i]
    return None


def _place(b: Builder, kind: str, n: int, t_hide: int, may_occlude: bool) -> list | None:
    """Place one motif: [(Motif with builder indices, shadow core or None), ...] (an occluded motion
    member adds an occlusion motif), or None when it does not fit."""
    rng = b.rng
    if kind == "position":
        axis = "x" if rng.random() < 0.65 else "y"
        got = pl.place_position(b, n, axis)
        return None if got is None else [(Motif(kind=kind, members=got, words=(axis,)), None)]
    if kind == "relation":
        got = pl.place_relation(b)
        if got is None:
            return None
        silent = tuple(j for j in got[1] if rng.random() < REFERENCE_QUIET_SHARE)
        return [(Motif(kind=kind, members=got[0], refs=got[1], words=(got[2],) * 2, silent=silent), None)]
    if kind == "temporal":
        got = pl.place_temporal(b)
        return None if got is None else [(Motif(kind=kind, members=got[0]), got[1])]
    if kind == "occlusion":
        got = place_occlusion(b, t_hide)
        return None if got is None else [(Motif(kind=kind, members=(got[0],), refs=got), None)]
    if kind == "motion":
        occlude = may_occlude and n == 3 and rng.random() < OCCLUDED_TRIO_SHARE
        got = pl.place_motion(b, n, small=occlude)
        if got is None:
            return None
        out = [(Motif(kind=kind, members=got), None)]
        if occlude:
            hidden = got[int(rng.integers(n))]
            occluder = add_occluder(b, hidden, t_hide)
            if occluder is None:
                return None
            out.append((Motif(kind="occlusion", members=(), refs=(hidden, occluder)), None))
        return out
    if kind in ("size", "speed"):
        got = pl.place_size(b, n) if kind == "size" else pl.place_speed(b)
        return None if got is None else [(Motif(kind=kind, members=got), None)]
    raise ValueError(f"unknown motif {kind!r}")


def _renumber(m: Motif, new: np.ndarray) -> Motif:
    def f(ids):
        return tuple(int(new[i]) for i in ids)
    return Motif(kind=m.kind, members=f(m.members), refs=f(m.refs), words=m.words, silent=f(m.silent))


def sample_hard_scene(*, rng: np.random.Generator, video_id: str, split: str, motifs: tuple[tuple[str, int], ...],
                      fillers: int, width: int, height: int, num_frames: int, fps: float) -> Scene | None:
    """One random hard scene realising ``motifs`` ((kind, count) pairs) plus ``fillers`` other objects."""
    W, H, T = width, height, num_frames
    b = Builder(rng=rng, W=W, H=H, T=T)
    planned: list[Motif] = []
    core = None
    t_hide = int(rng.integers(round(0.4 * (T - 1)), round(0.6 * (T - 1)) + 1))
    may_occlude = all(kind != "occlusion" for kind, _ in motifs)  # one occlusion per video
    for kind, n in motifs:
        got = _place(b, kind, n, t_hide, may_occlude)
        if got is None:
            return None
        for motif, motif_core in got:
            planned.append(motif)
            core = motif_core or core
    for _ in range(fillers):
        if pl.place_filler(b) is None:
            return None
    k = int(rng.integers(3, 6))
    occlusions = [m for m in planned if m.kind == "occlusion"]
    if occlusions:
        annotated = _occlusion_frames(rng, b, *occlusions[0].refs, k)
        if annotated is None:
            return None
    else:
        annotated = _spread_frames(rng, T, k)
    shadow = None
    if core is not None:
        shadow = _shadow(rng, core, annotated)
        if shadow is None:
            return None
    quiet = tuple(i for i, spec in enumerate(b.specs) if spec["role"] in ("filler", "foil", "occluder")
                  and rng.random() < QUIET_SHARE)
    planned.append(Motif(kind="fillers", members=(), silent=quiet))
    depth = _depths(rng, len(b.specs), b.behind)
    if depth is None:
        return None
    new = rng.permutation(len(b.specs))  # (n,) new[i]: the shuffled index of builder object i
    objects = [None] * len(b.specs)
    for i, spec in enumerate(b.specs):
        objects[int(new[i])] = Obj(index=int(new[i]), depth=int(depth[i]), **spec)
    return Scene(video_id=video_id, split=split, width=W, height=H, num_frames=T, fps=fps, objects=tuple(objects),
                 annotated=annotated, motifs=tuple(_renumber(m, new) for m in planned), shadow=shadow,
                 texture_seed=int(rng.integers(0, 2**31 - 1)), trails=False, lighting=sample_lighting(rng))
