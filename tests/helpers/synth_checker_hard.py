"""An independent checker for the hard synthetic world (test helper, not the generator).

It reads a sentence with its own grammar (written from the wording documented for the hard
presets, not from the generator's template tables, which it never imports): a determiner, a
noun phrase ([modifier] [colour] noun, or a partitive 'the bigger of the two red balls'), and
a clause after the noun ('that is' / 'which is' / a verb phrase / a relation to a second noun
phrase). It turns the sentence into the canonical meaning (the JSON form stored per query in
synth_scenes.json), and evaluates that meaning on the scene description alone: per-frame
centres, visible boxes and pixels, shadow strengths, radii. Directions and speeds come from the
centres, not from the stored velocities. Its thresholds sit between the generator's "holds" and
"clearly does not hold" margins, so a sentence the generator kept must pass here, and a
sentence with a wrong word must fail.
"""

from __future__ import annotations

import math
import re

LISTED_PX = 20
HIDDEN = 0.5
"""Shadow strength from which an object's colour counts as unknown."""
HIDDEN_STRICT = 0.2
"""The generator's documented rule (colour unknown from 0.2): used to check minimality."""
NEAR = 34.0
"""Relation: edge gap at most this (generator: holds <= 24, other look-alikes > 44)."""
RANK_GAP = 8.0
"""Position: the picked object's box centre is at least this far from its neighbours' (generator: 16)."""
SIZE_RATIO = 1.25
"""Size: radius ratio to every other look-alike (generator: >= 1.35)."""
SIZE_PIXELS = 1.3
"""Size: the frame shows it too: visible pixels ratio (generator: >= 1.35^2 * 0.8)."""
SPEED_RATIO = 1.5
"""Speed: ratio of the two measured speeds (generator: >= 1.8)."""
DIRECTION_TOLERANCE = 20.0
"""A measured direction within this many degrees of one of the eight gets its name (generator: 10)."""

NOUNS = {"circle": "circle", "ball": "circle", "disc": "circle", "square": "square", "box": "square",
         "block": "square", "triangle": "triangle", "diamond": "diamond", "rhombus": "diamond"}
PLURALS = {"circles": "circle", "balls": "circle", "discs": "circle", "squares": "square", "boxes": "square",
           "blocks": "square", "triangles": "triangle", "diamonds": "diamond", "rhombuses": "diamond"}
COLOURS = {"red", "orange", "yellow", "green", "teal", "blue", "purple", "pink"}
SIDES = {"left": ("x", "left"), "right": ("x", "right"), "top": ("y", "top"), "bottom": ("y", "bottom")}
EXTREME_ADJECTIVES = {"leftmost": "left", "rightmost": "right", "highest": "top", "topmost": "top",
                      "uppermost": "top", "lowest": "bottom", "bottommost": "bottom"}
SIZE_WORDS = {"bigger": ("largest", 2), "larger": ("largest", 2), "big": ("largest", 2), "large": ("largest", 2),
              "smaller": ("smallest", 2), "small": ("smallest", 2), "little": ("smallest", 2),
              "biggest": ("largest", 3), "largest": ("largest", 3), "smallest": ("smallest", 3)}
SPEED_WORDS = {"faster": "faster", "quicker": "faster", "slower": "slower"}
STILL_WORDS = {"static", "still", "motionless"}
ORDINALS = {"second": 1, "third": 2}
NUMBERS = {"two": 2, "three": 3}
VERBS = {"moving", "going", "heading", "travelling", "moves"}
RELATIONS = [(["next", "to"], "next to"), (["near"], "next to"), (["by"], "next to"), (["beside"], "next to"),
             (["above"], "above"), (["over"], "above"), (["below"], "below"), (["under"], "below"),
             (["beneath"], "below"), (["to", "the", "left", "of"], "left of"), (["left", "of"], "left of"),
             (["to", "the", "right", "of"], "right of"), (["right", "of"], "right of")]
UNIT = {"up": (0, -1), "top": (0, -1), "upwards": (0, -1), "down": (0, 1), "bottom": (0, 1), "downwards": (0, 1),
        "left": (-1, 0), "right": (1, 0)}
