"""How long reading an A2D-Sentences-sized folder takes: fingerprint and full load.

Builds a folder with the real counts (3,782 videos, 28 missed, 3-4 annotated frames each, so
about 12.5k h5 files, masks 320 x 568) in the real layout, with sparse 1.5 MB stand-ins for the
clips (loading opens no clip; the fingerprint reads 8 KiB at each end). Then times
``a2d_fingerprint`` and ``read_a2d`` twice (the second run sees a warm page cache).

    PYTHONPATH=$PWD python bench/a2d_scale.py /tmp/a2d_scale      # build once, then time
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.dataset_builders import MATLAB_HEADER, write_csv  # noqa: E402

from clawcrane.datasets.a2d import a2d_fingerprint, read_a2d  # noqa: E402

VIDEOS, MISSED, H, W = 3782, 28, 320, 568


def build(root: Path) -> None:
    rng = np.random.default_rng(0)
    rows, sentences = [], []
    for i in range(VIDEOS):
        vid = f"v{i:05d}"
        split = 1 if i % 5 == 0 else 0
        n_frames = int(rng.integers(3, 5))
        rows.append([vid, 11, 0, 100, H, W, 100, n_frames, split])
        folder = root / "text_annotations/a2d_annotation_with_instances" / vid
        folder.mkdir(parents=True, exist_ok=True)
        n_inst = int(rng.integers(1, 3))
        for k in range(n_frames):
            masks = np.zeros((n_inst, W, H), np.uint8)
            masks[:, 100:200, 50:150] = 1
            with h5py.File(folder / f"{10 * k + 1:05d}.h5", "w", userblock_size=512) as f:
                f.create_dataset("reMask", data=masks[0] if n_inst == 1 else masks, compression="gzip")
                f["instance"] = np.arange(1, n_inst + 1, dtype=np.float64)
                f["reBBox"] = np.zeros((4, n_inst))
                f["id"] = np.full((1, n_inst), 11.0)
                f.create_dataset("reS_id", data=masks.max(0).astype(np.float64), compression="gzip")
            with open(folder / f"{10 * k + 1:05d}.h5", "r+b") as f:
                f.write(MATLAB_HEADER)
        for j in range(n_inst):
            sentences.append([vid, j + 1, f"actor {j} of video {i} doing something"])
        clip = root / "Release/clips320H" / f"{vid}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        with open(clip, "wb") as f:
            f.write(b"\0\0\0\x18ftypmp42" + bytes(8))
            f.truncate(1_500_000)
    write_csv(root / "Release/videoset.csv", rows)
    write_csv(root / "text_annotations/a2d_annotation.txt", sentences, ["video_id", "instance_id", "query"])
    (root / "text_annotations/a2d_missed_videos.txt").write_text("".join(f"v{i:05d}\n" for i in range(1, 1 + MISSED)))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/a2d_scale")
    if not (root / "Release/videoset.csv").is_file():
        t = time.perf_counter()
        build(root)
        print(f"built {root} in {time.perf_counter() - t:.1f} s")
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    ids = [f"v{i:05d}" for i in range(VIDEOS)]
    n_h5 = sum(len(os.listdir(root / "text_annotations/a2d_annotation_with_instances" / v)) for v in ids)
    print(f"{VIDEOS} clips, {n_h5} h5 files")
    for run in (1, 2):
        t = time.perf_counter()
        a2d_fingerprint(root, ids)
        fp = time.perf_counter() - t
        t = time.perf_counter()
        ds = read_a2d(root)
        load = time.perf_counter() - t
        print(f"run {run}: fingerprint {fp:.2f} s; read_a2d (incl. fingerprint) {load:.2f} s; counts {ds.counts()}")


if __name__ == "__main__":
    main()
