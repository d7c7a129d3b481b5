"""`clawcrane cache ls|info|verify|merge` over candidate and feature artifacts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.detect_world import fake_factory, fake_key, load_dataset, write_videos

from clawcrane.cache.features import VideoFeatures
from clawcrane.cache.store import Store, VideoRecord, escape_id
from clawcrane.cache.verify import rle_run_total, verify_store
from clawcrane.cli import main
from clawcrane.config import DetectConfig
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import cache_cmds
from clawcrane.stages import detect as stage


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_videos(root, n=3)
    return root


def detect(data, cache, **cfg):
    return stage.run(DetectConfig(**dict(dict(detector="fake"), **cfg)), load_dataset(data, n=3), cache,
                     detector_factory=fake_factory(), key_fn=fake_key)


def write_features(cache, cand_path, rows_delta=0, nan=False):
    """A feature artifact (stage 'extract') aligned with the candidate artifact at ``cand_path``."""
    cands = Store(cand_path)
    store = Store.create(cache / "extract-0123456789abcdef", {
        "stage": "extract", "schema": 1, "key": "0123456789abcdef" + "0" * 48, "config": {"backbone": "r18", "channels": 8},
        "upstream": {"candidates": cands.key}})
    for v in cands.video_ids():
        frames = cands.read(v).arrays["frame"]
        K = len(frames) + rows_delta
        feat = np.ones((K, 8), np.float16)
        if nan:
            feat[0, 0] = np.nan
        store.write_video(VideoFeatures(v, frames=frames[:K] if rows_delta <= 0 else np.resize(frames, K),
                                        feat=feat, pos=np.zeros((K, 10), np.float32)).to_record())
    store.merge()
    return store


def test_rle_run_total_is_height_times_width():
    m = np.zeros((7, 5), bool)
    m[2:4, 1:3] = True
    assert rle_run_total(mask_ops.encode(m)["counts"]) == 35
    assert rle_run_total(mask_ops.encode(np.ones((300, 200), bool))["counts"]) == 60000  # multi-char runs


def test_verify_passes_a_fresh_candidate_cache_and_catches_a_tampered_record(data, tmp_path):
    res = detect(data, tmp_path)
    assert verify_store(Store(res.path)) == ([], [])
    with h5py.File(res.path / "data.h5", "r+") as f:
        g = f["videos"][escape_id("vid01")]
        scores = g["score"][()]
        g["score"][...] = scores[::-1]  # descending -> ascending within frames
        other = mask_ops.encode(np.ones((5, 5), bool))["counts"]  # a 5x5 RLE in a 24x32 video
        g["rle"][0] = np.frombuffer(other, np.uint8)
    problems, _ = verify_store(Store(res.path))
    assert any("vid01" in p and "descending score" in p for p in problems)
    assert any("vid01: row 0: RLE covers 25 pixels" in p for p in problems)
    out = CliRunner().invoke(main, ["cache", "verify", str(res.path)])
    assert out.exit_code == 1 and "problem: vid01" in out.output


def test_verify_catches_misaligned_columns(data, tmp_path):
    res = detect(data, tmp_path)
    with h5py.File(res.path / "data.h5", "r+") as f:
        g = f["videos"][escape_id("vid00")]
        cls = g["class_id"][()]
        del g["class_id"]
        g["class_id"] = cls[:-1]
    problems, _ = verify_store(Store(res.path))
    assert problems and "vid00: columns have different row counts" in problems[0]


def test_verify_features_compares_rows_with_the_candidates_and_finds_nan(data, tmp_path):
    res = detect(data, tmp_path)
    good = write_features(tmp_path, res.path)
    assert verify_store(good) == ([], [])
    bad = write_features(tmp_path / "x", res.path, rows_delta=-1, nan=True)
    problems, notes = verify_store(bad)  # the candidate cache is not beside it here
    assert any("feat has non-finite values" in p for p in problems)
    assert notes == ["candidate cache not found beside it: row counts not compared"]
    (tmp_path / "extract-0123456789abcdef" / "data.h5").unlink()
    write_features(tmp_path, res.path, rows_delta=-1)
    problems, _ = verify_store(Store(tmp_path / "extract-0123456789abcdef"))
    K = len(Store(res.path).read("vid00").arrays["frame"])
    assert f"vid00: {K - 1} rows but the candidate cache has {K}" in problems


def test_ls_lists_every_artifact_with_stage_size_and_videos(data, tmp_path):
    res = detect(data, tmp_path)
    write_features(tmp_path, res.path)
    rows = {r.stage: r for r in cache_cmds.list_artifacts(tmp_path)}
    assert set(rows) == {"detect", "extract"}
    assert rows["detect"].videos == 3 and rows["detect"].size > 0 and rows["detect"].name == res.path.name
    assert "score_threshold=0.3" in rows["detect"].config
    out = CliRunner().invoke(main, ["cache", "ls", str(tmp_path)])
    assert out.exit_code == 0 and res.path.name in out.output and "extract-0123456789abcdef" in out.output


def test_info_reports_counts_candidates_per_frame_recall_and_bad_videos(data, tmp_path):
    res = detect(data, tmp_path, score_threshold=0.0, dedup_iou=1.0)
    text = "\n".join(cache_cmds.info_lines(res.path))
    assert "videos: 3 (3 ok, 0 bad) of 3 in the dataset" in text
    assert f"candidates: {res.candidates}" in text and f"per frame: {res.per_frame:.2f}" in text
    assert "candidate recall (mask IoU >= 0.5): 1.000 (12 of 12" in text  # 3 videos x 2 frames x 2 boxes
    Store(res.path).write_video(VideoRecord("vid09", {}, {"status": "bad", "error": "x.mp4: truncated"}))
    out = CliRunner().invoke(main, ["cache", "info", str(res.path)])
    assert "bad video vid09: x.mp4: truncated" in out.output and "unconsolidated parts: 1" in out.output


def test_merge_joins_shards_into_data_h5(data, tmp_path):
    detect(data, tmp_path, shard=0, num_shards=2)
    res = detect(data, tmp_path, shard=1, num_shards=2)
    out = CliRunner().invoke(main, ["cache", "merge", str(tmp_path)])
    assert out.exit_code == 0 and "merged 3 videos" in out.output
    assert [p.name for p in res.path.glob("*.h5")] == ["data.h5"]
    assert verify_store(Store(res.path)) == ([], [])


def test_merge_warns_when_shards_are_missing(data, tmp_path):
    res = detect(data, tmp_path, shard=0, num_shards=2)
    out = CliRunner().invoke(main, ["cache", "merge", str(res.path)])
    assert out.exit_code == 0 and "merged 2 videos" in out.output and "1 are missing" in out.output


def test_corrupted_meta_is_a_one_line_cache_error(data, tmp_path):
    res = detect(data, tmp_path)
    (res.path / "meta.json").write_text("{not json")
    out = CliRunner().invoke(main, ["cache", "info", str(res.path)])
    assert out.exit_code == 1 and "meta.json: corrupted" in out.output and len(out.output.strip().splitlines()) == 1