"""Direction words as image-axis unit steps (y grows downwards)."""
NAMES = {(1, 0): "right", (1, 1): "down-right", (0, 1): "down", (-1, 1): "down-left", (-1, 0): "left",
         (-1, -1): "up-left", (0, -1): "up", (1, -1): "up-right"}


# ---- the grammar ----------------------------------------------------------------------------------

def _np(words: list[str], plural: bool = False) -> dict:
    """'[colour] noun' -> {'shape', 'colour'?}; the whole list must be used."""
    table = PLURALS if plural else NOUNS
    assert words and words[-1] in table, f"expected a {'plural ' if plural else ''}noun at the end of {words!r}"
    out = {"shape": table[words[-1]]}
    if len(words) == 2:
        assert words[0] in COLOURS, f"{words[0]!r} is not a colour"
        out["colour"] = words[0]
    assert len(words) <= 2, f"too many words before the noun: {words!r}"
    return out


def _direction(words: list[str]) -> str:
    """'right', 'to the right', 'up-left', 'down and to the left', 'towards the top right' -> a label."""
    steps = [w for part in words for w in part.split("-") if w not in ("to", "the", "and", "towards")]
    assert steps and all(w in UNIT for w in steps), f"not a direction: {words!r}"
    dx = sum(UNIT[w][0] for w in steps)
    dy = sum(UNIT[w][1] for w in steps)
    assert len(steps) <= 2 and (dx, dy) in NAMES, f"not a direction: {words!r}"
    return NAMES[(dx, dy)]


def _clause(words: list[str], meaning: dict) -> dict:
    """What follows the noun (after 'that is' / 'which is' when present)."""
    w = words
    if len(w) == 1 and w[0] in COLOURS:
        meaning["target"]["colour"] = w[0]
        return {**meaning, "type": "appearance"}
    if w == ["in", "the", "middle"]:
        return {**meaning, "type": "position", "axis": "x", "end": "middle", "rank": 1}
    extreme_phrase = w[:-1] in (["furthest", "to", "the"], ["on", "the", "far"], ["at", "the"])
    if extreme_phrase and w[-1] in SIDES:
        axis, end = SIDES[w[-1]]
        return {**meaning, "type": "position", "axis": axis, "end": end, "rank": 0}
    if len(w) == 4 and w[0] in ORDINALS and w[1:3] == ["from", "the"]:
        axis, end = SIDES[w[3]]
        return {**meaning, "type": "position", "axis": axis, "end": end, "rank": ORDINALS[w[0]]}
    if w in (["not", "moving"], ["standing", "still"], ["does", "not", "move"]):
        return {**meaning, "type": "motion", "motion": "static"}
    comparative = len(w) == 1 and w[0] in ("bigger", "larger", "smaller")
    superlative = len(w) == 2 and w[0] == "the" and w[1] in ("biggest", "largest", "smallest")
    if comparative or superlative:
        extreme, group = SIZE_WORDS[w[-1]]
        return {**meaning, "type": "size", "extreme": extreme, "group": group}
    if w and w[0] in VERBS:
        if w[1:] == ["faster"]:
            return {**meaning, "type": "motion", "speed": "faster", "group": 2}
        if w[1:] == ["more", "slowly"]:
            return {**meaning, "type": "motion", "speed": "slower", "group": 2}
        return {**meaning, "type": "motion", "motion": _direction(w[1:])}
    for phrase, rel in RELATIONS:
        if w[: len(phrase)] == phrase:
            rest = w[len(phrase):]
            assert rest[:1] == ["the"], f"relation without 'the <reference>': {w!r}"
            return {**meaning, "type": "relation", "relation": rel, "reference": _np(rest[1:])}
    raise AssertionError(f"cannot read {' '.join(w)!r}")


