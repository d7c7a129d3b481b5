"""Stage `ablate`: the rows of the paper's Table 3 trained and evaluated over one feature cache.

Detection and extraction run once, before (``--cache``). Each row trains a head with
`train-head` into ``TABLE/runs/s<seed>/<row>/`` (best.pt selected on validation videos held out
of the train split, never on test), predicts the split with `track-rank` and scores it with
`evaluate`; a TRM row reuses the previous row's head and only switches the TRM on. With several
``--seeds`` every cell is the mean over seeds with the min-max beside it; ``--rows`` picks rows. Rows 1-7
are the paper's Table 3; rows 8-9 repeat 6-7 with the TSRM-geo variant (``relation='text-geo'``,
not in the paper). A row whose
head already reached ``--epochs`` is not retrained (fewer epochs: train-head resumes it); its
predictions and metrics are recomputed only when the head, caches or options changed (track-rank's
own up-to-date check). Writes ``TABLE/ablation.md`` (Table 3 layout, then P@0.5 per query type) and
``TABLE/ablation.json`` (``ablation-<split>.md`` etc. for another split than test). The stage functions are called directly, in this process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawcrane.atomic import write_json, write_text
from clawcrane.build.heads import LAST, resolved_train_config, sized
from clawcrane.cache.checkpoints import KIND_HEAD, load_checkpoint
from clawcrane.cache.features import open_features
from clawcrane.config import (
    HEAD_SIZES,
    SEED_MAX,
    TEXT_RELATIONS,
    AblateConfig,
    EvalConfig,
    TrackRankConfig,
    TrainHeadConfig,
    to_dict,
)
from clawcrane.datasets.records import Dataset
from clawcrane.errors import ConfigError
from clawcrane.stages import evaluate, track_rank, train_head
from clawcrane.stages.evaluate import TABLE1_COLUMNS

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.parquet"
EVAL_DIR = "eval"


def split_name(name: str, split: str) -> str:
    """A file or folder name of the test split, or of another split (``predictions-val.parquet``, ``eval-val``):
    scoring another split never overwrites the test results."""
    if split == "test":
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}-{split}{dot}{ext}"


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
    ranks: bool = False
    """Text-guided ranks (``HeadConfig.ranks``)."""
    motion: bool = False
    """Motion from tracks (``HeadConfig.motion``)."""
    score_mode: str | None = None
    """Track score of this row (None: track-rank's, 'mean' by default)."""


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
    # Eq. 5 read literally (a linear fusion, whose sentence term the softmax cancels)
    Row("10-prm-tsrm-linear", "+ PRM + TSRM-linear", "full", "text-linear", False),
    Row("11-prm-tsrm-linear-trm", "+ PRM + TSRM-linear + TRM", "full", "text-linear", True, head_of="10-prm-tsrm-linear"),
    # beyond the paper: text-guided ranks, motion from tracks, Eq. 3's summed track score
    Row("12-geo-ranks-trm", "+ PRM + TSRM-geo + ranks + TRM", "full", "text-geo", True, ranks=True),
    Row("13-geo-motion-trm", "+ PRM + TSRM-geo + motion + TRM", "full", "text-geo", True, motion=True),
    Row("14-geo-ranks-motion-trm", "+ PRM + TSRM-geo + ranks + motion + TRM", "full", "text-geo", True, ranks=True,
        motion=True),
    Row("15-geo-ranks-motion-trm-sum", "+ PRM + TSRM-geo + ranks + motion + TRM (sum)", "full", "text-geo", True,
        head_of="14-geo-ranks-motion-trm", ranks=True, motion=True, score_mode="sum"),
)
"""Rows 1-7 are the paper's Table 3 (the TSRM as the paper describes it: a nonlinear fusion); rows 8-9 swap in
our TSRM variant with relative geometry; rows 10-11 the literal linear TSRM; rows 12-15 add the modules beyond
the paper (text-guided ranks, motion from tracks) and Eq. 3's summed track score."""
_MODULE_COLUMNS = ("abs PE", "rel PE", "PRM", "VA", "TSRM", "geo", "TRM", "ranks", "motion", "sum")


