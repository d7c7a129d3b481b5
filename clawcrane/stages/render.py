"""Visual output of one video's predictions: an overlay mp4, a contact sheet, per-frame mask PNGs.

``render_overlays(video, rows, out_dir, sentences=...)`` streams the video once: decode a frame,
draw every query on it (``pipeline.overlay.draw_frame``), hand it to the mp4 writer, write that
frame's mask PNGs, and keep a thumbnail when the frame is one of the contact sheet's. Memory
holds the prediction rows of the video and a few thumbnails, never the decoded video.

Files under ``out_dir`` (pass one folder per video):

* ``overlay.mp4``: every frame of the source at its size and frame rate, masks and sentences drawn;
* ``contact_sheet.png``: ``sheet_frames`` evenly spaced frames that have answers, with a caption
  row of every query's colour, sentence and mean answer score;
* ``masks/<query_id>/<frame:05d>.png``: the answer (rank 0) of each query on each frame that has a
  prediction row, at the frame's size, single-channel 0 / 255 (all 0 where the query abstained).

Query colours follow the order of ``sentences`` (then the remaining query ids, sorted).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clawcrane.atomic import atomic_path
from clawcrane.cache.predictions import Predictions
from clawcrane.datasets.records import Video
from clawcrane.datasets.video_io import write_mp4
from clawcrane.errors import DataError
from clawcrane.pipeline import overlay as O
from clawcrane.pipeline.masks import area, decode
from clawcrane.progress import progress
from clawcrane.stages.mask_files import safe_name, write_png

log = logging.getLogger(__name__)

OVERLAY_FILE = "overlay.mp4"
SHEET_FILE = "contact_sheet.png"
MASK_DIR = "masks"


@dataclass
class RenderResult:
    """What `render_overlays` wrote for one video."""

    video_id: str
    overlay: Path
    """The overlay mp4."""
    sheet: Path | None
    """The contact-sheet PNG (None when none of its frames could be decoded)."""
    mask_dir: Path | None
    """``masks/`` (None when masks were not asked for)."""
    frames: int
    """Frames written to the mp4."""
    queries: list[str] = field(default_factory=list)
    """Query ids drawn, in colour order."""
    mask_files: int = 0


class _VideoRows:
    """One video's prediction rows, indexed by frame, masks decoded on demand."""

    def __init__(self, table: pa.Table, order: list[str]):
        self.qid = np.asarray(table.column("query_id").to_pylist(), dtype=object)
        self.frame = table.column("frame").to_numpy()
        self.rank = table.column("rank").to_numpy()
        self.score = table.column("score").to_numpy()
        self.h, self.w = table.column("height").to_numpy(), table.column("width").to_numpy()
        self.rle = table.column("rle").to_pylist()
        self.slot = {q: i for i, q in enumerate(order)}
        self.by_frame: dict[int, list[int]] = {}
        for i, f in enumerate(self.frame.tolist()):
            self.by_frame.setdefault(int(f), []).append(i)

    def mask(self, i: int, H: int, W: int) -> np.ndarray:
        """Row ``i``'s mask at (H, W) (zero-size placeholders: empty; other sizes: nearest resize)."""
        h, w = int(self.h[i]), int(self.w[i])
        if h == 0 or w == 0:
            return np.zeros((H, W), bool)
        m = decode({"size": [h, w], "counts": self.rle[i]})
        if (h, w) != (H, W):
            m = cv2.resize(m.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)
        return m

    def answer_rows(self, f: int) -> dict[str, int]:
        """query_id -> its answer row at frame ``f`` (rank 0; the best score on ties)."""
        best: dict[str, int] = {}
        for i in self.by_frame.get(f, []):
            if self.rank[i] != 0:
                continue
            q = self.qid[i]
            if q not in best or _finite(self.score[i]) > _finite(self.score[best[q]]):
                best[q] = i
        return best

    def frames_with_answers(self) -> list[int]:
        """Frames where some query has a non-empty answer."""
        out = []
        for f, rows in sorted(self.by_frame.items()):
            if any(self.rank[i] == 0 and self.h[i] > 0 and _nonempty(self.rle[i], self.h[i], self.w[i]) for i in rows):
                out.append(f)
        return out


def _finite(x: float) -> float:
    return float(x) if math.isfinite(float(x)) else -math.inf


def _nonempty(counts: bytes, h: int, w: int) -> bool:
    return int(area([{"size": [int(h), int(w)], "counts": counts}])[0]) > 0


def _video_table(video: Video, predictions: Predictions | pa.Table) -> pa.Table:
    table = predictions.table if isinstance(predictions, Predictions) else predictions
    return table.filter(pc.equal(table.column("video_id"), video.video_id))


def _query_order(qids: set[str], sentences: Mapping[str, str]) -> list[str]:
    return [q for q in sentences if q in qids] + sorted(q for q in qids if q not in sentences)


