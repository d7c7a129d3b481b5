"""`clawcrane export PRED --format F --out DIR`: predictions -> files other tools read.

Formats (masks are binary; ``--dataset`` puts them at the dataset's frame size, nearest-neighbour,
otherwise they keep the predictions' own size):

``coco-rle``
    ``DIR/predictions.json``: a JSON list, one object per submitted mask with ``rank < top_k``,
    sorted by (video_id, query_id, frame, rank)::

        {"query_id": str, "video_id": str, "frame": int (0-based), "track_id": int (-1: none),
         "rank": int (0 = the answer), "score": float or null (null: no score, e.g. abstained),
         "segmentation": {"size": [H, W], "counts": str}}

    ``segmentation`` is a compressed COCO RLE, column-major as in COCO; ``pycocotools.mask.decode``
    reads it as it is. An abstention is an all-zero mask. Within a (query, frame) the answer
    (rank 0) has a strictly higher score than every other mask, so an evaluator that takes the
    highest-scored mask (MTTR's, ReferFormer's) scores the answer.
``png``
    ``DIR/<video_id>/<query_id>/<frame:05d>.png`` for every (query, frame) with an answer row
    (rank 0): single-channel 8-bit, 0 background / 255 object.
``ytvos``
    The Ref-YouTube-VOS submission layout ``DIR/Annotations/<video_id>/<exp_id>/<frame>.png``:
    ``exp_id`` is the part of the query id after ``<video_id>_``; ``<frame>`` is the dataset's
    frame file stem (``00000``, ``00005``, ...) with ``--dataset``, else the 5-digit frame index.
    Every frame of the video gets a PNG (all 0 where there is no answer); the frame count is the
    dataset's, else the last predicted frame + 1. Zip ``Annotations/`` to submit.

The whole folder is written atomically: into a fresh temporary folder beside ``DIR``, then renamed
into place (``atomic.atomic_dir``), so a re-export replaces the previous export as a whole. ``DIR``
holding files export did not write (not in its manifest) is refused unless ``--force``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clawcrane.atomic import atomic_dir, write_text
from clawcrane.cache.predictions import Predictions, read_predictions
from clawcrane.config import ExportConfig
from clawcrane.datasets.records import Dataset, Video
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import DatasetMatch, check_dataset_match, short
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.metrics import resize_rle
from clawcrane.pipeline.ranking import float32_below
from clawcrane.progress import progress
from clawcrane.stages.mask_files import safe_name, write_png

log = logging.getLogger(__name__)

FORMATS = ("coco-rle", "png", "ytvos")
COCO_FILE = "predictions.json"
YTVOS_DIR = "Annotations"


@dataclass
class ExportResult:
    """What `export` wrote."""

    out_dir: Path
    format: str
    files: int
    """Files written (1 for coco-rle)."""
    masks: int
    """Masks written (JSON entries or PNGs)."""
    videos: int
    queries: int


def frame_names(video: Video | None, num_frames: int) -> list[str]:
    """File stems of a video's frames: the image folder's own names, else 5-digit indices."""
    files = getattr(video.source, "files", None) if video is not None else None
    if files is not None and len(files) == num_frames:
        return [Path(f).stem for f in files]
    return [f"{i:05d}" for i in range(num_frames)]


def check_config(config: ExportConfig) -> None:
    if config.format not in FORMATS:
        raise ConfigError(f"--format {config.format!r}: unknown; choose one of {', '.join(FORMATS)}")
    if config.top_k < 1:
        raise ConfigError(f"--top-k {config.top_k}: must be at least 1")
    if config.format != "coco-rle" and config.top_k != 1:
        raise ConfigError(f"--top-k {config.top_k}: {config.format} holds only the answer (rank 0); use --format coco-rle for more")


def _check_dataset(preds: Predictions, dataset: Dataset, video_ids: list[str]) -> None:
    """Refuse a dataset other than the predictions' (the annotation fingerprint when its clips are absent: no format decodes a frame)."""

    def mismatch(m: DatasetMatch) -> str:
        return (f"{preds.path}: predictions were made for a dataset with {m.what} {short(m.recorded)} but {dataset.root} has "
                f"{short(m.current)}; pass the --dataset the predictions came from")

    check_dataset_match(preds.meta.get("dataset"), dataset, artifact=preds.path, mismatch=mismatch, error=DataError)
    unknown = [v for v in video_ids if v not in dataset.videos]
    if unknown:
        raise DataError(f"{preds.path}: videos {unknown[:5]} are not in the dataset at {dataset.root}; pass the --dataset the predictions came from")


