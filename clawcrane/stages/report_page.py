"""The HTML of `clawcrane report`: tables, SVG line charts, a gallery and the page around them.

Pure: numbers and strings in, HTML text out; no file I/O, no plotting library. Every text that
comes from data (sentences, ids, paths) is escaped. The page is one self-contained document:
its style and its one small script are inline, images are ``data:`` URIs, and a
Content-Security-Policy forbids loading anything else, so it opens from disk with no network.

The script does two things only: it records any error (a script error, a ``console.error``, an
image that fails to decode) as text in ``<pre id="page-errors">`` and sets
``data-page-errors="1"`` on ``<html>``; after the load event it sets ``data-report-loaded`` on
``<html>`` to the number of images that decoded. A headless browser's ``--dump-dom`` shows both.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CHART_COLOURS = ("#1f5fa8", "#d9541a", "#2a8f3b", "#b8202f", "#7b4bb3", "#8a5a2b", "#c2408f", "#5f6b73", "#9a9a12",
                 "#138c9c")
"""Line colours, in order: dark enough to read on white, distinct from each other."""
ERROR_ID = "page-errors"
"""Id of the element the page's script writes errors into (absent when there were none)."""
ERROR_ATTR = "data-page-errors"
LOADED_ATTR = "data-report-loaded"

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_STYLE = """
:root { --ink: #1d232a; --muted: #5c6670; --rule: #d8dde2; --band: #f3f5f7; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; }
header { padding: 18px 28px 12px; border-bottom: 1px solid var(--rule); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
nav { padding: 8px 28px; border-bottom: 1px solid var(--rule); font-size: 14px; }
nav a { color: var(--accent); margin-right: 16px; text-decoration: none; }
main { padding: 4px 28px 32px; max-width: 1400px; }
section { margin-top: 22px; }
h2 { font-size: 18px; margin: 0 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--rule); }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.note { color: var(--muted); font-size: 13px; margin: 4px 0 8px; max-width: 70em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 10px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 9px; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
thead th { background: var(--band); font-weight: 600; }
tbody th, td.text, th.text { text-align: left; }
tbody th { font-weight: normal; }
tbody tr:hover { background: #f8fafb; }
tr.all th, tr.all td { font-weight: 600; }
small.range { color: var(--muted); font-size: 11px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
svg.chart { background: #fff; border: 1px solid var(--rule); max-width: 100%; height: auto; }
svg.chart text { font: 12px system-ui, "DejaVu Sans", sans-serif; fill: var(--ink); }
svg.chart .grid { stroke: #e4e8ec; stroke-width: 1; }
svg.chart .axis { stroke: #8a949d; stroke-width: 1; }
svg.chart .title { font-weight: 600; font-size: 13px; }
svg.chart .muted { fill: var(--muted); }
.gallery { display: flex; flex-wrap: wrap; gap: 14px; }
figure.card { margin: 0; width: min(100%, var(--w)); border: 1px solid var(--rule); border-radius: 4px;
              overflow: hidden; background: var(--band); }
figure.card img { display: block; width: 100%; height: auto; image-rendering: auto; background: #222; }
figure.card figcaption { padding: 6px 8px 8px; font-size: 13px; }
figure.card q { display: block; font-weight: 600; margin-bottom: 3px; overflow-wrap: anywhere; }
figure.card .facts { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin-right: 5px; border-radius: 2px; }
.swatch.outline { background: transparent !important; border: 2px solid; }
pre.page-errors { margin: 12px 28px; padding: 8px; color: #8b0000; background: #fff0f0; border: 1px solid #e0a0a0; }
"""

_SCRIPT = """
(function () {
  var root = document.documentElement;
  function mark(msg) {
    var box = document.getElementById("%(err)s");
    if (!box) {
      box = document.createElement("pre");
      box.id = "%(err)s";
      box.className = "page-errors";
      (document.body || root).appendChild(box);
    }
    box.textContent += msg + "\\n";
    root.setAttribute("%(err_attr)s", "1");
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) { mark("resource failed: " + t.tagName + " " + (t.alt || t.id || "")); }
    else { mark("script error: " + e.message + " (" + e.filename + ":" + e.lineno + ")"); }
  }, true);
  window.addEventListener("unhandledrejection", function (e) { mark("unhandled rejection: " + e.reason); });
  var ce = console.error;
  console.error = function () {
    mark("console.error: " + Array.prototype.join.call(arguments, " "));
    if (ce) { ce.apply(console, arguments); }
  };
  window.addEventListener("load", function () {
    var imgs = document.querySelectorAll("img"), ok = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } else { mark("image did not decode: " + imgs[i].alt); }
    }
    root.setAttribute("%(loaded)s", String(ok));
  });
})();
""" % {"err": ERROR_ID, "err_attr": ERROR_ATTR, "loaded": LOADED_ATTR}


