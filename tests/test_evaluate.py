"""`evaluate` end to end: a tiny Dataset built from records + a predictions file the test writes."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

import clawcrane.datasets
from clawcrane.cache import predictions as P
from clawcrane.cli import main
from clawcrane.config import EvalConfig
from clawcrane.datasets.records import Dataset, Query, Video
from clawcrane.errors import DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import evaluate

H, W = 8, 12


def box(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


GT = {("v1_1", 0): box(0, 4, 0, 4), ("v1_1", 2): box(2, 6, 2, 6), ("v1_2", 0): box(4, 8, 6, 12),
      ("v2_1", 1): box(0, 8, 0, 12)}


def tiny_dataset(fingerprint="fp-1") -> Dataset:
    def loader(qid):
        return lambda f: GT[(qid, f)]

    videos = {v: Video(video_id=v, source=None, fps=10.0, width=W, height=H, num_frames=4, split="test")
              for v in ("v1", "v2")}
    queries = [
        Query("v1_1", "v1", "the red ball", "1", (0, 2), "appearance", "test", loader("v1_1")),
        Query("v1_2", "v1", "the dog on the right", "2", (0,), "position", "test", loader("v1_2")),
        Query("v2_1", "v2", "the car", "1", (1,), "appearance", "test", loader("v2_1")),
    ]
    return Dataset(name="synthetic", root="/tiny", videos=videos, queries=queries, fingerprint=fingerprint)


def write_preds(path, rows, fingerprint="fp-1"):
    cols = {c: [] for c in P.COLUMNS}
    for qid, frame, mask, score, rank in rows:
        h, w = mask.shape
        for c, v in zip(P.COLUMNS, (qid, qid.split("_")[0], frame, 0, 0, score, rank, h, w, mask_ops.encode(mask)["counts"])):
            cols[c].append(v)
    meta = {"key": "pk", "config": {}, "upstream": {}, "dataset": {"name": "synthetic", "root": "/tiny", "fingerprint": fingerprint}}
    return P.write_predictions(path, cols, meta)


def standard_rows():
    return [
        ("v1_1", 0, GT[("v1_1", 0)], 0.9, 0),  # exact: IoU 1
        ("v1_1", 0, box(4, 8, 8, 12), 0.2, 1),  # lower-scored second mask: only COCO AP sees it
        ("v1_1", 2, box(2, 6, 2, 4), 0.8, 0),  # half of the GT: I = 8, U = 16
        ("v1_1", 3, box(0, 1, 0, 1), 0.5, 0),  # unannotated frame: ignored
        ("v1_2", 0, GT[("v1_2", 0)][::2, ::2], 0.7, 0),  # half-resolution exact mask: resized back, IoU 1
        # v2_1 frame 1: no prediction -> empty, IoU ~ 0
    ]


def test_end_to_end_metrics_json_and_markdown(tmp_path, caplog):
    pred = write_preds(tmp_path / "pred.parquet", standard_rows())
    with caplog.at_level(logging.WARNING):
        res = evaluate.run(EvalConfig(), predictions=pred, dataset=tiny_dataset(), out_dir=tmp_path / "ev")
    # Sample IoUs: 1, ~0.5, 1, ~0 (missing). P@0.5 counts 1, 0.5+3e-8, 1 -> 3/4; P@0.6 -> 2/4.
    m = res.metrics
    assert m["samples"] == 4
    assert m["P@0.5"] == 0.75 and m["P@0.6"] == 0.5 and m["P@0.9"] == 0.5
    assert m["mean_iou"] == pytest.approx(2.5 / 4, abs=1e-6)
    # Overall: I = 16 + 8 + 24 + 0, U = 16 + 16 + 24 + 96 (the missed GT is the whole 8x12 frame).
    assert m["overall_iou"] == pytest.approx(48 / 152)
    # mean-of-precision: t = 0.5 -> 3/4 (0.5 + 3e-8 >= 0.5), t >= 0.55 -> 2/4; (0.75 + 9 * 0.5) / 10.
    assert m["mAP_mean_precision"] == pytest.approx(0.525)
    assert 0.0 < m["mAP_coco"] <= 1.0
    assert res.missing == ["v2_1@1"]
    assert "v2_1@1" in caplog.text
    assert sorted(res.by_query_type) == ["appearance", "position"]
    assert res.by_query_type["position"]["mean_iou"] == pytest.approx(1.0)
    assert res.j_and_f is None  # annotations are sparse, not full-video
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["metrics"]["P@0.5"] == 0.75 and report["missing_samples"] == ["v2_1@1"]
    md = (tmp_path / "ev" / "metrics.md").read_text()
    assert "| P@0.5 | P@0.6 | P@0.7 | P@0.8 | P@0.9 | mAP 0.5:0.95 (COCO) | mAP 0.5:0.95 (mean P) | Overall IoU | Mean IoU |" in md
    assert "| all | 4 | 75.0 | 50.0 |" in md and "| position | 1 | 100.0 |" in md


def test_predictions_for_another_dataset_are_refused(tmp_path):
    pred = write_preds(tmp_path / "p.parquet", standard_rows(), fingerprint="other")
    with pytest.raises(DataError, match="fingerprint"):
        evaluate.run(EvalConfig(), predictions=pred, dataset=tiny_dataset(), out_dir=tmp_path / "e")
    pred = write_preds(tmp_path / "q.parquet", standard_rows() + [("zz_9", 0, box(0, 1, 0, 1), 0.1, 0)])
    with pytest.raises(DataError, match="zz_9"):
        evaluate.run(EvalConfig(), predictions=pred, dataset=tiny_dataset(), out_dir=tmp_path / "e")


def test_full_video_annotations_add_j_and_f(tmp_path):
    # One query with GT on all of its video's 2 frames, predicted exactly: J = F = 1.
    masks = {0: box(0, 4, 0, 4), 1: box(1, 5, 1, 5)}
    ds = Dataset(name="ytvos", root="/f", fingerprint="",
                 videos={"v": Video(video_id="v", source=None, fps=1.0, width=W, height=H, num_frames=2, split="test")},
                 queries=[Query("v_1", "v", "a box", "1", (0, 1), None, "test", masks.__getitem__)])
    pred = write_preds(tmp_path / "p.parquet", [("v_1", 0, masks[0], 0.5, 0), ("v_1", 1, masks[1], 0.5, 0)])
    res = evaluate.run(EvalConfig(), predictions=pred, dataset=ds, out_dir=tmp_path / "e")
    assert res.j_and_f == {"J": 1.0, "F": 1.0, "J&F": 1.0, "queries": 1}
    assert "| J&F | J | F | queries |" in res.markdown


def test_cli_prints_the_table_and_turns_bad_input_into_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, **kw: tiny_dataset(), raising=False)
    pred = write_preds(tmp_path / "pred.parquet", standard_rows())
    r = CliRunner().invoke(main, ["--log-level", "error", "evaluate", str(pred), "--dataset", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "| all | 4 | 75.0 |" in r.output
    assert (tmp_path / "pred-eval" / "metrics.json").is_file()  # default --out beside PRED
    bad = write_preds(tmp_path / "bad.parquet", [("zz_9", 0, box(0, 1, 0, 1), 0.1, 0)])
    r = CliRunner().invoke(main, ["evaluate", str(bad), "--dataset", str(tmp_path)])
    assert r.exit_code == 1
    err_lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "zz_9" in err_lines[0]


def test_paraphrased_sentences_get_their_own_row(tmp_path):
    """Samples of sentences marked 'paraphrase' (wording held out of train) are also scored on their own."""
    ds = tiny_dataset()
    ds.queries = [q.with_(wording="paraphrase" if q.query_id == "v1_2" else "seen") for q in ds.queries]
    pred = write_preds(tmp_path / "pred.parquet", standard_rows())
    res = evaluate.run(EvalConfig(), predictions=pred, dataset=ds, out_dir=tmp_path / "ev")
    # v1_2 (frame 0) is exact -> 1 sample at IoU 1; the seen samples are IoU 1, ~0.5 and ~0 (missing)
    assert res.by_wording["paraphrase"]["samples"] == 1 and res.by_wording["paraphrase"]["P@0.5"] == 1.0
    assert res.by_wording["seen"]["samples"] == 3 and res.by_wording["seen"]["P@0.5"] == pytest.approx(2 / 3)
    assert "By wording" in res.markdown and "| paraphrase | 1 | 100.0 |" in res.markdown
    # the per-type table on seen wording: the 3 seen samples are all 'appearance'; the one position
    # sample is paraphrased, so position has no seen row
    assert set(res.by_type_seen) == {"appearance"} and res.by_type_seen["appearance"]["samples"] == 3
    assert "By query type, seen wording only" in res.markdown
    plain = evaluate.run(EvalConfig(), predictions=pred, dataset=tiny_dataset(), out_dir=tmp_path / "ev2")
    assert plain.by_wording == {} and "By wording" not in plain.markdown  # unmarked data: no wording table
    assert plain.by_type_seen == {} and "seen wording only" not in plain.markdown
