"""`clawcrane evaluate PRED --dataset DATA`: predictions vs ground truth -> metrics.json + a table.

Reads a predictions Parquet file and the dataset's GT masks, puts every submitted mask at the GT
resolution (nearest-neighbour resize when sizes differ), scores the split with
``pipeline.metrics`` and writes ``metrics.json`` and ``metrics.md`` (the paper's Table 1 layout
plus a per-query-type table, and a per-wording table when the dataset marks paraphrased
sentences). Per sample the highest-scored mask is the answer, as in every published A2D
evaluator (MTTR's, ReferFormer's); `track-rank` gives every answer a strictly higher score than
its runners-up, so the tie rule never matters for its files. For other files, samples whose top
score is shared by several masks are counted and reported (evaluate then takes the lowest rank;
MTTR's code would take the last one listed). Predictions made for another dataset (another fingerprint, or query
ids the dataset does not have) are refused (the annotation fingerprint is compared when the clips are absent:
evaluate reads no frame); annotated samples with no prediction count as empty
predictions and are listed in a warning.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clawcrane.atomic import clean_stale_temps, write_json, write_text
from clawcrane.cache.predictions import Predictions, read_predictions
from clawcrane.config import EvalConfig, to_dict
from clawcrane.datasets.records import Dataset, Query
from clawcrane.datasets.splits import split_queries
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import DatasetMatch, check_dataset_match, short
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline import metrics as M
from clawcrane.progress import progress

log = logging.getLogger(__name__)

SHOW_IDS = 10
"""How many ids an error or warning lists before '... and N more'."""
TABLE1_COLUMNS = (
    ("P@0.5", "P@0.5"), ("P@0.6", "P@0.6"), ("P@0.7", "P@0.7"), ("P@0.8", "P@0.8"), ("P@0.9", "P@0.9"),
    ("mAP 0.5:0.95 (COCO)", "mAP_coco"), ("mAP 0.5:0.95 (mean P)", "mAP_mean_precision"),
    ("Overall IoU", "overall_iou"), ("Mean IoU", "mean_iou"),
)


@dataclass
class EvalResult:
    """What `evaluate` computed and where it wrote it."""

    metrics: dict[str, float]
    """Overall metrics of the split (fractions in [0, 1]; see ``pipeline.metrics.summarize``)."""
    by_query_type: dict[str, dict[str, float]]
    j_and_f: dict[str, float] | None
    missing: list[str] = field(default_factory=list)
    """Sample ids ``<query_id>@<frame>`` that had no prediction (scored as empty)."""
    markdown: str = ""
    out_dir: Path | None = None
    by_wording: dict[str, dict[str, float]] = field(default_factory=dict)
    by_type_seen: dict[str, dict[str, float]] = field(default_factory=dict)
    """``by_query_type`` of the samples with seen wording ({} when the dataset marks no wording)."""
    """Metrics of the samples with seen wording and with paraphrased (held-out) wording; {} when not marked."""
    tied: list[str] = field(default_factory=list)
    """Sample ids whose top score is shared by several masks (never for files `track-rank` writes)."""


def _listing(ids: list[str]) -> str:
    head = ", ".join(ids[:SHOW_IDS])
    return head + (f" ... and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else "")


def _check_dataset(preds: Predictions, dataset: Dataset) -> str:
    """Refuse predictions made for another dataset (fingerprint, then query ids); returns the dataset's full
    fingerprint (the predictions' own when the clips are absent and the annotation fingerprints agree)."""
    ds_meta = preds.meta.get("dataset") or {}

    def mismatch(m: DatasetMatch) -> str:
        return (
            f"{preds.path}: predictions were made for dataset {ds_meta.get('name', '?')} at {ds_meta.get('root', '?')} "
            f"({m.what} {short(m.recorded)}) but {dataset.root} has {m.what} {short(m.current)}; "
            "evaluate against the dataset the predictions came from, or re-run `clawcrane track-rank` on this one"
        )

    fingerprint = check_dataset_match(ds_meta, dataset, artifact=preds.path, mismatch=mismatch, error=DataError)
    known = {q.query_id for q in dataset.queries}
    unknown = [q for q in preds.query_ids() if q not in known]
    if unknown:
        raise DataError(
            f"{preds.path}: {len(unknown)} query ids are not in the dataset at {dataset.root} ({_listing(unknown)}); "
            "these predictions belong to another dataset"
        )
    return fingerprint


def _row_index(preds: Predictions, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], list[int]]:
    """(query_id, frame) -> row indices, for the wanted samples only."""
    qids, frames = preds.column("query_id"), preds.column("frame")
    index: dict[tuple[str, int], list[int]] = {}
    for i, (q, f) in enumerate(zip(qids, frames.tolist())):
        key = (q, f)
        if key in wanted:
            index.setdefault(key, []).append(i)
    return index


def _full_video(queries: list[Query], dataset: Dataset) -> bool:
    """Every query has GT on every frame of its video (the J&F protocol's data)."""
    return bool(queries) and all(
        q.video_id in dataset.videos and len(q.frames) == dataset.videos[q.video_id].num_frames for q in queries
    )


