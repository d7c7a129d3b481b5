"""Tiny inputs for the extract tests: an mp4 per video, a candidate cache, a Dataset built directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clawcrane.cache.candidates import VideoCandidates
from clawcrane.cache.store import Store
from clawcrane.datasets.records import Dataset, Video
from clawcrane.datasets.video_io import Mp4Frames, write_mp4
from clawcrane.pipeline import masks as mask_ops

H, W, T = 48, 64, 5
FINGERPRINT = "f" * 64


def frames_of(seed: int) -> np.ndarray:
    """(T, H, W, 3) uint8: smooth colour blobs that move (mp4v keeps them recognisable)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    out = np.zeros((T, H, W, 3), np.uint8)
    for t in range(T):
        img = np.full((H, W, 3), 40, np.float32)
        for _ in range(3):
            cy, cx, r = rng.uniform(8, H - 8), rng.uniform(8, W - 8), rng.uniform(5, 12)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(60, 250, 3)
        out[t] = img.astype(np.uint8)
    return out


def candidates_of(video_id: str, frames: dict[int, list[np.ndarray]]) -> VideoCandidates:
    """A VideoCandidates from {frame: [(H, W) bool masks]} (rows by frame, then given order)."""
    ms, fr = [], []
    for f in sorted(frames):
        for m in frames[f]:
            ms.append(m)
            fr.append(f)
    K = len(ms)
    stack = np.stack(ms) if K else np.zeros((0, H, W), bool)
    return VideoCandidates(
        video_id=video_id, height=H, width=W, num_frames=T,
        frames=np.asarray(fr, np.int32), boxes=np.stack([mask_ops.tight_box(m) for m in ms]) if K else np.zeros((0, 4), np.float32),
        scores=np.linspace(1.0, 0.5, K, dtype=np.float32), class_ids=np.ones(K, np.int32),
        rles=mask_ops.encode_many(stack), processed_frames=np.arange(T, dtype=np.int32), fps=10.0,
    )


def rect(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def build(tmp: Path, key: str = "c" * 64) -> tuple[Path, Dataset, dict[str, VideoCandidates]]:
    """Cache root with one candidate artifact over three videos, and the matching Dataset.

    'a': 3 frames with 2, 1, 3 candidates (one of them a single pixel); 'b': 1 frame, 2 candidates;
    'c': no candidates at all (its feature rows are empty).
    """
    data = tmp / "data"
    cands = {
        "a": candidates_of("a", {0: [rect(5, 30, 3, 20), rect(10, 40, 30, 60)], 2: [rect(0, 48, 0, 64)],
                                 4: [rect(20, 21, 40, 41), rect(2, 12, 2, 12), rect(30, 46, 10, 50)]}),
        "b": candidates_of("b", {1: [rect(8, 20, 8, 56), rect(24, 44, 4, 28)]}),
        "c": candidates_of("c", {}),
    }
    videos = {}
    for i, vid in enumerate(cands):
        path = data / f"{vid}.mp4"
        write_mp4(path, frames_of(i), fps=10.0)
        videos[vid] = Video(vid, Mp4Frames(path), 10.0, W, H, T, "train")
    root = tmp / "cache"
    store = Store.create(root / f"detect-{key[:16]}", {
        "stage": "detect", "key": key, "config": {}, "upstream": {},
        "dataset": {"root": str(data), "name": "a2d", "fingerprint": FINGERPRINT},
    })
    for vc in cands.values():
        store.write_video(vc.to_record())
    store.consolidate(sorted(cands), "data.h5")
    dataset = Dataset(name="a2d", root=data, videos=videos, queries=[], fingerprint=FINGERPRINT)
    return root, dataset, cands