def _modules(row: Row) -> tuple[str, ...]:
    """The row's marks under ``_MODULE_COLUMNS`` ('lin': the linear TSRM)."""
    p, r = row.position, row.relation
    tsrm = "lin" if r == "text-linear" else ("✓" if r in TEXT_RELATIONS else "")
    on = (p == "absolute", p == "relative", p == "full", r == "vanilla", None, r == "text-geo", row.trm, row.ranks,
          row.motion, row.score_mode == "sum")
    return tuple(tsrm if v is None else ("✓" if v else "") for v in on)


@dataclass
class SeedResult:
    """One row trained and scored with one seed."""

    seed: int
    run: Path
    """The head's run folder."""
    trained_epochs: int
    """Epochs trained by this call (0: the head was reused)."""
    predictions: Path
    metrics: dict[str, float]
    by_query_type: dict[str, dict[str, float]]
    by_wording: dict[str, dict[str, float]]
    seconds: float
    by_type_seen: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class RowResult:
    """A row over every seed; ``metrics`` and the breakdowns are means over the seeds."""

    row: Row
    seeds: list[SeedResult]
    metrics: dict[str, float]
    by_query_type: dict[str, dict[str, float]]
    by_wording: dict[str, dict[str, float]]
    spread: dict[str, tuple[float, float]]
    """(min, max) over seeds of every metric, per-type and per-wording P@0.5 ('type:<name>', 'wording:<name>',
    'seen:<type>')."""
    by_type_seen: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def run(self) -> Path:
        return self.seeds[0].run

    @property
    def predictions(self) -> Path:
        return self.seeds[0].predictions

    @property
    def trained_epochs(self) -> int:
        return sum(s.trained_epochs for s in self.seeds)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.seeds)


@dataclass
class AblateResult:
    out: Path
    rows: list[RowResult] = field(default_factory=list)
    markdown: str = ""
    seconds: float = 0.0


def selected_rows(names: tuple[str, ...]) -> list[Row]:
    """``ROWS`` picked by number ('1', '9') or folder name ('4-prm'); all when ``names`` is empty."""
    if not names:
        return list(ROWS)
    picked = []
    for name in names:
        hit = [r for i, r in enumerate(ROWS, start=1) if name in (str(i), r.name)]
        if not hit:
            raise ConfigError(f"--rows {name!r}: unknown row; use 1-{len(ROWS)} or one of {', '.join(r.name for r in ROWS)}")
        if hit[0] not in picked:
            picked.append(hit[0])
    return sorted(picked, key=ROWS.index)


def check_config(config: AblateConfig) -> None:
    if not config.seeds:
        raise ConfigError("--seeds: give at least one seed")
    bad = [s for s in config.seeds if not 0 <= s <= SEED_MAX]
    if bad:
        raise ConfigError(f"--seeds {bad[0]}: a seed must be in [0, {SEED_MAX}]")
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError(f"--seeds {','.join(map(str, config.seeds))}: a seed is repeated")
    selected_rows(config.rows)
    if config.size not in HEAD_SIZES:
        raise ConfigError(f"--size {config.size!r}: expected one of {', '.join(HEAD_SIZES)}")
    if config.epochs < 1:
        raise ConfigError(f"--epochs {config.epochs}: must be at least 1")
    if config.split not in track_rank.SPLITS:
        raise ConfigError(f"--split {config.split!r}: expected one of {', '.join(track_rank.SPLITS)}")


def train_config(config: AblateConfig, row: Row, seed: int) -> TrainHeadConfig:
    head = sized(config.size, position=row.position, relation=row.relation, ranks=row.ranks, motion=row.motion,
                 dropout=config.dropout)
    return TrainHeadConfig(head=head, epochs=config.epochs, seed=seed, weight_decay=config.weight_decay,
                           val_fraction=config.val_fraction, device=config.device)


def changed_options(cfg: TrainHeadConfig, run: Path) -> list[str]:
    """The output-affecting options (epochs aside) in which the head in ``run`` differs from ``cfg``.

    [] when they agree or ``run`` holds no head yet.
    """
    last = run / LAST
    return train_head.changed_options(resolved_train_config(load_checkpoint(last, KIND_HEAD)), cfg) if last.is_file() else []


