"""Temporal Relation Module: linking, intermittent tracks, gamma, track scores, per-frame answers."""

from __future__ import annotations

import numpy as np
import pytest

from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import tracking as trm

H, W = 10, 40


def strip(x0: int, x1: int) -> dict:
    """RLE of a full-height strip covering columns [x0, x1)."""
    m = np.zeros((H, W), bool)
    m[:, x0:x1] = True
    return mask_ops.encode(m)


def member_frames(track: trm.Track) -> list[int]:
    return [t for t, _ in track.members]


# Two objects whose embeddings have cosine 0.5 cross each other. Around the crossing the masks
# overlap the *other* object's next mask more (IoU 3/13) than their own (IoU 2/14), so the IoU
# term alone would swap identities; with alpha = 0.5 the embedding term dominates:
# keep = 2 * (1 + 0.5 * 2/14) = 2.14 > swap = 2 * (0.5 + 0.5 * 3/13) = 1.23.
A_EMB = np.array([1.0, 0.0, 0.0])
B_EMB = np.array([0.5, np.sqrt(0.75), 0.0])
A_X = [(0, 8), (6, 14), (12, 20), (18, 26), (24, 32)]
B_X = [(24, 32), (19, 27), (13, 21), (7, 15), (1, 9)]


def crossing(order_b_first: tuple[bool, ...]):
    emb, rles, where = [], [], []  # where[t] = (k of A, k of B)
    for t, b_first in enumerate(order_b_first):
        objs = [("B", B_EMB, B_X[t]), ("A", A_EMB, A_X[t])] if b_first else [("A", A_EMB, A_X[t]), ("B", B_EMB, B_X[t])]
        emb.append(np.stack([e for _, e, _ in objs]))
        rles.append([strip(*x) for _, _, x in objs])
        where.append((1, 0) if b_first else (0, 1))
    return emb, rles, where


def test_crossing_objects_keep_identities_by_embedding():
    order = (False, True, False, True, True)  # candidate order changes between frames
    emb, rles, where = crossing(order)
    tracks = trm.link_tracks(emb, rles, alpha=0.5)
    assert len(tracks) == 2
    a_track = next(tr for tr in tracks if (0, where[0][0]) in tr.members)
    b_track = next(tr for tr in tracks if (0, where[0][1]) in tr.members)
    assert a_track.members == [(t, where[t][0]) for t in range(5)]
    assert b_track.members == [(t, where[t][1]) for t in range(5)]


def test_crossing_swaps_when_only_mask_iou_counts():
    # Sensitivity check of the test above: with a huge IoU weight the identities do swap at the
    # crossing (2 -> 3), so the embedding term is what kept them apart.
    emb, rles, where = crossing((False,) * 5)
    tracks = trm.link_tracks(emb, rles, alpha=10.0, gamma=0.0)
    a_track = next(tr for tr in tracks if (0, 0) in tr.members)
    assert (3, where[3][0]) not in a_track.members


def occluded(hidden: range, T: int = 8):
    """One object at a fixed place, absent (no candidate) in the frames of ``hidden``."""
    emb = [np.zeros((0, 3)) if t in hidden else A_EMB[None] for t in range(T)]
    rles = [[] if t in hidden else [strip(4, 12)] for t in range(T)]
    return emb, rles


@pytest.mark.parametrize("gap", [1, 2])
def test_target_hidden_fewer_than_beta_frames_keeps_its_track(gap):
    # beta = 3: a track survives up to 2 unmatched rounds, so a gap of 1 or 2 frames is bridged.
    emb, rles = occluded(range(2, 2 + gap))
    tracks = trm.link_tracks(emb, rles, beta=3)
    assert len(tracks) == 1
    assert member_frames(tracks[0]) == [t for t in range(8) if t not in range(2, 2 + gap)]


