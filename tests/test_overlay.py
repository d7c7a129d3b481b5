"""pipeline.overlay: what changes on a frame (mask, outline, text box) and what must not."""

from __future__ import annotations

import numpy as np

from clawcrane.pipeline import overlay as O

H, W = 120, 160


def grey_frame(value=128):
    return np.full((H, W, 3), value, np.uint8)


def square(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_overlay_keeps_size_and_dtype_and_leaves_far_pixels_unchanged():
    frame = grey_frame()
    mask = square(70, 100, 100, 140)  # bottom right, away from the top-left text block
    out = O.draw_frame(frame, [O.QueryOverlay(sentence="the red ball", mask=mask, score=0.87, colour=O.colour_for(0))])
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(frame, grey_frame())  # the input is not modified
    # inside the mask (away from the outline): blended towards red (230, 25, 75) with alpha 0.45
    expected = np.rint(0.55 * 128 + 0.45 * np.array([230, 25, 75])).astype(np.uint8)
    assert np.array_equal(out[85, 120], expected)
    # far from the mask, the outline and the text block (bottom-left corner): untouched
    assert np.array_equal(out[110:, :40], frame[110:, :40])
    assert np.array_equal(out[60:, 40:90], frame[60:, 40:90])
    # the text block (top-left) darkens the frame behind the text
    assert out[2:20, 2:40].mean() < 100


def test_text_block_holds_the_sentence_or_no_match_and_stays_in_its_box():
    frame = grey_frame()
    abstained = O.draw_frame(frame, [O.QueryOverlay(sentence="a dog", mask=None, colour=O.colour_for(1))])
    # nothing is filled: only the top-left box changed
    changed = np.argwhere((abstained != frame).any(axis=2))
    assert changed[:, 0].max() < H // 2 and changed[:, 1].min() >= 0
    # the abstention note makes the block two lines tall (sentence + "no matching object")
    lh = O.line_height(O.font_scale(H, W))
    assert changed[:, 0].max() - changed[:, 0].min() >= 2 * lh - 2


def test_long_sentences_are_wrapped_then_cut_with_an_ellipsis():
    scale = 0.5
    text = "the small brown dog that is running behind the tall man on the left side of the road"
    lines = O.wrap_text(text, 150, scale, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith("...")
    assert all(O.text_width(t, scale) <= 150 for t in lines)
    assert O.wrap_text("short", 150, scale) == ["short"]
    assert O.ascii_text("caf\u00e9  au   lait") == "caf? au lait"


def test_several_queries_get_distinct_colours_and_runners_up_are_faint():
    assert len(set(O.PALETTE)) == len(O.PALETTE) and O.colour_for(0) != O.colour_for(1)
    assert O.colour_for(len(O.PALETTE)) == O.colour_for(0)
    frame = grey_frame()
    a, b = square(60, 90, 20, 60), square(60, 90, 100, 140)
    runner = square(95, 115, 70, 95)
    out = O.draw_frame(frame, [
        O.QueryOverlay(sentence="left", mask=a, score=0.9, colour=O.colour_for(0), runners_up=(runner,)),
        O.QueryOverlay(sentence="right", mask=b, score=0.8, colour=O.colour_for(1)),
    ], text=False)
    assert not np.array_equal(out[75, 40], out[75, 120])  # two fills, two colours
    # the runner-up: outlined (its edge changed) but not filled (its inside is untouched)
    assert not np.array_equal(out[95, 80], frame[95, 80])
    assert np.array_equal(out[105, 82], frame[105, 82])
    # faint: the outline is half-way between the frame and the colour
    assert abs(int(out[95, 80, 0]) - round(0.5 * 128 + 0.5 * 230)) <= 1


def test_contact_sheet_shape_is_the_grid_plus_a_caption_row():
    tiles = [np.full((30, 40, 3), 10 * i, np.uint8) for i in range(5)]
    sheet = O.contact_sheet(tiles, labels=[f"frame {i}" for i in range(5)],
                            captions=[("the red ball", O.colour_for(0))], columns=3, gap=4)
    # 3 columns x 2 rows of 40 x 30 tiles with 4-px gaps: 3*40 + 4*4 = 136 wide, 2*30 + 3*4 = 72 tall
    assert sheet.shape[1] == 136 and sheet.dtype == np.uint8
    assert sheet.shape[0] > 72  # + the caption row
    assert np.array_equal(sheet[4:10, 4:44], tiles[0][:6])  # top of tile 0 above its label
    no_caption = O.contact_sheet(tiles[:2], columns=3, gap=4)
    assert no_caption.shape == (30 + 8, 2 * 40 + 12, 3)  # fewer tiles than columns: 2 columns


def test_thumbnail_keeps_aspect_and_never_enlarges():
    frame = grey_frame()
    assert O.thumbnail(frame, 80).shape == (60, 80, 3)
    assert O.thumbnail(frame, 400).shape == frame.shape
