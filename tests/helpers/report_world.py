"""A tiny world for `report`'s tests: two 4-frame mp4 videos, four queries, six annotated samples,
a predictions file with known IoUs, a train-head metrics.json and an ablate ablation.json.

    from helpers.report_world import world, rows, write_preds, head_run, ablation_table
    ds = world(tmp_path / "data")
    pred = write_preds(tmp_path / "pred.parquet", rows())
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clawcrane.atomic import write_json
from clawcrane.cache import predictions as P
from clawcrane.config import AblateConfig, TrackRankConfig
from clawcrane.datasets.records import Dataset, Query, Video
from clawcrane.datasets.video_io import Mp4Frames, write_mp4
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import ablate, evaluate

H, W, T = 48, 64, 4
SENTENCES = {"v1_1": "the <red> ball & co", "v1_2": "the box on the right", "v2_1": "the car", "v2_2": "the car left of the box"}


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


GT = {("v1_1", 0): box(4, 20, 4, 20), ("v1_1", 2): box(8, 24, 8, 24), ("v1_2", 0): box(24, 44, 40, 60),
      ("v2_1", 1): box(10, 30, 10, 40), ("v2_2", 0): box(30, 46, 2, 22), ("v2_2", 3): box(30, 46, 6, 26)}
TYPES = {"v1_1": "appearance", "v1_2": "position", "v2_1": "appearance", "v2_2": "relation"}


def frames(video: str) -> list[np.ndarray]:
    """Frames with a smooth gradient and the GT boxes painted, so a drawn gallery image is never blank."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for t in range(T):
        img = np.stack([(xx * 3 + t * 10) % 256, (yy * 4) % 256, np.full((H, W), 90)], -1).astype(np.uint8)
        for (q, f), m in GT.items():
            if q.startswith(video) and f == t:
                img[m] = (200, 60, 40)
        out.append(img)
    return out


def world(root: Path, fingerprint: str = "fp-1") -> Dataset:
    """Two 4-frame mp4 videos and four queries (six annotated samples)."""
    root.mkdir(parents=True, exist_ok=True)
    videos = {}
    for v in ("v1", "v2"):
        write_mp4(root / f"{v}.mp4", frames(v), 5.0)
        videos[v] = Video(video_id=v, source=Mp4Frames(root / f"{v}.mp4"), fps=5.0, width=W, height=H, num_frames=T,
                          split="test")

    def loader(qid):
        return lambda f: GT[(qid, f)]

    queries = [Query(q, q.split("_")[0], SENTENCES[q], "1", tuple(sorted(f for (qq, f) in GT if qq == q)), TYPES[q],
                     "test", loader(q)) for q in SENTENCES]
    return Dataset(name="synthetic", root=root, videos=videos, queries=queries, fingerprint=fingerprint)


def rows():
    """IoUs: v1_1 1.0 and 0.5; v1_2 1.0 (half-resolution mask); v2_1 0 (wrong place); v2_2 1.0 and missing on frame 3."""
    return [
        ("v1_1", 0, GT[("v1_1", 0)], 0.9, 0),
        ("v1_1", 0, box(30, 40, 30, 40), 0.2, 1),
        ("v1_1", 2, box(8, 24, 8, 16), 0.8, 0),
        ("v1_2", 0, GT[("v1_2", 0)][::2, ::2], 0.7, 0),
        ("v2_1", 1, box(36, 46, 44, 60), 0.6, 0),
        ("v2_2", 0, GT[("v2_2", 0)], 0.5, 0),
    ]


def write_preds(path, rows, fingerprint="fp-1"):
    cols = {c: [] for c in P.COLUMNS}
    for qid, frame, mask, score, rank in rows:
        h, w = mask.shape
        for c, v in zip(P.COLUMNS, (qid, qid.split("_")[0], frame, 0, 0, score, rank, h, w, mask_ops.encode(mask)["counts"])):
            cols[c].append(v)
    meta = {"key": "pk", "config": {"split": "test"}, "upstream": {},
            "dataset": {"name": "synthetic", "root": "/w", "fingerprint": fingerprint}}
    return P.write_predictions(path, cols, meta)


def head_run(folder: Path) -> Path:
    """A train-head run folder's metrics.json, in the trainer's record format (pipeline.trainer.Trainer.fit)."""
    hist = []
    for e in range(1, 6):
        val = {"accuracy": [0.2, 0.4, 0.7, 0.6, 0.65][e - 1], "samples": 10,
               "per_type": {"appearance": {"accuracy": 0.1 * e, "samples": 6}, "position": {"accuracy": 0.5, "samples": 4}}}
        hist.append({"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.15 * e, "lr": 1e-4, "validation": val})
    write_json(folder / "metrics.json", {"history": hist, "counts": {}, "best_epoch": 3, "validation": {}})
    return folder


def ablation_table(folder: Path, ds: Dataset) -> Path:
    """An ablation.json made by ablate's own aggregate + report_json from two seeds of rows 1 and 9."""
    cfg = AblateConfig(seeds=(0, 1), rows=("1", "9"))
    results = []
    for row, base in ((ablate.ROWS[0], 0.30), (ablate.ROWS[8], 0.80)):
        seeds = []
        for s, d in ((0, 0.0), (1, 0.1)):
            m = {"samples": 6.0, **{k: base + d for _, k in evaluate.TABLE1_COLUMNS}}
            seeds.append(ablate.SeedResult(seed=s, run=folder / "runs", trained_epochs=1, predictions=folder / "p.parquet",
                                           metrics=m, by_query_type={"appearance": dict(m), "relation": dict(m, **{"P@0.5": d})},
                                           by_wording={}, seconds=1.0))
        results.append(ablate.aggregate(row, seeds))
    path = folder / "ablation.json"
    write_json(path, ablate.report_json(cfg, TrackRankConfig(), folder / "features", ds, results))
    return path
