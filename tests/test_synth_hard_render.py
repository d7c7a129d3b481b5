"""Hard-world pixels and placement: no trails, lighting drift, jittered shades, direction-free placement."""

from __future__ import annotations

import numpy as np
import pytest

from clawcrane.datasets.synth import render
from clawcrane.datasets.synth.geometry import compute_geometry
from clawcrane.datasets.synth.hard import motion as mo
from clawcrane.datasets.synth.hard.palette import SHADES, jittered_rgb, sample_lighting
from clawcrane.datasets.synth.scene import Lighting, Obj, Scene


def _scene(objects, *, lighting=None, T=12, trails=False):
    return Scene(video_id="v", split="train", width=320, height=240, num_frames=T, fps=10.0, objects=tuple(objects),
                 annotated=(1, 6, 10), texture_seed=11, trails=trails, lighting=lighting)


def _obj(i, xy, v=(0.0, 0.0), colour="orange", rgb=(240, 132, 30), r=24.0):
    return Obj(index=i, shape="circle", colour=colour, size="", radius=r, start=xy, velocity=v, depth=i, rgb=rgb)


def test_a_moving_object_leaves_nothing_behind_it_without_trails():
    # the same circle moving right at 3 px/frame and standing still: outside its mask the frames agree
    # up to the pixel noise, and the pixels just behind it carry the background, not its colour
    moving = _scene([_obj(0, (100.0, 120.0), v=(3.0, 0.0))])
    still = _scene([_obj(0, (100.0 + 3.0 * 6, 120.0))])
    t = 6
    a = list(render.render_frames(moving))[t].astype(float)
    b = list(render.render_frames(still))[t].astype(float)
    outside = compute_geometry(moving).labels[t] == 0
    assert np.array_equal(outside, compute_geometry(still).labels[t] == 0)  # the same place in frame t
    assert np.abs(a - b)[outside].max() == 0  # same background, same noise: identical
    behind = (slice(110, 131), slice(82, 92))  # left of the circle (x 94..142 in frame 6)
    assert outside[behind].all()
    colour = np.array(SHADES["orange"], float)
    bg = render.background(np.random.default_rng(moving.texture_seed), 240, 320).astype(float)
    assert np.abs(a[behind] - bg[behind]).mean() < 2 * render.NOISE_SIGMA
    assert np.linalg.norm(a[behind].mean(axis=(0, 1)) - colour) > 60


def test_trails_switch_keeps_the_original_world_drawing_them():
    obj = _obj(0, (160.0, 120.0), v=(2.0, 0.0))
    with_trail = next(render.render_frames(_scene([obj], trails=True)))
    without = next(render.render_frames(_scene([obj])))
    behind = (slice(110, 130), slice(124, 134))
    assert np.abs(with_trail[behind].astype(int) - without[behind]).mean() > 20


def test_lighting_drift_changes_the_background_brightness_smoothly():
    light = Lighting(gain0=0.85, gain1=1.1, warm0=-0.05, warm1=0.05)
    frames = list(render.render_frames(_scene([_obj(0, (60.0, 60.0))], lighting=light, T=16)))
    flat = list(render.render_frames(_scene([_obj(0, (60.0, 60.0))], T=16)))
    lab = compute_geometry(_scene([_obj(0, (60.0, 60.0))], T=16)).labels
    means = [f[lab[t] == 0].mean() for t, f in enumerate(frames)]
    assert 1.15 < means[-1] / means[0] < 1.35  # brighter by about the gain ratio 1.1 / 0.85
    assert all(b >= a - 1.0 for a, b in zip(means, means[1:]))  # monotone, no jumps
    assert max(np.diff(means)) < 0.25 * (means[-1] - means[0])
    red_blue = [f[lab[t] == 0][:, 0].mean() - f[lab[t] == 0][:, 2].mean() for t, f in enumerate(frames)]
    assert red_blue[-1] - red_blue[0] > 5  # warmer at the end
    base = [f[lab[t] == 0].mean() for t, f in enumerate(flat)]
    assert abs(base[-1] - base[0]) < 1.0  # without lighting nothing drifts


def test_sampled_lights_drift_in_most_videos_by_at_least_the_minimum():
    rng = np.random.default_rng(3)
    lights = [sample_lighting(rng) for _ in range(400)]
    drifting = [abs(lt.gain1 - lt.gain0) for lt in lights if lt.gain1 != lt.gain0]
    assert 0.5 < len(drifting) / len(lights) < 0.8
    assert min(drifting) >= 0.14 - 1e-9
    assert all(0.8 - 1e-9 <= g <= 1.14 + 1e-9 for lt in lights for g in (lt.gain0, lt.gain1))


def test_objects_are_drawn_in_their_jittered_shade_under_the_light():
    rng = np.random.default_rng(0)
    rgb = jittered_rgb(rng, "teal")
    assert rgb != SHADES["teal"] and max(abs(a - b) for a, b in zip(rgb, SHADES["teal"])) <= 12
    light = Lighting(gain0=0.9, gain1=0.9, warm0=0.03, warm1=0.03)
    scene = _scene([_obj(0, (160.0, 120.0), colour="teal", rgb=rgb, r=30.0)], lighting=light)
    frame = next(render.render_frames(scene))
    inner = (slice(110, 131), slice(150, 171))  # well inside the body (rim excluded)
    want = np.array(rgb, float) * light.gains(0, scene.num_frames)
    assert np.abs(frame[inner].reshape(-1, 3).mean(axis=0) - want).max() < 3


def test_mid_clip_centres_are_drawn_whatever_the_velocity():
    # the same random stream gives the same mid-clip centre for any velocity, so where an object is
    # half-way through the clip says nothing about where it goes; the clip stays inside the frame
    T, W, H, r = 24, 320, 240, 20.0
    for label in DIRECTIONS_AND_STATIC:
        centres = []
        for speed in (0.0, 0.7, 3.2):
            rng = np.random.default_rng(5)
            mid = mo.mid_clip_centre(rng, r, T, W, H)
            v = mo.velocity(np.random.default_rng(1), label, speed)
            start = mo.start_from_mid(mid, v, T)
            for t in (0, T - 1):
                x, y = start[0] + v[0] * t, start[1] + v[1] * t
                assert r <= x <= W - r and r <= y <= H - r
            centres.append(mid)
        assert centres[0] == centres[1] == centres[2]


DIRECTIONS_AND_STATIC = (*mo.DIRECTIONS, "static")


@pytest.mark.parametrize("label", list(mo.DIRECTIONS))
def test_direction_labels_name_velocities_within_the_cone(label):
    rng = np.random.default_rng(2)
    for _ in range(20):
        v = mo.velocity(rng, label, mo.band_speed(rng))
        assert mo.direction_label(v) == label
    assert mo.direction_label((0.0, 0.0)) == "static" and mo.direction_label((0.2, 0.0)) is None


def test_speed_pairs_and_direction_groups_are_clearly_apart():
    rng = np.random.default_rng(4)
    for _ in range(200):
        fast, slow = mo.speed_pair(rng)
        assert fast >= mo.DRAW_SPEED_RATIO * slow
        labels = mo.distinct_labels(rng, 3)
        assert labels is not None and len(set(labels)) == 3
        assert all(mo.labels_apart(a, b) for a in labels for b in labels if a != b)
