"""Hand-built scenes: motion labels, relations, the shadow, each query type's check, rendering."""

from __future__ import annotations

import numpy as np
import pytest

from clawcrane.datasets.synth import render
from clawcrane.datasets.synth.generate import PRESETS, plan_dataset
from clawcrane.datasets.synth.geometry import MIN_VISIBLE_PX, compute_geometry
from clawcrane.datasets.synth.scene import COLOURS, Obj, Scene, Shadow, class_id, motion_label
from clawcrane.datasets.synth.sentences import SceneChecker, relation_holds, scene_queries


def _obj(i, shape, colour, size, xy, v=(0.0, 0.0), r=None, depth=None):
    r = r or (16.0 if size == "small" else 28.0)
    return Obj(index=i, shape=shape, colour=colour, size=size, radius=r, start=xy, velocity=v,
               depth=i if depth is None else depth)


def _scene(objects, annotated=(2, 8, 14), shadow=None, T=16):
    return Scene(video_id="v", split="train", width=320, height=240, num_frames=T, fps=10.0,
                 objects=tuple(objects), annotated=annotated, shadow=shadow, texture_seed=5)


def _checker(scene):
    return SceneChecker(scene, compute_geometry(scene))


def test_geometry_shapes():
    scene = _scene([_obj(0, "circle", "red", "small", (50.0, 60.0), v=(1.0, 0.0)), _obj(1, "square", "blue", "large", (200.0, 120.0))])
    g = compute_geometry(scene)
    T, n, H, W = 16, 2, 240, 320
    assert g.labels.shape == (T, H, W) and g.centres.shape == (T, n, 2) and g.visible_box.shape == (T, n, 4)
    assert g.visible_px.shape == g.full_px.shape == g.shadow.shape == (T, n)
    assert g.centres[3, 0].tolist() == [53.0, 60.0]  # start + 3 frames * (1, 0)


def test_motion_label_uses_image_axes():
    assert motion_label((2.0, 0.0)) == "right" and motion_label((-2.0, 0.3)) == "left"
    assert motion_label((0.0, -2.0)) == "up"  # y grows downwards
    assert motion_label((0.0, 0.0)) == "static"
    assert motion_label((1.5, 1.5)) is None  # 45 degrees: no clear direction
    assert motion_label((0.1, 0.0)) is None  # moving, but too slowly to say
    assert class_id("triangle", moving=False) == 32 and class_id("circle", moving=True) == 11


def test_relation_holds_reads_target_then_reference():
    # target (100, 100) r 10, reference 35 px below it r 10: edge gap 15 px
    t, r = (100.0, 100.0), (100.0, 135.0)
    assert relation_holds("above", t, r, 10, 10) and relation_holds("next to", t, r, 10, 10)
    assert not relation_holds("below", t, r, 10, 10) and not relation_holds("left of", t, r, 10, 10)
    assert relation_holds("left of", t, (135.0, 100.0), 10, 10)
    assert not relation_holds("next to", t, (100.0, 200.0), 10, 10)  # gap 80 px: not near


def test_shadow_fades_in_gradually_between_its_frames():
    sh = Shadow(cx=100, cy=100, ax=40, ay=30, soft=20, t0=4, t1=10, fade="in")
    ramp = [sh.ramp(t) for t in range(14)]
    assert ramp[:5] == [0.0] * 5 and ramp[10:] == [1.0] * 4
    assert ramp[7] == pytest.approx(0.5) and all(a < b for a, b in zip(ramp[4:10], ramp[5:11]))
    assert sh.strength(100, 100, 12) == 1.0 and sh.strength(100, 140, 12) == pytest.approx(0.5)  # 10 px into the soft edge
    assert sh.strength(300, 100, 12) == 0.0
    out = Shadow(cx=100, cy=100, ax=40, ay=30, soft=20, t0=4, t1=10, fade="out")
    assert out.ramp(0) == 1.0 and out.ramp(12) == 0.0


def test_appearance_uses_the_shortest_unique_description():
    scene = _scene([_obj(0, "circle", "red", "small", (60.0, 60.0)), _obj(1, "circle", "blue", "small", (160.0, 60.0)),
                    _obj(2, "square", "red", "large", (260.0, 160.0))])
    chk = _checker(scene)
    assert chk.appearance(0).sentence == "the red circle"  # 'the circle' is ambiguous
    assert chk.appearance(2).sentence == "the square"
    twins = _checker(_scene([_obj(0, "circle", "red", "small", (60.0, 60.0)), _obj(1, "circle", "red", "small", (160.0, 60.0))]))
    assert twins.appearance(0) is None and twins.appearance(1) is None


def test_position_ranks_identical_objects_along_x():
    scene = _scene([_obj(i, "square", "green", "small", (x, 120.0)) for i, x in enumerate((60.0, 160.0, 260.0))])
    chk = _checker(scene)
    group = (0, 1, 2)
    got = [chk.position(i, group, "x").sentence for i in group]
    # all at the same height, so only x ranks; the middle one is second from either side ('left' first)
    assert got == ["the leftmost square", "the second square from the left", "the rightmost square"]


