"""Mask max-pooling (Eq. 2 without the MLP): hand-computed cases, tiny masks, batching."""

import numpy as np
import torch

from clawcrane.pipeline.pooling import mask_coverage, masked_max_pool, pool_levels, pool_masks, select_cells


def _fmap():
    # (C=2, h=2, w=2); channel 1 is negative everywhere, to show cells outside the mask are
    # excluded from the max (multiplying by a 0/1 mask would wrongly yield 0 there).
    return torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[-5.0, -1.0], [-2.0, -3.0]]])


def _mask(pixels):
    m = np.zeros((4, 4), bool)  # a 4x4 frame over a 2x2 map: each cell is a 2x2 pixel block
    for y, x in pixels:
        m[y, x] = True
    return m


def test_pooling_matches_hand_computed_cells_and_maxima():
    masks = np.stack([
        _mask([(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]),  # cell (0,0) full, (0,1) 1/4 -> only (0,0)
        _mask([(0, 2), (0, 3), (1, 3), (2, 2), (3, 3)]),  # (0,1) 3/4, (1,1) 2/4 -> both
        _mask([(3, 1)]),                                   # one pixel: 1/4 of (1,0) -> its cell
        _mask([]),                                         # empty -> zeros
        _mask([(0, 0), (2, 3), (3, 3)]),                   # (0,0) 1/4, (1,1) 2/4 -> only (1,1)
    ])
    got = pool_masks(_fmap(), masks, threshold=0.5)
    expected = torch.tensor([
        [1.0, -5.0],  # cell (0,0)
        [4.0, -1.0],  # max over cells (0,1)=(2,-1) and (1,1)=(4,-3)
        [3.0, -2.0],  # cell (1,0)
        [0.0, 0.0],   # no cell
        [4.0, -3.0],  # cell (1,1)
    ])
    assert torch.equal(got, expected)


def test_coverage_is_the_fraction_of_each_cell_inside_the_mask():
    cov = mask_coverage(_mask([(0, 2), (0, 3), (1, 3), (2, 2), (3, 3)])[None], (2, 2))
    assert torch.equal(cov[0], torch.tensor([[0.0, 0.75], [0.0, 0.5]]))


def test_one_pixel_mask_gets_a_finite_feature_from_its_own_cell():
    fmap = torch.arange(3 * 10 * 10, dtype=torch.float32).reshape(3, 10, 10)
    masks = np.zeros((1, 320, 320), bool)
    masks[0, 100, 250] = True  # 32x32 px per cell: cell (3, 7)
    got = pool_masks(fmap, masks)
    assert torch.isfinite(got).all()
    assert torch.equal(got[0], fmap[:, 3, 7])


def test_thin_mask_keeps_every_cell_it_covers_most():
    masks = np.zeros((1, 40, 40), bool)
    masks[0, :, 5] = True  # a one-pixel-wide pole down column 5: 1/10 of cells (0..3, 0)
    cells = select_cells(mask_coverage(masks, (4, 4)))
    assert cells[0, :, 0].all() and cells[0].sum() == 4


def test_batched_pooling_equals_per_frame_pooling():
    g = torch.Generator().manual_seed(0)
    fmaps = [torch.randn(3, 8, 5, 6, generator=g), torch.randn(3, 4, 3, 3, generator=g)]  # two levels, B=3
    rng = np.random.default_rng(0)
    masks = [rng.random((k, 30, 36)) > 0.8 for k in (2, 0, 3)]
    frame_of = torch.tensor([0, 0, 2, 2, 2])
    cells = [select_cells(mask_coverage(np.concatenate(masks), f.shape[-2:])) for f in fmaps]
    got = pool_levels(fmaps, cells, frame_of)
    assert got.shape == (5, 8 + 4)  # (K, sum C_l)
    want = torch.cat([
        torch.cat([pool_masks(fmaps[0][b], masks[b]), pool_masks(fmaps[1][b], masks[b])], dim=1) for b in (0, 2)
    ])
    assert torch.equal(got, want)


def test_masked_max_pool_shape_and_empty_input():
    out = masked_max_pool(torch.zeros(2, 7, 4, 4), torch.zeros(0, 4, 4, dtype=torch.bool), torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 7)
