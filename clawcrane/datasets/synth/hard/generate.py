"""Hard presets, their per-video plans, and one plan turned into a checked scene with its queries.

As in ``synth.generate``: planning is sequential and cheap; ``synthesize_hard_video`` is a pure
function of its plan (draws scenes until every planned query passes its check, keeping the best
draw otherwise), so videos can be made in any order, in parallel, and again on resume. The scene
draws use the stream seeded by (seed, video index); the choice among a target's valid meanings
and the wording use a second stream, (seed, video index, 1), so wording never changes a scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clawcrane.datasets.synth.generate import FPS, HEIGHT, WIDTH, Preset, SynthVideo, VideoPlan, video_id
from clawcrane.datasets.synth.geometry import compute_geometry
from clawcrane.datasets.synth.hard.checks import scene_meanings
from clawcrane.datasets.synth.hard.meaning import Meaning
from clawcrane.datasets.synth.hard.sampling import sample_hard_scene
from clawcrane.datasets.synth.hard.wording import Wording, choose_wording
from clawcrane.errors import ConfigError

HARD_GENERATOR_VERSION = 1
"""Bump when the same hard preset + seed would give different data."""
HARD_QUERY_TYPES = ("appearance", "position", "size", "relation", "motion", "temporal")
HARD_PRESETS = {
    "hard-tiny": Preset(videos=8, frames=16),
    "hard": Preset(videos=120, frames=24),
    "hard-full": Preset(videos=800, frames=24),
}
MIN_OBJECTS, MAX_OBJECTS = 3, 8
MAX_ATTEMPTS = 120

_MOTIFS = {
    "position": (("position", 2), ("position", 3), ("position", 4)),
    "size": (("size", 2), ("size", 3)),
    "relation": (("relation", 4),),
    "motion": (("motion", 2), ("motion", 3), ("speed", 2)),
    "temporal": (("temporal", 2),),
}
"""(kind, objects) of the motifs that make each query type (appearance comes from the other objects)."""
_FOILS = {"position": 1, "size": 1, "relation": 1, "motion": 1, "speed": 1}
"""Objects a motif adds beyond its count (its foil, see ``foils``)."""
OCCLUSION_SHARE = 0.3
"""Share of videos planned with an occlusion motif (more get an occluded motion-trio member)."""
FILLER_SHARE = 0.6
"""Share of videos planned with at least one filler."""
_QUERIES = {"position": ("position", None), "size": ("size", 2), "relation": ("relation", 2),
            "motion": ("motion", None), "speed": ("motion", 2), "temporal": ("temporal", 2),
            "occlusion": ("appearance", 1.2)}
"""Expected queries of a motif: (type, count; None: one per object)."""
# hard-tiny: every type in both splits (train: videos 0-5, test: 6-7)
_TINY = (
    ((("relation", 4), ("size", 2)), 1), ((("position", 3), ("motion", 2), ("occlusion", 2)), 0),
    ((("temporal", 2), ("speed", 2), ("size", 3)), 0), ((("position", 4), ("motion", 3)), 0),
    ((("relation", 4), ("temporal", 2)), 1), ((("speed", 2), ("position", 2), ("occlusion", 2)), 1),
    ((("relation", 4), ("temporal", 2), ("occlusion", 2)), 0), ((("position", 2), ("size", 2), ("motion", 2)), 0),
)


def _objects(motifs) -> int:
    return sum(n + _FOILS.get(kind, 0) for kind, n in motifs)


def _expected(motifs, fillers) -> dict[str, float]:
    out = dict.fromkeys(HARD_QUERY_TYPES, 0.0)
    for kind, n in motifs:
        qtype, count = _QUERIES[kind]
        out[qtype] += n if count is None else count
        if kind == "relation":
            out["appearance"] += 0.6  # 30 % of the two references (the others stay silent)
        out["appearance"] += 0.08 * _FOILS.get(kind, 0)  # most foils stay silent
    out["appearance"] += 0.08 * fillers
    return out


def _plan_video(rng: np.random.Generator, totals: dict[str, float]) -> tuple[tuple[tuple[str, int], ...], int]:
    """(motifs, fillers) of one video: motifs for the query types furthest behind, within an object budget."""
    budget = int(rng.integers(MIN_OBJECTS + 2, MAX_OBJECTS + 2))
    motifs: list[tuple[str, int]] = [("occlusion", 2)] if rng.random() < OCCLUSION_SHARE else []
    room = budget - int(rng.random() < FILLER_SHARE)
    while True:
        expected = {q: totals[q] + v for q, v in _expected(motifs, 0).items()}
        kinds = {k for k, _ in motifs}
        free = room - _objects(motifs)
        pick = None
        for qtype in sorted(_MOTIFS, key=lambda q: (expected[q], rng.random())):
            fits = [m for m in _MOTIFS[qtype] if m[0] not in kinds and _objects([m]) <= free]
            if fits:
                pick = fits[int(rng.integers(len(fits)))]
                break
        if pick is None:
            break
        motifs.append(pick)
    if all(k == "occlusion" for k, _ in motifs):  # nothing fitted: the smallest motif of the type furthest behind
        qtype = min(_MOTIFS, key=lambda q: totals[q])
        motifs.append(min(_MOTIFS[qtype], key=lambda m: _objects([m])))
    return tuple(motifs), max(0, budget - _objects(motifs))


def plan_hard_dataset(preset: str, seed: int) -> list[VideoPlan]:
    """Every video of a hard preset: ids ``s0000``..., splits, motifs, fillers; the last one is 'missed'."""
    if preset not in HARD_PRESETS:
        raise ConfigError(f"--preset {preset!r}: unknown hard preset; choose one of {', '.join(HARD_PRESETS)}")
    p = HARD_PRESETS[preset]
    rng = np.random.default_rng([seed, 7927])
    n = p.videos
    if preset == "hard-tiny":
        splits = ["train"] * (n - 2) + ["test"] * 2
        layout = list(_TINY)
    else:
        test = set(rng.permutation(n)[: int(round(p.test_fraction * n))].tolist())
        splits = ["test" if i in test else "train" for i in range(n)]
        layout, totals = [], {split: dict.fromkeys(HARD_QUERY_TYPES, 0.0) for split in ("train", "test")}
        for i in range(n):  # each split balanced on its own
            motifs, fillers = _plan_video(rng, totals[splits[i]])
            layout.append((motifs, fillers))
            for q, v in _expected(motifs, fillers).items():
                totals[splits[i]][q] += v
    plans = [VideoPlan(video_id=video_id(i), index=i, split=splits[i], motifs=motifs, fillers=fillers,
                       frames=p.frames, seed=(seed, i)) for i, (motifs, fillers) in enumerate(layout)]
    plans.append(VideoPlan(video_id=video_id(n), index=n, split="missed", motifs=(), fillers=5, frames=p.frames,
                           seed=(seed, n)))
    return plans


@dataclass(frozen=True, kw_only=True)
class HardQuery:
    """One checked query of a hard video: its meaning and the sentence that words it."""

    target: int
    """Object index (instance id - 1)."""
    query_type: str
    """One of ``HARD_QUERY_TYPES`` (the meaning's type)."""
    sentence: str
    """The sentence written to a2d_annotation.txt (``wording.sentence``)."""
    meaning: Meaning
    """What the sentence says, checked unique for the target in every one of ``frames``."""
    wording: Wording
    """How the meaning was worded (template, held-out wording used)."""
    reason: str
    """Why the meaning is unique, in words (stored in synth_scenes.json)."""
    frames: tuple[int, ...]
    """Annotated frames where the target is annotated (the query's samples)."""
    detail: dict = field(default_factory=dict)
    """Extra facts for synth_scenes.json: ``options``, how many meanings were valid for the target."""


def _reason(m: Meaning, frames: tuple[int, ...]) -> str:
    what = {k: v for k, v in m.to_json().items() if k != "type"}
    return f"{m.query_type}: the only object with {what} in annotated frames {list(frames)} (hard.checks)"


def _queries(plan: VideoPlan, scene, geo, meanings: dict[int, list[Meaning]]) -> list[HardQuery]:
    rng = np.random.default_rng([plan.seed[0], plan.seed[1], 1])
    out = []
    for i in sorted(meanings):
        options = meanings[i]
        m = options[int(rng.integers(len(options)))]
        w = choose_wording(m, scene.split, rng)
        frames = tuple(t for t in scene.annotated if geo.listed[t, i])
        out.append(HardQuery(target=i, query_type=m.query_type, sentence=w.sentence, meaning=m, wording=w,
                             reason=_reason(m, frames), frames=frames, detail={"options": len(options)}))
    sentences = [q.sentence for q in out]
    if len(set(sentences)) != len(sentences):
        raise RuntimeError(f"{plan.video_id}: two queries got the same sentence: {sentences}")
    return out


def synthesize_hard_video(plan: VideoPlan) -> SynthVideo:
    """Draw hard scenes until all planned queries pass their checks (or keep the best of the draws)."""
    rng = np.random.default_rng(list(plan.seed))
    split = "train" if plan.split == "missed" else plan.split
    best = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        scene = sample_hard_scene(rng=rng, video_id=plan.video_id, split=split, motifs=plan.motifs,
                                  fillers=plan.fillers, width=WIDTH, height=HEIGHT, num_frames=plan.frames, fps=FPS)
        if scene is None:
            continue
        if plan.split == "missed":
            return SynthVideo(plan=plan, scene=scene, geometry=compute_geometry(scene), queries=[], failed=[],
                              attempts=attempt)
        geo = compute_geometry(scene, frames=scene.annotated)
        if not geo.listed[list(scene.annotated)].any(axis=1).all():
            continue
        meanings, failed = scene_meanings(scene, geo)
        planned = sum(len(m.members) - (m.kind == "size" and len(m.members) == 3) for m in scene.motifs)
        score = (planned - len(failed), len(meanings))
        if best is None or score > best[0]:
            best = (score, scene, meanings, failed, attempt)
        if not failed and meanings:
            break
    if best is None:
        raise RuntimeError(f"{plan.video_id}: no hard scene could be placed in {MAX_ATTEMPTS} draws")
    _, scene, meanings, failed, attempt = best
    geo = compute_geometry(scene)
    return SynthVideo(plan=plan, scene=scene, geometry=geo, queries=_queries(plan, scene, geo, meanings),
                      failed=failed, attempts=attempt)
