"""Stage `ablate`: the rows of the paper's Table 3 trained and evaluated over one feature cache.

Detection and extraction run once, before (``--cache``). Each row trains a head with
`train-head` into ``TABLE/runs/<row>/``, predicts the split with `track-rank` and scores it with
`evaluate`; a TRM row reuses the previous row's head and only switches the TRM on. Rows 1-7
are the paper's Table 3; rows 8-9 repeat 6-7 with the TSRM-geo variant (``relation='text-geo'``,
not in the paper). A row whose
head already reached ``--epochs`` is not retrained (fewer epochs: train-head resumes it); its
predictions and metrics are recomputed only when the head, caches or options changed (track-rank's
own up-to-date check). Writes ``TABLE/ablation.md`` (Table 3 layout, then P@0.5 per query type) and
``TABLE/ablation.json``. The stage functions are called directly, in this process.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawcrane.cache.atomic import write_json, write_text
from clawcrane.cache.checkpoints import KIND_HEAD, load_checkpoint
from clawcrane.cache.features import open_features
from clawcrane.config import AblateConfig, EvalConfig, TrackRankConfig, TrainHeadConfig, output_config, to_dict
from clawcrane.datasets.records import Dataset
from clawcrane.errors import ConfigError
from clawcrane.pipeline.relations import TEXT_RELATIONS
from clawcrane.stages import evaluate, track_rank, train_head
from clawcrane.stages.evaluate import TABLE1_COLUMNS

log = logging.getLogger(__name__)

SIZES = {"paper": (256, 1000, 1000), "small": (128, 128, 128)}
"""--size: (embed_dim D, word_dim E, lstm_hidden per direction), as `train-head --size`."""
PREDICTIONS = "predictions.parquet"
EVAL_DIR = "eval"


@dataclass(frozen=True)
class Row:
    """One row of Table 3: which modules are on."""

    name: str
    """Folder name under TABLE/runs/."""
    label: str
    """The row's name in the table."""
    position: str
    relation: str
    trm: bool
    head_of: str | None = None
    """Reuse the head of this row (the TRM row) instead of training one."""


ROWS = (
    Row("1-top-down", "top-down pipeline", "none", "none", False),
    Row("2-abs-pe", "+ absolute PE", "absolute", "none", False),
    Row("3-rel-pe", "+ relative PE", "relative", "none", False),
    Row("4-prm", "+ PRM", "full", "none", False),
    Row("5-prm-vanilla", "+ PRM + vanilla attention", "full", "vanilla", False),
    Row("6-prm-tsrm", "+ PRM + TSRM", "full", "text", False),
    Row("7-prm-tsrm-trm", "+ PRM + TSRM + TRM", "full", "text", True, head_of="6-prm-tsrm"),
    # not in the paper: the TSRM with text-guided relative geometry (relation 'text-geo')
    Row("8-prm-tsrm-geo", "+ PRM + TSRM-geo", "full", "text-geo", False),
    Row("9-prm-tsrm-geo-trm", "+ PRM + TSRM-geo + TRM", "full", "text-geo", True, head_of="8-prm-tsrm-geo"),
)
"""Rows 1-7 are the paper's Table 3; rows 8-9 swap in our TSRM variant with relative geometry."""
_MODULE_COLUMNS = ("abs PE", "rel PE", "PRM", "VA", "TSRM", "geo", "TRM")


def _modules(row: Row) -> tuple[bool, ...]:
    p, r = row.position, row.relation
    return (p == "absolute", p == "relative", p == "full", r == "vanilla", r in TEXT_RELATIONS, r == "text-geo", row.trm)


@dataclass
class RowResult:
    row: Row
    run: Path
    """The head's run folder."""
    trained_epochs: int
    """Epochs trained by this call (0: the head was reused)."""
    predictions: Path
    metrics: dict[str, float]
    by_query_type: dict[str, dict[str, float]]
    seconds: float


@dataclass
class AblateResult:
    out: Path
    rows: list[RowResult] = field(default_factory=list)
    markdown: str = ""
    seconds: float = 0.0


def check_config(config: AblateConfig) -> None:
    if config.size not in SIZES:
        raise ConfigError(f"--size {config.size!r}: expected one of {', '.join(SIZES)}")
    if config.epochs < 1:
        raise ConfigError(f"--epochs {config.epochs}: must be at least 1")
    if config.split not in track_rank.SPLITS:
        raise ConfigError(f"--split {config.split!r}: expected one of {', '.join(track_rank.SPLITS)}")


def train_config(config: AblateConfig, row: Row) -> TrainHeadConfig:
    D, E, hidden = SIZES[config.size]
    return TrainHeadConfig(position=row.position, relation=row.relation, embed_dim=D, word_dim=E, lstm_hidden=hidden,
                           epochs=config.epochs, seed=config.seed, weight_decay=config.weight_decay,
                           dropout=config.dropout, device=config.device)


def changed_options(cfg: TrainHeadConfig, run: Path) -> list[str]:
    """The output-affecting options (epochs aside) in which the head in ``run`` differs from ``cfg``.

    [] when they agree or ``run`` holds no head yet.
    """
    last = run / train_head.LAST
    return _changed(cfg, load_checkpoint(last, KIND_HEAD)) if last.is_file() else []


