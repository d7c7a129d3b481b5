"""`clawcrane quickstart`: the README's main job on the synthetic benchmark, end to end, in one call.

synth -> train-detector (lite, time budget) -> detect -> extract (--with-flip, backbone auto) ->
train-head -> track-rank (test split) -> evaluate -> overlays of a few test queries. Every stage is
called through its ``run()`` (no subprocesses) and every stage finds its own finished work, so a
second call is served from the artifacts:

* synth: the folder is complete -> nothing written;
* train-detector: ``detector/final.pt`` + ``metrics.json`` -> reused (a ``last.pt`` alone is resumed);
* detect / extract: their cache keys hit;
* train-head: ``head/last.pt`` trained for ``head_epochs`` with the same options -> reused
  (fewer epochs: resumed);
* track-rank: its key hits; evaluate: re-run (seconds); overlays: skipped when the folder holds
  the overlay of the same predictions.

Layout of ``OUT``: ``data/``, ``detector/``, ``cache/``, ``head/``, ``predictions.parquet``,
``eval/metrics.{md,json}``, ``overlays/<video_id>/``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from clawcrane.atomic import write_text
from clawcrane.build.device import resolve_device
from clawcrane.build.heads import sized
from clawcrane.cache.predictions import read_predictions
from clawcrane.config import (
    HEAD_SIZES,
    DetectConfig,
    EvalConfig,
    ExtractConfig,
    QuickstartConfig,
    SynthConfig,
    TrackRankConfig,
    TrainDetectorConfig,
    TrainHeadConfig,
)
from clawcrane.datasets import open_dataset
from clawcrane.errors import ConfigError
from clawcrane.stages import ablate, detect, evaluate, extract, synth, track_rank, train_detector, train_head  # noqa: F401
from clawcrane.stages.render import OVERLAY_FILE, SHEET_FILE, render_overlays

log = logging.getLogger(__name__)

STAMP = ".predictions-key"
"""File in an overlay folder holding the key of the predictions it was drawn from."""


@dataclass
class StageTime:
    """One stage of a quickstart run."""

    name: str
    seconds: float
    """Wall time."""
    cpu_seconds: float
    """CPU time of this process (all its threads) and its child processes during the stage."""
    reused: bool
    """True when the stage found its work done (nothing recomputed)."""
    note: str = ""


@dataclass
class QuickstartResult:
    out: Path
    stages: list[StageTime] = field(default_factory=list)
    markdown: str = ""
    """The metric tables of `evaluate` (overall and per query type)."""
    overlays: list[Path] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds for s in self.stages)


def check_config(config: QuickstartConfig) -> None:
    if config.head_size not in HEAD_SIZES:
        raise ConfigError(f"--head-size {config.head_size!r}: expected one of {', '.join(HEAD_SIZES)}")
    if config.detector_minutes < 0 or config.detector_epochs < 1 or config.head_epochs < 1:
        raise ConfigError("--detector-minutes must be >= 0, the detector and head epochs >= 1")
    if config.overlays < 0:
        raise ConfigError(f"--overlays {config.overlays}: must be >= 0")
    resolve_device(config.device)  # before the first stage runs


def _train_detector(config: QuickstartConfig, dataset, out: Path) -> tuple[str, bool, str]:
    if config.detector:
        return config.detector, True, f"skipped: --detector {config.detector}"
    final, metrics = out / "final.pt", out / "metrics.json"
    if final.is_file() and metrics.is_file():
        log.info("%s: trained detector found; reused", final)
        m = json.loads(metrics.read_text())
        _warn_if_weak(m, out)
        return str(final), True, _det_note(m)
    cfg = TrainDetectorConfig(dataset=str(dataset.root), out=str(out), preset="lite", epochs=config.detector_epochs,
                              max_minutes=config.detector_minutes, seed=config.seed, device=config.device,
                              resume=(out / "last.pt").is_file())
    res = train_detector.run(cfg, dataset=dataset)
    _warn_if_weak(res.metrics, out)
    return str(res.checkpoint), False, _det_note(res.metrics)


WEAK_DETECTOR_AP = 0.3
"""Below this class-agnostic mask AP the quickstart's candidates are too poor for its table to mean anything."""


def _warn_if_weak(m: dict[str, Any], out: Path) -> None:
    """A time-budgeted detector on a busy machine trains too few steps: say so, with the fixes."""
    ap = m.get("agnostic_AP")
    if m.get("test_frames") and ap is not None and ap < WEAK_DETECTOR_AP:
        log.warning("the detector reached class-agnostic mask AP %.3f in %s steps (about 300 in 5 minutes on a quiet "
                    "2-core machine; is it busy?), so the candidates and the table below are poor; remove %s and re-run "
                    "with more time (`clawcrane quickstart --detector-minutes 15`), or use ground-truth candidates "
                    "(`make quickstart DETECTOR=oracle`)", ap, m.get("steps"), out)


def _det_note(m: dict[str, Any]) -> str:
    ap = f"class-agnostic mask AP {m['agnostic_AP']:.3f}, " if m.get("test_frames") else ""
    return f"{ap}{m.get('steps')} steps, {m.get('train_minutes')} min"


