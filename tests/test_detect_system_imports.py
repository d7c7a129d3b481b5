"""`--detector import:<kind>:PATH`: the files Grounded-SAM-2, DEVA, SAM 2 and SAM 3 write.

Each writer below builds files in the exact shape the system's own code writes them (see the
module doc of ``clawcrane.cache.system_imports`` for the source files each follows), filled with
the ground-truth instances of `data synth --preset tiny`. Detecting from them must cover every GT
instance (candidate recall 1.0) and keep the system's scores, class texts and track ids.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.detect_world import load_dataset, write_videos
from PIL import Image
from pycocotools import mask as mask_utils

from clawcrane.build.detectors import detector_key, open_mask_source, parse_spec
from clawcrane.cache.candidates import open_candidates
from clawcrane.cache.imports import split_import
from clawcrane.cache.system_imports import open_system_import
from clawcrane.cli import main
from clawcrane.config import DetectConfig, SynthConfig, default_score_threshold
from clawcrane.datasets import open_dataset
from clawcrane.datasets.records import Dataset, Video
from clawcrane.datasets.video_io import ImageFolderFrames
from clawcrane.errors import ConfigError, DataError
from clawcrane.stages import detect, synth

PALETTE = [c for i in range(256) for c in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]
"""Any palette: the masks are the indices (SAM 2 writes the DAVIS palette or the input's)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(dataset, gt): `data synth --preset tiny`; gt[video][frame] = [(instance id, mask, class id)] of annotated frames."""
    root = tmp_path_factory.mktemp("sysimp") / "data"
    synth.run(SynthConfig(preset="tiny"), root)
    ds = open_dataset(root)
    gt = {vid: {f: [(int(i.instance_id), i.mask, i.class_id) for i in ds.frame_instances(vid, f)] for f in sorted(frames)}
          for vid, frames in ds.annotated_frames.items()}
    return ds, gt


def id_map(objects, shape) -> np.ndarray:
    ids = np.zeros(shape, np.int64)
    for oid, mask, *_ in objects:
        ids[mask] = oid
    return ids


def inclusive_box(mask):
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def rle_json(mask) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("utf-8")}


# ---- the systems' files ---------------------------------------------------------------------------
def write_gsam2(vdir, frames: dict, shape, *, empty=()):
    """grounded_sam2_tracking_demo_with_continuous_id.py step 5 + MaskDictionaryModel.to_dict; ``empty``
    frames as save_empty_mask_and_json writes them (default 1080x1920, the chunk's first name inside)."""
    (vdir / "mask_data").mkdir(parents=True, exist_ok=True)
    (vdir / "json_data").mkdir(parents=True, exist_ok=True)
    for f, objects in frames.items():
        name = f"mask_{f:05d}.npy"
        np.save(vdir / "mask_data" / name, id_map(objects, shape).astype(np.uint16))
        labels = {}
        for oid, mask, cls in objects:
            x1, y1, x2, y2 = inclusive_box(mask)
            labels[oid] = {"instance_id": oid, "class_name": f"shape {cls}", "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                           "logit": 0.8 if oid % 2 else 0.0}
        doc = {"mask_name": name, "mask_height": shape[0], "mask_width": shape[1], "promote_type": "mask", "labels": labels}
        (vdir / "json_data" / name.replace(".npy", ".json")).write_text(json.dumps(doc))
    for f in empty:
        name = f"mask_{f:05d}.npy"
        np.save(vdir / "mask_data" / name, np.zeros((1080, 1920), np.uint16))
        doc = {"mask_name": "mask_00000.npy", "mask_height": 1080, "mask_width": 1920, "promote_type": "mask", "labels": {}}
        (vdir / "json_data" / name.replace(".npy", ".json")).write_text(json.dumps(doc, indent=4))


LONG = 70000
"""Added to DEVA ids so they need all three RGB channels (ID2RGBConverter draws ids up to 256**3)."""


def write_deva(vdir, frames: dict, shape):
    """ResultSaver(dataset='demo') with long ids: Annotations/<frame>.png RGB (R + 256 G + 65536 B), pred.json."""
    (vdir / "Annotations").mkdir(parents=True, exist_ok=True)
    annotations = []
    for f, objects in frames.items():
        ids = id_map([(oid + LONG, m) for oid, m, _ in objects], shape)
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)
        Image.fromarray(rgb).save(vdir / "Annotations" / f"{f:05d}.png")
        segs = [{"category_id": cls % 5, "id": oid + LONG, "score": 0.5 + oid / 100, "area": int(m.sum())}
                for oid, m, cls in objects]
        annotations.append({"file_name": f"{f:05d}.jpg", "segments_info": segs})
    (vdir / "pred.json").write_text(json.dumps({"annotations": annotations}, indent=4))