def pick_sheet_frames(candidates: list[int], count: int) -> list[int]:
    """``count`` evenly spaced entries of ``candidates`` (all of them when there are fewer)."""
    if len(candidates) <= count:
        return list(candidates)
    picks = np.linspace(0, len(candidates) - 1, count).round().astype(int)
    return [candidates[i] for i in sorted(set(picks.tolist()))]


def render_overlays(
    video: Video,
    predictions: Predictions | pa.Table,
    out_dir: str | os.PathLike,
    *,
    sentences: Mapping[str, str] | None = None,
    fps: float | None = None,
    runners_up: int = 2,
    sheet_frames: int = 6,
    sheet_columns: int = 3,
    thumb_width: int = 320,
    write_masks: bool = True,
) -> RenderResult:
    """Draw ``predictions`` (rows of any videos; only ``video``'s are used) on ``video``.

    ``sentences``: query_id -> sentence (the query id is shown for ids it lacks); ``fps``: the mp4's
    frame rate (default: the source's); ``runners_up``: how many lower-ranked tracks per query to
    outline faintly (rank 1 .. runners_up).
    """
    sentences = dict(sentences or {})
    out = Path(out_dir)
    table = _video_table(video, predictions)
    qids = set(table.column("query_id").to_pylist())
    if not qids:
        raise DataError(f"{out}: no prediction rows for video {video.video_id}; run track-rank on it first")
    order = _query_order(qids, sentences)
    for q in order:
        safe_name(q, "query id", out)
    rows = _VideoRows(table, order)
    colours = {q: O.colour_for(i) for i, q in enumerate(order)}
    answered = rows.frames_with_answers() or sorted(rows.by_frame) or list(range(video.num_frames))
    sheet_set = set(pick_sheet_frames([f for f in answered if f < video.num_frames], sheet_frames))
    thumbs: dict[int, np.ndarray] = {}
    counts = {"masks": 0}
    scores: dict[str, list[float]] = {q: [] for q in order}

    def overlays(f: int, H: int, W: int) -> list[O.QueryOverlay]:
        best = rows.answer_rows(f)
        present = {rows.qid[i] for i in rows.by_frame.get(f, [])}
        result = []
        for q in order:
            i = best.get(q)
            mask = rows.mask(i, H, W) if i is not None else None
            score = float(rows.score[i]) if i is not None else None
            if mask is not None and mask.any() and score is not None and math.isfinite(score):
                scores[q].append(score)
            extra = [j for j in rows.by_frame.get(f, []) if rows.qid[j] == q and 0 < rows.rank[j] <= runners_up]
            extra.sort(key=lambda j: rows.rank[j])
            result.append(O.QueryOverlay(
                sentence=sentences.get(q, q), mask=mask, score=score, colour=colours[q],
                runners_up=tuple(rows.mask(j, H, W) for j in extra), processed=q in present,
            ))
            if write_masks and i is not None:
                write_png(out / MASK_DIR / q / f"{f:05d}.png", mask)
                counts["masks"] += 1
        return result

    def frames() -> Iterator[np.ndarray]:
        for f, rgb in progress(video.iter_frames(), desc=f"render {video.video_id}", total=video.num_frames, unit="frame"):
            H, W = rgb.shape[:2]  # (H, W) height, width of the decoded frame
            ovs = overlays(f, H, W)
            if f in sheet_set:
                thumbs[f] = O.thumbnail(O.draw_frame(rgb, ovs, text=False), thumb_width)
            yield O.draw_frame(rgb, ovs, label=f"frame {f}")

    n = write_mp4(out / OVERLAY_FILE, frames(), fps if fps is not None else video.fps)
    picked = sorted(thumbs)
    sheet_path = _write_sheet(out, thumbs, order, sentences, colours, scores, sheet_columns) if picked else None
    if sheet_path is None:
        log.warning("%s: none of the contact sheet's frames %s decoded; no contact sheet", video.video_id, sorted(sheet_set))
    log.info("rendered %d frames of %s to %s", n, video.video_id, out)
    return RenderResult(video_id=video.video_id, overlay=out / OVERLAY_FILE, sheet=sheet_path,
                        mask_dir=out / MASK_DIR if write_masks else None, frames=n, queries=order,
                        mask_files=counts["masks"])


def _write_sheet(out: Path, thumbs: dict[int, np.ndarray], order: list[str], sentences: Mapping[str, str],
                 colours: Mapping[str, O.Colour], scores: Mapping[str, list[float]], columns: int) -> Path:
    picked = sorted(thumbs)
    captions = []
    for q in order:
        s = scores[q]
        note = f"mean score {np.mean(s):.2f} over {len(s)} frames" if s else O.NO_MATCH
        captions.append((f"{sentences.get(q, q)}  ({note})", colours[q]))
    sheet = O.contact_sheet([thumbs[f] for f in picked], labels=[f"frame {f}" for f in picked],
                            captions=captions, columns=columns)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{out / SHEET_FILE}: OpenCV could not encode the contact sheet")
    with atomic_path(out / SHEET_FILE) as tmp:
        tmp.write_bytes(buf.tobytes())
    return out / SHEET_FILE
