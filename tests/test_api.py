"""The Python API (``clawcrane.api``): a session answers a sentence as `track-rank` does, from tensors in memory.

One tiny world through the real stages (`data synth --preset tiny`, oracle candidates, resnet18
with seeded random weights at 64 px, a head trained 1 epoch), shared by the module.
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
import pytest
import torch
from helpers.head_world import tiny_stage_world

from clawcrane import api
from clawcrane.api import Result, VideoSession
from clawcrane.cache.predictions import read_predictions
from clawcrane.config import TrackRankConfig
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.stages import track_rank

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(dataset, feature artifact, head run, predictions of every query by track-rank)."""
    tmp = tmp_path_factory.mktemp("api")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    ds, features = tiny_stage_world(tmp)
    pred = track_rank.run(TrackRankConfig(split="all", device="cpu"), ds, head=tmp / "head", features=features,
                          out=tmp / "P.parquet").out
    torch.set_num_threads(n)
    return ds, features, tmp / "head", read_predictions(pred)


def _answers(preds, query_id):
    """frame -> (candidate id, score) of the rank-0 row of ``query_id`` in a predictions file."""
    (t,) = [t for q, t in preds.groups() if q == query_id]
    return {r["frame"]: (r["candidate_id"], r["rle"]) for r in t.to_pylist() if r["rank"] == 0}


def test_a_session_answers_every_query_exactly_as_track_rank_does(world):
    ds, features, head, preds = world
    for vid in sorted(ds.videos)[:3]:
        session = VideoSession(head=head, features=features, video_id=vid, dataset=ds)
        for q in [q for q in ds.queries if q.video_id == vid]:
            r = session.query(q.sentence)
            # same head, same cached tensors, same TRM options: the same answer on every frame
            want = _answers(preds, q.query_id)
            assert sorted(want) == r.frames
            got = {f: c["segmentation"]["counts"].encode() if c["segmentation"] else None for f, c in zip(r.frames, r.to_coco_rle())}
            for f, (cand, rle) in want.items():
                assert got[f] == (rle if cand >= 0 else None)


def test_a_video_over_the_context_budget_is_answered_the_same_without_a_cached_context(world, monkeypatch):
    ds, features, head, _ = world
    vid = sorted(ds.videos)[0]
    sentences = [q.sentence for q in ds.queries if q.video_id == vid]
    cached = VideoSession(head=head, features=features, video_id=vid, dataset=ds)
    want = [r.to_coco_rle() for r in cached.query_all(sentences)]
    assert cached._context is not None  # a tiny video: its sentence-free work is kept
    monkeypatch.setattr(api, "CONTEXT_BUDGET", 0)
    uncached = VideoSession(head=head, features=features, video_id=vid, dataset=ds)
    assert [r.to_coco_rle() for r in uncached.query_all(sentences)] == want
    assert uncached._context is None  # recomputed per call instead


def test_the_reported_score_is_the_one_abstain_below_compares(world):
    # Result.score (and segments.json's) is the best track's score in the TRM's score mode: a threshold just
    # above it abstains, one just below answers. A mean over the submitted rows (fallback candidates' own
    # scores mixed in) could sit below a threshold that still answers.
    ds, features, head, _ = world
    vid = sorted(ds.videos)[0]
    sentence = next(q.sentence for q in ds.queries if q.video_id == vid)
    for mode in ("max", "mean"):
        r = VideoSession(head=head, features=features, video_id=vid, dataset=ds,
                         track=TrackRankConfig(device="cpu", score_mode=mode)).query(sentence)
        assert r.score is not None and r.tracks()[0].track_id == r.answer_track
        for delta, answered in ((1e-6, False), (-1e-6, True)):
            cut = TrackRankConfig(device="cpu", score_mode=mode, abstain_below=r.score + delta)
            again = VideoSession(head=head, features=features, video_id=vid, dataset=ds, track=cut).query(sentence)
            assert (again.score is not None) == answered, (mode, delta)


