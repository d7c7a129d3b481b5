"""The synthetic benchmark (tiny preset): A2D layout, orientations, uniqueness, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers.synth_checker import check_query, parse, referents

from clawcrane.config import SynthConfig
from clawcrane.datasets.synth import writer
from clawcrane.datasets.synth.generate import plan_dataset, synthesize_video
from clawcrane.datasets.synth.render import SHADOW_GREY
from clawcrane.datasets.synth.scene import COLOURS
from clawcrane.datasets.synth.sentences import QUERY_TYPES
from clawcrane.datasets.video_io import Mp4Frames
from clawcrane.stages import synth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    synth.run(SynthConfig(preset="tiny", seed=0, workers=1), out)
    return out


def _videoset(root: Path) -> list[list[str]]:
    with open(root / "Release" / "videoset.csv", newline="") as f:
        return list(csv.reader(f))


def _scenes(root: Path) -> dict[str, dict]:
    return {v["video_id"]: v for v in json.loads((root / "synth_scenes.json").read_text())["videos"]}


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one A2D frame file, turned back to (N, H, W) / (H, W) / (N, 4)."""
    with h5py.File(path, "r") as f:
        mask = f["reMask"][()]
        ids = f["instance"][()]
        if mask.ndim == 2:  # N == 1: (W, H)
            mask = mask[None]
        return {"masks": mask.transpose(0, 2, 1).astype(bool), "instance": ids, "boxes": f["reBBox"][()].T,
                "class": f["id"][()], "label": f["reS_id"][()].T, "raw_mask_shape": f["reMask"].shape}


def test_files_are_in_the_a2d_layout(tiny):
    rows = _videoset(tiny)
    scenes = _scenes(tiny)
    assert all(len(r) == 9 for r in rows) and rows[0][0] == "s0000"  # no header, 9 columns
    assert [r[0] for r in rows] == sorted(scenes) and len(set(r[0] for r in rows)) == len(rows)
    missed = (tiny / "text_annotations" / "a2d_missed_videos.txt").read_text().split()
    ann_rows = list(csv.reader(open(tiny / "text_annotations" / "a2d_annotation.txt", newline="")))
    type_rows = list(csv.reader(open(tiny / "text_annotations" / "query_types.csv", newline="")))
    assert ann_rows[0] == ["video_id", "instance_id", "query"]
    assert type_rows[0] == ["video_id", "instance_id", "query_type"]
    assert [r[:2] for r in ann_rows[1:]] == [r[:2] for r in type_rows[1:]]
    assert len({(r[0], r[1]) for r in ann_rows[1:]}) == len(ann_rows) - 1  # one sentence per instance
    for vid, _, _, _, H, W, T, labeled, split in rows:
        rec = scenes[vid]
        assert (int(H), int(W), int(T)) == (240, 320, rec["num_frames"])
        assert (tiny / "Release" / "clips320H" / f"{vid}.mp4").is_file()
        h5_dir = tiny / "text_annotations" / "a2d_annotation_with_instances" / vid
        if vid in missed:  # the unannotated video: no h5 files, no sentences
            assert not h5_dir.exists() and int(labeled) == 0 and not any(r[0] == vid for r in ann_rows)
            continue
        assert split == ("1" if rec["split"] == "test" else "0")
        names = sorted(p.name for p in h5_dir.iterdir())
        assert names == [f"{t + 1:05d}.h5" for t in rec["annotated_frames"]]  # 1-based, 5 digits
        assert int(labeled) == len(names) and 3 <= len(names) <= 5
    assert missed == ["s0008"]


def test_h5_masks_are_transposed_visible_parts_of_the_scene(tiny):
    scenes = _scenes(tiny)
    plans = {p.video_id: p for p in plan_dataset("tiny", 0)}
    for vid in ("s0000", "s0004", "s0006"):
        rec = scenes[vid]
        video = synthesize_video(plans[vid])  # the generator's own geometry, recomputed
        for t in rec["annotated_frames"]:
            h = _read_h5(writer.h5_path(tiny, vid, t))
            N = len(h["instance"])
            assert h["raw_mask_shape"] == ((N, 320, 240) if N > 1 else (320, 240))  # (N, W, H) as h5py shows it
            listed = [o for o in rec["objects"] if o["visible_px"][t] >= 20]
            assert h["instance"].tolist() == [o["instance_id"] for o in listed]  # every visible object
            assert h["class"].shape == (1, N)
            for k, o in enumerate(listed):
                m = h["masks"][k]
                assert m.sum() == o["visible_px"][t]
                assert np.array_equal(m, video.geometry.labels[t] == o["instance_id"])
                ys, xs = np.nonzero(m)
                box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                assert h["boxes"][k].tolist() == box == o["visible_box"][t]
                assert h["class"][0, k] == o["class_id"]
                assert np.all(h["label"][m] == o["class_id"])
            assert not h["label"][~h["masks"].any(0)].any()  # background is 0
            assert not (h["masks"].sum(0) > 1).any()  # visible parts never overlap


