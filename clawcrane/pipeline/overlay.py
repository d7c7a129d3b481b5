"""Drawing predictions on frames: mask overlays with their sentences, and contact sheets.

Pure: RGB uint8 arrays in, RGB uint8 arrays out, no file I/O. ``draw_frame`` keeps the frame's
size and dtype; it alpha-blends each query's answer mask in the query's colour, outlines it, and
outlines the runners-up (the query's other top-k tracks) faintly. Each query gets a text block in
the top-left corner: a colour swatch, the sentence (word-wrapped, at most ``MAX_LINES`` lines,
then cut with "..."), and the score, or "no matching object" when the query abstained on this
frame. Text sits on a darkened box so it reads on any background. Pixels outside the masks, their
outlines and the text boxes are left exactly as they were.

``draw_comparison`` puts a chosen mask (filled) against the true mask (outlined) on one frame,
for galleries of good and bad answers.

``contact_sheet`` lays a few thumbnails (``thumbnail``) in a grid with a frame label each, and a
caption row below that lists every query's colour, sentence and score.

OpenCV's Hershey fonts draw ASCII only; other characters are shown as '?'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Colour = tuple[int, int, int]

PALETTE: tuple[Colour, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
)
"""RGB colours of queries 0, 1, 2, ... (cycled); distinct hues that stay apart on most footage."""
FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_LINES = 2
"""Lines a sentence may take in a frame's text block before it is cut with '...'."""
FILL_ALPHA = 0.45
"""Opacity of the answer mask's fill."""
FAINT_ALPHA = 0.5
"""Opacity of a runner-up's outline."""
BOX_ALPHA = 0.65
"""How much the box behind text darkens the frame (0: not at all, 1: black)."""
TEXT_COLOUR: Colour = (255, 255, 255)
NO_MATCH = "no matching object"
NOT_PROCESSED = "no prediction for this frame"
SHEET_BACKGROUND: Colour = (32, 32, 32)
CHOSEN_COLOUR: Colour = PALETTE[6]
"""``draw_comparison``: the chosen (predicted) mask, filled (cyan: apart from the usual object colours)."""
TRUTH_COLOUR: Colour = PALETTE[3]
"""``draw_comparison``: the true mask, outlined."""


@dataclass(frozen=True)
class QueryOverlay:
    """What to draw for one query on one frame."""

    sentence: str
    """The referring sentence (shown wrapped or cut)."""
    mask: np.ndarray | None = None
    """(H, W) bool answer mask; None or all-False when the query abstained on this frame."""
    score: float | None = None
    """Score of the answer (shown with two decimals; None or nan: not shown)."""
    runners_up: tuple[np.ndarray, ...] = ()
    """(H, W) bool masks of the query's other top-k tracks, outlined faintly."""
    colour: Colour = PALETTE[0]
    """RGB colour of the query (use ``colour_for(index)``)."""
    processed: bool = True
    """False when the predictions hold nothing for this frame (it was not run, e.g. a frame stride)."""

    @property
    def abstained(self) -> bool:
        return self.mask is None or not bool(np.any(self.mask))


def colour_for(index: int) -> Colour:
    """The palette colour of the ``index``-th query (cycled)."""
    return PALETTE[int(index) % len(PALETTE)]


def ascii_text(text: str) -> str:
    """Text OpenCV's fonts can draw: non-ASCII characters become '?', whitespace is collapsed."""
    return " ".join("".join(c if 32 <= ord(c) < 127 else "?" for c in str(text)).split())


def font_scale(height: int, width: int) -> float:
    """Font scale for a frame: about 1/30 of the shorter side per line, never below 0.35."""
    return max(0.35, min(height, width) / 600.0)


def _thickness(scale: float) -> int:
    return max(1, int(round(scale * 1.6)))


def text_width(text: str, scale: float) -> int:
    (w, _), _ = cv2.getTextSize(text, FONT, scale, _thickness(scale))
    return int(w)


def line_height(scale: float) -> int:
    (_, h), base = cv2.getTextSize("Ag", FONT, scale, _thickness(scale))
    return int(h + base + max(2, round(4 * scale)))


def wrap_text(text: str, max_width: int, scale: float, max_lines: int = MAX_LINES) -> list[str]:
    """Word-wrap ``text`` into lines no wider than ``max_width`` px; cut the last line with '...'."""
    words = ascii_text(text).split()
    lines: list[str] = []
    cur = ""
    for word in words:
        cand = f"{cur} {word}" if cur else word
        if text_width(cand, scale) <= max_width or not cur:
            cur = cand
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    cut = len(lines) > max_lines
    lines = lines[:max_lines]
    if lines and (cut or text_width(lines[-1], scale) > max_width):
        last = lines[-1]
        while last and text_width(last + "...", scale) > max_width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    return lines


