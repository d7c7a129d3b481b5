"""Boundary refinement (``pipeline.mask_refine``): GrabCut moves an outline onto the colour edge, by at most ``band``."""

from __future__ import annotations

import numpy as np
import pytest

from clawcrane.pipeline.detectors import FrameCandidates, refine_candidates
from clawcrane.pipeline.mask_refine import refine_mask, refine_masks


def scene(h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A grey frame with a red 20 x 24 rectangle (rows 20-39, columns 30-53) and its true mask."""
    frame = np.full((h, w, 3), 120, np.uint8)
    frame[20:40, 30:54] = (220, 30, 30)
    truth = np.zeros((h, w), bool)
    truth[20:40, 30:54] = True
    return frame, truth


def test_an_outline_one_pixel_inside_the_edge_is_moved_onto_it():
    frame, truth = scene()
    shrunk = np.zeros_like(truth)
    shrunk[21:39, 31:53] = True  # one pixel short on every side: IoU 396/480 = 0.825
    out = refine_mask(frame, shrunk, band=2)
    # the band (2 px) covers the missing ring; the colours say it is object: the true rectangle exactly
    assert np.array_equal(out, truth)


def test_an_outline_past_the_edge_is_pulled_back_but_never_further_than_the_band():
    frame, truth = scene()
    grown = np.zeros_like(truth)
    grown[18:42, 28:56] = True  # two pixels too far on every side
    assert np.array_equal(refine_mask(frame, grown, band=2), truth)
    far = np.zeros_like(truth)
    far[20:40, 30:60] = True  # six pixels too far on the right: only the last two may go
    out = refine_mask(frame, far, band=2)
    # pixels deeper than 2 inside the mask are fixed as object, grey or not: columns 54-57 stay (rows 22-37,
    # away from the top and bottom band); the grey columns 58-59 of the band go
    assert out[20:40, 30:54].all() and out[22:38, 54:58].all() and not out[:, 58:].any()


def test_masks_too_thin_to_have_a_core_and_empty_masks_are_kept():
    frame, _ = scene()
    thin = np.zeros((64, 80), bool)
    thin[30, 10:20] = True  # one row: eroding by 2 leaves nothing to anchor the object model
    assert np.array_equal(refine_mask(frame, thin, band=2), thin)
    empty = np.zeros((64, 80), bool)
    assert np.array_equal(refine_mask(frame, empty), empty)


def test_refine_masks_shapes_none_and_bad_input():
    frame, truth = scene()
    masks = np.stack([truth, np.roll(truth, 1, axis=0)])
    out = refine_masks(frame, masks)
    assert out.shape == (2, 64, 80) and out.dtype == bool
    assert refine_masks(frame, masks, method="none") is masks
    with pytest.raises(ValueError, match="refine method"):
        refine_masks(frame, masks, method="crf")
    with pytest.raises(ValueError, match="frame is"):
        refine_masks(frame[:10], masks)


def test_refine_candidates_leaves_candidates_below_the_score_threshold_alone():
    frame, truth = scene()
    shrunk = np.zeros_like(truth)
    shrunk[21:39, 31:53] = True
    fc = FrameCandidates(masks=np.stack([shrunk, shrunk]), boxes=np.zeros((2, 4), np.float32),
                         scores=np.array([0.9, 0.1], np.float32), class_ids=np.zeros(2, np.int32))
    out = refine_candidates(frame, fc, method="grabcut", min_score=0.3)
    assert np.array_equal(out.masks[0], truth)  # kept by the stage: refined
    assert np.array_equal(out.masks[1], shrunk)  # dropped by the stage next: untouched
    assert np.array_equal(fc.masks[0], shrunk)  # the input is not modified
