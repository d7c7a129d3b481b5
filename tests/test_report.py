"""`report`: one static HTML page from a predictions file, on a tiny world the tests build (mp4 videos, GT masks).

The page's tables are read back with the standard library's HTML parser and compared with what
`evaluate` computes for the same files; gallery images are decoded from their data: URIs.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.report_world import (
    GT,
    H,
    T,
    W,
    ablation_table,
    box,
    frames,
    head_run,
    rows,
    world,
    write_preds,
)

import clawcrane.datasets
from clawcrane.atomic import MANIFEST
from clawcrane.cli import main
from clawcrane.config import EvalConfig, ReportConfig
from clawcrane.datasets.records import Video
from clawcrane.datasets.video_io import Mp4Frames
from clawcrane.errors import ConfigError, DataError
from clawcrane.pipeline import overlay as O
from clawcrane.stages import evaluate, report
from clawcrane.stages import report_page as R


@pytest.fixture
def made(tmp_path):
    ds = world(tmp_path / "data")
    pred = write_preds(tmp_path / "pred.parquet", rows())
    return ds, pred


class Tables(HTMLParser):
    """Every <table id=...> as a list of rows of cell texts; every <img> and <svg id=...> attribute set."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.imgs: list[dict[str, str]] = []
        self.svgs: list[str] = []
        self._table = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id", ""), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "svg" and a.get("id"):
            self.svgs.append(a["id"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def png_of(img: dict[str, str]) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix)
    data = base64.b64decode(img["src"][len(prefix):])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_page_holds_metrics_types_curve_training_gallery_and_ablation(tmp_path, made):
    ds, pred = made
    ev = evaluate.run(EvalConfig(), predictions=pred, dataset=ds, out_dir=tmp_path / "ev")
    res = report.run(ReportConfig(gallery=2, thumb_width=128), predictions=pred, dataset=ds, out_dir=tmp_path / "rep",
                     head=head_run(tmp_path / "head"), ablation=ablation_table(tmp_path / "table", ds))
    assert res.sections == ["metrics", "pk", "training", "gallery", "ablation"]
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted([MANIFEST, "index.html"])  # one file
    text = res.index.read_text()
    page = Tables(text)

    # the metrics table and the per-type table: evaluate's numbers, in percent
    def cells(m):
        return [str(int(m["samples"]))] + [f"{100 * m[k]:.1f}" for _, k in evaluate.TABLE1_COLUMNS]

    assert page.tables["metrics-table"][1] == ["all", *cells(ev.metrics)]
    assert ev.metrics["P@0.5"] == pytest.approx(4 / 6)  # 1, 0.5 (not > 0.5), 1, 0, 1, missing
    typed = page.tables["type-table"][1:]
    assert [r[0] for r in typed] == ["appearance", "position", "relation"]
    for r in typed:
        assert r[1:] == cells(ev.by_query_type[r[0]])

    # the P@K chart: an SVG with the overall line and one per type; its points at 0.5..0.9 are the table's
    assert {"pk-curve", "training-loss", "training-accuracy"} <= set(page.svgs)
    pk = re.search(r'<svg class="chart" id="pk-curve".*?</svg>', text, re.S).group(0)
    assert pk.count("<polyline") == 4
    for k in (0.5, 0.6, 0.7, 0.8, 0.9):
        assert f"<title>all: {k:g} -&gt; {100 * ev.metrics[f'P@{k:g}']:.1f}%</title>" in pk

    # training curves: five epochs, best.pt's epoch marked
    acc = re.search(r'<svg class="chart" id="training-accuracy".*?</svg>', text, re.S).group(0)
    assert "best.pt: epoch 3" in acc and "<title>validation: 3 -&gt; 70.0%</title>" in acc and "val: appearance" in acc

    # the gallery: 2 worst + 2 best, PNGs no wider than thumb_width, worst first by IoU
    assert res.gallery == 4 and len(page.imgs) == 4
    assert [i["alt"] for i in page.imgs][:2] == ["worst: v2_1@1", "worst: v2_2@3"]  # IoU 0 (wrong place), then missing
    assert all(i["alt"].startswith("best: ") for i in page.imgs[2:])
    for img in page.imgs:
        png = png_of(img)
        assert png.shape == (H, W, 3) and int(img["width"]) == W  # 64 px frames are never enlarged
        assert png.std() > 10
    assert "no prediction" in text  # the missing sample's caption

    # the ablation table: rows 1 and 9 with the min-max over the two seeds, then P@0.5 per type
    ab = page.tables["ablation-table"]
    assert [r[:2] for r in ab[1:]] == [["1", "top-down pipeline"], ["9", "+ PRM + TSRM-geo + TRM"]]
    assert ab[2][2] == "85.0 (80.0-90.0)"
    assert page.tables["ablation-type-table"][0][2:] == ["appearance (6)", "relation (6)"]

    # self-contained and escaped: no address to fetch, the sentence's markup is text
    assert "the &lt;red&gt; ball &amp; co" in text and "<red>" not in text
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "Content-Security-Policy" in text and "http://www.w3.org/2000/svg" in text
    assert len(re.findall(r"https?://", text)) == text.count('xmlns="http://www.w3.org/2000/svg"')


def test_gallery_images_show_the_chosen_and_the_true_mask_on_the_decoded_frame(tmp_path, made):
    ds, pred = made
    res = report.run(ReportConfig(gallery=1), predictions=pred, dataset=ds, out_dir=tmp_path / "rep")
    worst, best = Tables(res.index.read_text()).imgs
    assert worst["alt"] == "worst: v2_1@1"
    img = cv2.cvtColor(png_of(worst), cv2.COLOR_BGR2RGB)
    frame = frames("v2")[1]
    chosen, truth = box(36, 46, 44, 60), GT[("v2_1", 1)]  # the answer's mask (rows()), the true one
    assert chosen[40, 50] and not truth[40, 50] and truth[10, 20] and not (chosen | truth)[20, 55]
    # inside the chosen mask (off its outline): the frame blended towards the chosen colour
    want = np.rint(0.55 * frame[40, 50].astype(float) + 0.45 * np.array(O.CHOSEN_COLOUR))
    assert np.abs(img[40, 50].astype(float) - want).max() <= 12  # mp4 + PNG round trip
    # on the true mask's border: the truth colour; well away from both masks: the frame itself
    assert np.abs(img[10, 20].astype(int) - O.TRUTH_COLOUR).max() <= 12
    assert np.abs(img[20, 55].astype(int) - frame[20, 55].astype(int)).max() <= 12


def test_draw_comparison_fills_the_chosen_outlines_the_truth_and_leaves_the_rest():
    frame = np.full((40, 50, 3), 100, np.uint8)
    chosen, truth = box(5, 15, 5, 15)[:40, :50], np.zeros((40, 50), bool)
    truth[20:35, 20:45] = True
    out = O.draw_comparison(frame, chosen, truth)
    assert tuple(out[10, 10]) == tuple(int(round(0.55 * 100 + 0.45 * c)) for c in O.CHOSEN_COLOUR)
    assert tuple(out[20, 30]) == O.TRUTH_COLOUR and tuple(out[28, 30]) == (100, 100, 100)  # outline only
    assert tuple(out[2, 45]) == (100, 100, 100)
    assert np.array_equal(O.draw_comparison(frame, None, None), frame)
    with pytest.raises(ValueError, match="does not match"):
        O.draw_comparison(frame, np.zeros((3, 3), bool), None)


def test_without_head_ablation_or_gallery_the_page_has_tables_and_the_curve_only(tmp_path, made):
    ds, pred = made
    res = report.run(ReportConfig(gallery=0), predictions=pred, dataset=ds, out_dir=tmp_path / "rep")
    text = res.index.read_text()
    assert res.sections == ["metrics", "pk"] and res.gallery == 0 and "<img" not in text
    assert 'id="pk-curve"' in text and 'id="training-loss"' not in text and 'id="ablation-table"' not in text
    # a video that cannot be decoded: the gallery draws on grey and says so in the log, the page is still written
    ds.videos["v2"] = Video("v2", Mp4Frames(tmp_path / "gone.mp4"), 5.0, W, H, T, "test")
    res = report.run(ReportConfig(gallery=2), predictions=pred, dataset=ds, out_dir=tmp_path / "rep")
    assert res.gallery == 4


def test_bad_inputs_are_one_line_errors_and_leave_files_alone(tmp_path, made, monkeypatch):
    ds, pred = made
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, split=None, frames=True: ds, raising=False)
    run = CliRunner().invoke

    def fails(args, *words):
        r = run(main, ["--log-level", "error", "report", *map(str, args)])
        assert r.exit_code == 1, r.output
        errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in r.output, r.output
        for w in words:
            assert w in errors[0], errors[0]

    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("not a parquet file")
    fails([not_parquet, "--dataset", tmp_path, "--out", tmp_path / "a"], "notes.parquet")
    other = write_preds(tmp_path / "other.parquet", rows(), fingerprint="fp-2")
    fails([other, "--dataset", tmp_path, "--out", tmp_path / "a"], "fingerprint")
    foreign_q = write_preds(tmp_path / "zz.parquet", rows() + [("zz_9", 0, box(0, 2, 0, 2), 0.1, 0)])
    fails([foreign_q, "--dataset", tmp_path, "--out", tmp_path / "a"], "zz_9")
    fake = tmp_path / "ablation.json"
    fake.write_text(json.dumps({"rows": []}))
    fails([pred, "--dataset", tmp_path, "--ablation", fake, "--out", tmp_path / "a"], "was not written by `clawcrane ablate`")
    (tmp_path / "emptyrun").mkdir()
    fails([pred, "--dataset", tmp_path, "--head", tmp_path / "emptyrun", "--out", tmp_path / "a"], "metrics.json")
    assert not (tmp_path / "a").exists()  # nothing written by a refused run
    with pytest.raises(DataError, match="fingerprint"):
        report.run(ReportConfig(), predictions=other, dataset=ds, out_dir=tmp_path / "b")

    # an --out folder with someone else's file is refused before any work; --force replaces it
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    fails([pred, "--dataset", tmp_path, "--out", out], "--force")
    assert (out / "notes.txt").read_text() == "keep me"
    r = run(main, ["--log-level", "error", "report", str(pred), "--dataset", str(tmp_path), "--out", str(out), "--force",
                   "--gallery", "1"])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "2 gallery images" in r.output and not (out / "notes.txt").exists()
    # a re-run replaces the page it wrote itself without --force; a hand-edited page needs it again
    r = run(main, ["--log-level", "error", "report", str(pred), "--dataset", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    (out / "index.html").write_text("edited")
    fails([pred, "--dataset", tmp_path, "--out", out], "index.html")
    with pytest.raises(ConfigError, match="holds the input"):
        report.run(ReportConfig(force=True), predictions=pred, dataset=ds, out_dir=tmp_path)


def test_default_out_is_beside_the_predictions_and_help_names_every_section(tmp_path, made, monkeypatch):
    ds, pred = made
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, split=None, frames=True: ds, raising=False)
    r = CliRunner().invoke(main, ["--log-level", "error", "report", str(pred), "--dataset", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "pred-report" / "index.html").is_file()
    h = CliRunner().invoke(main, ["report", "--help"]).output
    for word in ("--head", "--ablation", "--gallery", "--thumb-width", "--force", "P@K", "index.html", "gallery"):
        assert word in h, word


def test_charts_skip_gaps_and_ticks_are_round():
    assert R.nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert R.nice_ticks(1, 12, 10) == [2, 4, 6, 8, 10, 12]
    assert R.nice_ticks(0.0, 1.9) == [0.0, 0.5, 1.0, 1.5]
    svg = R.line_chart([R.Series("a", [1, 2, 3, 4], [0.1, None, float("nan"), 0.4], "#000")], chart_id="c", title="t<",
                       x_label="x", y_label="y")
    assert svg.count("<circle") == 2 and "<polyline" not in svg  # two lone points, no line across the gap
    assert "t&lt;" in svg
