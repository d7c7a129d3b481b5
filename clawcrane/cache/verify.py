"""Integrity checks of cache artifacts (`clawcrane cache verify`), generic over ``Store``.

Every stage: each data file opens and carries the artifact's key, every video the stage was asked
to process is present (completeness, ``Store.completeness``), each video record reads, every
column and the scalar attributes match the checksums recorded when they were written (flipped
bytes in compressed or uncompressed columns), per-row columns have one length. Candidate caches (``detect``): every RLE decodes and covers
exactly height x width pixels, rows are sorted by (frame, -score), frames lie in the processed
set, scores and boxes are finite. Feature caches (``extract``): row counts and frames equal those
of the candidate cache they were extracted from (when it sits beside them), values are finite.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import h5py
import numpy as np
from pycocotools import mask as mask_utils

from clawcrane.cache.store import Store, VideoRecord, artifact_dir, checksum_mismatches
from clawcrane.cache.text_states import STAGE as TEXT_STAGE
from clawcrane.errors import CacheError
from clawcrane.fingerprint import short

PER_FRAME_COLUMNS = {"processed_frames"}
"""Columns indexed by processed frame, not by row; exempt from the row-alignment check."""


def rle_run_total(counts: bytes) -> int:
    """Sum of the run lengths of a COCO compressed RLE string (= H * W for a well-formed mask).

    Format (pycocotools ``rleToString``): each run is a little-endian base-32 number in chars
    offset by 48, bit 0x20 = more chars follow, bit 0x10 of the last char = negative; from the
    third run on, the value is stored as a difference to the run two places back.
    """
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("RLE string ends inside a run")
            c = counts[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"byte {counts[p]} is not an RLE character")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise ValueError("negative run length")
        runs.append(x)
    return sum(runs)


def _aligned(rec: VideoRecord) -> list[str]:
    lengths = {name: len(a) for name, a in rec.arrays.items() if name not in PER_FRAME_COLUMNS}
    if len(set(lengths.values())) > 1:
        return [f"columns have different row counts {lengths}"]
    return []


def check_candidates(rec: VideoRecord) -> list[str]:
    """Problems of one candidate-cache video record (empty list: fine)."""
    a, t = rec.arrays, rec.attrs
    if not rec.ok:
        return [] if "error" in t else ["bad video without an error message"]
    out = _aligned(rec)
    missing = [c for c in ("frame", "box", "score", "class_id", "rle", "processed_frames") if c not in a]
    if missing or any(k not in t for k in ("height", "width", "num_frames")):
        return out + [f"missing columns/attributes {missing or ['height/width/num_frames']}"]
    if out:
        return out
    H, W, T = int(t["height"]), int(t["width"]), int(t["num_frames"])
    frames, scores, boxes, processed = a["frame"], a["score"], a["box"], a["processed_frames"]
    if H <= 0 or W <= 0:
        out.append(f"frame size {H}x{W} is not positive")
    if len(processed) and (np.any(np.diff(processed) <= 0) or processed[0] < 0 or processed[-1] >= T):
        out.append(f"processed_frames not strictly increasing within [0, {T})")
    if len(frames):
        if np.any(np.diff(frames) < 0):
            out.append("rows not sorted by frame")
        same = np.diff(frames) == 0
        if np.any(same & (np.diff(scores) > 0)):
            out.append("rows of a frame not sorted by descending score")
        if not np.isin(frames, processed).all():
            out.append("rows of frames that are not in processed_frames")
    if not (np.isfinite(scores).all() and np.isfinite(boxes).all()):
        out.append("non-finite scores or boxes")
    if boxes.shape != (len(frames), 4):
        out.append(f"box column has shape {boxes.shape}, expected ({len(frames)}, 4)")
    for i, counts in enumerate(a["rle"]):
        try:
            total = rle_run_total(counts)
        except ValueError as err:
            out.append(f"row {i}: RLE does not decode ({err})")
            continue
        if total != H * W:
            out.append(f"row {i}: RLE covers {total} pixels but the record says {H}x{W} = {H * W}")
            continue
        try:
            mask_utils.decode({"size": [H, W], "counts": counts})
        except Exception as err:  # noqa: BLE001 - any failure is a finding
            out.append(f"row {i}: RLE does not decode ({err})")
    return out


def check_features(rec: VideoRecord, candidate_frames: np.ndarray | None) -> list[str]:
    """Problems of one feature-cache video record; ``candidate_frames``: the aligned candidates' frame column."""
    if not rec.ok:
        return []
    out = _aligned(rec)
    a = rec.arrays
    for name in ("feat", "pos", "feat_flip", "pos_flip"):
        if name in a and not np.isfinite(np.asarray(a[name], np.float32)).all():
            out.append(f"{name} has non-finite values")
    pos = np.asarray(a["pos"]) if "pos" in a else None
    if pos is not None and (pos.ndim != 2 or pos.shape[1] != 10):  # (N, 10), N may be 0 on a frame-less video
        out.append(f"pos has shape {pos.shape}, expected (N, 10)")
    if candidate_frames is not None and "frame" in a:
        if len(a["frame"]) != len(candidate_frames):
            out.append(f"{len(a['frame'])} rows but the candidate cache has {len(candidate_frames)}")
        elif not np.array_equal(a["frame"], candidate_frames):
            out.append("frame column differs from the candidate cache's")
    return out