def save_ann_png(path, mask):
    """vos_inference.py save_ann_png: uint8 (H, W) with a palette."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8))
    im.putpalette(PALETTE)
    im.save(path)


def write_sam2(vdir, frames: dict, shape, *, per_obj=False):
    """vos_inference.py save_masks_to_dir: <frame>.png (value = object id) or <object_id:03d>/<frame>.png (0/1)."""
    for f, objects in frames.items():
        if not per_obj:
            save_ann_png(vdir / f"{f:05d}.png", id_map(objects, shape))
        for oid, m, _ in objects if per_obj else ():
            save_ann_png(vdir / f"{oid:03d}" / f"{f:05d}.png", m)


def sam3_records(gt_video: dict, num_frames: int, shape, video_id, *, per_frame_scores=False) -> list[dict]:
    """YTVISResultsWriter.prepare: one record per masklet, per-frame lists over every frame (empty masks where absent)."""
    tracks = sorted({oid for objects in gt_video.values() for oid, *_ in objects})
    out = []
    for oid in tracks:
        segs, boxes, areas, pfs = [], [], [], []
        cls = 0
        for t in range(num_frames):
            m = next((m for o, m, _ in gt_video.get(t, []) if o == oid), np.zeros(shape, bool))
            cls = next((c for o, _, c in gt_video.get(t, []) if o == oid), cls)
            segs.append(rle_json(m))
            areas.append(int(m.sum()))
            boxes.append([0, 0, 0, 0] if not m.any() else [*inclusive_box(m)[:2], 1, 1])
            pfs.append(0.6 if m.any() else -1e8)
        rec = {"video_id": video_id, "category_id": cls, "bboxes": boxes, "score": 0.75, "segmentations": segs, "areas": areas}
        if per_frame_scores:
            rec["per_frame_scores"] = pfs
        out.append(rec)
    return out


def write_sam3(folder, ds, gt, *, with_annotation=True):
    """One results dump for all videos (int video ids) + the YT-VIS annotation it was evaluated against."""
    folder.mkdir(parents=True, exist_ok=True)
    records, videos, cats = [], [], set()
    for k, vid in enumerate(sorted(gt)):
        v = ds.videos[vid]
        records += sam3_records(gt[vid], v.num_frames, (v.height, v.width), k if with_annotation else vid,
                                per_frame_scores=k % 2 == 0)
        videos.append({"id": k, "video_name": vid, "file_names": [f"{vid}/{t:05d}.jpg" for t in range(v.num_frames)],
                       "height": v.height, "width": v.width, "length": v.num_frames})
        cats |= {c for objects in gt[vid].values() for *_, c in objects}
    (folder / "results.json").write_text(json.dumps(records))
    if with_annotation:
        ann = {"info": {}, "videos": videos, "annotations": [], "categories": [{"id": c, "name": f"shape {c}"} for c in sorted(cats)]}
        (folder / "annotations.json").write_text(json.dumps(ann))


def write_kind(kind, path, ds, gt):
    for vid, frames in gt.items():
        v = ds.videos[vid]
        shape = (v.height, v.width)
        if kind == "gsam2":
            blank = min(set(range(ds.videos[vid].num_frames)) - set(frames))
            write_gsam2(path / vid, frames, shape, empty=(blank,) if vid == sorted(gt)[0] else ())
        elif kind == "deva":
            write_deva(path / vid, frames, shape)
        elif kind in ("sam2", "sam2-per-obj"):
            write_sam2(path / vid, frames, shape, per_obj=kind == "sam2-per-obj")
    if kind == "sam3":
        write_sam3(path, ds, gt)


# ---- recall 1.0 and what is kept ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gsam2", "deva", "sam2", "sam2-per-obj", "sam3"])
def test_each_import_covers_every_gt_instance_and_keeps_scores_classes_and_track_ids(world, tmp_path, kind):
    ds, gt = world
    write_kind(kind, tmp_path / "out", ds, gt)
    spec = f"import:{kind.split('-')[0]}:{tmp_path / 'out'}"
    res = detect.run(DetectConfig(detector=spec, device="cpu"), ds, tmp_path / "cache")
    assert res.recall == 1.0 and res.gt_instances == sum(len(o) for fr in gt.values() for o in fr.values())
    assert res.gt_frames_skipped == 0
    c = open_candidates(res.path)
    assert c.meta["upstream"]["detector"] == detector_key(spec, ds)
    for vid, frames in gt.items():
        vc = c.video(vid)
        assert vc.track_ids is not None and len(vc.track_ids) == len(vc)
        for f, objects in frames.items():
            rows = vc.frame_rows(f)
            tracks = sorted({o for fr in frames.values() for o, *_ in fr})  # SAM 3: a masklet's position is its id
            want = {(oid + LONG if kind == "deva" else tracks.index(oid) if kind == "sam3" else oid): (m, cls)
                    for oid, m, cls in objects}
            got = {int(vc.track_ids[r]): r for r in rows}
            assert set(got) == set(want)
            for tid, r in got.items():
                m, cls = want[tid]
                np.testing.assert_array_equal(vc.masks([r])[0], m)
                s = float(vc.scores[r])
                if kind == "gsam2":
                    assert vc.class_names[r] == f"shape {cls}"
                    assert s == pytest.approx(0.8 if tid % 2 else 1.0)  # logit 0.0 = unset
                elif kind == "deva":
                    assert vc.class_ids[r] == cls % 5 and s == pytest.approx(0.5 + (tid - LONG) / 100)
                    assert vc.class_names is None  # DEVA writes no prompt texts
                elif kind == "sam3":
                    assert vc.class_names[r] == f"shape {cls}" and vc.class_ids[r] == cls
                    assert s == pytest.approx(0.6 if sorted(gt).index(vid) % 2 == 0 else 0.75)
                else:
                    assert s == 1.0 and vc.class_names is None


def test_sam3_without_annotation_matches_video_ids_as_text_and_counts_positions_as_frames(world, tmp_path):
    ds, gt = world
    write_sam3(tmp_path / "out", ds, gt, with_annotation=False)
    res = detect.run(DetectConfig(detector=f"import:sam3:{tmp_path / 'out' / 'results.json'}", device="cpu"), ds, tmp_path / "c")
    assert res.recall == 1.0
    vc = open_candidates(res.path).video(sorted(gt)[0])
    assert vc.class_names == [""] * len(vc) and list(vc.processed_frames) == list(range(vc.num_frames))


def test_detect_cli_prints_candidate_recall_for_an_import(world, tmp_path):
    ds, gt = world
    write_kind("sam2", tmp_path / "out", ds, gt)
    r = CliRunner().invoke(main, ["detect", str(ds.root), "--detector", f"import:sam2:{tmp_path / 'out'}",
                                  "--cache", str(tmp_path / "c"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "candidate recall (mask IoU >= 0.5): 1.000" in r.output


def test_detect_cli_keeps_every_imported_mask_unless_a_score_threshold_is_given(world, tmp_path):
    # every GT mask imported with score 0.1 (another system's low scale): the default keeps them all
    # (recall 1.0); --score-threshold 0.3, the detectors' default, keeps none (recall 0.0)
    ds, gt = world
    recs = [{"video_id": vid, "frame": f, "score": 0.1,
             "segmentation": {k: (v.decode() if isinstance(v, bytes) else v)
                              for k, v in mask_utils.encode(np.asfortranarray(m.astype(np.uint8))).items()}}
            for vid, frames in gt.items() for f, objects in frames.items() for _, m, _ in objects]
    (tmp_path / "low.json").write_text(json.dumps(recs))
    args = ["detect", str(ds.root), "--detector", f"import:{tmp_path / 'low.json'}", "--device", "cpu"]
    r = CliRunner().invoke(main, args + ["--cache", str(tmp_path / "c")])
    assert r.exit_code == 0 and "candidate recall (mask IoU >= 0.5): 1.000" in r.output, r.output
    r = CliRunner().invoke(main, args + ["--cache", str(tmp_path / "c2"), "--score-threshold", "0.3"])
    assert r.exit_code == 0 and "candidate recall (mask IoU >= 0.5): 0.000" in r.output, r.output


def test_the_command_that_completes_an_import_artifact_keeps_its_threshold(world):
    # the CLI's default threshold is 0 for an import, 0.3 for a detector: the completing command must spell
    # out whichever differs, or it would make another artifact (another key) and leave this one incomplete
    ds, _ = world
    spec = "import:x.json"
    assert "--score-threshold 0.3" in detect.complete_with(DetectConfig(detector=spec, score_threshold=0.3), ds)
    assert "--score-threshold" not in detect.complete_with(DetectConfig(detector=spec, score_threshold=0.0), ds)
    assert "--score-threshold" not in detect.complete_with(DetectConfig(detector="oracle"), ds)
    assert "--score-threshold 0.0" in detect.complete_with(DetectConfig(detector="r50-fpn", score_threshold=0.0), ds)
    assert default_score_threshold(" import:x.json") == 0.0  # the detector builder strips the spec too


def test_the_completing_command_names_absolute_paths_so_it_runs_from_any_folder(world, tmp_path, monkeypatch):
    ds, _ = world
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imp.json").write_text("[]")
    (tmp_path / "out").mkdir()
    cmd = detect.complete_with(DetectConfig(detector="import:imp.json"), ds)
    assert f"--detector import:{tmp_path / 'imp.json'} " in cmd and f"detect {ds.root.resolve()} " in cmd
    assert f"import:sam2:{tmp_path / 'out'} " in detect.complete_with(DetectConfig(detector="import:sam2:out"), ds)
    assert "--detector oracle " in detect.complete_with(DetectConfig(detector="oracle"), ds)
    (tmp_path / "oracle").write_text("")  # a file named like a keyword stays a keyword
    assert detect.absolute_spec("oracle") == "oracle" and detect.absolute_spec("r50-fpn") == "r50-fpn"
    assert detect.absolute_spec("import:./imp.json") == f"import:{tmp_path / 'imp.json'}"  # ./ and trailing / normalised
    assert detect.absolute_spec("import:sam2:out/") == f"import:sam2:{tmp_path / 'out'}"
    assert detect.absolute_spec("import:missing.json") == "import:missing.json"  # nothing there: as given


def test_recall_line_names_annotated_frames_an_import_skipped(world, tmp_path):
    ds, gt = world
    vid = sorted(gt)[0]
    first = min(gt[vid])
    part = {v: ({f: o for f, o in fr.items() if f != first} if v == vid else fr) for v, fr in gt.items()}
    write_kind("sam2", tmp_path / "out", ds, part)
    res = detect.run(DetectConfig(detector=f"import:sam2:{tmp_path / 'out'}", device="cpu"), ds, tmp_path / "c")
    assert res.recall == 1.0 and res.gt_frames_skipped == 1 and res.gt_instances_skipped == len(gt[vid][first])
    assert any("annotated frames without a detector entry: 1" in line for line in detect.summary_lines(res))


# ---- layouts: one video, frame names -------------------------------------------------------------
def small_world(tmp_path, n=1):
    write_videos(tmp_path / "vids", n=n)
    return load_dataset(tmp_path / "vids", n=n)


def test_one_video_folder_is_the_whole_import_for_a_one_video_dataset(tmp_path):
    """`segment`: PATH is the one video's output folder itself, whatever its name."""
    ds = small_world(tmp_path)
    m = np.zeros((24, 32), bool)
    m[2:9, 3:12] = True
    write_sam2(tmp_path / "my_run", {4: [(7, m, 0)]}, m.shape, per_obj=True)
    src = open_mask_source(f"sam2:{tmp_path / 'my_run'}", ds)
    assert src.video_ids() == ["vid00"] and src.frames("vid00") == {4}
    got = src.read("vid00", 4)
    assert list(got.track_ids) == [7] and got.masks[0].tolist() == m.tolist()
    two = small_world(tmp_path / "two", n=2)
    with pytest.raises(DataError, match=r"my_run: holds one video's sam2 output but the dataset has 2 videos; put each"):
        open_mask_source(f"sam2:{tmp_path / 'my_run'}", two)