def _changed(cfg: TrainHeadConfig, payload: dict[str, Any]) -> list[str]:
    old = {k: v for k, v in payload.get("config", {}).items() if k != "epochs"}
    new = {k: v for k, v in output_config(cfg).items() if k != "epochs"}
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _train(cfg: TrainHeadConfig, dataset: Dataset, features: Path, run: Path) -> int:
    """Train (or resume, or reuse) one row's head; returns the epochs trained now."""
    last = run / train_head.LAST
    if not last.is_file():
        return train_head.run(cfg, dataset, features=features, out=run).epochs
    payload = load_checkpoint(last, KIND_HEAD)
    diff = _changed(cfg, payload)
    if diff:
        raise ConfigError(f"{last}: this row was trained with other options ({', '.join(diff)}); "
                          "pass the same options or another --out")
    done = int(payload.get("epoch", 0))
    if done >= cfg.epochs:
        log.info("%s: trained for %d epochs already; reused", run, done)
        return 0
    return train_head.run(cfg, dataset, features=features, out=run, resume=True).epochs - done


def _evaluate(config: EvalConfig, pred: track_rank.TrackRankResult, dataset: Dataset, out_dir: Path):
    """(metrics, by query type) of the predictions; reused from out_dir when made from these predictions and options."""
    report = out_dir / "metrics.json"
    if pred.hit and report.is_file():
        try:
            old = json.loads(report.read_text())
        except ValueError:
            old = {}
        if old.get("predictions", {}).get("key") == pred.key and old.get("config") == to_dict(config):
            log.info("%s: up to date", report)
            return old["metrics"], old["by_query_type"]
    ev = evaluate.run(config, predictions=pred.out, dataset=dataset, out_dir=out_dir)
    return ev.metrics, ev.by_query_type


def markdown(rows: list[RowResult], title: str) -> str:
    """Table 3 layout (module check marks, P@K, both mAPs, IoUs; percent), then P@0.5 per query type."""
    metric_names = [c for c, _ in TABLE1_COLUMNS]
    head = "| " + " | ".join(["#", "method", *_MODULE_COLUMNS, *metric_names]) + " |"
    rule = "|" + "---|" * (2 + len(_MODULE_COLUMNS) + len(metric_names))
    lines = [f"### {title}", "", head, rule]
    for i, r in enumerate(rows, start=1):
        marks = ["✓" if on else "" for on in _modules(r.row)]
        values = [f"{100 * r.metrics[k]:.1f}" for _, k in TABLE1_COLUMNS]
        lines.append("| " + " | ".join([str(i), r.row.label, *marks, *values]) + " |")
    types = sorted({t for r in rows for t in r.by_query_type})
    if types:
        lines += ["", "P@0.5 by query type (samples in brackets):", "",
                  "| # | method | " + " | ".join(f"{t} ({int(rows[0].by_query_type.get(t, {}).get('samples', 0))})" for t in types) + " |",
                  "|" + "---|" * (2 + len(types))]
        for i, r in enumerate(rows, start=1):
            cells = [f"{100 * r.by_query_type[t]['P@0.5']:.1f}" if t in r.by_query_type else "-" for t in types]
            lines.append("| " + " | ".join([str(i), r.row.label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def run(config: AblateConfig, dataset: Dataset, *, cache: str | os.PathLike, out: str | os.PathLike,
        track: TrackRankConfig | None = None) -> AblateResult:
    """Train, predict and evaluate every row of ``ROWS``; write TABLE/ablation.md and .json.

    ``track`` sets the track-rank options (split and TRM switch are the row's); default: its defaults.
    """
    check_config(config)
    t_start = time.perf_counter()
    out = Path(out)
    features = open_features(cache).path
    base_track = track or TrackRankConfig()
    results: list[RowResult] = []
    for row in ROWS:
        t0 = time.perf_counter()
        run_dir = out / "runs" / (row.head_of or row.name)
        trained = 0
        if row.head_of is None:
            log.info("ablate: row %s (position %s, relation %s)", row.name, row.position, row.relation)
            trained = _train(train_config(config, row), dataset, features, run_dir)
        row_dir = out / "runs" / row.name
        tcfg = TrackRankConfig(**dict(to_dict(base_track), split=config.split, trm=row.trm, device=config.device))
        pred = track_rank.run(tcfg, dataset, head=run_dir, features=features, out=row_dir / PREDICTIONS)
        metrics, by_type = _evaluate(EvalConfig(split=config.split, j_and_f="off"), pred, dataset, row_dir / EVAL_DIR)
        results.append(RowResult(row=row, run=run_dir, trained_epochs=trained, predictions=pred.out, metrics=metrics,
                                 by_query_type=by_type, seconds=time.perf_counter() - t0))
        log.info("ablate: %s P@0.5 %.3f mAP %.3f (%.0f s)", row.label, metrics["P@0.5"], metrics["mAP_coco"], results[-1].seconds)

    title = f"Table 3 ablation: {dataset.name} {config.split} ({config.size} head, {config.epochs} epochs, seed {config.seed})"
    md = markdown(results, title)
    report: dict[str, Any] = {
        "config": to_dict(config), "track_rank": to_dict(base_track), "features": str(features),
        "dataset": {"name": dataset.name, "root": str(dataset.root), "fingerprint": dataset.fingerprint},
        "rows": [{"name": r.row.name, "label": r.row.label, "position": r.row.position, "relation": r.row.relation,
                  "trm": r.row.trm, "run": str(r.run), "predictions": str(r.predictions), "trained_epochs": r.trained_epochs,
                  "metrics": r.metrics, "by_query_type": r.by_query_type, "seconds": r.seconds} for r in results],
    }
    write_json(out / "ablation.json", report)
    write_text(out / "ablation.md", md)
    return AblateResult(out=out, rows=results, markdown=md, seconds=time.perf_counter() - t_start)
