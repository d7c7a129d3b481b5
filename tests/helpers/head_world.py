"""Tiny datasets and caches for the head's tests, built directly from records and the cache store.

``colour_world`` makes videos whose frames hold three objects (red, green, blue, at shuffled
places). Every object has a query ("the red ball", ...). The candidate cache holds exactly the
objects' masks; the feature cache plants the colour in the pooled feature (channel 0/1/2 plus
noise), so the referred candidate is learnable from the sentence's colour word alone.
Optionally one query per split targets an object that was not detected (IoU < 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clawcrane.cache.candidates import VideoCandidates
from clawcrane.cache.features import VideoFeatures
from clawcrane.cache.store import Store, artifact_dir
from clawcrane.datasets.records import Dataset, Instance, Query, Video
from clawcrane.datasets.video_io import Mp4Frames, write_mp4
from clawcrane.pipeline import masks as mask_ops

COLOURS = ("red", "green", "blue")
H, W, C = 24, 48, 8
FRAMES = (0, 2)


def positions(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(K, 10) p_i: normalised box, centre, size, and x/y rank in [0, 1] (test-only stand-in)."""
    K = len(boxes)  # candidates
    b = boxes / np.array([width, height, width, height], np.float32)
    xc, yc = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    rank = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable") / max(K - 1, 1)  # noqa: E731
    return np.stack([b[:, 0], b[:, 1], b[:, 2], b[:, 3], xc, yc, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], rank(xc), rank(yc)], 1).astype(np.float32)


