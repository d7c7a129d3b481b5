"""Stage `track-rank`: a trained head + the caches -> ranked masks per query and frame (Parquet).

For each query of the split, over every frame of its video that the detector processed (in
order; not only the annotated ones): the head scores every candidate (cosine with the sentence)
and gives its text-guided embedding V^r (``pipeline.scoring``); the TRM (``pipeline.tracking``,
Eq. 7 + Hungarian) links them into tracks and ranks the tracks; ``pipeline.ranking`` turns the
top-k tracks into per-frame submissions (rank 0 = the answer). ``--no-trm`` takes each frame's
argmax instead (Table 3 rows without TRM). ``--tracks imported`` seeds the TRM with the track ids of
an imported tracking system (Grounded-SAM-2, DEVA, SAM 2, SAM 3; ``VideoCandidates.track_ids``):
candidates sharing an id are one track, the rest is linked as usual; a candidate cache without
track ids is refused before any work.

A video's features and candidate masks are read once; the mask IoU between its frames is
computed once (``FrameIoU``) and shared by all its queries. A video without candidates (not
detected, bad, or empty) gives its queries abstention rows (empty masks, NaN score) on the frames
the detector processed, else on their annotated frames. The output is written atomically by
``cache.predictions``; its meta holds the config, the head's path and content fingerprint, the
feature, candidate and dataset keys. Running again with the same inputs and options finds the
file up to date and returns at once. ``out`` may replace only a predictions file (a checkpoint or
any other file there is refused before any work).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clawcrane.build.device import resolve_device
from clawcrane.build.heads import head_file, load_head
from clawcrane.build.text import sentence_inputs
from clawcrane.cache.candidates import CandidateCache, VideoCandidates
from clawcrane.cache.checkpoints import KIND_HEAD, check_head_features, load_checkpoint
from clawcrane.cache.features import FeatureCache, open_features
from clawcrane.atomic import check_writable, clean_stale_temps
from clawcrane.cache.predictions import COLUMNS, STAGE, existing_predictions, write_predictions
from clawcrane.config import SPLITS as CONFIG_SPLITS
from clawcrane.config import TRM_TRACKS
from clawcrane.config import TrackRankConfig, key_config, to_dict
from clawcrane.datasets.records import Dataset, Query
from clawcrane.datasets.splits import split_queries
from clawcrane.errors import CacheError, ConfigError, DataError, WeightsError
from clawcrane.fingerprint import chain_key, file_fingerprint, short
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import ranking
from clawcrane.pipeline import tracking as trm
from clawcrane.pipeline.motion import candidate_motion
from clawcrane.pipeline.scoring import score_video
from clawcrane.progress import progress

log = logging.getLogger(__name__)

STAGE_VERSION = 2
"""Bump when the same inputs and options would give different predictions (2: strictly decreasing scores)."""
SPLITS = CONFIG_SPLITS
"""'val': the train videos the head's best.pt was selected on (recorded in the checkpoint), for tuning."""


@dataclass
class TrackRankResult:
    """What `track-rank` wrote."""

    out: Path
    """The predictions Parquet file."""
    key: str
    queries: int
    videos: int
    frames: int
    """Processed frames of the videos predicted (each counted once)."""
    query_frames: int
    """(query, frame) pairs answered (one rank-0 row each)."""
    rows: int
    abstained: int
    """Queries without any mask (abstained, or a video without candidates)."""
    seconds: float
    hit: bool = False
    """True when ``out`` already held these predictions (nothing was computed)."""

    @property
    def queries_per_second(self) -> float:
        return self.queries / self.seconds if self.seconds > 0 else float("inf")


def check_config(config: TrackRankConfig) -> None:
    """Refuse options that cannot work, with the option's name."""
    if config.split not in SPLITS:
        raise ConfigError(f"--split {config.split!r}: expected one of {', '.join(SPLITS)}")
    if config.top_k < 1:
        raise ConfigError(f"--top-k {config.top_k}: must be at least 1")
    if config.beta < 1:
        raise ConfigError(f"--beta {config.beta}: must be at least 1 (rounds a track may stay unmatched)")
    if config.score_mode not in trm.SCORE_MODES:
        raise ConfigError(f"--score-mode {config.score_mode!r}: expected one of {', '.join(trm.SCORE_MODES)}")
    if config.fallback not in trm.FALLBACKS:
        raise ConfigError(f"--fallback {config.fallback!r}: expected one of {', '.join(trm.FALLBACKS)}")
    if config.tracks not in TRM_TRACKS:
        raise ConfigError(f"--tracks {config.tracks!r}: expected one of {', '.join(TRM_TRACKS)}")
    if config.tracks != "trm" and not config.trm:
        raise ConfigError(f"--tracks {config.tracks} seeds the TRM's tracks but --no-trm turns the TRM off; drop one of them")
    if config.batch_size < 1:
        raise ConfigError(f"--batch-size {config.batch_size}: must be at least 1")
    if config.abstain_below is not None and not math.isfinite(config.abstain_below):
        raise ConfigError(f"--abstain-below {config.abstain_below}: must be a finite number")


