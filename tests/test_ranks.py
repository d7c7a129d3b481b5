"""Text-guided ranks (pipeline.ranks): soft counts of each candidate's look-alikes along each axis."""

import torch

from clawcrane.pipeline.ranks import ALIKE_BIAS, ALIKE_GAMMA, TextGuidedRanks, axis_values, soft_counts


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
    feat, sent = torch.randn(2, 5, 6), torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    pos, speed = torch.rand(2, 5, 10), torch.rand(2, 5)
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = module(feat, sent, pos, valid, speed)
    assert out.shape == (2, 5)
    assert torch.equal(out[0, 3:], torch.zeros(2))  # padding gets nothing
    assert module.features(feat, sent, pos, valid, speed).shape == (2, 5, 9 * 4 + 1)
    assert module.alike(feat, sent, valid).shape == (2, 5, 5)
    garbage = feat.clone()
    garbage[0, 3:] = 1e3  # what a padded row holds must not reach the real ones
    torch.testing.assert_close(module(garbage, sent, pos, valid, speed)[0, :3], out[0, :3])


def test_look_alikes_weigh_by_code_distance_and_padding_weighs_nothing():
    # Codes a = W_a f with W_a the identity on 2 channels: candidates 0 and 1 share the code (1, 0),
    # 2 has (0, 1) (squared distance 2), 3 is padding with code (1, 0). With gamma = 4 per channel
    # (the initial value) and b = 2: w = sigmoid(2) between 0 and 1, sigmoid(2 - 4 * 2) = sigmoid(-6)
    # towards 2, and 0 towards padding.
    module = TextGuidedRanks(feat_dim=2, embed_dim=3, code=2)
    with torch.no_grad():
        module.w_a.weight.copy_(torch.eye(2))
        module.w_a.bias.zero_()
    feat = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
    sent = torch.tensor([[1.0, 0.0, 0.0]])  # W_g starts at zero: gamma does not depend on it yet
    valid = torch.tensor([[True, True, True, False]])
    w = module.alike(feat, sent, valid)[0]
    s2, s6 = torch.sigmoid(torch.tensor(ALIKE_BIAS)), torch.sigmoid(torch.tensor(ALIKE_BIAS - ALIKE_GAMMA * 2))
    torch.testing.assert_close(w[0], torch.stack([s2, s2, s6, torch.tensor(0.0)]))
    torch.testing.assert_close(w[2, :3], torch.stack([s6, s6, s2]))


def test_the_second_look_alike_from_the_left_has_one_look_alike_before_it():
    # x = 0.1 (circle), 0.3 (star), 0.5 (circle), 0.7 (star); circles alike, stars alike, nothing across.
    # Star 3 is the second star from the left: one look-alike (star 1) before it, none after, though
    # three candidates lie left of it.
    values = axis_values(boxes([0.1, 0.3, 0.5, 0.7]))
    alike = torch.tensor([[[1.0, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    before, after, total = soft_counts(values, alike, valid, torch.tensor([0.01, 0.01, 0.05]))
    torch.testing.assert_close(before[0, :, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(after[0, :, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(total[0], torch.ones(4))
