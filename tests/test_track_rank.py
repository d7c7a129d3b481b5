"""track-rank: head scoring over a video, ranked submissions, the stage end to end, the CLI."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.head_world import FRAMES, H, W, colour_world

import clawcrane.datasets
from clawcrane.build.heads import load_head
from clawcrane.build.text import sentence_inputs
from clawcrane.cache import predictions as P
from clawcrane.cache.candidates import VideoCandidates, open_candidates
from clawcrane.cache.features import VideoFeatures, open_features
from clawcrane.cache.store import Store
from clawcrane.cli import main
from clawcrane.config import EvalConfig, HeadConfig, TrackRankConfig, TrainHeadConfig, key_config
from clawcrane.datasets.records import Dataset, Query, Video
from clawcrane.errors import ConfigError
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import metrics as M
from clawcrane.pipeline import ranking
from clawcrane.pipeline import tracking as trm
from clawcrane.pipeline.head import RetrievalHead
from clawcrane.pipeline.scoring import score_video, video_context
from clawcrane.stages import evaluate, track_rank, train_head

pytestmark = pytest.mark.usefixtures("one_thread")


def add_empty_videos(dataset: Dataset, root) -> None:
    """Test video 'nocand' was processed (frames 0, 2) but has no candidate; 'absent' is in no cache."""
    cand, feat = (Store(p) for p in sorted(root.glob("detect-*")) + sorted(root.glob("extract-*")))
    cand.write_video(VideoCandidates(
        video_id="nocand", height=H, width=W, num_frames=3, frames=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32),
        scores=np.zeros(0, np.float32), class_ids=np.zeros(0, np.int32), rles=[], processed_frames=np.array(FRAMES, np.int32),
    ).to_record())
    feat.write_video(VideoFeatures(video_id="nocand", frames=np.zeros(0, np.int32), feat=np.zeros((0, 8), np.float16),
                                   pos=np.zeros((0, 10), np.float32)).to_record())
    for vid in ("nocand", "absent"):
        dataset.videos[vid] = Video(vid, None, 5.0, W, H, 3, "test")
        empty = np.zeros((H, W), bool)
        empty[0:6, 0:6] = True
        dataset.queries.append(Query(f"{vid}_0", vid, "the red ball", "0", FRAMES, "appearance", "test", lambda f, m=empty: m))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(dataset, feature folder, head run folder): colour_world + two empty test videos + a head trained 2 epochs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("world")
    dataset, features, root = colour_world(tmp, write_videos=False)
    add_empty_videos(dataset, root)
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=32, word_dim=16, lstm_hidden=16, motion=False), epochs=2, batch_size=4, lr=3e-3, device="cpu")
    train_head.run(cfg, dataset, features=features, out=tmp / "run")
    torch.set_num_threads(n)
    return dataset, features, tmp / "run"


def predict(world, tmp_path, name="p.parquet", **kw):
    dataset, features, run = world
    config = TrackRankConfig(device="cpu", **kw)
    res = track_rank.run(config, dataset, head=run, features=features, out=tmp_path / name)
    return res, P.read_predictions(res.out)


def rows_of(pred: P.Predictions) -> list[dict]:
    return pred.table.to_pylist()


# ---- pipeline.scoring -------------------------------------------------------------------------


@pytest.mark.parametrize("relation,ranks,motion", [
    ("none", False, False), ("vanilla", False, False), ("text", False, False), ("text-linear", False, False),
    ("text-geo", False, False), ("none", True, False), ("vanilla", True, True), ("text-geo", True, True),
    ("none", False, True),
])
def test_score_video_equals_the_heads_own_forward_for_every_pair(relation, ranks, motion):
    """Shared per-video / per-query work must not change a number: compare with forward() pair by pair."""
    torch.manual_seed(0)
    config = HeadConfig(relation=relation, ranks=ranks, motion=motion, embed_dim=8, word_dim=6, lstm_hidden=5)
    model = RetrievalHead(config=config, vocab_size=9, feat_dim=4)
    model.eval()
    T, N, C, Q = 3, 4, 4, 2  # frames, candidates, channels, queries
    feat, pos = torch.randn(T, N, C), torch.rand(T, N, model.pos_width)
    valid = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    text, lengths = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
    emb, sim = score_video(model, text, lengths, feat, pos, valid, batch_size=2)  # 2 pairs a batch: 3 batches
    assert emb.shape == (Q, T, N, 8) and sim.shape == (Q, T, N)
    with torch.no_grad():
        for q in range(Q):
            for t in range(T):
                args = (text[q : q + 1], lengths[q : q + 1], feat[t : t + 1] * valid[t, :, None], pos[t : t + 1] * valid[t, :, None], valid[t : t + 1])
                torch.testing.assert_close(sim[q, t], model(*args)[0])
                torch.testing.assert_close(emb[q, t], model.embed_objects(*args)[0])
    # a session's cached video_context gives the same numbers, whatever the chunking, and for one query
    # (frames sliced, not gathered)
    context = video_context(model, feat, pos, valid)
    for batch_size in (1, 3, 512):
        emb2, sim2 = score_video(model, text, lengths, feat, pos, valid, batch_size=batch_size, context=context)
        torch.testing.assert_close(emb2, emb)
        torch.testing.assert_close(sim2, sim)
    emb1, sim1 = score_video(model, text[1:], lengths[1:], feat, pos, valid, batch_size=2, context=context)
    torch.testing.assert_close(emb1[0], emb[1])
    torch.testing.assert_close(sim1[0], sim[1])


# ---- pipeline.ranking -------------------------------------------------------------------------


def test_answer_row_outscores_runners_up_so_evaluate_takes_rank_0(tmp_path):
    """Frame 2: the best track (0.9) is absent, the fallback candidate 0 has its own score 0.5, and track B
    (score 0.7) is there with candidate 1. Without capping, evaluate (highest score first) would take B's
    mask; rank 0 must win: B's row is lowered to the largest float32 below 0.5, so no tie is left to break."""
    A = trm.Track(0, [(0, 0), (1, 0)], [0.9, 0.9])
    B = trm.Track(1, [(1, 1), (2, 1)], [0.8, 0.6])
    scores = [np.array([0.9]), np.array([0.4, 0.8]), np.array([0.5, 0.3])]
    result = trm.TrackResult(tracks=[A, B], answers=trm.frame_answers([A, B], scores))
    subs = ranking.track_submissions(result, top_k=5)
    assert [(s.k, s.rank, s.track_id) for s in subs[2]] == [(0, 0, -1), (1, 1, 1)]
    assert subs[2][0].score == np.float32(0.5) and subs[2][1].score == np.nextafter(np.float32(0.5), np.float32(0))  # 0.7 capped
    assert np.float32(subs[2][1].score) < np.float32(subs[2][0].score)  # strictly, also once stored as float32
    assert [(s.k, s.score) for s in subs[1]] == [(0, pytest.approx(0.9)), (1, pytest.approx(0.7))]  # already ordered

    # evaluate on these rows: the rank-0 masks are exactly the GT, runner-ups are elsewhere -> all IoU 1
    gt = {t: np.zeros((H, W), bool) for t in range(3)}
    for t in gt:
        gt[t][2:8, 4 * t : 4 * t + 6] = True
    cols = {c: [] for c in P.COLUMNS}
    for t, frame_subs in enumerate(subs):
        for s in frame_subs:
            mask = gt[t] if s.rank == 0 else np.roll(gt[t], 12, axis=1)
            for c, v in zip(P.COLUMNS, ("v_0", "v", t, s.track_id, s.k, s.score, s.rank, H, W, mask_ops.encode(mask)["counts"])):
                cols[c].append(v)
    path = P.write_predictions(tmp_path / "p.parquet", cols, {"key": "k", "dataset": {"fingerprint": "fp"}})
    ds = Dataset("synthetic", tmp_path, {"v": Video("v", None, 5.0, W, H, 3, "test")},
                 [Query("v_0", "v", "the box", "0", (0, 1, 2), None, "test", lambda f: gt[f])], fingerprint="fp")
    samples, _ = evaluate.collect_samples(P.read_predictions(path), ds, "test")
    assert len(samples) == 3 and all(M.intersection_union(s.top1(), s.gt) == (36, 36) for s in samples)


