"""How much `clawcrane extract` costs beyond the bare backbone forward, and the cache size per candidate.

Builds its own inputs: a few generated mp4 clips with moving ellipses, an oracle-like candidate
cache (the ellipses' exact masks, written through cache/candidates + Store), and a Dataset built
from the records. Then times

* extract: ``stages.extract.run`` end to end (backbone build, decoding, resizing, mask decoding,
  pooling, positions, HDF5 writes, consolidation), and
* bare: ``backbone(x)`` alone over the same frames, already decoded, resized and normalised, in
  the same batch size (with ``--with-flip`` the mirrored frames too),

and prints extract / bare (target <= 1.2) and the bytes per candidate (raw and stored).

    PYTHONPATH=. python bench/extract_overhead.py [--backbone efficientnet-lite0] [--videos 4]
        [--frames 60] [--objects 4] [--with-flip] [--workers 2] [--device auto]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clawcrane.build.backbones import build_backbone
from clawcrane.build.device import resolve_device as pick_device
from clawcrane.cache.candidates import VideoCandidates
from clawcrane.cache.store import Store
from clawcrane.config import ExtractConfig
from clawcrane.datasets.records import Dataset, Video
from clawcrane.datasets.video_io import Mp4Frames, write_mp4
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import extract as stage


def make_video(path: Path, video_id: str, *, frames: int, objects: int, height: int, width: int, seed: int) -> VideoCandidates:
    """Write an mp4 of moving ellipses; return their exact masks as a candidate table."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    start = rng.uniform([0.2 * height, 0.2 * width], [0.8 * height, 0.8 * width], size=(objects, 2))
    vel = rng.uniform(-2, 2, size=(objects, 2))
    radii = rng.uniform(0.06, 0.2, size=(objects, 2)) * [height, width]
    colours = rng.uniform(30, 255, size=(objects, 3))
    imgs, rles, fr, boxes = [], [], [], []
    for t in range(frames):
        img = np.full((height, width, 3), 20.0) + rng.normal(0, 4, (height, width, 1))
        masks = []
        for o in range(objects):
            cy, cx = start[o] + vel[o] * t
            m = ((yy - cy) / radii[o, 0]) ** 2 + ((xx - cx) / radii[o, 1]) ** 2 < 1
            img[m] = colours[o]
            masks.append(m)
        later = np.zeros((height, width), bool)  # later objects are drawn on top: visible parts only
        for m in reversed(masks):
            vis = m & ~later
            later |= m
            if vis.any():
                rles.append(mask_ops.encode(vis))
                boxes.append(mask_ops.tight_box(vis))
                fr.append(t)
        imgs.append(np.clip(img, 0, 255).astype(np.uint8))
    write_mp4(path, imgs, fps=25.0)
    K = len(fr)
    return VideoCandidates(
        video_id=video_id, height=height, width=width, num_frames=frames, frames=np.asarray(fr, np.int32),
        boxes=np.asarray(boxes, np.float32).reshape(K, 4), scores=np.ones(K, np.float32), class_ids=np.ones(K, np.int32),
        rles=rles, processed_frames=np.arange(frames, dtype=np.int32), fps=25.0,
    )


def build_inputs(work: Path, args) -> tuple[Path, Dataset]:
    videos, cache = {}, work / "cache"
    store = Store.create(cache / "detect-bench", {"stage": "detect", "key": "b" * 64, "config": {}, "upstream": {},
                                                  "dataset": {"root": str(work / "data"), "name": "bench", "fingerprint": ""}})
    for i in range(args.videos):
        vid = f"clip{i:02d}"
        path = work / "data" / f"{vid}.mp4"
        vc = make_video(path, vid, frames=args.frames, objects=args.objects, height=args.height, width=args.width, seed=i)
        store.write_video(vc.to_record())
        videos[vid] = Video(vid, Mp4Frames(path), 25.0, args.width, args.height, args.frames, "train")
    store.merge()
    return cache, Dataset(name="bench", root=work / "data", videos=videos, queries=[])


def bare_forward(cfg: ExtractConfig, dataset: Dataset) -> tuple[float, int]:
    """Seconds of backbone(x) alone over every frame (pre-decoded, pre-normalised), and the frame count."""
    resolved, spec = stage.resolve_config(cfg)
    backbone = build_backbone(spec, pick_device(cfg.device))
    frames = [img for v in dataset.videos.values() for _, img in v.iter_frames()]
    batches = []
    for s in range(0, len(frames), cfg.batch_size):
        x = backbone.preprocess(frames[s:s + cfg.batch_size])
        batches.append(torch.cat([x, torch.flip(x, dims=[3])]) if cfg.with_flip else x)
    backbone(batches[0])  # warm-up (cuDNN autotune, allocator), not counted
    _sync(backbone.device)
    t0 = time.perf_counter()
    for x in batches:
        backbone(x)
    _sync(backbone.device)
    return time.perf_counter() - t0, len(frames)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--weights", default="imagenet")
    ap.add_argument("--levels", default="")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--objects", type=int, default=4)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--input-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--with-flip", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep", action="store_true", help="keep the generated folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="clawcrane-bench-extract-"))
    try:
        cache, dataset = build_inputs(work, args)
        cfg = ExtractConfig(
            backbone=args.backbone, weights=args.weights, levels=tuple(x for x in args.levels.split(",") if x),
            input_size=args.input_size, with_flip=args.with_flip, cache=str(cache),
            batch_size=args.batch_size, workers=args.workers, device=args.device,
        )
        bare, n = bare_forward(cfg, dataset)
        t0 = time.perf_counter()
        res = stage.run(cfg, dataset=dataset)
        wall = time.perf_counter() - t0
        bare2, _ = bare_forward(cfg, dataset)  # again after, so machine load drifts show
        bare_best = min(bare, bare2)
        c = res.config
        print(f"device {pick_device(args.device)}, torch threads {torch.get_num_threads()}, backbone {c.backbone} "
              f"levels {','.join(c.levels)} C={res.channels}, input {c.input_size}, batch {c.batch_size}, workers {c.workers}, "
              f"flip {c.with_flip}")
        print(f"frames {res.frames} (of {n}), candidates {res.candidates} ({res.candidates / max(res.frames, 1):.1f}/frame)")
        print(f"bare backbone forward: {bare:.2f}s / {bare2:.2f}s (before / after)  = {1000 * bare_best / n:.1f} ms/frame")
        print(f"extract wall time:     {wall:.2f}s  = {1000 * wall / n:.1f} ms/frame")
        print(f"ratio extract / bare:  {wall / bare_best:.2f}  (target <= 1.2)")
        print(f"bytes per candidate:   {res.raw_bytes_per_candidate:.0f} raw, {res.stored_bytes_per_candidate:.0f} stored "
              f"(gzip HDF5, {c.dtype})")
        if args.keep:
            print(f"kept {work}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
