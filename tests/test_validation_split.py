"""Model selection never sees the test split: the validation videos, and train-head's blindness to test."""

from __future__ import annotations

import csv
import dataclasses
import shutil

import pytest
import torch
from helpers.head_world import colour_world

from clawcrane.build.heads import BEST, LAST
from clawcrane.cache.predictions import read_predictions
from clawcrane.config import DetectConfig, EvalConfig, ExtractConfig, HeadConfig, SynthConfig, TrackRankConfig, TrainHeadConfig
from clawcrane.datasets import open_dataset
from clawcrane.datasets.records import Dataset, Query
from clawcrane.datasets.splits import train_val_split, validation_videos
from clawcrane.errors import DataError
from clawcrane.stages import detect, evaluate, extract, synth, track_rank, train_head

pytestmark = pytest.mark.usefixtures("one_thread")


def test_validation_videos_depend_only_on_the_ids_and_the_fraction():
    ids = [f"v{i:03d}" for i in range(40)]
    picked = validation_videos(ids, 0.1)
    assert len(picked) == 4 and set(picked) <= set(ids)  # round(0.1 * 40)
    assert validation_videos(reversed(ids), 0.1) == picked  # order does not matter
    assert validation_videos(ids + ids[:5], 0.1) == picked  # duplicates do not matter
    # adding videos never moves an old one out of the hash order: the old picks stay among the first k
    more = validation_videos(ids + [f"w{i:03d}" for i in range(40)], 0.1)
    assert len(more) == 8
    assert validation_videos(ids, 0.0) == [] and validation_videos(ids[:1], 0.1) == []  # nothing, or nothing left to fit
    assert validation_videos(ids[:3], 0.1) == validation_videos(ids[:3], 0.01) and len(validation_videos(ids[:3], 0.1)) == 1
    with pytest.raises(ValueError, match="fraction"):
        validation_videos(ids, 1.0)


def test_a_datasets_own_val_split_is_used_instead_of_carving():
    q = lambda vid, split: Query(f"{vid}_1", vid, "the dog", "1", (0,), None, split)  # noqa: E731
    ds = Dataset("x", root=None, videos={}, queries=[q("a", "train"), q("b", "train"), q("c", "val"), q("d", "test")])
    s = train_val_split(ds, 0.5)
    assert s.source == "dataset" and [x.video_id for x in s.fit] == ["a", "b"] and [x.video_id for x in s.val] == ["c"]
    ds.queries = ds.queries[:2] + ds.queries[3:]  # no val split: half of the two train videos is carved out
    s = train_val_split(ds, 0.5)
    assert s.source == "carved" and len(s.val) == 1 and len(s.fit) == 1 and "d" not in {x.video_id for x in s.fit + s.val}


def _repoint_test_sentences(root) -> int:
    """In the A2D annotation file, move each test video's sentences to other instances of that video.

    Within a video the sentences rotate by one over its instance ids (a video with a single
    sentence hands it to another instance), and each gains a word no train sentence has: every
    test sentence now names a different object, the train rows are untouched. Returns the rows
    whose instance changed.
    """
    ann = root / "text_annotations" / "a2d_annotation.txt"
    rows = list(csv.reader(ann.open()))
    header, body = rows[0], rows[1:]
    test_videos = {r[0] for r in csv.reader((root / "Release" / "videoset.csv").open()) if r[8] == "1"}
    changed = 0
    for vid in sorted(test_videos):
        idx = [i for i, r in enumerate(body) if r[0] == vid]
        ids = [body[i][1] for i in idx]
        new = ids[1:] + ids[:1] if len(ids) > 1 else [str(int(ids[0]) % 2 + 1)]
        for i, inst in zip(idx, new):
            changed += body[i][1] != inst
            body[i][1] = inst
            body[i][2] = "this " + body[i][2]  # and a word no train sentence has
    with ann.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header] + body)
    types = root / "text_annotations" / "query_types.csv"
    if types.is_file():  # keep the type file keyed like the sentences
        trows = list(csv.reader(types.open()))
        kinds = {(r[0], r[1]): r for r in trows[1:]}
        out = [trows[0]] + [[r[0], r[1], *kinds.get((r[0], r[1]), ["", "", "appearance"])[2:]] for r in body]
        with types.open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(out)
    return changed


