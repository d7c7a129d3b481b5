"""A tiny in-memory dataset of drawn shapes for detector tests: no files, no other reader needed.

Each frame is noise with 1-3 filled rectangles (class 11) and discs (class 22) in random
colours; every shape is an annotated instance. Frames are made on demand from a seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from clawcrane.datasets.records import Dataset, Instance, Video
from clawcrane.datasets.video_io import FrameSource

RECT, DISC = 11, 22


def draw_frame(seed: int, height: int = 48, width: int = 64) -> tuple[np.ndarray, list[Instance]]:
    """An RGB uint8 (H, W, 3) frame and its instances, fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    occupied = np.zeros((height, width), bool)
    instances = []
    yy, xx = np.mgrid[:height, :width]
    for k in range(int(rng.integers(1, 4))):
        kind = RECT if rng.random() < 0.5 else DISC
        size = int(rng.integers(10, 18))
        y0 = int(rng.integers(0, height - size))
        x0 = int(rng.integers(0, width - size))
        if kind == RECT:
            mask = (yy >= y0) & (yy < y0 + size) & (xx >= x0) & (xx < x0 + size)
        else:
            r = size / 2
            mask = (yy - y0 - r) ** 2 + (xx - x0 - r) ** 2 <= r * r
        mask &= ~occupied  # later shapes sit behind earlier ones
        if mask.sum() < 20:
            continue
        occupied |= mask
        frame[mask] = rng.integers(120, 256, size=3, dtype=np.uint8)
        instances.append(Instance(instance_id=str(k + 1), mask=mask, class_id=kind))
    return frame, instances


class DrawnFrames(FrameSource):
    """Frames of one drawn video (seeded per frame)."""

    def __init__(self, video_seed: int, num_frames: int, height: int, width: int):
        self.path = Path(f"<drawn video {video_seed}>")
        self.seeds = [video_seed * 1000 + i for i in range(num_frames)]
        self.height, self.width = height, width

    def iter(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        wanted = range(len(self.seeds)) if indices is None else sorted(set(indices))
        for i in wanted:
            yield i, draw_frame(self.seeds[i], self.height, self.width)[0]


def drawn_dataset(train_videos: int = 2, test_videos: int = 1, frames: int = 3, height: int = 48, width: int = 64) -> Dataset:
    """A Dataset whose every frame is annotated; videos 'tr*' are train, 'te*' test."""
    videos, sources = {}, {}
    for split, n, base in (("train", train_videos, 1), ("test", test_videos, 500)):
        for v in range(n):
            vid = f"{split[:2]}{v}"
            src = DrawnFrames(base + v, frames, height, width)
            sources[vid] = src
            videos[vid] = Video(vid, src, 25.0, width, height, frames, split)

    def instances(video_id: str, frame: int) -> list[Instance]:
        src = sources[video_id]
        return draw_frame(src.seeds[frame], src.height, src.width)[1]

    return Dataset(
        name="drawn",
        root=Path("<drawn>"),
        videos=videos,
        queries=[],
        annotated_frames={vid: tuple(range(frames)) for vid in videos},
        instance_loader=instances,
        fingerprint=f"drawn-{train_videos}-{test_videos}-{frames}-{height}-{width}",
    )
