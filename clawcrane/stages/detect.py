"""`clawcrane detect`: run a detector over every frame of every video -> candidate cache.

The cache key chains the dataset fingerprint, the detector's content key and the output options;
it is computed and checked before any model is built, so a repeated run returns at once. The work
itself streams through ``detect_stream.DetectStream`` (per-video atomic parts: resumable after a
kill at any moment). At the end the shard's videos are consolidated into its shard file
(``data.h5`` for a single shard).

The artifact's ``meta.json`` lists every video of the dataset (all shards) and the command that
completes it, so `cache verify` and the later stages can tell a finished artifact from the folder
of a killed or failed run. A dataset whose reader skipped items (malformed rows, unreadable or
wrongly shaped annotation files, missing clips) is refused before any work unless ``skip_bad``;
with it, every skipped item is logged as a warning and counted in the summary.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clawcrane.build.detectors import build_detector, detector_key
from clawcrane.build.device import resolve_device
from clawcrane.cache.candidates import SCHEMA, STAGE
from clawcrane.cache.store import Store, artifact_dir
from clawcrane.config import DetectConfig, default_score_threshold, key_config, option_flags, output_config
from clawcrane.datasets.records import Dataset
from clawcrane.datasets.validate import split_problems
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.fingerprint import chain_key, short
from clawcrane.pipeline.detectors import Detector
from clawcrane.stages.detect_stream import DetectStream, frames_to_run
from clawcrane.stages.sharding import parse_shard, shard_videos

log = logging.getLogger(__name__)

__all__ = ["DetectResult", "cache_key", "frames_to_run", "parse_shard", "run", "shard_videos", "summary_lines"]

STAGE_VERSION = 1


@dataclass
class DetectResult:
    """What one `detect` run did, for the summary (this shard's videos only)."""

    path: Path
    key: str
    cache_hit: bool
    shard: tuple[int, int]
    videos: int
    """Videos of this shard (ok + bad)."""
    computed: list[str] = field(default_factory=list)
    """Videos run through the detector in this call (empty on a cache hit)."""
    frames: int = 0
    candidates: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    """(video_id, error) of videos recorded as unreadable."""
    gt_instances: int = 0
    gt_covered: int = 0
    annotated_frames: int = 0
    gt_frames_skipped: int = 0
    """Annotated frames the detector had no entry for (an import that skipped them); not in ``recall``."""
    gt_instances_skipped: int = 0
    """GT instances of those frames."""
    skipped_items: list[str] = field(default_factory=list)
    """Dataset items its reader skipped (rows, annotation files, clips), allowed by ``skip_bad``."""

    @property
    def per_frame(self) -> float:
        return self.candidates / self.frames if self.frames else 0.0

    @property
    def recall(self) -> float | None:
        """Share of annotated GT instances covered by a candidate with mask IoU >= 0.5 (None without GT)."""
        return self.gt_covered / self.gt_instances if self.gt_instances else None


def cache_key(config: DetectConfig, dataset: Dataset, key_fn=detector_key) -> tuple[str, str]:
    """(artifact key, detector key); computing them never builds a model."""
    dkey = key_fn(config.detector, dataset)
    key = chain_key(STAGE, STAGE_VERSION, {"dataset": dataset.fingerprint, "detector": dkey}, key_config(config))
    return key, dkey


SHOW_SKIPPED = 20
"""How many skipped dataset items are logged one by one."""


def absolute_spec(spec: str) -> str:
    """``spec`` with the file or folder it names made absolute (a checkpoint, ``r50-fpn:WEIGHTS``,
    ``import:[KIND:]PATH``), so the command that completes an artifact works from any folder (the key
    hashes contents, not paths); keywords (oracle, r50-fpn) and paths that do not exist stay as given."""
    from clawcrane.build.detectors import CHECKPOINT, IMPORT, R50_FPN, parse_spec

    kind, path = parse_spec(spec)
    if path is None:
        return spec
    prefix = {CHECKPOINT: "", R50_FPN: f"{R50_FPN}:", IMPORT: f"{IMPORT}:"}.get(kind)
    if prefix is None:
        return spec
    if kind == IMPORT:
        from clawcrane.cache.imports import split_import

        fmt = split_import(path)[0]
        if fmt is not None:
            prefix, path = f"{prefix}{fmt}:", path[len(fmt) + 1:]
    return prefix + os.path.abspath(path) if os.path.exists(path) else spec


def complete_with(config: DetectConfig, dataset: Dataset) -> str:
    """The command that makes (or completes) this artifact; ``{cache}`` stands for the cache root."""
    parts = []
    for name in output_config(config):
        if name == "score_threshold":  # the CLI's default depends on the detector (0 for an import)
            if config.score_threshold != default_score_threshold(config.detector):
                parts.append(f"--score-threshold {config.score_threshold}")
        elif flag := option_flags(config, [name]):
            parts.append(flag)
    flags = " ".join(parts)
    root, spec = os.path.abspath(str(dataset.root)), absolute_spec(config.detector)  # runs from any folder
    return (f"clawcrane detect {shlex.quote(root)} --detector {shlex.quote(spec)} --cache {{cache}}"
            + (f" {flags}" if flags else "") + (" --skip-bad" if config.skip_bad else ""))


def check_dataset_problems(config: DetectConfig, dataset: Dataset) -> list[str]:
    """Items the dataset reader skipped: refused unless ``skip_bad`` (then each is logged and returned)."""
    errors, _ = split_problems(dataset.problems)
    if not errors:
        return []
    if not config.skip_bad:
        more = f" and {len(errors) - 1} more (`clawcrane doctor {dataset.root}` lists them)" if len(errors) > 1 else ""
        raise DataError(
            f"{errors[0]}{more}; the reader skipped {len(errors)} item(s) of {dataset.root}: fix them, or pass "
            "--skip-bad to detect without them"
        )
    for p in errors[:SHOW_SKIPPED]:
        log.warning("skipped (--skip-bad): %s", p)
    if len(errors) > SHOW_SKIPPED:
        log.warning("skipped (--skip-bad): %d more; `clawcrane doctor %s` lists them", len(errors) - SHOW_SKIPPED, dataset.root)
    return [str(p) for p in errors]


def _check(config: DetectConfig) -> None:
    if config.train_frames not in ("all", "annotated"):
        raise ConfigError(f"--train-frames {config.train_frames!r}: expected 'all' or 'annotated'")
    if config.frame_stride < 1:
        raise ConfigError(f"--frame-stride {config.frame_stride}: must be >= 1")
    if config.batch_size < 1 or config.workers < 1:
        raise ConfigError("--batch-size and --workers must be >= 1")
    if config.max_per_frame < 1:
        raise ConfigError(f"--max-per-frame {config.max_per_frame}: must be >= 1")
    if not (0.0 <= config.dedup_iou <= 1.0 and 0.0 <= config.score_threshold <= 1.0):
        raise ConfigError("--dedup-iou and --score-threshold must lie in [0, 1]")
    if config.refine_masks not in ("none", "grabcut"):
        raise ConfigError(f"--refine-masks {config.refine_masks!r}: expected 'none' or 'grabcut'")
    if config.refine_masks != "none" and (config.detector == "oracle" or config.detector.startswith("import:")):
        raise ConfigError(f"--refine-masks {config.refine_masks} refines a Mask R-CNN's masks; --detector "
                          f"{config.detector} gives its masks as they are: leave --refine-masks out")
    resolve_device(config.device)  # a bad --device fails before anything is written, whatever the detector


def run(
    config: DetectConfig,
    dataset: Dataset,
    cache_root: str | os.PathLike,
    *,
    detector_factory: Callable[..., Detector] = build_detector,
    key_fn: Callable[[str, Dataset], str] = detector_key,
) -> DetectResult:
    """Detect candidates for this shard's videos into ``cache_root/detect-<key16>/`` (resumable)."""
    _check(config)
    if not dataset.videos:
        raise DataError(f"{dataset.root}: the dataset has no videos; check the path with `clawcrane doctor`")
    skipped = check_dataset_problems(config, dataset)
    key, dkey = cache_key(config, dataset, key_fn)
    path = artifact_dir(cache_root, STAGE, key)
    shard = (config.shard, config.num_shards)
    mine = shard_videos(dataset.videos, shard)
    target = Store(path).shard_file_name(*shard)

    if (path / "meta.json").exists():  # cache hit? decided before any model is built
        store = Store(path)
        if store.key != key:
            raise CacheError(f"{path}: holds key {short(store.key)}, expected {short(key)}; remove the folder and re-run")
        index = store.index()
        if all(v in index for v in mine):
            if any(index[v] != path / target for v in mine):
                store.consolidate(mine, target)
            log.info("cache hit: %s", path)
            result = _summarise(store, mine, key, shard, hit=True)
            result.skipped_items = skipped
            return result

    meta = {
        "stage": STAGE,
        "schema": SCHEMA,
        "key": key,
        "config": dict(output_config(config), detector=config.detector),
        "upstream": {"dataset": dataset.fingerprint, "detector": dkey},
        "dataset": dict(dataset.identity(), num_videos=len(dataset.videos)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "videos": sorted(dataset.videos),
        "complete_with": complete_with(config, dataset),
    }
    index = Store(path).index() if (path / "meta.json").exists() else {}
    pending = [v for v in mine if v not in index]
    # the detector is built before the folder is made: a failed build (no GPU memory, bad weights) leaves nothing
    detector = detector_factory(config.detector, dataset, device=config.device, batch_size=config.batch_size) if pending else None
    store = Store.create(path, meta)
    log.info("%s: %d of %d videos of shard %d/%d to do", path, len(pending), len(mine), *shard)
    if pending:
        DetectStream(config, dataset, store, detector).run(pending)
    store.consolidate(mine, target)
    result = _summarise(store, mine, key, shard, hit=False)
    result.computed = pending
    result.skipped_items = skipped
    return result


def _summarise(store: Store, mine: list[str], key: str, shard, hit: bool) -> DetectResult:
    res = DetectResult(path=store.path, key=key, cache_hit=hit, shard=tuple(shard), videos=len(mine))
    summaries = store.summaries()
    for v in mine:
        a = summaries[v]
        if a.get("status", "ok") != "ok":
            res.bad.append((v, str(a.get("error", ""))))
            continue
        res.frames += int(a.get("processed", 0))
        res.candidates += int(a.get("rows", 0))
        res.gt_instances += int(a.get("gt_instances", 0))
        res.gt_covered += int(a.get("gt_covered", 0))
        res.annotated_frames += int(a.get("gt_frames", 0))
        res.gt_frames_skipped += int(a.get("gt_frames_skipped", 0))
        res.gt_instances_skipped += int(a.get("gt_instances_skipped", 0))
    return res


def summary_lines(res: DetectResult) -> list[str]:
    """The end-of-run summary the CLI prints."""
    I, N = res.shard
    where = f" (shard {I}/{N})" if N > 1 else ""
    head = "cache hit" if res.cache_hit else "wrote"
    out = [f"{head}: {res.path}{where}",
           f"videos: {res.videos} ({len(res.computed)} computed now, {len(res.bad)} bad)",
           f"frames: {res.frames}  candidates: {res.candidates}  per frame: {res.per_frame:.2f}"]
    if res.recall is not None:
        out.append(f"candidate recall (mask IoU >= 0.5): {res.recall:.3f} "
                   f"({res.gt_covered} of {res.gt_instances} GT instances in {res.annotated_frames} annotated frames)")
    if res.gt_frames_skipped:
        out.append(f"annotated frames without a detector entry: {res.gt_frames_skipped} "
                   f"({res.gt_instances_skipped} GT instances, not counted in the recall; an import that skipped them?)")
    out += [f"bad video {v}: {err}" for v, err in res.bad]
    if res.skipped_items:
        out.append(f"skipped dataset items (--skip-bad): {len(res.skipped_items)} (warnings above; `clawcrane doctor` lists them)")
    if N > 1:
        out.append(f"when every shard is done: clawcrane cache merge {shlex.quote(str(res.path))}")
    return out