def test_without_the_trm_an_answered_query_still_has_a_score(world):
    # no tracks without the TRM; the score is then the best answered frame's, so None keeps meaning "no answer"
    ds, features, head, _ = world
    vid = sorted(ds.videos)[0]
    sentence = next(q.sentence for q in ds.queries if q.video_id == vid)
    r = VideoSession(head=head, features=features, video_id=vid, dataset=ds,
                     track=TrackRankConfig(device="cpu", trm=False)).query(sentence)
    best = max(s.score for subs in r.submissions for s in subs if s.rank == 0 and s.k >= 0)
    assert r.tracks() == [] and r.score == best


def test_result_views_agree_with_each_other(world, tmp_path):
    ds, features, head, _ = world
    vid = sorted(ds.videos)[0]
    session = VideoSession(head=head, features=features, video_id=vid, dataset=ds)
    r = session.query(next(q.sentence for q in ds.queries if q.video_id == vid))
    assert isinstance(r, Result) and r.query_id == "q1"
    T, H, W = len(r.frames), ds.videos[vid].height, ds.videos[vid].width
    masks = r.masks()
    assert masks.shape == (T, H, W) and masks.dtype == bool and masks.any()
    for t, item in enumerate(r.to_coco_rle()):
        decoded = mask_ops.decode(item["segmentation"]) if item["segmentation"] else np.zeros((H, W), bool)
        assert np.array_equal(decoded, masks[t]) and np.array_equal(r.mask(item["frame"]), masks[t])
    pngs = sorted(r.to_png(tmp_path / "png").glob("*.png"))
    assert len(pngs) == T
    assert all(np.array_equal(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0, m) for p, m in zip(pngs, masks))
    tracks = r.tracks()
    assert tracks[0].rank == 0 and r.score == tracks[0].score and np.isfinite(r.score)
    assert [t.rank for t in tracks] == list(range(len(tracks)))
    with pytest.raises(ValueError, match="not processed"):
        r.mask(10_000)
    mp4 = r.overlay(tmp_path / "o" / "answer.mp4")
    cap = cv2.VideoCapture(str(mp4))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == ds.videos[vid].num_frames  # every source frame, drawn
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["answer.mp4"]  # no temporary left