@dataclass
class VideoInputs:
    """One video's candidates, padded per processed frame, and what the TRM shares across queries."""

    frames: list[int]
    """Processed frames, ascending (frame position t -> frame number)."""
    rows: list[np.ndarray]
    """Candidate ids (rows of the candidate cache) of each frame position, in score order."""
    height: int
    width: int
    rles: list[bytes]
    feat: torch.Tensor | None = None
    pos: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    iou: trm.FrameIoU | None = None
    track_ids: list[np.ndarray] | None = None
    """Imported track ids (-1: none) of each frame position's candidates, aligned with ``rows``;
    None when the candidate cache has none (not an import of a tracking system)."""

    @property
    def has_candidates(self) -> bool:
        return self.feat is not None


def video_inputs(vid: str, queries: list[Query], *, candidates: CandidateCache, features: FeatureCache,
                  dataset: Dataset, cand_ids: set[str], feat_ids: set[str], motion: bool = False) -> VideoInputs:
    video = dataset.videos.get(vid)
    H, W = (int(video.height), int(video.width)) if video is not None else (0, 0)
    vc: VideoCandidates | None = candidates.video(vid) if vid in cand_ids else None
    if vc is None or vc.status != "ok":
        frames = sorted({f for q in queries for f in q.frames})
        return VideoInputs(frames=frames, rows=[np.zeros(0, np.int64)] * len(frames), height=H, width=W, rles=[])
    frames = sorted({int(f) for f in vc.processed_frames} | {int(f) for f in vc.frames})
    rows = [vc.frame_rows(f) for f in frames]
    out = VideoInputs(frames=frames, rows=rows, height=vc.height, width=vc.width, rles=[r["counts"] for r in vc.rles])
    if vc.track_ids is not None:
        ids = np.asarray(vc.track_ids, np.int64)
        out.track_ids = [ids[r] for r in rows]
    if len(vc) == 0:
        return out
    if vid not in feat_ids:
        log.warning("%s: video %s has candidates but no features; its queries get empty masks", features.path, vid)
        return out
    vf = features.video(vid)
    if vf.status != "ok" or len(vf) != len(vc):
        raise CacheError(
            f"{features.path}: video {vid!r} has {len(vf)} feature rows but {len(vc)} candidates in "
            f"{candidates.path}; re-run `clawcrane extract` over this candidate cache"
        )
    T, N, C = len(frames), max(len(r) for r in rows), vf.feat.shape[1]  # frames, candidates, channels
    pos_v = vf.pos
    if motion:  # p_i gains each candidate's track motion m_i (pipeline.motion)
        m = candidate_motion(frames, rows, np.asarray(vf.pos), np.asarray(vf.feat))
        pos_v = np.concatenate([np.asarray(vf.pos, np.float32), m], axis=1)
    feat = np.zeros((T, N, C), np.float32)
    pos = np.zeros((T, N, pos_v.shape[1]), np.float32)
    valid = np.zeros((T, N), bool)
    for t, r in enumerate(rows):
        feat[t, : len(r)] = vf.feat[r]
        pos[t, : len(r)] = pos_v[r]
        valid[t, : len(r)] = True
    out.feat, out.pos, out.valid = torch.from_numpy(feat), torch.from_numpy(pos), torch.from_numpy(valid)
    out.iou = trm.FrameIoU([[vc.rles[int(i)] for i in r] for r in rows])
    return out


@dataclass(frozen=True)
class QueryAnswer:
    """One query's ranked submissions, and the TRM's view of them."""

    subs: list[list[ranking.Submission]]
    """Per frame position, ranked (rank 0 = the answer)."""
    track_scores: dict[int, float]
    """Track score (``score_mode``) of each of the top-k tracks; empty without the TRM."""
    answer_track: int
    """The best track (what ``abstain_below`` tests); -1 without the TRM, or when the query abstained."""