def collect_samples(preds: Predictions, dataset: Dataset, split: str | None | list[Query]) -> tuple[list[M.Sample], list[str]]:
    """Metric samples of a split (or of a list of queries): GT + predictions at GT size, and the ids of samples without predictions."""
    pairs = dataset.samples(split) if split is None or isinstance(split, str) else [(q, f) for q in split for f in q.frames]
    index = _row_index(preds, {(q.query_id, f) for q, f in pairs})
    scores, ranks = preds.column("score").astype(np.float64), preds.column("rank")
    heights, widths, rles = preds.column("height"), preds.column("width"), preds.column("rle")
    scores = np.where(np.isfinite(scores), scores, np.finfo(np.float32).min)
    samples, missing = [], []
    for q, f in progress(pairs, desc="evaluate", unit="sample"):
        gt = q.gt_mask(f)
        H, W = gt.shape  # (H, W) annotation height, width
        rows = index.get((q.query_id, f), [])
        if not rows:
            missing.append(f"{q.query_id}@{f}")
        rows = sorted(rows, key=lambda i: (-scores[i], ranks[i]))  # top-1 first: best score, then rank
        masks = [M.resize_rle({"size": [int(heights[i]), int(widths[i])], "counts": rles[i]}, H, W) for i in rows]
        samples.append(M.Sample(
            sample_id=f"{q.query_id}@{f}", gt=mask_ops.encode(gt), preds=masks,
            scores=[float(scores[i]) for i in rows], query_type=q.query_type, wording=getattr(q, "wording", "") or None,
        ))
    return samples, missing


def tied_samples(samples: list[M.Sample]) -> list[str]:
    """Ids of samples whose highest score is shared by two or more masks (``collect_samples`` sorts scores)."""
    return [s.sample_id for s in samples if len(s.scores) >= 2 and s.scores[0] == s.scores[1]]


def markdown_tables(metrics: dict[str, float], by_type: dict[str, dict[str, float]], jf: dict[str, float] | None, title: str,
                    *, by_wording: dict[str, dict[str, float]] | None = None,
                    by_type_seen: dict[str, dict[str, float]] | None = None) -> str:
    """Table 1 layout (percent, one decimal) for the split, then one row per query type (and per wording)."""
    head = "| " + " | ".join(["", "samples"] + [c for c, _ in TABLE1_COLUMNS]) + " |"
    rule = "|" + "---|" * (len(TABLE1_COLUMNS) + 2)

    def row(name: str, m: dict[str, float]) -> str:
        return "| " + " | ".join([name, str(int(m["samples"]))] + [f"{100 * m[k]:.1f}" for _, k in TABLE1_COLUMNS]) + " |"

    lines = [f"### {title}", "", head, rule, row("all", metrics)]
    if by_type and set(by_type) != {"untyped"}:
        lines += ["", "By query type:", "", head, rule] + [row(name, m) for name, m in by_type.items()]
    if by_wording:
        lines += ["", "By wording (paraphrase: templates and synonyms no train sentence uses):", "", head, rule]
        lines += [row(name, m) for name, m in by_wording.items()]
    if by_type_seen and set(by_type_seen) != {"untyped"}:
        lines += ["", "By query type, seen wording only:", "", head, rule] + [row(name, m) for name, m in by_type_seen.items()]
    if jf is not None:
        lines += ["", "| J&F | J | F | queries |", "|---|---|---|---|",
                  f"| {100 * jf['J&F']:.1f} | {100 * jf['J']:.1f} | {100 * jf['F']:.1f} | {jf['queries']} |"]
    return "\n".join(lines) + "\n"


def _ours(report: Path) -> bool:
    """Whether ``report`` is a metrics.json evaluate wrote."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"metrics", "predictions", "config"} <= set(data)


def check_out_dir(out: Path) -> None:
    """Refuse an output folder whose metrics.json / metrics.md evaluate did not write (before any work)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a folder; choose another --out (`clawcrane evaluate PRED --out DIR`)")
    report, md = out / "metrics.json", out / "metrics.md"
    if (report.exists() and not _ours(report)) or (md.exists() and not report.exists()):
        theirs = report if report.exists() else md
        raise ConfigError(f"{theirs}: was not written by `clawcrane evaluate`, so it is left as it is; choose another --out "
                          f"(`clawcrane evaluate PRED --dataset D --out NEW_DIR`) or move the file away")


def default_out_dir(predictions: str | os.PathLike, split: str = "test") -> Path:
    """``<PRED stem>-eval`` beside PRED (``-eval-<split>`` for another split than test, so none overwrites another)."""
    p = Path(predictions)
    return p.parent / (f"{p.stem}-eval" if split == "test" else f"{p.stem}-eval-{split}")


def covers(made: str, wanted: str) -> bool:
    """Whether predictions made for split ``made`` hold every query of split ``wanted``."""
    return made in (wanted, "all") or (made == "train" and wanted == "val")


def _check_split(preds: Predictions, wanted: str) -> None:
    made = (preds.meta.get("config") or {}).get("split")
    if made and not covers(str(made), wanted):
        raise DataError(f"{preds.path}: predictions were made for split {made!r} (`track-rank --split {made}`), which "
                        f"does not hold the {wanted!r} queries; evaluate with --split {made}, or run "
                        f"`clawcrane track-rank --split {wanted}` first")


