"""What a synthetic video contains and how it moves: objects, motifs, the shadow, annotated frames.

Vocabulary (small and fixed, used by every sentence):

* shapes ``circle, square, triangle, diamond``; colours ``red, green, blue, yellow, purple``;
  sizes ``small, large``. A *look* is the triple (shape, colour, size).
* class id, A2D style ``actor * 10 + action``: actor = 1 + index of the shape in ``SHAPES``
  (1 circle, 2 square, 3 triangle, 4 diamond), action = 1 moving / 2 static.
  E.g. 11 = a moving circle, 32 = a static triangle.

Every object moves with a constant velocity: ``centre(t) = start + t * velocity`` (pixels,
frames). A scene is built around *motifs* (see ``sampling``), each one the situation a query
type needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (222, 44, 44),
    "green": (36, 176, 72),
    "blue": (44, 92, 238),
    "yellow": (242, 206, 32),
    "purple": (158, 64, 214),
}
SIZES = ("small", "large")
RADIUS_RANGE = {"small": (15.0, 18.0), "large": (27.0, 31.0)}
"""Object 'radius' in pixels: half the extent of a circle; polygons are scaled to look alike."""
MOTIONS = ("left", "right", "up", "down", "static")
ACTIONS = {"moving": 1, "static": 2}
RELATIONS = ("next to", "above", "below", "left of", "right of")

MAX_OBJECTS = 6
MIN_OBJECTS = 3

Look = tuple[str, str, str]
ALL_LOOKS: tuple[Look, ...] = tuple((sh, c, sz) for sh in SHAPES for c in COLOURS for sz in SIZES)


def class_id(shape: str, moving: bool) -> int:
    """A2D-style actor*10 + action: actor = shape (1-4), action = 1 moving / 2 static."""
    return (SHAPES.index(shape) + 1) * 10 + (ACTIONS["moving"] if moving else ACTIONS["static"])


def motion_label(velocity: tuple[float, float], *, min_speed: float = 0.3, cone_deg: float = 30.0) -> str | None:
    """'static', 'left', 'right', 'up', 'down', or None when the direction is not clear-cut.

    Image coordinates: y grows downwards, so 'up' is a negative y velocity.
    """
    vx, vy = velocity
    speed = math.hypot(vx, vy)
    if speed < min_speed:
        return "static" if speed < 1e-6 else None
    c = math.cos(math.radians(cone_deg))
    if abs(vx) >= c * speed:
        return "right" if vx > 0 else "left"
    if abs(vy) >= c * speed:
        return "down" if vy > 0 else "up"
    return None


@dataclass(frozen=True, kw_only=True)
class Obj:
    """One object of a video. Instance id in the A2D files = ``index + 1``."""

    index: int
    shape: str
    colour: str
    size: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    depth: int
    """Draw order: 0 is drawn first (farthest); later objects occlude earlier ones."""
    role: str = "filler"
    """'filler', 'position', 'relation', 'reference', 'motion' or 'temporal' (hard presets add
    'size', 'speed', 'foil', 'occluder', 'occluded')."""
    rgb: tuple[int, int, int] | None = None
    """The drawn body colour; None: ``COLOURS[colour]`` (hard presets: the shade plus a jitter)."""

    @property
    def look(self) -> Look:
        return (self.shape, self.colour, self.size)

    @property
    def moving(self) -> bool:
        return self.velocity != (0.0, 0.0)

    @property
    def class_id(self) -> int:
        return class_id(self.shape, self.moving)

    def centre(self, t: float) -> tuple[float, float]:
        return (self.start[0] + t * self.velocity[0], self.start[1] + t * self.velocity[1])


@dataclass(frozen=True, kw_only=True)
class Shadow:
    """A soft elliptical shadow whose strength ramps between two frames.

    Strength at pixel (x, y), frame t: ``ramp(t) * falloff(x, y)``; falloff is 1 inside the core
    ellipse and decays to 0 over ``soft`` pixels. ``fade='in'`` goes 0 -> 1 from ``t0`` to ``t1``,
    ``'out'`` goes 1 -> 0. Objects in shadow lose their colour (drawn grey).
    """

    cx: float
    cy: float
    ax: float
    ay: float
    soft: float
    t0: int
    t1: int
    fade: str

    def ramp(self, t: float) -> float:
        u = min(max((t - self.t0) / max(self.t1 - self.t0, 1), 0.0), 1.0)
        u = u * u * (3.0 - 2.0 * u)  # smoothstep: gradual at both ends
        return u if self.fade == "in" else 1.0 - u

    def falloff(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """1 in the core ellipse, linear decay to 0 over ``soft`` px outside (pixel arrays)."""
        e = np.sqrt(((x - self.cx) / self.ax) ** 2 + ((y - self.cy) / self.ay) ** 2)
        return np.clip(1.0 - (e - 1.0) * min(self.ax, self.ay) / self.soft, 0.0, 1.0)

    def strength(self, x: float, y: float, t: float) -> float:
        """Shadow strength at one point (the same falloff, scalar)."""
        e = math.hypot((x - self.cx) / self.ax, (y - self.cy) / self.ay)
        return self.ramp(t) * min(max(1.0 - (e - 1.0) * min(self.ax, self.ay) / self.soft, 0.0), 1.0)


@dataclass(frozen=True, kw_only=True)
class Lighting:
    """A smooth global light change over a clip (hard presets).

    Every pixel of frame t (background, shadow and objects, before the pixel noise) is scaled per
    channel by ``gains(t)`` = gain * (1 + warm, 1, 1 - warm): ``gain`` (brightness) and ``warm``
    (colour temperature: > 0 warmer, < 0 cooler) move from their frame-0 values to their last-frame
    values along a smoothstep. Equal start and end values give a constant light.
    """

    gain0: float
    """Brightness factor at frame 0."""
    gain1: float
    """Brightness factor at the last frame."""
    warm0: float
    """Colour temperature shift at frame 0 (red scaled by 1 + warm, blue by 1 - warm)."""
    warm1: float
    """Colour temperature shift at the last frame."""

    def gains(self, t: float, num_frames: int) -> np.ndarray:
        """(3,) float32 per-channel factors (R, G, B) of frame ``t`` of a ``num_frames`` clip."""
        u = min(max(t / max(num_frames - 1, 1), 0.0), 1.0)
        u = u * u * (3.0 - 2.0 * u)
        gain = self.gain0 + (self.gain1 - self.gain0) * u
        warm = self.warm0 + (self.warm1 - self.warm0) * u
        return np.array([gain * (1 + warm), gain, gain * (1 - warm)], np.float32)


@dataclass(frozen=True, kw_only=True)
class Motif:
    """A planned query situation: which objects are its targets and what singles each one out."""

    kind: str
    members: tuple[int, ...]
    """Object indices of the targets (twins, or the temporal pair)."""
    refs: tuple[int, ...] = ()
    """relation: the reference object of each member (aligned with ``members``); hard 'occlusion':
    (occluded, occluder), ``members`` holding the occluded object only when the motif refers to it."""
    words: tuple[str, ...] = ()
    """relation: the relation word of each member; position: the planned axis ('x' or 'y')."""
    silent: tuple[int, ...] = ()
    """Objects that get no sentence of their own (half of the references: every reference would
    add an appearance query, and appearance queries would outnumber relation queries; hard
    presets: a last motif of kind 'fillers' lists the silent fillers, foils and occluders)."""


@dataclass(frozen=True, kw_only=True)
class Scene:
    video_id: str
    split: str
    width: int
    height: int
    num_frames: int
    fps: float
    objects: tuple[Obj, ...]
    annotated: tuple[int, ...]
    """0-based annotated frames, ascending."""
    motifs: tuple[Motif, ...] = ()
    shadow: Shadow | None = None
    texture_seed: int = 0
    """Seeds the background texture and pixel noise (rendering is a function of the scene)."""
    trails: bool = True
    """Draw fading trails behind moving objects (hard presets: False, motion shows only across frames)."""
    lighting: Lighting | None = None
    """Global light change over the clip; None: constant, unscaled light."""

    def by_depth(self) -> list[Obj]:
        return sorted(self.objects, key=lambda o: o.depth)
