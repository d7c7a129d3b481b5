"""Temporal Relation Module (paper §3.2, Eq. 7): link one query's candidates into tracks.

For one query over one video, every candidate of every frame has a text-guided embedding
``V^r`` (the head's ``embed_objects``, L2-normalised) and a query-matching score (its cosine with
the sentence embedding). Going through the frames in order:

* the first frame's candidates each start an active track;
* at each next frame, the association similarity between an active track and a candidate is
  ``S = cos(V_track, V_cand) + alpha * maskIoU(x_track, x_cand)`` (Eq. 7), where the track is
  represented by its last matched candidate (its embedding and its mask);
* the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) maximises the summed S; a
  pair is accepted only when ``S > gamma``;
* a track that stays unmatched for ``beta`` rounds in a row ends; a shorter gap is bridged, so
  tracks may be intermittent;
* candidates left unassigned start new tracks.

With ``ids`` (``--tracks imported``: the track ids a tracking system such as SAM 2 or DEVA gave
each candidate, -1 for none) the proposer's linking is kept where it gives one: candidates sharing
an id are one track (a candidate joins the track holding its id before the Hungarian, even across
a gap longer than ``beta``), and a candidate with an id never joins a track holding another id.
The rest (candidates without an id, and tracks and ids not seen before) is linked by Eq. 7 as
above; a track without an id takes the id of the first candidate with one that joins it. Within a
frame an id is honoured once (its first candidate; a repeat goes through the TRM as if it had none).

A track's score is the mean (or max, or Eq. 3's sum) of its members' query-matching scores. The answer for a
frame is the best track's candidate there; where the best track is absent the frame takes its
best-scored candidate (``fallback="best"``) or nothing (``fallback="empty"``). Without the TRM
(``--no-trm``) each frame takes its argmax candidate.

Positions ``t`` are indices into the frame sequence given (the caller maps them to frame
numbers); ``k`` indexes a frame's candidates. Pure numpy + scipy; no file I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from clawcrane.config import TRM_FALLBACKS, TRM_SCORE_MODES, TrackRankConfig
from clawcrane.pipeline import masks as mask_ops

DEFAULT_GAMMA, DEFAULT_BETA, DEFAULT_ALPHA = TrackRankConfig.gamma, TrackRankConfig.beta, TrackRankConfig.alpha
"""gamma, beta and alpha of Eq. 7 as `track-rank` defaults them (documented on ``TrackRankConfig``)."""
SCORE_MODES, FALLBACKS = TRM_SCORE_MODES, TRM_FALLBACKS

IouFn = Callable[[int, int], np.ndarray]
"""``iou(s, t) -> (K_s, K_t)`` mask IoU between the candidates of frames s and t."""


class FrameIoU:
    """Mask IoU between the candidates of two frames of one video, computed once and memoised.

    Query-independent, so one object serves every query of a video. Built from per-frame RLE
    lists; any pair of frames can be asked for (a track bridging a gap is matched on its last mask).
    """

    def __init__(self, rles: Sequence[Sequence[dict]]):
        self._rles = [list(r) for r in rles]
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, s: int, t: int) -> np.ndarray:
        key = (s, t)
        if key not in self._cache:
            self._cache[key] = mask_ops.iou_matrix(self._rles[s], self._rles[t])
        return self._cache[key]


@dataclass
class Track:
    """One linked object: its members in frame order and their query-matching scores."""

    track_id: int
    """Creation order, 0-based (first frame's candidates first)."""
    members: list[tuple[int, int]] = field(default_factory=list)
    """(t, k) pairs in ascending t: frame position t, candidate k of that frame."""
    scores: list[float] = field(default_factory=list)
    """Query-matching score of each member (empty when linked without scores)."""

    def __len__(self) -> int:
        return len(self.members)

    def score(self, mode: str = "mean") -> float:
        """Track score: mean (default, paper §1), max (paper §3.3) or sum (Eq. 3) of its members' scores."""
        if not self.scores:
            return float("-inf")
        if mode == "mean":
            return float(np.mean(self.scores))
        if mode == "max":
            return float(np.max(self.scores))
        if mode == "sum":
            return float(np.sum(self.scores))
        raise ValueError(f"score mode {mode!r}; expected one of {SCORE_MODES}")

    def as_dict(self) -> dict[int, int]:
        """{t: k} of its members."""
        return dict(self.members)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _frame_ids(ids: np.ndarray, K: int, t: int) -> np.ndarray:
    """Frame t's imported ids as int64 (K,), an id repeated within the frame kept on its first candidate only."""
    out = np.asarray(ids, dtype=np.int64).reshape(-1).copy()
    if len(out) != K:
        raise ValueError(f"frame {t}: {K} embeddings but {len(out)} imported ids")
    seen: set[int] = set()
    for k, v in enumerate(out):
        if v >= 0:
            if int(v) in seen:
                out[k] = -1
            seen.add(int(v))
    return out


def _free_pairs(S: np.ndarray, gamma: float, matched: np.ndarray, taken: np.ndarray, held: np.ndarray,
                ids_t: np.ndarray) -> list[tuple[int, int]]:
    """The Hungarian over the tracks and candidates the imported ids left free; a track holding an id
    and a candidate with another id are never paired (``held`` (A,) the tracks' ids, ``ids_t`` (K,))."""
    free_i, free_k = np.flatnonzero(~matched), np.flatnonzero(~taken)
    if not len(free_i) or not len(free_k):
        return []
    sub = S[np.ix_(free_i, free_k)]
    allowed = (held[free_i, None] < 0) | (ids_t[None, free_k] < 0)  # (A', K') ids never conflict
    lowest = float(np.min(sub)) if sub.size else 0.0
    cost = np.where(allowed, sub, lowest - 1e6)  # a forbidden pair is used only when no allowed one is left
    rows, cols = linear_sum_assignment(cost, maximize=True)
    return [(int(free_i[r]), int(free_k[c])) for r, c in zip(rows, cols) if allowed[r, c] and sub[r, c] > gamma]


def _unit_frames(emb: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All frames' embeddings L2-normalised in one (sum K_t, D) float64 array, and the (T + 1,) offsets of each frame."""
    blocks, sizes = [], []
    for t, e in enumerate(emb):
        E = np.asarray(e, dtype=np.float64)
        if E.size == 0:
            sizes.append(0)
            continue
        if E.ndim != 2:
            raise ValueError(f"frame {t}: embeddings must be (K, D), got shape {E.shape}")
        if blocks and E.shape[1] != blocks[0].shape[1]:
            raise ValueError(f"frame {t}: embeddings of width {E.shape[1]}, earlier frames {blocks[0].shape[1]}")
        blocks.append(E)
        sizes.append(len(E))
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    unit = _normalise(np.concatenate(blocks)) if blocks else np.zeros((0, 0))
    return unit, offsets


def link_tracks(
    emb: Sequence[np.ndarray],
    rles: Sequence[Sequence[dict]] | None = None,
    *,
    scores: Sequence[np.ndarray] | None = None,
    iou: IouFn | None = None,
    gamma: float = DEFAULT_GAMMA,
    beta: int = DEFAULT_BETA,
    alpha: float = DEFAULT_ALPHA,
    ids: Sequence[np.ndarray] | None = None,
) -> list[Track]:
    """Link candidates of consecutive frames into tracks (Eq. 7 + Hungarian matching).

    ``emb[t]`` (K_t, D) text-guided embeddings of frame position t (K_t may be 0);
    ``rles[t]`` its K_t candidate RLEs, or ``iou`` a ``FrameIoU`` / ``(s, t) -> (K_s, K_t)``
    callable (share one across the queries of a video); ``scores[t]`` (K_t,) query-matching
    scores stored on the tracks; ``ids[t]`` (K_t,) imported track ids (-1: none) that seed the
    linking (module doc; None: the paper's TRM alone). A track is represented by its last matched
    candidate (embedding and mask). Returns every track, in creation order.

    The state of every track lives in flat arrays indexed by track (its last member, its misses, its
    id), so one frame costs a handful of array operations and one Hungarian, whatever the track count.
    """
    if beta < 1:
        raise ValueError(f"beta must be >= 1, got {beta}")
    T = len(emb)  # frames
    if iou is None and alpha != 0.0:
        if rles is None:
            raise ValueError("link_tracks needs rles or iou when alpha != 0")
        iou = FrameIoU(rles)
    if scores is not None and len(scores) != T:
        raise ValueError(f"scores has {len(scores)} frames, embeddings {T}")
    if ids is not None and len(ids) != T:
        raise ValueError(f"ids has {len(ids)} frames, embeddings {T}")
    unit, offsets = _unit_frames(emb)  # (G, D) every candidate g = offsets[t] + k, normalised
    G = len(unit)  # candidates of the whole video
    flat_scores = None
    if scores is not None:
        parts = [np.asarray(scores[t], dtype=np.float64).reshape(-1) for t in range(T)]
        for t, s_t in enumerate(parts):
            if len(s_t) != offsets[t + 1] - offsets[t]:
                raise ValueError(f"frame {t}: {offsets[t + 1] - offsets[t]} embeddings but {len(s_t)} scores")
        flat_scores = np.concatenate(parts) if parts else np.zeros(0)

    # per track n (at most one per candidate): its last member (t, k, g), misses in a row, imported id
    last_t, last_k, last_g = (np.zeros(G, dtype=np.int64) for _ in range(3))
    misses, ident = np.zeros(G, dtype=np.int64), np.full(G, -1, dtype=np.int64)
    owner = np.full(G, -1, dtype=np.int64)  # the track of each candidate
    active = np.zeros(0, dtype=np.int64)  # (A,) tracks still open, in creation order (revived ones last)
    n_tracks = 0
    holder: dict[int, int] = {}  # imported id -> the track holding it (ended ones too)

    def join(n: np.ndarray, t: int, k: np.ndarray) -> None:
        last_t[n], last_k[n], last_g[n] = t, k, offsets[t] + k
        misses[n] = 0
        owner[offsets[t] + k] = n

    for t in range(T):
        K = int(offsets[t + 1] - offsets[t])  # candidates of frame t
        E = unit[offsets[t] : offsets[t + 1]]  # (K, D)
        taken = np.zeros(K, dtype=bool)
        ids_t = None if ids is None else _frame_ids(ids[t], K, t)
        forced: list[int] = []
        if ids_t is not None:  # a candidate joins the track holding its id, ended or not
            for k in np.flatnonzero(ids_t >= 0):
                n = holder.get(int(ids_t[k]))
                if n is not None:
                    if not (active == n).any():
                        active = np.append(active, n)
                    join(np.array([n]), t, np.array([k]))
                    forced.append(n)
                    taken[k] = True
        matched = np.isin(active, forced) if forced else np.zeros(len(active), dtype=bool)  # (A,)
        if len(active) and K and not taken.all():
            S = unit[last_g[active]] @ E.T  # (A, K) cosine similarity
            if alpha != 0.0:  # one IoU lookup per source frame (most tracks last matched on frame t - 1)
                src = last_t[active]
                if src.min() == src.max():  # the usual case: every track last matched on one frame
                    S += alpha * iou(int(src[0]), t)[last_k[active]]
                else:
                    for s in np.unique(src):
                        rows = np.flatnonzero(src == s)
                        S[rows] += alpha * iou(int(s), t)[last_k[active[rows]]]
            if ids_t is None:
                rows, cols = linear_sum_assignment(S, maximize=True)
                ok = S[rows, cols] > gamma
                rows, cols = rows[ok], cols[ok]
            else:
                pairs = _free_pairs(S, gamma, matched, taken, ident[active], ids_t)
                rows = np.array([i for i, _ in pairs], dtype=np.int64)
                cols = np.array([k for _, k in pairs], dtype=np.int64)
            join(active[rows], t, cols)
            matched[rows] = True
            taken[cols] = True
            if ids_t is not None:
                for n, k in zip(active[rows], cols):
                    if ids_t[k] >= 0 and ident[n] < 0:
                        ident[n] = ids_t[k]
                        holder[int(ids_t[k])] = int(n)
        misses[active[~matched]] += 1
        active = active[misses[active] < beta]

        new_k = np.flatnonzero(~taken)
        new = n_tracks + np.arange(len(new_k))
        join(new, t, new_k)
        n_tracks += len(new_k)
        active = np.concatenate([active, new])
        if ids_t is not None:
            for n, k in zip(new, new_k):
                if ids_t[k] >= 0:
                    ident[n] = ids_t[k]
                    holder[int(ids_t[k])] = int(n)

    order = np.lexsort((np.arange(G), owner))  # candidates by track, then by frame
    frame_of = np.repeat(np.arange(T), np.diff(offsets))  # (G,) t of each candidate
    k_of = np.arange(G) - offsets[frame_of]
    bounds = np.searchsorted(owner[order], np.arange(n_tracks + 1))
    ts, ks = frame_of[order].tolist(), k_of[order].tolist()
    ss = flat_scores[order].tolist() if flat_scores is not None else None
    tracks = []
    for n in range(n_tracks):
        lo, hi = int(bounds[n]), int(bounds[n + 1])
        tracks.append(Track(track_id=n, members=list(zip(ts[lo:hi], ks[lo:hi])),
                            scores=ss[lo:hi] if ss is not None else []))
    return tracks


def rank_tracks(tracks: Sequence[Track], *, mode: str = "mean", top_k: int | None = None) -> list[Track]:
    """Tracks by descending score; ties go to the longer track, then the older one."""
    if mode not in SCORE_MODES:
        raise ValueError(f"score mode {mode!r}; expected one of {SCORE_MODES}")
    ranked = sorted(tracks, key=lambda tr: (-tr.score(mode), -len(tr), tr.track_id))
    return ranked if top_k is None else ranked[:top_k]


@dataclass(frozen=True)
class FrameAnswer:
    """The chosen candidate of one frame position (k = -1: an empty mask)."""

    t: int
    k: int
    track_id: int
    """Track of the chosen candidate (-1 without tracks or without an answer)."""
    score: float
    """The best track's score, or for a fallback the candidate's own query score (nan when empty)."""
    from_best_track: bool


def frame_answers(
    ranked: Sequence[Track],
    scores: Sequence[np.ndarray],
    *,
    mode: str = "mean",
    fallback: str = "best",
) -> list[FrameAnswer]:
    """Per frame position: the best track's candidate, else the fallback (see module doc)."""
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback {fallback!r}; expected one of {FALLBACKS}")
    T = len(scores)  # frames
    best = ranked[0] if ranked else None
    best_at = best.as_dict() if best is not None else {}
    best_score = best.score(mode) if best is not None else float("nan")
    owner = {m: tr.track_id for tr in ranked for m in tr.members}
    out = []
    for t in range(T):
        s_t = np.asarray(scores[t]).reshape(-1)
        if t in best_at:
            out.append(FrameAnswer(t=t, k=best_at[t], track_id=best.track_id, score=best_score, from_best_track=True))
        elif fallback == "best" and len(s_t):
            k = int(np.argmax(s_t))
            out.append(FrameAnswer(t=t, k=k, track_id=owner.get((t, k), -1), score=float(s_t[k]), from_best_track=False))
        else:
            out.append(FrameAnswer(t=t, k=-1, track_id=-1, score=float("nan"), from_best_track=False))
    return out


def frame_argmax(scores: Sequence[np.ndarray]) -> list[FrameAnswer]:
    """The ``--no-trm`` path: each frame's best-scored candidate, no linking."""
    out = []
    for t, s in enumerate(scores):
        s_t = np.asarray(s).reshape(-1)
        if len(s_t):
            k = int(np.argmax(s_t))
            out.append(FrameAnswer(t=t, k=k, track_id=-1, score=float(s_t[k]), from_best_track=False))
        else:
            out.append(FrameAnswer(t=t, k=-1, track_id=-1, score=float("nan"), from_best_track=False))
    return out


@dataclass
class TrackResult:
    """Everything the TRM decides for one query over one video."""

    tracks: list[Track]
    """Top-k tracks by descending score (all tracks when top_k is None)."""
    answers: list[FrameAnswer]
    """One answer per frame position."""


def temporal_relation(
    emb: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    *,
    rles: Sequence[Sequence[dict]] | None = None,
    iou: IouFn | None = None,
    gamma: float = DEFAULT_GAMMA,
    beta: int = DEFAULT_BETA,
    alpha: float = DEFAULT_ALPHA,
    mode: str = "mean",
    fallback: str = "best",
    top_k: int | None = None,
    ids: Sequence[np.ndarray] | None = None,
) -> TrackResult:
    """Link, rank and answer: the TRM for one query (see ``link_tracks`` for the inputs)."""
    tracks = link_tracks(emb, rles, scores=scores, iou=iou, gamma=gamma, beta=beta, alpha=alpha, ids=ids)
    ranked = rank_tracks(tracks, mode=mode)
    answers = frame_answers(ranked, scores, mode=mode, fallback=fallback)
    return TrackResult(tracks=ranked if top_k is None else ranked[:top_k], answers=answers)
