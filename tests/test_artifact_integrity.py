"""Artifacts say whether they are complete and carry a checksum of every column (issue 15, items 3-5).

Built from tiny records written straight through ``Store`` (and a fake detector): what is recorded
when a video is written, what reading checks, how older artifacts without checksums or a list of
videos still read, and that the command an incomplete artifact names completes that same artifact.
"""

from __future__ import annotations

import json
import shlex

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.detect_world import fake_key, load_dataset, write_videos

from clawcrane.cache.store import ATTRS_CHECKSUM, CHECKSUM, Store, VideoRecord, column_checksum, escape_id
from clawcrane.cache.verify import verify_store
from clawcrane.cli import main
from clawcrane.config import DetectConfig, ExtractConfig, TrackRankConfig, option_flags
from clawcrane.errors import CacheError
from clawcrane.stages import detect as stage

COLUMNS = {
    "i32": np.arange(3, dtype=np.int32),
    "f16": np.linspace(-1, 1, 12, dtype=np.float16).reshape(3, 4),
    "f32_big": np.random.default_rng(0).normal(size=(3, 30)).astype(np.float32),  # >= 64 values: gzip
    "b": np.array([True, False, True]),
    "rle": [b"abc", b"", b"\x00\xff" * 40],
}
EMPTY = {"i32": np.zeros(0, np.int32), "f16": np.zeros((0, 4), np.float16), "f32_big": np.zeros((0, 30), np.float32),
         "b": np.zeros(0, bool), "rle": []}


def write(tmp_path, meta=None, **attrs):
    store = Store.create(tmp_path / "x-0123456789abcdef", dict({"stage": "x", "key": "k"}, **(meta or {})))
    store.write_video(VideoRecord("v/1", dict(COLUMNS), dict(dict(height=3, width=4, status="ok", error="", fps=2.5), **attrs)))
    return store


def test_every_column_and_the_attributes_carry_a_checksum_that_reading_recomputes(tmp_path):
    store = write(tmp_path)
    with h5py.File(store.index()["v/1"], "r") as f:
        g = f["videos"][escape_id("v/1")]
        assert set(g) == set(COLUMNS) and all(CHECKSUM in g[c].attrs for c in COLUMNS) and ATTRS_CHECKSUM in g.attrs
        assert g["f32_big"].compression == "gzip" and g["i32"].compression is None
    rec, found = store.read_checked("v/1")
    assert found == []
    assert ATTRS_CHECKSUM not in rec.attrs and rec.attrs["fps"] == 2.5
    assert column_checksum(rec.arrays["rle"]) == column_checksum(COLUMNS["rle"])
    store.write_video(VideoRecord("v2", dict(EMPTY), {"status": "ok", "n": np.int64(0)}))  # empty columns, numpy scalars
    assert store.read_checked("v2")[1] == []
    store.merge()  # consolidation copies the checksums with the data
    assert Store(store.path, verify=True).read("v/1").arrays["rle"] == COLUMNS["rle"]
    assert verify_store(Store(store.path)) == ([], [])


def test_a_checksum_does_not_depend_on_byte_order_or_memory_layout():
    a = np.arange(12, dtype="<f4").reshape(3, 4)
    assert column_checksum(a) == column_checksum(a.astype(">f4")) == column_checksum(np.asfortranarray(a))
    assert column_checksum(a) != column_checksum(a.reshape(4, 3)) != column_checksum(a.astype("<f8"))
    assert column_checksum([b"ab", b"c"]) != column_checksum([b"a", b"bc"])


def test_reading_with_verify_refuses_changed_values_and_without_it_returns_them(tmp_path):
    store = write(tmp_path)
    with h5py.File(store.index()["v/1"], "r+") as f:
        f["videos"][escape_id("v/1")]["i32"][0] = 7
    assert Store(store.path, verify=False).read("v/1").arrays["i32"][0] == 7
    with pytest.raises(CacheError, match=r"video 'v/1': column 'i32' does not match its checksum.*delete .*re-run"):
        Store(store.path, verify=True).read("v/1")
    problems, _ = verify_store(Store(store.path))
    assert problems == ["v/1: column 'i32' does not match its checksum (bytes changed on disk in parts/v%2F1.h5 since they were written)"]


