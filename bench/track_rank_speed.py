"""Speed of `track-rank`: queries and frames per second, and how its time grows with T and K.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/track_rank_speed.py [--work bench_out] [--extract fake|real]
        [--dataset DIR --features DIR --head RUN]      # reuse existing artifacts for part 1

1. The ``full`` synthetic preset, built with the stage APIs (each step skipped when its output
   exists under ``--work``): `data synth --preset full`, `detect --detector oracle` (candidates on
   the annotated frames), features, and a head trained for one epoch (``--size``, default small).
   Features are by default *planted*: random vectors aligned 1:1 with the candidates, written
   as a feature artifact (``--extract fake``; seconds; track-rank's work does not depend on
   the values), or the real `extract` (``--extract real``; about an hour on a loaded 2-core
   machine). Times `track-rank` over every query (``--split all``) with the TRM and without.
2. Scaling: hand-made caches of ``--videos`` videos whose every frame holds K moving boxes, for
   T in {25, 50, 100} frames and K in {5, 10, 20} candidates per frame (two queries per video,
   one head for all). Prints seconds, queries/s and (query, frame) pairs/s with and without TRM.

Times are wall-clock, end to end (`track_rank.run`: head loading, scoring, TRM, writing the
Parquet file). The machine is shared: run it when it is quiet, and with OMP_NUM_THREADS=1 (two
intra-op threads on a loaded 2-core machine slow torch down by an order of magnitude).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from clawcrane.build.heads import BEST, sized
from clawcrane.cache.candidates import VideoCandidates, open_candidates
from clawcrane.cache.features import VideoFeatures
from clawcrane.cache.store import Store, artifact_dir, find_artifacts
from clawcrane.config import HEAD_SIZES, DetectConfig, SynthConfig, TrackRankConfig, TrainHeadConfig
from clawcrane.datasets import open_dataset
from clawcrane.datasets.records import Dataset, Instance, Query, Video
from clawcrane.fingerprint import hash_json
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.positions import positions
from clawcrane.stages import detect, synth, track_rank, train_head

COLOURS = ("red", "green", "blue", "yellow", "purple")
SHAPES = ("circle", "square", "triangle", "diamond")


def say(*args) -> None:
    print(*args, flush=True)


def planted_features(cand_path: Path, root: Path, channels: int, seed: int = 0) -> Path:
    """A feature artifact of random features aligned with a candidate cache (positions are real)."""
    cand = open_candidates(cand_path)
    key = hash_json({"planted": cand.key, "channels": channels, "seed": seed})
    path = artifact_dir(root, "extract", key)
    if (path / "data.h5").is_file():
        return path
    store = Store.create(path, {"stage": "extract", "key": key, "upstream": {"candidates": cand.key},
                                "config": {"backbone": "planted", "channels": channels, "with_flip": False},
                                "channels": channels, "dataset": cand.meta.get("dataset", {})})
    rng = np.random.default_rng(seed)
    for vid in cand.video_ids():
        vc = cand.video(vid)
        K = len(vc)  # candidates of the video
        pos = np.zeros((K, 10), np.float32)
        for f in np.unique(vc.frames):
            rows = vc.frame_rows(int(f))
            pos[rows] = positions(vc.boxes[rows], vc.width, vc.height)
        store.write_video(VideoFeatures(video_id=vid, frames=vc.frames, feat=rng.normal(size=(K, channels)).astype(np.float16),
                                        pos=pos, status=vc.status).to_record())
    store.merge()
    return path


def full_preset(args) -> tuple[Dataset, Path, Path]:
    """(dataset, feature folder, head run) of the full preset, built or reused."""
    if args.dataset and args.features and args.head:
        return open_dataset(args.dataset), Path(args.features), Path(args.head)
    data, cache = args.work / "synth-full", args.work / "cache-full"
    t = time.perf_counter()
    synth.run(SynthConfig(preset="full", seed=0, workers=min(2, os.cpu_count() or 1)), data)
    dataset = open_dataset(data)
    say(f"synth full: {time.perf_counter() - t:.0f} s")
    if not find_artifacts(cache, "detect"):
        t = time.perf_counter()
        detect.run(DetectConfig(detector="oracle"), dataset, cache)
        say(f"detect oracle: {time.perf_counter() - t:.0f} s")
    (cand,) = find_artifacts(cache, "detect")
    if args.extract == "real":
        from clawcrane.config import ExtractConfig
        from clawcrane.stages import extract

        features = extract.run(ExtractConfig(cache=str(cache), workers=2)).path
    else:
        features = planted_features(cand.path, cache, channels=1280)
    run = args.work / f"head-full-{args.extract}-{args.size}"
    if not (run / BEST).is_file():
        t = time.perf_counter()
        train_head.run(TrainHeadConfig(head=sized(args.size), epochs=1, flip=False), dataset,
                       features=features, out=run)
        say(f"train-head 1 epoch: {time.perf_counter() - t:.0f} s")
    return dataset, features, run


def moving_world(root: Path, *, videos: int, T: int, K: int, channels: int, seed: int = 0) -> tuple[Dataset, Path]:
    """Videos of T frames, each with K boxes moving in straight lines (bouncing); every frame detected."""
    H, W = 240, 320
    rng = np.random.default_rng([seed, T, K])
    name = f"world-T{T}-K{K}"
    cand_key, feat_key = hash_json({"cand": name, "seed": seed}), hash_json({"feat": name, "seed": seed, "C": channels})
    cstore = Store.create(artifact_dir(root / name, "detect", cand_key), {"stage": "detect", "key": cand_key, "upstream": {},
                                                                          "config": {"detector": "bench"}})
    fstore = Store.create(artifact_dir(root / name, "extract", feat_key),
                          {"stage": "extract", "key": feat_key, "upstream": {"candidates": cand_key},
                           "config": {"backbone": "planted", "channels": channels, "with_flip": False}, "channels": channels,
                           "dataset": {"name": name, "fingerprint": name}})
    vids, queries, gt = {}, [], {}
    annotated = tuple(range(0, T, 5))
    for v in range(videos):
        vid = f"v{v:03d}"
        size = rng.uniform(12, 40, (K, 2))
        start = rng.uniform(0, 1, (K, 2)) * ([W, H] - size)
        vel = rng.uniform(-2, 2, (K, 2))
        looks = rng.normal(size=(K, channels))
        frames, boxes, scores, rles, feats, poss = [], [], [], [], [], []
        for t in range(T):
            xy = np.abs((start + vel * t) % (2 * ([W, H] - size)))
            xy = np.where(xy > [W, H] - size, 2 * ([W, H] - size) - xy, xy)  # bounce off the borders
            bx = np.concatenate([xy, xy + size], 1).astype(np.float32)
            ms = np.zeros((K, H, W), bool)
            for k, (x1, y1, x2, y2) in enumerate(bx.astype(int)):
                ms[k, y1:y2, x1:x2] = True
            sc = np.sort(rng.uniform(0.5, 1.0, K))[::-1].astype(np.float32)
            order = rng.permutation(K)  # detector order is not object order
            frames += [t] * K
            boxes.append(bx[order])
            scores.append(sc)
            rles += mask_ops.encode_many(ms[order])
            feats.append(looks[order] + rng.normal(0, 0.3, (K, channels)))
            poss.append(positions(bx[order], W, H))
            for k in range(K):
                gt[(vid, t, k)] = ms[k]
        rows = len(frames)
        cstore.write_video(VideoCandidates(video_id=vid, height=H, width=W, num_frames=T, frames=np.array(frames, np.int32),
                                           boxes=np.concatenate(boxes), scores=np.concatenate(scores),
                                           class_ids=np.zeros(rows, np.int32), rles=rles,
                                           processed_frames=np.arange(T, dtype=np.int32)).to_record())
        fstore.write_video(VideoFeatures(video_id=vid, frames=np.array(frames, np.int32),
                                         feat=np.concatenate(feats).astype(np.float16), pos=np.concatenate(poss)).to_record())
        vids[vid] = Video(vid, None, 10.0, W, H, T, "train" if v % 4 else "test")
        for k in range(2):
            sentence = f"the {COLOURS[k % len(COLOURS)]} {SHAPES[k % len(SHAPES)]}"
            queries.append(Query(f"{vid}_{k}", vid, sentence, str(k), annotated, "appearance", vids[vid].split,
                                 lambda f, vid=vid, k=k: gt[(vid, f, k)]))

    def instances(vid, f):
        return [Instance(str(k), gt[(vid, f, k)]) for k in range(K)]

    ds = Dataset(name, root / name, vids, queries, {v: annotated for v in vids}, instances, fingerprint=name)
    return ds, fstore.path


def time_track_rank(dataset: Dataset, features: Path, head: Path, out: Path, *, trm: bool, split: str) -> track_rank.TrackRankResult:
    out.unlink(missing_ok=True)
    return track_rank.run(TrackRankConfig(split=split, trm=trm), dataset, head=head, features=features, out=out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench_out"))
    ap.add_argument("--extract", choices=["fake", "real"], default="fake", help="Features of part 1 (see above).")
    ap.add_argument("--size", choices=sorted(HEAD_SIZES), default="small", help="Width of the heads.")
    ap.add_argument("--dataset", default=None, help="Part 1: reuse this dataset (with --features and --head).")
    ap.add_argument("--features", default=None)
    ap.add_argument("--head", default=None)
    ap.add_argument("--videos", type=int, default=8, help="Part 2: videos per synthetic cache.")
    ap.add_argument("--skip-full", action="store_true", help="Only part 2.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    say(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    if not args.skip_full:
        dataset, features, head = full_preset(args)
        say("\npart 1: full preset, every query (split all)")
        say("| TRM | queries | videos | frames | query-frames | seconds | queries/s | query-frames/s | video frames/s |")
        say("|---|---|---|---|---|---|---|---|---|")
        for use_trm in (True, False):
            r = time_track_rank(dataset, features, head, args.work / "full.parquet", trm=use_trm, split="all")
            say(f"| {'on' if use_trm else 'off'} | {r.queries} | {r.videos} | {r.frames} | {r.query_frames} | {r.seconds:.1f} | "
                f"{r.queries / r.seconds:.1f} | {r.query_frames / r.seconds:.0f} | {r.frames / r.seconds:.0f} |")

    say(f"\npart 2: scaling ({args.videos} videos, 2 queries each, every frame detected)")
    C = 256
    base_ds, base_feat = moving_world(args.work / "scaling", videos=args.videos, T=25, K=5, channels=C)
    head = args.work / "scaling" / f"head-{args.size}"
    if not (head / BEST).is_file():
        train_head.run(TrainHeadConfig(head=sized(args.size), epochs=1, flip=False), base_ds,
                       features=base_feat, out=head)
    say("| T | K | queries | query-frames | s (TRM) | queries/s (TRM) | query-frames/s (TRM) | s (no TRM) | TRM share |")
    say("|---|---|---|---|---|---|---|---|---|")
    for T in (25, 50, 100):
        for K in (5, 10, 20):
            ds, feat = moving_world(args.work / "scaling", videos=args.videos, T=T, K=K, channels=C)
            on = time_track_rank(ds, feat, head, args.work / "scaling.parquet", trm=True, split="all")
            off = time_track_rank(ds, feat, head, args.work / "scaling.parquet", trm=False, split="all")
            share = max(on.seconds - off.seconds, 0.0) / on.seconds
            say(f"| {T} | {K} | {on.queries} | {on.query_frames} | {on.seconds:.2f} | {on.queries / on.seconds:.1f} | "
                f"{on.query_frames / on.seconds:.0f} | {off.seconds:.2f} | {100 * share:.0f}% |")


if __name__ == "__main__":
    sys.exit(main())