def test_train_head_is_blind_to_the_test_split(tmp_path):
    """A copy of the dataset whose test sentences point at other objects trains the same head, bit for bit.

    Everything in best.pt and last.pt (weights, optimizer, schedule, RNG states, history with its
    validation scores, vocabulary, counts, the validation videos) must be equal; only the record
    of which dataset folder and annotation fingerprint the head came from may differ, and with it
    the keys of the caches (train-head refuses caches of another fingerprint, so each copy gets
    its own detect + extract, which read no sentence either).
    """
    data = tmp_path / "data"
    synth.run(SynthConfig(preset="tiny", seed=0, workers=1), data)
    copy = tmp_path / "data-repointed"
    shutil.copytree(data, copy)
    assert _repoint_test_sentences(copy) >= 4
    original, repointed = open_dataset(data), open_dataset(copy)
    before = {(q.video_id, q.sentence): q.instance_id for q in original.split_queries("test")}
    after = {(q.video_id, q.sentence.removeprefix("this ")): q.instance_id for q in repointed.split_queries("test")}
    assert before.keys() == after.keys() and sum(before[k] != after[k] for k in before) >= 4
    assert original.fingerprint != repointed.fingerprint

    features = {}
    for name, ds in (("original", original), ("repointed", repointed)):
        cache = tmp_path / f"cache-{name}"
        det = detect.run(DetectConfig(detector="oracle", frame_stride=8, device="cpu"), ds, cache)
        features[name] = extract.run(ExtractConfig(backbone="resnet18", weights="none", input_size=64, with_flip=True, cache=str(cache),
                                                   candidates=str(det.path), device="cpu"), dataset=ds).path
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=32, word_dim=16, lstm_hidden=16), epochs=3, batch_size=8, lr=3e-3, device="cpu")
    a = train_head.run(cfg, original, features=features["original"], out=tmp_path / "a")
    b = train_head.run(cfg, repointed, features=features["repointed"], out=tmp_path / "b")
    assert a.counts["val"]["used"] > 0 and b.counts == a.counts  # the selection really scored held-out videos

    for name in (BEST, LAST):
        pa, pb = (torch.load(run / name, weights_only=True) for run in (tmp_path / "a", tmp_path / "b"))
        for where in ("dataset", "feature_key", "feature_meta", "candidate_key"):  # which dataset and caches
            assert pa.pop(where) != pb.pop(where), where
        assert pa.keys() == pb.keys()
        for key in pa:
            _assert_identical(pa[key], pb[key], key)


def _assert_identical(x, y, where: str) -> None:
    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y), where
    elif isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), where
        for k in x:
            _assert_identical(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        assert type(x) is type(y) and len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_identical(u, v, f"{where}[{i}]")
    else:
        assert x == y, where


def test_track_rank_and_evaluate_score_the_heads_validation_videos(tmp_path):
    dataset, features, _ = colour_world(tmp_path)
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=32, word_dim=16, lstm_hidden=16), epochs=1, batch_size=4, lr=3e-3, device="cpu")
    train_head.run(cfg, dataset, features=features, out=tmp_path / "run")
    val = track_rank.run(TrackRankConfig(split="val", device="cpu"), dataset, head=tmp_path / "run", features=features,
                         out=tmp_path / "val.parquet")
    assert val.videos == 1 and val.queries == 3  # vid02, the one validation video: its three objects
    res = evaluate.run(EvalConfig(split="val", j_and_f="off"), predictions=val.out, dataset=dataset, out_dir=tmp_path / "ev")
    assert res.metrics["samples"] == 3 * 2
    test = track_rank.run(TrackRankConfig(split="test", device="cpu"), dataset, head=tmp_path / "run", features=features,
                          out=tmp_path / "test.parquet")
    assert "vid02" not in {q.split("_")[0] for q in read_predictions(test.out).query_ids()}  # a train video
    cfg0 = dataclasses.replace(cfg, val_fraction=0.0)
    train_head.run(cfg0, dataset, features=features, out=tmp_path / "noval")
    with pytest.raises(DataError, match="no validation videos"):
        track_rank.run(TrackRankConfig(split="val", device="cpu"), dataset, head=tmp_path / "noval", features=features,
                       out=tmp_path / "x.parquet")


def test_evaluate_refuses_a_split_the_predictions_do_not_hold(tmp_path):
    dataset, features, _ = colour_world(tmp_path)
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=32, word_dim=16, lstm_hidden=16), epochs=1, batch_size=4, lr=3e-3, device="cpu")
    train_head.run(cfg, dataset, features=features, out=tmp_path / "run")
    test = track_rank.run(TrackRankConfig(split="test", device="cpu"), dataset, head=tmp_path / "run", features=features,
                          out=tmp_path / "test.parquet")
    for wrong in ("val", "train", "all"):  # test predictions hold none (or not all) of these queries
        with pytest.raises(DataError, match=f"made for split 'test'.*--split {wrong}"):
            evaluate.run(EvalConfig(split=wrong, j_and_f="off"), predictions=test.out, dataset=dataset, out_dir=tmp_path / "e")
    train = track_rank.run(TrackRankConfig(split="train", device="cpu"), dataset, head=tmp_path / "run", features=features,
                           out=tmp_path / "train.parquet")
    res = evaluate.run(EvalConfig(split="val", j_and_f="off"), predictions=train.out, dataset=dataset)
    assert res.metrics["samples"] == 3 * 2 and res.out_dir.name == "train-eval-val"  # train holds val; no overwrite of -eval