def test_an_artifact_written_before_checksums_still_reads_and_verify_says_so(tmp_path):
    store = write(tmp_path)
    meta = json.loads((store.path / "meta.json").read_text())
    del meta["checksums"]
    (store.path / "meta.json").write_text(json.dumps(meta))
    with h5py.File(store.index()["v/1"], "r+") as f:
        g = f["videos"][escape_id("v/1")]
        del g.attrs[ATTRS_CHECKSUM]
        for c in COLUMNS:
            del g[c].attrs[CHECKSUM]
    store = Store(store.path, verify=True)
    assert store.read("v/1").arrays["i32"].tolist() == [0, 1, 2]
    problems, notes = verify_store(store)
    assert problems == [] and notes == ["1 of 1 videos carry no checksums (written by a version before checksums); "
                                        "their bytes cannot be verified"]
    meta["checksums"] = "blake2b-128"  # an artifact that promises checksums may not lack one
    (store.path / "meta.json").write_text(json.dumps(meta))
    assert verify_store(Store(store.path))[0] == ["1 of 1 videos have columns or attributes without a checksum"]


def test_completeness_follows_the_list_of_videos_and_old_artifacts_fall_back_to_a_count(tmp_path):
    listed = write(tmp_path / "a", {"videos": ["v/1", "v/2", "v/3"], "complete_with": "clawcrane x --cache {cache}"})
    c = listed.completeness()
    assert (c.expected, c.present, c.missing) == (3, 1, ["v/2", "v/3"]) and not c.complete
    assert listed.completeness(["v/1"]).complete  # a shard's videos
    with pytest.raises(CacheError) as err:
        listed.require_complete()
    assert str(err.value) == (f"{listed.path}: incomplete artifact, 1 of 3 videos done (2 missing: v/2, v/3); the run that "
                              f"wrote it was killed or failed, or some of its shards have not run yet: complete it with `clawcrane x --cache {listed.path.parent}` "
                              "(it resumes where it stopped; with --shard or a SLURM array, re-running the failed "
                              "shard's task does the same for its videos)")
    counted = write(tmp_path / "b", {"stage": "detect", "dataset": {"num_videos": 2}})  # schema 1 of detect
    assert counted.completeness().missing_count == 1
    assert write(tmp_path / "c").completeness().complete  # nothing recorded: nothing to tell


def test_a_detector_that_fails_to_build_leaves_no_artifact_folder(tmp_path):
    write_videos(tmp_path / "data", n=2)

    def broken(*a, **k):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError):
        stage.run(DetectConfig(detector="fake"), load_dataset(tmp_path / "data", n=2), tmp_path / "c",
                  detector_factory=broken, key_fn=fake_key)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


def test_the_command_an_incomplete_artifact_names_completes_that_same_artifact(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_videos(data, n=4)
    ds = load_dataset(data, n=4)
    cfg = DetectConfig(detector="oracle", frame_stride=2, score_threshold=0.25, dedup_iou=0.5)
    res = stage.run(cfg, ds, tmp_path / "c")
    store = Store(res.path)
    keep = [store.read(v) for v in store.video_ids()[:1]]
    (res.path / "data.h5").unlink()
    for rec in keep:
        Store(res.path).write_video(rec)
    with pytest.raises(CacheError, match="1 of 4 videos done") as err:
        Store(res.path).require_complete()
    cmd = str(err.value).split("complete it with `")[1].split("`")[0]
    assert cmd == f"clawcrane detect {data} --detector oracle --cache {tmp_path / 'c'} --frame-stride 2 --score-threshold 0.25 --dedup-iou 0.5"
    monkeypatch.setattr("clawcrane.datasets.open_dataset", lambda path, **kw: ds)
    r = CliRunner().invoke(main, ["--log-level", "error", *shlex.split(cmd)[1:]])
    assert r.exit_code == 0, r.output
    assert f"wrote: {res.path}" in r.output and "3 computed now" in r.output  # the same folder, resumed
    assert verify_store(Store(res.path)) == ([], [])


def test_option_flags_write_only_what_differs_from_the_defaults():
    assert option_flags(DetectConfig(detector="x")) == ""
    assert option_flags(DetectConfig(detector="x", frame_stride=3, train_frames="annotated")) == "--frame-stride 3 --train-frames annotated"
    assert option_flags(ExtractConfig(levels=("C4", "C5"), with_flip=True, weights="my w.pt"), ("levels", "with_flip", "weights")) == \
        "--levels C4,C5 --with-flip --weights 'my w.pt'"
    assert option_flags(TrackRankConfig(trm=False), ("trm",)) == "--no-trm"
