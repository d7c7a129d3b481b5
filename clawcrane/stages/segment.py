"""`clawcrane segment`: one video + sentences -> masks per sentence and frame, an overlay, a JSON.

The user-facing path: a trained detector and head, a clip (mp4 or frame folder) and sentences;
a thin shell over the Python API (``clawcrane.api.VideoSession``). Detection and feature
extraction run once per video: they are the `detect` and `extract` stages run into a cache root
on a dataset whose fingerprint is the video's *content* (frames and frame rate, not the
sentences), so a second call with new sentences finds both artifacts and only runs the head and
the tracker. The feature backbone is the one the head was trained on
(read from the head checkpoint's ``feature_meta``).

Cache root: ``--cache``, else ``$CLAWCRANE_CACHE/segment``, else
``$XDG_CACHE_HOME/clawcrane/segment`` (``~/.cache/clawcrane/segment``). It is shared by every
video; ``clawcrane cache ls`` lists it and deleting it only costs a recomputation.

Files written as the folder ``OUT`` (built beside it, then renamed into place): ``overlay.mp4``, ``contact_sheet.png``, ``masks/<query_id>/<frame>.png``
(``stages.render``), ``predictions.parquet`` (the ranked rows) and ``segments.json``
(``segments_doc`` below; ``validate_segments`` checks it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from clawcrane.api import VideoSession, content_dataset, default_cache_root, feature_config
from clawcrane.atomic import atomic_dir, check_replaceable, write_json
from clawcrane.build.detectors import build_detector
from clawcrane.build.heads import head_file
from clawcrane.cache.predictions import Predictions, read_predictions, write_predictions
from clawcrane.config import SegmentConfig, TrackRankConfig, to_dict
from clawcrane.datasets.layout import open_dataset
from clawcrane.datasets.records import Dataset
from clawcrane.errors import ConfigError, DataError
from clawcrane.pipeline.ranking import Submission, summarise_tracks
from clawcrane.stages.render import MASK_DIR, RenderResult, render_overlays

__all__ = ["run", "segments_doc", "validate_segments", "default_cache_root", "content_dataset", "feature_config"]

log = logging.getLogger(__name__)

SEGMENTS_FILE = "segments.json"
PREDICTIONS_FILE = "predictions.parquet"
SCHEMA = "clawcrane-segments/1"
NO_MATCH = "no matching object"


@dataclass
class SegmentResult:
    """What one `segment` call did and wrote."""

    out: Path
    segments: Path
    """``OUT/segments.json``."""
    render: RenderResult | None
    """What the overlay pass wrote (None with ``--no-overlay``: masks were written from the answers)."""
    cached: bool
    """True when both the candidates and the features came from the cache."""
    prepare_seconds: float
    """Wall time of detect + extract (near 0 when cached)."""
    answer_seconds: float
    """Wall time of head + tracker (the answers; ``on_answer`` is called right after)."""
    backbone: str
    no_match: list[str]
    """Query ids answered with "no matching object"."""
    doc: dict[str, Any]
    render_seconds: float = 0.0
    """Wall time of writing the masks and drawing the overlay (after the answers were reported)."""
    mask_files: int = 0


def _check(config: SegmentConfig, ds: Dataset) -> None:
    if not config.detector:
        raise ConfigError("segment needs --detector (a train-detector checkpoint PATH, r50-fpn, import:PATH or import:KIND:PATH)")
    if config.top_k < 1:
        raise ConfigError(f"--top-k {config.top_k}: must be at least 1")
    if config.abstain_below is not None and not math.isfinite(config.abstain_below):
        raise ConfigError(f"--abstain-below {config.abstain_below}: must be a finite number")
    if ds.name != "video" or len(ds.videos) != 1:
        raise ConfigError(f"{ds.root}: segment takes one video (an mp4 or a frame folder), not a {ds.name} dataset; "
                          "use track-rank for a benchmark")
    if not ds.queries:
        raise ConfigError(f"{ds.root}: no sentences; pass --query \"...\" or --queries-file FILE")


def run(config: SegmentConfig, video: str | os.PathLike, *, head: str | os.PathLike, out: str | os.PathLike,
        queries: Sequence[str] = (), queries_file: str | os.PathLike | None = None,
        detector_factory: Callable[..., Any] | None = None,
        on_answer: Callable[[dict[str, Any]], None] | None = None) -> SegmentResult:
    """Segment what ``queries`` describe in ``video`` with ``head``; write everything as the folder ``out``.

    ``on_answer(doc)`` is called with the segments.json document as soon as the answers are
    known, before the masks and the overlay are drawn (the slow part on a long video).

    ``out`` is written beside itself and renamed into place (``atomic.atomic_dir``): a re-run
    replaces it as a whole, and a folder holding files segment did not write is refused unless
    ``config.force``.
    """
    out = Path(out)
    cache = Path(config.cache) if config.cache else default_cache_root()
    keep = (video, head, cache) + ((queries_file,) if queries_file else ())  # inputs that not even --force may delete
    if config.detector.startswith("import:"):  # the imported masks are an input too
        from clawcrane.cache.imports import split_import

        keep += (split_import(config.detector[len("import:"):])[1],)
    check_replaceable(out, command="segment", force=config.force, keep=keep)  # before any work (atomic_dir checks again)
    ds = open_dataset(video, queries=list(queries), queries_file=queries_file)
    _check(config, ds)
    head_path = head_file(head)
    if not head_path.is_file():
        raise DataError(f"{head_path}: head checkpoint not found; pass the run folder or .pt of `clawcrane train-head`")
    with atomic_dir(out, command="segment", force=config.force, keep=keep) as staging:
        track = TrackRankConfig(split="all", top_k=config.top_k, abstain_below=config.abstain_below, tracks=config.tracks,
                                device=config.device)
        session = VideoSession.open(video, head=head_path, detector=config.detector, cache=cache, device=config.device,
                                    frame_stride=config.frame_stride, refine_masks=config.refine_masks,
                                    backbone=config.backbone, track=track,
                                    detector_factory=detector_factory or build_detector)
        t1 = time.perf_counter()
        results = session.query_all([q.sentence for q in ds.queries], query_ids=[q.query_id for q in ds.queries])
        answer_s = time.perf_counter() - t1
        meta = {"stage": "segment", "config": to_dict(track), "head": {"path": str(head_path)},
                "features": {"path": str(session.features.path), "key": session.features.key},
                "dataset": {"name": ds.name, "root": str(ds.root), "fingerprint": session.dataset.fingerprint}}
        write_predictions(staging / PREDICTIONS_FILE, pa.concat_tables([r.table(meta) for r in results]))
        preds = read_predictions(staging / PREDICTIONS_FILE)
        doc = segments_doc(preds, ds, config=config, head=head_path, backbone=session.backbone, top_k=config.top_k,
                           answers={r.query_id: (r.track_scores, r.answer_track) for r in results})
        validate_segments(doc, out / SEGMENTS_FILE)
        write_json(staging / SEGMENTS_FILE, doc)
        if on_answer is not None:  # the answers are known: report them before the slow drawing
            on_answer(doc)
        t2 = time.perf_counter()
        if config.overlay:
            sentences = {q.query_id: q.sentence for q in ds.queries}
            rendered = render_overlays(session.video, preds, staging, sentences=sentences)
            mask_files = rendered.mask_files
        else:
            rendered, mask_files = None, 0
            for r in results:
                r.to_png(staging / MASK_DIR / r.query_id)
                mask_files += len(r.frames)
        render_s = time.perf_counter() - t2
    if rendered is not None:
        rendered = dataclasses.replace(rendered, overlay=out / rendered.overlay.name,
                                       sheet=out / rendered.sheet.name if rendered.sheet is not None else None,
                                       mask_dir=out / rendered.mask_dir.name if rendered.mask_dir is not None else None)
    no_match = [q["query_id"] for q in doc["queries"] if q["status"] == "no_match"]
    log.info("segment: %d queries on %s -> %s", len(ds.queries), session.video.video_id, out)
    return SegmentResult(out=out, segments=out / SEGMENTS_FILE, render=rendered, cached=session.cached,
                         prepare_seconds=session.prepare_seconds, answer_seconds=answer_s, backbone=session.backbone,
                         render_seconds=render_s, mask_files=mask_files,
                         no_match=no_match, doc=doc)


# ---- segments.json -------------------------------------------------------------------------------
def _num(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def _answer_score(tracks: list[dict], frames: list[dict]) -> float | None:
    """The answer track's score; without tracks (``--no-trm``) the best answered frame's score."""
    if tracks:
        return tracks[0]["score"]
    scores = [f["score"] for f in frames if f["score"] is not None]
    return max(scores) if scores else None


def segments_doc(preds: Predictions, ds: Dataset, *, config: SegmentConfig, head: Path, backbone: str, top_k: int,
                 answers: Mapping[str, tuple[Mapping[int, float], int]] | None = None) -> dict[str, Any]:
    """The JSON document of ``segments.json`` (see ``validate_segments`` for its schema).

    Per query: ``frames`` holds the answer (rank 0) of every processed frame as COCO RLE (``null``
    where it abstained); ``tracks`` the top-k tracks: the answer's track first, then by score,
    where a track's score is the TRM's track score from ``answers`` (query id -> (track scores, best
    track), as ``api.Result`` holds them), else the mean score of its rows.
    """
    (video,) = ds.videos.values()
    groups = dict(preds.groups())
    queries = []
    for q in ds.queries:
        t = groups.get(q.query_id)
        rows = t.to_pylist() if t is not None else []
        frames, subs = [], []
        for r in sorted(rows, key=lambda r: (r["frame"], r["rank"])):
            subs.append((int(r["frame"]), Submission(k=int(r["candidate_id"]), track_id=int(r["track_id"]),
                                                     score=float(r["score"]), rank=int(r["rank"]))))
            if r["rank"] != 0:
                continue
            has = r["candidate_id"] >= 0
            mask = {"size": [int(r["height"]), int(r["width"])], "counts": r["rle"].decode("ascii")} if has else None
            frames.append({"frame": int(r["frame"]), "mask": mask, "score": _num(r["score"]) if has else None})
        scores, first = (answers or {}).get(q.query_id, ({}, -1))
        tracks = [{"rank": i, "track_id": tr.track_id, "score": tr.score, "frames": list(tr.frames)}
                  for i, tr in enumerate(summarise_tracks(subs, scores=scores, first=first)[:top_k])]
        status = "ok" if any(f["mask"] is not None for f in frames) else "no_match"
        queries.append({"query_id": q.query_id, "sentence": q.sentence, "status": status,
                        "message": NO_MATCH if status == "no_match" else "",
                        "score": _answer_score(tracks, frames) if status == "ok" else None,
                        "tracks": tracks, "frames": frames})
    return {
        "schema": SCHEMA,
        "video": {"path": str(ds.root), "video_id": video.video_id, "width": int(video.width), "height": int(video.height),
                  "fps": float(video.fps), "num_frames": int(video.num_frames)},
        "head": str(head), "backbone": backbone, "config": to_dict(config),
        "queries": queries,
    }


def _need(cond: bool, where: Path, what: str) -> None:
    if not cond:
        raise DataError(f"{where}: not a valid {SCHEMA} document ({what}); re-run `clawcrane segment`")


def validate_segments(doc: Any, where: str | os.PathLike = SEGMENTS_FILE) -> None:
    """Check ``doc`` against the segments schema; one-line ``DataError`` naming the first problem.

    ``{schema, video: {path, video_id, width, height, fps, num_frames}, head, backbone, config,
    queries: [{query_id, sentence, status: ok|no_match, message, score: float|null,
    tracks: [{rank, track_id, score, frames: [int]}], frames: [{frame, mask: {size: [H, W],
    counts: str}|null, score: float|null}]}]}``; ``no_match`` queries have no mask on any frame.
    """
    p = Path(where)
    _need(isinstance(doc, dict) and doc.get("schema") == SCHEMA, p, "schema")
    v = doc.get("video")
    _need(isinstance(v, dict) and all(k in v for k in ("path", "video_id", "width", "height", "fps", "num_frames")), p, "video")
    H, W, T = v["height"], v["width"], v["num_frames"]
    _need(isinstance(doc.get("queries"), list) and doc["queries"], p, "queries")
    for q in doc["queries"]:
        qid = q.get("query_id") if isinstance(q, dict) else None
        _need(isinstance(qid, str) and isinstance(q.get("sentence"), str) and q["sentence"], p, "query id/sentence")
        _need(q.get("status") in ("ok", "no_match"), p, f"status of {qid}")
        _need(isinstance(q.get("tracks"), list) and isinstance(q.get("frames"), list), p, f"tracks/frames of {qid}")
        for i, t in enumerate(q["tracks"]):
            _need(t.get("rank") == i and isinstance(t.get("track_id"), int) and isinstance(t.get("score"), float)
                  and all(isinstance(f, int) and 0 <= f < T for f in t.get("frames", [None])), p, f"track {i} of {qid}")
        seen = set()
        for f in q["frames"]:
            n, m = f.get("frame"), f.get("mask")
            _need(isinstance(n, int) and 0 <= n < T and n not in seen, p, f"frame {n} of {qid}")
            seen.add(n)
            if m is None:
                _need(f.get("score") is None, p, f"score of the empty frame {n} of {qid}")
                continue
            _need(q["status"] == "ok", p, f"mask on frame {n} of the no_match query {qid}")
            _need(m.get("size") == [H, W] and isinstance(m.get("counts"), str), p, f"mask of frame {n} of {qid}")