def test_frame_folder_videos_map_output_names_to_frame_positions(tmp_path):
    """A 1-based frame folder (00001.png ...) and SAM 2 run on it: 00001.png is frame 0."""
    frames = tmp_path / "clip"
    frames.mkdir()
    for t in range(1, 4):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / f"{t:05d}.png")
    src = ImageFolderFrames(frames)
    ds = Dataset(name="video", root=frames, videos={"clip": Video("clip", src, 25.0, 8, 8, 3)}, queries=[],
                 annotated_frames={}, instance_loader=None, fingerprint="x")
    m = np.zeros((8, 8), bool)
    m[1:3, 1:3] = True
    write_sam2(tmp_path / "out", {1: [(1, m, 0)], 3: [(1, m, 0)]}, m.shape)
    assert open_mask_source(f"sam2:{tmp_path / 'out'}", ds).frames("clip") == {0, 2}
    assert open_system_import("sam2", tmp_path / "out").frames("out") == {1, 3}  # no dataset: the digits


def test_spec_parsing_keeps_plain_import_paths(tmp_path):
    assert parse_spec("import:sam2:runs/x") == ("import", "sam2:runs/x")
    assert split_import("sam2:runs/x") == ("sam2", tmp_path.__class__("runs/x"))
    assert split_import("masks.json")[0] is None and split_import("C:/masks")[0] is None
    with pytest.raises(ConfigError, match="import:deva: needs a path"):
        detector_key("import:deva:", None)