def test_argmax_submissions_rank_candidates_and_abstain_below_threshold():
    subs = ranking.argmax_submissions([np.array([0.2, 0.7, 0.7, 0.1]), np.array([]), np.array([0.1])], top_k=3, abstain_below=0.15)
    assert [(s.k, s.rank) for s in subs[0]] == [(1, 0), (2, 1), (0, 2)]  # ties: the lower index first, as np.argmax
    # ... and the tied runner-up is lowered by one float32 step: scores strictly decrease with the rank
    assert subs[0][0].score == np.float32(0.7) and subs[0][1].score == np.nextafter(np.float32(0.7), np.float32(0))
    assert subs[0][2].score == np.float32(0.2)
    assert subs[1][0].k == -1 and math.isnan(subs[1][0].score)  # no candidates: an abstention
    assert subs[2][0].k == -1  # 0.1 < 0.15


# ---- the stage --------------------------------------------------------------------------------


def test_track_rank_writes_one_answer_per_query_and_processed_frame_with_the_candidate_masks(world, tmp_path):
    dataset, features, run = world
    res, pred = predict(world, tmp_path)
    assert pred.table.schema.remove_metadata() == P.SCHEMA_FIELDS
    test_queries = [q for q in dataset.queries if q.split == "test"]
    assert res.queries == len(test_queries) == pred.meta["counts"]["queries"]
    cands = open_candidates(features.parent)
    assert pred.meta["upstream"]["features"] == open_features(features).key
    assert pred.meta["upstream"]["candidates"] == cands.key and pred.meta["dataset"]["fingerprint"] == "fp"
    rows = rows_of(pred)
    for q in test_queries:
        answers = sorted(r["frame"] for r in rows if r["query_id"] == q.query_id and r["rank"] == 0)
        assert answers == list(FRAMES), q.query_id  # every processed frame exactly once
    checked = 0
    for r in rows:
        if r["candidate_id"] >= 0:
            vc = cands.video(r["video_id"])
            assert vc.frames[r["candidate_id"]] == r["frame"]
            decoded = mask_ops.decode({"size": [r["height"], r["width"]], "counts": r["rle"]})
            np.testing.assert_array_equal(decoded, vc.masks([r["candidate_id"]])[0])
            checked += 1
    assert checked > 0
    for r in rows:  # within a (query, frame) the ranks are 0..n-1 and the scores never increase
        same = sorted((x for x in rows if (x["query_id"], x["frame"]) == (r["query_id"], r["frame"])), key=lambda x: x["rank"])
        assert [x["rank"] for x in same] == list(range(len(same)))
        assert all(a["score"] >= b["score"] for a, b in zip(same, same[1:]))


