"""The `clawcrane` command: one thin click command per stage.

Each command builds its stage's frozen config, calls ``clawcrane.stages.<stage>.run`` and prints
a short summary. Any ``ClawcraneError`` becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from clawcrane import __version__
from clawcrane.errors import ClawcraneError

log = logging.getLogger("clawcrane")


class _Group(click.Group):
    """Click group that turns library errors into one line and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClawcraneError as err:
            msg = " ".join(str(err).split())
            click.echo(f"error: {msg}", err=True)
            ctx.exit(1)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("clawcrane").setLevel(getattr(logging, level.upper()))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="clawcrane")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=lambda: os.environ.get("CLAWCRANE_LOG_LEVEL", "info"),
    show_default="info",
    help="Logging verbosity (below the CLI everything logs; warning hides progress bars).",
)
def main(log_level: str) -> None:
    """ClawCrane: text-based video object segmentation, top-down (ClawCraneNet).

    \b
    Stages exchange artifacts on disk, so the costly detection runs once:
      clawcrane data synth DATA          make the synthetic benchmark (A2D-Sentences layout)
      clawcrane doctor DATA              check a dataset folder and count its samples
      clawcrane train-detector DATA      train the instance segmenter (lite Mask R-CNN)
      clawcrane detect DATA              candidates of every frame -> candidate cache (HDF5)
      clawcrane extract                  mask-pooled CNN features + positions -> feature cache
      clawcrane train-head               language encoder + PRM + TSRM, contrastive loss
      clawcrane track-rank               TRM tracks per query -> predictions (Parquet)
      clawcrane evaluate PRED            P@K, mAP, Overall/Mean IoU
    """
    _setup_logging(log_level)


@main.group(cls=_Group)
def data() -> None:
    """Make or inspect datasets."""


# ---- commands (one per stage) -------------------------------------------------------------


# ---- detect -------------------------------------------------------------------------------------
def _default_cfg(name: str):
    from clawcrane.config import DetectConfig

    return DetectConfig.__dataclass_fields__[name].default


@main.command(context_settings={"max_content_width": 100})
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--detector", "detector", required=True, metavar="SPEC",
              help="What proposes candidates: a checkpoint PATH from `clawcrane train-detector`; "
                   "'r50-fpn' (torchvision's COCO Mask R-CNN R50-FPN; 'r50-fpn:WEIGHTS.pth' for a local weights "
                   "file); 'oracle' (every ground-truth instance of annotated frames, score 1); or "
                   "'import:PATH' (masks made by another system, formats below).")
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False),
              help="Cache root; the candidates go to CACHE/detect-<key>/ (a new folder when an output-affecting option changes).")
@click.option("--frame-stride", type=int, default=_default_cfg("frame_stride"), show_default=True,
              help="Run on every S-th frame (0, S, 2S, ...) plus every annotated frame.")
@click.option("--score-threshold", type=float, default=_default_cfg("score_threshold"), show_default=True,
              help="Drop candidates scored below this.")
@click.option("--max-per-frame", type=int, default=_default_cfg("max_per_frame"), show_default=True,
              help="Keep at most K candidates per frame (highest scores).")
@click.option("--dedup-iou", type=float, default=_default_cfg("dedup_iou"), show_default=True,
              help="Drop a candidate whose mask IoU with a higher-scored one exceeds this (1.0 keeps all).")
@click.option("--batch-size", type=int, default=_default_cfg("batch_size"), show_default=True,
              help="Frames per detector call (does not change the result).")
@click.option("--device", default=_default_cfg("device"), show_default=True,
              help="Torch device: 'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1'.")
@click.option("--shard", default=None, metavar="I/N",
              help="Process shard I of N (0-based; videos by sorted id, i % N == I). Default: from "
                   "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else 0/1. Join shards with `clawcrane cache merge`.")
@click.option("--workers", type=int, default=_default_cfg("workers"), show_default=True,
              help="Threads decoding videos ahead of the detector.")
@click.option("--skip-bad", is_flag=True,
              help="Record unreadable/truncated videos as bad and go on (a rerun does not retry them); "
                   "without it the run stops at the first one.")
def detect(dataset, detector, cache_dir, frame_stride, score_threshold, max_per_frame, dedup_iou,
           batch_size, device, shard, workers, skip_bad):
    """Detect candidate objects in every frame of DATASET -> candidate cache (HDF5, COCO RLE masks).

    Resumable: a killed run continues where it stopped (finished videos are kept). A second run
    with the same dataset, detector and output options is a cache hit and returns at once.

    \b
    Import formats (--detector import:PATH):
      PATH.json          COCO-RLE list, one record per mask:
                         {"video_id": "v1", "frame": 0, "score": 0.9, "category_id": 3,
                          "segmentation": {"size": [H, W], "counts": "<RLE string>"}}
                         frame is 0-based; score (default 1) and category_id (default 0) optional;
                         "segmentation": null marks a processed frame with no mask.
      PATH/<video_id>/<frame:05d>.png   palette/grayscale id PNG: pixel = instance id, 0 = background
      PATH/<video_id>/<frame:05d>.npy   2-D integer id map, same meaning
    Only frames with an entry are visited; masks of another size are resized to the video's.
    """
    from clawcrane.config import DetectConfig
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import detect as stage

    cfg = DetectConfig(
        detector=detector, frame_stride=frame_stride, score_threshold=score_threshold,
        max_per_frame=max_per_frame, dedup_iou=dedup_iou, batch_size=batch_size, device=device,
        shard=stage.parse_shard(shard), workers=workers, skip_bad=skip_bad,
    )
    ds = open_dataset(dataset)
    res = stage.run(cfg, ds, cache_dir)
    for line in stage.summary_lines(res):
        click.echo(line)


# ---- cache --------------------------------------------------------------------------------------
@main.group(cls=_Group)
def cache() -> None:
    """Inspect and maintain cache artifacts (candidates, features): ls, info, verify, merge."""


@cache.command("ls")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
def cache_ls(root):
    """List every artifact under ROOT: stage, key, created, size, videos, config."""
    from clawcrane.stages import cache_cmds

    for line in cache_cmds.ls_lines(root):
        click.echo(line)


@cache.command("info")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def cache_info(path):
    """Describe one artifact: files and sizes, video counts, candidates per frame, recall, bad videos."""
    from clawcrane.stages import cache_cmds

    for line in cache_cmds.info_lines(path):
        click.echo(line)


@cache.command("verify")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def cache_verify(path):
    """Check one artifact: every record reads, RLEs decode at the recorded size, rows sorted and
    aligned, features finite and aligned with their candidates. Exit 1 listing the problems."""
    from clawcrane.stages import cache_cmds

    store, problems, notes = cache_cmds.verify(path)
    for n in notes:
        click.echo(f"note: {n}")
    if problems:
        for p in problems:
            click.echo(f"problem: {p}")
        click.echo(f"{store.path}: {len(problems)} problem(s); delete the affected files and re-run the stage", err=True)
        raise SystemExit(1)
    click.echo(f"{store.path}: ok ({len(store.video_ids())} videos)")


@cache.command("merge")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def cache_merge(path):
    """Join the shard files (and finished parts) of one artifact into data.h5."""
    from clawcrane.stages import cache_cmds

    target, n, expected = cache_cmds.merge(path)
    click.echo(f"merged {n} videos into {target}")
    if expected is not None and n != int(expected):
        click.echo(f"warning: the dataset has {expected} videos; {int(expected) - n} are missing (shards not run yet?)", err=True)
