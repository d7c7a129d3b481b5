"""Cached token states of a frozen text encoder (``--text-encoder minilm``), one entry per sentence.

An artifact ``text-<key16>/`` in a cache root (beside the feature cache), keyed by the encoder
and its package version only: a sentence's states depend on nothing else, so every dataset and
run in that root shares it and a new dataset only adds its missing sentences. Each call that
adds sentences writes one atomic part (``parts/batch-<hash>.h5``) holding:
``sentence`` (n byte strings), ``offsets`` int64 (n + 1,), ``states`` float16 (total tokens, S).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from clawcrane.cache.store import Store, VideoRecord, artifact_dir
from clawcrane.fingerprint import chain_key

STAGE = "text"
SCHEMA = 1


class TextStateCache:
    """Sentence -> (L, S) float16 token states, read once into memory."""

    def __init__(self, root: str | os.PathLike, *, encoder: str, version: str):
        config = {"encoder": encoder, "version": version}
        key = chain_key(STAGE, SCHEMA, {}, config)
        self.store = Store.create(artifact_dir(root, STAGE, key), {"stage": STAGE, "schema": SCHEMA, "key": key, "config": config, "upstream": {}})
        self._states: dict[str, np.ndarray] = {}
        for part in self.store.video_ids():
            rec = self.store.read(part)
            offsets = rec.arrays["offsets"]
            for i, s in enumerate(rec.arrays["sentence"]):
                self._states[s.decode("utf-8")] = rec.arrays["states"][offsets[i] : offsets[i + 1]]

    @property
    def path(self) -> Path:
        return self.store.path

    def __contains__(self, sentence: str) -> bool:
        return sentence in self._states

    def __len__(self) -> int:
        return len(self._states)

    def get(self, sentence: str) -> np.ndarray:
        return self._states[sentence]

    def add(self, states: dict[str, np.ndarray]) -> None:
        """Store new sentences' states in one atomic part file."""
        new = {s: np.asarray(v, np.float16) for s, v in states.items() if s not in self._states}
        if not new:
            return
        names = sorted(new)
        lengths = [len(new[s]) for s in names]
        name = "batch-" + hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        self.store.write_video(VideoRecord(name, arrays={
            "sentence": [s.encode("utf-8") for s in names],
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "states": np.concatenate([new[s] for s in names]),
        }))
        self._states.update(new)

    def states_for(self, sentences: Sequence[str], encode: Callable[[list[str]], list[np.ndarray]]) -> list[np.ndarray]:
        """States of ``sentences``, calling ``encode`` once for those not cached yet."""
        missing = sorted({s for s in sentences if s not in self._states})
        if missing:
            self.add(dict(zip(missing, encode(missing))))
        return [self._states[s] for s in sentences]
