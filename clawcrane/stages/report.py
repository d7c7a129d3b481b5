"""`clawcrane report PRED --dataset D --out DIR`: one static HTML page of a predictions file's results.

Reads PRED and the dataset's ground truth and scores the split in memory with `evaluate`'s own
functions (``evaluate.checked_queries`` refuses predictions of another dataset or split;
``evaluate.score`` gives the numbers `evaluate` writes to metrics.json). Writes ``DIR/index.html``:
one self-contained file (style and script inline, images as ``data:`` URIs, nothing fetched), so
it opens from disk with no server and no network. Its sections:

* **Metrics**: the Table 1 layout (P@0.5..0.9, both mAPs, Overall and Mean IoU) for the split,
  per query type, per wording and J&F where the data has them;
* **Precision at IoU thresholds**: P@K for K = 0.50, 0.55, ..., 0.95 as an SVG line chart,
  overall and per query type (the points at 0.5..0.9 are the table's);
* **Training** (``head``: a `train-head` run folder, or its metrics.json): loss and accuracy
  (train, validation, validation per type) per epoch, the epoch best.pt holds marked;
* **Gallery**: the ``gallery`` worst and best samples by IoU of the chosen (top-1) mask, each
  frame decoded from the dataset's video with the chosen mask filled and the true mask outlined
  (``pipeline.overlay.draw_comparison``), its sentence, IoU, score and query type;
* **Ablation** (``ablation``: `ablate`'s TABLE/ablation.json or its folder): the Table 3 rows
  with the min-max over seeds, then P@0.5 per query type.

The folder is written atomically (``atomic.atomic_dir``): a re-run replaces it as a whole; a
folder holding files report did not write is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clawcrane import __version__
from clawcrane.atomic import atomic_dir, check_replaceable, write_text
from clawcrane.cache.predictions import read_predictions
from clawcrane.config import EvalConfig, ReportConfig
from clawcrane.datasets.records import Dataset, Query
from clawcrane.errors import ClawcraneError, ConfigError
from clawcrane.fingerprint import file_fingerprint
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import metrics as M
from clawcrane.pipeline import overlay as O
from clawcrane.stages import ablate, evaluate
from clawcrane.stages import report_page as R

log = logging.getLogger(__name__)

INDEX = "index.html"
CURVE_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""IoU thresholds K of the P@K chart: 0.50, 0.55, ..., 0.95 (P@K: share of samples with IoU > K)."""
HEAD_METRICS = "metrics.json"
"""The per-epoch history `train-head` writes into its run folder."""
ABLATION_FILE = "ablation.json"
GALLERY_SPLIT = 0.5
"""The gallery's worst half prefers samples with IoU <= this (misses at P@0.5), its best half those above (hits)."""


@dataclass
class ReportResult:
    """What `report` wrote."""

    out_dir: Path
    index: Path
    """The page (``out_dir/index.html``)."""
    samples: int
    metrics: dict[str, float]
    gallery: int
    """Gallery images on the page."""
    sections: list[str] = field(default_factory=list)
    """Ids of the page's sections, in order."""
    bytes: int = 0


@dataclass
class GalleryPick:
    """One sample chosen for the gallery."""

    sample: M.Sample
    query: Query
    frame: int
    iou: float
    score: float | None
    kind: str
    """'worst' or 'best'."""


# ---- inputs ------------------------------------------------------------------------------------
def default_out_dir(predictions: str | os.PathLike, split: str = "test") -> Path:
    """``<PRED stem>-report`` beside PRED (``-report-<split>`` for another split than test)."""
    p = Path(predictions)
    return p.parent / (f"{p.stem}-report" if split == "test" else f"{p.stem}-report-{split}")


