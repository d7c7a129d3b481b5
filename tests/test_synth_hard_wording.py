"""Hard-world wording: every wording reads back to its meaning, none is ambiguous, and the
paraphrase split keeps its held-out wording out of the train split."""

from __future__ import annotations

from collections import Counter

import numpy as np
from helpers.synth_checker_hard import held_out_wording, parse

from clawcrane.datasets.synth.hard.meaning import Meaning, NounPhrase
from clawcrane.datasets.synth.hard.motion import DIRECTIONS
from clawcrane.datasets.synth.hard.wording import HELD_OUT, choose_wording, wordings
from clawcrane.pipeline.language import mirror_tokens, tokenize


def _noun_phrases():
    for shape in ("circle", "square", "triangle", "diamond"):
        yield NounPhrase(shape=shape)
        for colour in ("orange", "teal"):
            yield NounPhrase(shape=shape, colour=colour)


def all_meanings() -> list[Meaning]:
    """A grid over every field value of every query type."""
    out = []
    refs = (NounPhrase(shape="square"), NounPhrase(shape="circle", colour="pink"))
    for np_ in _noun_phrases():
        out += [Meaning(query_type="appearance", target=np_), Meaning(query_type="temporal", target=np_)]
        for axis, ends in (("x", ("left", "right")), ("y", ("top", "bottom"))):
            for end in ends:
                out += [Meaning(query_type="position", target=np_, axis=axis, end=end, rank=r) for r in (0, 1, 2)]
        out.append(Meaning(query_type="position", target=np_, axis="x", end="middle", rank=1))
        for extreme in ("largest", "smallest"):
            out += [Meaning(query_type="size", target=np_, extreme=extreme, group=g) for g in (2, 3)]
        for rel in ("next to", "above", "below", "left of", "right of"):
            out += [Meaning(query_type="relation", target=np_, relation=rel, reference=ref) for ref in refs]
        out += [Meaning(query_type="motion", target=np_, motion=d) for d in (*DIRECTIONS, "static")]
        out += [Meaning(query_type="motion", target=np_, speed=s, group=2) for s in ("faster", "slower")]
    return out


def _all_wordings():
    for m in all_meanings():
        for template, options in wordings(m).items():
            for text, held in options:
                yield m, template, text, held


def test_every_wording_reads_back_to_its_meaning_with_the_independent_grammar():
    n = 0
    for m, template, text, _ in _all_wordings():
        expected = m.to_json()
        if expected["type"] == "temporal":  # worded like appearance; the shadow makes it temporal
            expected["type"] = "appearance"
        assert parse(text) == expected, (template, text)
        assert len(tokenize(text)) <= 20  # the head reads at most 20 words
        n += 1
    assert n > 5000


def test_no_sentence_words_two_meanings():
    seen: dict[str, dict] = {}
    for m, _, text, _ in _all_wordings():
        key = {**m.to_json(), "type": "look" if m.query_type in ("appearance", "temporal") else m.query_type}
        assert seen.setdefault(text, key) == key, f"{text!r} words {seen[text]} and {key}"


def test_held_out_ids_match_what_the_sentence_shows():
    used = Counter()
    for _, template, text, held in _all_wordings():
        assert set(held) == held_out_wording(text), (template, text, held)
        used.update(held)
    assert set(used) == set(HELD_OUT)  # every documented held-out wording is reachable


def test_every_meaning_has_several_seen_templates_and_a_paraphrase():
    for m in all_meanings():
        seen = {t for t, options in wordings(m).items() if any(not h for _, h in options)}
        assert len(seen) >= 2, (m, seen)
        texts = {text for options in wordings(m).values() for text, h in options if not h}
        assert len(texts) >= 2
        if m.target.colour or m.target.shape != "triangle" or m.query_type not in ("appearance", "temporal"):
            assert any(h for options in wordings(m).values() for _, h in options), m


def test_train_wording_is_never_held_out_and_test_wording_sometimes_is():
    rng = np.random.default_rng(0)
    counts = Counter()
    for m in all_meanings():
        for split in ("train", "test"):
            w = choose_wording(m, split, rng)
            assert set(w.held_out) == held_out_wording(w.sentence)
            assert w.label == ("paraphrase" if w.held_out else "seen")
            counts[(split, w.label)] += 1
    assert counts[("train", "paraphrase")] == 0
    share = counts[("test", "paraphrase")] / (counts[("test", "paraphrase")] + counts[("test", "seen")])
    assert 0.3 < share < 0.5


def test_left_and_right_words_are_the_ones_the_flip_augmentation_swaps():
    # the head mirrors frames and swaps exactly these tokens: any other spelling would become false
    for _, _, text, _ in _all_wordings():
        for token in tokenize(text):
            if "left" in token or "right" in token:
                assert mirror_tokens([token]) != [token], (text, token)
