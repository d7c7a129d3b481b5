"""Text-guided ranks (pipeline.ranks): soft counts of the sentence-selected candidates along each axis."""

import torch

from clawcrane.pipeline.ranks import TextGuidedRanks, axis_values, soft_counts


def boxes(xs, y=0.5, size=0.1):
    """(1, K, 10) p_i of square boxes centred at xs (ranks left 0)."""
    rows = [[x - size / 2, y - size / 2, x + size / 2, y + size / 2, x, y, size, size, 0.0, 0.0] for x in xs]
    return torch.tensor([rows])


def test_soft_counts_rank_a_candidate_among_the_selected_only():
    # x = 0.1, 0.5, 0.9; the sentence selects candidates 0 and 2 (weights 1, 0, 1). Seen from 2, one
    # selected object lies to its left (0; 1 weighs nothing): before_x = 1, after_x = 0. From 0: before 0,
    # after 1 (candidate 2). From the unselected 1: one selected on each side.
    values = axis_values(boxes([0.1, 0.5, 0.9]))
    w = torch.tensor([[1.0, 0.0, 1.0]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    before, after, total = soft_counts(values, w, valid, torch.tensor([0.01, 0.01, 0.05]))
    torch.testing.assert_close(before[0, :, 0], torch.tensor([0.0, 1.0, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(after[0, :, 0], torch.tensor([1.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    # equal y and equal sizes: every other candidate is half before, half after (sigmoid(0) = 0.5)
    torch.testing.assert_close(before[0, :, 1], torch.tensor([0.5, 1.0, 0.5]))
    torch.testing.assert_close(total[0], torch.tensor([1.0, 2.0, 1.0]))  # selected weight of the others


def test_mirroring_swaps_before_and_after_along_x():
    pos = boxes([0.1, 0.3, 0.8])
    mirrored = pos.clone()
    mirrored[..., 4] = 1 - pos[..., 4]
    w, valid = torch.tensor([[0.9, 0.2, 0.7]]), torch.ones(1, 3, dtype=torch.bool)
    kappa = torch.tensor([0.01, 0.01, 0.05])
    b, a, _ = soft_counts(axis_values(pos), w, valid, kappa)
    b2, a2, _ = soft_counts(axis_values(mirrored), w, valid, kappa)
    torch.testing.assert_close(b[..., 0], a2[..., 0])
    torch.testing.assert_close(a[..., 0], b2[..., 0])


def test_ranks_module_shapes_and_padding():
    torch.manual_seed(0)
    module = TextGuidedRanks(feat_dim=6, embed_dim=8, axes=4)
    feat, sent = torch.randn(2, 5, 6), torch.randn(2, 8)
    pos, speed = torch.rand(2, 5, 10), torch.rand(2, 5)
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = module(feat, sent, pos, valid, speed)
    assert out.shape == (2, 5, 8)
    assert torch.equal(out[0, 3:], torch.zeros(2, 8))  # padding gets nothing
    assert module.features(feat, sent, pos, valid, speed).shape == (2, 5, 3 * 4 + 2)
    garbage = feat.clone()
    garbage[0, 3:] = 1e3  # what a padded row holds must not reach the real ones
    torch.testing.assert_close(module(garbage, sent, pos, valid, speed)[0, :3], out[0, :3])
