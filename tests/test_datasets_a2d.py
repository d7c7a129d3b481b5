"""A2D-Sentences reader: protocol details (datasets.md §1) on tiny folders built in the real layout."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from helpers.dataset_builders import A2DObject, A2DVideo, a2d_clip, a2d_h5, default_a2d_videos, make_a2d, write_a2d_h5, write_csv

from clawcrane.datasets.a2d import read_a2d
from clawcrane.datasets.records import LazyFpsVideo
from clawcrane.datasets.validate import split_problems
from clawcrane.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def a2d_root(tmp_path_factory):
    return make_a2d(tmp_path_factory.mktemp("a2d"))


def _errors(ds):
    return split_problems(ds.problems)[0]


def _warnings(ds):
    return split_problems(ds.problems)[1]


def test_masks_round_trip_exactly_including_the_single_instance_2d_remask(a2d_root):
    ds = read_a2d(a2d_root)
    specs = {v.video_id: v for v in default_a2d_videos()}
    # vidA frame 1 lists one instance, so MATLAB stored reMask as a 2-D (W, H) array.
    with h5py.File(a2d_h5(a2d_root, "vidA", 1)) as f:
        assert f["reMask"].shape == (48, 32)
    for q in ds.queries:
        for frame in q.frames:
            got = q.gt_mask(frame)
            assert got.dtype == bool and got.shape == (specs[q.video_id].height, specs[q.video_id].width)
            np.testing.assert_array_equal(got, specs[q.video_id].mask(q.instance_id, frame))
    inst = ds.frame_instances("vidA", 4)
    assert [(i.instance_id, i.class_id) for i in inst] == [("1", 11), ("2", 77)]
    np.testing.assert_array_equal(inst[1].mask, specs["vidA"].mask("2", 4))


def test_sample_counts_follow_the_protocol(a2d_root):
    ds = read_a2d(a2d_root)
    # test: vidA instance 1 in 3 frames + instance 2 in 1 frame + vidB 1 frame = 5 samples
    # train: vidC instance 1 in 2 frames + instance 3 in 1 + vidD 1 = 4 samples
    assert ds.counts() == {
        "test": {"videos": 2, "queries": 3, "samples": 5},
        "train": {"videos": 2, "queries": 3, "samples": 4},
    }
    by_id = {q.query_id: q for q in ds.queries}
    # vidA frames 1 and 6 do not list instance 2: they yield no sample for its sentence
    assert by_id["vidA_2"].frames == (4,)
    assert by_id["vidA_1"].frames == (1, 4, 6)
    assert ds.annotated_frames["vidA"] == (1, 4, 6)
    with pytest.raises(KeyError):
        by_id["vidA_2"].gt_mask(1)


def test_copy_row_is_dropped_and_missed_videos_are_excluded_from_both_splits(a2d_root):
    ds = read_a2d(a2d_root)
    assert "vidMissed" not in ds.videos
    assert all(q.video_id != "vidMissed" for q in ds.queries)
    assert all(q.instance_id.isdigit() for q in ds.queries)
    assert "a duplicated sentence the protocol drops" not in {q.sentence for q in ds.queries}
    assert ds.problems == []


def test_split_assignment_and_split_filter(a2d_root):
    ds = read_a2d(a2d_root)
    assert {v: ds.videos[v].split for v in ds.videos} == {
        "vidA": "test",
        "vidB": "test",
        "vidC": "train",
        "vidD": "train",
    }
    test = read_a2d(a2d_root, split="test")
    assert sorted(test.videos) == ["vidA", "vidB"]
    assert {q.split for q in test.queries} == {"test"}
    assert test.fingerprint == ds.fingerprint  # the key covers the whole dataset, not the split read
    with pytest.raises(ConfigError):
        read_a2d(a2d_root, split="valid")


def test_query_types_and_normalised_sentences_are_attached(a2d_root):
    ds = read_a2d(a2d_root)
    by_id = {q.query_id: q for q in ds.queries}
    assert by_id["vidA_1"].sentence == "the man on the left"  # "The man  on the LEFT" lower-cased, collapsed
    assert by_id["vidA_1"].query_type == "position"
    assert by_id["vidC_3"].query_type == "relation"
    assert ds.query_types() == ["appearance", "motion", "position", "relation"]


def test_no_clip_is_opened_at_load_and_fps_is_probed_on_demand(a2d_root):
    ds = read_a2d(a2d_root)
    video = ds.videos["vidA"]
    assert isinstance(video, LazyFpsVideo) and video.__dict__["_fps"] is None
    assert (video.height, video.width, video.num_frames) == (32, 48, 8)  # from videoset.csv
    assert video.fps == pytest.approx(10.0)  # the builder writes 10 fps clips
    assert video.read_frame(0).shape == (32, 48, 3)


def test_frame_file_names_are_one_based(tmp_path):
    root = make_a2d(
        tmp_path, [A2DVideo("v", num_frames=30, objects=[A2DObject("1", "a dog", {27: (1, 1, 5, 5)})])], missed=[]
    )
    assert a2d_h5(root, "v", 27).name == "00028.h5" and a2d_h5(root, "v", 27).is_file()
    ds = read_a2d(root)
    assert ds.annotated_frames["v"] == (27,)
    assert ds.queries[0].frames == (27,)


def test_fingerprint_is_stable_and_follows_annotation_and_clip_content(tmp_path):
    root = make_a2d(tmp_path)
    first = read_a2d(root).fingerprint
    assert read_a2d(root).fingerprint == first
    sentences = root / "text_annotations/a2d_annotation.txt"
    sentences.write_text(sentences.read_text().replace("a dog running", "a dog sitting"))
    second = read_a2d(root).fingerprint
    assert second != first
    clip = a2d_clip(root, "vidB")
    clip.write_bytes(clip.read_bytes() + b"\0")
    assert read_a2d(root).fingerprint != second


def test_h5_without_remask_is_reported_and_its_frame_skipped(tmp_path):
    root = make_a2d(tmp_path)
    spec = default_a2d_videos()[0]
    path = a2d_h5(root, "vidA", 4)
    write_a2d_h5(path, np.stack([spec.mask("1", 4), spec.mask("2", 4)]), [1.0, 2.0], [11, 77], drop=("reMask",))
    ds = read_a2d(root)
    errors = _errors(ds)
    assert len(errors) == 1 and str(path) in errors[0] and "reMask" in errors[0]
    assert ds.annotated_frames["vidA"] == (1, 6)
    assert {q.query_id: q.frames for q in ds.queries}["vidA_1"] == (1, 6)


def test_h5_whose_instance_list_and_masks_disagree_is_reported(tmp_path):
    root = make_a2d(tmp_path)
    spec = default_a2d_videos()[0]
    path = a2d_h5(root, "vidA", 4)
    write_a2d_h5(path, spec.mask("1", 4)[None], [1.0, 2.0], [11, 77])  # 2 ids, 1 mask
    errors = _errors(read_a2d(root))
    assert len(errors) == 1 and str(path) in errors[0] and "2 ids" in errors[0]


def test_malformed_rows_and_empty_sentences_are_reported_with_their_line(tmp_path):
    root = make_a2d(tmp_path, extra_sentence_rows=[["vidB", "2"], ["vidB", "3", "   "], ["ghost", "1", "a ghost"]])
    with open(root / "Release/videoset.csv", "a") as f:
        f.write("broken,11,0,5,32\n")
    ds = read_a2d(root)
    errors = _errors(ds)
    assert len(errors) == 4
    text = "\n".join(errors)
    assert "videoset.csv:6: expected 9 comma-separated columns, found 5" in text
    assert "a2d_annotation.txt:" in text and "found 2" in text
    assert "empty sentence for video vidB instance 3" in text
    assert "video ghost (instance 1) is not in videoset.csv" in text
    assert ds.counts()["test"]["queries"] == 3  # the good rows are all still read


def test_mask_size_decides_the_frame_size_when_videoset_lists_another(tmp_path):
    # Real A2D's videoset.csv may list the original YouTube size while clips and masks are 320 px
    # high: the masks' (consistent) size wins, and the difference is one warning per video.
    root = make_a2d(tmp_path)
    rows = (root / "Release/videoset.csv").read_text().replace("vidA,11,0,8,32,48", "vidA,11,0,8,30,48")
    (root / "Release/videoset.csv").write_text(rows)
    ds = read_a2d(root)
    warnings = [w for w in _warnings(ds) if "videoset.csv says" in w]
    assert not _errors(ds)
    assert len(warnings) == 1 and "vidA" in warnings[0] and "32x48" in warnings[0] and "30x48" in warnings[0]
    assert (ds.videos["vidA"].height, ds.videos["vidA"].width) == (32, 48)


def test_instances_without_sentences_and_sentences_without_instances_are_warnings(tmp_path):
    videos = default_a2d_videos()
    videos[0].objects.append(A2DObject("5", None, {4: (0, 0, 3, 3)}))  # annotated, no sentence
    root = make_a2d(tmp_path, videos, extra_sentence_rows=[["vidB", "9", "a sentence for nobody"]])
    ds = read_a2d(root)
    assert _errors(ds) == []
    warnings = _warnings(ds)
    assert len(warnings) == 2
    assert any("instance(s) 5 are annotated but have no sentence" in w for w in warnings)
    assert any("no annotated frame lists instance 9 of video vidB" in w for w in warnings)
    assert {q.query_id: q.frames for q in ds.queries}["vidB_9"] == ()


def test_missing_clip_is_reported_and_the_video_skipped(tmp_path):
    root = make_a2d(tmp_path)
    os.remove(a2d_clip(root, "vidB"))
    ds = read_a2d(root)
    errors = _errors(ds)
    assert len(errors) == 1 and "vidB.mp4: clip is missing" in errors[0]
    assert "vidB" not in ds.videos and all(q.video_id != "vidB" for q in ds.queries)


def test_a_wrong_annotation_header_is_a_one_line_error(tmp_path):
    root = make_a2d(tmp_path)
    write_csv(root / "text_annotations/a2d_annotation.txt", [["vidA", "1", "a man"]])  # no header
    with pytest.raises(DataError) as err:
        read_a2d(root)
    assert "\n" not in str(err.value) and "expected the header video_id,instance_id,query" in str(err.value)


def test_dataset_pickles_with_its_lazy_loaders(a2d_root):
    import pickle

    ds = read_a2d(a2d_root)
    ds.queries[0].gt_mask(ds.queries[0].frames[0])  # fill the cache first
    copy = pickle.loads(pickle.dumps(ds))
    q = copy.queries[0]
    np.testing.assert_array_equal(q.gt_mask(q.frames[0]), ds.queries[0].gt_mask(q.frames[0]))


def test_damaged_h5_file_is_reported_not_raised(tmp_path):
    from helpers.dataset_builders import truncate

    root = make_a2d(tmp_path)
    path = truncate(a2d_h5(root, "vidC", 3), 0.3)
    ds = read_a2d(root)
    errors = _errors(ds)
    assert len(errors) == 1 and str(path) in errors[0] and "HDF5" in errors[0]
    assert ds.annotated_frames["vidC"] == (0,)
