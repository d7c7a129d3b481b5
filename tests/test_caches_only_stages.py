"""Caches-only stages (issue 16, item 1): train-head, track-rank, evaluate, ablate and export need only
the annotations and the caches; a missing clip is an error only for a stage that decodes frames.

The readers open a dataset without its media (``open_dataset(..., frames=False)``): videos whose clip
or frame folder is absent are kept with their sentences, and decoding one of their frames raises a
one-line ``DataError`` naming the absent file. Artifacts record the annotation fingerprint beside
the full one, and a stage compares it when the clips are absent. The end-to-end cases run the real
command line on a tiny synthetic world (data synth, oracle detect, extract), then delete the clips.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.dataset_builders import a2d_clip, make_a2d, make_jhmdb, make_ytvos

from clawcrane.cache import predictions as P
from clawcrane.cli import main
from clawcrane.config import HeadConfig, TrainHeadConfig
from clawcrane.datasets import open_dataset
from clawcrane.datasets.a2d import read_a2d
from clawcrane.datasets.jhmdb import read_jhmdb
from clawcrane.datasets.validate import split_problems
from clawcrane.datasets.ytvos import read_ytvos
from clawcrane.errors import DataError
from clawcrane.fingerprint import match_dataset
from clawcrane.stages import export, train_head
from clawcrane.stages.render import render_overlays

pytestmark = pytest.mark.usefixtures("one_thread")

EXTRACT = ["--backbone", "resnet18", "--weights", "none", "--input-size", "64", "--device", "cpu", "--workers", "1"]
HEAD = ["--epochs", "1", "--embed-dim", "16", "--word-dim", "16", "--lstm-hidden", "16", "--batch-size", "4", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(main, ["--log-level", "error", *map(str, args)])


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r


def refused(*args) -> str:
    """Exit 1 with exactly one ``error:`` line on stderr and no traceback; returns the line."""
    r = invoke(*args)
    assert r.exit_code == 1, (args, r.output, r.exception)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    return lines[0]


def same_predictions(a: Path, b: Path) -> None:
    ta, tb = P.read_predictions(a).table, P.read_predictions(b).table
    assert ta.num_rows == tb.num_rows > 0
    for name in P.COLUMNS:
        assert ta.column(name).to_pylist() == tb.column(name).to_pylist(), name


# ---- the readers ------------------------------------------------------------------------------------------
def without_frames_is_the_default_when_nothing_is_missing(read, root: Path) -> None:
    full, lean = read(root), read(root, frames=False)
    assert {k: repr(v) for k, v in lean.videos.items()} == {k: repr(v) for k, v in full.videos.items()}
    assert [(q.query_id, q.frames, q.sentence) for q in lean.queries] == [(q.query_id, q.frames, q.sentence) for q in full.queries]
    assert (lean.fingerprint, lean.annotation_fingerprint, lean.problems) == (full.fingerprint, full.annotation_fingerprint, full.problems)
    assert full.missing_media == {} and full.media_complete and full.annotation_fingerprint


def media_gone_keeps_videos_without_frames_and_drops_them_by_default(read, root: Path, vid: str, gone: Path):
    """``gone``: the media of ``vid``, deleted here. Returns (intact, default read, read without frames)."""
    intact = read(root)
    shutil.rmtree(gone) if gone.is_dir() else gone.unlink()

    default = read(root)  # frames needed: unchanged, the video and its sentences are left out, as a problem
    assert vid not in default.videos and all(q.video_id != vid for q in default.queries)
    errors, _ = split_problems(default.problems)
    assert any((str(gone) in e or vid in e) and "skipped" in e for e in errors), errors
    assert default.missing_media == {vid: gone} and default.fingerprint != intact.fingerprint

    lean = read(root, frames=False)  # without frames: kept with its sentences, its ground truth as it was
    assert lean.missing_media == {vid: gone} and not lean.media_complete
    assert not any(str(gone) in p or vid in p for p in lean.problems)
    assert [(q.query_id, q.frames, q.sentence) for q in lean.queries] == [(q.query_id, q.frames, q.sentence) for q in intact.queries]
    for q in lean.queries:
        for f in q.frames:
            np.testing.assert_array_equal(q.gt_mask(f), intact.queries[[x.query_id for x in intact.queries].index(q.query_id)].gt_mask(f))
    v, w = lean.videos[vid], intact.videos[vid]
    assert (v.height, v.width, v.split) == (w.height, w.width, w.split)
    assert v.num_frames == w.num_frames or (read is read_jhmdb and v.num_frames == len(lean.annotated_frames[vid]))
    assert lean.annotation_fingerprint == intact.annotation_fingerprint  # the annotations did not change
    with pytest.raises(DataError) as err:
        v.read_frame(0)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{gone}: ") and "decodes frames" in line and "put it back" in line
    return intact, default, lean


def test_a2d_reader_keeps_videos_without_clips_only_when_frames_are_not_needed(tmp_path):
    root = make_a2d(tmp_path / "a2d")
    without_frames_is_the_default_when_nothing_is_missing(read_a2d, root)
    _, _, lean = media_gone_keeps_videos_without_frames_and_drops_them_by_default(read_a2d, root, "vidB", a2d_clip(root, "vidB"))
    with pytest.raises(DataError, match="vidB.mp4: clip is missing"):
        lean.videos["vidB"].fps  # the frame rate comes from the clip too
    assert open_dataset(root, frames=False).missing_media == {"vidB": a2d_clip(root, "vidB")}


def test_a2d_annotation_fingerprint_follows_the_annotations_not_the_clips(tmp_path):
    root = make_a2d(tmp_path / "a2d")
    before = read_a2d(root)
    clip = a2d_clip(root, "vidA")
    clip.write_bytes(clip.read_bytes() + b"\0")
    edited = read_a2d(root)
    assert edited.fingerprint != before.fingerprint and edited.annotation_fingerprint == before.annotation_fingerprint
    sentences = root / "text_annotations/a2d_annotation.txt"
    sentences.write_text(sentences.read_text().replace("a dog running", "a dog sitting"))
    assert read_a2d(root).annotation_fingerprint != before.annotation_fingerprint


def test_jhmdb_reader_keeps_videos_without_frames_only_when_frames_are_not_needed(tmp_path):
    root = make_jhmdb(tmp_path / "jhmdb")
    without_frames_is_the_default_when_nothing_is_missing(read_jhmdb, root)
    intact, default, lean = media_gone_keeps_videos_without_frames_and_drops_them_by_default(
        read_jhmdb, root, "walk_video_1", root / "Rename_Images" / "walk" / "walk_video_1")
    # J-HMDB without its frames takes the frame count from the puppet mask: the sampled frames are the same
    assert lean.annotated_frames["walk_video_1"] == intact.annotated_frames["walk_video_1"]
    assert "walk_video_1" in lean.videos and "walk_video_1" not in default.videos


def test_ytvos_reader_keeps_videos_without_frames_only_when_frames_are_not_needed(tmp_path):
    root = make_ytvos(tmp_path / "ytvos")
    without_frames_is_the_default_when_nothing_is_missing(read_ytvos, root)
    intact, _, lean = media_gone_keeps_videos_without_frames_and_drops_them_by_default(
        read_ytvos, root, "abc123", root / "train" / "JPEGImages" / "abc123")
    v = lean.videos["abc123"]  # export's frame names still come from the dataset
    assert export.frame_names(v, v.num_frames) == export.frame_names(intact.videos["abc123"], v.num_frames) == [
        "00000", "00005", "00010", "00015"]


def test_match_dataset_compares_annotations_only_when_the_media_are_absent():
    rec = {"fingerprint": "F", "annotation_fingerprint": "A"}
    assert match_dataset(rec, fingerprint="F", annotation_fingerprint="A").same
    assert match_dataset(rec, fingerprint="G", annotation_fingerprint="A").same is False  # clips there: they decide
    m = match_dataset(rec, fingerprint="G", annotation_fingerprint="A", media_complete=False)
    assert m.same and m.by == "annotations" and m.fingerprint == "F"  # keys keep the full fingerprint
    assert match_dataset(rec, fingerprint="G", annotation_fingerprint="B", media_complete=False).same is False
    assert match_dataset({"fingerprint": "F"}, fingerprint="G", annotation_fingerprint="A", media_complete=False).same is None
    assert match_dataset({}, fingerprint="G").same  # an artifact recording no fingerprint is not compared (as before)


# ---- end to end: delete the clips after extract ----------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """D: tiny synthetic dataset whose clips were deleted after detect + extract into C; DFULL: a copy with
    the clips; RUN, PRED, EVAL: train-head, track-rank and evaluate made while the clips were there."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("caches_only")
    D, C = tmp / "D", tmp / "C"
    ok("data", "synth", D, "--preset", "tiny", "--workers", "1")
    ok("detect", D, "--detector", "oracle", "--cache", C, "--device", "cpu")
    ok("extract", "--cache", C, *EXTRACT)
    ok("train-head", "--features", C, "--dataset", D, "--out", tmp / "RUN", *HEAD)
    ok("track-rank", "--head", tmp / "RUN", "--features", C, "--dataset", D, "--out", tmp / "pred.parquet", "--device", "cpu")
    ok("evaluate", tmp / "pred.parquet", "--dataset", D, "--out", tmp / "EVAL")
    shutil.copytree(D, tmp / "DFULL")
    clips = D / "Release" / "clips320H"
    names = sorted(p.name for p in clips.glob("*.mp4"))
    shutil.rmtree(clips)  # the training node: annotations and caches, no videos
    torch.set_num_threads(n)
    (det,), (ext,) = C.glob("detect-*"), C.glob("extract-*")
    return SimpleNamespace(root=tmp, D=D, DFULL=tmp / "DFULL", C=C, det=det, ext=ext, run=tmp / "RUN",
                           pred=tmp / "pred.parquet", eval=tmp / "EVAL", clips=clips, clip_names=names)


