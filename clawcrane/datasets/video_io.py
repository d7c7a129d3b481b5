"""Decoding and encoding frames with OpenCV: mp4 files and folders of numbered images.

Every frame leaves this module as RGB uint8 (H, W, 3). Decoding is sequential (``grab`` for
skipped frames, ``retrieve`` for wanted ones), which is exact for every codec, unlike seeking.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from clawcrane.errors import DataError

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
"""ffmpeg's own messages ('moov atom not found', decode warnings) stay off stderr: an unreadable video is
reported by ClawCrane in one line naming the file. Set OPENCV_FFMPEG_LOGLEVEL=32 to see them."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


class FrameSource(ABC):
    """Reads frames of one video. Subclasses: ``Mp4Frames``, ``ImageFolderFrames``, ``MissingFrames``."""

    path: Path

    def read(self, i: int) -> np.ndarray:
        for _, frame in self.iter([i]):
            return frame
        raise DataError(f"{self.path}: frame {i} does not exist; check the frame index")

    @abstractmethod
    def iter(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(i, frame)`` for ascending ``indices`` (None: every frame)."""

    def describe(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    num_frames: int


class Mp4Frames(FrameSource):
    """Frames of a video file (mp4, avi, ...), decoded in order."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Mp4Frames({str(self.path)!r})"

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise DataError(f"{self.path}: video file is missing; put the clip there or drop it from the dataset")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise DataError(f"{self.path}: cannot open video (unreadable or not a video); re-encode it as mp4 (H.264/mp4v)")
        return cap

    def info(self) -> VideoInfo:
        cap = self._open()
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
            w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        if w <= 0 or h <= 0 or n <= 0:
            raise DataError(f"{self.path}: video has no decodable frames (empty or truncated); re-encode or remove it")
        return VideoInfo(fps=fps, width=w, height=h, num_frames=n)

    def iter(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        wanted = None if indices is None else sorted(set(int(i) for i in indices))
        cap = self._open()
        try:
            pos = 0
            targets = iter(wanted) if wanted is not None else None
            nxt = next(targets, None) if targets is not None else 0
            while nxt is not None:
                while pos < nxt:
                    if not cap.grab():
                        raise DataError(
                            f"{self.path}: could not decode frame {pos} of {nxt + 1} wanted (file truncated or "
                            "corrupt); re-encode the clip"
                        )
                    pos += 1
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    if wanted is None:
                        return  # natural end of the stream
                    raise DataError(
                        f"{self.path}: could not decode frame {nxt} (file truncated or corrupt); "
                        "re-encode the clip"
                    )
                pos += 1
                yield nxt, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                nxt = next(targets, None) if targets is not None else nxt + 1
        finally:
            cap.release()


class ImageFolderFrames(FrameSource):
    """Frames stored as numbered images (``00001.png`` ...), ordered by natural sort."""

    def __init__(self, path: str | os.PathLike, files: Sequence[Path] | None = None):
        self.path = Path(path)
        if files is None:
            if not self.path.is_dir():
                raise DataError(f"{self.path}: frame folder is missing; point to a folder of numbered images")
            files = sorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
            )
        self.files = list(files)

    def __repr__(self) -> str:
        return f"ImageFolderFrames({str(self.path)!r}, {len(self.files)} files)"

    def info(self, fps: float = 25.0) -> VideoInfo:
        if not self.files:
            raise DataError(f"{self.path}: no image frames (.png/.jpg) found; point to a folder of numbered frames")
        first = self.read(0)
        return VideoInfo(fps=fps, width=first.shape[1], height=first.shape[0], num_frames=len(self.files))

    def iter(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        wanted = range(len(self.files)) if indices is None else sorted(set(int(i) for i in indices))
        for i in wanted:
            if not 0 <= i < len(self.files):
                raise DataError(f"{self.path}: frame {i} does not exist (folder has {len(self.files)} images)")
            bgr = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(f"{self.files[i]}: unreadable image; replace or remove the file")
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class MissingFrames(FrameSource):
    """The frames of a video whose media (a clip, a frame folder) are absent.

    Readers give it to the videos they keep when a dataset is opened without its media
    (``open_dataset(..., frames=False)``: train-head, track-rank, evaluate, ablate, export need only
    the annotations and the caches). Asking it for a frame, or for the frame rate, raises a
    one-line ``DataError`` naming the absent file. ``files``: the frame files a folder would hold
    (their names serve as frame names), empty for a clip.
    """

    def __init__(self, path: str | os.PathLike, what: str = "clip is missing", files: Sequence[Path] = ()):
        self.path = Path(path)
        self.what = what
        self.files = list(files)

    def __repr__(self) -> str:
        return f"MissingFrames({str(self.path)!r})"

    def error(self) -> DataError:
        return DataError(f"{self.path}: {self.what}, and this stage decodes frames; put it back (only train-head, "
                         "track-rank, evaluate, ablate and export run without the videos)")

    def info(self) -> VideoInfo:
        raise self.error()

    def iter(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        raise self.error()


def open_frames(path: str | os.PathLike) -> FrameSource:
    """An mp4 (or any OpenCV-readable file) or a folder of frames."""
    p = Path(path)
    if p.is_dir():
        return ImageFolderFrames(p)
    return Mp4Frames(p)


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write RGB uint8 frames to ``path`` (mp4v codec) atomically; returns the frame count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    writer = None
    n = 0
    try:
        for frame in frames:  # any iterable, e.g. a generator: frames are encoded one at a time
            if writer is None:
                H, W = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (W, H))
                if not writer.isOpened():
                    raise DataError(f"{path}: OpenCV cannot write mp4 here; check the folder is writable")
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
            n += 1
    except BaseException:
        if writer is not None:
            writer.release()
            writer = None
        tmp.unlink(missing_ok=True)  # a failed or interrupted write leaves no partial file
        raise
    finally:
        if writer is not None:
            writer.release()
    if n == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: no frames to write")
    os.replace(tmp, path)
    return n
