"""`evaluate` and an independent max-score evaluator (MTTR's tie rule) agree on exported files with near-ties."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from helpers.max_score_evaluator import compare, max_score_metrics

from clawcrane.cache import predictions as P
from clawcrane.config import EvalConfig, ExportConfig
from clawcrane.datasets.records import Dataset, Query, Video
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import ranking
from clawcrane.stages import evaluate, export

H, W = 10, 16


def _box(x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[2:8, x0:x1] = True
    return m


# Three objects side by side; the GT of every sample is object 0. The rank-0 answer is always the
# GT, the runners-up are the other objects (IoU 0), so any evaluator that takes a runner-up loses
# that sample entirely.
OBJECTS = [_box(0, 5), _box(5, 10), _box(10, 16)]


def _dataset(n_frames: int) -> Dataset:
    video = Video("v", None, 10.0, W, H, n_frames, "test")
    q = Query("v_1", "v", "the left box", "1", tuple(range(n_frames)), "position", "test", lambda f: OBJECTS[0])
    return Dataset("synthetic", "/tiny", {"v": video}, [q], fingerprint="fp")


def _write(path, per_frame: list[list[ranking.Submission]]):
    cols = {c: [] for c in P.COLUMNS}
    for t, subs in enumerate(per_frame):
        for s in subs:
            values = ("v_1", "v", t, s.track_id, s.k, s.score, s.rank, H, W, mask_ops.encode(OBJECTS[s.k])["counts"])
            for c, v in zip(P.COLUMNS, values):
                cols[c].append(v)
    return P.write_predictions(path, cols, {"key": "k", "dataset": {"fingerprint": "fp"}})


# Near-ties: runners-up whose scores equal the answer's, exceed it by less than a float32 step, or
# exceed it outright (a track beating a fallback candidate).
NEAR_TIES = [[0.5, 0.5, 0.5], [0.5, 0.5 + 1e-9, 0.2], [0.3, 0.3 + 1e-12, 0.3 - 1e-12], [0.4, 0.7, 0.4]]


def test_evaluate_and_a_max_score_evaluator_agree_on_an_exported_file_with_near_ties(tmp_path):
    per_frame = [ranking.monotone([ranking.Submission(k=k, track_id=k, score=s, rank=0) for k, s in enumerate(row)])
                 for row in NEAR_TIES]
    for subs in per_frame:  # the rule the file must hold: rank 0 strictly first, also as float32
        stored = np.float32([s.score for s in subs])
        assert (np.diff(stored) < 0).all(), stored
    pred = _write(tmp_path / "p.parquet", per_frame)
    ds = _dataset(len(NEAR_TIES))
    ev = evaluate.run(EvalConfig(), predictions=pred, dataset=ds, out_dir=tmp_path / "ev")
    export.run(ExportConfig(format="coco-rle", top_k=5), predictions=pred, out_dir=tmp_path / "x", dataset=ds)
    theirs = max_score_metrics(tmp_path / "x" / export.COCO_FILE, {("v_1", f): OBJECTS[0] for f in range(len(NEAR_TIES))})
    assert ev.metrics["P@0.5"] == 1.0  # every answer is the GT
    assert compare(ev.metrics, theirs) == {}


def test_exact_ties_make_the_evaluators_disagree_and_are_reported(tmp_path, caplog):
    """The control: a file written without the rule (all three masks at 0.5) is scored differently by the
    two tie rules, evaluate warns about it, and export lowers the runners-up so the exported file agrees."""
    tied = [[ranking.Submission(k=k, track_id=k, score=0.5, rank=k) for k in range(3)] for _ in range(2)]
    pred = _write(tmp_path / "p.parquet", tied)
    ds = _dataset(2)
    with caplog.at_level(logging.WARNING):
        ev = evaluate.run(EvalConfig(), predictions=pred, dataset=ds, out_dir=tmp_path / "ev")
    assert "2 of 2 samples have several masks sharing the top score" in caplog.text
    assert ev.metrics["P@0.5"] == 1.0  # evaluate: the lowest rank among the tied

    # the raw file, as another tool would read it: MTTR's rule takes the last tied mask (object 2)
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps([{"query_id": "v_1", "frame": t, "score": 0.5,
                                "segmentation": {"size": [H, W], "counts": mask_ops.encode(OBJECTS[k])["counts"].decode()}}
                               for t in range(2) for k in range(3)]))
    assert max_score_metrics(raw, {("v_1", f): OBJECTS[0] for f in range(2)})["P@0.5"] == 0.0

    with caplog.at_level(logging.WARNING):
        export.run(ExportConfig(format="coco-rle", top_k=5), predictions=pred, out_dir=tmp_path / "x", dataset=ds)
    assert "4 runner-up masks scored as high as their answer" in caplog.text
    theirs = max_score_metrics(tmp_path / "x" / export.COCO_FILE, {("v_1", f): OBJECTS[0] for f in range(2)})
    assert compare(ev.metrics, theirs) == {}


@pytest.mark.parametrize("scores", [[0.9, 0.9], [0.25, 0.25 + 1e-10]])
def test_argmax_rows_are_strict_too(scores):
    subs = ranking.argmax_submissions([np.array(scores)], top_k=2)[0]
    # the float64 argmax stays the answer, and its runner-up is strictly below it once stored as float32
    assert subs[0].k == int(np.argmax(scores)) and np.float32(subs[1].score) < np.float32(subs[0].score)


def test_compare_counts_nan_and_sample_counts_as_disagreement():
    assert compare({"P@0.5": 0.5, "samples": 3}, {"P@0.5": float("nan"), "samples": 3}) != {}
    assert compare({"P@0.5": 0.5, "samples": 3}, {"P@0.5": 0.5, "samples": 0}) == {"samples": (3.0, 0.0)}
    assert compare({"P@0.5": 0.5, "samples": 3}, {"P@0.5": 0.5 + 1e-12, "samples": 3}) == {}