def _blend_where(out: np.ndarray, region: np.ndarray, colour: Colour | np.ndarray, alpha: float) -> None:
    """In place: out[region] = (1 - alpha) * out + alpha * colour."""
    if not region.any():
        return
    src = out[region].astype(np.float32)
    out[region] = np.clip(np.rint((1.0 - alpha) * src + alpha * np.asarray(colour, np.float32)), 0, 255).astype(np.uint8)


def _outline(out: np.ndarray, mask: np.ndarray, colour: Colour, thickness: int, alpha: float) -> None:
    """Draw the contour of ``mask`` onto ``out`` (blended with ``alpha`` < 1 for a faint line)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return
    H, W = mask.shape  # (H, W) frame height, width
    line = np.zeros((H, W), np.uint8)
    cv2.drawContours(line, contours, -1, 255, thickness, cv2.LINE_8)
    _blend_where(out, line > 0, colour, alpha)


def _text_block(out: np.ndarray, x: int, y: int, lines: list[tuple[str, Colour]], scale: float,
                swatch: Colour | None, hollow: bool) -> int:
    """Darkened box at (x, y) with ``lines`` and an optional colour swatch; returns the box height."""
    H, W = out.shape[:2]  # (H, W) frame height, width
    lh = line_height(scale)
    pad = max(3, round(5 * scale))
    sw = lh - pad if swatch is not None else 0
    text_x = x + pad + (sw + pad if swatch is not None else 0)
    box_w = max(text_width(t, scale) for t, _ in lines) + (text_x - x) + pad
    box_h = lh * len(lines) + pad
    x2, y2 = min(W, x + box_w), min(H, y + box_h)
    if x2 <= x or y2 <= y:
        return 0
    region = np.zeros((H, W), bool)
    region[y:y2, x:x2] = True
    _blend_where(out, region, (0, 0, 0), BOX_ALPHA)
    if swatch is not None:
        sy = y + pad
        cv2.rectangle(out, (x + pad, sy), (x + pad + sw - 1, sy + sw - 1), swatch, 1 if hollow else -1)
    th = _thickness(scale)
    (_, asc), _ = cv2.getTextSize("Ag", FONT, scale, th)
    for i, (text, colour) in enumerate(lines):
        base_y = y + pad + i * lh + asc
        # text stays inside the box: clip drawing to it
        sub = out[y:y2, x:x2]
        cv2.putText(sub, text, (text_x - x, base_y - y), FONT, scale, colour, th, cv2.LINE_AA)
    return box_h


def draw_frame(frame: np.ndarray, queries: Sequence[QueryOverlay], *, label: str | None = None,
               text: bool = True) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 RGB with every query's masks (and, with ``text``, its text block) drawn.

    ``label`` (e.g. the frame number) goes in a small box in the bottom-right corner.
    """
    H, W, C = frame.shape  # (H, W, 3) height, width, channels
    if C != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
    out = frame.copy()
    line = max(1, round(min(H, W) / 160))
    for q in queries:
        for r in q.runners_up:
            if r.shape != (H, W):
                raise ValueError(f"runner-up mask {r.shape} does not match the frame ({H}, {W})")
            _outline(out, r, q.colour, max(1, line // 2), FAINT_ALPHA)
    for q in queries:
        if q.abstained:
            continue
        if q.mask.shape != (H, W):
            raise ValueError(f"mask {q.mask.shape} does not match the frame ({H}, {W})")
        _blend_where(out, q.mask.astype(bool), q.colour, FILL_ALPHA)
        _outline(out, q.mask, q.colour, line, 1.0)
    if text:
        scale = font_scale(H, W)
        margin = max(2, round(6 * scale))
        y = margin
        for i, q in enumerate(queries):
            lines = _query_lines(q, W - 2 * margin, scale)
            if y + line_height(scale) * len(lines) > H - margin:
                rest = len(queries) - i
                _text_block(out, margin, y, [(f"+{rest} more", TEXT_COLOUR)], scale, None, False)
                break
            y += _text_block(out, margin, y, lines, scale, q.colour, q.abstained) + margin // 2
    if label:
        _corner_label(out, label)
    return out


def _corner_label(out: np.ndarray, label: str) -> None:
    """In place: ``label`` in a small dark box in the bottom-right corner."""
    H, W = out.shape[:2]  # (H, W) frame height, width
    scale = 0.8 * font_scale(H, W)
    lab = ascii_text(label)
    lh = line_height(scale)
    pad = max(3, round(5 * scale))
    bw = text_width(lab, scale) + 2 * pad
    _text_block(out, max(0, W - bw - 2), max(0, H - lh - pad - 2), [(lab, TEXT_COLOUR)], scale, None, False)


def draw_comparison(frame: np.ndarray, chosen: np.ndarray | None, truth: np.ndarray | None, *,
                    chosen_colour: Colour = CHOSEN_COLOUR, truth_colour: Colour = TRUTH_COLOUR,
                    label: str | None = None) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 RGB with a chosen mask against the true one: the chosen mask filled and
    outlined in ``chosen_colour``, the true mask's outline drawn over it in ``truth_colour``.

    Either mask may be None or empty (nothing chosen, no ground truth); ``label`` goes in the
    bottom-right corner as in ``draw_frame``. Pixels off both masks' fills and outlines (and the
    label box) are left as they were.
    """
    H, W = frame.shape[:2]  # (H, W) frame height, width
    for name, m in (("chosen", chosen), ("true", truth)):
        if m is not None and m.shape != (H, W):
            raise ValueError(f"{name} mask {m.shape} does not match the frame ({H}, {W})")
    q = QueryOverlay(sentence="", mask=chosen, colour=chosen_colour)
    out = draw_frame(frame, [q], text=False)
    if truth is not None and truth.any():
        line = max(1, round(min(H, W) / 160))
        _outline(out, truth.astype(bool), truth_colour, line + 1, 1.0)
    if label:
        _corner_label(out, label)
    return out


def _query_lines(q: QueryOverlay, max_width: int, scale: float) -> list[tuple[str, Colour]]:
    """The text block of one query: sentence lines, then the score or the abstention note."""
    inner = max_width - 3 * line_height(scale)  # room for the swatch and padding
    lines = [(t, TEXT_COLOUR) for t in wrap_text(q.sentence, max(inner, 10), scale)] or [("(no sentence)", TEXT_COLOUR)]
    if not q.processed:
        note = NOT_PROCESSED
    elif q.abstained:
        note = NO_MATCH
    elif q.score is not None and math.isfinite(q.score):
        note = f"score {q.score:.2f}"
    else:
        note = ""
    if note:
        lines.append((note, _light(q.colour) if not q.abstained else (200, 200, 200)))
    return lines


def _light(colour: Colour) -> Colour:
    """``colour`` mixed half-way with white: still recognisable, readable on the dark text box."""
    return tuple(int(round((c + 255) / 2)) for c in colour)  # type: ignore[return-value]


def thumbnail(frame: np.ndarray, width: int) -> np.ndarray:
    """``frame`` scaled to ``width`` px wide (never enlarged), aspect kept."""
    H, W = frame.shape[:2]  # (H, W) height, width
    if W <= width:
        return frame.copy()
    h = max(1, round(H * width / W))
    return cv2.resize(frame, (int(width), int(h)), interpolation=cv2.INTER_AREA)


def contact_sheet(tiles: Sequence[np.ndarray], *, labels: Sequence[str] | None = None,
                  captions: Sequence[tuple[str, Colour]] = (), columns: int = 3, gap: int = 4,
                  caption_scale: float = 0.5) -> np.ndarray:
    """Grid of equal-size ``tiles`` (h, w, 3) with ``labels`` and a caption row of (text, colour).

    Width: ``columns * w + (columns + 1) * gap`` (fewer columns when there are fewer tiles);
    height: the grid's rows plus the caption row. Tiles are placed row by row, left to right.
    """
    if not tiles:
        raise ValueError("contact sheet needs at least one tile")
    h, w = tiles[0].shape[:2]  # (h, w) tile height, width
    if any(t.shape != tiles[0].shape for t in tiles):
        raise ValueError("contact sheet tiles must share one shape")
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    width = cols * w + (cols + 1) * gap
    grid_h = rows * h + (rows + 1) * gap
    lh = line_height(caption_scale)
    cap_lines: list[tuple[str, Colour | None]] = []  # the swatch colour on a caption's first line only
    for text, colour in captions:
        wrapped = wrap_text(text, width - 2 * gap - 3 * lh, caption_scale, max_lines=3)
        cap_lines += [(t, colour if j == 0 else None) for j, t in enumerate(wrapped)]
    cap_h = (lh * len(cap_lines) + 2 * gap) if cap_lines else 0
    sheet = np.empty((grid_h + cap_h, width, 3), np.uint8)
    sheet[:] = SHEET_BACKGROUND
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y : y + h, x : x + w] = tile
        if labels is not None and i < len(labels) and labels[i]:
            scale = max(0.35, min(h, w) / 500)
            lab = ascii_text(labels[i])
            lab_h = line_height(scale) + max(3, round(5 * scale))
            _text_block(sheet[y : y + h, x : x + w], 0, max(0, h - lab_h), [(lab, TEXT_COLOUR)], scale, None, False)
    y = grid_h + gap
    sw = lh - 4
    (_, asc), _ = cv2.getTextSize("Ag", FONT, caption_scale, _thickness(caption_scale))
    for text, colour in cap_lines:
        if colour is not None:
            cv2.rectangle(sheet, (gap, y + 2), (gap + sw, y + 2 + sw), colour, -1)
        cv2.putText(sheet, text, (gap + sw + 2 * gap, y + asc + 2), FONT, caption_scale, TEXT_COLOUR,
                    _thickness(caption_scale), cv2.LINE_AA)
        y += lh
    return sheet