def test_second_run_with_the_same_inputs_is_up_to_date_and_options_change_the_key(world, tmp_path):
    first, _ = predict(world, tmp_path)
    again, _ = predict(world, tmp_path)
    assert again.hit and again.key == first.key and again.rows == first.rows
    other, _ = predict(world, tmp_path, gamma=0.5)
    assert not other.hit and other.key != first.key
    same, _ = predict(world, tmp_path, gamma=0.5, batch_size=3)  # runtime options stay out of the key
    assert same.hit


def test_no_trm_answers_each_frame_with_the_heads_argmax(world, tmp_path):
    dataset, features, run = world
    _, pred = predict(world, tmp_path, trm=False, top_k=2)
    model, hcfg, vocab, _ = load_head(run / "best.pt")
    fc, cands = open_features(features), open_candidates(features.parent)
    rows = rows_of(pred)
    compared = 0
    for q in dataset.queries:
        if q.split != "test" or q.video_id in ("nocand", "absent"):
            continue
        text, lengths = sentence_inputs(hcfg, vocab, [q.sentence], cache_root=features.parent)
        vf, vc = fc.video(q.video_id), cands.video(q.video_id)
        frame_scores = []
        for f in FRAMES:
            r = vc.frame_rows(f)
            with torch.no_grad():
                s = model(text, lengths, torch.as_tensor(vf.feat[r], dtype=torch.float32)[None],
                          torch.as_tensor(vf.pos[r])[None], torch.ones(1, len(r), dtype=torch.bool))[0]
            frame_scores.append((r, s.numpy()))
        expected = trm.frame_argmax([s for _, s in frame_scores])
        for f, (r, _), ans in zip(FRAMES, frame_scores, expected):
            mine = [x for x in rows if x["query_id"] == q.query_id and x["frame"] == f]
            assert len(mine) == 2 and all(x["track_id"] == -1 for x in mine)
            assert next(x for x in mine if x["rank"] == 0)["candidate_id"] == r[ans.k]
            compared += 1
    assert compared == (3 * 3 + 1) * 2  # 3 test videos x 3 objects + the missed-object query, x 2 frames