def parse(sentence: str) -> dict:
    """The canonical meaning of a hard sentence ('the middle X': the middle one of a row of three, along x)."""
    assert sentence == sentence.lower() and sentence == " ".join(sentence.split())
    w = sentence.split()
    det, w = w[0], w[1:]
    assert det in ("the", "a", "an"), f"no determiner in {sentence!r}"
    if len(w) > 3 and w[1:3] == ["of", "the"] and w[3] in NUMBERS:  # partitive
        group = NUMBERS[w[3]]
        target = _np(w[4:], plural=True)
        if w[0] in SPEED_WORDS:
            assert group == 2
            return {"type": "motion", "target": target, "speed": SPEED_WORDS[w[0]], "group": 2}
        extreme, _ = SIZE_WORDS[w[0]]
        return {"type": "size", "target": target, "extreme": extreme, "group": group}
    noun = next(k for k, x in enumerate(w) if x in NOUNS)
    pre, post = w[:noun + 1], w[noun + 1:]
    if det != "the":
        assert det == ("an" if pre[0][0] in "aeiou" else "a"), f"wrong article in {sentence!r}"
    modifier = pre[0] if len(pre) > 1 and pre[0] not in COLOURS else None
    if modifier is not None:
        pre = pre[1:]
    meaning = {"target": _np(pre)}
    if modifier is not None:
        assert not post or modifier in ORDINALS, f"a modifier and a clause in {sentence!r}"
        if modifier in ORDINALS:
            return _clause([modifier] + post, meaning)
        if modifier == "middle":
            return {**meaning, "type": "position", "axis": "x", "end": "middle", "rank": 1}
        if modifier in EXTREME_ADJECTIVES:
            axis, end = SIDES[EXTREME_ADJECTIVES[modifier]]
            return {**meaning, "type": "position", "axis": axis, "end": end, "rank": 0}
        if modifier in SIZE_WORDS:
            extreme, group = SIZE_WORDS[modifier]
            return {**meaning, "type": "size", "extreme": extreme, "group": group}
        if modifier in SPEED_WORDS:
            return {**meaning, "type": "motion", "speed": SPEED_WORDS[modifier], "group": 2}
        assert modifier in STILL_WORDS, f"unknown modifier {modifier!r}"
        return {**meaning, "type": "motion", "motion": "static"}
    if not post:
        return {**meaning, "type": "appearance"}
    if post[:2] in (["that", "is"], ["which", "is"]):
        post = post[2:]
    elif post[:1] == ["that"] and post[1:2] in (["moves"], ["does"]):
        post = post[1:]
    elif post[:1] == ["in"] and len(post) == 2:
        post = post[1:]
    return _clause(post, meaning)


# ---- reading the scene ------------------------------------------------------------------------

def visible(rec: dict, t: int) -> list[dict]:
    return [o for o in rec["objects"] if o["visible_px"][t] >= LISTED_PX]


def matches(o: dict, np_: dict, t: int, hidden: float = HIDDEN) -> bool:
    if o["shape"] != np_["shape"]:
        return False
    return "colour" not in np_ or o["colour"] == np_["colour"] or o["shadow"][t] >= hidden


def measured_velocity(o: dict) -> tuple[float, float]:
    c = o["centre"]
    T = len(c)
    return (c[-1][0] - c[0][0]) / (T - 1), (c[-1][1] - c[0][1]) / (T - 1)


def measured_direction(o: dict) -> str:
    vx, vy = measured_velocity(o)
    if math.hypot(vx, vy) < 0.05:
        return "static"
    angle = math.degrees(math.atan2(vy, vx)) % 360
    for (dx, dy), name in NAMES.items():
        nominal = math.degrees(math.atan2(dy, dx)) % 360
        gap = abs(angle - nominal) % 360
        if min(gap, 360 - gap) <= DIRECTION_TOLERANCE:
            return name
    return "unclear"


def relation(o: dict, ref: dict, rel: str, t: int) -> bool:
    (ox, oy), (rx, ry) = o["centre"][t], ref["centre"][t]
    dx, dy = rx - ox, ry - oy
    if math.hypot(dx, dy) - o["radius"] - ref["radius"] > NEAR:
        return False
    return {"next to": True, "above": dy > 0 and abs(dx) <= dy, "below": dy < 0 and abs(dx) <= -dy,
            "left of": dx > 0 and abs(dy) <= dx, "right of": dx < 0 and abs(dy) <= -dx}[rel]


def _box_centre(o: dict, t: int, ax: int) -> float:
    b = o["visible_box"][t]
    return (b[ax] + b[ax + 2]) / 2


