"""A user's own video: an mp4 (any OpenCV-readable file) or a folder of frames, plus sentences.

Sentences come from the command line (a list of strings) and/or a file:
- CSV with a header holding ``query`` and optionally ``query_id``;
- JSON: a list of strings, or of ``{"query_id": ..., "query": ...}`` (``query_id`` optional);
- TXT: one sentence per line.
Without either, a sidecar file is used when present: ``<clip>.queries.{csv,json,txt}`` beside a
clip, ``queries.{csv,json,txt}`` inside a frame folder. Queries without an id are numbered
``q1, q2, ...`` in order. There is no ground truth and no split. Every bad input raises a
one-line ``DataError`` naming the file and row: a single video has nothing to skip to.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from clawcrane.datasets.csv_rows import csv_rows
from clawcrane.datasets.records import Dataset, Query, Video, normalise_sentence
from clawcrane.datasets.video_io import IMAGE_SUFFIXES, ImageFolderFrames, Mp4Frames
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import hash_json, tree_fingerprint

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
QUERY_SUFFIXES = (".csv", ".json", ".txt")
DEFAULT_FOLDER_FPS = 25.0
FINGERPRINT_SAMPLE_BYTES = 8192
QUERY_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
"""A query id names a folder of the output (masks/<query_id>/): letters, digits, _ . - only, no path."""


def check_query_id(qid: object, where: str) -> str:
    """``qid`` when it is a safe folder name (``QUERY_ID_PATTERN``); else a one-line error naming ``where``."""
    if not isinstance(qid, str) or not QUERY_ID_PATTERN.fullmatch(qid):
        if isinstance(qid, str) and len(qid) > 100:
            raise DataError(f"{where}: query id {qid[:40]!r}... is {len(qid)} characters long; an id names an output "
                            f"folder, so use at most 100 (letters, digits, '_', '.' or '-'), e.g. q1")
        raise DataError(f"{where}: query id {qid!r:.60} cannot name an output folder; use 1-100 letters, digits, "
                        f"'_', '.' or '-' (not starting with '.' or '-'), e.g. q1")
    return qid


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def sidecar_queries(path: Path) -> Path | None:
    """``<clip>.queries.csv|json|txt`` beside a clip, ``queries.csv|json|txt`` in a frame folder."""
    for suffix in QUERY_SUFFIXES:
        p = path / f"queries{suffix}" if path.is_dir() else path.with_name(f"{path.stem}.queries{suffix}")
        if p.is_file():
            return p
    return None


def _sentence(text: object, where: str) -> str:
    sentence = normalise_sentence("" if text is None else text)
    if not sentence:
        raise DataError(f"{where}: empty sentence; write the sentence or delete the entry")
    if not re.search(r"[^\W_]", sentence):  # no letter or digit ('!!!', an emoji): no word a head can read
        raise DataError(f"{where}: {sentence!r:.60} has no word (letters or digits); write the sentence or delete the entry")
    return sentence


def _read_csv(path: Path) -> list[tuple[str | None, str]]:
    out = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv_rows(f, path)
        first = next(rows, None)
        fields = [c.strip().lower() for c in (first[1] if first else [])]
        if "query" not in fields:
            raise DataError(
                f"{path}: no 'query' column in the header ({','.join(fields)}); "
                "the first line must name the columns, e.g. query_id,query"
            )
        for line, cols in rows:
            where = f"{path}:{line}"
            if not any(c.strip() for c in cols):
                continue
            if len(cols) != len(fields):
                raise DataError(
                    f"{where}: expected {len(fields)} columns ({','.join(fields)}); quote sentences that contain commas"
                )
            row = dict(zip(fields, cols))
            qid = (row.get("query_id") or "").strip() or None
            out.append((qid, _sentence(row["query"], where)))
    return out


def _read_json(path: Path) -> list[tuple[str | None, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"{path}: invalid JSON ({err}); fix the file") from None
    if isinstance(data, dict) and "queries" in data:
        data = data["queries"]
    if not isinstance(data, list):
        raise DataError(
            f'{path}: expected a JSON list of sentences or of {{"query_id": ..., "query": ...}}; fix the file'
        )
    out = []
    for i, item in enumerate(data):
        where = f"{path} (entry {i})"
        if isinstance(item, str):
            out.append((None, _sentence(item, where)))
        elif isinstance(item, dict) and "query" in item:
            qid = str(item.get("query_id") or "").strip() or None
            out.append((qid, _sentence(item["query"], where)))
        else:
            raise DataError(
                f'{where}: expected a sentence or {{"query_id": ..., "query": ...}}, got {item!r:.60}; fix the entry'
            )
    return out


def read_queries_file(path: str | os.PathLike) -> list[tuple[str | None, str]]:
    """``(query_id or None, sentence)`` from a CSV, JSON or TXT file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: queries file not found; check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".json":
            return _read_json(path)
        if suffix == ".txt":
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            return [(None, _sentence(t, f"{path}:{i}")) for i, t in enumerate(lines, start=1) if t.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-save it as UTF-8") from None
    raise DataError(f"{path}: unknown queries file type {suffix!r}; use .csv (column query), .json or .txt")


def make_queries(video_id: str, items: Sequence[tuple[str | None, str]], *, source: str = "") -> list[Query]:
    """Queries with ids ``q1, q2, ...`` where none was given; duplicate or unsafe ids raise (naming ``source``)."""
    queries, seen = [], set()
    where = source or video_id
    given = {q for q, _ in items if q}
    for n, (qid, sentence) in enumerate(items, start=1):
        if not qid:  # q<n>, or the next q<m> no query was given explicitly
            qid = next(f"q{m}" for m in range(n, n + len(items) + 1) if f"q{m}" not in given)
        qid = check_query_id(qid, where)
        if qid in seen:
            raise DataError(f"{where}: query id {qid!r} is used twice for {video_id}; give each query its own id")
        seen.add(qid)
        queries.append(Query(query_id=qid, video_id=video_id, sentence=sentence))
    return queries


def read_own_video(
    path: str | os.PathLike,
    *,
    queries: Sequence[str] | None = None,
    queries_file: str | os.PathLike | None = None,
    split: str | None = None,
    fps: float | None = None,
) -> Dataset:
    """A clip or frame folder as a one-video dataset; sentences from ``queries_file`` (or the
    sidecar file) first, then ``queries``. ``fps`` sets a frame folder's rate (default 25)."""
    path = Path(path)
    if split:
        raise ConfigError(f"{path}: a single video has no splits; drop --split {split}")
    if path.is_dir():
        source = ImageFolderFrames(path)
        info = source.info(fps or DEFAULT_FOLDER_FPS)
        files = list(source.files)
    elif path.is_file():
        source = Mp4Frames(path)
        info = source.info()
        files = [path]
    else:
        raise DataError(f"{path}: no such video file or frame folder; check the path")
    video_id = path.stem if path.is_file() else path.name
    video = Video(video_id, source, float(fps or info.fps), info.width, info.height, info.num_frames, "")

    items: list[tuple[str | None, str]] = []
    qfile = Path(queries_file) if queries_file else (None if queries else sidecar_queries(path))
    if qfile is not None:
        items += read_queries_file(qfile)
    for i, text in enumerate(queries or (), start=1):
        items.append((None, _sentence(text, f"query {i} given on the command line")))
    query_list = make_queries(video_id, items, source=str(qfile) if qfile is not None else "")

    base = path.parent if path.is_file() else path
    key = hash_json(
        {
            "layout": "video-v1",
            "frames": tree_fingerprint(base, files, sample_bytes=FINGERPRINT_SAMPLE_BYTES),
            "fps": video.fps,
            "queries": [(q.query_id, q.sentence) for q in query_list],
        }
    )
    return Dataset(name="video", root=path, videos={video_id: video}, queries=query_list, fingerprint=key)
