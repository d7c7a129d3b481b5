"""Contrastive loss (Eq. 8-9) and the choice of the referred candidate."""

import math

import numpy as np
import pytest
import torch

from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.losses import contrastive_loss, top1_correct
from clawcrane.pipeline.targets import match_target


def test_contrastive_loss_matches_hand_computed_three_candidate_case():
    # cosines 0.5, 0.2, -0.1, tau = 0.1 -> logits 5, 2, -1; target 0:
    # loss = -log(e^5 / (e^5 + e^2 + e^-1)) = log(1 + e^-3 + e^-6) = log(1.0522658) = 0.0509458
    sim = torch.tensor([[0.5, 0.2, -0.1]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    loss = contrastive_loss(sim, valid, torch.tensor([0]), tau=0.1)
    assert float(loss) == pytest.approx(0.0509458, abs=1e-6)
    # target 2 (the lowest): log(e^5 + e^2 + e^-1) + 1 = 6 + log(1.0522658) = 6.0509458
    assert float(contrastive_loss(sim, valid, torch.tensor([2]))) == pytest.approx(6.0509458, abs=1e-5)


def test_padded_candidates_are_excluded_from_the_softmax():
    sim = torch.tensor([[0.5, 0.2, -0.1, 0.9, float("-inf")]])
    valid = torch.tensor([[True, True, True, False, False]])  # 0.9 is padding: it must not count
    loss = contrastive_loss(sim, valid, torch.tensor([0]))
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-3) + math.exp(-6)), abs=1e-6)
    assert top1_correct(sim, valid, torch.tensor([0])).item()
    with pytest.raises(ValueError):
        contrastive_loss(sim, valid, torch.tensor([3]))


def _mask(y0, y1, x0, x1, shape=(10, 10)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_referred_candidate_is_the_best_iou_match_at_least_half():
    gt = mask_ops.encode(_mask(0, 4, 0, 4))  # 16 px
    cands = mask_ops.encode_many(np.stack([_mask(5, 9, 5, 9), _mask(0, 4, 0, 3), _mask(0, 4, 0, 2)]))
    m = match_target(gt, cands)
    assert (m.index, m.iou) == (1, pytest.approx(12 / 16))  # 12 shared px of a 16 px union
    # the best candidate covers 4 of 16 px: IoU 0.25 < 0.5 -> no referred candidate
    low = match_target(gt, mask_ops.encode_many(np.stack([_mask(0, 1, 0, 4)])))
    assert not low.ok and low.iou == pytest.approx(0.25)
    assert not match_target(gt, []).ok