@pytest.mark.parametrize("gap", [3, 4])
def test_target_hidden_beta_or_more_frames_starts_a_new_track(gap):
    # After beta = 3 unmatched rounds the track ends; the reappearing object starts track 1.
    emb, rles = occluded(range(2, 2 + gap))
    tracks = trm.link_tracks(emb, rles, beta=3)
    assert [member_frames(tr) for tr in tracks] == [[0, 1], list(range(2 + gap, 8))]


def test_gamma_rejects_a_weak_match():
    # cos = 0.7 and disjoint masks (IoU 0): S = 0.7 < gamma 0.8 -> two tracks; gamma 0.6 links them.
    emb = [np.array([[1.0, 0.0]]), np.array([[0.7, np.sqrt(1 - 0.49)]])]
    rles = [[strip(0, 5)], [strip(20, 25)]]
    assert len(trm.link_tracks(emb, rles, gamma=0.8)) == 2
    assert len(trm.link_tracks(emb, rles, gamma=0.6)) == 1


def test_mask_iou_term_can_lift_a_match_over_gamma():
    # Same cos 0.7 but identical masks: S = 0.7 + 0.5 * 1 = 1.2 > 0.8 -> linked.
    emb = [np.array([[1.0, 0.0]]), np.array([[0.7, np.sqrt(1 - 0.49)]])]
    rles = [[strip(0, 5)], [strip(0, 5)]]
    assert len(trm.link_tracks(emb, rles, gamma=0.8, alpha=0.5)) == 1


def two_tracks_with_scores():
    """X scores 0.9, 0.1, 0.1 (mean 0.367, max 0.9); Y scores 0.5 x 3 (mean 0.5, max 0.5)."""
    X, Y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    emb = [np.stack([X, Y])] * 3
    rles = [[strip(0, 5), strip(20, 25)]] * 3
    scores = [np.array([0.9, 0.5]), np.array([0.1, 0.5]), np.array([0.1, 0.5])]
    return trm.link_tracks(emb, rles, scores=scores), scores


def test_track_score_is_the_mean_of_member_scores_or_the_max():
    tracks, _ = two_tracks_with_scores()
    x, y = tracks
    assert x.scores == pytest.approx([0.9, 0.1, 0.1])
    assert x.score("mean") == pytest.approx(1.1 / 3)
    assert x.score("max") == pytest.approx(0.9)
    assert trm.rank_tracks(tracks, mode="mean")[0] is y  # 0.5 > 0.367
    assert trm.rank_tracks(tracks, mode="max")[0] is x  # 0.9 > 0.5


def test_sum_track_score_prefers_a_long_consistent_track_over_a_lucky_short_one():
    # Eq. 3's sum: a one-frame track L scoring 0.9 (sum 0.9) against a three-frame track Y scoring
    # 0.5 each (sum 1.5); the mean prefers the lucky one-frame track (0.9 > 0.5), the sum does not
    X, Y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    emb = [np.stack([X, Y]), Y[None], Y[None]]
    rles = [[strip(0, 5), strip(20, 25)], [strip(20, 25)], [strip(20, 25)]]
    scores = [np.array([0.9, 0.5]), np.array([0.5]), np.array([0.5])]
    tracks = trm.link_tracks(emb, rles, scores=scores)
    lucky, y = tracks
    assert len(lucky) == 1 and len(y) == 3
    assert y.score("sum") == pytest.approx(1.5)
    assert trm.rank_tracks(tracks, mode="mean")[0] is lucky
    assert trm.rank_tracks(tracks, mode="sum")[0] is y


