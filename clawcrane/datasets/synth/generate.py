"""Presets, the per-video plan, and turning one plan into a checked scene with its queries.

Planning is sequential and cheap (``plan_dataset``): it fixes every video's id, split, motifs
and seed, balancing the expected number of queries per type. ``synthesize_video`` is a pure
function of its plan (draws scenes until every planned query passes its uniqueness check), so
videos can be made in any order, in parallel, and again on resume, with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clawcrane.datasets.synth.geometry import Geometry, compute_geometry
from clawcrane.datasets.synth.sampling import sample_scene
from clawcrane.datasets.synth.scene import MAX_OBJECTS, MIN_OBJECTS, Scene
from clawcrane.datasets.synth.sentences import QUERY_TYPES, QuerySpec, scene_queries
from clawcrane.errors import ConfigError

GENERATOR_VERSION = 1
"""Bump when the same preset + seed would give different data."""
WIDTH, HEIGHT, FPS = 320, 240, 10.0
MAX_ATTEMPTS = 60


@dataclass(frozen=True, kw_only=True)
class Preset:
    videos: int
    """Annotated videos (plus one unannotated video listed as missed)."""
    frames: int
    """Frames per clip (every one rendered)."""
    test_fraction: float = 0.2
    """Share of the videos in the test split (tiny: a fixed 6 train / 2 test)."""


PRESETS = {
    "tiny": Preset(videos=8, frames=16),
    "small": Preset(videos=120, frames=24),
    "full": Preset(videos=800, frames=24),
}

# (motifs, fillers) a video can have; motif = (kind, count of its target objects)
_MOTIF_OPTIONS = (
    (("position", 2),), (("position", 3),), (("relation", 4),), (("motion", 2),), (("motion", 3),),
    (("temporal", 2),), (("position", 2), ("motion", 2)), (("position", 2), ("temporal", 2)),
    (("motion", 2), ("temporal", 2)), (("position", 3), ("temporal", 2)), (("motion", 3), ("temporal", 2)),
    (("relation", 4), ("temporal", 2)), (("position", 2), ("motion", 3)), (("position", 3), ("motion", 2)),
)
# tiny: every type in both splits (train: videos 0-5, test: 6-7)
_TINY = (
    ((("relation", 4),), 1), ((("position", 2), ("motion", 2)), 1), ((("temporal", 2), ("position", 3)), 0),
    ((("motion", 3),), 2), ((("temporal", 2), ("motion", 2)), 1), ((("relation", 4),), 0),
    ((("position", 2), ("temporal", 2)), 1), ((("relation", 4), ("motion", 2)), 0),
)


@dataclass(frozen=True, kw_only=True)
class VideoPlan:
    """What one video will hold; ``synthesize_video`` turns it into a checked scene."""

    video_id: str
    """'s0000', 's0001', ...: the position in the plan, zero-padded."""
    index: int
    split: str
    """'train', 'test', or 'missed' (rendered, listed in a2d_missed_videos.txt, no annotations)."""
    motifs: tuple[tuple[str, int], ...]
    """(kind, objects) of each motif, e.g. (('position', 3), ('temporal', 2))."""
    fillers: int
    """Other objects (looks of their own; appearance queries when they stay well visible)."""
    frames: int
    seed: tuple[int, int]
    """(dataset seed, video index): seeds this video's random stream."""


def _expected(motifs, fillers) -> dict[str, float]:
    out = dict.fromkeys(QUERY_TYPES, 0.0)
    for kind, n in motifs:
        out[kind] += 2 if kind == "relation" else n
        if kind == "relation":
            out["appearance"] += 1.0  # half of the two references (the others stay silent)
    out["appearance"] += 0.4 * fillers  # many cross an edge, hide behind others or in shadow
    return out


def video_id(index: int) -> str:
    return f"s{index:04d}"


def plan_dataset(preset: str, seed: int) -> list[VideoPlan]:
    """Every video of a preset: ids ``s0000``..., splits, motifs, fillers; the last one is 'missed'."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: unknown preset; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    rng = np.random.default_rng([seed, 7919])
    n = p.videos
    if preset == "tiny":
        splits = ["train"] * (n - 2) + ["test"] * 2
        layout = list(_TINY)
    else:
        n_test = int(round(p.test_fraction * n))
        test = set(rng.permutation(n)[:n_test].tolist())
        splits = ["test" if i in test else "train" for i in range(n)]
        layout = []
        totals = dict.fromkeys(QUERY_TYPES, 0.0)
        for _ in range(n):  # the option keeping type counts even, near a random object count
            n_obj = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
            want_filler = rng.random() < 0.6  # most videos get an unrelated object too
            best, best_cost = None, None
            for k in rng.permutation(len(_MOTIF_OPTIONS)):
                motifs = _MOTIF_OPTIONS[k]
                used = sum(c for _, c in motifs)
                for fillers in range(max(0, MIN_OBJECTS - used), MAX_OBJECTS - used + 1):
                    exp = _expected(motifs, fillers)
                    after = np.array([totals[q] + exp[q] for q in QUERY_TYPES])
                    cost = float(after.max() - after.min()) + abs(used + fillers - n_obj) + (want_filler and not fillers)
                    if best_cost is None or cost < best_cost:
                        best, best_cost = (motifs, fillers), cost
            layout.append(best)
            for q, v in _expected(*best).items():
                totals[q] += v
    plans = [VideoPlan(video_id=video_id(i), index=i, split=splits[i], motifs=motifs, fillers=fillers,
                       frames=p.frames, seed=(seed, i)) for i, (motifs, fillers) in enumerate(layout)]
    plans.append(VideoPlan(video_id=video_id(n), index=n, split="missed", motifs=(), fillers=4, frames=p.frames,
                           seed=(seed, n)))
    return plans


@dataclass(kw_only=True)
class SynthVideo:
    plan: VideoPlan
    scene: Scene
    geometry: Geometry
    queries: list[QuerySpec]
    failed: list[str]
    """Planned motif queries that no draw could realise (normally empty)."""
    attempts: int


def synthesize_video(plan: VideoPlan) -> SynthVideo:
    """Draw scenes until all planned queries pass their checks (or keep the best of the draws)."""
    rng = np.random.default_rng(list(plan.seed))
    best = None
    split = "train" if plan.split == "missed" else plan.split
    for attempt in range(1, MAX_ATTEMPTS + 1):
        scene = sample_scene(rng=rng, video_id=plan.video_id, split=split, motifs=plan.motifs, fillers=plan.fillers,
                             width=WIDTH, height=HEIGHT, num_frames=plan.frames, fps=FPS)
        if scene is None:
            continue
        if plan.split == "missed":
            return SynthVideo(plan=plan, scene=scene, geometry=compute_geometry(scene), queries=[], failed=[],
                              attempts=attempt)
        geo = compute_geometry(scene, frames=scene.annotated)  # checks need the annotated frames only
        if not geo.listed[list(scene.annotated)].any(axis=1).all():
            continue  # an annotated frame with nothing in it
        queries, failed = scene_queries(scene, geo)
        planned = sum(len(m.members) for m in scene.motifs)
        score = (planned - len(failed), len(queries))
        if best is None or score > best[0]:
            best = (score, scene, queries, failed, attempt)
        if not failed and queries:
            break
    if best is None:
        raise RuntimeError(f"{plan.video_id}: no scene could be placed in {MAX_ATTEMPTS} draws")
    _, scene, queries, failed, attempt = best
    return SynthVideo(plan=plan, scene=scene, geometry=compute_geometry(scene), queries=queries, failed=failed,
                      attempts=attempt)
