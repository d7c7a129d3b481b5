"""Detect which benchmark layout a path holds and read it: ``open_dataset(path)``.

| layout | recognised by |
|---|---|
| ``a2d`` (also the synthetic benchmark) | ``Release/videoset.csv`` or ``text_annotations/a2d_annotation.txt`` |
| ``jhmdb`` | ``jhmdb_annotation.txt``, or ``Rename_Images/`` + ``puppet_mask/`` |
| ``ytvos`` | ``meta_expressions/``, or ``train|valid|test/JPEGImages/`` |
| ``video`` | a video file (.mp4, .avi, ...) or a folder holding image frames |
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from clawcrane.datasets.a2d import is_a2d, read_a2d
from clawcrane.datasets.jhmdb import is_jhmdb, read_jhmdb
from clawcrane.datasets.own_video import VIDEO_SUFFIXES, is_frame_folder, is_video_file, read_own_video
from clawcrane.datasets.records import Dataset
from clawcrane.datasets.ytvos import is_ytvos, read_ytvos
from clawcrane.errors import ConfigError, DataError

LAYOUTS = ("a2d", "jhmdb", "ytvos", "video")

EXPECTED = (
    "Release/videoset.csv + text_annotations/a2d_annotation.txt (A2D-Sentences or synthetic), "
    "jhmdb_annotation.txt + Rename_Images/ + puppet_mask/ (J-HMDB-Sentences), "
    "meta_expressions/<split>/meta_expressions.json + <split>/JPEGImages/ (Ref-YouTube-VOS), "
    f"or a video file ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames (.png/.jpg)"
)


def detect_layout(path: str | os.PathLike) -> str:
    """One of ``LAYOUTS``; a one-line DataError saying what was expected otherwise."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; give a dataset folder, a video file or a frame folder")
    if p.is_file():
        if is_video_file(p):
            return "video"
        raise DataError(f"{p}: not a video file (suffix {p.suffix or 'none'}); expected {EXPECTED}")
    if is_a2d(p):
        return "a2d"
    if is_jhmdb(p):
        return "jhmdb"
    if is_ytvos(p):
        return "ytvos"
    if is_frame_folder(p):
        return "video"
    raise DataError(f"{p}: unknown dataset layout; expected {EXPECTED}")


def open_dataset(
    path: str | os.PathLike,
    *,
    split: str | None = None,
    queries: Sequence[str] | None = None,
    queries_file: str | os.PathLike | None = None,
    frames: bool = True,
) -> Dataset:
    """Detect the layout of ``path`` and read it (``split``: keep one split; None: all).

    ``queries`` / ``queries_file`` give the sentences of a user's own video (layout 'video');
    the benchmark layouts carry their own and refuse them.

    ``frames``: whether the caller decodes frames (detect, extract, train-detector, segment,
    overlays). ``frames=False`` opens a benchmark dataset without its media, for the stages that
    read only the annotations and the caches (train-head, track-rank, evaluate, ablate, export):
    videos whose clip or frame folder is absent are kept with their sentences, and decoding one of
    their frames raises a one-line ``DataError`` naming the absent file. With frames needed (the
    default) such videos are left out with their sentences, each a problem.
    """
    layout = detect_layout(path)
    if layout == "video":
        return read_own_video(path, queries=queries, queries_file=queries_file, split=split)
    if queries or queries_file:
        raise ConfigError(
            f"{path}: a {layout} dataset brings its own sentences; drop --query/--queries (they are for a single video)"
        )
    if layout == "a2d":
        return read_a2d(path, split=split, frames=frames)
    if layout == "jhmdb":
        return read_jhmdb(path, split=split, frames=frames)
    return read_ytvos(path, split=split, frames=frames)
