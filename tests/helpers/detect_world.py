"""Tiny datasets and a fake deterministic detector for the detect / cache tests.

Videos are small mp4s of coloured rectangles on black; each annotated frame's instances are the
rectangles drawn in it, so the oracle and recall have exact ground truth.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from clawcrane.datasets.records import Dataset, Instance, Video
from clawcrane.datasets.video_io import Mp4Frames, write_mp4
from clawcrane.fingerprint import tree_fingerprint
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.detectors import Detector, FrameCandidates

H, W, T = 24, 32, 6
COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
ANNOTATED = (1, 4)


def rects(video_index: int, frame: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the objects drawn in one frame: two boxes, one moving right."""
    a = (2, 12, 2 + frame, 10 + frame)
    b = (12 + video_index % 3, 22, 18, 30)
    return [a, b]


def frame_image(video_index: int, frame: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for k, (y0, y1, x0, x1) in enumerate(rects(video_index, frame)):
        img[y0:y1, x0:x1] = COLOURS[(k + video_index) % 3]
    return img


def gt_masks(video_index: int, frame: int) -> np.ndarray:
    out = np.zeros((2, H, W), bool)
    for k, (y0, y1, x0, x1) in enumerate(rects(video_index, frame)):
        out[k, y0:y1, x0:x1] = True
    return out


def write_videos(root: Path, n: int = 4, frames: int = T) -> list[Path]:
    paths = []
    for v in range(n):
        p = root / f"vid{v:02d}.mp4"
        write_mp4(p, (frame_image(v, t) for t in range(frames)), fps=10)
        paths.append(p)
    return paths


def load_dataset(root: Path, n: int = 4, frames: int = T) -> Dataset:
    """The Dataset over ``write_videos(root, n)``: vidNN, frames 1 and 4 annotated with both boxes."""
    videos = {}
    for v in range(n):
        vid = f"vid{v:02d}"
        videos[vid] = Video(vid, Mp4Frames(root / f"{vid}.mp4"), fps=10.0, width=W, height=H, num_frames=frames)

    def instances(video_id: str, frame: int) -> list[Instance]:
        v = int(video_id[3:])
        return [Instance(str(k + 1), m, class_id=10 + k) for k, m in enumerate(gt_masks(v, frame))]

    files = sorted(root.glob("*.mp4"))
    return Dataset(
        name="synthetic", root=root, videos=videos, queries=[],
        annotated_frames={vid: ANNOTATED for vid in videos}, instance_loader=instances,
        fingerprint=tree_fingerprint(root, files),
    )


class FakeDetector(Detector):
    """Deterministic masks from frame content: one per colour channel (> 128), plus a blob of
    everything non-black; scores from the mask area. ``calls`` records every frame it saw."""

    name = "fake"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls: list[tuple[str, int]] = []

    def key(self) -> str:
        return "fake-v1"

    def detect(self, frames, refs):
        out = []
        for img, ref in zip(frames, refs):
            self.calls.append(ref)
            if self.delay:
                time.sleep(self.delay)
            masks = np.stack([img[..., c] > 128 for c in range(3)] + [img.max(-1) > 64])  # (4, H, W)
            area = masks.reshape(4, -1).mean(1)
            out.append(FrameCandidates(
                masks=masks,
                boxes=np.stack([mask_ops.tight_box(m) for m in masks]).astype(np.float32),
                scores=(0.2 + 0.8 * area).astype(np.float32),
                class_ids=np.arange(4, dtype=np.int32),
            ))
        return out


def fake_key(spec: str, dataset) -> str:
    return f"fake:{spec}"


def fake_factory(made: list | None = None, delay: float = 0.0):
    """A detector factory returning FakeDetectors (appended to ``made``)."""

    def factory(spec, dataset, *, device="cpu", batch_size=4):
        d = FakeDetector(delay=delay)
        if made is not None:
            made.append(d)
        return d

    return factory


def refusing_factory(spec, dataset, *, device="cpu", batch_size=4):
    raise AssertionError("the detector must not be built on a cache hit")


def read_all(path) -> dict:
    """video_id -> (arrays, attrs) of an artifact, for equality checks."""
    from clawcrane.cache.store import Store

    s = Store(path)
    return {v: (s.read(v).arrays, s.read(v).attrs) for v in s.video_ids()}


def assert_same_content(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for v in a:
        (arr_a, at_a), (arr_b, at_b) = a[v], b[v]
        assert at_a == at_b, v
        assert sorted(arr_a) == sorted(arr_b), v
        for name in arr_a:
            if isinstance(arr_a[name], list):
                assert arr_a[name] == arr_b[name], (v, name)
            else:
                np.testing.assert_array_equal(arr_a[name], arr_b[name], err_msg=f"{v} {name}")