def test_single_instance_frame_stores_a_2d_mask(tmp_path):
    # MATLAB drops the singleton: one (H, W) mask becomes (W, H) in h5py, not (1, W, H)
    m = np.zeros((1, 6, 4), bool)
    m[0, 1:3, 2:4] = True
    writer.write_frame_h5(tmp_path / "00001.h5", masks=m, instance_ids=np.array([3]), boxes=np.array([[2, 1, 4, 3]]),
                          class_ids=np.array([21]), label_map=m[0].astype(np.uint8) * 21)
    h = _read_h5(tmp_path / "00001.h5")
    assert h["raw_mask_shape"] == (4, 6)
    assert np.array_equal(h["masks"], m) and h["boxes"].tolist() == [[2, 1, 4, 3]]
    assert h["instance"].tolist() == [3] and h["class"].tolist() == [[21]]


def test_mp4_frame_count_and_size_match_videoset(tiny):
    for vid, _, _, _, H, W, T, _, _ in _videoset(tiny):
        src = Mp4Frames(tiny / "Release" / "clips320H" / f"{vid}.mp4")
        frames = [f for _, f in src.iter()]
        assert len(frames) == int(T)
        assert frames[0].shape == (int(H), int(W), 3)


def test_decoded_pixels_show_the_objects_and_the_shadow(tiny):
    # inside each well-visible mask the decoded colour is the object's colour, or grey in full shadow
    scenes = _scenes(tiny)
    seen_dark = 0
    for vid in ("s0002", "s0004"):
        rec = scenes[vid]
        frames = dict(Mp4Frames(tiny / "Release" / "clips320H" / f"{vid}.mp4").iter(rec["annotated_frames"]))
        for t in rec["annotated_frames"]:
            h = _read_h5(writer.h5_path(tiny, vid, t))
            for k, inst in enumerate(h["instance"].tolist()):
                o = rec["objects"][inst - 1]
                if o["visible_px"][t] < 300 or 0.1 < o["shadow"][t] < 0.95:
                    continue
                median = np.median(frames[t][h["masks"][k]], axis=0)
                want = SHADOW_GREY if o["shadow"][t] >= 0.95 else np.array(COLOURS[o["colour"]])
                seen_dark += o["shadow"][t] >= 0.95
                assert np.abs(median - want).max() < 30, (vid, t, inst, median, want)
    assert seen_dark >= 2


def test_every_query_singles_out_its_target(tiny):
    scenes = _scenes(tiny)
    n = 0
    for rec in scenes.values():
        for q in rec["queries"]:
            check_query(rec, q)
            n += 1
    assert n >= 30


def test_checker_catches_a_wrong_sentence(tiny):
    # the checker can fail: swapping the direction word of a position query picks another object
    rec = next(r for r in _scenes(tiny).values() if any(q["query"].startswith("the leftmost") for q in r["queries"]))
    q = next(q for q in rec["queries"] if q["query"].startswith("the leftmost"))
    wrong = q["query"].replace("leftmost", "rightmost")
    assert parse(wrong)[1] == ("rank", "right", 0)
    assert referents(rec, wrong, q["frames"][0])[0] != [q["instance_id"]]


def test_every_query_type_is_in_both_splits(tiny):
    by_split = {"train": set(), "test": set()}
    for rec in _scenes(tiny).values():
        for q in rec["queries"]:
            by_split[rec["split"]].add(q["query_type"])
    assert by_split == {"train": set(QUERY_TYPES), "test": set(QUERY_TYPES)}


def test_same_seed_gives_identical_files_and_another_seed_differs(tiny, tmp_path):
    again = tmp_path / "again"
    synth.run(SynthConfig(preset="tiny", seed=0, workers=1), again)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file() and p.name != "preview.png")
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:  # annotations, h5 files and (OpenCV's mp4v is deterministic) the clips
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    synth.run(SynthConfig(preset="tiny", seed=1, workers=1), other)
    txt = "text_annotations/a2d_annotation.txt"
    assert (tiny / txt).read_text() != (other / txt).read_text()


def test_parallel_workers_write_the_same_dataset(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "PARALLEL_MIN_VIDEOS", 0)
    par = tmp_path / "par"
    synth.run(SynthConfig(preset="tiny", seed=0, workers=2), par)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(par) for p in par.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny / rel).read_bytes() == (par / rel).read_bytes(), rel