def _file_problems(store: Store, key: str) -> list[str]:
    out = []
    for p in store.files():
        try:
            with h5py.File(p, "r") as f:
                file_key = json.loads(f.attrs["meta"]).get("key")
        except (OSError, KeyError, ValueError) as err:
            out.append(f"{p.name}: unreadable ({type(err).__name__}: {err})")
            continue
        if file_key != key:
            out.append(f"{p.name}: belongs to artifact {short(str(file_key))}, not {short(key)}")
    return out


def _candidate_store_for(store: Store) -> Store | None:
    """The candidate artifact a feature artifact was extracted from, if it sits beside it."""
    ckey = store.meta.get("upstream", {}).get("candidates")
    if not ckey:
        return None
    path = artifact_dir(store.path.parent, "detect", ckey)
    return Store(path) if (path / "meta.json").exists() else None


def incomplete_problem(store: Store) -> str | None:
    """The completeness problem of an artifact (None: complete, or nothing recorded to tell)."""
    c = store.completeness()
    if c.complete:
        return None
    return f"incomplete artifact, {c.describe()}"


def verify_store(store: Store) -> tuple[list[str], list[str]]:
    """(problems, notes) of one artifact; ``problems`` empty means it verified."""
    meta = store.meta
    key, stage = meta.get("key", ""), meta.get("stage", "")
    problems = _file_problems(store, key)
    notes: list[str] = []
    if problems:
        return problems, notes
    incomplete = incomplete_problem(store)
    if incomplete:
        problems.append(incomplete)
    check: Callable[[VideoRecord], list[str]] = _aligned
    if stage == TEXT_STAGE:  # sentences, offsets and token states: no per-row columns to align
        check = lambda rec: []  # noqa: E731
    elif stage == "detect":
        check = check_candidates
    elif stage == "extract":
        cands = _candidate_store_for(store)
        if cands is None:
            notes.append("candidate cache not found beside it: row counts not compared")
            check = lambda rec: check_features(rec, None)  # noqa: E731
        else:
            cindex = cands.index()

            def check(rec: VideoRecord) -> list[str]:
                frames = cands.read(rec.video_id).arrays.get("frame") if rec.video_id in cindex else None
                if frames is None and rec.ok:
                    return [f"not in candidate cache {cands.path.name}"]
                return check_features(rec, frames)
    ids = store.video_ids()
    index = store.index()
    unsummed = 0
    for vid in ids:
        try:
            rec, found = store.read_checked(vid)
        except CacheError as err:
            problems.append(f"{vid}: {err}")
            continue
        for what in checksum_mismatches(found):
            problems.append(f"{vid}: {what} does not match its checksum (bytes changed on disk in "
                            f"{index[vid].relative_to(store.path)} since they were written)")
        if any(f.startswith("no checksum") for f in found):
            unsummed += 1
        problems += [f"{vid}: {msg}" for msg in check(rec)]
    if unsummed:
        if meta.get("checksums"):
            problems.append(f"{unsummed} of {len(ids)} videos have columns or attributes without a checksum")
        else:
            notes.append(f"{unsummed} of {len(ids)} videos carry no checksums (written by a version before checksums); "
                         "their bytes cannot be verified")
    return problems, notes