def test_a_sentence_of_mostly_unknown_words_is_answered_with_a_warning_naming_them(world, caplog):
    ds, features, head, _ = world
    session = VideoSession(head=head, features=features, video_id=sorted(ds.videos)[0], dataset=ds)
    with caplog.at_level(logging.WARNING, logger="clawcrane.api"):
        r = session.query("the zorgle blimp")
    # 'the' is in every tiny-world sentence; the two made-up words are not: 2 of 3 unknown -> warned
    assert r.unknown_words == ("zorgle", "blimp")
    assert any("zorgle" in m and "blimp" in m and "2 of 3" in m for m in caplog.messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clawcrane.api"):
        session.query(ds.queries[0].sentence)
    assert not caplog.messages


def test_query_all_numbers_queries_and_an_empty_sentence_is_refused(world):
    ds, features, head, _ = world
    session = VideoSession(head=head, features=features, video_id=sorted(ds.videos)[0], dataset=ds)
    rs = session.query_all(["a", "b"])
    assert [r.query_id for r in rs] == ["q1", "q2"] and session.query("c").query_id == "q3"
    for wordless in ("  ", "!!!", "\u200b", "\U0001f436"):  # no letter or digit: nothing a head can read
        with pytest.raises(ConfigError, match="at least one word"):
            session.query(wordless)
    with pytest.raises(ConfigError, match="holds"):
        VideoSession(head=head, features=features)  # several videos: which one must be said


def test_query_all_refuses_what_it_would_misread_before_any_work(world):
    ds, features, head, _ = world
    session = VideoSession(head=head, features=features, video_id=sorted(ds.videos)[0], dataset=ds)
    # a bare string is a sequence of characters: answering 'r', 'e', 'd' ... would be silently wrong
    with pytest.raises(ConfigError, match="list of sentences"):
        session.query_all("the red ball")
    with pytest.raises(ConfigError, match="list of sentences"):
        session.query_all(None)
    with pytest.raises(ConfigError, match="must be strings"):
        session.query_all(["the red ball", 3])
    with pytest.raises(ConfigError, match="one id per sentence"):
        session.query_all(["a"], query_ids=(q for q in ["x"]))  # a generator has no length to check
    with pytest.raises(ConfigError, match="one sentence"):
        session.query(["the red ball"])
    # zip() would drop the third sentence without a word
    with pytest.raises(ConfigError, match="one id per sentence"):
        session.query_all(["a", "b", "c"], query_ids=["x", "y"])
    with pytest.raises(ConfigError, match="unique"):
        session.query_all(["a", "b"], query_ids=["x", "x"])
    # ids name output folders (masks/<query_id>/): a path would write outside them
    for bad in ("../escape", "/tmp/abs", "a/b", "", ".hidden"):
        with pytest.raises(DataError, match="cannot name an output folder"):
            session.query_all(["a"], query_ids=[bad])
    assert session.query("a", query_id="my-query_1.v2").query_id == "my-query_1.v2"
    with pytest.raises(DataError, match="is 300 characters long; .* at most 100"):  # says why, not only what
        session.query_all(["a"], query_ids=["q" * 300])


def test_a_sentence_longer_than_the_head_reads_is_answered_with_a_warning(world, caplog):
    ds, features, head, _ = world
    session = VideoSession(head=head, features=features, video_id=sorted(ds.videos)[0], dataset=ds)
    limit = session.head_config.max_words
    words = ["the"] * limit + ["ball"]  # one word past the limit: 'ball' is never read
    with caplog.at_level(logging.WARNING, logger="clawcrane.api"):
        session.query(" ".join(words))
    assert any(f"only the first {limit}" in m and "'ball'" in m for m in caplog.messages), caplog.messages
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clawcrane.api"):
        session.query(" ".join(["the"] * limit))
    assert not [m for m in caplog.messages if "only the first" in m]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clawcrane.api"):  # 5,000 words: the warning quotes the start only
        session.query("red " * 5000)
    (long,) = [m for m in caplog.messages if "only the first" in m]
    assert len(long) < 400 and "(20000 characters)" in long


def test_session_checks_its_dataset_cache_and_frames(world, tmp_path):
    ds, features, head, _ = world
    vid = sorted(ds.videos)[0]
    with pytest.raises(ConfigError, match="takes a clawcrane Dataset"):
        VideoSession(head=head, features=features, video_id=vid, dataset=str(ds.root))
    other = dataclasses.replace(ds, fingerprint="another", annotation_fingerprint="another")
    with pytest.raises(CacheError, match="pass the --dataset the caches were built from"):
        VideoSession(head=head, features=features, video_id=vid, dataset=other)
    # without the dataset the session answers, but cannot draw: a one-line error, not a traceback
    r = VideoSession(head=head, features=features, video_id=vid).query("the ball")
    with pytest.raises(ConfigError, match="frames of video"):
        r.overlay(tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(ConfigError, match=r"a session opens one video .* not a dataset \(a2d layout\); for a video of an extracted"):
        VideoSession.open(ds.root, head=head, detector="oracle")  # the dataset folder, not one of its clips
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a cache folder"):
        VideoSession.open(tmp_path / "v.mp4", head=head, detector="oracle", cache=afile)


def test_a_session_keeps_every_imported_mask_whatever_its_score(tmp_path, monkeypatch):
    from helpers.dataset_builders import make_clip

    from clawcrane import api

    seen = []

    class Stop(Exception):
        pass

    def capture(config, *a, **k):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(api.detect, "run", capture)
    clip = make_clip(tmp_path / "clip.mp4")
    head = tmp_path / "head.pt"
    torch.save({}, head)
    monkeypatch.setattr(api, "load_head", lambda p: (None, None, None, {}))
    for spec, floor in ((f"import:{tmp_path / 'masks.json'}", 0.0), ("runs/det/final.pt", 0.3)):
        with pytest.raises(Stop):
            VideoSession.open(clip, head=head, detector=spec, cache=tmp_path / "cache")
        # imported scores are another system's scale (an export's are ~0.05): none is dropped by detect's 0.3
        assert seen[-1].score_threshold == floor