def test_after_extract_the_clips_may_go_train_head_track_rank_and_evaluate_give_the_same_results(world, tmp_path):
    assert not world.clips.exists() and world.clip_names
    ok("train-head", "--features", world.C, "--dataset", world.D, "--out", tmp_path / "run", *HEAD)
    a = torch.load(world.run / "best.pt", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["dataset"]["fingerprint"] == a["dataset"]["fingerprint"]  # the full fingerprint the caches record
    assert b["dataset"]["annotation_fingerprint"] == a["dataset"]["annotation_fingerprint"] != ""

    pred = tmp_path / "pred.parquet"
    ok("track-rank", "--head", tmp_path / "run", "--features", world.C, "--dataset", world.D, "--out", pred, "--device", "cpu")
    same_predictions(world.pred, pred)
    meta = P.read_predictions(pred).meta["dataset"]
    assert meta["fingerprint"] == P.read_predictions(world.pred).meta["dataset"]["fingerprint"]

    ok("evaluate", pred, "--dataset", world.D, "--out", tmp_path / "eval")
    ok("evaluate", world.pred, "--dataset", world.D, "--out", tmp_path / "eval-old")  # made with the clips, scored without
    want = json.loads((world.eval / "metrics.json").read_text())["metrics"]
    for folder in ("eval", "eval-old"):
        assert json.loads((tmp_path / folder / "metrics.json").read_text())["metrics"] == want

    # the key of the predictions made with the clips is the same without them: up to date, nothing recomputed
    again = tmp_path / "again.parquet"
    shutil.copy(world.pred, again)
    r = ok("track-rank", "--head", world.run, "--features", world.C, "--dataset", world.D, "--out", again, "--device", "cpu")
    assert "up to date" in r.output and again.read_bytes() == world.pred.read_bytes()

    ok("export", pred, "--format", "png", "--dataset", world.D, "--out", tmp_path / "png")
    assert list((tmp_path / "png").rglob("*.png"))
    ok("ablate", "--cache", world.C, "--dataset", world.D, "--out", tmp_path / "table", "--rows", "4", "--epochs", "1",
       "--device", "cpu")
    assert (tmp_path / "table" / "ablation.md").is_file()


def test_a_frame_decoding_stage_without_the_clips_fails_with_one_line_naming_the_clip(world, tmp_path):
    cache = tmp_path / "c"
    shutil.copytree(world.det, cache / world.det.name)
    line = refused("extract", "--cache", cache, *EXTRACT, "--dataset", world.D)
    assert f"{world.clips}/" in line and ".mp4: missing" in line and "clawcrane extract" in line and "put the clips (or frame folders) back" in line
    assert not list(cache.glob("extract-*"))

    dataset = open_dataset(world.D, frames=False)
    preds = P.read_predictions(world.pred)
    vid = str(preds.column("video_id")[0])
    with pytest.raises(DataError) as err:  # overlays decode every frame
        render_overlays(dataset.videos[vid], preds, tmp_path / "overlays")
    assert str(err.value).startswith(f"{world.clips / (vid + '.mp4')}: clip is missing") and "decodes frames" in str(err.value)
    assert not (tmp_path / "overlays").exists()


def test_without_the_clips_the_annotations_still_decide_which_dataset_the_caches_belong_to(world, tmp_path):
    other = tmp_path / "D"
    shutil.copytree(world.D, other)
    sentences = other / "text_annotations" / "a2d_annotation.txt"
    lines = sentences.read_text().splitlines()
    sentences.write_text("\n".join(lines[:1] + [lines[1] + " again"] + lines[2:]) + "\n")
    line = refused("track-rank", "--head", world.run, "--features", world.C, "--dataset", other, "--out",
                   tmp_path / "p.parquet", "--device", "cpu")
    assert str(world.ext) in line and str(other) in line and line.count("annotation fingerprint") == 2
    line = refused("evaluate", world.pred, "--dataset", other, "--out", tmp_path / "eval")
    assert str(world.pred) in line and "annotation fingerprint" in line
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "eval").exists()


