"""stages.render and stages.export on a tiny video and a predictions file the tests write."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import clawcrane.datasets
from clawcrane.cache import predictions as P
from clawcrane.cli import main
from clawcrane.config import ExportConfig
from clawcrane.datasets.records import Dataset, Query, Video
from clawcrane.datasets.video_io import ImageFolderFrames, Mp4Frames, write_mp4
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import export
from clawcrane.stages.render import render_overlays

H, W, T, FPS = 48, 64, 6, 7.0


def moving_box(f, q):
    """Query q's object in frame f: a 10x12 box moving right by 4 px a frame, one row per query."""
    m = np.zeros((H, W), bool)
    m[8 + 20 * q : 18 + 20 * q, 4 * f : 4 * f + 12] = True
    return m


def build_rows(video_id="vid"):
    """Query 0 answers every frame (plus a runner-up); query 1 abstains on frame 2 and skips frame 4."""
    rows = []
    for f in range(T):
        rows.append((f"{video_id}_0", video_id, f, 0, moving_box(f, 0), 0.9, 0))
        rows.append((f"{video_id}_0", video_id, f, 1, np.roll(moving_box(f, 0), 20, 1), 0.3, 1))
        if f == 2:
            rows.append((f"{video_id}_1", video_id, f, -1, np.zeros((H, W), bool), float("nan"), 0))
        elif f != 4:
            rows.append((f"{video_id}_1", video_id, f, 1, moving_box(f, 1), 0.7, 0))
    return rows


def write_preds(path, rows, fingerprint="fp"):
    cols = {c: [] for c in P.COLUMNS}
    for qid, vid, frame, track, mask, score, rank in rows:
        h, w = mask.shape
        for c, v in zip(P.COLUMNS, (qid, vid, frame, track, -1 if track < 0 else 0, score, rank, h, w,
                                    mask_ops.encode(mask)["counts"])):
            cols[c].append(v)
    meta = {"key": "k", "config": {}, "upstream": {}, "dataset": {"name": "t", "root": "/t", "fingerprint": fingerprint}}
    return P.write_predictions(path, cols, meta)


def truth(rows):
    """(query_id, frame) -> the rank-0 mask."""
    return {(q, f): m for q, _, f, _, m, _, r in rows if r == 0}


@pytest.fixture
def clip(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(T)]
    path = tmp_path / "clip.mp4"
    write_mp4(path, iter(frames), FPS)  # a generator-like iterable streams
    return Video(video_id="vid", source=Mp4Frames(path), fps=FPS, width=W, height=H, num_frames=T)