def esc(text: object) -> str:
    """``text`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(text), quote=True)


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage with ``digits`` decimals ('-' when missing or not finite)."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{100 * float(value):.{digits}f}"


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ---- tables ----------------------------------------------------------------------------------------
def metric_table(rows: Sequence[tuple[str, Mapping[str, float]]], columns: Sequence[tuple[str, str]], *,
                 table_id: str, first: str = "", spreads: Sequence[Mapping[str, tuple[float, float]] | None] = ()) -> str:
    """One row per (name, metrics): the sample count, then ``columns`` ((header, key)) in percent.

    A row named 'all' is bold. ``spreads[i]`` (optional) holds (min, max) per key, shown small after the value.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in [first, "samples", *[c for c, _ in columns]])
    body = []
    for i, (name, m) in enumerate(rows):
        spread = spreads[i] if i < len(spreads) else None
        cells = []
        for _, key in columns:
            text = pct(m.get(key))
            if spread and key in spread:
                lo, hi = spread[key]
                text += f' <small class="range">({pct(lo)}-{pct(hi)})</small>'
            cells.append(f"<td>{text}</td>")
        n = m.get("samples")
        cls = ' class="all"' if name == "all" else ""
        body.append(f"<tr{cls}><th>{esc(name)}</th>"
                    f"<td>{'-' if n is None else int(n)}</td>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def plain_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, table_id: str, text_columns: int = 1) -> str:
    """A table of ready-made cell HTML (escape it before); the first ``text_columns`` cells align left."""
    head = "".join(f'<th class="text">{h}</th>' if j < text_columns else f"<th>{h}</th>" for j, h in enumerate(header))
    body = []
    for r in rows:
        cells = "".join(f'<td class="text">{c}</td>' if j < text_columns else f"<td>{c}</td>" for j, c in enumerate(r))
        body.append(f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


# ---- charts ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One line of a chart: points (xs[i], ys[i]); a None or non-finite y leaves a gap."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    colour: str
    width: float = 2.0
    dashed: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(float(v))


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def line_chart(series: Sequence[Series], *, chart_id: str, title: str, x_label: str, y_label: str,
               y_range: tuple[float, float] | None = None, percent: bool = False,
               x_ticks: Sequence[float] | None = None, marker: tuple[float, str] | None = None,
               width: int = 540, height: int = 320) -> str:
    """An inline SVG line chart with axes, grid, a legend, a dot and a hover title per point.

    ``percent``: ys are fractions, drawn and labelled as 0-100. ``y_range``: the y axis (default: 0 or
    the data's minimum, to the data's maximum, rounded out to ticks). ``marker``: (x, text), a dashed
    vertical line (e.g. the best epoch).
    """
    legend_w = 170 if len(series) > 1 else 0
    left, right, top, bottom = 58, 14 + legend_w, 30, 46
    pw, ph = width - left - right, height - top - bottom  # plot width, height
    xs_all = [float(x) for s in series for x, y in zip(s.xs, s.ys) if _finite(y)]
    ys_all = [float(y) for s in series for y in s.ys if _finite(y)]
    scale = 100.0 if percent else 1.0
    if y_range is not None:
        y_lo, y_hi = y_range[0] * scale, y_range[1] * scale
        y_ticks = nice_ticks(y_lo, y_hi)
    else:
        y_lo = min([0.0] + [y * scale for y in ys_all]) if ys_all else 0.0
        y_hi = max(y * scale for y in ys_all) if ys_all else 1.0
        y_hi = y_hi if y_hi > y_lo else y_lo + 1.0
        y_ticks = nice_ticks(y_lo, y_hi)
        step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
        if y_ticks[-1] < y_hi - 1e-9:
            y_ticks.append(round(y_ticks[-1] + step, 10))
        y_hi = max(y_hi, y_ticks[-1])
    if x_ticks is None:
        x_ticks = nice_ticks(min(xs_all), max(xs_all), 8) if xs_all else [0.0, 1.0]
    x_lo = min([*x_ticks, *xs_all]) if xs_all else 0.0
    x_hi = max([*x_ticks, *xs_all]) if xs_all else 1.0
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return top + ph - (y - y_lo) / (y_hi - y_lo) * ph

    out = [f'<svg class="chart" id="{esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text class="title" x="{left}" y="18">{esc(title)}</text>']
    for t in y_ticks:
        y = py(t)
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>')
        out.append(f'<text class="muted" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    for t in x_ticks:
        x = px(float(t))
        out.append(f'<line class="axis" x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 4}"/>')
        out.append(f'<text class="muted" x="{x:.1f}" y="{top + ph + 17}" text-anchor="middle">{_num(float(t))}</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>')
    out.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">{esc(x_label)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2:.1f})">{esc(y_label)}</text>')
    if marker is not None:
        mx = px(float(marker[0]))
        out.append(f'<line x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{top + ph}" stroke="#5c6670" stroke-dasharray="4 3"/>')
        out.append(f'<text class="muted" x="{mx + 4:.1f}" y="{top + 12}">{esc(marker[1])}</text>')
    for s in series:
        pts = [(float(x), float(y) * scale) for x, y in zip(s.xs, s.ys) if _finite(y)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(s.xs, s.ys):  # a gap in the data breaks the line
            if _finite(y):
                runs[-1].append((float(x), float(y) * scale))
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) > 1:
                coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
                out.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="{s.width}"{dash} '
                           f'stroke-linejoin="round" points="{coords}"/>')
        r = 2.0 + s.width / 2
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{r:.1f}" fill="{s.colour}">'
                       f"<title>{esc(f'{s.name}: {_num(x)} -> {y:.1f}' + ('%' if percent else ''))}</title></circle>")
    if legend_w:
        lx = width - legend_w + 6
        for i, s in enumerate(series):
            ly = top + 8 + 18 * i
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" stroke="{s.colour}" stroke-width="{s.width}"{dash}/>')
            out.append(f'<text x="{lx + 28}" y="{ly + 4}">{esc(s.name)}</text>')
    out.append("</svg>")
    return "".join(out)


# ---- gallery ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    """One gallery image with its caption."""

    png: bytes
    """The drawn frame, PNG-encoded."""
    width: int
    height: int
    sentence: str
    facts: Sequence[str]
    """Short caption items ('IoU 0.12', 'score 0.83', the query type, 'video v1, frame 3')."""
    alt: str


def gallery(cards: Sequence[Card], *, gallery_id: str, width: int) -> str:
    items = []
    for c in cards:
        facts = " · ".join(esc(f) for f in c.facts)
        items.append(f'<figure class="card" style="--w: {int(width)}px"><img class="thumb" src="{png_data_uri(c.png)}" '
                     f'width="{int(c.width)}" height="{int(c.height)}" alt="{esc(c.alt)}">'
                     f'<figcaption><q>{esc(c.sentence)}</q><div class="facts">{facts}</div></figcaption></figure>')
    return f'<div class="gallery" id="{esc(gallery_id)}">{"".join(items)}</div>'


def legend(items: Sequence[tuple[str, str, bool]]) -> str:
    """A legend line of (text, CSS colour, outlined) swatches."""
    spans = []
    for text, colour, outline in items:
        kind = "swatch outline" if outline else "swatch"
        style = f"border-color: {colour}" if outline else f"background: {colour}"
        spans.append(f'<span><i class="{kind}" style="{style}"></i>{esc(text)}</span>')
    return f'<p class="legend">{"".join(spans)}</p>'


# ---- the page --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Section:
    section_id: str
    title: str
    body: str
    """Ready HTML."""


def page(*, title: str, lines: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole document: header (``title``, escaped ``lines``), a link per section, the sections."""
    nav = "".join(f'<a href="#{esc(s.section_id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.section_id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    sub = "".join(f"<p>{esc(line)}</p>" for line in lines)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="clawcrane report"><title>{esc(title)}</title>'
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head>\n"
            f"<body><header><h1>{esc(title)}</h1>{sub}</header><nav>{nav}</nav><main>{body}</main></body></html>\n")
