"""Invariants of the shared cache mechanism: atomic parts, consolidation, keys, schemas."""

import json

import h5py
import numpy as np
import pytest
import torch

from clawcrane.atomic import atomic_path
from clawcrane.cache import checkpoints
from clawcrane.cache.candidates import CandidateCache, VideoCandidates, open_candidates
from clawcrane.cache.features import VideoFeatures, open_features
from clawcrane.cache.store import Store, escape_id, unescape_id
from clawcrane.config import SynthConfig, output_config
from clawcrane.errors import CacheError, WeightsError
from clawcrane.fingerprint import chain_key, file_fingerprint, stable_json
from clawcrane.pipeline import masks as mask_ops


def _cands(vid="v", H=6, W=8):
    m = np.zeros((3, H, W), bool)
    m[0, 1:3, 1:4] = True
    m[1, 4, 7] = True
    m[2, :, :2] = True
    rles = mask_ops.encode_many(m)
    return m, VideoCandidates(
        video_id=vid, height=H, width=W, num_frames=4,
        frames=np.array([0, 0, 2], np.int32), boxes=np.stack([mask_ops.tight_box(x) for x in m]),
        scores=np.array([0.9, 0.5, 0.7], np.float32), class_ids=np.array([1, 2, 1], np.int32),
        rles=rles, processed_frames=np.array([0, 1, 2, 3], np.int32),
    )


def test_candidate_record_round_trips_masks_exactly(tmp_path):
    m, vc = _cands()
    store = Store.create(tmp_path / "detect-k", {"stage": "detect", "key": "k" * 64})
    store.write_video(vc.to_record())
    back = open_candidates(tmp_path).video("v")
    assert np.array_equal(back.masks(), m)
    assert back.frame_rows(0).tolist() == [0, 1] and back.frame_rows(1).tolist() == []
    assert back.processed_frames.tolist() == [0, 1, 2, 3]


def test_consolidate_then_merge_keeps_every_video_and_removes_parts(tmp_path):
    store = Store.create(tmp_path / "a", {"stage": "detect", "key": "k"})
    for vid in ["x", "y/z", "w"]:
        store.write_video(_cands(vid)[1].to_record())
    store.consolidate(["x", "y/z"], "shard-0000-of-0002.h5")
    assert len(list((store.path / "parts").glob("*.h5"))) == 1  # only w's part is left
    store.consolidate(["w"], "shard-0001-of-0002.h5")
    store.merge()
    assert [p.name for p in store.files()] == ["data.h5"]
    assert store.video_ids() == ["w", "x", "y/z"]
    assert np.array_equal(CandidateCache(store).video("y/z").masks(), _cands()[0])


def test_store_refuses_a_folder_with_another_key(tmp_path):
    Store.create(tmp_path / "a", {"stage": "detect", "key": "one"})
    with pytest.raises(CacheError, match="key"):
        Store.create(tmp_path / "a", {"stage": "detect", "key": "two"})


def test_corrupted_part_file_gives_one_line_cache_error(tmp_path):
    store = Store.create(tmp_path / "a", {"stage": "detect", "key": "k"})
    p = store.write_video(_cands()[1].to_record())
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(CacheError) as err:
        store.video_ids()
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_killed_atomic_write_leaves_old_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_ids_with_slashes_escape_reversibly():
    for vid in ["a/b", "%2F", "plain", "-0P6yV8MZ_Y"]:
        assert unescape_id(escape_id(vid)) == vid
        assert "/" not in escape_id(vid)


def test_chain_key_ignores_runtime_fields_and_changes_with_upstream():
    a = output_config(SynthConfig(preset="tiny", seed=1, workers=1))
    b = output_config(SynthConfig(preset="tiny", seed=1, workers=8))
    assert a == b  # workers is runtime-only
    k1 = chain_key("synth", 1, {"x": "1"}, a)
    assert k1 == chain_key("synth", 1, {"x": "1"}, b)
    assert k1 != chain_key("synth", 1, {"x": "2"}, a)
    assert k1 != chain_key("synth", 2, {"x": "1"}, a)
    assert stable_json({"b": 1, "a": [1.0]}) == '{"a":["1.0"],"b":1}'


def test_file_fingerprint_sees_content_changes(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"a" * 100)
    k = file_fingerprint(p)
    p.write_bytes(b"a" * 99 + b"b")
    assert file_fingerprint(p) != k


def test_feature_record_round_trip_and_candidate_key_check(tmp_path):
    feat = np.arange(12, dtype=np.float16).reshape(3, 4)
    pos = np.random.default_rng(0).random((3, 10)).astype(np.float32)
    store = Store.create(tmp_path / "extract-f", {"stage": "extract", "key": "f", "upstream": {"candidates": "c" * 64}})
    store.write_video(VideoFeatures("v", np.array([0, 0, 1], np.int32), feat, pos).to_record())
    fc = open_features(tmp_path)
    v = fc.video("v")
    assert v.feat.dtype == np.float16 and np.array_equal(v.feat, feat) and np.allclose(v.pos, pos)
    assert v.feat_flip is None
    fc.check_candidates("c" * 64)
    with pytest.raises(CacheError, match="cccccccccccccccc.*dddddddddddddddd"):
        fc.check_candidates("d" * 64)


def test_opening_the_wrong_stage_is_refused(tmp_path):
    Store.create(tmp_path / "extract-f", {"stage": "extract", "key": "f"})
    with pytest.raises(CacheError, match="no candidate cache"):
        open_candidates(tmp_path)


def test_checkpoint_kind_is_checked_and_loads_weights_only(tmp_path):
    p = checkpoints.save_checkpoint(tmp_path / "m.pt", {"kind": checkpoints.KIND_HEAD, "model": {"w": torch.ones(2)}, "vocab": ["<pad>"]})
    payload = torch.load(p, weights_only=True)
    assert payload["vocab"] == ["<pad>"]
    with pytest.raises(WeightsError, match="expected 'clawcrane-detector'"):
        checkpoints.load_checkpoint(p, checkpoints.KIND_DETECTOR)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CacheError, match="bad.pt"):
        checkpoints.load_checkpoint(tmp_path / "bad.pt", checkpoints.KIND_HEAD)


def test_h5_files_carry_their_meta(tmp_path):
    store = Store.create(tmp_path / "a", {"stage": "detect", "key": "kk"})
    p = store.write_video(_cands()[1].to_record())
    with h5py.File(p) as f:
        assert json.loads(f.attrs["meta"])["key"] == "kk"
