"""The extract stage end to end on a tiny candidate cache: alignment, values, flip, hits, refusals."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.extract_world import build

from clawcrane.build.backbones import build_backbone, resolve_backbone
from clawcrane.cache.features import open_features
from clawcrane.cache.store import Store
from clawcrane.config import ExtractConfig
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline import positions as pos_ops
from clawcrane.pipeline.pooling import pool_masks
from clawcrane.stages import extract as stage

TINY = dict(backbone="resnet18", weights="none", input_size=64, batch_size=3, device="cpu")


@pytest.fixture
def tiny(tmp_path):
    return build(tmp_path)


def test_features_align_with_candidates_and_equal_direct_pooling(tiny):
    root, dataset, cands = tiny
    res = stage.run(ExtractConfig(cache=str(root), dtype="float32", with_flip=True, **TINY), dataset=dataset)
    assert not res.hit and res.frames == 4 and res.candidates == 8 and res.channels == 512
    fc = open_features(root / res.path.name)
    assert fc.has_flip and fc.channels == 512 and fc.video_ids() == ["a", "b", "c"]
    assert [p.name for p in fc.store.files()] == ["data.h5"]
    backbone = build_backbone(resolve_backbone("resnet18", "none", input_size=64))
    for vid, vc in cands.items():
        vf = fc.video(vid)
        assert vf.feat.shape == (len(vc), 512) and vf.feat.dtype == np.float32
        assert np.array_equal(vf.frames, vc.frames)  # rows 1:1 with the candidate rows
        assert np.isfinite(vf.feat).all() and np.isfinite(vf.feat_flip).all()
        for f in np.unique(vc.frames):
            rows = vc.frame_rows(f)
            masks = vc.masks(rows)
            x = backbone.preprocess([dataset.videos[vid].read_frame(int(f))])
            want = pool_masks(backbone(x)[0][0], masks).numpy()
            want_flip = pool_masks(backbone(torch.flip(x, dims=[3]))[0][0], masks[:, :, ::-1].copy()).numpy()
            np.testing.assert_allclose(vf.feat[rows], want, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(vf.feat_flip[rows], want_flip, rtol=1e-4, atol=1e-4)
            want_pos = pos_ops.positions(pos_ops.tight_boxes(masks), 64, 48)
            np.testing.assert_allclose(vf.pos[rows], want_pos, atol=1e-6)
            np.testing.assert_allclose(vf.pos_flip[rows], pos_ops.flip_positions(want_pos), atol=1e-6)


def test_efficientnet_lite0_features_from_real_weights_end_to_end(tiny):
    root, dataset, cands = tiny
    res = stage.run(ExtractConfig(cache=str(root), backbone="efficientnet-lite0", input_size=64, device="cpu"), dataset=dataset)
    vf = open_features(res.path).video("a")
    # default levels C3, C4, C5, head: 40 + 112 + 320 + 1280 channels
    assert res.config.levels == ("C3", "C4", "C5", "head") and vf.feat.shape == (6, 1752) and vf.feat.dtype == np.float16
    head = vf.feat[:, -1280:]
    assert np.isfinite(vf.feat).all() and (head >= 0).all() and (head <= 6).all()  # ReLU6 head
    assert len({vf.feat[i].tobytes() for i in range(6)}) == 6  # distinct candidates, distinct features
    assert res.raw_bytes_per_candidate == 4 + 1752 * 2 + 40 and res.stored_bytes_per_candidate > 0


def test_cache_hit_returns_without_building_the_backbone(tiny, monkeypatch):
    root, dataset, _ = tiny
    cfg = ExtractConfig(cache=str(root), **TINY)
    first = stage.run(cfg, dataset=dataset)

    def boom(*a, **k):
        raise AssertionError("backbone built on a cache hit")

    monkeypatch.setattr(stage, "build_backbone", boom)
    again = stage.run(ExtractConfig(cache=str(root), **{**TINY, "batch_size": 1}), dataset=None)  # runtime option differs
    assert again.hit and again.path == first.path and again.key == first.key
    with pytest.raises(AssertionError, match="cache hit"):  # an output option differs: a new artifact
        stage.run(ExtractConfig(cache=str(root), **{**TINY, "input_size": 96}), dataset=dataset)


def test_a_killed_run_resumes_with_the_videos_it_had_not_finished(tiny):
    root, dataset, _ = tiny
    dataset.videos["b"].source.path.rename(dataset.root / "b.moved")
    with pytest.raises(DataError, match="b.mp4"):  # one decoding thread: 'a' is decoded before 'b' fails
        stage.run(ExtractConfig(cache=str(root), workers=1, **{**TINY, "batch_size": 16}), dataset=dataset)
    assert Store(next(root.glob("extract-*"))).video_ids() == ["a"]
    (dataset.root / "b.moved").rename(dataset.root / "b.mp4")
    res = stage.run(ExtractConfig(cache=str(root), **TINY), dataset=dataset)
    assert res.computed_videos == 2 and res.videos == 3  # 'a' was kept from the killed run


def test_skip_bad_stores_an_undecodable_video_as_bad_and_goes_on(tiny):
    root, dataset, _ = tiny
    dataset.videos["b"].source.path.write_bytes(b"not a video")
    res = stage.run(ExtractConfig(cache=str(root), skip_bad=True, **TINY), dataset=dataset)
    fc = open_features(res.path)
    assert fc.video("b").status == "bad" and fc.video("a").status == "ok" and len(fc.video("a")) == 6


def test_shards_write_their_own_files(tiny):
    root, dataset, _ = tiny
    r0 = stage.run(ExtractConfig(cache=str(root), shard=0, num_shards=2, **TINY), dataset=dataset)
    r1 = stage.run(ExtractConfig(cache=str(root), shard=1, num_shards=2, **TINY), dataset=dataset)
    assert r0.path == r1.path and (r0.videos, r1.videos) == (2, 1)
    assert sorted(p.name for p in Store(r0.path).files()) == ["shard-0000-of-0002.h5", "shard-0001-of-0002.h5"]
    assert open_features(r0.path).video_ids() == ["a", "b", "c"]


def test_features_of_a_changed_candidate_cache_are_refused_naming_both_keys(tiny):
    root, dataset, _ = tiny
    res = stage.run(ExtractConfig(cache=str(root), **TINY), dataset=dataset)
    fc = open_features(res.path)
    with pytest.raises(CacheError) as err:
        fc.check_candidates("d" * 64, root / "detect-dddd")
    assert "c" * 16 in str(err.value) and "d" * 16 in str(err.value) and "clawcrane extract" in str(err.value)
    # an artifact folder whose recorded upstream is not this candidate cache is refused, not reused
    meta = json.loads((res.path / "meta.json").read_text())
    meta["upstream"]["candidates"] = "e" * 64
    (res.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="eeeeeeeeeeeeeeee.*cccccccccccccccc.*clawcrane extract"):
        stage.run(ExtractConfig(cache=str(root), **TINY), dataset=dataset)


def test_a_changed_dataset_is_refused(tiny):
    root, dataset, _ = tiny
    dataset.fingerprint = "0" * 64
    with pytest.raises(CacheError, match="clawcrane detect"):
        stage.run(ExtractConfig(cache=str(root), **TINY), dataset=dataset)


def test_cli_extract_runs_and_reports_the_folder(tiny, monkeypatch):
    from clawcrane.cli import main

    root, dataset, _ = tiny
    monkeypatch.setattr(stage, "_open_dataset", lambda cand, cfg: dataset)
    args = ["extract", "--cache", str(root), "--backbone", "resnet18", "--weights", "none", "--input-size", "64",
            "--levels", "C4,C5", "--with-flip", "--device", "cpu"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "C=768" in out.output and "extract-" in out.output.strip().splitlines()[-1]
    assert "cache hit" in CliRunner().invoke(main, args).output
    bad = CliRunner().invoke(main, ["extract", "--cache", str(root), "--backbone", "resnet9"])
    assert bad.exit_code == 1 and "--backbone resnet9: unknown" in bad.output


def test_shard_option_and_slurm_defaults():
    assert stage.parse_shard("1/3") == (1, 3)
    assert stage.parse_shard(None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "2"}) == (1, 2)
    assert stage.parse_shard(None, {}) == (0, 1)
    # --array=0-6:2 runs tasks 0, 2, 4, 6 (count 4, step 2): task 4 is the third of four shards, not 4/4
    stepped = {"SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_STEP": "2"}
    assert [stage.parse_shard(None, dict(stepped, SLURM_ARRAY_TASK_ID=str(t))) for t in (0, 2, 4, 6)] == \
        [(0, 4), (1, 4), (2, 4), (3, 4)]
    # --array=1,4,5 (count 3, no even step): task 4 maps to no shard; refused rather than guessed
    with pytest.raises(ConfigError, match="evenly stepped range"):
        stage.parse_shard(None, {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
    with pytest.raises(ConfigError, match="0 <= I < N"):
        stage.parse_shard("3/3")
