"""Ref-YouTube-VOS reader (datasets.md §4): palette PNG ids, frame positions, the valid split."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.dataset_builders import YtvosVideo, default_ytvos_videos, make_ytvos

from clawcrane.datasets.ytvos import read_ytvos
from clawcrane.errors import ConfigError


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory):
    return make_ytvos(tmp_path_factory.mktemp("ytvos"))


def test_palette_pngs_give_object_ids_not_colours(ytvos_root):
    ds = read_ytvos(ytvos_root)
    spec = {v.video_id: v for v in default_ytvos_videos()}["abc123"]
    ids = {i.instance_id: i.mask for i in ds.frame_instances("abc123", 1)}  # frame 1 = 00005.png
    assert sorted(ids) == ["1", "2"]
    np.testing.assert_array_equal(ids["2"], spec.mask("2", "00005"))


def test_queries_per_expression_with_positions_as_frame_indices(ytvos_root):
    ds = read_ytvos(ytvos_root)
    specs = {v.video_id: v for v in default_ytvos_videos()}
    by_id = {q.query_id: q for q in ds.queries}
    assert sorted(by_id) == ["abc123_0", "abc123_1", "abc123_2", "def456_0"]
    q = by_id["abc123_2"]
    assert (q.instance_id, q.frames, q.split) == ("2", (0, 1, 2, 3), "train")
    # object 2 is absent from 00000: its GT mask there is empty, as J&F scores it
    assert not q.gt_mask(0).any()
    for q in ds.queries:
        names = specs[q.video_id].frames
        for f in q.frames:
            np.testing.assert_array_equal(q.gt_mask(f), specs[q.video_id].mask(q.instance_id, names[f]))
    assert by_id["def456_0"].sentence == "a big dog"
    assert ds.counts() == {"train": {"videos": 2, "queries": 4, "samples": 15}}  # 3 x 4 frames + 1 x 3


def test_only_frames_with_a_png_are_annotated(tmp_path):
    root = make_ytvos(tmp_path)
    (root / "train/Annotations/abc123/00010.png").unlink()
    ds = read_ytvos(root)
    assert ds.annotated_frames["abc123"] == (0, 1, 3)
    assert {q.query_id: q.frames for q in ds.queries}["abc123_0"] == (0, 1, 3)


def test_valid_split_has_queries_without_ground_truth(tmp_path):
    root = make_ytvos(tmp_path, [YtvosVideo("v1", expressions={"0": ("a cat", "1")})], split="valid", annotations=False)
    ds = read_ytvos(root)
    (q,) = ds.queries
    assert (q.query_id, q.instance_id, q.frames, q.split, q.mask_loader) == ("v1_0", None, (), "valid", None)
    assert ds.frame_instances("v1", 0) == []
    with pytest.raises(ConfigError):
        read_ytvos(root, split="train")
