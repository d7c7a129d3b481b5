"""The hard synthetic world (hard-tiny preset): layout, independent uniqueness checks, paraphrase split,
occlusion, recorded scene facts, determinism."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import cv2
import pytest
from helpers.synth_checker import check_any_query
from helpers.synth_checker_hard import check_hard_query, held_out_wording, parse, wrong_variants

from clawcrane.cli import data_synth
from clawcrane.config import SynthConfig
from clawcrane.datasets.a2d import read_a2d
from clawcrane.datasets.synth import writer
from clawcrane.datasets.synth.hard.generate import HARD_GENERATOR_VERSION, HARD_QUERY_TYPES
from clawcrane.datasets.synth.hard.motion import direction_label
from clawcrane.datasets.synth.hard.palette import SHADES
from clawcrane.datasets.synth.presets import ALL_PRESETS, family
from clawcrane.datasets.validate import split_problems
from clawcrane.stages import synth


@pytest.fixture(scope="module")
def hard_tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hard") / "data"
    synth.run(SynthConfig(preset="hard-tiny", seed=0, workers=1, preview=True), out)
    return out


def _doc(root: Path) -> dict:
    return json.loads((root / "synth_scenes.json").read_text())


def _scenes(root: Path) -> dict[str, dict]:
    return {v["video_id"]: v for v in _doc(root)["videos"]}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _queries(root: Path):
    for rec in _scenes(root).values():
        for q in rec["queries"]:
            yield rec, q


def test_hard_tiny_is_in_the_a2d_layout_with_a_wording_column(hard_tiny):
    scenes = _scenes(hard_tiny)
    videoset = _rows(hard_tiny / "Release" / "videoset.csv")
    assert len(videoset) == 9 and all(len(r) == 9 for r in videoset)
    assert (hard_tiny / "text_annotations" / "a2d_missed_videos.txt").read_text().split() == ["s0008"]
    ann = _rows(hard_tiny / "text_annotations" / "a2d_annotation.txt")
    types = _rows(hard_tiny / "text_annotations" / "query_types.csv")
    assert types[0] == ["video_id", "instance_id", "query_type", "wording"]
    assert [r[:2] for r in ann[1:]] == [r[:2] for r in types[1:]]
    recorded = {(rec["video_id"], str(q["instance_id"])): q for rec, q in _queries(hard_tiny)}
    for vid, inst, qtype, wording in types[1:]:
        q = recorded[(vid, inst)]
        assert qtype == q["query_type"] and wording == ("paraphrase" if q["paraphrase"] else "seen")
    for vid, *_, labeled, _ in videoset:
        rec = scenes[vid]
        assert rec["num_frames"] == 16 and int(labeled) == len(rec["annotated_frames"])
        for t in rec["annotated_frames"]:
            assert writer.h5_path(hard_tiny, vid, t).is_file()
    doc = _doc(hard_tiny)
    assert doc["generator"]["version"] == HARD_GENERATOR_VERSION and doc["generator"]["preset"] == "hard-tiny"


def test_every_hard_sentence_singles_out_its_target_by_an_independent_reading(hard_tiny):
    n = 0
    for rec, q in _queries(hard_tiny):
        check_any_query(rec, q)  # the hard grammar: the record has a meaning
        n += 1
    assert n >= 40


def test_the_checker_rejects_a_wrong_direction_ordinal_comparative_or_relation(hard_tiny):
    rejected = Counter()
    for rec, q in _queries(hard_tiny):
        for wrong in wrong_variants(q["query"]):
            m = parse(wrong)  # still a grammatical sentence: it fails on what it says, not on its words
            if m.get("end") in ("left", "right", "top", "bottom") and m["rank"] == 1:
                continue  # 'second from the left' of three is also 'second from the right'
            with pytest.raises(AssertionError):
                check_hard_query(rec, q, wrong)
            rejected[m.get("speed") and "speed" or q["query_type"]] += 1
    assert {"position", "size", "relation", "motion", "speed"} <= set(rejected), rejected


def test_every_query_type_is_in_both_splits(hard_tiny):
    by_split = {"train": set(), "test": set()}
    for rec, q in _queries(hard_tiny):
        by_split[rec["split"]].add(q["query_type"])
    assert by_split == {"train": set(HARD_QUERY_TYPES), "test": set(HARD_QUERY_TYPES)}


def test_held_out_wording_appears_only_in_test_sentences_and_flags_them(hard_tiny):
    flagged = Counter()
    for rec, q in _queries(hard_tiny):
        used = held_out_wording(q["query"])
        assert q["paraphrase"] == bool(used) == (q["wording"]["label"] == "paraphrase")
        assert set(q["wording"]["held_out"]) == used
        assert not (rec["split"] == "train" and used), q["query"]
        flagged[(rec["split"], q["paraphrase"])] += 1
    assert flagged[("test", True)] >= 3 and flagged[("test", False)] >= 3 and flagged[("train", True)] == 0


def test_the_wording_column_reaches_query_wording_through_the_a2d_reader(hard_tiny):
    ds = read_a2d(hard_tiny)
    recorded = {f"{rec['video_id']}_{q['instance_id']}": q for rec, q in _queries(hard_tiny)}
    assert len(ds.queries) == len(recorded) and not split_problems(ds.problems)[0]
    for q in ds.queries:
        assert q.wording == ("paraphrase" if recorded[q.query_id]["paraphrase"] else "seen")
        assert q.query_type == recorded[q.query_id]["query_type"]
    assert {q.wording for q in ds.queries if q.split == "train"} == {"seen"}
    assert {q.wording for q in ds.queries if q.split == "test"} == {"seen", "paraphrase"}
    assert set(ds.query_types()) == set(HARD_QUERY_TYPES)


def test_some_targets_vanish_behind_an_occluder_between_listed_frames(hard_tiny):
    hidden = []
    for rec, q in _queries(hard_tiny):
        target = rec["objects"][q["instance_id"] - 1]
        for t in rec["annotated_frames"]:
            before = [f for f in q["frames"] if f < t]
            after = [f for f in q["frames"] if f > t]
            if t not in q["frames"] and before and after:
                cx, cy = target["centre"][t]
                assert 0 <= cx < rec["width"] and 0 <= cy < rec["height"]  # in the frame, behind something
                cover = [o for o in rec["objects"] if o["depth"] > target["depth"] and o["visible_px"][t] >= 20
                         and math.dist(o["centre"][t], (cx, cy)) < o["radius"]]
                assert cover, (rec["video_id"], q["query"], t)
                hidden.append((rec["video_id"], q["query_type"]))
    assert len(hidden) >= 2


def test_scenes_record_shades_speeds_directions_light_and_meanings(hard_tiny):
    drifting = 0
    for rec in _scenes(hard_tiny).values():
        assert rec["trails"] is False and set(rec["lighting"]) == {"gain0", "gain1", "warm0", "warm1"}
        drifting += abs(rec["lighting"]["gain1"] - rec["lighting"]["gain0"]) >= 0.14
        for o in rec["objects"]:
            assert o["shade"] == o["colour"] in SHADES and "size" not in o
            assert max(abs(a - b) for a, b in zip(o["rgb"], SHADES[o["shade"]])) <= 12
            assert o["speed"] == pytest.approx(math.hypot(*o["velocity"]), abs=1e-3)
            assert o["direction"] == o["motion"] == direction_label(o["velocity"])
        for q in rec["queries"]:
            assert q["meaning"]["type"] == q["query_type"] and q["wording"]["template"].startswith(q["query_type"])
    assert drifting >= 3
    assert "lighting" in _doc(hard_tiny)["conventions"]


def test_same_seed_gives_identical_hard_files_also_in_parallel(hard_tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "PARALLEL_MIN_VIDEOS", 0)
    again = tmp_path / "again"
    synth.run(SynthConfig(preset="hard-tiny", seed=0, workers=2), again)
    files = sorted(p.relative_to(hard_tiny) for p in hard_tiny.rglob("*") if p.is_file() and p.name != "preview.png")
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (hard_tiny / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_the_preview_shows_hard_videos_with_their_sentences(hard_tiny):
    sheet = cv2.imread(str(hard_tiny / "preview.png"))
    assert sheet is not None and sheet.shape[1] == 3 * 320 and sheet.shape[0] > 4 * 240


def test_every_preset_is_offered_by_the_cli_and_picks_its_world():
    choices = next(p for p in data_synth.params if p.name == "preset").type.choices
    assert tuple(choices) == ALL_PRESETS
    assert family("hard-full").name == family("hard").name == "hard" and family("small").name == "original"
    assert family("hard").query_types == HARD_QUERY_TYPES and "size" in HARD_QUERY_TYPES