@dataclass
class Scored:
    """A split scored in memory (what `evaluate` writes and `report` draws)."""

    samples: list[M.Sample]
    """Every (query, annotated frame) of the split, GT and predictions at GT size."""
    missing: list[str]
    tied: list[str]
    metrics: dict[str, float]
    by_query_type: dict[str, dict[str, float]]
    by_wording: dict[str, dict[str, float]]
    by_type_seen: dict[str, dict[str, float]]
    j_and_f: dict[str, float] | None


def check_config(config: EvalConfig) -> None:
    if config.split not in ("test", "train", "all", "val"):
        raise ConfigError(f"--split {config.split!r}: expected test, train, val or all")
    if config.j_and_f not in ("auto", "on", "off"):
        raise ConfigError(f"j_and_f {config.j_and_f!r}: expected auto, on or off")


def checked_queries(preds: Predictions, dataset: Dataset, split: str) -> list[Query]:
    """The queries of ``split`` after refusing predictions made for another dataset or another split."""
    _check_dataset(preds, dataset)
    _check_split(preds, split)
    try:
        queries = split_queries(dataset, split, preds.meta.get("validation"))
    except ValueError:
        raise DataError(f"{preds.path}: --split val needs predictions made with `track-rank --split val` (they record "
                        "the head's validation videos)") from None
    if not any(q.frames for q in queries):
        raise DataError(f"{dataset.root}: no annotated samples in split {split!r}; pick another --split")
    return queries


def score(config: EvalConfig, preds: Predictions, dataset: Dataset, queries: list[Query]) -> Scored:
    """Score ``queries`` (from ``checked_queries``): every metric, per type and wording, J&F when asked; logs the warnings."""
    samples, missing = collect_samples(preds, dataset, queries)
    if missing:
        log.warning("%d of %d samples have no prediction and count as empty: %s", len(missing), len(samples), _listing(missing))
    tied = tied_samples(samples)
    if tied:
        log.warning("%s: %d of %d samples have several masks sharing the top score (e.g. %s); evaluate takes the lowest "
                    "rank, other evaluators may take another mask; re-run `clawcrane track-rank` to get strict scores",
                    preds.path, len(tied), len(samples), _listing(tied))
    jf = None
    if config.j_and_f == "on" or (config.j_and_f == "auto" and _full_video(queries, dataset)):
        by_query: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for s in samples:
            top = s.top1()
            gt = mask_ops.decode(s.gt)
            pred = mask_ops.decode(top) if top is not None else np.zeros_like(gt)
            by_query.setdefault(s.sample_id.rsplit("@", 1)[0], []).append((pred, gt))
        jf = M.j_and_f(list(by_query.values()))
    return Scored(samples=samples, missing=missing, tied=tied, metrics=M.summarize(samples),
                  by_query_type=M.by_query_type(samples), by_wording=M.by_wording(samples),
                  by_type_seen=M.by_type_seen(samples), j_and_f=jf)


def run(config: EvalConfig, *, predictions: str | os.PathLike, dataset: Dataset, out_dir: str | os.PathLike | None = None) -> EvalResult:
    """Score ``predictions`` on ``dataset``'s ``config.split``; write metrics.json + metrics.md."""
    check_config(config)
    check_out_dir(Path(out_dir) if out_dir is not None else default_out_dir(predictions, config.split))
    preds = read_predictions(predictions)
    queries = checked_queries(preds, dataset, config.split)
    fingerprint = _check_dataset(preds, dataset)  # the annotation fingerprint when the clips are absent
    sc = score(config, preds, dataset, queries)
    metrics, by_type, by_wording, by_type_seen, jf = sc.metrics, sc.by_query_type, sc.by_wording, sc.by_type_seen, sc.j_and_f
    missing, tied = sc.missing, sc.tied

    title = f"{dataset.name} {config.split} ({Path(predictions).name})"
    md = markdown_tables(metrics, by_type, jf, title, by_wording=by_wording, by_type_seen=by_type_seen)
    out = Path(out_dir) if out_dir is not None else default_out_dir(predictions, config.split)
    report: dict[str, Any] = {
        "dataset": dataset.identity(fingerprint),
        "predictions": {"path": str(Path(predictions)), "key": preds.key, "meta": preds.meta},
        "config": to_dict(config),
        "metrics": metrics,
        "by_query_type": by_type,
        "by_wording": by_wording,
        "by_type_seen": by_type_seen,
        "j_and_f": jf,
        "missing_samples": missing,
        "tied_top_scores": tied,
    }
    for name in ("metrics.json", "metrics.md"):
        clean_stale_temps(out, target=name)  # a killed run's half-written temp
    write_json(out / "metrics.json", report)
    write_text(out / "metrics.md", md)
    log.info("wrote %s", out)
    return EvalResult(metrics=metrics, by_query_type=by_type, j_and_f=jf, missing=missing, markdown=md, out_dir=out,
                      by_wording=by_wording, by_type_seen=by_type_seen, tied=tied)