def query_answer(emb: np.ndarray, sim: np.ndarray, vi: VideoInputs, config: TrackRankConfig) -> QueryAnswer:
    """The ranked submissions of one query (``emb`` (T, N, D), ``sim`` (T, N)) with its tracks' scores."""
    sizes = [len(r) for r in vi.rows]
    scores = [sim[t, :k] for t, k in enumerate(sizes)]
    if not config.trm:
        return QueryAnswer(ranking.argmax_submissions(scores, top_k=config.top_k, abstain_below=config.abstain_below), {}, -1)
    ids = vi.track_ids if config.tracks == "imported" else None  # a video with no import record: the TRM alone
    result = trm.temporal_relation(
        [emb[t, :k] for t, k in enumerate(sizes)], scores, iou=vi.iou, gamma=config.gamma, beta=config.beta,
        alpha=config.alpha, mode=config.score_mode, fallback=config.fallback, top_k=config.top_k, ids=ids,
    )
    if config.abstain_below is not None and ranking.best_track_score(result, config.score_mode) < config.abstain_below:
        return QueryAnswer([[ranking.abstention()] for _ in sizes], {}, -1)
    track_scores = {tr.track_id: tr.score(config.score_mode) for tr in result.tracks}
    best = result.tracks[0].track_id if result.tracks else -1
    return QueryAnswer(ranking.track_submissions(result, top_k=config.top_k, mode=config.score_mode), track_scores, best)


def query_submissions(emb: np.ndarray, sim: np.ndarray, vi: VideoInputs, config: TrackRankConfig) -> list[list[ranking.Submission]]:
    """Per frame position the ranked submissions of one query (``emb`` (T, N, D), ``sim`` (T, N))."""
    return query_answer(emb, sim, vi, config).subs


def append_rows(cols: dict[str, list[Any]], q: Query, subs: list[list[ranking.Submission]], vi: VideoInputs, empty: bytes) -> None:
    """One prediction row per submission; candidate k of frame position t -> its candidate id and RLE."""
    for t, frame_subs in enumerate(subs):
        for s in frame_subs:
            cand = int(vi.rows[t][s.k]) if s.k >= 0 else -1
            for c, v in zip(COLUMNS, (q.query_id, q.video_id, vi.frames[t], s.track_id, cand, s.score, s.rank,
                                      vi.height, vi.width, vi.rles[cand] if cand >= 0 else empty)):
                cols[c].append(v)


def _key(config: TrackRankConfig, head_fp: str, features: FeatureCache, candidates: CandidateCache, dataset_fp: str) -> str:
    """``dataset_fp``: the dataset's full fingerprint as the caches record it (``FeatureCache.check_dataset``),
    so that the key is the same whether or not the clips are there."""
    upstream = {"head": head_fp, "features": features.key, "candidates": candidates.key, "dataset": dataset_fp}
    return chain_key(STAGE, STAGE_VERSION, upstream, key_config(config))


def check_track_ids(config: TrackRankConfig, candidates: CandidateCache, video_ids) -> None:
    """Refuse ``--tracks imported`` over a candidate cache without track ids (read: its first video with candidates)."""
    if config.tracks != "imported":
        return
    have = set(candidates.video_ids())
    for vid in sorted(set(video_ids) & have):
        vc = candidates.video(vid)
        if vc.status != "ok" or len(vc) == 0:
            continue
        if vc.track_ids is not None:
            return
        break
    else:
        return  # no candidates at all: nothing to link
    detector = str((candidates.meta.get("config") or {}).get("detector", "")) or "?"
    raise ConfigError(f"{candidates.path}: --tracks imported needs the proposer's track ids, but this candidate cache "
                      f"(detector {detector!r}) has none; detect with --detector import:KIND:PATH (KIND gsam2, deva, "
                      "sam2 or sam3) and extract again, or use --tracks trm")


def _check_dataset(features: FeatureCache, queries: list[Query], dataset: Dataset) -> None:
    have = set(features.video_ids())
    wanted = {q.video_id for q in queries}
    if wanted and not (wanted & have):
        raise CacheError(
            f"{features.path}: holds none of the {len(wanted)} videos of the queries of {dataset.root}; it was extracted "
            f"from another dataset; run `clawcrane detect {dataset.root}` and `clawcrane extract` for this one"
        )
    missing = sorted(wanted - have)
    if missing:
        log.warning("%s: %d of %d videos have no features (e.g. %s); their queries get empty masks",
                    features.path, len(missing), len(wanted), missing[:3])