def _train(cfg: TrainHeadConfig, dataset: Dataset, features: Path, run: Path) -> int:
    """Train (or resume, or reuse) one row's head; returns the epochs trained now."""
    last = run / LAST
    if not last.is_file():
        return train_head.run(cfg, dataset, features=features, out=run).epochs
    payload = load_checkpoint(last, KIND_HEAD)
    diff = train_head.changed_options(resolved_train_config(payload), cfg)
    if diff:
        raise ConfigError(f"{last}: this row was trained with other options ({', '.join(diff)}); "
                          "pass the same options or another --out")
    done = int(payload.get("epoch", 0))
    if done >= cfg.epochs:
        log.info("%s: trained for %d epochs already; reused", run, done)
        return 0
    return train_head.run(cfg, dataset, features=features, out=run, resume=True).epochs - done


def _evaluate(config: EvalConfig, pred: track_rank.TrackRankResult, dataset: Dataset, out_dir: Path):
    """(metrics, by query type, by wording, by query type on seen wording) of the predictions; reused from out_dir when made from these predictions and options."""
    report = out_dir / "metrics.json"
    if pred.hit and report.is_file():
        try:
            old = json.loads(report.read_text())
        except ValueError:
            old = {}
        if old.get("predictions", {}).get("key") == pred.key and old.get("config") == to_dict(config) and "by_type_seen" in old:
            log.info("%s: up to date", report)
            return old["metrics"], old["by_query_type"], old["by_wording"], old["by_type_seen"]
    ev = evaluate.run(config, predictions=pred.out, dataset=dataset, out_dir=out_dir)
    return ev.metrics, ev.by_query_type, ev.by_wording, ev.by_type_seen


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(sum(d[k] for d in dicts) / len(dicts)) for k in dicts[0]}


def aggregate(row: Row, seeds: list[SeedResult]) -> RowResult:
    """Means over seeds, and (min, max) of every metric and of P@0.5 per type and wording."""
    metrics = _mean([s.metrics for s in seeds])
    spread = {k: (min(s.metrics[k] for s in seeds), max(s.metrics[k] for s in seeds)) for k in metrics}
    groups = {}
    for attr, tag in (("by_query_type", "type"), ("by_wording", "wording"), ("by_type_seen", "seen")):
        names = sorted({n for s in seeds for n in getattr(s, attr)})
        groups[attr] = {n: _mean([getattr(s, attr)[n] for s in seeds if n in getattr(s, attr)]) for n in names}
        for n in names:
            vals = [getattr(s, attr)[n]["P@0.5"] for s in seeds if n in getattr(s, attr)]
            spread[f"{tag}:{n}"] = (min(vals), max(vals))
    return RowResult(row=row, seeds=seeds, metrics=metrics, by_query_type=groups["by_query_type"],
                     by_wording=groups["by_wording"], spread=spread, by_type_seen=groups["by_type_seen"])


def _cell(r: RowResult, value: float, key: str) -> str:
    text = f"{100 * value:.1f}"
    if len(r.seeds) > 1:
        lo, hi = r.spread[key]
        text += f" ({100 * lo:.1f}-{100 * hi:.1f})"
    return text


