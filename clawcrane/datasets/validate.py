"""Dataset problems and the deep checks behind ``clawcrane doctor``.

Readers find the cheap problems while they read (a malformed CSV row, a missing clip, an h5
without ``reMask``) and put them in ``Dataset.problems``; ``validate`` adds the costly ones:
it decodes every video and reads every ground-truth mask. Each problem is one line naming the
file, what is wrong and the fix. Errors make a dataset unfit for use as it is; warnings are
oddities the pipeline copes with (an annotated instance that no sentence refers to still serves
as a distractor candidate).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from clawcrane.datasets.records import Dataset, Video
from clawcrane.errors import ClawcraneError
from clawcrane.progress import progress

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"


class Problem(str):
    """One line ``"<file>: <what is wrong>; <how to fix it>"`` with a ``severity`` (error or warning).

    A ``str`` so that ``Dataset.problems`` stays a list of strings for every consumer.
    """

    severity: str
    kind: str
    """A name for problems that come by the hundred in normal data (``doctor`` counts them in one line unless ``--verbose``)."""

    def __new__(cls, text: str, severity: str = ERROR, kind: str = "") -> Problem:
        obj = super().__new__(cls, " ".join(str(text).split()))
        obj.severity = severity
        obj.kind = kind
        return obj

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


def problem(path: str | os.PathLike, what: str, fix: str, *, warning: bool = False, kind: str = "") -> Problem:
    """A problem line: ``f"{path}: {what}; {fix}"``; ``kind`` names a family of common warnings."""
    return Problem(f"{path}: {what}; {fix}", WARNING if warning else ERROR, kind)


SUMMARISED = {
    "no-sentence": "video(s) have annotated instances that no sentence refers to (kept as candidates only; normal "
                   "in A2D-Sentences, where most annotated actors have no sentence)",
}
"""Warning kinds ``doctor`` counts in one line unless ``--verbose``: kind -> what the count line says."""


def as_problem(item: str) -> Problem:
    """Plain strings in ``Dataset.problems`` count as errors."""
    return item if isinstance(item, Problem) else Problem(item, ERROR)


def split_problems(problems: Iterable[str]) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings), each in the order found."""
    items = [as_problem(p) for p in problems]
    return [p for p in items if p.is_error], [p for p in items if not p.is_error]


def log_summary(dataset: Dataset) -> None:
    """One log line when a reader found problems (the reader itself never stops for them).

    Errors (items skipped) are a warning; warnings alone (e.g. annotated instances that no
    sentence refers to, normal in A2D) are only an info line.
    """
    errors, warnings = split_problems(dataset.problems)
    if errors:
        log.warning(
            "%s: %d problem(s) while reading (those items were skipped) and %d warning(s); "
            "run `clawcrane doctor %s` to list them",
            dataset.root, len(errors), len(warnings), dataset.root,
        )
    elif warnings:
        log.info("%s: %d warning(s) while reading (nothing skipped); `clawcrane doctor %s` lists them",
                 dataset.root, len(warnings), dataset.root)


def needed_frames(dataset: Dataset) -> dict[str, int]:
    """video_id -> frames it must decode: up to its last annotated or sampled frame."""
    need = {v: 0 for v in dataset.videos}
    for video_id, frames in dataset.annotated_frames.items():
        if frames:
            need[video_id] = max(need.get(video_id, 0), max(frames) + 1)
    for q in dataset.queries:
        if q.frames:
            need[q.video_id] = max(need.get(q.video_id, 0), max(q.frames) + 1)
    return need


def check_decoding(video: Video, needed: int) -> list[Problem]:
    """Decode every frame of ``video``; report unreadable or truncated files and size mismatches."""
    where = video.source.describe()
    count = 0
    shape = None
    try:
        for _, frame in video.iter_frames(None):
            if shape is None:
                shape = frame.shape[:2]
            count += 1
    except ClawcraneError as err:
        if count == 0:
            return [Problem(str(err), ERROR)]
        return [problem(where, f"decoding stops after {count} frames ({err})", "re-encode or replace the clip")]
    if count == 0:
        return [
            problem(
                where, "no frame could be decoded (empty, truncated or not a video)", "re-encode or replace the clip"
            )
        ]
    out: list[Problem] = []
    if shape != (video.height, video.width):
        out.append(
            problem(
                where,
                f"frames are {shape[0]}x{shape[1]} (HxW) but the dataset says {video.height}x{video.width}",
                "fix the size in the annotation files or re-encode the clip at the annotated size",
            )
        )
    if count < needed:
        out.append(
            problem(
                where,
                f"only {count} frames decode but frame {needed - 1} (0-based) is annotated (truncated clip)",
                "re-download or re-encode the clip",
            )
        )
    elif count < video.num_frames:
        out.append(
            problem(
                where,
                f"only {count} frames decode but the dataset lists {video.num_frames} (detection over all frames "
                "would stop there)",
                "fix the frame count in the annotation files or re-encode the clip",
            )
        )
    elif count > video.num_frames:
        out.append(
            problem(
                where,
                f"{count} frames decode but the dataset lists {video.num_frames} (the extra frames are ignored)",
                "fix the frame count in the annotation files",
                warning=True,
            )
        )
    return out


def check_masks(dataset: Dataset, video: Video) -> list[Problem]:
    """Read every annotated instance mask of ``video``; report read errors and size mismatches."""
    bad_size: list[int] = []
    sizes: set[tuple[int, int]] = set()
    out: list[Problem] = []
    for f in dataset.annotated_frames.get(video.video_id, ()):
        try:
            instances = dataset.frame_instances(video.video_id, f)
        except ClawcraneError as err:
            out.append(Problem(str(err), ERROR))
            continue
        for inst in instances:
            if inst.mask.shape != (video.height, video.width):
                bad_size.append(f)
                sizes.add(tuple(inst.mask.shape))
                break
    if bad_size:
        shown = ", ".join(str(f) for f in bad_size[:5]) + (" ..." if len(bad_size) > 5 else "")
        got = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        out.append(
            problem(
                f"{dataset.root} (video {video.video_id})",
                f"masks of frames {shown} are {got} (HxW) but the video is {video.height}x{video.width}",
                "re-export the masks at the frame size or fix the video size in the annotation files",
            )
        )
    return out


def validate(dataset: Dataset, *, decode: bool = True) -> list[Problem]:
    """Every problem of ``dataset``: what its reader found, plus (``decode``) every video decoded
    end to end and every annotated mask read and compared with its frame size."""
    problems = [as_problem(p) for p in dataset.problems]
    if not decode:
        return problems
    need = needed_frames(dataset)
    for video_id, video in progress(
        dataset.videos.items(), desc="doctor: decode", total=len(dataset.videos), unit="video"
    ):
        problems += check_decoding(video, need[video_id])
        problems += check_masks(dataset, video)
    return problems
