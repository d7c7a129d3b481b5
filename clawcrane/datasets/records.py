"""The one record model every reader yields: ``Video``, ``Query``, ``Instance`` and ``Dataset``.

A reader (A2D-Sentences, J-HMDB-Sentences, Ref-YouTube-VOS, a user's own video, the synthetic
benchmark, which is written in the A2D layout) turns a folder into a ``Dataset``. Stages only ever
talk to this model, never to a layout.

Frame indices are 0-based everywhere in memory; readers translate 1-based file names.
Masks are ``bool`` arrays of shape (H, W) at the frame's original resolution.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clawcrane.datasets.video_io import FrameSource
from clawcrane.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Video:
    """A video and a way to decode its frames.

    ``source`` reads frame ``i`` as an RGB uint8 array (H, W, 3); ``iter_frames`` streams a
    subset in order, decoding each frame once.
    """

    video_id: str
    """Dataset-unique id (A2D: the YouTube id; own video: the file stem)."""
    source: FrameSource
    """An mp4 file or a folder of numbered images."""
    fps: float
    """Source frame rate (frames per second)."""
    width: int
    """Frame width W in pixels."""
    height: int
    """Frame height H in pixels."""
    num_frames: int
    """Frame count T."""
    split: str = ""
    """'train', 'test', or '' when the source has no split."""

    def read_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based) as RGB uint8 (H, W, 3)."""
        return self.source.read(i)

    def iter_frames(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(i, frame)`` for ascending ``indices`` (default: all), decoding each once."""
        return self.source.iter(indices)


class LazyFpsVideo(Video):
    """A ``Video`` whose ``fps`` is read from the file the first time it is asked for.

    Readers of large collections build these with ``fps=None`` so that loading a dataset opens no
    clip (A2D has 3,782; its videoset.csv gives the size and frame count, not the frame rate).
    The source must have ``info()`` (``Mp4Frames`` does). A missing or unreadable clip raises its
    one-line ``DataError`` when ``fps`` is read. Equality and hashing ignore ``fps``.
    """

    @property
    def fps(self) -> float:  # type: ignore[override]
        value = self.__dict__.get("_fps")
        if value is None:
            value = float(self.source.info().fps)
            object.__setattr__(self, "_fps", value)
        return value

    @fps.setter
    def fps(self, value: float | None) -> None:  # called once, by the dataclass __init__
        object.__setattr__(self, "_fps", None if value is None else float(value))

    def _key(self) -> tuple:
        return (self.video_id, repr(self.source), self.width, self.height, self.num_frames, self.split)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyFpsVideo) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fps = self.__dict__.get("_fps")
        return (
            f"LazyFpsVideo(video_id={self.video_id!r}, source={self.source!r}, fps={fps if fps else '<lazy>'}, "
            f"width={self.width}, height={self.height}, num_frames={self.num_frames}, split={self.split!r})"
        )


@dataclass(frozen=True)
class Instance:
    """One annotated object in one frame (every instance, referred to or not)."""

    instance_id: str
    """Instance id as the dataset names it (A2D: the ``instance`` value, as text)."""
    mask: np.ndarray = field(repr=False)
    """(H, W) bool."""
    class_id: int = 0
    """Dataset class id (A2D: actor*10 + action); 0 when unknown."""


MaskLoader = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Query:
    """A referring sentence about one object of one video, with ground truth where it exists."""

    query_id: str
    """Dataset-unique id; A2D: ``<video_id>_<instance_id>``."""
    video_id: str
    """The video the sentence describes."""
    sentence: str
    """Lower-cased, whitespace-collapsed sentence; never empty."""
    instance_id: str | None = None
    """Target instance id, or None without ground truth."""
    frames: tuple[int, ...] = ()
    """Annotated frame indices (0-based, ascending) where a GT mask exists; a sample is (query, frame)."""
    query_type: str | None = None
    """Optional category (synthetic: appearance/position/relation/motion/temporal; hard presets add size)."""
    wording: str = field(default="", kw_only=True)
    """'seen', 'paraphrase' (uses wording held out of the train split), or '' when unknown."""
    split: str = ""
    """'train', 'test' or ''."""
    mask_loader: MaskLoader | None = field(default=None, repr=False, compare=False)
    """``mask_loader(frame) -> (H, W) bool``; None when the query has no ground truth."""

    def gt_mask(self, frame: int) -> np.ndarray:
        """The GT mask of the target in annotated frame ``frame``."""
        if self.mask_loader is None or frame not in self.frames:
            raise KeyError(f"query {self.query_id}: no ground-truth mask for frame {frame}")
        return self.mask_loader(frame)

    def with_(self, **changes) -> Query:
        return dataclasses.replace(self, **changes)


InstanceLoader = Callable[[str, int], list[Instance]]


@dataclass
class Dataset:
    """Videos + queries of one source, and access to every annotated instance of a frame.

    ``frame_instances(video_id, frame)`` returns all annotated instances of that frame (the
    oracle detector's candidates); ``annotated_frames[video_id]`` lists the frames that have them.
    """

    name: str
    """Layout name: 'a2d', 'jhmdb', 'ytvos', 'video' (a user's own), or 'synthetic' (A2D layout)."""
    root: Path
    """The folder (or file) the dataset was read from."""
    videos: dict[str, Video]
    """video_id -> Video, in a stable order."""
    queries: list[Query]
    """Every query (= sentence); samples are (query, frame) pairs over ``query.frames``."""
    annotated_frames: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """video_id -> 0-based frames with instance annotations (empty for unannotated sources)."""
    instance_loader: InstanceLoader | None = field(default=None, repr=False)
    """(video_id, frame) -> all instances annotated in that frame."""
    fingerprint: str = ""
    """Content fingerprint of the annotation files, the video list and the media (clips and frame files,
    sampled; see clawcrane.fingerprint): the dataset as a frame-decoding stage sees it."""
    problems: list[str] = field(default_factory=list)
    """Non-fatal problems found while reading (``file: what; fix``), reported by ``doctor``."""
    annotation_fingerprint: str = ""
    """Fingerprint of the annotations alone (text files, annotation masks, the video list), not the media:
    what artifacts are checked against when the media are absent ('' when the reader has none)."""
    missing_media: dict[str, Path] = field(default_factory=dict)
    """video_id -> its absent clip or frame folder, over every video the fingerprint covers (all splits).
    Opened with frames needed (the default) such videos are left out, each a problem; opened with
    ``frames=False`` they are kept and decoding one of their frames raises a one-line ``DataError``."""

    @property
    def media_complete(self) -> bool:
        """Whether every video's media are there, so that ``fingerprint`` describes the dataset."""
        return not self.missing_media

    def identity(self, fingerprint: str | None = None) -> dict[str, str]:
        """What an artifact records of its dataset: name, root and both fingerprints.

        ``fingerprint``: the full fingerprint verified against the caches (``clawcrane.fingerprint.
        match_dataset``), which stands in for this one when the media are absent."""
        return {"name": self.name, "root": str(self.root),
                "fingerprint": self.fingerprint if fingerprint is None else fingerprint,
                "annotation_fingerprint": self.annotation_fingerprint}

    def require_media(self, video_ids: Iterable[str], stage: str) -> None:
        """Refuse, naming the first absent clip or frame folder, when any of ``video_ids`` lacks its media
        (a stage that decodes their frames calls it before any work)."""
        lacking = [v for v in video_ids if v in self.missing_media]
        if lacking:
            more = f" (and those of {len(lacking) - 1} more videos)" if len(lacking) > 1 else ""
            raise DataError(
                f"{self.missing_media[lacking[0]]}: missing{more}, and `{stage}` decodes the frames of video "
                f"{lacking[0]}; put the clips (or frame folders) back (train-head, track-rank, evaluate, ablate and export "
                "run without them)"
            )

    def frame_instances(self, video_id: str, frame: int) -> list[Instance]:
        if self.instance_loader is None:
            return []
        return self.instance_loader(video_id, frame)

    def split_queries(self, split: str | None) -> list[Query]:
        """Queries of one split (None: all)."""
        return [q for q in self.queries if split is None or q.split == split]

    def samples(self, split: str | None = None) -> list[tuple[Query, int]]:
        """(query, frame) pairs: the unit every published metric averages over."""
        return [(q, f) for q in self.split_queries(split) for f in q.frames]

    def video_ids(self, split: str | None = None) -> list[str]:
        return [v for v, video in self.videos.items() if split is None or video.split == split]

    def query_types(self) -> list[str]:
        return sorted({q.query_type for q in self.queries if q.query_type})

    def counts(self) -> dict[str, dict[str, int]]:
        """{'train': {'videos': n, 'queries': n, 'samples': n}, 'test': {...}} plus '' if unsplit."""
        out: dict[str, dict[str, int]] = {}
        splits = sorted({v.split for v in self.videos.values()} | {q.split for q in self.queries})
        for s in splits:
            qs = self.split_queries(s)
            out[s or "all"] = {
                "videos": len(self.video_ids(s)),
                "queries": len(qs),
                "samples": sum(len(q.frames) for q in qs),
            }
        return out


def normalise_sentence(text: str) -> str:
    """Lower-case and collapse whitespace (the A2D protocol's text normalisation)."""
    return " ".join(str(text).lower().split())


def subset(dataset: Dataset, video_ids: Sequence[str]) -> Dataset:
    """The same dataset restricted to ``video_ids`` (used for shards)."""
    keep = set(video_ids)
    return dataclasses.replace(
        dataset,
        videos={k: v for k, v in dataset.videos.items() if k in keep},
        queries=[q for q in dataset.queries if q.video_id in keep],
        annotated_frames={k: v for k, v in dataset.annotated_frames.items() if k in keep},
    )