def test_the_key_follows_the_kind_and_the_content(world, tmp_path):
    ds, gt = world
    write_kind("sam2", tmp_path / "out", ds, gt)
    k1 = detector_key(f"import:sam2:{tmp_path / 'out'}", ds)
    assert k1 == detector_key(f"import:sam2:{tmp_path / 'out'}", ds)
    vid = sorted(gt)[0]
    f = min(gt[vid])
    save_ann_png(tmp_path / "out" / vid / f"{f:05d}.png", np.zeros((ds.videos[vid].height, ds.videos[vid].width)))
    assert detector_key(f"import:sam2:{tmp_path / 'out'}", ds) != k1


# ---- malformed files: one line naming the file and the fix --------------------------------------
def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_malformed_gsam2_json_names_the_file(tmp_path):
    m = np.ones((4, 4), bool)
    write_gsam2(tmp_path / "v", {0: [(1, m, 3)]}, m.shape)
    (tmp_path / "v" / "json_data" / "mask_00000.json").write_text('{"labels": [1, 2]}')
    src = open_system_import("gsam2", tmp_path / "v")
    with pytest.raises(DataError) as err:
        src.read("v", 0)
    assert "mask_00000.json: malformed" in one_line(err) and "Grounded-SAM-2 writes" in one_line(err)


