"""Drawing the frames of a scene, and the preview contact sheet.

A frame, back to front: a per-video textured background (smooth colour blobs, fine grain,
faint stripes); the shadow (darkens the background where it lies); then each object in draw
order: a fading trail behind it when it moves (ghost copies along its velocity, so a single
frame shows where it is heading; static objects have none; ``Scene.trails=False`` turns them
off), its body with a darker rim, its colour (``Obj.rgb`` or its named colour) blended toward
grey by the shadow strength at its centre. Then the scene's lighting (``Scene.lighting``, when
set) scales every pixel; last, per-frame pixel noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from clawcrane.datasets.synth.geometry import draw_shape, extent
from clawcrane.datasets.synth.scene import COLOURS, Scene

SHADOW_GREY = np.array([118.0, 118.0, 124.0], np.float32)
"""Colour of an object fully in shadow: every colour looks the same there."""
SHADOW_DARKEN = 0.6
"""How much the shadow darkens the background at full strength."""
TRAIL = ((1, 0.5), (2, 0.32), (3, 0.18), (4, 0.08))
"""(offset in steps behind the object, opacity) of each ghost of a moving object's trail."""
TRAIL_STEP = 0.42
"""Ghost spacing, in object radii."""
NOISE_SIGMA = 4.0
RIM = 0.6
"""Rim colour = body colour * RIM (separates touching objects of one colour)."""
RIM_WIDTH = 1.6
"""The body colour fills the shape shrunk by this many pixels (radius); the rest is rim."""