def test_top_k_limits_the_rows_of_each_query_and_frame(world, tmp_path):
    _, wide = predict(world, tmp_path, "wide.parquet", top_k=5)
    _, narrow = predict(world, tmp_path, "narrow.parquet", top_k=1)

    def per_frame(pred):
        counts = {}
        for r in rows_of(pred):
            counts[(r["query_id"], r["frame"])] = counts.get((r["query_id"], r["frame"]), 0) + 1
        return counts

    assert max(per_frame(wide).values()) > 1  # three candidates a frame: more than one track to submit
    assert set(per_frame(narrow).values()) == {1}
    assert all(r["rank"] == 0 for r in rows_of(narrow))
    wide_answers = {(r["query_id"], r["frame"]): r["candidate_id"] for r in rows_of(wide) if r["rank"] == 0}
    assert wide_answers == {(r["query_id"], r["frame"]): r["candidate_id"] for r in rows_of(narrow)}  # same answers


def test_abstain_below_gives_no_masks_and_evaluate_scores_them_as_empty(world, tmp_path):
    dataset = world[0]
    res, pred = predict(world, tmp_path, abstain_below=1.5)  # a cosine never exceeds 1
    rows = rows_of(pred)
    assert res.abstained == res.queries and all(r["candidate_id"] == -1 and r["rank"] == 0 for r in rows)
    assert all(math.isnan(r["score"]) for r in rows)
    assert not any(mask_ops.decode({"size": [r["height"], r["width"]], "counts": r["rle"]}).any() for r in rows)
    ev = evaluate.run(EvalConfig(j_and_f="off"), predictions=res.out, dataset=dataset, out_dir=tmp_path / "ev")
    assert ev.missing == [] and ev.metrics["P@0.5"] == 0.0 and ev.metrics["mean_iou"] < 1e-6


def test_videos_without_candidates_give_empty_masks_not_a_crash(world, tmp_path):
    _, pred = predict(world, tmp_path)
    rows = rows_of(pred)
    for vid in ("nocand", "absent"):
        mine = [r for r in rows if r["video_id"] == vid]
        assert sorted(r["frame"] for r in mine) == list(FRAMES)  # processed frames; for 'absent' its annotated ones
        assert all(r["candidate_id"] == -1 and math.isnan(r["score"]) and (r["height"], r["width"]) == (H, W) for r in mine)


def test_head_of_another_backbone_is_refused_in_one_line(world, tmp_path, monkeypatch):
    dataset, features, run = world
    root = tmp_path / "cache"
    shutil.copytree(features.parent, root)
    meta = root / features.name / "meta.json"
    meta.write_text(meta.read_text().replace('"planted"', '"resnet50"'))
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, **kw: dataset, raising=False)
    r = CliRunner().invoke(main, ["--log-level", "error", "track-rank", "--head", str(run), "--features", str(root / features.name),
                                  "--dataset", str(tmp_path), "--out", str(tmp_path / "p.parquet"), "--device", "cpu"])
    assert r.exit_code == 1
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "backbone=resnet50" in lines[0] and "clawcrane extract --backbone planted" in lines[0]
    assert not (tmp_path / "p.parquet").exists()


