"""`--detector import:PATH`: masks from another system round-trip through each format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.detect_world import H, W, load_dataset, write_videos

from clawcrane.build.detectors import detector_key
from clawcrane.cache.candidates import open_candidates
from clawcrane.cache.imports import id_map_to_frame, open_import, read_id_map, write_id_map
from clawcrane.config import DetectConfig
from clawcrane.errors import DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.detectors import ImportDetector
from clawcrane.stages import detect as stage


def sample_masks(seed: int, k: int = 3) -> np.ndarray:
    """(k, H, W) disjoint masks (so they are also expressible as one id map)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, k + 1, size=(H, W))
    return np.stack([ids == i + 1 for i in range(k)])


def write_json(path, entries):
    """entries: (video_id, frame, masks (k, H, W), scores) -> COCO-RLE JSON list."""
    recs = []
    for video_id, frame, masks, scores in entries:
        for m, s, rle in zip(masks, scores, mask_ops.encode_many(masks)):
            recs.append({"video_id": video_id, "frame": frame, "score": float(s), "category_id": 7,
                         "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    path.write_text(json.dumps(recs))


def to_ids(masks: np.ndarray) -> np.ndarray:
    ids = np.zeros(masks.shape[1:], np.int64)
    for i, m in enumerate(masks):
        ids[m] = i + 1
    return ids


def test_coco_rle_json_round_trips(tmp_path):
    masks = sample_masks(0)
    write_json(tmp_path / "m.json", [("vid00", 2, masks, [0.9, 0.8, 0.7])])
    src = open_import(tmp_path / "m.json")
    assert src.frames("vid00") == {2}
    got = src.read("vid00", 2)
    np.testing.assert_array_equal(got.masks, masks)
    np.testing.assert_allclose(got.scores, [0.9, 0.8, 0.7])
    assert list(got.class_ids) == [7, 7, 7]


@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_id_maps_round_trip(tmp_path, suffix):
    masks = sample_masks(1)
    write_id_map(tmp_path / "imp" / "vid00" / f"00003{suffix}", to_ids(masks))
    src = open_import(tmp_path / "imp")
    assert src.frames("vid00") == {3}
    got = src.read("vid00", 3)
    np.testing.assert_array_equal(got.masks, masks)  # ids ascending -> mask order preserved
    assert list(got.scores) == [1.0] * 3


def test_16_bit_png_keeps_ids_above_255(tmp_path):
    ids = np.zeros((H, W), np.int64)
    ids[:5] = 300
    ids[10:] = 2
    write_id_map(tmp_path / "a.png", ids)
    np.testing.assert_array_equal(read_id_map(tmp_path / "a.png"), ids)
    frame = id_map_to_frame(ids)
    assert frame.masks.shape == (2, H, W) and frame.masks[1, 0, 0]  # id 2 then id 300


def test_detect_from_an_import_stores_exactly_the_imported_masks(tmp_path):
    data = tmp_path / "data"
    write_videos(data, n=2)
    ds = load_dataset(data, n=2)
    a, b = sample_masks(2), sample_masks(3, k=2)
    write_json(tmp_path / "m.json", [("vid00", 0, a, [0.5, 0.9, 0.7]), ("vid01", 5, b, [1.0, 1.0])])
    cfg = DetectConfig(detector=f"import:{tmp_path / 'm.json'}", score_threshold=0.0, dedup_iou=1.0)
    res = stage.run(cfg, ds, tmp_path / "cache")
    c = open_candidates(res.path)
    v0 = c.video("vid00")
    # only frames with an import entry are visited (not annotated frames 1 and 4, which have none)
    assert list(v0.processed_frames) == [0]
    np.testing.assert_array_equal(v0.masks(), a[[1, 2, 0]])  # sorted by descending score
    assert v0.track_ids is None and v0.class_names is None  # the generic formats add no optional columns
    np.testing.assert_array_equal(c.video("vid01").masks(), b)
    assert c.meta["upstream"]["detector"] == detector_key(cfg.detector, ds)


def test_import_detector_resizes_masks_of_another_size_to_the_video(tmp_path):
    small = np.zeros((1, H // 2, W // 2), bool)
    small[0, :3, :4] = True
    write_id_map(tmp_path / "imp" / "vid00" / "00000.npy", to_ids(small))
    det = ImportDetector(open_import(tmp_path / "imp"), {"vid00": (H, W)})
    (fc,) = det.detect([None], [("vid00", 0)])
    want = np.zeros((H, W), bool)
    want[:6, :8] = True  # nearest-neighbour x2
    np.testing.assert_array_equal(fc.masks[0], want)


def test_import_key_changes_with_the_imported_content(tmp_path):
    write_id_map(tmp_path / "imp" / "vid00" / "00000.png", to_ids(sample_masks(4)))
    k1 = detector_key(f"import:{tmp_path / 'imp'}", None)
    write_id_map(tmp_path / "imp" / "vid00" / "00000.png", to_ids(sample_masks(5)))
    assert detector_key(f"import:{tmp_path / 'imp'}", None) != k1


def test_malformed_json_record_names_the_file_and_the_record(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps([{"video_id": "v", "frame": 0}]))
    with pytest.raises(DataError, match=r"m\.json: record 0 is malformed"):
        open_import(tmp_path / "m.json")


def test_rgb_png_is_refused_with_the_fix(tmp_path):
    from PIL import Image

    (tmp_path / "v").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "v" / "00000.png")
    with pytest.raises(DataError, match="palette or grayscale"):
        read_id_map(tmp_path / "v" / "00000.png")
