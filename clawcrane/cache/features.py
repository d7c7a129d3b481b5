"""The feature cache (stage ``extract``): per candidate, its mask-pooled feature and position p_i.

Rows align 1:1 with the candidate cache's rows of the same video (same K, same order), so a
feature row index is a candidate id. Columns per video: ``frame`` int32 (K,), ``feat`` float16 or
float32 (K, C), ``pos`` float32 (K, 10), and with ``--with-flip`` ``feat_flip`` (K, C) and
``pos_flip`` (K, 10) computed on the horizontally mirrored frame. ``meta.upstream.candidates`` is
the key of the candidate cache the rows align with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clawcrane.cache.candidates import STAGE as CANDIDATE_STAGE
from clawcrane.cache.candidates import CandidateCache
from clawcrane.cache.store import StageArtifact, VideoRecord, find_artifacts
from clawcrane.errors import CacheError
from clawcrane.fingerprint import DatasetMatch, check_dataset_match, short

STAGE = "extract"
SCHEMA = 2
"""2: meta.json lists the expected ``videos`` and ``complete_with``; columns carry checksums (1 is still read)."""
P = 10


@dataclass
class VideoFeatures:
    """Pooled features and positions of every candidate of one video."""

    video_id: str
    frames: np.ndarray
    """(K,) int32 frame index of each row (same as the candidate cache)."""
    feat: np.ndarray = field(repr=False)
    """(K, C) pooled visual features (float16 or float32 as stored)."""
    pos: np.ndarray = field(repr=False)
    """(K, 10) float32 p_i in [0, 1]."""
    feat_flip: np.ndarray | None = field(default=None, repr=False)
    """(K, C) features of the mirrored frame, or None."""
    pos_flip: np.ndarray | None = field(default=None, repr=False)
    """(K, 10) positions in the mirrored frame, or None."""
    status: str = "ok"

    def __len__(self) -> int:
        return len(self.frames)

    def frame_rows(self, frame: int) -> np.ndarray:
        return np.flatnonzero(self.frames == frame)

    def to_record(self) -> VideoRecord:
        K, C = self.feat.shape  # (K, C) candidates, channels
        arrays = {"frame": np.asarray(self.frames, np.int32), "feat": self.feat, "pos": np.asarray(self.pos, np.float32).reshape(K, P)}
        if self.feat_flip is not None:
            arrays["feat_flip"] = self.feat_flip
            arrays["pos_flip"] = np.asarray(self.pos_flip, np.float32).reshape(K, P)
        return VideoRecord(self.video_id, arrays=arrays, attrs={"status": self.status, "channels": int(C)})

    @classmethod
    def from_record(cls, rec: VideoRecord) -> VideoFeatures:
        a = rec.arrays
        return cls(
            video_id=rec.video_id,
            frames=a.get("frame", np.zeros(0, np.int32)),
            feat=a.get("feat", np.zeros((0, int(rec.attrs.get("channels", 0))), np.float32)),
            pos=a.get("pos", np.zeros((0, P), np.float32)).reshape(-1, P),
            feat_flip=a.get("feat_flip"),
            pos_flip=None if a.get("pos_flip") is None else a["pos_flip"].reshape(-1, P),
            status=str(rec.attrs.get("status", "ok")),
        )


class FeatureCache(StageArtifact):
    """Read access to one feature artifact (an ``extract-<key>`` folder)."""

    STAGE = STAGE
    NOUN = "feature cache"
    MADE_BY = "clawcrane extract"

    @property
    def candidates_key(self) -> str:
        return self.meta.get("upstream", {}).get("candidates", "")

    @property
    def channels(self) -> int:
        return int(self.meta.get("channels", self.meta.get("config", {}).get("channels", 0)))

    @property
    def has_flip(self) -> bool:
        return bool(self.meta.get("config", {}).get("with_flip", False))

    def video(self, video_id: str) -> VideoFeatures:
        return VideoFeatures.from_record(self.store.read(video_id))

    def check_candidates(self, candidates_key: str, candidates_path: str | os.PathLike = "") -> None:
        """Refuse a feature cache built from another candidate cache than ``candidates_key``."""
        if self.candidates_key != candidates_key:
            raise CacheError(
                f"{self.path}: features were extracted from candidate cache {short(self.candidates_key)} but "
                f"{candidates_path or 'the candidate cache'} now has key {short(candidates_key)}; re-run "
                f"`clawcrane extract --cache {candidates_path or 'CACHE'}` to rebuild them"
            )


    def check_dataset(self, dataset: Any) -> str:
        """Refuse a dataset other than the one the features were extracted from; returns its full fingerprint.

        ``dataset``: a ``datasets.records.Dataset``. The full fingerprints are compared, or the
        annotation fingerprints when the dataset's media are absent (``fingerprint.match_dataset``);
        the fingerprint returned is the one to chain into keys and record (the same either way).
        """
        info = self.meta.get("dataset") or {}

        def mismatch(m: DatasetMatch) -> str:
            return (
                f"{self.path}: features were extracted from dataset {info.get('name', '?')!r} at {info.get('root', '?')} "
                f"({m.what} {short(m.recorded)}) but --dataset {dataset.root} has {m.what} {short(m.current)}; pass the "
                f"--dataset the caches were built from, or run `clawcrane detect {dataset.root}` and `clawcrane extract` for this one"
            )

        return check_dataset_match(info, dataset, artifact=self.path, mismatch=mismatch, error=CacheError)

    def require_complete_inputs(self) -> CandidateCache:
        """This artifact and the candidate artifact beside it, both complete (else the completion message)."""
        self.require_complete()
        candidates = candidates_of(self)
        candidates.require_complete()
        return candidates


def open_features(path: str | os.PathLike) -> FeatureCache:
    """Open a feature artifact folder, or the single feature artifact under a cache root."""
    return FeatureCache.open(
        path, f"run `clawcrane extract --cache {path}` first (it writes extract-<key> beside the candidates)"
    )


def candidates_of(features: FeatureCache) -> CandidateCache:
    """The candidate cache a feature cache was extracted from, beside it in the same cache root."""
    want = features.candidates_key
    for store in find_artifacts(features.path.parent, CANDIDATE_STAGE):
        if store.meta.get("key") == want:
            return CandidateCache(store)
    raise CacheError(
        f"{features.path}: its candidate cache (key {short(want)}) is not beside it in {features.path.parent}; "
        "keep the detect-<key> folder in the same cache root, or re-run `clawcrane detect` and `clawcrane extract` there"
    )
