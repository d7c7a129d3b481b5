"""The validation split: a part of the train split held out by video, for model selection.

A2D-Sentences, J-HMDB-Sentences and the synthetic benchmark have no validation split
(../shared/datasets.md §3: select checkpoints and tune on a part of the train split held out by
video; the test split is read only to report). ``validation_videos`` picks that part from the
video ids alone: the train videos sorted by ``sha256(video_id)``, the first
``round(fraction * n)`` of them (at least one when ``fraction > 0`` and there are two or more).
The choice depends on nothing but the ids and the fraction (not on order, sentences, masks or
the test split), and a video keeps its place in the hash order when others are added.

A dataset with its own ``val`` split (queries whose ``split`` is 'val' with annotated frames)
uses it instead; ``fraction`` is then ignored. Pure: ids in, ids out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from clawcrane.datasets.records import Dataset, Query

VAL = "val"


def _rank(video_id: str) -> str:
    return hashlib.sha256(video_id.encode("utf-8")).hexdigest()


def validation_videos(video_ids: Iterable[str], fraction: float) -> list[str]:
    """The train videos held out for validation, sorted by id (see the module docstring)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    ids = sorted(set(video_ids), key=lambda v: (_rank(v), v))
    n = len(ids)
    k = int(round(fraction * n))
    if fraction > 0 and k == 0 and n >= 2:
        k = 1
    return sorted(ids[:k])


@dataclass
class TrainValSplit:
    """Which queries train the head and which select its checkpoint."""

    fit: list[Query]
    """Queries the head is fitted on (the train split minus the validation videos)."""
    val: list[Query]
    """Queries scored after each epoch to pick best.pt."""
    source: str
    """'carved' (held out of train by video id), 'dataset' (the dataset's own val split) or 'none'."""
    fraction: float
    """The requested fraction (0 with a dataset's own split or none)."""
    videos: list[str] = field(default_factory=list)
    """Video ids of the validation queries, sorted."""

    def describe(self) -> dict:
        """What goes into checkpoints and predictions (JSON-serialisable)."""
        return {"source": self.source, "fraction": self.fraction, "videos": list(self.videos)}


def train_val_split(dataset: Dataset, fraction: float) -> TrainValSplit:
    """The fit and validation queries of ``dataset``; reads no test query."""
    train = [q for q in dataset.split_queries("train") if q.frames]
    own = [q for q in dataset.split_queries(VAL) if q.frames]
    if own:
        vids = sorted({q.video_id for q in own})
        return TrainValSplit(fit=train, val=own, source="dataset", fraction=0.0, videos=vids)
    vids = validation_videos({q.video_id for q in train}, fraction)
    if not vids:
        return TrainValSplit(fit=train, val=[], source="none", fraction=fraction, videos=[])
    held = set(vids)
    return TrainValSplit(fit=[q for q in train if q.video_id not in held], val=[q for q in train if q.video_id in held],
                         source="carved", fraction=fraction, videos=vids)


def samples_of(queries: Iterable[Query]) -> list[tuple[Query, int]]:
    """(query, frame) pairs of ``queries`` (the unit every metric averages over)."""
    return [(q, f) for q in queries for f in q.frames]


def split_queries(dataset: Dataset, split: str, validation: dict | None = None) -> list[Query]:
    """Queries of 'train', 'test', 'all', or 'val': the validation videos a head was selected on.

    ``validation`` is the record a head stores (``TrainValSplit.describe()``); 'val' needs it (or
    the dataset's own val split).
    """
    if split == "all":
        return dataset.split_queries(None)
    if split != VAL:
        return dataset.split_queries(split)
    own = dataset.split_queries(VAL)
    if own:
        return own
    if not validation or not validation.get("videos"):
        raise ValueError("no validation videos recorded")
    held = set(validation["videos"])
    return [q for q in dataset.split_queries("train") if q.video_id in held]