def test_frames_without_the_best_track_take_their_best_candidate_or_nothing():
    # Best track Y (mean 0.8) lives in frames 0-1; frame 2 has only X's candidate (score 0.3) and
    # a new candidate Z (score 0.6, orthogonal to both): the fallback takes Z, 'empty' takes nothing.
    X, Y, Z = np.eye(3)
    emb = [np.stack([X, Y]), np.stack([X, Y]), np.stack([X, Z])]
    rles = [[strip(0, 5), strip(20, 25)], [strip(0, 5), strip(20, 25)], [strip(0, 5), strip(30, 35)]]
    scores = [np.array([0.2, 0.8]), np.array([0.2, 0.8]), np.array([0.3, 0.6])]
    res = trm.temporal_relation(emb, scores, rles=rles)
    assert res.tracks[0].members == [(0, 1), (1, 1)]
    a = res.answers
    assert [(x.k, x.from_best_track) for x in a] == [(1, True), (1, True), (1, False)]
    assert a[0].score == pytest.approx(0.8) and a[2].score == pytest.approx(0.6)
    assert a[2].track_id == next(tr.track_id for tr in res.tracks if (2, 1) in tr.members)
    empty = trm.temporal_relation(emb, scores, rles=rles, fallback="empty").answers
    assert empty[2].k == -1 and np.isnan(empty[2].score)


def test_no_trm_takes_each_frames_argmax_and_empty_frames_give_no_answer():
    scores = [np.array([0.1, 0.7, 0.3]), np.zeros(0), np.array([0.9])]
    a = trm.frame_argmax(scores)
    assert [x.k for x in a] == [1, -1, 0]
    assert a[0].score == pytest.approx(0.7) and a[0].track_id == -1


def test_shapes_and_sizes():
    rng = np.random.default_rng(0)
    T, D = 6, 8  # frames, embedding width
    K = [3, 0, 4, 2, 5, 1]  # candidates per frame, one frame empty
    emb = [rng.normal(size=(k, D)) for k in K]
    rles = [[strip(int(x), int(x) + 6) for x in rng.integers(0, 30, size=k)] for k in K]
    scores = [rng.uniform(-1, 1, size=k) for k in K]
    res = trm.temporal_relation(emb, scores, rles=rles, top_k=2)
    assert len(res.answers) == T and len(res.tracks) == 2
    assert res.answers[1].k == -1
    every = trm.link_tracks(emb, rles, scores=scores)
    members = sorted(m for tr in every for m in tr.members)
    assert members == sorted((t, k) for t in range(T) for k in range(K[t]))  # each candidate in one track
    for tr in every:
        assert len(tr.scores) == len(tr.members)
        assert [t for t, _ in tr.members] == sorted({t for t, _ in tr.members})  # <= 1 member per frame
    iou = trm.FrameIoU(rles)
    assert iou(0, 2).shape == (3, 4) and iou(1, 2).shape == (0, 4)
    consec = ConsecutiveIoU([iou(t - 1, t) for t in range(1, T)], K)
    assert np.array_equal(consec(2, 3), iou(2, 3)) and not consec(0, 2).any()  # gaps: IoU 0
    again = trm.link_tracks(emb, scores=scores, iou=consec)
    assert len(again) >= 1


class ConsecutiveIoU:
    """An ``iou`` callable from precomputed IoUs of consecutive frames only; a pair across a gap has IoU 0."""

    def __init__(self, ious, sizes):
        self.sizes = [int(k) for k in sizes]
        self.ious = {(t - 1, t): np.asarray(m, np.float64) for t, m in enumerate(ious, start=1)}

    def __call__(self, s: int, t: int) -> np.ndarray:
        return self.ious.get((s, t), np.zeros((self.sizes[s], self.sizes[t])))


# ---- imported track ids seed the linking (--tracks imported) --------------------------------------
E0, E1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])


def test_imported_ids_link_the_candidates_the_embeddings_would_swap():
    # Frame 0: a = E0 (id 5), b = E1 (id 7). Frame 1: c = E1 (id 5), d = E0 (id 7). alpha = 0, so
    # S = cosine: S(a,d) = S(b,c) = 1 > gamma, S(a,c) = S(b,d) = 0. The TRM links a-d and b-c; the
    # proposer says a-c and b-d, and its ids win even though those pairs score 0 < gamma.
    emb = [np.stack([E0, E1]), np.stack([E1, E0])]
    ids = [np.array([5, 7]), np.array([5, 7])]
    by_trm = trm.link_tracks(emb, alpha=0.0)
    assert [tr.members for tr in by_trm] == [[(0, 0), (1, 1)], [(0, 1), (1, 0)]]
    seeded = trm.link_tracks(emb, alpha=0.0, ids=ids)
    assert [tr.members for tr in seeded] == [[(0, 0), (1, 0)], [(0, 1), (1, 1)]]
    # the answer follows: a query matching a (0.9) and then c (0.8) gets the seeded track a-c
    scores = [np.array([0.9, 0.1]), np.array([0.8, 0.2])]
    assert [a.k for a in trm.temporal_relation(emb, scores, alpha=0.0, fallback="empty").answers] == [0, 1]
    assert [a.k for a in trm.temporal_relation(emb, scores, alpha=0.0, fallback="empty", ids=ids).answers] == [0, 0]