def _position_pick(cands: list[dict], m: dict, t: int) -> list[dict]:
    axis = m["axis"]
    ax = 0 if axis == "x" else 1
    order = sorted(cands, key=lambda o: _box_centre(o, t, ax))
    if m["end"] == "middle":  # the middle of a row of three: wider than high
        xs, ys = ([_box_centre(o, t, a) for o in cands] for a in (0, 1))
        if len(order) != 3 or max(xs) - min(xs) < 1.5 * (max(ys) - min(ys)):
            return []
        k = 1
    else:
        k = m["rank"] if m["end"] in ("left", "top") else len(order) - 1 - m["rank"]
        if not 0 <= k < len(order) or len(order) < m["rank"] + (2 if m["rank"] else 1):
            return []
    c = [_box_centre(o, t, ax) for o in order]
    gaps = ([c[k] - c[k - 1]] if k > 0 else []) + ([c[k + 1] - c[k]] if k + 1 < len(c) else [])
    assert min(gaps) >= RANK_GAP, f"frame {t}: a near tie in position ({gaps})"
    return [order[k]]


def _size_pick(cands: list[dict], m: dict, t: int) -> list[dict]:
    if len(cands) != m["group"]:
        return []
    sign = 1 if m["extreme"] == "largest" else -1
    order = sorted(cands, key=lambda o: sign * o["radius"], reverse=True)
    best, rest = order[0], order[1:]
    ratio = [(best["radius"] / o["radius"]) ** sign for o in rest]
    pixels = [(best["visible_px"][t] / o["visible_px"][t]) ** sign for o in rest]
    assert min(ratio) >= SIZE_RATIO and min(pixels) >= SIZE_PIXELS, f"frame {t}: sizes too close ({ratio}, {pixels})"
    return [best]


def _speed_pick(cands: list[dict], m: dict) -> list[dict]:
    if len(cands) != 2:
        return []
    speeds = [math.hypot(*measured_velocity(o)) for o in cands]
    fast = 0 if speeds[0] > speeds[1] else 1
    assert speeds[fast] >= SPEED_RATIO * speeds[1 - fast], f"speeds too close: {speeds}"
    return [cands[fast if m["speed"] == "faster" else 1 - fast]]


def referents(rec: dict, m: dict, t: int, hidden: float = HIDDEN) -> tuple[list[int], int]:
    """Instance ids meaning ``m`` picks in frame t, and how many objects its noun phrase matches."""
    cands = [o for o in visible(rec, t) if matches(o, m["target"], t, hidden)]
    kind = m["type"]
    if kind in ("appearance", "temporal"):
        picked = cands
    elif kind == "position":
        picked = _position_pick(cands, m, t)
    elif kind == "size":
        picked = _size_pick(cands, m, t)
    elif kind == "relation":
        refs = [o for o in visible(rec, t) if matches(o, m["reference"], t)]
        assert len(refs) == 1, f"frame {t}: the reference matches {len(refs)} objects"
        picked = [o for o in cands if o is not refs[0] and relation(o, refs[0], m["relation"], t)]
    elif "speed" in m:
        picked = _speed_pick(cands, m)
    else:
        picked = [o for o in cands if measured_direction(o) == m["motion"]]
    return [o["instance_id"] for o in picked], len(cands)


