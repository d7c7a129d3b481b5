"""An independent uniqueness checker for the synthetic benchmark (test helper, not the generator).

It reads a query's *sentence* with its own small grammar, and the generator's scene description
(synth_scenes.json: per-frame centres, visible boxes and pixels, shadow strengths, radii) and
finds every object the sentence describes in each annotated frame. Its thresholds sit between the
generator's "holds" and "clearly does not hold" margins, so a sentence the generator kept must
pass here, and a sentence with a wrong word must fail.

The hard presets' sentences (synonyms, templates, eight directions, speeds, sizes, ordinals) have
a grammar of their own, in the same spirit and just as independent of the generator:
``synth_checker_hard`` (``check_any_query`` picks the right one for a record).
"""

from __future__ import annotations

import math

from helpers.synth_checker_hard import check_hard_query

SHAPES = {"circle", "square", "triangle", "diamond"}
COLOURS = {"red", "green", "blue", "yellow", "purple"}
SIZES = {"small", "large"}
RELATIONS = {("next", "to"): "next to", ("left", "of"): "left of", ("right", "of"): "right of",
             ("above",): "above", ("below",): "below"}
LISTED_PX = 20
HIDDEN = 0.5
"""Shadow strength from which an object's colour counts as unknown."""
HIDDEN_STRICT = 0.2
"""The generator's documented rule (colour unknown from 0.2): used to check minimality."""
NEAR = 34.0
"""Relation: edge gap (centre distance - radii) at most this (generator: holds <= 24, distractors > 44)."""


def _noun_phrase(words: list[str], i: int) -> tuple[dict, int]:
    attrs = {}
    if words[i] in SIZES:
        attrs["size"], i = words[i], i + 1
    if words[i] in COLOURS:
        attrs["colour"], i = words[i], i + 1
    assert words[i] in SHAPES, f"expected a shape at {words[i:]!r}"
    attrs["shape"] = words[i]
    return attrs, i + 1


def parse(sentence: str) -> tuple[dict, tuple | None]:
    """(target attributes, clause) of a sentence; the clause is None for a bare noun phrase."""
    w = sentence.split()
    assert w[0] == "the" and sentence == sentence.lower()
    if w[1] == "static":
        attrs, i = _noun_phrase(w, 2)
        clause = ("motion", "static")
    elif w[1] in ("leftmost", "rightmost"):
        attrs, i = _noun_phrase(w, 2)
        clause = ("rank", w[1][:-4], 0)
    elif w[1] == "second":
        attrs, i = _noun_phrase(w, 2)
        assert w[i:i + 2] == ["from", "the"]
        clause, i = ("rank", w[i + 2], 1), i + 3
    else:
        attrs, i = _noun_phrase(w, 1)
        rest = w[i:]
        clause = None
        if rest[:2] == ["at", "the"]:
            clause, i = ("rank", rest[2], 0), i + 3
        elif rest[:1] == ["moving"]:
            clause, i = ("motion", rest[1]), i + 2
        elif rest:
            key = tuple(rest[:2]) if tuple(rest[:2]) in RELATIONS else tuple(rest[:1])
            rel = RELATIONS[key]
            assert w[i + len(key)] == "the"
            ref, i = _noun_phrase(w, i + len(key) + 1)
            clause = ("relation", rel, ref)
    assert i == len(w), f"unparsed words in {sentence!r}"
    return attrs, clause


def visible(rec: dict, t: int) -> list[dict]:
    return [o for o in rec["objects"] if o["visible_px"][t] >= LISTED_PX]


def matches(o: dict, attrs: dict, t: int, hidden: float = HIDDEN) -> bool:
    return all(o[k] == v or (k == "colour" and o["shadow"][t] >= hidden) for k, v in attrs.items())


def motion_of(o: dict) -> str:
    """Direction from the per-frame centres (not from the stored velocity)."""
    c = o["centre"]
    T = len(c)
    vx, vy = (c[-1][0] - c[0][0]) / (T - 1), (c[-1][1] - c[0][1]) / (T - 1)
    speed = math.hypot(vx, vy)
    if speed < 0.05:
        return "static"
    if abs(vx) >= 0.85 * speed:
        return "right" if vx > 0 else "left"
    if abs(vy) >= 0.85 * speed:
        return "down" if vy > 0 else "up"
    return "diagonal"