def read_head_history(head: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(the file, its content) of a `train-head` run's metrics.json: ``head`` is the run folder, a checkpoint in it, or the file."""
    head = Path(head)
    path = head / HEAD_METRICS if head.is_dir() else (head if head.suffix == ".json" else head.parent / HEAD_METRICS)
    if not path.is_file():
        raise ConfigError(f"{head}: no {HEAD_METRICS} with the per-epoch history `clawcrane train-head` writes there; "
                          "pass the train-head run folder (`clawcrane report PRED --dataset D --head RUN`)")
    try:
        doc = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"{path}: not JSON ({err}); pass the metrics.json a train-head run wrote") from None
    hist = doc.get("history") if isinstance(doc, dict) else None
    if not isinstance(hist, list) or not all(isinstance(h, dict) and "epoch" in h and "train_loss" in h for h in hist):
        raise ConfigError(f"{path}: was not written by `clawcrane train-head` (no per-epoch history); pass the run "
                          "folder of a train-head run as --head")
    if not hist:
        raise ConfigError(f"{path}: holds no finished epoch yet; let train-head finish an epoch, or leave --head out")
    return path, doc


def read_ablation(ablation: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(the file, its content) of an ablation.json `ablate` wrote; ``ablation`` is the file or its TABLE folder."""
    path = Path(ablation)
    if path.is_dir():
        path = path / ABLATION_FILE
    if not path.is_file():
        raise ConfigError(f"{ablation}: no {ABLATION_FILE}; pass the file `clawcrane ablate --out TABLE` wrote "
                          "(TABLE/ablation.json)")
    if path.suffix == ".md" and (path.parent / ABLATION_FILE).is_file():
        raise ConfigError(f"{path}: the page reads the table from {path.parent / ABLATION_FILE}; pass that file or the folder")
    if not ablate.is_ablation_report(path):
        raise ConfigError(f"{path}: was not written by `clawcrane ablate`; pass TABLE/ablation.json of an ablate run")
    edited = ablate.edited_by_hand(path, path.with_suffix(".md"))
    if edited == path:  # the numbers on the page must be the ones ablate measured (ablation.md is not read)
        raise ConfigError(f"{path}: changed since `clawcrane ablate` wrote it (edited by hand?), so its numbers are not "
                          f"shown; re-run `clawcrane ablate` or pass an unedited ablation.json")
    return path, json.loads(path.read_text())


# ---- the gallery -----------------------------------------------------------------------------------
def _spread_pick(order: list[int], samples: list[M.Sample], n: int, skip: set[int], side: set[int]) -> list[int]:
    """``n`` of ``order`` (not in ``skip``), kept in that order: first one frame per query among ``side``, then more
    frames of ``side``, then anything left."""
    free = [i for i in order if i not in skip]
    seen: set[str] = set()
    chosen: list[int] = []
    for i in free:  # one frame per query, on the right side of the threshold
        q = samples[i].sample_id.rsplit("@", 1)[0]
        if i in side and q not in seen and len(chosen) < n:
            seen.add(q)
            chosen.append(i)
    for pool in ([i for i in free if i in side], free):
        chosen += [i for i in pool if i not in chosen][: n - len(chosen)]
    keep = set(chosen)
    return [i for i in order if i in keep]


def pick_gallery(samples: list[M.Sample], ious: np.ndarray, queries: dict[str, Query], n: int) -> list[GalleryPick]:
    """The ``n`` worst samples by IoU (lowest first), then the ``n`` best (highest first) not already shown.

    Each half shows one frame per query while it can, among the misses (IoU <= 0.5) for the worst
    half and the hits (IoU > 0.5) for the best, so one query on many frames does not fill the
    gallery; ties go by sample id.
    """
    if n <= 0 or not samples:
        return []
    hits = {i for i in range(len(samples)) if ious[i] > GALLERY_SPLIT}
    misses = set(range(len(samples))) - hits
    worst = _spread_pick(sorted(range(len(samples)), key=lambda i: (float(ious[i]), samples[i].sample_id)),
                         samples, n, set(), misses)
    best = _spread_pick(sorted(range(len(samples)), key=lambda i: (-float(ious[i]), samples[i].sample_id)),
                        samples, n, set(worst), hits)
    picks = []
    for kind, idx in (("worst", worst), ("best", best)):
        for i in idx:
            s = samples[i]
            qid, frame = s.sample_id.rsplit("@", 1)
            score = float(np.max(np.asarray(s.scores, np.float64))) if s.scores else None
            picks.append(GalleryPick(sample=s, query=queries[qid], frame=int(frame), iou=float(ious[i]),
                                     score=score, kind=kind))
    return picks


def _frames(dataset: Dataset, picks: list[GalleryPick]) -> dict[tuple[str, int], np.ndarray | None]:
    """(video_id, frame) -> RGB frame of every pick, each video opened once; None where it cannot be decoded."""
    wanted: dict[str, set[int]] = {}
    for p in picks:
        wanted.setdefault(p.query.video_id, set()).add(p.frame)
    out: dict[tuple[str, int], np.ndarray | None] = {}
    for vid, frames in sorted(wanted.items()):
        video = dataset.videos.get(vid)
        got: dict[int, np.ndarray] = {}
        try:
            if video is None or video.source is None:
                raise ConfigError(f"video {vid}: no frames in the dataset")
            got = dict(video.iter_frames(sorted(frames)))
        except (ClawcraneError, OSError, ValueError, cv2.error) as err:
            log.warning("report: %s: frames not decoded, the gallery draws the masks on grey (%s)", vid, err)
        for f in frames:
            out[(vid, f)] = got.get(f)
    return out


def draw_pick(pick: GalleryPick, frame: np.ndarray | None, thumb_width: int) -> tuple[bytes, int, int]:
    """The pick drawn (chosen mask filled, true mask outlined) and scaled to ``thumb_width``: (PNG bytes, width, height)."""
    truth = mask_ops.decode(pick.sample.gt)
    H, W = truth.shape  # (H, W) annotation height, width
    if frame is None:
        frame = np.full((H, W, 3), 96, np.uint8)
    fh, fw = frame.shape[:2]  # (fh, fw) frame height, width
    top = pick.sample.top1()
    chosen = mask_ops.decode(M.resize_rle(top, fh, fw)) if top is not None else None
    if (fh, fw) != (H, W):
        truth = mask_ops.decode(M.resize_rle(pick.sample.gt, fh, fw))
    drawn = O.thumbnail(O.draw_comparison(frame, chosen, truth), thumb_width)  # the caption names the frame
    ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes(), int(drawn.shape[1]), int(drawn.shape[0])


# ---- sections ------------------------------------------------------------------------------------
def _metrics_section(sc: evaluate.Scored, out_of: str) -> R.Section:
    cols = evaluate.TABLE1_COLUMNS
    body = [R.metric_table([("all", sc.metrics)], cols, table_id="metrics-table")]
    if sc.by_query_type and set(sc.by_query_type) != {"untyped"}:
        body += ["<h3>By query type</h3>", R.metric_table(list(sc.by_query_type.items()), cols, table_id="type-table",
                                                           first="query type")]
    if sc.by_wording:
        body += ["<h3>By wording</h3>", '<p class="note">paraphrase: templates and synonyms no train sentence uses</p>',
                 R.metric_table(list(sc.by_wording.items()), cols, table_id="wording-table", first="wording")]
    if sc.by_type_seen and set(sc.by_type_seen) != {"untyped"}:
        body += ["<h3>By query type, seen wording only</h3>",
                 R.metric_table(list(sc.by_type_seen.items()), cols, table_id="type-seen-table", first="query type")]
    if sc.j_and_f is not None:
        jf = sc.j_and_f
        body += ["<h3>J&amp;F</h3>", R.plain_table(["J&amp;F", "J", "F", "queries"],
                                                   [[R.pct(jf["J&F"]), R.pct(jf["J"]), R.pct(jf["F"]), str(jf["queries"])]],
                                                   table_id="jf-table", text_columns=0)]
    notes = [f"Percent; {out_of}. Per sample the highest-scored mask is the answer; P@K counts IoU &gt; K."]
    if sc.missing:
        notes.append(f"{len(sc.missing)} samples had no prediction and count as empty masks "
                     f"(e.g. {R.esc(', '.join(sc.missing[:5]))}).")
    if sc.tied:
        notes.append(f"{len(sc.tied)} samples have several masks sharing the top score; the lowest rank is taken.")
    return R.Section("metrics", "Metrics", "".join(body) + "".join(f'<p class="note">{n}</p>' for n in notes))


def _curve_section(sc: evaluate.Scored, ious: np.ndarray) -> R.Section:
    types = [s.query_type or "untyped" for s in sc.samples]
    series = [R.Series("all", CURVE_THRESHOLDS, _precisions(ious), R.CHART_COLOURS[0], width=3.0)]
    names = sorted(set(types))
    if names != ["untyped"]:
        for j, name in enumerate(names):
            sel = np.array([t == name for t in types])
            series.append(R.Series(f"{name} ({int(sel.sum())})", CURVE_THRESHOLDS, _precisions(ious[sel]),
                                   R.CHART_COLOURS[(j + 1) % len(R.CHART_COLOURS)], width=1.5, dashed=True))
    chart = R.line_chart(series, chart_id="pk-curve", title="P@K: share of samples with IoU > K", x_label="IoU threshold K",
                         y_label="P@K (%)", y_range=(0.0, 1.0), percent=True, x_ticks=CURVE_THRESHOLDS)
    note = ('<p class="note">The points at K = 0.5 ... 0.9 are the table\'s P@0.5 ... P@0.9; the area under the '
            "curve over 0.5 ... 0.95 is the mean-of-precision mAP (with IoU &ge; K).</p>")
    return R.Section("pk", "Precision at IoU thresholds", f'<div class="charts">{chart}</div>{note}')


def _precisions(ious: np.ndarray) -> list[float]:
    values = M.precision_at(ious, CURVE_THRESHOLDS)
    return [values[M.precision_name(k)] for k in CURVE_THRESHOLDS]


def _training_section(path: Path, doc: dict[str, Any]) -> R.Section:
    hist = sorted(doc["history"], key=lambda h: h["epoch"])
    epochs = [int(h["epoch"]) for h in hist]
    best = doc.get("best_epoch")
    marker = (float(best), f"best.pt: epoch {best}") if isinstance(best, int) and best in epochs else None
    x_ticks = R.nice_ticks(min(epochs), max(epochs), 10) if len(epochs) > 1 else epochs
    x_ticks = [t for t in x_ticks if float(t).is_integer()] or epochs
    loss = R.line_chart([R.Series("train loss", epochs, [h.get("train_loss") for h in hist], R.CHART_COLOURS[0])],
                        chart_id="training-loss", title="Contrastive loss per epoch (train)", x_label="epoch",
                        y_label="loss", x_ticks=x_ticks, marker=marker)
    val = [h.get("validation") or {} for h in hist]
    acc = [R.Series("train", epochs, [h.get("train_accuracy") for h in hist], R.CHART_COLOURS[0]),
           R.Series("validation", epochs, [v.get("accuracy") for v in val], R.CHART_COLOURS[1], width=3.0)]
    types = sorted({t for v in val for t in (v.get("per_type") or {})})
    for j, t in enumerate(types):
        acc.append(R.Series(f"val: {t}", epochs, [((v.get("per_type") or {}).get(t) or {}).get("accuracy") for v in val],
                            R.CHART_COLOURS[(j + 2) % len(R.CHART_COLOURS)], width=1.2, dashed=True))
    accuracy = R.line_chart(acc, chart_id="training-accuracy", title="Top-1 accuracy per epoch", x_label="epoch",
                            y_label="accuracy (%)", y_range=(0.0, 1.0), percent=True, x_ticks=x_ticks, marker=marker)
    last = hist[-1]
    facts = [f"{len(hist)} epochs from {R.esc(path)}"]
    if marker is not None:
        bv = next((v for h, v in zip(hist, val) if h["epoch"] == best), {})
        if bv.get("accuracy") is not None:
            facts.append(f"best.pt is epoch {best}, validation accuracy {R.pct(bv['accuracy'])} % "
                         f"on {int(bv.get('samples', 0))} samples of held-out train videos")
    facts.append(f"last epoch: train loss {last['train_loss']:.4f}")
    return R.Section("training", "Training of the head",
                     f'<div class="charts">{loss}{accuracy}</div><p class="note">{"; ".join(facts)}.</p>')


def _gallery_section(picks: list[GalleryPick], drawn: list[tuple[bytes, int, int]], width: int) -> R.Section:
    body = [R.legend([("chosen mask (the answer, top-1)", _css(O.CHOSEN_COLOUR), False),
                      ("true mask (outline)", _css(O.TRUTH_COLOUR), True)])]
    for kind, title in (("worst", "Worst samples (lowest IoU first)"), ("best", "Best samples (highest IoU first)")):
        cards = []
        for p, (png, w, h) in zip(picks, drawn):
            if p.kind != kind:
                continue
            facts = [f"IoU {p.iou:.2f}", _score_text(p),
                     p.query.query_type or "untyped", f"video {p.query.video_id}, frame {p.frame}", p.query.query_id]
            cards.append(R.Card(png=png, width=w, height=h, sentence=p.query.sentence, facts=facts,
                                alt=f"{kind}: {p.sample.sample_id}"))
        if cards:
            body += [f"<h3>{title}</h3>", R.gallery(cards, gallery_id=f"gallery-{kind}", width=width)]
    return R.Section("gallery", "Gallery", "".join(body))


def _score_text(p: GalleryPick) -> str:
    if p.sample.top1() is None:
        return "no prediction"
    if p.score is None or not math.isfinite(p.score) or p.score <= float(np.finfo(np.float32).min):
        return "no score"  # evaluate ranks a non-finite score lowest
    return f"score {p.score:.3f}"


def _css(colour: tuple[int, int, int]) -> str:
    return "rgb({}, {}, {})".format(*colour)


def _ablation_section(path: Path, doc: dict[str, Any]) -> R.Section:
    number = {r.name: str(i + 1) for i, r in enumerate(ablate.ROWS)}
    cols = evaluate.TABLE1_COLUMNS
    rows = doc.get("rows") or []
    cfg = doc.get("config") or {}
    ds = doc.get("dataset") or {}
    seeds = cfg.get("seeds") or []
    header = ["#", "method", *[R.esc(c) for c, _ in cols]]
    table = []
    for r in rows:
        m, spread = r.get("metrics") or {}, r.get("spread") or {}
        cells = [number.get(r.get("name", ""), ""), R.esc(r.get("label", r.get("name", "")))]
        for _, k in cols:
            text = R.pct(m.get(k))
            if len(r.get("seeds") or []) > 1 and k in spread:
                text += f' <small class="range">({R.pct(spread[k][0])}-{R.pct(spread[k][1])})</small>'
            cells.append(text)
        table.append(cells)
    body = [R.plain_table(header, table, table_id="ablation-table", text_columns=2)]
    types = sorted({t for r in rows for t in (r.get("by_query_type") or {})})
    if types and types != ["untyped"]:
        first = rows[0].get("by_query_type") or {}
        theader = ["#", "method", *[f"{R.esc(t)} ({int((first.get(t) or {}).get('samples', 0))})" for t in types]]
        trows = []
        for r in rows:
            groups, spread = r.get("by_query_type") or {}, r.get("spread") or {}
            cells = [number.get(r.get("name", ""), ""), R.esc(r.get("label", r.get("name", "")))]
            for t in types:
                text = R.pct((groups.get(t) or {}).get("P@0.5")) if t in groups else "-"
                if t in groups and len(r.get("seeds") or []) > 1 and f"type:{t}" in spread:
                    lo, hi = spread[f"type:{t}"]
                    text += f' <small class="range">({R.pct(lo)}-{R.pct(hi)})</small>'
                cells.append(text)
            trows.append(cells)
        body += ["<h3>P@0.5 by query type (samples in brackets)</h3>",
                 R.plain_table(theader, trows, table_id="ablation-type-table", text_columns=2)]
    note = (f"From {R.esc(path)}: {R.esc(ds.get('name', '?'))} {R.esc(cfg.get('split', '?'))} at {R.esc(ds.get('root', '?'))}, "
            f"{R.esc(cfg.get('size', '?'))} head, {R.esc(cfg.get('epochs', '?'))} epochs, "
            + (f"mean (min-max) over seeds {R.esc(','.join(map(str, seeds)))}" if len(seeds) > 1
               else f"seed {R.esc(','.join(map(str, seeds)))}") + ". Percent.")
    return R.Section("ablation", "Ablation (Table 3)", f'<p class="note">{note}</p>' + "".join(body))


def check_head_of(history: Path, head_meta: dict[str, Any], predictions: str | os.PathLike) -> None:
    """Refuse a --head run other than the one that made ``predictions`` (its checkpoint's fingerprint, or its folder)."""
    recorded, fp = head_meta.get("path"), head_meta.get("fingerprint")
    if not recorded:
        return  # predictions that do not say which head made them: nothing to compare
    run = history.parent
    if Path(recorded).resolve().parent == run.resolve():
        return
    if fp and any(file_fingerprint(pt, full=True) == fp for pt in sorted(run.glob("*.pt"))):
        return  # the run folder was moved or copied: one of its checkpoints is the one that predicted
    raise ConfigError(f"{history}: belongs to another train-head run than the one that made {predictions} "
                      f"(head {recorded}); pass that run's folder as --head, or leave --head out")


def check_ablation_of(path: Path, doc: dict[str, Any], dataset: Dataset) -> None:
    """Refuse an ablation.json made on another dataset than ``--dataset`` (annotation fingerprints compared)."""
    info = doc.get("dataset") or {}
    theirs, ours = info.get("annotation_fingerprint"), dataset.annotation_fingerprint
    if theirs and ours and theirs != ours:
        raise ConfigError(f"{path}: was made on dataset {info.get('name', '?')!r} at {info.get('root', '?')}, not on "
                          f"--dataset {dataset.root}; pass the ablation of this dataset, or leave --ablation out")


# ---- the stage -----------------------------------------------------------------------------------
def run(config: ReportConfig, *, predictions: str | os.PathLike, dataset: Dataset, out_dir: str | os.PathLike | None = None,
        head: str | os.PathLike | None = None, ablation: str | os.PathLike | None = None) -> ReportResult:
    """Score ``predictions`` on ``dataset``'s ``config.split`` and write the page ``OUT/index.html``."""
    ev_config = EvalConfig(split=config.split, j_and_f=config.j_and_f)
    evaluate.check_config(ev_config)
    out = Path(out_dir) if out_dir is not None else default_out_dir(predictions, config.split)
    keep = tuple(p for p in (predictions, head, ablation, dataset.root) if p is not None)
    check_replaceable(out, command="report", force=config.force, keep=keep)  # before any work; atomic_dir checks again
    head_doc = read_head_history(head) if head is not None else None
    ablation_doc = read_ablation(ablation) if ablation is not None else None

    preds = read_predictions(predictions)
    if head_doc is not None:
        check_head_of(head_doc[0], preds.meta.get("head") or {}, predictions)
    if ablation_doc is not None:
        check_ablation_of(ablation_doc[0], ablation_doc[1], dataset)
    queries = evaluate.checked_queries(preds, dataset, config.split)
    sc = evaluate.score(ev_config, preds, dataset, queries)
    ious = M.top1_ious(sc.samples)

    picks = pick_gallery(sc.samples, ious, {q.query_id: q for q in queries}, config.gallery)
    frames = _frames(dataset, picks)
    drawn = [draw_pick(p, frames[(p.query.video_id, p.frame)], config.thumb_width) for p in picks]

    out_of = f"{int(sc.metrics['samples'])} samples of the {config.split} split"
    sections = [_metrics_section(sc, out_of), _curve_section(sc, ious)]
    if head_doc is not None:
        sections.append(_training_section(*head_doc))
    if picks:
        sections.append(_gallery_section(picks, drawn, config.thumb_width))
    if ablation_doc is not None:
        sections.append(_ablation_section(*ablation_doc))
    head_meta = preds.meta.get("head") or {}
    lines = [f"{dataset.name} at {dataset.root}, {config.split} split: {out_of}, {len(queries)} queries",
             f"predictions: {Path(predictions)}" + (f" (head {head_meta['path']}, epoch {head_meta.get('epoch')})"
                                                    if head_meta.get("path") else ""),
             f"clawcrane {__version__}: P@0.5 {R.pct(sc.metrics['P@0.5'])}, mAP (COCO) {R.pct(sc.metrics['mAP_coco'])}, "
             f"Overall IoU {R.pct(sc.metrics['overall_iou'])}, Mean IoU {R.pct(sc.metrics['mean_iou'])}"]
    text = R.page(title=f"ClawCrane results: {dataset.name} {config.split} ({Path(predictions).name})", lines=lines,
                  sections=sections)
    with atomic_dir(out, command="report", force=config.force, keep=keep) as tmp:
        write_text(tmp / INDEX, text)
    log.info("wrote %s", out / INDEX)
    return ReportResult(out_dir=out, index=out / INDEX, samples=len(sc.samples), metrics=sc.metrics, gallery=len(picks),
                        sections=[s.section_id for s in sections], bytes=len(text.encode()))