class _Rows:
    """The predictions' columns as numpy, with per-video sizes for masks."""

    def __init__(self, preds: Predictions, dataset: Dataset | None):
        self.path = preds.path
        self.qid = preds.column("query_id").astype(str)
        self.vid = preds.column("video_id").astype(str)
        self.frame, self.rank = preds.column("frame"), preds.column("rank")
        self.track, self.score = preds.column("track_id"), preds.column("score")
        self.h, self.w, self.rle = preds.column("height"), preds.column("width"), preds.column("rle")
        self.dataset = dataset
        self._sizes: dict[str, tuple[int, int] | None] = {}

    def size(self, video_id: str) -> tuple[int, int] | None:
        """(H, W) masks of this video are written at: the dataset's, else its rows' most common size."""
        if video_id not in self._sizes:
            v = self.dataset.videos[video_id] if self.dataset is not None else None
            if v is not None and v.height > 0 and v.width > 0:
                self._sizes[video_id] = (int(v.height), int(v.width))
            else:  # no dataset, or one opened without its frames that cannot tell the size (ytvos without GT)
                sel = (self.vid == video_id) & (self.h > 0) & (self.w > 0)
                common = Counter(zip(self.h[sel].tolist(), self.w[sel].tolist())).most_common(1)
                self._sizes[video_id] = common[0][0] if common else None
        return self._sizes[video_id]

    def rle_at(self, i: int, size: tuple[int, int]) -> dict:
        """Row ``i``'s RLE at ``size`` (zero-size placeholders become empty masks)."""
        return resize_rle({"size": [int(self.h[i]), int(self.w[i])], "counts": self.rle[i]}, *size)

    def answers(self) -> dict[tuple[str, str], dict[int, int]]:
        """(video_id, query_id) -> {frame: row of its answer}: rank 0, the best score on ties."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        score = np.where(np.isfinite(self.score), self.score, -np.inf)
        for i in np.flatnonzero(self.rank == 0):
            per = out.setdefault((self.vid[i], self.qid[i]), {})
            f = int(self.frame[i])
            if f not in per or score[i] > score[per[f]]:
                per[f] = int(i)
        return out


def strict_scores(rows: _Rows) -> tuple[np.ndarray, int]:
    """Row scores where every runner-up scores strictly below its (query, frame)'s answer, and how many were lowered.

    Files `track-rank` writes already hold this (``pipeline.ranking.monotone``); a file from an
    older version may tie, and a max-score evaluator would then score another mask than the answer.
    """
    score = rows.score.astype(np.float32).copy()
    answer: dict[tuple[str, str, int], float] = {}
    for i in np.flatnonzero(rows.rank == 0):
        answer[(rows.vid[i], rows.qid[i], int(rows.frame[i]))] = float(score[i])
    lowered = 0
    for i in np.flatnonzero(rows.rank > 0):
        a = answer.get((rows.vid[i], rows.qid[i], int(rows.frame[i])))
        if a is not None and np.isfinite(a) and not score[i] < a:
            score[i] = float32_below(a)
            lowered += 1
    return score, lowered


def _export_coco(rows: _Rows, out: Path, top_k: int) -> tuple[int, int]:
    idx = np.flatnonzero(rows.rank < top_k)
    idx = idx[np.lexsort((rows.rank[idx], rows.frame[idx], rows.qid[idx], rows.vid[idx]))]
    scores, _ = strict_scores(rows)
    lowered = int(np.sum(scores[idx] != rows.score[idx].astype(np.float32)))
    if lowered:
        log.warning("%s: %d runner-up masks scored as high as their answer (predictions of an older version); "
                    "exported just below it, so that max-score evaluators take the answer", rows.path, lowered)
    items, skipped = [], 0
    for i in progress(idx, desc="export coco-rle", unit="mask"):
        size = rows.size(rows.vid[i])
        if size is None:
            skipped += 1
            continue
        rle = rows.rle_at(int(i), size)
        counts = rle["counts"]
        s = float(scores[i])
        items.append({
            "query_id": str(rows.qid[i]), "video_id": str(rows.vid[i]), "frame": int(rows.frame[i]),
            "track_id": int(rows.track[i]), "rank": int(rows.rank[i]), "score": s if np.isfinite(s) else None,
            "segmentation": {"size": [int(size[0]), int(size[1])],
                             "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts)},
        })
    if skipped:
        log.warning("%d masks of videos without any sized mask were left out (pass --dataset to size them)", skipped)
    write_text(out / COCO_FILE, json.dumps(items) + "\n")
    return 1, len(items)


def _export_png(rows: _Rows, out: Path) -> tuple[int, int]:
    answers = rows.answers()
    jobs = [(v, q, f, i) for (v, q), per in sorted(answers.items()) for f, i in sorted(per.items())]
    n = 0
    for v, q, f, i in progress(jobs, desc="export png", unit="mask"):
        size = rows.size(v)
        if size is None:
            log.warning("%s: video %s has only zero-size masks; pass --dataset to size them", rows.path, v)
            continue
        path = out / safe_name(v, "video id", rows.path) / safe_name(q, "query id", rows.path) / f"{f:05d}.png"
        write_png(path, mask_ops.decode(rows.rle_at(i, size)))
        n += 1
    return n, n


def _export_ytvos(rows: _Rows, out: Path) -> tuple[int, int]:
    answers = rows.answers()
    plan = []
    for (v, q), per in sorted(answers.items()):
        if not q.startswith(f"{v}_") or len(q) == len(v) + 1:
            raise DataError(f"{rows.path}: query id {q!r} is not '<video_id>_<exp_id>' for video {v!r}; "
                            "the ytvos layout needs Ref-YouTube-VOS query ids (use --format png)")
        exp_id = safe_name(q[len(v) + 1 :], "expression id", rows.path)
        video = rows.dataset.videos[v] if rows.dataset is not None else None
        T = int(video.num_frames) if video is not None else int(rows.frame[rows.vid == v].max()) + 1  # frames
        late = [f for f in per if f >= T]
        if late:
            raise DataError(f"{rows.path}: query {q} has frames {sorted(late)[:5]} beyond the {T} frames of video {v}; "
                            "pass the --dataset the predictions came from")
        size = rows.size(v)
        if size is None:
            raise DataError(f"{rows.path}: video {v} has only zero-size masks; pass --dataset to know its frame size")
        plan.append((v, exp_id, per, frame_names(video, T), size))
    n = 0
    for v, exp_id, per, names, size in progress(plan, desc="export ytvos", unit="query"):
        folder = out / YTVOS_DIR / safe_name(v, "video id", rows.path) / exp_id
        for t, name in enumerate(names):
            i = per.get(t)
            mask = mask_ops.decode(rows.rle_at(i, size)) if i is not None else np.zeros(size, bool)
            write_png(folder / f"{name}.png", mask)
            n += 1
    if rows.dataset is not None:
        have = {q for _, q in answers}
        videos = {v for v, _ in answers}
        lacking = [q.query_id for q in rows.dataset.queries if q.video_id in videos and q.query_id not in have]
        if lacking:
            log.warning("%d queries of the exported videos have no predictions and no folder: %s", len(lacking), lacking[:10])
    return n, n


def default_out_dir(predictions: str | os.PathLike, fmt: str) -> Path:
    p = Path(predictions)
    return p.parent / f"{p.stem}-{fmt}"


def run(config: ExportConfig, *, predictions: str | os.PathLike, out_dir: str | os.PathLike | None = None,
        dataset: Dataset | None = None) -> ExportResult:
    """Write ``predictions`` in ``config.format`` as the folder ``out_dir`` (default: beside PRED), replacing it whole."""
    check_config(config)
    preds = read_predictions(predictions)
    video_ids = sorted(set(preds.column("video_id").astype(str).tolist()))
    if dataset is not None:
        _check_dataset(preds, dataset, video_ids)
    out = Path(out_dir) if out_dir is not None else default_out_dir(predictions, config.format)
    rows = _Rows(preds, dataset)
    keep = (predictions,) + ((dataset.root,) if dataset is not None else ())
    with atomic_dir(out, command="export", force=config.force, keep=keep) as staging:
        if config.format == "coco-rle":
            files, masks = _export_coco(rows, staging, config.top_k)
        elif config.format == "png":
            files, masks = _export_png(rows, staging)
        else:
            files, masks = _export_ytvos(rows, staging)
    log.info("wrote %d %s masks under %s", masks, config.format, out)
    return ExportResult(out_dir=out, format=config.format, files=files, masks=masks,
                        videos=len(video_ids), queries=len(preds.query_ids()))