def test_render_writes_mp4_at_source_rate_and_masks_that_decode_exactly(tmp_path, clip):
    rows = build_rows()
    pred = P.read_predictions(write_preds(tmp_path / "p.parquet", rows))
    res = render_overlays(clip, pred, tmp_path / "out", sentences={"vid_1": "the lower box", "vid_0": "the upper box"})
    cap = cv2.VideoCapture(str(res.overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == T and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (W, H)
    cap.release()
    assert res.frames == T and res.queries == ["vid_1", "vid_0"]  # colour order follows `sentences`
    sheet = cv2.imread(str(res.sheet))
    assert sheet is not None and sheet.shape[0] > 0
    want = truth(rows)
    # one PNG per (query, frame) with an answer row: 6 + 5 (vid_1 has no row on frame 4)
    assert res.mask_files == 11 and not (res.mask_dir / "vid_1" / "00004.png").exists()
    for (q, f), m in want.items():
        png = cv2.imread(str(res.mask_dir / q / f"{f:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.ndim == 2 and set(np.unique(png)) <= {0, 255}
        assert np.array_equal(png == 255, m), (q, f)


def test_render_draws_only_this_videos_rows(tmp_path, clip):
    rows = build_rows() + [(q.replace("vid", "other"), "other", f, t, m, s, r) for q, _, f, t, m, s, r in build_rows()]
    res = render_overlays(clip, P.read_predictions(write_preds(tmp_path / "p.parquet", rows)).table, tmp_path / "o",
                          write_masks=False)
    assert res.queries == ["vid_0", "vid_1"] and res.mask_dir is None and not (tmp_path / "o" / "masks").exists()
    with pytest.raises(DataError, match="no prediction rows"):
        render_overlays(Video("nope", clip.source, FPS, W, H, T), P.read_predictions(tmp_path / "p.parquet"), tmp_path / "x")


def test_coco_rle_round_trips_and_top_k_keeps_runners_up(tmp_path):
    rows = build_rows()
    pred = write_preds(tmp_path / "p.parquet", rows)
    res = export.run(ExportConfig(format="coco-rle"), predictions=pred, out_dir=tmp_path / "c")
    items = json.loads((tmp_path / "c" / export.COCO_FILE).read_text())
    assert res.masks == len(items) == 11 and all(it["rank"] == 0 for it in items)
    want = truth(rows)
    for it in items:
        assert isinstance(it["segmentation"]["counts"], str) and it["segmentation"]["size"] == [H, W]
        assert np.array_equal(mask_ops.decode(it["segmentation"]), want[(it["query_id"], it["frame"])])
    abstained = [it for it in items if it["query_id"] == "vid_1" and it["frame"] == 2]
    assert abstained[0]["score"] is None  # nan is not JSON: null
    top2 = export.run(ExportConfig(format="coco-rle", top_k=2), predictions=pred, out_dir=tmp_path / "c2")
    assert top2.masks == 11 + T  # + the runner-up of vid_0 on every frame


def test_png_export_round_trips(tmp_path):
    rows = build_rows()
    pred = write_preds(tmp_path / "p.parquet", rows)
    res = export.run(ExportConfig(format="png"), predictions=pred, out_dir=tmp_path / "png")
    assert res.files == 11
    for (q, f), m in truth(rows).items():
        png = cv2.imread(str(tmp_path / "png" / "vid" / q / f"{f:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.ndim == 2 and png.dtype == np.uint8 and np.array_equal(png == 255, m)


def test_ytvos_layout_has_every_frame_and_the_dataset_frame_names(tmp_path):
    # a Ref-YouTube-VOS-like video: id with no underscore, frames named every 5th, 8 frames;
    # predictions only on frames 0..5 (query vid_1 skips 4)
    folder = tmp_path / "JPEGImages" / "a1b2"
    folder.mkdir(parents=True)
    for i in range(8):
        cv2.imwrite(str(folder / f"{5 * i:05d}.jpg"), np.zeros((H, W, 3), np.uint8))
    video = Video("a1b2", ImageFolderFrames(folder), 6.0, W, H, 8)
    ds = Dataset(name="ytvos", root=tmp_path, videos={"a1b2": video}, fingerprint="fp",
                 queries=[Query("a1b2_0", "a1b2", "x"), Query("a1b2_1", "a1b2", "y"), Query("a1b2_2", "a1b2", "z")])
    rows = build_rows("a1b2")
    pred = write_preds(tmp_path / "p.parquet", rows)
    res = export.run(ExportConfig(format="ytvos"), predictions=pred, out_dir=tmp_path / "sub", dataset=ds)
    ann = tmp_path / "sub" / "Annotations" / "a1b2"
    assert sorted(p.name for p in ann.iterdir()) == ["0", "1"]  # exp ids: the part after "a1b2_"
    names = sorted(p.name for p in (ann / "1").iterdir())
    assert names == [f"{5 * i:05d}.png" for i in range(8)] and res.files == 16
    want = truth(rows)
    for exp in ("0", "1"):
        for i in range(8):
            png = cv2.imread(str(ann / exp / f"{5 * i:05d}.png"), cv2.IMREAD_UNCHANGED)
            m = want.get((f"a1b2_{exp}", i), np.zeros((H, W), bool))  # no prediction: all 0
            assert png.ndim == 2 and np.array_equal(png == 255, m), (exp, i)
    # without --dataset: frames named by 5-digit index, count = last predicted frame + 1 = 6
    export.run(ExportConfig(format="ytvos"), predictions=pred, out_dir=tmp_path / "sub2")
    assert sorted(p.name for p in (tmp_path / "sub2" / "Annotations" / "a1b2" / "1").iterdir()) == [f"{i:05d}.png" for i in range(6)]


def test_ytvos_refuses_query_ids_without_the_video_prefix(tmp_path):
    pred = write_preds(tmp_path / "p.parquet", [("q7", "vid", 0, 0, moving_box(0, 0), 0.5, 0)])
    with pytest.raises(DataError, match="q7"):
        export.run(ExportConfig(format="ytvos"), predictions=pred, out_dir=tmp_path / "s")


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="coco-rle, png, ytvos"):
        export.check_config(ExportConfig(format="tiff"))
    with pytest.raises(ConfigError, match="rank 0"):
        export.check_config(ExportConfig(format="png", top_k=2))


def test_cli_exports_and_turns_bad_input_into_one_line(tmp_path, monkeypatch):
    pred = write_preds(tmp_path / "p.parquet", build_rows())
    r = CliRunner().invoke(main, ["--log-level", "error", "export", str(pred), "--format", "png"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p-png" / "vid" / "vid_0" / "00005.png").is_file()  # default --out beside PRED
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, **kw: None, raising=False)
    not_pred = tmp_path / "notes.txt"
    not_pred.write_text("hello")
    for args, says in ((["export", str(not_pred), "--out", str(tmp_path / "x")], "not a readable Parquet"),
                       (["export", str(pred), "--format", "tiff", "--dataset", str(tmp_path)], "'tiff': unknown"),
                       (["export", str(tmp_path / "missing.parquet")], "not found")):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1, (args, r.output)
        assert r.output.startswith("error:") and len(r.output.strip().splitlines()) == 1, r.output
        assert says in r.output
    with pytest.raises(CacheError):
        export.run(ExportConfig(), predictions=not_pred, out_dir=tmp_path / "x")


def test_write_mp4_leaves_no_file_when_the_frames_fail_midway(tmp_path):
    def frames():
        yield np.zeros((H, W, 3), np.uint8)
        raise DataError("decode failed")

    with pytest.raises(DataError):
        write_mp4(tmp_path / "o.mp4", frames(), FPS)
    assert list(tmp_path.iterdir()) == []  # neither the target nor its temporary file
