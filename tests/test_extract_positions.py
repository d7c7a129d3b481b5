"""p_i of the Positional Relation Module and its horizontal mirror."""

import numpy as np

from clawcrane.pipeline.positions import flip_positions, positions, relative_ranks, tight_boxes

# A 100 x 50 frame with three boxes (x1, y1, x2, y2 pixel edges).
BOXES = np.array([[10, 0, 30, 20], [60, 10, 100, 50], [40, 30, 50, 50]], np.float32)
# Normalised by W=100 / H=50. Centres x: .2, .8, .45 -> x ranks 0, 2, 1 -> / (K-1=2): 0, 1, .5.
# Centres y: .2, .6, .8 -> y ranks 0, 1, 2 -> 0, .5, 1.
EXPECTED = np.array([
    # x_min y_min x_max y_max x_c  y_c  w    h    r_x  r_y
    [0.1, 0.0, 0.3, 0.4, 0.2, 0.2, 0.2, 0.4, 0.0, 0.0],
    [0.6, 0.2, 1.0, 1.0, 0.8, 0.6, 0.4, 0.8, 1.0, 0.5],
    [0.4, 0.6, 0.5, 1.0, 0.45, 0.8, 0.1, 0.4, 0.5, 1.0],
], np.float32)


def test_positions_of_three_boxes_match_hand_computed_values():
    got = positions(BOXES, width=100, height=50)
    assert got.shape == (3, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, EXPECTED, atol=1e-6)


def test_flipped_positions_mirror_x_and_reverse_ranks():
    flipped = flip_positions(positions(BOXES, 100, 50))
    # mirrored by hand: x -> 1 - x swaps min and max; y, w, h unchanged; x ranks reversed.
    np.testing.assert_allclose(flipped[:, [0, 2, 4, 8]], [[0.7, 0.9, 0.8, 1.0], [0.0, 0.4, 0.2, 0.0], [0.5, 0.6, 0.55, 0.5]], atol=1e-6)
    np.testing.assert_array_equal(flipped[:, [1, 3, 5, 6, 7, 9]], EXPECTED[:, [1, 3, 5, 6, 7, 9]])
    # and it is exactly p_i computed on the mirrored frame (pixel x -> W - x)
    mirrored = BOXES.copy()
    mirrored[:, [0, 2]] = 100 - BOXES[:, [2, 0]]
    np.testing.assert_allclose(flipped, positions(mirrored, 100, 50), atol=1e-6)


def test_single_candidate_rank_is_one_half_and_ties_share_their_mean_rank():
    assert relative_ranks(np.array([0.3])).tolist() == [0.5]
    # two tied at the left share ranks 0 and 1 -> 0.5 / 2 = 0.25; mirrored they become 0.75
    r = relative_ranks(np.array([0.2, 0.2, 0.9]))
    assert r.tolist() == [0.25, 0.25, 1.0]
    assert (1 - r).tolist() == relative_ranks(1 - np.array([0.2, 0.2, 0.9])).tolist()


def test_tight_boxes_use_pixel_edges_and_fall_back_for_empty_masks():
    m = np.zeros((2, 6, 8), bool)
    m[0, 1:3, 2:7] = True  # rows 1..2, cols 2..6 -> edges x 2..7, y 1..3
    got = tight_boxes(m, fallback=np.array([[0, 0, 0, 0], [1, 1, 4, 4]], np.float32))
    assert got.tolist() == [[2, 1, 7, 3], [1, 1, 4, 4]]