def _box_mask(slot: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[4:20, 2 + slot * 16 : 14 + slot * 16] = True
    return m


def _plan(rng: np.random.Generator, n_videos: int) -> dict:
    """Per (video index, frame): the slot of each colour and the planted (3, C) features (draw order fixed)."""
    plan = {}
    for v in range(n_videos):
        for f in FRAMES:
            slots = rng.permutation(3)  # colour c sits in slot slots[c]
            fe = rng.normal(0, 0.1, (3, C)).astype(np.float32)
            fe[np.arange(3), np.arange(3)] += 1.0
            plan[(v, f)] = (slots, fe)
    return plan


def _write_caches(root: Path, plan: dict, video_ids: list[str], *, seed: int, flip: bool, dataset: dict) -> Path:
    """The candidate cache (exactly the objects' masks) and the feature cache (colours planted); the feature folder."""
    cand_key, feat_key = f"cand{seed:012d}", f"feat{seed:012d}"
    cand_store = Store.create(artifact_dir(root, "detect", cand_key), {"stage": "detect", "key": cand_key, "upstream": {}, "config": {"detector": "oracle"}})
    feat_store = Store.create(
        artifact_dir(root, "extract", feat_key),
        {"stage": "extract", "key": feat_key, "upstream": {"candidates": cand_key},
         "config": {"backbone": "planted", "channels": C, "with_flip": flip}, "channels": C,
         "dataset": dataset},
    )
    for v, vid in enumerate(video_ids):
        frames, boxes, rles, feats, poss, ffeat, fpos = [], [], [], [], [], [], []
        for f in FRAMES:
            slots, fe = plan[(v, f)]
            ms = np.stack([_box_mask(slots[c]) for c in range(3)])
            bx = np.stack([mask_ops.tight_box(m) for m in ms])
            frames += [f] * 3
            boxes.append(bx)
            rles += mask_ops.encode_many(ms)
            feats.append(fe)
            poss.append(positions(bx, H, W))
            mirrored = bx.copy()
            mirrored[:, [0, 2]] = W - bx[:, [2, 0]]
            ffeat.append(fe.copy())  # colour does not change under a flip
            fpos.append(positions(mirrored, H, W))
        K = len(frames)
        cand_store.write_video(VideoCandidates(
            video_id=vid, height=H, width=W, num_frames=3, frames=np.array(frames, np.int32),
            boxes=np.concatenate(boxes), scores=np.ones(K, np.float32), class_ids=np.zeros(K, np.int32),
            rles=rles, processed_frames=np.array(FRAMES, np.int32),
        ).to_record())
        feat_store.write_video(VideoFeatures(
            video_id=vid, frames=np.array(frames, np.int32), feat=np.concatenate(feats).astype(np.float16),
            pos=np.concatenate(poss), feat_flip=np.concatenate(ffeat).astype(np.float16) if flip else None,
            pos_flip=np.concatenate(fpos) if flip else None,
        ).to_record())
    return feat_store.path


def colour_world(tmp: Path, *, n_train: int = 6, n_test: int = 3, seed: int = 0, flip: bool = True, missed: bool = True, write_videos: bool = True):
    """(dataset, feature artifact folder, cache root). See the module docstring."""
    plan = _plan(np.random.default_rng(seed), n_train + n_test)
    root = tmp / "cache"
    video_ids = [f"vid{v:02d}" for v in range(n_train + n_test)]
    features = _write_caches(root, plan, video_ids, seed=seed, flip=flip, dataset={"name": "colour-world", "fingerprint": "fp"})
    videos, queries, layout = {}, [], {(vid, f): plan[(v, f)][0] for v, vid in enumerate(video_ids) for f in FRAMES}
    for v, vid in enumerate(video_ids):
        split = "train" if v < n_train else "test"
        src = tmp / "videos" / f"{vid}.mp4"
        if write_videos:
            write_mp4(src, [np.zeros((H, W, 3), np.uint8)] * 3, fps=5.0)
        videos[vid] = Video(vid, Mp4Frames(src), 5.0, W, H, 3, split)
        for c, colour in enumerate(COLOURS):
            loader = (lambda f, vid=vid, c=c: _box_mask(layout[(vid, f)][c]))
            queries.append(Query(f"{vid}_{c}", vid, f"the {colour} ball", str(c), FRAMES, "appearance", split, loader))
        if missed and v in (0, n_train):  # an object the detector missed: its GT overlaps nothing
            def lost(f):
                m = np.zeros((H, W), bool)
                m[0:3, 0:3] = True
                return m
            queries.append(Query(f"{vid}_9", vid, "the tiny speck", "9", FRAMES, "appearance", split, lost))

    def instances(vid, f):
        return [Instance(str(c), _box_mask(layout[(vid, f)][c])) for c in range(3)]

    ds = Dataset("synthetic", tmp, videos, queries, {v: FRAMES for v in videos}, instances, fingerprint="fp")
    return ds, features, root


def a2d_colour_world(tmp: Path, *, n_train: int = 6, n_test: int = 1, seed: int = 0, flip: bool = True) -> tuple[Path, Path]:
    """The colour world as an A2D-Sentences folder on disk, with its caches: (dataset folder, feature folder).

    For runs in another process (``clawcrane train-head --dataset DIR``, torchrun): the caches carry
    the folder's real fingerprint. Objects are A2D instances 1..3 ("the red ball", ...) annotated in
    frames 0 and 2; no missed object.
    """
    from helpers.dataset_builders import A2DObject, A2DVideo, make_a2d

    from clawcrane.datasets import open_dataset

    plan = _plan(np.random.default_rng(seed), n_train + n_test)
    video_ids = [f"vid{v:02d}" for v in range(n_train + n_test)]

    def box(slot: int) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(_box_mask(slot))
        return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1

    videos = [
        A2DVideo(vid, "train" if v < n_train else "test", height=H, width=W, num_frames=3, annotated=FRAMES, objects=[
            A2DObject(str(c + 1), f"the {colour} ball", {f: box(plan[(v, f)][0][c]) for f in FRAMES}, 11, "appearance")
            for c, colour in enumerate(COLOURS)])
        for v, vid in enumerate(video_ids)
    ]
    data = make_a2d(tmp / "a2d", videos, missed=[], copy_row=False)
    ds = open_dataset(data)
    features = _write_caches(tmp / "cache", plan, video_ids, seed=seed, flip=flip,
                             dataset={"name": ds.name, "root": str(data), "fingerprint": ds.fingerprint})
    return data, features


def tiny_stage_world(tmp):
    """`data synth --preset tiny` through the real stages: oracle candidates, resnet18 with seeded random
    weights at 64 px, a head trained 1 epoch (tiny widths) in ``tmp/head``. Returns (dataset, features path)."""
    from clawcrane.config import DetectConfig, ExtractConfig, HeadConfig, SynthConfig, TrainHeadConfig
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import detect, extract, synth, train_head

    synth.run(SynthConfig(preset="tiny"), tmp / "data")
    ds = open_dataset(tmp / "data")
    det = detect.run(DetectConfig(detector="oracle", device="cpu"), ds, tmp / "cache")
    ext = extract.run(ExtractConfig(backbone="resnet18", weights="none", input_size=64, cache=str(tmp / "cache"),
                                    candidates=str(det.path), device="cpu", workers=1), dataset=ds)
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=16, word_dim=16, lstm_hidden=16), epochs=1, device="cpu")
    train_head.run(cfg, ds, features=ext.path, out=tmp / "head")
    return ds, ext.path