def relation(o: dict, ref: dict, rel: str, t: int) -> bool:
    (ox, oy), (rx, ry) = o["centre"][t], ref["centre"][t]
    dx, dy = rx - ox, ry - oy
    if math.hypot(dx, dy) - o["radius"] - ref["radius"] > NEAR:
        return False
    return {"next to": True, "above": dy > 0 and abs(dx) <= dy, "below": dy < 0 and abs(dx) <= -dy,
            "left of": dx > 0 and abs(dy) <= dx, "right of": dx < 0 and abs(dy) <= -dx}[rel]


def _rank_pick(cands: list[dict], end: str, rank: int, t: int) -> dict:
    ax = 0 if end in ("left", "right") else 1
    key = [(o["visible_box"][t][ax] + o["visible_box"][t][ax + 2]) / 2 for o in cands]
    order = [o for _, o in sorted(zip(key, cands), key=lambda kv: kv[0])]
    if end in ("right", "bottom"):
        order = order[::-1]
    return order[rank]


def referents(rec: dict, sentence: str, t: int, hidden: float = HIDDEN) -> tuple[list[int], int]:
    """Instance ids the sentence picks in frame t, and how many objects its noun phrase matches."""
    attrs, clause = parse(sentence)
    cands = [o for o in visible(rec, t) if matches(o, attrs, t, hidden)]
    if clause is None:
        picked = cands
    elif clause[0] == "rank":
        picked = [_rank_pick(cands, clause[1], clause[2], t)] if len(cands) > clause[2] else []
    elif clause[0] == "motion":
        picked = [o for o in cands if motion_of(o) == clause[1]]
    else:
        refs = [o for o in visible(rec, t) if matches(o, clause[2], t)]
        assert len(refs) == 1, f"{rec['video_id']} frame {t}: reference of {sentence!r} matches {len(refs)} objects"
        picked = [o for o in cands if o is not refs[0] and relation(o, refs[0], clause[1], t)]
    return [o["instance_id"] for o in picked], len(cands)


def check_query(rec: dict, q: dict) -> None:
    """Assert that query ``q`` of video record ``rec`` singles out its target as its type claims."""
    target = rec["objects"][q["instance_id"] - 1]
    assert target["instance_id"] == q["instance_id"]
    frames = [t for t in rec["annotated_frames"] if target["visible_px"][t] >= LISTED_PX]
    assert frames == q["frames"] and frames, f"{rec['video_id']}: {q['query']!r} has no annotated frame"
    dark_ambiguous = 0
    for t in frames:
        ids, n_matching = referents(rec, q["query"], t)
        if q["query_type"] == "temporal" and target["shadow"][t] >= HIDDEN:
            look_alikes = [o for o in visible(rec, t) if o["shape"] == target["shape"] and o["size"] == target["size"]
                           and o["shadow"][t] >= HIDDEN]
            dark_ambiguous += len(look_alikes) >= 2
            continue
        assert ids == [q["instance_id"]], (
            f"{rec['video_id']} frame {t}: {q['query']!r} ({q['query_type']}) picks {ids}, not {q['instance_id']}")
        if q["query_type"] in ("position", "relation", "motion"):
            assert n_matching >= 2, f"{rec['video_id']} frame {t}: {q['query']!r} is answerable by appearance alone"
    if q["query_type"] == "temporal":
        assert dark_ambiguous >= 1, f"{rec['video_id']}: {q['query']!r} is never hidden by the shadow"
        assert any(target["shadow"][t] < HIDDEN for t in frames), f"{rec['video_id']}: {q['query']!r} never lit"
    if q["query_type"] == "appearance":  # minimal: no shorter description (shape kept) is unique
        attrs, _ = parse(q["query"])
        for drop in [k for k in attrs if k != "shape"]:
            shorter = " ".join(["the"] + [attrs[k] for k in ("size", "colour", "shape") if k in attrs and k != drop])
            assert any(referents(rec, shorter, t, HIDDEN_STRICT)[0] != [q["instance_id"]] for t in frames), (
                f"{rec['video_id']}: {q['query']!r} is not minimal ({shorter!r} is unique too)")


def check_any_query(rec: dict, q: dict) -> None:
    """``check_query`` for the original world, ``synth_checker_hard.check_hard_query`` for the hard one."""
    if "meaning" in q:
        check_hard_query(rec, q)
    else:
        check_query(rec, q)
