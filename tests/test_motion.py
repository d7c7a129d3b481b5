"""Motion from tracks (pipeline.motion): sentence-free linking, then each track's velocity."""

import numpy as np
import pytest

from clawcrane.pipeline.motion import M, candidate_motion, flip_motion, track_descriptor, video_motion


def p(xc, yc, size=0.1):
    return [xc - size / 2, yc - size / 2, xc + size / 2, yc + size / 2, xc, yc, size, size, 0.0, 0.0]


def test_track_descriptor_hand_case():
    # centre x 0.20 -> 0.25 -> 0.30 over frames 0, 5, 10: 0.01 frame widths per frame = 1.0 in 1/100 units,
    # straight right (direction (1, 0)); object size 0.1, so 0.1 sizes per frame, x10 = 1.0
    m = track_descriptor(np.array([0, 5, 10]), np.array([p(0.20, 0.5), p(0.25, 0.5), p(0.30, 0.5)]))
    np.testing.assert_allclose(m[:8], [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], atol=1e-6)
    # the same track seen on every frame gives the same velocity (the slope does not care how sparse)
    dense = track_descriptor(np.arange(11), np.array([p(0.20 + 0.01 * f, 0.5) for f in range(11)]))
    np.testing.assert_allclose(dense, m, atol=1e-6)


def test_a_lone_candidate_or_a_static_object_has_no_direction():
    assert not track_descriptor(np.array([3]), np.array([p(0.5, 0.5)])).any()
    still = track_descriptor(np.array([0, 4]), np.array([p(0.5, 0.5), p(0.5, 0.5)]))
    np.testing.assert_allclose(still[:8], [0, 0, 0, 0, 0, 0, 0, 1.0], atol=1e-9)


def test_video_motion_links_each_object_and_gives_it_its_own_velocity():
    # two look-alike objects far apart move in opposite vertical directions; features differ a little.
    # Frame order of candidates swaps in the middle frame, so a row-order linker would fail.
    frames = [0, 4, 8]
    up = [p(0.2, 0.50), p(0.2, 0.46), p(0.2, 0.42)]  # v_y = -0.01 / frame: 'up'
    down = [p(0.8, 0.50), p(0.8, 0.54), p(0.8, 0.58)]
    pos = [np.array([up[0], down[0]]), np.array([down[1], up[1]]), np.array([up[2], down[2]])]
    a, b = np.array([1.0, 0.1, 0.0]), np.array([0.1, 1.0, 0.0])
    feat = [np.stack([a, b]), np.stack([b, a]), np.stack([a, b])]
    out = video_motion(frames, pos, feat)
    assert [o.shape for o in out] == [(2, M)] * 3
    np.testing.assert_allclose(out[0][0, :2], [0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(out[1][1, :2], [0.0, -1.0], atol=1e-6)  # the 'up' object is row 1 in frame 4
    np.testing.assert_allclose(out[2][1, :2], [0.0, 1.0], atol=1e-6)
    assert out[0][0, 8] == pytest.approx(0.0)  # as fast as the only other track


def test_candidate_motion_maps_rows_and_flip_mirrors_x():
    pos = np.array([p(0.2, 0.5), p(0.3, 0.5), p(0.7, 0.5)], np.float32)
    feat = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    m = candidate_motion([0, 10], [np.array([0, 2]), np.array([1])], pos, feat)
    assert m.shape == (3, M)
    np.testing.assert_allclose(m[0], m[1])  # rows 0 and 1 are one track: x 0.2 -> 0.3 over 10 frames
    assert m[0, 0] == pytest.approx(1.0) and not m[2].any()
    f = flip_motion(m)
    assert f[0, 0] == pytest.approx(-1.0) and f[0, 3] == pytest.approx(-1.0) and f[0, 2] == pytest.approx(m[0, 2])
