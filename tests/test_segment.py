"""`clawcrane segment`: one clip + sentences -> overlay, masks and segments.json, with cached detection/features.

The head is trained for real (1 epoch, tiny widths) on `data synth --preset tiny` through the
stages (oracle candidates, resnet18 with seeded random weights at 64 px), so the segment call
extracts features in exactly the head's feature space. The clip gets its candidates from
``import:PATH`` id maps drawn here: two boxes per frame.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.head_world import tiny_stage_world

from clawcrane import api, atomic
from clawcrane.cli import main
from clawcrane.config import SegmentConfig
from clawcrane.datasets import video_io
from clawcrane.errors import DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import extract, segment

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(clip path, import spec, head run folder) - a clip of the tiny benchmark and its two boxes per frame."""
    tmp = tmp_path_factory.mktemp("seg")
    torch.set_num_threads(1)
    tiny_stage_world(tmp)

    clip = tmp / "video" / "clip.mp4"
    clip.parent.mkdir()
    shutil.copy(sorted((tmp / "data" / "Release" / "clips320H").glob("*.mp4"))[0], clip)
    cap = cv2.VideoCapture(str(clip))
    W, H, T = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    masks = tmp / "masks" / "clip"
    masks.mkdir(parents=True)
    for f in range(T):
        ids = np.zeros((H, W), np.uint8)
        ids[10:60, 10 + f:70 + f] = 1  # a box moving right
        ids[100:180, 150:250] = 2  # a box standing still
        cv2.imwrite(str(masks / f"{f:05d}.png"), ids)
    return clip, f"import:{tmp / 'masks'}", tmp / "head"


def _segment(args, trained, out, cache):
    clip, spec, head = trained
    return CliRunner().invoke(main, ["--log-level", "error", "segment", str(clip), *args, "--detector", spec,
                                     "--head", str(head), "--out", str(out), "--cache", str(cache), "--device", "cpu"])


def test_segment_writes_overlay_contact_sheet_masks_and_a_valid_json_for_two_sentences(trained, tmp_path):
    r = _segment(["--query", "the box on the left", "--query", "the big box"], trained, tmp_path / "out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    assert "detect+extract:" in r.output and "(cached)" not in r.output and "head+tracker:" in r.output
    src = cv2.VideoCapture(str(trained[0]))
    ov = cv2.VideoCapture(str(tmp_path / "out" / "overlay.mp4"))
    # the overlay is the source re-drawn: same frame count, rate and size
    for prop in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
        assert ov.get(prop) == src.get(prop)
    T, H, W = int(src.get(cv2.CAP_PROP_FRAME_COUNT)), int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(src.get(cv2.CAP_PROP_FRAME_WIDTH))
    assert cv2.imread(str(tmp_path / "out" / "contact_sheet.png")) is not None
    doc = json.loads((tmp_path / "out" / "segments.json").read_text())
    segment.validate_segments(doc)
    assert [q["query_id"] for q in doc["queries"]] == ["q1", "q2"]
    assert doc["video"]["num_frames"] == T and doc["backbone"] == "resnet18"
    for q in doc["queries"]:
        assert q["status"] == "ok" and len(q["frames"]) == T and 1 <= len(q["tracks"]) <= 5
        pngs = sorted((tmp_path / "out" / "masks" / q["query_id"]).glob("*.png"))
        assert len(pngs) == T
        for fr, png in zip(q["frames"], pngs):
            from_json = mask_ops.decode(fr["mask"])
            from_png = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE) > 0
            assert from_json.shape == (H, W) and from_json.any()
            # the answer is one of the two drawn boxes, and the PNG is the same mask as the JSON
            assert np.array_equal(from_json, from_png)


