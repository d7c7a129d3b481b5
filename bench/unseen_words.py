"""How many test sentences hold a word no train sentence has, per query type and wording.

A head that learns its word vectors (the bi-LSTM) reads such a word as ``<unk>``: it cannot know
that "rhombus" means what "diamond" meant in training. This prints, for the test split (or
``--split``), the queries and samples (query, annotated frame) with at least one unseen word, and
the commonest unseen words. The README's paraphrase finding comes from:

    python bench/unseen_words.py --dataset data/hard-full
"""

from __future__ import annotations

import argparse
from collections import Counter

from clawcrane.datasets import open_dataset
from clawcrane.pipeline.language import tokenize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--top", type=int, default=15, help="unseen words listed")
    args = ap.parse_args()

    ds = open_dataset(args.dataset)
    seen = {w for q in ds.queries if q.split == "train" for w in tokenize(q.sentence, max_words=10_000)}
    rows: Counter = Counter()
    unseen_words: Counter = Counter()
    for q in ds.queries:
        if q.split != args.split:
            continue
        new = [w for w in tokenize(q.sentence, max_words=10_000) if w not in seen]
        key = (q.query_type or "untyped", q.wording or "-")
        rows[key + ("queries",)] += 1
        rows[key + ("samples",)] += len(q.frames)
        if new:
            rows[key + ("queries_unseen",)] += 1
            rows[key + ("samples_unseen",)] += len(q.frames)
            unseen_words.update(new)

    print(f"{ds.root} {args.split}: {len(seen)} words in train sentences")
    print("| type | wording | queries | with an unseen word | samples | with an unseen word |")
    print("|---|---|---|---|---|---|")
    keys = sorted({k[:2] for k in rows})
    for t, w in keys:
        q, qu = rows[(t, w, "queries")], rows[(t, w, "queries_unseen")]
        s, su = rows[(t, w, "samples")], rows[(t, w, "samples_unseen")]
        print(f"| {t} | {w} | {q} | {qu} ({100 * qu / max(q, 1):.0f} %) | {s} | {su} ({100 * su / max(s, 1):.0f} %) |")
    print("unseen words:", ", ".join(f"{w} {n}" for w, n in unseen_words.most_common(args.top)))


if __name__ == "__main__":
    main()