def test_an_artifact_older_than_annotation_fingerprints_needs_the_clips_to_be_checked(world, tmp_path):
    old = P.read_predictions(world.pred)
    meta = dict(old.meta, dataset={k: v for k, v in old.meta["dataset"].items() if k != "annotation_fingerprint"})
    pred = P.write_predictions(tmp_path / "old.parquet", old.table.to_pydict(), meta)
    line = refused("evaluate", pred, "--dataset", world.D, "--out", tmp_path / "eval")
    assert str(pred) in line and "annotation fingerprint" in line and "put the clips back" in line and "clawcrane detect" in line
    ok("evaluate", pred, "--dataset", world.DFULL, "--out", tmp_path / "eval")  # with the clips it is checked as before

    cache = tmp_path / "c"
    for art in (world.det, world.ext):
        shutil.copytree(art, cache / art.name)
    meta_file = cache / world.ext.name / "meta.json"
    ext_meta = json.loads(meta_file.read_text())
    del ext_meta["dataset"]["annotation_fingerprint"]
    meta_file.write_text(json.dumps(ext_meta))
    line = refused("train-head", "--features", cache, "--dataset", world.D, "--out", tmp_path / "run", *HEAD)
    assert str(cache / world.ext.name) in line and "put the clips back" in line
    assert not (tmp_path / "run").exists()


def test_train_head_on_a_dataset_read_with_frames_and_no_clips_names_the_missing_clips(world, tmp_path):
    dataset = open_dataset(world.D)  # frames needed: every video is left out, its clip being missing
    assert not dataset.videos
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=16, word_dim=16, lstm_hidden=16), epochs=1, batch_size=4, device="cpu")
    with pytest.raises(DataError) as err:
        train_head.run(cfg, dataset, features=world.C, out=tmp_path / "run")
    msg = str(err.value)
    assert "clips are missing" in msg and f"{world.clips}/" in msg and "frames=False" in msg and "split column" not in msg
