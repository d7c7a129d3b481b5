"""`clawcrane detect`: candidate cache content, cache keys and hits, shards, bad videos, oracle."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.detect_world import (
    ANNOTATED,
    FakeDetector,
    H,
    T,
    W,
    assert_same_content,
    fake_factory,
    fake_key,
    gt_masks,
    load_dataset,
    read_all,
    refusing_factory,
    write_videos,
)

from clawcrane.build.detectors import detector_key, parse_spec
from clawcrane.cache.candidates import open_candidates
from clawcrane.cache.store import Store
from clawcrane.datasets.records import LazyFpsVideo
from clawcrane.config import DetectConfig
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.detectors import OracleDetector, candidate_recall, postprocess
from clawcrane.stages import detect as stage

KEEP_ALL = dict(score_threshold=0.0, dedup_iou=1.0, max_per_frame=50)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_videos(root, n=4)
    return root


def run(ds, cache, made=None, **cfg):
    config = DetectConfig(**dict(dict(detector="fake", device="cpu"), **cfg))
    return stage.run(config, ds, cache, detector_factory=fake_factory(made), key_fn=fake_key)


def test_candidate_cache_columns_have_contract_shapes_and_dtypes(data, tmp_path):
    res = run(load_dataset(data), tmp_path, **KEEP_ALL)
    vc = open_candidates(tmp_path).video("vid00")
    K = len(vc)
    # every frame processed (stride 1); of the 4 fake masks the blue one is empty in vid00 (red and
    # green boxes only) and dropped -> 3 * T rows; every video draws two of three colours -> 4 * K in all
    assert K == 3 * T and res.frames == 4 * T and res.candidates == 4 * K
    assert vc.frames.dtype == np.int32 and vc.boxes.shape == (K, 4) and vc.boxes.dtype == np.float32
    assert vc.scores.dtype == np.float32 and vc.class_ids.dtype == np.int32
    assert list(vc.processed_frames) == list(range(T)) and (vc.height, vc.width) == (H, W)
    assert (Store(res.path).path / "data.h5").exists() and not list((res.path / "parts").glob("*.h5"))


def test_rle_masks_decode_to_the_detector_masks_at_original_resolution(data, tmp_path):
    ds = load_dataset(data)
    run(ds, tmp_path, **KEEP_ALL)
    vc = open_candidates(tmp_path).video("vid01")
    frames = dict(ds.videos["vid01"].iter_frames())
    fake = FakeDetector()
    for f in range(T):
        want = postprocess(fake.detect([frames[f]], [("vid01", f)])[0], **KEEP_ALL)
        rows = vc.frame_rows(f)
        np.testing.assert_array_equal(vc.masks(rows), want.masks)
        np.testing.assert_array_equal(vc.scores[rows], want.scores)
        assert vc.masks(rows).shape[1:] == (H, W)


def test_second_run_is_a_cache_hit_without_building_the_detector(data, tmp_path):
    ds = load_dataset(data)
    first = run(ds, tmp_path)
    config = DetectConfig(detector="fake", batch_size=3, workers=2, device="cpu")  # runtime fields differ
    again = stage.run(config, ds, tmp_path, detector_factory=refusing_factory, key_fn=fake_key)
    assert again.cache_hit and again.path == first.path and again.computed == []
    assert (again.frames, again.candidates) == (first.frames, first.candidates)


def test_changed_output_option_writes_a_new_folder_beside_the_old(data, tmp_path):
    ds = load_dataset(data)
    a = run(ds, tmp_path)
    b = run(ds, tmp_path, score_threshold=0.5)
    assert a.path != b.path and a.path.exists() and b.path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.path.name, b.path.name])


def test_batch_size_and_workers_do_not_change_the_result(data, tmp_path):
    ds = load_dataset(data)
    a = run(ds, tmp_path / "a", batch_size=1)
    b = run(ds, tmp_path / "b", batch_size=4, workers=2)
    assert a.path.name == b.path.name
    assert_same_content(read_all(a.path), read_all(b.path))


def test_shards_own_disjoint_videos_and_merge_equals_a_single_run(data, tmp_path):
    ds = load_dataset(data)
    single = run(ds, tmp_path / "single")
    s0 = run(ds, tmp_path / "sharded", shard=0, num_shards=2)
    s1 = run(ds, tmp_path / "sharded", shard=1, num_shards=2)
    assert s0.path == s1.path and s0.videos + s1.videos == 4
    assert stage.shard_videos(ds.videos, (0, 2)) == ["vid00", "vid02"]
    names = sorted(p.name for p in s0.path.glob("*.h5"))
    assert names == ["shard-0000-of-0002.h5", "shard-0001-of-0002.h5"]
    Store(s0.path).merge()
    assert sorted(p.name for p in s0.path.glob("*.h5")) == ["data.h5"]
    assert_same_content(read_all(s0.path), read_all(single.path))


def test_an_unsharded_run_completing_a_sharded_one_leaves_data_h5_alone(data, tmp_path):
    # shard 0 of 2 ran; the completing command (no --shard) does the rest and consolidates everything into
    # data.h5: the shard file would otherwise hold a second copy of its videos (counted twice by `cache ls`)
    ds = load_dataset(data)
    s0 = run(ds, tmp_path / "c", shard=0, num_shards=2)
    done = run(ds, tmp_path / "c")
    assert done.path == s0.path and sorted(p.name for p in done.path.glob("*.h5")) == ["data.h5"]
    assert_same_content(read_all(done.path), read_all(run(ds, tmp_path / "single").path))


def test_shard_defaults_come_from_slurm_array_variables():
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert stage.parse_shard(None, env) == (2, 4)  # ids 1..4 -> 0-based 2 for task 3
    assert stage.parse_shard(None, {}) == (0, 1)
    assert stage.parse_shard("1/3", {}) == (1, 3)
    with pytest.raises(ConfigError):
        stage.parse_shard("3/3", {})
    # shard files carry four-digit numbers (shard-IIII-of-NNNN.h5): more shards would be written and never merged
    assert stage.parse_shard("0/9999", {}) == (0, 9999)
    with pytest.raises(ConfigError, match="at most 9999 shards"):
        stage.parse_shard("0/10000", {})
    with pytest.raises(ConfigError, match="expected I/N"):  # int() would read full-width digits
        stage.parse_shard("\uff10/\uff12", {})
    with pytest.raises(ConfigError, match="cannot give a shard"):  # int() would read it as 1
        stage.parse_shard(None, {"SLURM_ARRAY_TASK_ID": "\uff11", "SLURM_ARRAY_TASK_COUNT": "4"})
    with pytest.raises(ConfigError, match="at least one task"):
        stage.parse_shard(None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "0"})


def test_frame_stride_runs_every_sth_frame_plus_annotated_frames(data, tmp_path):
    res = run(load_dataset(data), tmp_path, frame_stride=3)
    vc = open_candidates(res.path).video("vid00")
    assert list(vc.processed_frames) == sorted({0, 3} | set(ANNOTATED))  # 0, 3 by stride; 1, 4 annotated


def test_train_frames_annotated_detects_only_annotated_frames_of_train_videos(data, tmp_path):
    # vid00 is a train video: only its annotated frames 1 and 4; vid01 is a test video: the stride's frames too
    ds = load_dataset(data)
    ds.videos["vid00"] = dataclasses.replace(ds.videos["vid00"], split="train")
    ds.videos["vid01"] = dataclasses.replace(ds.videos["vid01"], split="test")
    res = run(ds, tmp_path, frame_stride=3, train_frames="annotated")
    cands = open_candidates(res.path)
    assert list(cands.video("vid00").processed_frames) == sorted(ANNOTATED)
    assert list(cands.video("vid01").processed_frames) == sorted({0, 3} | set(ANNOTATED))
    assert res.path != run(ds, tmp_path, frame_stride=3).path  # an output option: its own cache
    with pytest.raises(ConfigError, match="--train-frames"):
        run(ds, tmp_path, train_frames="some")


def test_summary_reports_recall_of_annotated_instances(data, tmp_path):
    res = run(load_dataset(data), tmp_path, **KEEP_ALL)
    # 4 videos x 2 annotated frames x 2 boxes; each box is one colour channel's mask (IoU ~1)
    assert res.gt_instances == 16 and res.gt_covered == 16 and res.recall == 1.0
    text = "\n".join(stage.summary_lines(res))
    assert "recall" in text and "per frame: 3.00" in text


def test_candidate_recall_counts_gt_covered_at_iou_half():
    gt = np.zeros((2, 4, 4), bool)
    gt[0, :2] = True  # 8 px
    gt[1, 2:] = True  # 8 px
    cand = np.zeros((2, 4, 4), bool)
    cand[0, :2, :3] = True  # 6 of gt0's 8 px, nothing else -> IoU 6/8 = 0.75
    cand[1, 2:, :2] = True  # 4 px inside gt1 -> IoU 4/8 = 0.5, counts (>=)
    assert candidate_recall(mask_ops.encode_many(gt), mask_ops.encode_many(cand)) == 2
    cand[1, 2:, 1] = False  # 2 px -> IoU 0.25
    assert candidate_recall(mask_ops.encode_many(gt), mask_ops.encode_many(cand)) == 1


def test_oracle_returns_exactly_the_gt_instances_of_annotated_frames(data):
    ds = load_dataset(data)
    oracle = OracleDetector.from_dataset(ds)
    assert [f for f in range(T) if oracle.wants_frame("vid02", f)] == list(ANNOTATED)
    (fc,) = oracle.detect([None], [("vid02", 4)])
    np.testing.assert_array_equal(fc.masks, gt_masks(2, 4))
    assert list(fc.scores) == [1.0, 1.0] and list(fc.class_ids) == [10, 11]
    np.testing.assert_array_equal(fc.boxes[0], mask_ops.tight_box(gt_masks(2, 4)[0]))
    assert oracle.key() == detector_key("oracle", ds)


def test_detect_with_oracle_visits_only_annotated_frames(data, tmp_path):
    ds = load_dataset(data)
    res = stage.run(DetectConfig(detector="oracle", max_per_frame=1), ds, tmp_path)
    vc = open_candidates(res.path).video("vid03")
    assert list(vc.processed_frames) == list(ANNOTATED)
    np.testing.assert_array_equal(vc.masks(vc.frame_rows(1)), gt_masks(3, 1))  # oracle is never capped
    assert res.recall == 1.0


def test_detector_key_follows_checkpoint_content_not_its_path(tmp_path):
    a = tmp_path / "a.pt"
    a.write_bytes(b"weights-1")
    b = tmp_path / "sub" / "b.pt"
    b.parent.mkdir()
    shutil.copy(a, b)
    assert detector_key(str(a), None) == detector_key(str(b), None)
    b.write_bytes(b"weights-2")
    assert detector_key(str(a), None) != detector_key(str(b), None)
    assert parse_spec("import:x.json") == ("import", "x.json") and parse_spec("r50-fpn") == ("r50-fpn", None)


def test_truncated_video_stops_the_run_naming_the_file_without_half_entries(data, tmp_path):
    root = tmp_path / "v"
    shutil.copytree(data, root)
    bad = root / "vid01.mp4"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(DataError, match="vid01.mp4.*--skip-bad"):
        run(load_dataset(root), tmp_path / "c")
    (art,) = (tmp_path / "c").iterdir()
    assert "vid01" not in Store(art).video_ids()


def test_skip_bad_records_a_truncated_video_and_a_rerun_does_not_retry_it(data, tmp_path):
    root = tmp_path / "v"
    shutil.copytree(data, root)
    bad = root / "vid01.mp4"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    ds = load_dataset(root)
    res = run(ds, tmp_path / "c", skip_bad=True)
    assert [v for v, _ in res.bad] == ["vid01"] and "vid01.mp4" in res.bad[0][1]
    vc = open_candidates(res.path).video("vid01")
    assert vc.status == "bad" and len(vc) == 0
    again = stage.run(DetectConfig(detector="fake"), ds, tmp_path / "c",
                      detector_factory=refusing_factory, key_fn=fake_key)
    assert again.cache_hit and [v for v, _ in again.bad] == ["vid01"]


def test_corrupted_cache_file_gives_a_one_line_cache_error(data, tmp_path):
    ds = load_dataset(data)
    res = run(ds, tmp_path)
    (res.path / "data.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(CacheError) as err:
        run(ds, tmp_path)
    assert "\n" not in str(err.value) and "data.h5" in str(err.value) and "re-run" in str(err.value)


def test_cli_detect_prints_the_folder_and_summary(data, tmp_path, monkeypatch):
    import clawcrane.datasets as datasets
    from clawcrane.cli import main

    ds = load_dataset(data)
    monkeypatch.setattr(datasets, "open_dataset", lambda path, **kw: ds, raising=False)
    out = CliRunner().invoke(main, ["detect", str(data), "--detector", "oracle", "--cache", str(tmp_path), "--shard", "0/1"])
    assert out.exit_code == 0, out.output
    assert f"wrote: {tmp_path}/detect-" in out.output and "recall (mask IoU >= 0.5): 1.000" in out.output
    again = CliRunner().invoke(main, ["detect", str(data), "--detector", "oracle", "--cache", str(tmp_path)])
    assert "cache hit" in again.output
    bad = CliRunner().invoke(main, ["detect", str(data), "--detector", str(tmp_path / "missing.pt"), "--cache", str(tmp_path)])
    assert bad.exit_code == 1 and "missing.pt" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_config_fields_are_documented_and_runtime_fields_stay_out_of_the_key(data):
    from clawcrane.config import output_config

    cfg = DetectConfig(detector="x", shard=1, num_shards=2, device="cuda", batch_size=9, workers=3, skip_bad=True)
    assert output_config(cfg) == output_config(dataclasses.replace(DetectConfig(detector="y")))


def test_video_ending_before_its_frame_count_is_bad_and_its_early_batches_are_dropped(data, tmp_path):
    ds = load_dataset(data)
    short_clip = dataclasses.replace(ds.videos["vid02"], num_frames=T + 3)  # the file has only T frames
    ds = dataclasses.replace(ds, videos=dict(ds.videos, vid02=short_clip))
    res = run(ds, tmp_path, skip_bad=True, batch_size=2)  # 3 batches of vid02 reach the detector first
    assert [v for v, _ in res.bad] == ["vid02"] and f"frame {T}" in res.bad[0][1]
    vc = open_candidates(res.path).video("vid02")
    assert vc.status == "bad" and len(vc) == 0 and len(vc.processed_frames) == 0


def test_refine_masks_rewrites_kept_masks_from_the_frame_and_keys_a_new_folder(data, tmp_path, monkeypatch):
    from clawcrane.config import key_config
    from clawcrane.stages import detect_stream

    ds = load_dataset(data)
    seen = []

    def block(frame, fc, *, method, min_score):  # stands in for GrabCut: every mask becomes the top-left 4x4 block
        seen.append((frame.shape, method, min_score))
        masks = np.zeros_like(fc.masks)
        masks[:, :4, :4] = True
        return dataclasses.replace(fc, masks=masks)

    monkeypatch.setattr(detect_stream, "refine_candidates", block)
    plain = run(ds, tmp_path, **KEEP_ALL)
    refined = run(ds, tmp_path, refine_masks="grabcut", **KEEP_ALL)
    assert refined.path != plain.path  # an output option: its own folder
    # the frames themselves (H, W, 3) reach the refinement, with the stage's score threshold
    assert seen and all(s == ((H, W, 3), "grabcut", 0.0) for s in seen)
    for vid in sorted(ds.videos):
        v = open_candidates(refined.path).video(vid)
        assert len(v) and all(np.array_equal(m, np.pad(np.ones((4, 4), bool), ((0, H - 4), (0, W - 4)))) for m in v.masks())
    # 'none' is keyed as before the option existed: caches written then stay valid
    assert "refine_masks" not in key_config(DetectConfig(detector="x"))
    assert key_config(DetectConfig(detector="x", refine_masks="grabcut"))["refine_masks"] == "grabcut"


def test_refine_masks_is_refused_for_ground_truth_and_imports(data, tmp_path):
    ds = load_dataset(data)
    for spec in ("oracle", "import:/some/where"):
        with pytest.raises(ConfigError, match="--refine-masks grabcut refines a Mask R-CNN"):
            stage.run(DetectConfig(detector=spec, refine_masks="grabcut"), ds, tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_clip_that_cannot_give_its_fps_is_one_error_or_with_skip_bad_a_bad_video(data, tmp_path):
    # oracle candidates decode no pixel, but storing a video reads its fps: a reader that opens clips
    # lazily (A2D's) meets the broken file there, in the writer thread. That error must reach the caller
    # (not the teardown's internal stop), and --skip-bad must record the video as bad and go on.
    root = tmp_path / "v"
    shutil.copytree(data, root)
    bad = root / "vid01.mp4"
    bad.write_bytes(b"not a video " * 300)
    ds = load_dataset(root)
    v = ds.videos["vid01"]
    ds.videos["vid01"] = LazyFpsVideo(v.video_id, v.source, None, v.width, v.height, v.num_frames, v.split)
    with pytest.raises(DataError, match="vid01.mp4: cannot open video.*--skip-bad"):
        stage.run(DetectConfig(detector="oracle"), ds, tmp_path / "c")
    res = stage.run(DetectConfig(detector="oracle", skip_bad=True), ds, tmp_path / "c")
    assert [b for b, _ in res.bad] == ["vid01"] and res.videos == len(ds.videos)
    assert open_candidates(res.path).video("vid00").status == "ok"