def test_gsam2_npy_that_is_not_an_id_map_names_the_file(tmp_path):
    (tmp_path / "v" / "mask_data").mkdir(parents=True)
    np.save(tmp_path / "v" / "mask_data" / "mask_00002.npy", np.zeros((2, 4, 4), np.float32))
    with pytest.raises(DataError) as err:
        open_system_import("gsam2", tmp_path / "v").read("v", 2)
    assert "mask_00002.npy: expected an (H, W) integer id map" in one_line(err)


def test_malformed_deva_pred_json_names_the_file_and_the_annotation(tmp_path):
    m = np.ones((4, 4), bool)
    write_deva(tmp_path / "v", {0: [(1, m, 0)]}, m.shape)
    (tmp_path / "v" / "pred.json").write_text(json.dumps({"annotations": [{"file_name": "00000.jpg", "segments_info": [{"score": 1}]}]}))
    with pytest.raises(DataError) as err:
        open_system_import("deva", tmp_path / "v")
    assert "pred.json: annotation 0 is malformed" in one_line(err) and "DEVA writes" in one_line(err)


def test_rgb_png_for_sam2_is_refused_with_the_fix(tmp_path):
    (tmp_path / "v").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "v" / "00000.png")
    with pytest.raises(DataError) as err:
        open_system_import("sam2", tmp_path / "v").read("v", 0)
    assert "00000.png: is a RGB PNG; SAM 2's vos_inference.py writes palette PNGs" in one_line(err)


