"""`clawcrane data synth`: write the synthetic referring-video benchmark (A2D-Sentences layout).

Plans every video, makes each one (scene, checked queries, frames, h5 files) in parallel,
then writes the index files and ``synth_scenes.json`` last. The preset picks the world
(``presets.family``): the original one (tiny, small, full) or the hard one (hard-tiny, hard,
hard-full). Each file is written atomically, so a killed run resumes (videos whose files exist
are not rendered again); a finished folder with the same preset and seed is left as it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import joblib

from clawcrane.config import SynthConfig
from clawcrane.datasets.synth import writer
from clawcrane.datasets.synth.generate import VideoPlan
from clawcrane.datasets.synth.presets import Family, family
from clawcrane.datasets.synth.render import annotate_frame, contact_sheet
from clawcrane.datasets.video_io import Mp4Frames
from clawcrane.progress import progress

log = logging.getLogger(__name__)

PREVIEW_FILE = "preview.png"
PARALLEL_MIN_VIDEOS = 24
"""Below this many videos, worker processes cost more than they save."""


@dataclass(kw_only=True)
class SynthResult:
    out: Path
    preset: str
    seed: int
    state: str
    """'new', 'resume' or 'complete' (nothing was written)."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """{'train'|'test': {'videos', 'queries', 'samples'}}."""
    types: dict[str, dict[str, int]] = field(default_factory=dict)
    """{'train'|'test': {query_type: queries}}."""
    rendered: int = 0
    """Videos rendered by this run (the others were already on disk)."""
    failed: int = 0
    """Planned motif queries no draw could realise."""
    preview: Path | None = None
    seconds: float = 0.0


def _meta(config: SynthConfig) -> dict:
    return {"name": "clawcrane data synth", "preset": config.preset, "seed": config.seed,
            "version": family(config.preset).version}


def _make(out: Path, plan: VideoPlan, preset: str) -> tuple[dict, bool]:
    fam = family(preset)
    video = fam.synthesize(plan)
    if writer.video_complete(out, video):
        return fam.record(video), False
    writer.write_video_files(out, video)
    return fam.record(video), True


def _summary(result: SynthResult, records: list[dict], query_types: tuple[str, ...]) -> SynthResult:
    for split in ("train", "test"):
        recs = [r for r in records if r["split"] == split]
        qs = [q for r in recs for q in r["queries"]]
        result.counts[split] = {"videos": len(recs), "queries": len(qs), "samples": sum(len(q["frames"]) for q in qs)}
        c = Counter(q["query_type"] for q in qs)
        result.types[split] = {t: c.get(t, 0) for t in query_types}
    result.failed = sum(len(r["failed"]) for r in records)
    return result


def _middle_frame(video, fam: Family) -> int:
    """The middle annotated frame; in the hard world one where a query target is hidden, if any."""
    ann = video.scene.annotated
    if fam.name == "hard":
        hidden = [t for t in ann[1:-1] if any(not video.geometry.listed[t, q.target] for q in video.queries)]
        if hidden:
            return hidden[0]
    return ann[len(ann) // 2]


def _wording_tag(q, fam: Family) -> str:
    """', seen' or ', paraphrase' after a hard query's type on the contact sheet."""
    return f", {q.wording.label}" if fam.name == "hard" else ""


def _preview(out: Path, plans: list[VideoPlan], records: list[dict], fam: Family, rows: int = 4) -> Path:
    """Contact sheet: a few videos covering every query type, 3 annotated frames each."""
    chosen, seen = [], set()
    for rec in records:  # first the videos that show a query type not shown yet
        types = {q["query_type"] for q in rec["queries"]} - seen
        if types and len(chosen) < rows:
            chosen.append(rec["video_id"])
            seen |= types
    chosen += [r["video_id"] for r in records if r["queries"] and r["video_id"] not in chosen][: rows - len(chosen)]
    by_id = {p.video_id: p for p in plans}
    sheet_rows = []
    for vid in chosen:
        video = fam.synthesize(by_id[vid])
        ann = video.scene.annotated
        picks = sorted({ann[0], _middle_frame(video, fam), ann[-1]})
        decoded = dict(Mp4Frames(writer.mp4_path(out, vid)).iter(picks))
        referred = {q.target + 1 for q in video.queries}
        frames = []
        for t in picks:
            idx = [int(i) for i in range(len(video.scene.objects)) if video.geometry.listed[t, i]]
            img = annotate_frame(decoded[t], video.geometry.masks(t, idx), [i + 1 for i in idx], referred)
            frames.append(img)
        lines = [f"{vid} ({video.plan.split}), frames {[t + 1 for t in picks]} of {video.scene.num_frames}"]
        lines += [f"{q.target + 1}: {q.sentence}   [{q.query_type}{_wording_tag(q, fam)}]" for q in video.queries]
        sheet_rows.append((frames, lines))
    path = out / PREVIEW_FILE
    writer.write_png(path, contact_sheet(sheet_rows))
    return path


def run(config: SynthConfig, out: str | Path) -> SynthResult:
    """Write (or finish, or confirm) the benchmark of ``config`` under ``out``."""
    t_start = time.perf_counter()
    out = Path(out)
    meta = _meta(config)
    state = writer.folder_state(out, meta)
    result = SynthResult(out=out, preset=config.preset, seed=config.seed, state=state)
    fam = family(config.preset)
    plans = fam.plan(config.preset, config.seed)
    if state == "complete":
        log.info("%s: already complete (preset=%s seed=%d); nothing to do", out, config.preset, config.seed)
        records = json.loads((out / writer.SCENES_FILE).read_text())["videos"]
    else:
        writer.start_run(out, meta)
        workers = max(1, int(config.workers))
        if workers > 1 and len(plans) >= PARALLEL_MIN_VIDEOS:
            jobs = joblib.Parallel(n_jobs=workers, return_as="generator")(
                joblib.delayed(_make)(out, p, config.preset) for p in plans)
        else:
            jobs = (_make(out, p, config.preset) for p in plans)
        done = list(progress(jobs, desc="synth", total=len(plans), unit="video"))
        records = [rec for rec, _ in done]
        result.rendered = sum(1 for _, fresh in done if fresh)
        writer.write_index(out, records, meta, wording_column=fam.wording_column, conventions=fam.conventions)
        writer.finish_run(out)
    _summary(result, records, fam.query_types)
    if result.failed:
        log.info("%d planned queries could not be realised (see 'failed' in %s)", result.failed, writer.SCENES_FILE)
    if config.preview and (state != "complete" or not (out / PREVIEW_FILE).is_file()):
        result.preview = _preview(out, plans, records, fam)
    elif config.preview:
        result.preview = out / PREVIEW_FILE
    result.seconds = time.perf_counter() - t_start
    return result
