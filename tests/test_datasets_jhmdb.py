"""J-HMDB-Sentences reader (datasets.md §2): masks, T < #PNGs, 3 samples per video, MTTR's list."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.dataset_builders import JhmdbVideo, default_jhmdb_videos, make_jhmdb, mttr_samples_entry

from clawcrane.datasets.jhmdb import choose_frames, read_jhmdb
from clawcrane.datasets.validate import split_problems
from clawcrane.errors import ConfigError


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory):
    return make_jhmdb(tmp_path_factory.mktemp("jhmdb"))


def test_puppet_masks_round_trip_and_trailing_frames_have_none(jhmdb_root):
    ds = read_jhmdb(jhmdb_root)
    specs = {v.video_id: v for v in default_jhmdb_videos()}
    walk = ds.videos["walk_video_1"]
    assert (walk.num_frames, walk.height, walk.width, walk.split) == (8, 24, 32, "test")
    # part_mask has T = 6 masks for 8 PNGs: only frames 0..5 are annotated
    assert ds.annotated_frames["walk_video_1"] == (0, 1, 2, 3, 4, 5)
    for q in ds.queries:
        for f in q.frames:
            np.testing.assert_array_equal(q.gt_mask(f), specs[q.video_id].mask(f))
    (inst,) = ds.frame_instances("walk_video_1", 5)
    assert inst.instance_id == "1"
    np.testing.assert_array_equal(inst.mask, specs["walk_video_1"].mask(5))
    assert walk.read_frame(7).shape == (24, 32, 3)


def test_three_masked_frames_per_video_drawn_reproducibly(jhmdb_root):
    ds = read_jhmdb(jhmdb_root)
    assert ds.counts() == {"test": {"videos": 2, "queries": 2, "samples": 6}}
    for q in ds.queries:
        assert len(q.frames) == 3 and len(set(q.frames)) == 3 and max(q.frames) < len(ds.annotated_frames[q.video_id])
    assert [q.frames for q in read_jhmdb(jhmdb_root).queries] == [q.frames for q in ds.queries]
    assert [q.query_id for q in ds.queries] == ["walk_video_1_1", "pullup_video_2_1"]
    assert ds.queries[0].sentence == "a man walking to the right"


def test_choose_frames_is_sorted_distinct_and_caps_at_the_masked_count():
    assert choose_frames("v", 2) == (0, 1)  # fewer than 3 masked frames: all of them
    frames = choose_frames("v", 40)
    assert frames == tuple(sorted(set(frames))) and len(frames) == 3 and frames == choose_frames("v", 40)
    assert {choose_frames(f"v{i}", 40) for i in range(20)} != {frames}  # depends on the video


def test_mttr_samples_metadata_sets_the_frames_when_present(tmp_path):
    videos = default_jhmdb_videos()
    entries = [mttr_samples_entry(videos[0], f) for f in (0, 2, 5)] + [
        mttr_samples_entry(videos[1], f) for f in (1, 3, 4)
    ]
    ds = read_jhmdb(make_jhmdb(tmp_path, videos, samples_metadata=entries))
    assert {q.video_id: q.frames for q in ds.queries} == {"walk_video_1": (0, 2, 5), "pullup_video_2": (1, 3, 4)}
    assert ds.problems == []


def test_only_a_test_split_and_missing_masks_are_reported(tmp_path):
    videos = [*default_jhmdb_videos(), JhmdbVideo("lost_video", "run")]
    root = make_jhmdb(tmp_path, videos)
    (root / "puppet_mask/run/lost_video/puppet_mask.mat").unlink()
    ds = read_jhmdb(root)
    errors, _ = split_problems(ds.problems)
    assert len(errors) == 1 and "lost_video/puppet_mask.mat" in errors[0]
    assert "lost_video" not in ds.videos
    with pytest.raises(ConfigError):
        read_jhmdb(root, split="train")