def test_cli_track_rank_then_evaluate_end_to_end(world, tmp_path, monkeypatch):
    dataset, features, run = world
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, **kw: dataset, raising=False)
    pred = tmp_path / "pred.parquet"
    r = CliRunner().invoke(main, ["--log-level", "error", "track-rank", "--head", str(run), "--features", str(features),
                                  "--dataset", str(tmp_path), "--out", str(pred), "--device", "cpu", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    assert "queries/s" in r.output and f"wrote {pred}" in r.output
    r = CliRunner().invoke(main, ["--log-level", "error", "evaluate", str(pred), "--dataset", str(tmp_path), "--j-and-f", "off"])
    assert r.exit_code == 0, r.output
    assert "P@0.5" in r.output and (tmp_path / "pred-eval" / "metrics.json").is_file()


# ---- --tracks imported: the proposer's track ids seed the TRM ------------------------------------


def with_track_ids(world, tmp_path):
    """A copy of the world's caches whose candidates carry track ids (as `detect --detector import:KIND:PATH`
    stores them) that cross colours: colour c is id c in frame 0 and id (c + 1) % 3 in frame 2."""
    features = world[1]
    root = tmp_path / "cache"
    shutil.copytree(features.parent, root)
    store = Store(next(root.glob("detect-*")))
    for vid in store.video_ids():
        vc = VideoCandidates.from_record(store.read(vid))
        if len(vc):  # colour_world: per frame the candidates are red, green, blue in that order
            colour = np.arange(len(vc)) % 3
            vc.track_ids = np.where(vc.frames == FRAMES[0], colour, (colour + 1) % 3).astype(np.int32)
            store.write_video(vc.to_record())
    return root / features.name


def tracks_by_query(pred: P.Predictions) -> dict[tuple[str, int], list[int]]:
    """(query, track) -> the candidates of the track's rows, in frame order."""
    out: dict[tuple[str, int], list[int]] = {}
    for r in sorted(rows_of(pred), key=lambda r: r["frame"]):
        if r["track_id"] >= 0:
            out.setdefault((r["query_id"], r["track_id"]), []).append(r["candidate_id"])
    return out


def test_imported_track_ids_seed_the_tracks_and_the_default_ignores_them(world, tmp_path):
    dataset, features, run = world
    seeded = with_track_ids(world, tmp_path)
    plain, plain_pred = predict(world, tmp_path, "plain.parquet")
    default = track_rank.run(TrackRankConfig(device="cpu"), dataset, head=run, features=seeded, out=tmp_path / "d.parquet")
    imported = track_rank.run(TrackRankConfig(device="cpu", tracks="imported"), dataset, head=run, features=seeded,
                              out=tmp_path / "i.parquet")
    assert default.key == plain.key and imported.key != plain.key  # the default leaves existing keys as they were
    def comparable(pred):
        return [dict(r, score=None if math.isnan(r["score"]) else r["score"]) for r in rows_of(pred)]

    assert comparable(P.read_predictions(default.out)) == comparable(plain_pred)  # ... and the predictions too
    ids = {vid: VideoCandidates.from_record(Store(next(seeded.parent.glob("detect-*"))).read(vid)).track_ids
           for vid in ("vid06", "vid07", "vid08")}

    def id_of(qid, cand):
        return int(ids[qid.rsplit("_", 1)[0]][cand])

    two_frame = lambda pred: {k: c for k, c in tracks_by_query(pred).items() if len(c) == 2 and k[0][:5] in ids}  # noqa: E731
    by_id, by_trm = two_frame(P.read_predictions(imported.out)), two_frame(plain_pred)
    assert by_id and by_trm
    assert all(id_of(q, a) == id_of(q, b) for (q, _), (a, b) in by_id.items())  # one imported id per track
    # rows 0-2 are red, green, blue in frame 0 (ids 0, 1, 2), rows 3-5 in frame 2 (ids 1, 2, 0)
    assert {tuple(c) for c in by_id.values()} == {(0, 5), (1, 3), (2, 4)}
    assert not any(id_of(q, a) == id_of(q, b) for (q, _), (a, b) in by_trm.items())  # the TRM's own links differ


def test_tracks_imported_over_a_cache_without_track_ids_is_refused_in_one_line(world, tmp_path):
    dataset, features, run = world
    with pytest.raises(ConfigError) as err:
        track_rank.run(TrackRankConfig(device="cpu", tracks="imported"), dataset, head=run, features=features,
                       out=tmp_path / "p.parquet")
    msg = str(err.value)
    assert "\n" not in msg and str(open_candidates(features.parent).path) in msg
    assert "import:KIND:PATH" in msg and "--tracks trm" in msg
    assert not (tmp_path / "p.parquet").exists()
    with pytest.raises(ConfigError, match="--no-trm"):
        track_rank.check_config(TrackRankConfig(tracks="imported", trm=False))


def test_a_session_takes_tracks_imported_and_refuses_it_without_track_ids(world, tmp_path):
    from clawcrane.api import VideoSession

    dataset, features, run = world
    imported = TrackRankConfig(device="cpu", tracks="imported")
    with pytest.raises(ConfigError, match="--tracks imported"):
        VideoSession(head=run, features=features, video_id="vid06", dataset=dataset, track=imported)
    session = VideoSession(head=run, features=with_track_ids(world, tmp_path), video_id="vid06", dataset=dataset,
                           track=imported)
    result = session.query("the red ball")
    ids = [int(session.vi.track_ids[t][s.k]) for t, subs in enumerate(result.submissions) for s in subs
           if s.rank == 0 and s.k >= 0]
    assert len(ids) == 2 and ids[0] == ids[1]  # the answer is one imported track on both frames


def test_tracks_stays_out_of_the_key_at_its_default():
    assert "tracks" not in key_config(TrackRankConfig())
    assert key_config(TrackRankConfig(tracks="imported"))["tracks"] == "imported"


def test_track_rank_help_documents_every_option():
    r = CliRunner().invoke(main, ["track-rank", "--help"])
    assert r.exit_code == 0
    for opt in ("--head", "--features", "--dataset", "--out", "--split", "--top-k", "--trm / --no-trm", "--abstain-below",
                "--gamma", "--beta", "--alpha", "--score-mode", "--fallback", "--tracks", "--batch-size", "--device"):
        assert opt in r.output, opt


def test_summarised_tracks_put_the_answers_track_first_whatever_its_mean():
    # track 3 is the answer (rank 0) on frames 0 and 2, track 5 only on frame 1: 3 comes first although
    # its mean (0.9 + 0.8 + 0.7) / 3 = 0.8 is below 5's 0.95. The trackless fallback row (frame 2) and the
    # abstention (frame 3) belong to no track.
    S = ranking.Submission
    rows = [(0, S(0, 3, 0.9, 0)), (0, S(1, 5, 0.95, 1)), (1, S(0, 5, 0.95, 0)), (1, S(1, 3, 0.8, 1)),
            (2, S(0, 3, 0.7, 0)), (2, S(2, -1, 0.99, 1)), (3, ranking.abstention())]
    got = ranking.summarise_tracks(rows)
    assert [(t.track_id, t.frames) for t in got] == [(3, (0, 1, 2)), (5, (0, 1))]
    assert got[0].score == pytest.approx(0.8) and got[1].score == pytest.approx(0.95)


def test_summarised_tracks_take_the_trms_best_track_and_scores_when_given():
    # the TRM's best track 3 (score 0.9) is present on frame 0 only; frames 1 and 2 fall back to candidates
    # of track 5 (their own scores 0.5 and 0.4; track 5's TRM score 0.6). Counting rank-0 rows would call 5
    # the answer, scored by the mean of its rows (0.45); the TRM's view puts 3 first, with the TRM's scores.
    S = ranking.Submission
    rows = [(0, S(0, 3, 0.9, 0)), (1, S(1, 5, 0.5, 0)), (2, S(1, 5, 0.4, 0))]
    guessed = ranking.summarise_tracks(rows)
    assert [(t.track_id, t.score) for t in guessed] == [(5, pytest.approx(0.45)), (3, pytest.approx(0.9))]
    told = ranking.summarise_tracks(rows, scores={3: 0.9, 5: 0.6}, first=3)
    assert [(t.track_id, t.score) for t in told] == [(3, 0.9), (5, 0.6)]