def test_position_refuses_objects_too_close_to_rank():
    scene = _scene([_obj(0, "square", "green", "small", (100.0, 60.0)), _obj(1, "square", "green", "small", (110.0, 180.0))])
    q = _checker(scene).position(0, (0, 1), "x")  # 10 px apart in x: not a safe 'leftmost'; y works
    assert q.sentence == "the square at the top"


def test_relation_needs_the_reference_near_the_target_only():
    ok = _scene([_obj(0, "circle", "red", "small", (60.0, 100.0)), _obj(1, "circle", "red", "small", (260.0, 100.0)),
                 _obj(2, "square", "blue", "small", (60.0, 140.0))])
    q = _checker(ok).relation(0, 2, "above")
    assert q.sentence == "the circle above the square" and q.query_type == "relation"
    assert _checker(ok).relation(0, 2, "below") is None
    between = _scene([_obj(0, "circle", "red", "small", (120.0, 100.0)), _obj(1, "circle", "red", "small", (200.0, 100.0)),
                      _obj(2, "square", "blue", "small", (160.0, 100.0))])
    assert _checker(between).relation(0, 2, "left of") is None  # the twin is near the square too


def test_motion_needs_identical_objects_moving_differently():
    scene = _scene([_obj(0, "triangle", "yellow", "large", (60.0, 80.0), v=(2.0, 0.0)),
                    _obj(1, "triangle", "yellow", "large", (200.0, 170.0))])
    chk = _checker(scene)
    assert chk.motion(0).sentence == "the triangle moving right"
    assert chk.motion(1).sentence == "the static triangle"
    same = _scene([_obj(0, "triangle", "yellow", "large", (60.0, 80.0), v=(2.0, 0.0)),
                   _obj(1, "triangle", "yellow", "large", (60.0, 170.0), v=(2.1, 0.0))])
    assert _checker(same).motion(0) is None


def test_temporal_needs_the_shadow_to_hide_the_colour_in_some_frames():
    pair = [_obj(0, "circle", "red", "small", (140.0, 120.0)), _obj(1, "circle", "blue", "small", (180.0, 120.0))]
    shadow = Shadow(cx=160, cy=120, ax=60, ay=40, soft=20, t0=2, t1=8, fade="in")  # frame 2 lit, 8 and 14 dark
    q = _checker(_scene(pair, shadow=shadow)).temporal(0)
    assert q.sentence == "the red circle" and q.detail["lit"] == [2] and q.detail["dark"] == [8, 14]
    assert _checker(_scene(pair)).temporal(0) is None  # never hidden: an appearance query instead
    assert _checker(_scene(pair)).appearance(0).sentence == "the red circle"


def test_only_one_query_per_object():
    scene = _scene([_obj(0, "circle", "red", "small", (60.0, 60.0)), _obj(1, "square", "red", "small", (200.0, 60.0))])
    queries, failed = scene_queries(scene, compute_geometry(scene))
    assert [q.target for q in queries] == [0, 1] and failed == []


def test_rendered_bodies_cover_exactly_their_masks(monkeypatch):
    # without pixel noise, static objects change exactly their mask pixels: rim or body colour
    monkeypatch.setattr(render, "NOISE_SIGMA", 0.0)
    objs = [_obj(0, "triangle", "red", "large", (100.0, 100.0)), _obj(1, "diamond", "blue", "small", (120.5, 112.3), depth=1)]
    scene = _scene(objs)
    bg = render.background(np.random.default_rng(scene.texture_seed), 240, 320)
    frame = next(render.render_frames(scene))
    lab = compute_geometry(scene).labels[0]
    assert np.array_equal(frame[lab == 0], bg[lab == 0])
    for o in objs:
        col = np.array(COLOURS[o.colour], np.float64)
        allowed = {tuple(np.round(col).astype(int)), tuple(np.round(render.RIM * col).astype(int))}
        assert {tuple(p) for p in frame[lab == o.index + 1].tolist()} <= allowed
        assert (lab == o.index + 1).sum() >= MIN_VISIBLE_PX


def test_trail_is_drawn_behind_moving_objects_only():
    still = _scene([_obj(0, "circle", "red", "large", (160.0, 120.0))])
    moving = _scene([_obj(0, "circle", "red", "large", (160.0, 120.0), v=(2.0, 0.0))])
    a, b = next(render.render_frames(still)), next(render.render_frames(moving))  # same background and noise
    behind, ahead = (slice(110, 130), slice(112, 128)), (slice(110, 130), slice(192, 208))  # left / right of the circle
    assert np.abs(a[behind].astype(int) - b[behind]).mean() > 20
    assert np.array_equal(a[ahead], b[ahead])


def test_plans_split_by_video_and_end_with_the_missed_video():
    plans = plan_dataset("full", 3)
    assert len(plans) == PRESETS["full"].videos + 1 and plans[-1].split == "missed"
    assert len({p.video_id for p in plans}) == len(plans) and plans[0].video_id == "s0000"
    n_test = sum(p.split == "test" for p in plans)
    assert n_test == round(0.2 * PRESETS["full"].videos)
    assert all(3 <= sum(n for _, n in p.motifs) + p.fillers <= 6 for p in plans[:-1])
    assert plan_dataset("full", 3) == plans and plan_dataset("full", 4) != plans