def run(config: TrackRankConfig, dataset: Dataset, *, head: str | os.PathLike, features: str | os.PathLike,
        out: str | os.PathLike) -> TrackRankResult:
    """Predict ``config.split``'s queries of ``dataset`` with the head at ``head``; write ``out``."""
    check_config(config)
    t0 = time.perf_counter()
    out = Path(out)
    old = existing_predictions(out)  # refuses a file it did not write, before any work
    check_writable(out.parent)
    clean_stale_temps(out.parent, target=out.name)  # a killed run's half-written .<out>.<rand>.tmp
    path = head_file(head)
    device = resolve_device(config.device)
    fc = open_features(features)
    candidates = fc.require_complete_inputs()
    dataset_fp = fc.check_dataset(dataset)  # the annotation fingerprint stands in when the clips are absent
    if not path.is_file():
        raise WeightsError(f"{path}: head checkpoint not found; train one with `clawcrane train-head` or check --head")
    validation = None
    if config.split == "val":
        validation = load_checkpoint(path, KIND_HEAD).get("validation")
        try:
            queries = split_queries(dataset, "val", validation)
        except ValueError:
            raise DataError(f"{path}: the head records no validation videos (trained with --val-fraction 0, on too few "
                            "train videos to hold one out, or by an older version; see its metrics.json); retrain it "
                            "with a larger --val-fraction, or pick --split test") from None
    else:
        queries = split_queries(dataset, config.split)
    if not queries:
        raise DataError(f"{dataset.root}: no queries in split {config.split!r}; pick another --split")
    check_track_ids(config, candidates, {q.video_id for q in queries})
    head_fp = file_fingerprint(path, full=True)
    key = _key(config, head_fp, fc, candidates, dataset_fp)
    if old is not None and old.key == key:  # the same head, caches, dataset and options made it: up to date
        log.info("%s: up to date (key %s)", out, short(key))
        c = old.meta.get("counts", {})
        return TrackRankResult(out=out, key=key, queries=int(c.get("queries", 0)), videos=int(c.get("videos", 0)),
                               frames=int(c.get("frames", 0)), query_frames=int(c.get("query_frames", 0)),
                               rows=len(old), abstained=int(c.get("abstained", 0)), seconds=time.perf_counter() - t0, hit=True)

    model, hcfg, vocab, meta = load_head(path)
    check_head_features(meta, fc.key, fc.meta, fc.path, same_dataset=False)
    if fc.channels and int(meta.get("feat_dim", fc.channels)) != fc.channels:
        raise CacheError(f"{fc.path}: features have C={fc.channels} but the head {path} expects C={meta['feat_dim']}; "
                         "use the feature cache the head was trained on (`clawcrane extract` with its backbone)")
    _check_dataset(fc, queries, dataset)
    model.to(device)
    text, lengths = sentence_inputs(hcfg, vocab, [q.sentence for q in queries], cache_root=fc.path.parent)
    by_video: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(queries):
        by_video[q.video_id].append(i)
    cand_ids, feat_ids = set(candidates.video_ids()), set(fc.video_ids())
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    frames_total = query_frames = abstained = 0
    log.info("track-rank: %d queries in %d videos, head %s (%s/%s), TRM %s, device %s", len(queries), len(by_video),
             path, hcfg.position, hcfg.relation, "on" if config.trm else "off", device)

    order = [i for vid in sorted(by_video) for i in by_video[vid]]
    current: str | None = None
    vi: VideoInputs | None = None
    emb = sim = None
    slot: dict[int, int] = {}
    empty = b""
    for i in progress(order, desc="track-rank", unit="query"):
        q = queries[i]
        if q.video_id != current:  # first query of a new video: read it and score all its queries at once
            current = q.video_id
            idx = by_video[current]
            vi = video_inputs(current, [queries[j] for j in idx], candidates=candidates, features=fc, dataset=dataset,
                               cand_ids=cand_ids, feat_ids=feat_ids, motion=hcfg.motion)
            frames_total += len(vi.frames)
            empty = mask_ops.encode(np.zeros((vi.height, vi.width), bool))["counts"] if vi.height * vi.width else b""
            emb = sim = None
            if vi.has_candidates:
                e, s = score_video(model, text[idx], lengths[idx], vi.feat, vi.pos, vi.valid, batch_size=config.batch_size)
                emb, sim = e.cpu().numpy(), s.cpu().numpy()
            slot = {j: n for n, j in enumerate(idx)}
        if emb is not None:
            subs = query_submissions(emb[slot[i]], sim[slot[i]], vi, config)
        else:
            subs = [[ranking.abstention()] for _ in vi.frames]
        if all(s[0].k < 0 for s in subs):
            abstained += 1
        query_frames += len(subs)
        append_rows(cols, q, subs, vi, empty)

    seconds = time.perf_counter() - t0
    counts = {"queries": len(queries), "videos": len(by_video), "frames": frames_total, "query_frames": query_frames,
              "abstained": abstained}
    meta_out = {
        "key": key, "stage": STAGE, "config": to_dict(config), "counts": counts,
        "upstream": {"head": head_fp, "features": fc.key, "candidates": candidates.key},
        "head": {"path": str(path), "fingerprint": head_fp, "epoch": meta.get("epoch"), "head_config": to_dict(hcfg),
                 "feature_key": meta.get("feature_key", "")},
        "features": {"path": str(fc.path), "key": fc.key},
        "dataset": dataset.identity(dataset_fp),
        "validation": meta.get("validation"),
    }
    write_predictions(out, cols, meta_out)
    log.info("wrote %s (%d rows)", out, len(cols["query_id"]))
    return TrackRankResult(out=out, key=key, queries=len(queries), videos=len(by_video), frames=frames_total,
                           query_frames=query_frames, rows=len(cols["query_id"]), abstained=abstained, seconds=seconds)