def _overlays(config: QuickstartConfig, dataset, predictions: Path, out: Path) -> tuple[list[Path], bool]:
    """Render the first ``config.overlays`` test queries of distinct videos; skip folders already drawn from these predictions."""
    preds = read_predictions(predictions)
    picked, seen = [], set()
    for q in dataset.split_queries("test"):
        if q.video_id not in seen and len(picked) < config.overlays:
            picked.append(q)
            seen.add(q.video_id)
    folders, reused = [], True
    for q in picked:
        folder = out / q.video_id
        stamp = folder / STAMP
        done = (folder / OVERLAY_FILE).is_file() and (folder / SHEET_FILE).is_file()
        if not (done and stamp.is_file() and stamp.read_text().strip() == preds.key):
            rows = preds.table.filter(pc.equal(preds.table.column("query_id"), q.query_id))
            render_overlays(dataset.videos[q.video_id], rows, folder, sentences={q.query_id: q.sentence})
            write_text(stamp, preds.key + "\n")
            reused = False
        folders.append(folder)
    return folders, reused


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished child processes (synth's workers)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


@contextmanager
def _timed(result: QuickstartResult, name: str) -> Iterator[dict[str, Any]]:
    info: dict[str, Any] = {"reused": False, "note": ""}
    w0, c0 = time.perf_counter(), _cpu()
    yield info
    st = StageTime(name=name, seconds=time.perf_counter() - w0, cpu_seconds=_cpu() - c0,
                   reused=bool(info["reused"]), note=str(info["note"]))
    result.stages.append(st)
    log.info("quickstart: %s %.1f s (cpu %.1f s)%s", name, st.seconds, st.cpu_seconds, " reused" if st.reused else "")


def run(config: QuickstartConfig, out: str | os.PathLike, *,
        on_stage: Callable[[StageTime], None] | None = None) -> QuickstartResult:
    """Run (or finish, or confirm) the whole pipeline on ``config.preset`` under ``out``."""
    check_config(config)
    out = Path(out)
    result = QuickstartResult(out=out)
    cache = out / "cache"

    def stage(name: str):
        return _timed(result, name)

    def report() -> None:
        if on_stage is not None:
            on_stage(result.stages[-1])

    with stage("synth") as s:
        syn = synth.run(SynthConfig(preset=config.preset, seed=config.seed, workers=min(2, os.cpu_count() or 1)), out / "data")
        s["reused"] = syn.state == "complete"
        dataset = open_dataset(out / "data")
        s["note"] = f"{len(dataset.videos)} videos, {len(dataset.queries)} queries"
    report()
    with stage("train-detector") as s:
        det_ckpt, s["reused"], s["note"] = _train_detector(config, dataset, out / "detector")
    report()
    with stage("detect") as s:
        # train videos: only their annotated frames (all train-head reads); test videos: every S-th frame for the TRM
        dcfg = DetectConfig(detector=str(det_ckpt), frame_stride=config.frame_stride, train_frames="annotated",
                            device=config.device)
        det = detect.run(dcfg, dataset, cache)
        s["reused"], s["note"] = det.cache_hit, f"{det.frames} frames, {det.per_frame:.1f} candidates/frame" + (
            f", recall {det.recall:.2f}" if det.recall is not None else "")
    report()
    with stage("extract") as s:
        ext = extract.run(ExtractConfig(backbone="auto", with_flip=True, input_size=config.input_size, cache=str(cache),
                                        candidates=str(det.path), device=config.device), dataset=dataset)
        s["reused"], s["note"] = ext.hit, f"{ext.config.backbone} ({ext.config.weights}), C={ext.channels}"
    report()
    with stage("train-head") as s:
        hcfg = TrainHeadConfig(head=sized(config.head_size), epochs=config.head_epochs, seed=config.seed,
                               device=config.device)
        stale = ablate.changed_options(hcfg, out / "head")
        if stale:  # e.g. a head from an older version's defaults: keep it, but train the current one
            aside = out / f"head.stale-{time.strftime('%Y%m%d-%H%M%S')}"
            (out / "head").rename(aside)
            log.warning("%s: trained with other options (%s); moved to %s, training a new head",
                        out / "head", ", ".join(stale), aside)
        trained = ablate._train(hcfg, dataset, ext.path, out / "head")  # reuse / resume / train, as ablate rows do
        s["reused"], s["note"] = trained == 0, f"{trained} epochs trained now"
    report()
    with stage("track-rank") as s:
        tr = track_rank.run(TrackRankConfig(split="test", device=config.device), dataset, head=out / "head",
                            features=ext.path, out=out / "predictions.parquet")
        s["reused"], s["note"] = tr.hit, f"{tr.queries} queries"
    report()
    with stage("evaluate") as s:
        ev = evaluate.run(EvalConfig(split="test"), predictions=tr.out, dataset=dataset, out_dir=out / "eval")
        result.markdown = ev.markdown
        s["note"] = "re-run (cheap)"
    report()
    with stage("overlays") as s:
        result.overlays, s["reused"] = _overlays(config, dataset, tr.out, out / "overlays")
        s["note"] = f"{len(result.overlays)} videos"
    report()
    return result
