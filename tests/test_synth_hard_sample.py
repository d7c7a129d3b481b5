"""A sample of the `hard` preset, planned and made directly (no files): the independent checker
accepts every sentence and rejects wrong ones, the plan balances the query types, foils defeat
the shortcut of ignoring the noun phrase, and making a video is a pure function of its plan."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers.synth_checker_hard import check_hard_query, held_out_wording, parse, wrong_variants

from clawcrane.datasets.synth.hard.generate import (
    HARD_PRESETS,
    HARD_QUERY_TYPES,
    plan_hard_dataset,
    synthesize_hard_video,
)
from clawcrane.datasets.synth.hard.records import hard_video_record

SAMPLE = {"train": 14, "test": 11}
"""Videos of the sample: the first ones of each split in the plan."""


@pytest.fixture(scope="module")
def plans():
    return plan_hard_dataset("hard", 0)


@pytest.fixture(scope="module")
def sample(plans):
    chosen = [p for split, n in SAMPLE.items() for p in [p for p in plans if p.split == split][:n]]
    return [hard_video_record(synthesize_hard_video(p)) for p in chosen]


def _queries(records):
    for rec in records:
        for q in rec["queries"]:
            yield rec, q


def test_the_plan_balances_query_types_and_ends_with_the_missed_video(plans):
    assert len(plans) == HARD_PRESETS["hard"].videos + 1 and plans[-1].split == "missed"
    assert sum(p.split == "test" for p in plans) == round(0.2 * HARD_PRESETS["hard"].videos)
    kinds = Counter(kind for p in plans for kind, _ in p.motifs)
    motifs_of_type = {"position": kinds["position"], "size": kinds["size"], "relation": kinds["relation"],
                      "motion": kinds["motion"] + kinds["speed"], "temporal": kinds["temporal"]}
    assert max(motifs_of_type.values()) <= 2 * min(motifs_of_type.values())
    assert 0.2 < kinds["occlusion"] / len(plans) < 0.4
    assert plan_hard_dataset("hard", 0) == plans and plan_hard_dataset("hard", 1) != plans


def test_every_sentence_of_the_sample_passes_the_independent_checker(sample):
    types = {"train": Counter(), "test": Counter()}
    for rec, q in _queries(sample):
        check_hard_query(rec, q)
        types[rec["split"]][q["query_type"]] += 1
        assert not (rec["split"] == "train" and held_out_wording(q["query"]))
    assert set(types["train"]) == set(types["test"]) == set(HARD_QUERY_TYPES)
    assert sum(len(r["failed"]) for r in sample) <= 1  # planned queries are realised


def test_wrong_words_fail_in_the_sample(sample):
    rejected = Counter()
    for rec, q in _queries(sample):
        for wrong in wrong_variants(q["query"]):
            m = parse(wrong)
            if m.get("end") in ("left", "right", "top", "bottom") and m["rank"] == 1:
                continue  # second of three from either end is the same object
            with pytest.raises(AssertionError):
                check_hard_query(rec, q, wrong)
            rejected[q["query_type"]] += 1
    assert {"position", "size", "relation", "motion"} <= set(rejected)


def test_foils_make_the_noun_phrase_necessary(sample):
    # for size, speed and direction queries, the clause alone (ignoring what the target is) often
    # picks another object: a foil of another look is bigger, faster, or moves the same way
    fooled = Counter()
    for rec, q in _queries(sample):
        m, target = q["meaning"], rec["objects"][q["instance_id"] - 1]
        for t in q["frames"]:
            others = [o for o in rec["objects"] if o["visible_px"][t] >= 20 and o is not target]
            if m["type"] == "size":
                key = "radius" if m["extreme"] == "largest" else None
                beats = [o for o in others if (o["radius"] > target["radius"]) == (key is not None)]
                fooled[("size", bool(beats))] += 1
            elif m["type"] == "motion" and "motion" in m:
                fooled[("direction", any(o["direction"] == target["direction"] for o in others))] += 1
    for kind in ("size", "direction"):
        assert fooled[(kind, True)] >= 0.25 * (fooled[(kind, True)] + fooled[(kind, False)]), fooled


def test_a_video_is_a_pure_function_of_its_plan(plans, sample):
    plan = next(p for p in plans if p.video_id == sample[3]["video_id"])
    assert hard_video_record(synthesize_hard_video(plan)) == sample[3]