def test_a_candidate_with_an_id_never_joins_a_track_holding_another_id():
    # v = (1, 0.3)/|.|: cos(E0, v) = 0.958 > gamma, so the TRM makes one track of all three; ids 5
    # then 9 keep frames 0 and 1 apart, and the id-less candidate (-1) of frame 2 (v again) is linked
    # by the TRM as usual: to id 9's track (S = 1) rather than id 5's (S = 0.958).
    v = np.array([1.0, 0.3]) / np.hypot(1.0, 0.3)
    emb = [E0[None], v[None], v[None]]
    assert len(trm.link_tracks(emb, alpha=0.0)) == 1
    seeded = trm.link_tracks(emb, alpha=0.0, ids=[np.array([5]), np.array([9]), np.array([-1])])
    assert [tr.members for tr in seeded] == [[(0, 0)], [(1, 0), (2, 0)]]


def test_an_imported_id_bridges_a_gap_longer_than_beta():
    # id 5 at frames 0 and 4, nothing in between; beta = 1 ends the TRM track, the id keeps it one.
    emb = [E0[None], np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)), E1[None]]
    ids = [np.array([5]), np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), np.array([5])]
    assert len(trm.link_tracks(emb, alpha=0.0, beta=1)) == 2
    assert [tr.members for tr in trm.link_tracks(emb, alpha=0.0, beta=1, ids=ids)] == [[(0, 0), (4, 0)]]


def test_ids_all_minus_one_link_exactly_as_the_trm():
    rng = np.random.default_rng(3)
    K = [3, 0, 4, 2, 5, 1]
    emb = [rng.normal(size=(k, 4)) for k in K]
    rles = [[strip(int(x), int(x) + 6) for x in rng.integers(0, 30, size=k)] for k in K]
    scores = [rng.uniform(-1, 1, size=k) for k in K]
    plain = trm.link_tracks(emb, rles, scores=scores, gamma=0.2)
    none = trm.link_tracks(emb, rles, scores=scores, gamma=0.2, ids=[np.full(k, -1) for k in K])
    assert [(tr.members, tr.scores) for tr in plain] == [(tr.members, tr.scores) for tr in none]
    with pytest.raises(ValueError, match="imported ids"):
        trm.link_tracks(emb, rles, ids=[np.full(k + 1, -1) for k in K])


def test_a_bridged_track_is_matched_on_the_mask_it_last_had():
    # Identical embeddings: only the IoU term decides. Frame 0: A (left), B (right); frame 1: B alone;
    # frame 2: left and right again. A skipped frame 1 (beta = 2 keeps it), so at frame 2 A is compared
    # on its frame-0 mask (IoU 1 with the left one) while B uses its frame-1 mask (IoU 1 with the right):
    # A takes the left candidate, B the right, S = 1 + 0.5 each.
    left, right = strip(0, 10), strip(20, 30)
    emb = [np.ones((2, 3)), np.ones((1, 3)), np.ones((2, 3))]
    rles = [[left, right], [right], [left, right]]
    tracks = trm.link_tracks(emb, rles, gamma=0.5, beta=2, alpha=0.5)
    assert [tr.members for tr in tracks] == [[(0, 0), (2, 0)], [(0, 1), (1, 0), (2, 1)]]