def background(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """(H, W, 3) uint8 textured, low-saturation background, different for every seed."""
    base = rng.uniform(85, 165) + rng.uniform(-14, 14, size=3)  # a grey with a faint tint
    light = cv2.resize(rng.normal(0, 1, (5, 7)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    tint = cv2.resize(rng.normal(0, 1, (4, 5, 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    grain = cv2.resize(rng.normal(0, 1, (H // 3, W // 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    theta, period = rng.uniform(0, math.pi), rng.uniform(14, 40)
    kx, ky = 2 * math.pi * math.cos(theta) / period, 2 * math.pi * math.sin(theta) / period
    x, y = np.arange(W, dtype=np.float32) * kx, np.arange(H, dtype=np.float32) * ky
    stripes = np.outer(np.cos(y), np.sin(x)) + np.outer(np.sin(y), np.cos(x))  # sin(kx x + ky y)
    img = base + 5 * tint + (16 * light + 7 * grain + rng.uniform(0, 8) * stripes)[..., None]
    return np.clip(img, 25, 225).astype(np.uint8)


def trail_patch(o) -> tuple[int, int, np.ndarray]:
    """Opacity of a moving object's ghosts around its centre: ``(dx, dy, alpha)``.

    ``alpha[j, i]`` belongs to pixel (round(cx) + dx + i, round(cy) + dy + j): the trail only
    depends on the velocity's direction, so it is drawn once per object and placed every frame.
    """
    speed = math.hypot(*o.velocity)
    ux, uy = o.velocity[0] / speed, o.velocity[1] / speed
    ghosts = [(-ux * k * TRAIL_STEP * o.radius, -uy * k * TRAIL_STEP * o.radius, a) for k, a in TRAIL]
    e = extent(o.shape, o.radius) + 2
    dx, dy = int(math.floor(min(g[0] for g in ghosts) - e)), int(math.floor(min(g[1] for g in ghosts) - e))
    w = int(math.ceil(max(g[0] for g in ghosts) + e)) + 1 - dx
    h = int(math.ceil(max(g[1] for g in ghosts) + e)) + 1 - dy
    alpha = np.zeros((h, w), np.float32)
    for gx, gy, a in reversed(ghosts):  # nearer ghosts are more opaque and drawn last
        draw_shape(alpha, o.shape, gx, gy, o.radius, float(a), origin=(dx, dy))
    return dx, dy, alpha[..., None]


def _blend(img: np.ndarray, x0: int, y0: int, alpha: np.ndarray, colour: np.ndarray) -> None:
    """img <- img + alpha * (colour - img) where the (h, w, 1) ``alpha`` patch at (x0, y0) lies."""
    H, W = img.shape[:2]
    h, w = alpha.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    roi = img[ya:yb, xa:xb]
    f = roi.astype(np.float32)
    f += alpha[ya - y0: yb - y0, xa - x0: xb - x0] * (colour - f)
    roi[...] = f + 0.5


def _body(img: np.ndarray, o, cx: float, cy: float, colour: np.ndarray) -> None:
    """The object itself: its exact mask in the rim colour, the inside in the body colour."""
    draw_shape(img, o.shape, cx, cy, o.radius, tuple(int(round(c)) for c in RIM * colour))
    draw_shape(img, o.shape, cx, cy, o.radius - RIM_WIDTH, tuple(int(round(c)) for c in colour))


def _shadow_map(scene: Scene) -> tuple[slice, slice, np.ndarray] | None:
    """The shadow's falloff (h, w, 1) over the part of the frame it can reach."""
    sh = scene.shadow
    if sh is None:
        return None
    reach = 1.0 + sh.soft / min(sh.ax, sh.ay)  # falloff is 0 beyond this normalised radius
    xa, xb = max(int(sh.cx - sh.ax * reach) - 1, 0), min(int(sh.cx + sh.ax * reach) + 2, scene.width)
    ya, yb = max(int(sh.cy - sh.ay * reach) - 1, 0), min(int(sh.cy + sh.ay * reach) + 2, scene.height)
    if xa >= xb or ya >= yb:
        return None
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    return slice(ya, yb), slice(xa, xb), sh.falloff(xx, yy).astype(np.float32)[..., None]


def render_frames(scene: Scene) -> Iterator[np.ndarray]:
    """Yield every frame of the scene as RGB uint8 (H, W, 3); a function of the scene alone."""
    W, H = scene.width, scene.height
    rng = np.random.default_rng(scene.texture_seed)
    bg = background(rng, H, W)
    pad = 24
    noise = rng.standard_normal((H + pad, W + pad, 3), dtype=np.float32) * NOISE_SIGMA
    noise_up, noise_down = (np.clip(np.round(s * noise), 0, 255).astype(np.uint8) for s in (1, -1))
    shadow = _shadow_map(scene)
    order = scene.by_depth()
    trails = {o.index: trail_patch(o) for o in order if o.moving} if scene.trails else {}
    body = {o.index: np.asarray(COLOURS[o.colour] if o.rgb is None else o.rgb, np.float32) for o in order}
    for t in range(scene.num_frames):
        img = bg.copy()
        if shadow is not None and scene.shadow.ramp(t) > 0:
            ys, xs, fall = shadow
            img[ys, xs] = img[ys, xs] * (1.0 - SHADOW_DARKEN * scene.shadow.ramp(t) * fall) + 0.5
        for o in order:
            cx, cy = o.centre(t)
            s = scene.shadow.strength(cx, cy, t) if scene.shadow is not None else 0.0
            colour = (1 - s) * body[o.index] + s * SHADOW_GREY
            if o.index in trails:
                dx, dy, alpha = trails[o.index]
                _blend(img, int(round(cx)) + dx, int(round(cy)) + dy, alpha, colour)
            _body(img, o, cx, cy, colour)
        if scene.lighting is not None:
            lit = img.astype(np.float32) * scene.lighting.gains(t, scene.num_frames) + 0.5
            img = np.clip(lit, 0, 255).astype(np.uint8)
        oy, ox = rng.integers(0, pad, size=2)
        cv2.add(img, noise_up[oy: oy + H, ox: ox + W], dst=img)  # saturating uint8 arithmetic
        cv2.subtract(img, noise_down[oy: oy + H, ox: ox + W], dst=img)
        yield img


# ---- preview ---------------------------------------------------------------------------------

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate_frame(frame: np.ndarray, masks: np.ndarray, ids: Sequence[int], referred: set[int]) -> np.ndarray:
    """The frame with each mask outlined (cyan: referred to by a sentence, white: not) and its id."""
    out = frame.copy()
    for m, i in zip(masks, ids):
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        col = (0, 255, 255) if i in referred else (255, 255, 255)
        cv2.drawContours(out, contours, -1, col, 1)
        ys, xs = np.nonzero(m)
        x, y = int(xs.mean()), int(ys.mean())
        cv2.putText(out, str(i), (x - 4, y + 4), _FONT, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, str(i), (x - 4, y + 4), _FONT, 0.4, col, 1, cv2.LINE_AA)
    return out


def contact_sheet(rows: Sequence[tuple[Sequence[np.ndarray], Sequence[str]]]) -> np.ndarray:
    """Rows of frames (same size) with lines of text under each row; returns RGB uint8."""
    H, W = rows[0][0][0].shape[:2]
    cols = max(len(frames) for frames, _ in rows)
    line_h = 15
    blocks = []
    for frames, lines in rows:
        strip = np.full((H, cols * W, 3), 32, np.uint8)
        for k, f in enumerate(frames):
            strip[:, k * W: (k + 1) * W] = f
        text = np.full((line_h * len(lines) + 8, cols * W, 3), 16, np.uint8)
        for k, line in enumerate(lines):
            cv2.putText(text, line, (6, line_h * (k + 1)), _FONT, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
        blocks += [strip, text, np.full((4, cols * W, 3), 80, np.uint8)]
    return np.concatenate(blocks, axis=0)