def test_new_sentence_reuses_the_cached_candidates_and_features(trained, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    assert _segment(["--query", "the big box"], trained, tmp_path / "a", cache).exit_code == 0
    artifacts = sorted(p.name for p in cache.iterdir())

    def boom(*a, **k):
        raise AssertionError("detector or backbone built on a cached video")

    monkeypatch.setattr(segment, "build_detector", boom)
    monkeypatch.setattr(api, "build_detector", boom)
    monkeypatch.setattr(extract, "build_backbone", boom)
    r = _segment(["--query", "the small box at the top"], trained, tmp_path / "b", cache)
    assert r.exit_code == 0, r.output
    assert "(cached)" in r.output
    assert sorted(p.name for p in cache.iterdir()) == artifacts  # no new detect-/extract- folder
    doc = json.loads((tmp_path / "b" / "segments.json").read_text())
    assert [q["sentence"] for q in doc["queries"]] == ["the small box at the top"]


def test_a_second_call_into_the_same_out_replaces_it_whole(trained, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "c"
    assert _segment(["--query", "the box on the left", "--query", "the big box"], trained, out, cache).exit_code == 0
    assert (out / "masks" / "q2").is_dir()
    r = _segment(["--query", "the big box"], trained, out, cache)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["q1"]  # no stale masks/q2 of the first call
    assert [q["query_id"] for q in json.loads((out / "segments.json").read_text())["queries"]] == ["q1"]
    assert atomic.manifest_files(out) == set(atomic.files_under(out)) - {atomic.MANIFEST}
    assert not [p for p in tmp_path.iterdir() if atomic.is_temp_name(p.name)]


class _CutStream:
    """A capture whose stream ends after two frames while the header promises them all (a clip cut short)."""

    def __init__(self, cap):
        self.cap, self.n = cap, 0

    def grab(self):
        self.n += 1
        return self.n <= 2 and self.cap.grab()

    def read(self):
        self.n += 1
        return self.cap.read() if self.n <= 2 else (False, None)

    def __getattr__(self, name):
        return getattr(self.cap, name)


def test_a_clip_that_stops_decoding_is_one_line_that_offers_no_skip_bad_option(trained, tmp_path, monkeypatch):
    clip, spec, head = trained
    cut = tmp_path / "t" / clip.name
    cut.parent.mkdir()
    cut.write_bytes(clip.read_bytes())
    real_open = video_io.Mp4Frames._open
    monkeypatch.setattr(video_io.Mp4Frames, "_open", lambda self: _CutStream(real_open(self)) if self.path == cut else real_open(self))
    r = CliRunner().invoke(main, ["--log-level", "error", "segment", str(cut), "--query", "the big box", "--detector", spec,
                                  "--head", str(head), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--device", "cpu"])
    _one_line_error(r, str(cut), "could not be decoded", "re-encode")
    assert "--skip-bad" not in r.output and not (tmp_path / "o").exists()


def test_abstain_below_an_unreachable_score_reports_no_matching_object(trained, tmp_path):
    # cosine scores lie in [-1, 1], so a threshold of 2 makes every query abstain
    r = _segment(["--query", "the big box", "--abstain-below", "2"], trained, tmp_path / "out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    assert segment.NO_MATCH in r.output
    doc = json.loads((tmp_path / "out" / "segments.json").read_text())
    segment.validate_segments(doc)
    (q,) = doc["queries"]
    assert q["status"] == "no_match" and q["message"] == segment.NO_MATCH and q["score"] is None
    assert all(f["mask"] is None for f in q["frames"])
    assert not any((cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0).any() for p in (tmp_path / "out" / "masks" / "q1").glob("*.png"))


def _one_line_error(r, *words):
    assert r.exit_code == 1, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    for w in words:
        assert w in lines[0], lines[0]


def test_unreadable_video_empty_sentence_and_other_backbone_exit_1_with_one_line(trained, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    clip, spec, head = trained
    r = CliRunner().invoke(main, ["--log-level", "error", "segment", str(bad), "--query", "x", "--detector", spec,
                                  "--head", str(head), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    _one_line_error(r, str(bad))
    _one_line_error(_segment(["--query", "   "], trained, tmp_path / "o", tmp_path / "c"), "empty sentence")
    r = _segment(["--query", "the big box", "--backbone", "efficientnet-lite0"], trained, tmp_path / "o", tmp_path / "c")
    _one_line_error(r, "resnet18", "--backbone efficientnet-lite0")
    assert not (tmp_path / "o" / "segments.json").exists()


def test_validate_segments_refuses_a_mask_on_a_no_match_query():
    mask = {"size": [2, 2], "counts": "04"}
    doc = {"schema": segment.SCHEMA, "video": {"path": "v.mp4", "video_id": "v", "width": 2, "height": 2, "fps": 10.0, "num_frames": 1},
           "queries": [{"query_id": "q1", "sentence": "a", "status": "ok", "message": "", "score": 0.5,
                        "tracks": [{"rank": 0, "track_id": 0, "score": 0.5, "frames": [0]}],
                        "frames": [{"frame": 0, "mask": mask, "score": 0.5}]}]}
    segment.validate_segments(doc)
    doc["queries"][0]["status"] = "no_match"
    with pytest.raises(DataError, match="no_match query q1"):
        segment.validate_segments(doc)
    with pytest.raises(DataError, match="schema"):
        segment.validate_segments({"schema": "other"})


def test_default_cache_root_follows_the_environment(tmp_path):
    assert segment.default_cache_root({"CLAWCRANE_CACHE": str(tmp_path)}) == tmp_path / "segment"
    assert segment.default_cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "clawcrane" / "segment"
    assert SegmentConfig.RUNTIME_FIELDS == ("device", "cache", "force")


def test_answers_are_reported_before_the_masks_and_overlay_are_drawn(trained, tmp_path, monkeypatch):
    clip, spec, head = trained
    events = []
    real = segment.render_overlays

    def drawing(*a, **k):
        events.append("draw")
        return real(*a, **k)

    monkeypatch.setattr(segment, "render_overlays", drawing)
    config = SegmentConfig(detector=spec, device="cpu", cache=str(tmp_path / "c"))
    res = segment.run(config, clip, head=head, out=tmp_path / "out", queries=["the big box"],
                      on_answer=lambda doc: events.append(("answer", doc["queries"][0]["status"])))
    # the answer reaches the caller first; the slow drawing comes after it
    assert events == [("answer", "ok"), "draw"]
    assert res.render is not None and res.mask_files == res.render.mask_files > 0


def test_no_overlay_writes_the_same_masks_and_json_without_drawing(trained, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    assert _segment(["--query", "the big box"], trained, tmp_path / "with", cache).exit_code == 0

    def boom(*a, **k):
        raise AssertionError("overlay drawn with --no-overlay")

    monkeypatch.setattr(segment, "render_overlays", boom)
    r = _segment(["--query", "the big box", "--no-overlay"], trained, tmp_path / "without", cache)
    assert r.exit_code == 0, r.output
    assert r.output.index("answers after") < r.output.index("wrote ")
    names = sorted(p.relative_to(tmp_path / "without").as_posix() for p in (tmp_path / "without").rglob("*") if p.is_file())
    assert "overlay.mp4" not in names and "contact_sheet.png" not in names and "segments.json" in names
    # the same answer, the same mask files, byte for byte, as the call that drew the overlay
    with_doc = json.loads((tmp_path / "with" / "segments.json").read_text())
    without_doc = json.loads((tmp_path / "without" / "segments.json").read_text())
    assert with_doc["queries"] == without_doc["queries"]
    pngs = sorted((tmp_path / "with" / "masks").rglob("*.png"))
    assert pngs and [p.relative_to(tmp_path / "with").as_posix() for p in pngs] == [n for n in names if n.endswith(".png")]
    for p in pngs:
        assert p.read_bytes() == (tmp_path / "without" / p.relative_to(tmp_path / "with")).read_bytes()


def test_segment_reads_a_sam2_output_folder_of_the_one_video(trained, tmp_path):
    """`import:sam2:PATH` with PATH the clip's own vos_inference.py folder (per-object PNGs), whatever its name."""
    from PIL import Image

    clip, spec, head = trained
    src = spec[len("import:"):]
    run = tmp_path / "sam2_run"
    for png in sorted((Path(src) / "clip").glob("*.png")):
        ids = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        for oid in (1, 2):
            (run / f"{oid:03d}").mkdir(parents=True, exist_ok=True)
            im = Image.fromarray((ids == oid).astype(np.uint8))
            im.putpalette([0, 0, 0, 255, 255, 255] * 128)
            im.save(run / f"{oid:03d}" / png.name)
    r = _segment(["--query", "the big box"], (clip, f"import:sam2:{run}", head), tmp_path / "out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "out" / "segments.json").read_text())
    assert doc["queries"][0]["status"] == "ok" and all(mask_ops.decode(f["mask"]).any() for f in doc["queries"][0]["frames"])


def test_segment_tracks_imported_follows_sam2_ids_and_is_refused_for_an_import_without_ids(trained, tmp_path):
    from PIL import Image

    clip, spec, head = trained
    run = tmp_path / "sam2_run"  # SAM 2's palette PNGs: value = object id
    run.mkdir()
    for png in sorted((Path(spec[len("import:"):]) / "clip").glob("*.png")):
        im = Image.fromarray(cv2.imread(str(png), cv2.IMREAD_GRAYSCALE))
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 253)
        im.save(run / png.name)
    r = _segment(["--query", "the big box", "--tracks", "imported"], (clip, f"import:sam2:{run}", head), tmp_path / "out",
                 tmp_path / "c")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "out" / "segments.json").read_text())
    q = doc["queries"][0]
    assert q["status"] == "ok" and len(q["tracks"][0]["frames"]) == len(q["frames"])  # one imported track covers every frame
    r = _segment(["--query", "the big box", "--tracks", "imported"], trained, tmp_path / "out2", tmp_path / "c")
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "--tracks imported" in lines[0] and "detect-" in lines[0]
