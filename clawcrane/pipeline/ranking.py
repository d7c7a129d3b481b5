"""From one query's candidate scores (and its TRM tracks) to the masks submitted per frame.

Each frame position t gets a short ranked list of ``Submission`` s: rank 0 is the answer, then
runners-up. Two rules hold for every list, so that every reader of the predictions agrees on
the answer (``evaluate``, like every published A2D evaluator, takes the highest-scored mask;
``export`` and ``render`` take rank 0):

* scores strictly decrease with the rank, as float32 (the predictions file's dtype;
  ``monotone``): scores are rounded to float32, and a runner-up whose score is not below the one
  ranked before it (e.g. another track beats a fallback candidate's query score, or two
  candidates tie) is lowered to the largest float32 below that score. So no evaluator, whatever
  its tie rule, can take a runner-up for the answer (MTTR's takes the *last* of equal scores);
* an abstention (no mask: candidate -1, score NaN) is alone in its frame.

With the TRM (``track_submissions``): the answer is ``FrameAnswer`` of ``tracking.frame_answers``
(the best track's candidate, else the fallback); runners-up are the other top-k tracks present
in the frame, in track rank order, each with its track score. Without it
(``argmax_submissions``): the frame's candidates by descending score (rank 0 = argmax).
Pure python + numpy; no file I/O.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clawcrane.pipeline.tracking import TrackResult


@dataclass(frozen=True)
class Submission:
    """One submitted mask of one frame position: candidate k of that frame (-1: an empty mask)."""

    k: int
    track_id: int
    """TRM track of the candidate (-1: none)."""
    score: float
    """Ranking score (NaN for an abstention)."""
    rank: int


def abstention() -> Submission:
    """The single row of a frame without an answer: an empty mask with no score."""
    return Submission(k=-1, track_id=-1, score=float("nan"), rank=0)


def float32_below(x: float) -> float:
    """The largest float32 strictly below ``x`` (a float32 value)."""
    return float(np.nextafter(np.float32(x), np.float32(-np.inf)))


def monotone(subs: Sequence[Submission]) -> list[Submission]:
    """Ranks 0.. in the given order, scores as float32, each strictly below the previous one (module doc)."""
    out: list[Submission] = []
    for r, s in enumerate(subs):
        score = float(np.float32(s.score))
        if out and math.isfinite(out[-1].score) and not score < out[-1].score:
            score = float32_below(out[-1].score)
        out.append(Submission(k=s.k, track_id=s.track_id, score=score, rank=r))
    return out


def track_submissions(result: TrackResult, *, top_k: int, mode: str = "mean") -> list[list[Submission]]:
    """Per frame position: the TRM's answer, then the other top-k tracks there (at most ``top_k`` rows)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    tracks = [(tr.track_id, tr.score(mode), tr.as_dict()) for tr in result.tracks[:top_k]]
    out = []
    for t, ans in enumerate(result.answers):
        if ans.k < 0:
            out.append([abstention()])
            continue
        subs = [Submission(k=ans.k, track_id=ans.track_id, score=float(ans.score), rank=0)]
        for track_id, score, members in tracks:
            k = members.get(t)
            if k is None or k == ans.k or len(subs) >= top_k:
                continue
            subs.append(Submission(k=k, track_id=track_id, score=score, rank=len(subs)))
        out.append(monotone(subs))
    return out


def argmax_submissions(scores: Sequence[np.ndarray], *, top_k: int, abstain_below: float | None = None) -> list[list[Submission]]:
    """Without the TRM: per frame its ``top_k`` best-scored candidates (rank 0 = ``frame_argmax``;
    equal scores: the lower index ranks first and the later one is lowered, see ``monotone``).

    A frame without candidates, or whose best one scores below ``abstain_below``, abstains.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    out = []
    for s in scores:
        s_t = np.asarray(s, dtype=np.float64).reshape(-1)
        order = np.argsort(-s_t, kind="stable")[:top_k]  # ties: the lower index first, as np.argmax
        if len(order) == 0 or (abstain_below is not None and s_t[order[0]] < abstain_below):
            out.append([abstention()])
            continue
        out.append(monotone([Submission(k=int(k), track_id=-1, score=float(s_t[k]), rank=r) for r, k in enumerate(order)]))
    return out


def best_track_score(result: TrackResult, mode: str = "mean") -> float:
    """Score of the query's best track (-inf without any track)."""
    return result.tracks[0].score(mode) if result.tracks else float("-inf")


@dataclass(frozen=True)
class TrackSummary:
    """One track as the submitted rows show it (what `segment`'s JSON and ``Result.tracks`` report)."""

    track_id: int
    score: float
    """The TRM's track score when known (what ``abstain_below`` tests), else the mean score of its submitted rows."""
    frames: tuple[int, ...]
    """Frames where one of its rows was submitted, ascending."""


def summarise_tracks(rows: Iterable[tuple[int, Submission]], *, scores: Mapping[int, float] | None = None,
                     first: int = -1) -> list[TrackSummary]:
    """(frame, submission) rows of one query -> its tracks, the answer's track first, then by descending score,
    then by id.

    ``scores``: the TRM's track scores (``track_rank.QueryAnswer``), reported as they are; a track without one
    (or all, when None: rows read back from a predictions file) gets the mean of its rows' scores.
    ``first``: the TRM's best track; when -1 (or absent from the rows), the track holding most rank-0 rows
    (ties: the lower id). Rows without a candidate, a track or a finite score belong to no track.
    """
    scores = scores or {}
    seen: dict[int, list[float]] = defaultdict(list)
    present: dict[int, set[int]] = defaultdict(set)
    answers: dict[int, int] = defaultdict(int)
    for frame, s in rows:
        if s.k >= 0 and s.track_id >= 0 and math.isfinite(s.score):
            seen[s.track_id].append(float(s.score))
            present[s.track_id].add(int(frame))
            if s.rank == 0:
                answers[s.track_id] += 1
    if first not in seen:
        first = max(answers, key=lambda n: (answers[n], -n)) if answers else -1
    score = {n: float(scores[n]) if n in scores else sum(v) / len(v) for n, v in seen.items()}
    ranked = sorted(seen, key=lambda n: (n != first, -score[n], n))
    return [TrackSummary(track_id=int(n), score=score[n], frames=tuple(sorted(present[n]))) for n in ranked]
