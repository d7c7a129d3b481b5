"""A2D-Sentences reader (``../shared/datasets.md`` §1); the synthetic benchmark uses the same layout.

```
ROOT/Release/videoset.csv                    no header; vid,label,start,end,height,width,num_frames,num_labeled,split
ROOT/Release/clips320H/<video_id>.mp4
ROOT/text_annotations/a2d_annotation.txt     header video_id,instance_id,query
ROOT/text_annotations/a2d_missed_videos.txt  excluded from both splits
ROOT/text_annotations/a2d_annotation_with_instances/<video_id>/<FFFFF>.h5   1-based frame numbers
ROOT/text_annotations/query_types.csv        optional: video_id,instance_id,query_type[,wording]
```
A sample is (sentence, annotated frame whose ``instance`` list holds the sentence's instance id).
Loading opens every h5 file once for its ``instance`` list and mask shape (the protocol needs
them) but no clip and no mask data: masks load on demand through a small LRU cache.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from clawcrane.datasets.a2d_h5 import (
    INSTANCES,
    A2DMasks,
    BadFile,
    FrameIndex,
    canonical_instance_id,
    h5_path,
    index_h5,
)
from clawcrane.datasets.csv_rows import csv_rows
from clawcrane.datasets.records import Dataset, LazyFpsVideo, Query, normalise_sentence
from clawcrane.datasets.validate import Problem, log_summary, problem
from clawcrane.datasets.video_io import MissingFrames, Mp4Frames
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import tree_fingerprint
from clawcrane.progress import progress

log = logging.getLogger(__name__)

VIDEOSET = "Release/videoset.csv"
CLIPS = "Release/clips320H"
SENTENCES = "text_annotations/a2d_annotation.txt"
MISSED = "text_annotations/a2d_missed_videos.txt"
QUERY_TYPES = "text_annotations/query_types.csv"
SYNTH_SCENES = "synth_scenes.json"
SPLIT_CODES = {"0": "train", "1": "test"}
DROPPED_INSTANCE_IDS = {"1 (copy)"}
"""Rows the protocol drops (one train row of the real file duplicates instance 1)."""
FINGERPRINT_SAMPLE_BYTES = 8192
"""Clips and h5 files enter the fingerprint by path, size and their first/last 8 KiB."""


def is_a2d(root: Path) -> bool:
    return (root / VIDEOSET).is_file() or (root / SENTENCES).is_file()


@dataclass(frozen=True)
class VideoRow:
    """One row of ``videoset.csv``."""

    video_id: str
    label: int
    height: int
    width: int
    num_frames: int
    split: str


# ---- text files ---------------------------------------------------------------------------------


def _videoset_row(cols: list[str], where: str, rows: dict[str, VideoRow], problems: list[Problem]) -> None:
    if not cols or all(not c.strip() for c in cols):
        return
    fix = "fix the row (vid,label,start,end,height,width,num_frames,num_labeled,split) or delete it"
    if len(cols) != 9:
        problems.append(problem(where, f"expected 9 comma-separated columns, found {len(cols)}", fix))
        return
    vid = cols[0].strip()
    try:
        label, height, width, num_frames = (int(float(cols[i])) for i in (1, 4, 5, 6))
    except (ValueError, OverflowError):
        problems.append(problem(where, "label/height/width/num_frames are not integers", fix))
        return
    split = SPLIT_CODES.get(cols[8].strip())
    if split is None:
        problems.append(problem(where, f"split column is {cols[8].strip()!r}, expected 0 (train) or 1 (test)", fix))
    elif not vid or height <= 0 or width <= 0 or num_frames <= 0:
        problems.append(problem(where, "empty video id or non-positive size/frame count", fix))
    elif vid in rows:
        problems.append(problem(where, f"video {vid} is listed twice (first row kept)", "delete the duplicate row"))
    else:
        rows[vid] = VideoRow(vid, label, height, width, num_frames, split)


def read_videoset(path: Path, problems: list[Problem]) -> dict[str, VideoRow]:
    """``videoset.csv`` (no header, 9 columns); malformed rows become problems and are skipped."""
    if not path.is_file():
        raise DataError(f"{path}: missing; an A2D-Sentences folder needs Release/videoset.csv (9 columns, no header)")
    rows: dict[str, VideoRow] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line, cols in csv_rows(f, path):
                _videoset_row(cols, f"{path}:{line}", rows, problems)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file ({err}); re-save it as UTF-8 CSV") from None
    return rows


def read_missed(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()}


def read_table(path: Path, header: tuple[str, ...], problems: list[Problem]) -> list[tuple[int, list[str]]]:
    """Rows ``(line, columns)`` of a CSV file with ``header`` (one-line DataError when the header is
    wrong); rows of the wrong width become problems and are skipped."""
    out = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv_rows(f, path)
            _, first = next(reader, (0, None))
            if first is None or tuple(c.strip().lower() for c in first) != header:
                raise DataError(
                    f"{path}: first line is {','.join(first or [])!r}, expected the header {','.join(header)}; "
                    "add or fix the header"
                )
            for line, cols in reader:
                if not cols or all(not c.strip() for c in cols):
                    continue
                if len(cols) != len(header):
                    problems.append(
                        problem(
                            f"{path}:{line}",
                            f"expected {len(header)} columns ({','.join(header)}), found {len(cols)}",
                            "quote fields that contain commas, or delete the row",
                        )
                    )
                    continue
                out.append((line, cols))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable UTF-8 CSV file ({err}); re-save it as UTF-8 CSV") from None
    return out


def read_sentences(path: Path, problems: list[Problem]) -> list[tuple[str, str, str]]:
    """``(video_id, instance_id, sentence)`` rows of ``a2d_annotation.txt``, cleaned per the protocol."""
    if not path.is_file():
        raise DataError(f"{path}: missing; an A2D-Sentences folder needs text_annotations/a2d_annotation.txt")
    out = []
    seen: set[tuple[str, str]] = set()
    for line, (vid, inst, query) in read_table(path, ("video_id", "instance_id", "query"), problems):
        vid, raw_inst = vid.strip(), inst.strip()
        if raw_inst in DROPPED_INSTANCE_IDS:
            continue
        where = f"{path}:{line}"
        inst = canonical_instance_id(raw_inst)
        sentence = normalise_sentence(query)
        if not sentence:
            problems.append(
                problem(
                    where, f"empty sentence for video {vid} instance {inst}", "write the sentence or delete the row"
                )
            )
            continue
        if not inst.isdigit():
            problems.append(
                problem(where, f"instance_id {raw_inst!r} is not an integer", "fix the id or delete the row")
            )
            continue
        if (vid, inst) in seen:
            problems.append(
                problem(
                    where,
                    f"second sentence for video {vid} instance {inst} (first kept)",
                    "delete the duplicate row",
                    warning=True,
                )
            )
            continue
        seen.add((vid, inst))
        out.append((vid, inst, sentence))
    return out


QUERY_TYPE_HEADER = ("video_id", "instance_id", "query_type")
WORDINGS = ("seen", "paraphrase")
"""Values of query_types.csv's optional 4th column ``wording`` (the synthetic hard presets write it)."""