def check_hard_query(rec: dict, q: dict, sentence: str | None = None) -> None:
    """Assert that ``sentence`` (default: the query's) singles out the query's target as its type claims."""
    sentence = q["query"] if sentence is None else sentence
    target = rec["objects"][q["instance_id"] - 1]
    assert target["instance_id"] == q["instance_id"]
    frames = [t for t in rec["annotated_frames"] if target["visible_px"][t] >= LISTED_PX]
    assert frames == q["frames"] and frames, f"{rec['video_id']}: {sentence!r} has no annotated frame"
    m = parse(sentence)
    if m["type"] == "appearance" and q["query_type"] == "temporal":  # same words; the shadow makes it temporal
        m["type"] = "temporal"
    assert q["query_type"] == m["type"], f"{sentence!r} reads as {m['type']}, recorded {q['query_type']}"
    dark_ambiguous = 0
    for t in frames:
        ids, n_matching = referents(rec, m, t)
        if q["query_type"] == "temporal" and target["shadow"][t] >= HIDDEN:
            look_alikes = [o for o in visible(rec, t) if o["shape"] == target["shape"] and o["shadow"][t] >= HIDDEN
                           and abs(o["radius"] - target["radius"]) <= 0.1 * target["radius"]]
            dark_ambiguous += len(look_alikes) >= 2
            continue
        assert ids == [q["instance_id"]], (
            f"{rec['video_id']} frame {t}: {sentence!r} ({q['query_type']}) picks {ids}, not {q['instance_id']}")
        if q["query_type"] not in ("appearance", "temporal"):
            assert n_matching >= 2, f"{rec['video_id']} frame {t}: {sentence!r} is answerable by appearance alone"
    if q["query_type"] == "temporal":
        assert dark_ambiguous >= 1, f"{rec['video_id']}: {sentence!r} is never hidden by the shadow"
        assert any(target["shadow"][t] < HIDDEN for t in frames), f"{rec['video_id']}: {sentence!r} never lit"
    if q["query_type"] == "appearance" and "colour" in m["target"]:  # minimal: the shape alone is not unique
        shorter = {"type": "appearance", "target": {"shape": m["target"]["shape"]}}
        assert any(referents(rec, shorter, t, HIDDEN_STRICT)[0] != [q["instance_id"]] for t in frames), (
            f"{rec['video_id']}: {sentence!r} is not minimal (the shape alone is unique too)")
    if sentence == q["query"] and "meaning" in q:  # the recorded meaning is what the sentence says
        assert m == q["meaning"], f"{sentence!r}: read as {m}, recorded {q['meaning']}"


# ---- wrong words and held-out wording -----------------------------------------------------------

OPPOSITES = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost", "top": "bottom",
             "bottom": "top", "highest": "lowest", "topmost": "bottommost", "uppermost": "lowest", "lowest": "highest",
             "bottommost": "topmost", "up": "down", "down": "up", "upwards": "downwards", "downwards": "upwards",
             "bigger": "smaller", "larger": "smaller", "big": "small", "large": "little", "smaller": "bigger",
             "small": "big", "little": "large", "biggest": "smallest", "largest": "smallest", "smallest": "largest",
             "faster": "slower", "quicker": "slower", "slower": "faster", "above": "below", "over": "under",
             "below": "above", "under": "over", "beneath": "above", "second": "third", "third": "second"}
"""One word each sentence type hinges on, and a word that says something else."""


def wrong_variants(sentence: str) -> list[str]:
    """The sentence with one word (or one half of 'up-left') replaced by its opposite, each way it can be
    ('moving faster' and 'moving more slowly' swap as phrases)."""
    words = sentence.split()
    out = [sentence.replace(" more slowly", " faster")] if sentence.endswith(" more slowly") else []
    if len(words) > 2 and words[-1] == "faster" and words[-2] in VERBS:
        out.append(" ".join(words[:-1] + ["more", "slowly"]))
    for k, word in enumerate(words):
        parts = word.split("-")
        for j, part in enumerate(parts):
            if part in OPPOSITES and not (part == "faster" and k == len(words) - 1 and k > 0 and words[k - 1] in VERBS):
                changed = parts[:j] + [OPPOSITES[part]] + parts[j + 1:]
                out.append(" ".join(words[:k] + ["-".join(changed)] + words[k + 1:]))
    return out


HELD_OUT_MARKERS = {
    "disc": r"\bdiscs?\b", "block": r"\bblocks?\b", "rhombus": r"\brhombus(es)?\b", "travelling": r"\btravelling\b",
    "motionless": r"\bmotionless\b", "beneath": r"\bbeneath\b", "beside": r"\bbeside\b", "uppermost": r"\buppermost\b",
    "quicker": r"\bquicker\b", "which-is": r"\bwhich is\b", "of-the-n": r"^the \w+ of the (two|three) ",
    "in-colour": r" in (red|orange|yellow|green|teal|blue|purple|pink)$",
}
"""The documented paraphrase (test-only) wordings, as this checker recognises them in a sentence."""


def held_out_wording(sentence: str) -> set[str]:
    """The held-out wordings a sentence uses (empty: seen wording)."""
    return {k for k, pattern in HELD_OUT_MARKERS.items() if re.search(pattern, sentence)}