def test_malformed_sam3_record_names_the_file_and_the_record(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps([{"video_id": 0, "score": 0.5, "category_id": 1, "bboxes": []}]))
    with pytest.raises(DataError) as err:
        open_system_import("sam3", tmp_path / "r.json")
    assert "r.json: record 0 is malformed" in one_line(err) and "segmentations" in one_line(err)


def test_frame_file_without_a_number_is_refused(tmp_path):
    save_ann_png(tmp_path / "v" / "first.png", np.zeros((4, 4)))
    with pytest.raises(DataError) as err:
        open_system_import("sam2", tmp_path / "v")
    assert "first.png: no frame number in the file name" in one_line(err)


def test_a_folder_without_the_kinds_files_says_what_it_expected(tmp_path):
    (tmp_path / "out" / "vid00").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        open_system_import("deva", tmp_path / "out", video_ids=["vid00"])
    assert "no deva output found; expected Annotations/<frame>.png" in one_line(err)


def test_logit_outside_the_unit_interval_goes_through_a_sigmoid(tmp_path):
    m = np.ones((4, 4), bool)
    write_gsam2(tmp_path / "v", {0: [(1, m, 3)]}, m.shape)
    p = tmp_path / "v" / "json_data" / "mask_00000.json"
    doc = json.loads(p.read_text())
    doc["labels"]["1"]["logit"] = 2.0
    p.write_text(json.dumps(doc))
    assert open_system_import("gsam2", tmp_path / "v").read("v", 0).scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_sam3_per_video_folders_take_the_folder_name_whatever_the_video_id_inside(tmp_path):
    ds = small_world(tmp_path, n=2)
    m = np.zeros((24, 32), bool)
    m[3:8, 4:9] = True
    for k, vid in enumerate(["vid00", "vid01"]):
        (tmp_path / "out" / vid).mkdir(parents=True)
        recs = sam3_records({2: [(1, m, 4)]}, 6, m.shape, video_id=100 + k)
        (tmp_path / "out" / vid / "dump.json").write_text(json.dumps(recs))
    src = open_mask_source(f"sam3:{tmp_path / 'out'}", ds)
    assert src.video_ids() == ["vid00", "vid01"] and src.frames("vid01") == set(range(6))
    got = src.read("vid01", 2)
    assert got.masks[0].tolist() == m.tolist() and list(got.class_ids) == [4] and len(src.read("vid01", 0).masks) == 0


def test_deva_palette_pngs_without_pred_json_read_the_index_as_the_id(tmp_path):
    save_ann_png(tmp_path / "v" / "Annotations" / "00003.png", np.pad(np.full((2, 2), 3), 1))
    got = open_system_import("deva", tmp_path / "v").read("v", 3)
    assert list(got.track_ids) == [3] and list(got.scores) == [1.0] and list(got.class_ids) == [-1]
    assert got.masks[0].sum() == 4