def _query_type_header(path: Path) -> tuple[str, ...]:
    """The 3-column header, or the 4-column one when the file's first line ends in ``wording``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = next(csv.reader(f), None) or []
    except (UnicodeDecodeError, csv.Error):
        return QUERY_TYPE_HEADER  # read_table reports it
    wide = QUERY_TYPE_HEADER + ("wording",)
    return wide if tuple(c.strip().lower() for c in first) == wide else QUERY_TYPE_HEADER


def read_query_types(path: Path, problems: list[Problem]) -> dict[tuple[str, str], tuple[str, str]]:
    """(video_id, instance_id) -> (query_type, wording); wording is '' without the 4th column."""
    if not path.is_file():
        return {}
    out = {}
    for line, cols in read_table(path, _query_type_header(path), problems):
        vid, inst, qtype = cols[:3]
        wording = cols[3].strip() if len(cols) > 3 else ""
        if not qtype.strip():
            problems.append(problem(f"{path}:{line}", "empty query_type", "fill it in or delete the row"))
            continue
        if wording and wording not in WORDINGS:
            problems.append(problem(f"{path}:{line}", f"wording {wording!r} is not one of {', '.join(WORDINGS)}",
                                    "fix the value or leave it empty (query type kept, wording unknown)"))
            wording = ""
        out[(vid.strip(), canonical_instance_id(inst))] = (qtype.strip(), wording)
    return out


# ---- the reader ---------------------------------------------------------------------------------


def _frame_number(name: str) -> int | None:
    m = re.fullmatch(r"(\d+)\.h5", name)
    return int(m.group(1)) if m and int(m.group(1)) >= 1 else None


def _index_video(root: Path, row: VideoRow, problems: list[Problem]) -> dict[int, FrameIndex]:
    """0-based frame -> FrameIndex for every readable h5 of one video."""
    folder = root / INSTANCES / row.video_id
    if not folder.is_dir():
        return {}
    frames: dict[int, FrameIndex] = {}
    bad_size: list[str] = []
    sizes: set[tuple[int, int]] = set()
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".h5"):
            continue
        path = folder / name
        number = _frame_number(name)
        if number is None:
            problems.append(
                problem(path, "file name is not a 1-based 5-digit frame number (00001.h5 ...)", "rename or delete it")
            )
            continue
        if number > row.num_frames:
            problems.append(
                problem(
                    path,
                    f"frame {number} is beyond the {row.num_frames} frames videoset.csv lists",
                    "fix videoset.csv or delete the file",
                )
            )
            continue
        try:
            idx = index_h5(path)
        except BadFile as bad:
            problems.append(problem(path, bad.what, bad.fix))
            continue
        if (idx.height, idx.width) != (row.height, row.width):
            bad_size.append(name)
            sizes.add((idx.height, idx.width))
        frames[number - 1] = idx
    if bad_size:
        got = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        problems.append(
            problem(
                folder,
                f"masks in {', '.join(bad_size[:4])}{' ...' if len(bad_size) > 4 else ''} are {got} (HxW) but "
                f"videoset.csv says {row.height}x{row.width} (the mask size is used as the frame size)",
                "nothing to do if videoset.csv lists the original YouTube size; else re-export the masks at the clip size",
                warning=len(sizes) == 1,
            )
        )
    return frames


def _h5_files(root: Path, video_ids: list[str]) -> list[Path]:
    files = []
    for v in video_ids:
        folder = root / INSTANCES / v
        if folder.is_dir():
            files += [Path(INSTANCES) / v / n for n in os.listdir(folder) if n.endswith(".h5")]
    return files


def _text_files(root: Path) -> list[str]:
    return [p for p in (VIDEOSET, SENTENCES, MISSED, QUERY_TYPES) if (root / p).is_file()]


def a2d_fingerprint(root: Path, video_ids: list[str], h5_files: list[Path] | None = None) -> str:
    """Annotation text files in full; clips and h5 files by path, size and sampled bytes."""
    media = [Path(CLIPS) / f"{v}.mp4" for v in video_ids]
    media += _h5_files(root, video_ids) if h5_files is None else h5_files
    h = hashlib.sha256(b"a2d-layout-v1")
    h.update(tree_fingerprint(root, _text_files(root)).encode())
    h.update(tree_fingerprint(root, media, sample_bytes=FINGERPRINT_SAMPLE_BYTES).encode())
    return h.hexdigest()


def a2d_annotation_fingerprint(root: Path, video_ids: list[str], h5_files: list[Path] | None = None) -> str:
    """The annotations alone: the text files in full, the video list, the h5 files sampled; no clip."""
    h = hashlib.sha256(b"a2d-annotations-v1")
    h.update(tree_fingerprint(root, _text_files(root)).encode())
    h.update("\n".join(video_ids).encode())
    h.update(tree_fingerprint(root, _h5_files(root, video_ids) if h5_files is None else h5_files,
                              sample_bytes=FINGERPRINT_SAMPLE_BYTES).encode())
    return h.hexdigest()


def _clip_problem(clip: Path) -> str | None:
    """Why ``clip`` cannot be decoded ('clip is missing', 'clip is an empty file'), or None when it is there."""
    try:
        size = clip.stat().st_size if clip.is_file() else None
    except OSError:
        size = None
    if size is None:
        return "clip is missing"
    return "clip is an empty file" if size == 0 else None


def read_a2d(root: str | os.PathLike, *, split: str | None = None, frames: bool = True) -> Dataset:
    """Read an A2D-Sentences-layout folder (``split``: 'train', 'test' or None for both).

    ``frames``: whether the caller decodes frames. When it does (the default), a video whose clip
    is missing or empty is left out with its sentences, as a problem. With ``frames=False``
    (stages that read only the annotations and the caches) such a video is kept with its sentences;
    decoding one of its frames raises a one-line ``DataError`` naming the clip. Either way
    ``Dataset.missing_media`` lists the absent clips.
    """
    root = Path(root)
    if split not in (None, "train", "test"):
        raise ConfigError(
            f"{root}: A2D-Sentences has splits 'train' and 'test', not {split!r}; pass --split train or --split test"
        )
    problems: list[Problem] = []
    rows = read_videoset(root / VIDEOSET, problems)
    missed = read_missed(root / MISSED)
    sentences = read_sentences(root / SENTENCES, problems)
    qtypes = read_query_types(root / QUERY_TYPES, problems)
    usable = [v for v in rows if v not in missed]
    h5_files = _h5_files(root, usable)
    fingerprint = a2d_fingerprint(root, usable, h5_files)
    annotation_fingerprint = a2d_annotation_fingerprint(root, usable, h5_files)
    clip_problems = {v: _clip_problem(root / CLIPS / f"{v}.mp4") for v in usable}
    missing_media = {v: root / CLIPS / f"{v}.mp4" for v, why in clip_problems.items() if why}

    videos: dict[str, LazyFpsVideo] = {}
    index: dict[str, dict[int, FrameIndex]] = {}
    for vid in progress(
        [v for v in usable if split is None or rows[v].split == split], desc="a2d: index", unit="video"
    ):
        row = rows[vid]
        clip = root / CLIPS / f"{vid}.mp4"
        what = clip_problems[vid]
        if what and frames:
            problems.append(
                problem(
                    clip,
                    f"{what} (video skipped with its sentences)",
                    "put the mp4 there, or add the id to a2d_missed_videos.txt",
                )
            )
            continue
        index[vid] = _index_video(root, row, problems)
        # The annotation masks are at the clip's resolution (320 px high for real A2D), while
        # videoset.csv may list the original video's size: the masks decide the frame size.
        sizes = {(idx.height, idx.width) for idx in index[vid].values()}
        height, width = sizes.pop() if len(sizes) == 1 else (row.height, row.width)
        source = MissingFrames(clip, what) if what else Mp4Frames(clip)
        videos[vid] = LazyFpsVideo(vid, source, None, width, height, row.num_frames, row.split)

    masks = A2DMasks(root)
    queries: list[Query] = []
    with_sentence: dict[str, set[str]] = defaultdict(set)
    for vid, inst, sentence in sentences:
        if vid in missed:
            continue
        if vid not in rows:
            problems.append(
                problem(
                    root / SENTENCES,
                    f"video {vid} (instance {inst}) is not in videoset.csv",
                    "add the video or delete the row",
                )
            )
            continue
        if vid not in videos:
            continue  # another split, or its clip is missing and frames are needed (reported above)
        with_sentence[vid].add(inst)
        frames = tuple(f for f, idx in sorted(index[vid].items()) if inst in idx.instance_ids)
        if not frames:
            problems.append(
                problem(
                    h5_path(root, vid, 0).parent,
                    f"no annotated frame lists instance {inst} of video {vid}, so its sentence yields no sample",
                    "check instance_id in a2d_annotation.txt",
                    warning=True,
                )
            )
        queries.append(
            Query(
                query_id=f"{vid}_{inst}",
                video_id=vid,
                sentence=sentence,
                instance_id=inst,
                frames=frames,
                query_type=qtypes.get((vid, inst), (None, ""))[0],
                wording=qtypes.get((vid, inst), (None, ""))[1],
                split=videos[vid].split,
                mask_loader=functools.partial(masks.mask, vid, inst),
            )
        )
    for vid, frames in index.items():
        orphans = sorted({i for idx in frames.values() for i in idx.instance_ids} - with_sentence[vid], key=int)
        if orphans:
            problems.append(
                problem(
                    root / INSTANCES / vid,
                    f"instance(s) {', '.join(orphans)} are annotated but have no sentence (kept as candidates only)",
                    "add sentences to a2d_annotation.txt if they should be queries",
                    warning=True,
                    kind="no-sentence",
                )
            )
    dataset = Dataset(
        name="synthetic" if (root / SYNTH_SCENES).is_file() else "a2d",
        root=root,
        videos=dict(videos),
        queries=queries,
        annotated_frames={vid: tuple(sorted(frames)) for vid, frames in index.items()},
        instance_loader=masks,
        fingerprint=fingerprint,
        problems=list(problems),
        annotation_fingerprint=annotation_fingerprint,
        missing_media=missing_media,
    )
    log_summary(dataset)
    return dataset