def markdown(rows: list[RowResult], title: str) -> str:
    """Table 3 layout (module check marks, P@K, both mAPs, IoUs; percent), then P@0.5 per query type and wording.

    With several seeds every cell is the mean over seeds with the min-max in brackets.
    """
    metric_names = [c for c, _ in TABLE1_COLUMNS]
    head = "| " + " | ".join(["#", "method", *_MODULE_COLUMNS, *metric_names]) + " |"
    rule = "|" + "---|" * (2 + len(_MODULE_COLUMNS) + len(metric_names))
    lines = [f"### {title}", "", head, rule]
    for r in rows:
        marks = list(_modules(r.row))
        values = [_cell(r, r.metrics[k], k) for _, k in TABLE1_COLUMNS]
        lines.append("| " + " | ".join([str(ROWS.index(r.row) + 1), r.row.label, *marks, *values]) + " |")
    for attr, tag, what in (("by_query_type", "type", "query type"), ("by_wording", "wording", "wording (paraphrase: templates and synonyms no train sentence uses)"),
                            ("by_type_seen", "seen", "query type, seen wording only")):
        names = sorted({t for r in rows for t in getattr(r, attr)})
        if not names:
            continue
        first = getattr(rows[0], attr)
        lines += ["", f"P@0.5 by {what} (samples in brackets):", "",
                  "| # | method | " + " | ".join(f"{t} ({int(first.get(t, {}).get('samples', 0))})" for t in names) + " |",
                  "|" + "---|" * (2 + len(names))]
        for r in rows:
            groups = getattr(r, attr)
            cells = [_cell(r, groups[t]["P@0.5"], f"{tag}:{t}") if t in groups else "-" for t in names]
            lines.append("| " + " | ".join([str(ROWS.index(r.row) + 1), r.row.label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def is_ablation_report(report: Path) -> bool:
    """Whether ``report`` is an ablation.json this stage wrote."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"config", "rows", "dataset", "track_rank"} <= set(data)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _canonical(report: dict[str, Any]) -> str:
    """The text a report's ``digests.json`` covers: everything but the digests, as write_json writes it."""
    return json.dumps({k: v for k, v in report.items() if k != "digests"}, indent=2, sort_keys=True, default=str)


def sealed(report: dict[str, Any], md: str) -> dict[str, Any]:
    """``report`` with the digests of itself and of ``md``, so a later run can tell a hand edit (``edited_by_hand``)."""
    report = {k: v for k, v in report.items() if k != "digests"}
    return dict(report, digests={"md": _digest(md), "json": _digest(_canonical(report))})


def edited_by_hand(report: Path, md: Path) -> Path | None:
    """The file of an earlier ablate run changed since ablate wrote it (None: both as written, or no digests)."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    digests = data.get("digests") if isinstance(data, dict) else None
    if not isinstance(digests, dict):  # written before digests were recorded: nothing to compare
        return None
    if digests.get("json") != _digest(_canonical(data)):
        return report
    try:
        if md.exists() and digests.get("md") != _digest(md.read_text()):
            return md
    except (OSError, UnicodeDecodeError):
        return md
    return None


def check_out(out: Path, split: str) -> None:
    """Refuse a TABLE folder whose ablation.json / ablation.md ablate did not write (before any training)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a folder; choose another --out (`clawcrane ablate --out DIR`)")
    report, md = out / split_name("ablation.json", split), out / split_name("ablation.md", split)
    for p in (report, md):
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise ConfigError(f"{p}: is not a plain file, so ablate does not write over it; choose another --out "
                              f"(`clawcrane ablate ... --out NEW_DIR`) or move it away")
    if (report.exists() and not is_ablation_report(report)) or (md.exists() and not report.exists()):
        theirs = report if report.exists() else md
        raise ConfigError(f"{theirs}: was not written by `clawcrane ablate`, so it is left as it is; choose another --out "
                          f"(`clawcrane ablate ... --out NEW_DIR`) or move the file away")
    edited = edited_by_hand(report, md) if report.exists() else None
    if edited is not None:
        raise ConfigError(f"{edited}: changed since `clawcrane ablate` wrote it (edited by hand?), so it is not written "
                          f"over; choose another --out (`clawcrane ablate ... --out NEW_DIR`) or move the file away")


def report_json(config: AblateConfig, track: TrackRankConfig, features: Path, dataset: Dataset,
                results: list[RowResult], *, dataset_fp: str = "") -> dict[str, Any]:
    """The content of TABLE/ablation.json (what `report --ablation` reads)."""
    return {
        "config": to_dict(config), "track_rank": to_dict(track), "features": str(features),
        "dataset": dataset.identity(dataset_fp or dataset.fingerprint),
        "rows": [{"name": r.row.name, "label": r.row.label, "position": r.row.position, "relation": r.row.relation,
                  "trm": r.row.trm, "ranks": r.row.ranks, "motion": r.row.motion, "score_mode": r.row.score_mode, "metrics": r.metrics, "by_query_type": r.by_query_type, "by_wording": r.by_wording,
                  "by_type_seen": r.by_type_seen,
                  "spread": {k: list(v) for k, v in r.spread.items()},
                  "seeds": [{"seed": s.seed, "run": str(s.run), "predictions": str(s.predictions),
                             "trained_epochs": s.trained_epochs, "metrics": s.metrics, "by_query_type": s.by_query_type,
                             "by_wording": s.by_wording, "by_type_seen": s.by_type_seen, "seconds": s.seconds}
                            for s in r.seeds]} for r in results],
    }


def run(config: AblateConfig, dataset: Dataset, *, cache: str | os.PathLike, out: str | os.PathLike,
        track: TrackRankConfig | None = None) -> AblateResult:
    """Train, predict and evaluate the selected rows of ``ROWS`` for every seed; write TABLE/ablation.md and .json.

    Each seed's heads live in ``TABLE/runs/s<seed>/<row>/``; every head selects its best.pt on
    validation videos held out of the train split (train-head ``--val-fraction``), and the rows
    are scored on ``config.split``. ``track`` sets the track-rank options (split and TRM switch
    are the row's); default: its defaults.
    """
    check_config(config)
    t_start = time.perf_counter()
    out = Path(out)
    check_out(out, config.split)
    fc = open_features(cache)
    features = fc.path
    dataset_fp = fc.check_dataset(dataset)  # before any training; the annotation fingerprint when the clips are absent
    base_track = track or TrackRankConfig()
    results: list[RowResult] = []
    for row in selected_rows(config.rows):
        per_seed: list[SeedResult] = []
        for seed in config.seeds:
            t0 = time.perf_counter()
            runs = out / "runs" / f"s{seed}"
            run_dir = runs / (row.head_of or row.name)
            log.info("ablate: row %s seed %d (position %s, relation %s, TRM %s)", row.name, seed, row.position,
                     row.relation, "on" if row.trm else "off")
            trained = _train(train_config(config, row, seed), dataset, features, run_dir)
            row_dir = runs / row.name
            tcfg = TrackRankConfig(**dict(to_dict(base_track), split=config.split, trm=row.trm, device=config.device,
                                          **({"score_mode": row.score_mode} if row.score_mode else {})))
            pred = track_rank.run(tcfg, dataset, head=run_dir, features=features,
                                  out=row_dir / split_name(PREDICTIONS, config.split))
            metrics, by_type, by_wording, by_seen = _evaluate(EvalConfig(split=config.split, j_and_f="off"), pred, dataset,
                                                     row_dir / split_name(EVAL_DIR, config.split))
            per_seed.append(SeedResult(seed=seed, run=run_dir, trained_epochs=trained, predictions=pred.out, metrics=metrics,
                                       by_query_type=by_type, by_wording=by_wording, seconds=time.perf_counter() - t0,
                                       by_type_seen=by_seen))
            log.info("ablate: %s seed %d: P@0.5 %.3f mAP %.3f (%.0f s)", row.label, seed, metrics["P@0.5"],
                     metrics["mAP_coco"], per_seed[-1].seconds)
        results.append(aggregate(row, per_seed))

    seeds = ",".join(map(str, config.seeds))
    title = (f"Table 3 ablation: {dataset.name} {config.split} ({config.size} head, {config.epochs} epochs, "
             f"{'seed' if len(config.seeds) == 1 else 'mean (min-max) over seeds'} {seeds}, best.pt selected on "
             f"{config.val_fraction:g} of the train videos, track score {base_track.score_mode} unless the row says)")
    md = markdown(results, title)
    report = report_json(config, base_track, features, dataset, results, dataset_fp=dataset_fp)
    write_json(out / split_name("ablation.json", config.split), sealed(report, md))  # a later run spots hand edits
    write_text(out / split_name("ablation.md", config.split), md)
    return AblateResult(out=out, rows=results, markdown=md, seconds=time.perf_counter() - t_start)
