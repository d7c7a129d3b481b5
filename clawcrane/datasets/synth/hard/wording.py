"""Sentences for hard meanings: synonyms, templates, and the paraphrase split.

Every meaning (``meaning.Meaning``) has many wordings: templates ('the X', 'a X', 'the X that is
...', 'the leftmost X', 'the X on the far left', ...) whose slots take synonyms (circle / ball,
square / box, moving / going / heading, below / under, ...). ``wordings`` lists them all;
``choose_wording`` picks one: a template uniformly, then a wording of it uniformly.

**The paraphrase split.** The wordings in ``HELD_OUT`` never occur in a train sentence. A test
query uses at least one of them with probability ``PARAPHRASE_SHARE`` (when its meaning has such
a wording) and is then flagged 'paraphrase'; every other query is 'seen'. Held out:

===========  ================================================================================
id           what (the seen wording it paraphrases)
===========  ================================================================================
disc         the noun 'disc' for a circle (seen: circle, ball)
block        the noun 'block' for a square (seen: square, box)
rhombus      the noun 'rhombus' for a diamond (seen: diamond)
travelling   the verb 'travelling' (seen: moving, going, heading)
motionless   'motionless' (seen: static, still, not moving, standing still)
beneath      'beneath' (seen: below, under)
beside       'beside' (seen: next to, near, by)
uppermost    'the uppermost X' (seen: highest, topmost, at the top)
quicker      'the quicker X' (seen: faster)
which-is     the relative clause 'the X which is ...' (seen: 'the X that is ...')
of-the-n     the partitive 'the bigger of the two Xs', 'the smallest of the three Xs', 'the faster of the two Xs'
in-colour    'the X in red' (seen: 'the red X', 'the X that is red')
===========  ================================================================================

Words about left and right are only the tokens 'left', 'right', 'leftmost' and 'rightmost' (a
diagonal is written 'down-left', which the tokenizer splits), so the head's flip augmentation,
which swaps exactly these tokens, keeps every sentence true of the mirrored frames.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from clawcrane.datasets.synth.hard.meaning import Meaning, NounPhrase

HELD_OUT = ("disc", "block", "rhombus", "travelling", "motionless", "beneath", "beside", "uppermost", "quicker",
            "which-is", "of-the-n", "in-colour")
"""Ids of the wordings that occur only in test sentences (see the module docstring)."""
PARAPHRASE_SHARE = 0.4
"""Share of test queries worded with held-out wording (when their meaning has one)."""

Alt = tuple[str, frozenset]
"""One wording of a slot: its text and the held-out ids it uses."""

_NOUNS = {
    "circle": (("circle", "circles", ""), ("ball", "balls", ""), ("disc", "discs", "disc")),
    "square": (("square", "squares", ""), ("box", "boxes", ""), ("block", "blocks", "block")),
    "triangle": (("triangle", "triangles", ""),),
    "diamond": (("diamond", "diamonds", ""), ("rhombus", "rhombuses", "rhombus")),
}
_DIRECTION_PHRASES = {
    "right": ("right", "to the right"), "left": ("left", "to the left"),
    "up": ("up", "upwards"), "down": ("down", "downwards"),
    "up-right": ("up-right", "up and to the right", "towards the top right"),
    "up-left": ("up-left", "up and to the left", "towards the top left"),
    "down-right": ("down-right", "down and to the right", "towards the bottom right"),
    "down-left": ("down-left", "down and to the left", "towards the bottom left"),
}
_RELATION_PHRASES = {
    "next to": ("next to", "near", "by", ("beside", "beside")),
    "above": ("above", "over"),
    "below": ("below", "under", ("beneath", "beneath")),
    "left of": ("left of", "to the left of"),
    "right of": ("right of", "to the right of"),
}
_ORDINALS = {1: "second", 2: "third"}
_VERBS = ("moving", "going", "heading", ("travelling", "travelling"))


def alts(*items) -> list[Alt]:
    """Slot wordings from plain strings (seen) or (text, held-out id) pairs."""
    return [(i, frozenset()) if isinstance(i, str) else (i[0], frozenset([i[1]])) for i in items]


def seq(*parts) -> list[Alt]:
    """Every concatenation of one wording per part (a part is a string or a list of ``Alt``)."""
    lists = [alts(p) if isinstance(p, str) else p for p in parts]
    return [(" ".join(t for t, _ in combo if t), frozenset().union(*(h for _, h in combo)))
            for combo in itertools.product(*lists)]


def nouns(np_: NounPhrase, plural: bool = False) -> list[Alt]:
    """The noun phrase without a determiner: '[shade] noun' for every noun of its shape."""
    out = []
    for sg, pl, held in _NOUNS[np_.shape]:
        text = f"{np_.colour} {pl if plural else sg}" if np_.colour else (pl if plural else sg)
        out.append((text, frozenset([held]) if held else frozenset()))
    return out


def _article(np_: NounPhrase) -> list[Alt]:
    return [(("an " if t[0] in "aeiou" else "a ") + t, h) for t, h in nouns(np_)]


def _clause(np_: NounPhrase, predicate) -> dict[str, list[Alt]]:
    """'the X that is P' (seen) and 'the X which is P' (held out) for a predicate P."""
    return {"that-is": seq("the", nouns(np_), "that is", predicate),
            "which-is": seq("the", nouns(np_), [("which is", frozenset(["which-is"]))], predicate)}


def _look(m: Meaning) -> dict[str, list[Alt]]:
    np_ = m.target
    out = {"the": seq("the", nouns(np_)), "a": _article(np_)}
    if np_.colour:
        bare = NounPhrase(shape=np_.shape)
        out |= {f"colour-{k}": v for k, v in _clause(bare, np_.colour).items()}
        out["in-colour"] = seq("the", nouns(bare), [(f"in {np_.colour}", frozenset(["in-colour"]))])
    return out


def _position(m: Meaning) -> dict[str, list[Alt]]:
    np_, end = m.target, m.end
    the_x = seq("the", nouns(np_))
    if end == "middle":
        return {"middle-adj": seq("the middle", nouns(np_)), "in-middle": seq(the_x, "in the middle"),
                **_clause(np_, "in the middle")}
    if m.rank:
        o = _ORDINALS[m.rank]
        return {"ord-adj": seq(f"the {o}", nouns(np_), f"from the {end}"),
                "ord-post": seq(the_x, f"{o} from the {end}"),
                **_clause(np_, f"{o} from the {end}")}
    if end in ("left", "right"):
        return {"most": seq(f"the {end}most", nouns(np_)), "furthest": seq(the_x, f"furthest to the {end}"),
                "far": seq(the_x, f"on the far {end}"), "at": seq(the_x, f"at the {end}"),
                **_clause(np_, f"furthest to the {end}")}
    adjectives = {"top": ("highest", "topmost", ("uppermost", "uppermost")), "bottom": ("lowest", "bottommost")}[end]
    return {"adj": seq("the", alts(*adjectives), nouns(np_)), "at": seq(the_x, f"at the {end}"),
            **_clause(np_, f"at the {end}")}


def _partitive(word: str, m: Meaning) -> list[Alt]:
    number = {2: "two", 3: "three"}[m.group]
    return seq(f"the {word}", [(f"of the {number}", frozenset(["of-the-n"]))], nouns(m.target, plural=True))


def _size(m: Meaning) -> dict[str, list[Alt]]:
    np_ = m.target
    big = m.extreme == "largest"
    if m.group == 2:
        words = ("bigger", "larger") if big else ("smaller",)
        plain = ("big", "large") if big else ("small", "little")
        out = {"comparative": seq("the", alts(*words), nouns(np_)), "plain": seq("the", alts(*plain), nouns(np_)),
               **_clause(np_, alts(*words))}
    else:
        words = ("biggest", "largest") if big else ("smallest",)
        out = {"superlative": seq("the", alts(*words), nouns(np_)),
               **_clause(np_, seq("the", alts(*words)))}
    out["partitive"] = [a for w in words for a in _partitive(w, m)]
    return out


def _relation(m: Meaning) -> dict[str, list[Alt]]:
    rel = alts(*_RELATION_PHRASES[m.relation])
    ref = seq("the", nouns(m.reference))
    return {"the": seq("the", nouns(m.target), rel, ref), "a": seq(_article(m.target), rel, ref),
            **_clause(m.target, seq(rel, ref))}


def _motion(m: Meaning) -> dict[str, list[Alt]]:
    np_ = m.target
    verbs = alts(*_VERBS)
    if m.speed is not None:
        fast = m.speed == "faster"
        adverb = "faster" if fast else "more slowly"
        adjectives = ("faster", ("quicker", "quicker")) if fast else ("slower",)
        return {"adj": seq("the", alts(*adjectives), nouns(np_)), "verb": seq("the", nouns(np_), verbs, adverb),
                "moves": seq("the", nouns(np_), "that moves", adverb), **_clause(np_, seq(verbs, adverb)),
                "partitive": _partitive("faster" if fast else "slower", m)}
    if m.motion == "static":
        return {"adj": seq("the", alts("static", "still", ("motionless", "motionless")), nouns(np_)),
                "standing": seq("the", nouns(np_), "standing still"),
                "not-move": seq("the", nouns(np_), "that does not move"),
                **_clause(np_, alts("not moving", "standing still"))}
    directions = alts(*_DIRECTION_PHRASES[m.motion])
    return {"verb": seq("the", nouns(np_), verbs, directions),
            "moves": seq("the", nouns(np_), "that moves", directions),
            **_clause(np_, seq(verbs, directions))}


_TEMPLATES = {"appearance": _look, "temporal": _look, "position": _position, "size": _size, "relation": _relation,
              "motion": _motion}


def wordings(m: Meaning) -> dict[str, list[Alt]]:
    """Every wording of ``m``, by template id ('<type>/<template>')."""
    return {f"{m.query_type}/{k}": v for k, v in _TEMPLATES[m.query_type](m).items()}


@dataclass(frozen=True, kw_only=True)
class Wording:
    """The sentence chosen for a meaning, and how it was worded."""

    sentence: str
    template: str
    """'<query type>/<template id>', e.g. 'position/far'."""
    held_out: tuple[str, ...]
    """The ``HELD_OUT`` ids the sentence uses (sorted); empty for seen wording."""

    @property
    def label(self) -> str:
        """'paraphrase' when it uses held-out wording, else 'seen' (query_types.csv's 4th column)."""
        return "paraphrase" if self.held_out else "seen"

    def to_json(self) -> dict:
        return {"template": self.template, "held_out": list(self.held_out), "label": self.label}


def choose_wording(m: Meaning, split: str, rng: np.random.Generator) -> Wording:
    """A wording of ``m``: seen wording, or (test split, share ``PARAPHRASE_SHARE``) held-out wording."""
    options = wordings(m)
    want_held = split == "test" and rng.random() < PARAPHRASE_SHARE
    pools = {k: [a for a in v if bool(a[1]) == want_held] for k, v in options.items()}
    pools = {k: v for k, v in pools.items() if v}
    if not pools:  # no held-out wording for this meaning: a seen one
        pools = {k: [a for a in v if not a[1]] for k, v in options.items()}
        pools = {k: v for k, v in pools.items() if v}
    template = sorted(pools)[int(rng.integers(len(pools)))]
    text, held = pools[template][int(rng.integers(len(pools[template])))]
    return Wording(sentence=text, template=template, held_out=tuple(sorted(held)))
