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


@main.command("extract")
@click.option("--cache", "cache", required=True, type=click.Path(file_okay=False),
              help="Cache root: reads the candidate artifact under it and writes extract-<key>/ beside it.")
@click.option("--candidates", default=None, type=click.Path(exists=True, file_okay=False),
              help="Candidate artifact folder (detect-<key>/) when DIR holds several, or lives elsewhere.")
@click.option("--backbone", default="auto", show_default=True,
              help="auto (resnet50 if its ImageNet file is in the torch hub cache, else efficientnet-lite0), "
                   "resnet18/34/50/101, efficientnet-lite0, or detector:PATH (the trained detector's FPN).")
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet (local torchvision file in torch.hub.get_dir()/checkpoints, or the packaged "
                   "EfficientNet weights), none (seeded random init), or a state-dict PATH.")
@click.option("--levels", default="", help="Comma-separated feature levels, pooled and concatenated "
              "(ResNet C2..C5, default C5; EfficientNet C2..C5,head, default head; detector FPN names, default fpn).")
@click.option("--input-size", default=320, show_default=True, type=int, help="Frames are resized to N x N (paper: 320).")
@click.option("--mask-threshold", default=0.5, show_default=True, type=float,
              help="A feature cell belongs to a candidate when its mask covers this fraction of it.")
@click.option("--dtype", default="float16", show_default=True, type=click.Choice(["float16", "float32"]),
              help="Storage dtype of the pooled features.")
@click.option("--with-flip", is_flag=True, help="Also store features/positions of the mirrored frame (flip augmentation).")
@click.option("--batch-size", default=16, show_default=True, type=int, help="Frames per backbone forward.")
@click.option("--skip-bad", is_flag=True, help="Store videos whose frames cannot be decoded as bad and go on.")
@click.option("--workers", default=2, show_default=True, type=int,
              help="Threads decoding frames and preparing masks while the backbone runs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--shard", default=None, help="I/N: run shard I (0-based) of N over the videos "
              "(default: SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else 0/1).")
@click.option("--dataset", default=None, type=click.Path(exists=True),
              help="Dataset folder holding the frames (default: the one recorded by `detect`).")
def extract_cmd(cache, candidates, backbone, weights, levels, input_size, mask_threshold, dtype, with_flip,
                skip_bad, batch_size, workers, device, shard, dataset) -> None:
    """Mask-pooled CNN features and positions p_i of every candidate -> feature cache.

    Frames are decoded once; train-head then reads only the cached tensors.
    """
    from clawcrane.config import ExtractConfig
    from clawcrane.stages import extract as stage

    shard_i, num_shards = stage.parse_shard(shard)
    cfg = ExtractConfig(
        backbone=backbone, weights=weights, levels=tuple(x.strip() for x in levels.split(",") if x.strip()),
        input_size=input_size, mask_threshold=mask_threshold, dtype=dtype, with_flip=with_flip,
        cache=str(cache), candidates=str(candidates or ""), dataset=str(dataset or ""),
        skip_bad=skip_bad, batch_size=batch_size, workers=workers, device=device, shard=shard_i, num_shards=num_shards,
    )
    res = stage.run(cfg)
    c = res.config
    what = "cache hit" if res.hit else f"{res.computed_videos} videos, {res.frames} frames, {res.candidates} candidates"
    click.echo(f"extract: {what} in {res.seconds:.1f}s; backbone {c.backbone} ({c.weights}) levels {','.join(c.levels)} "
               f"-> C={res.channels}")
    if not res.hit:
        click.echo(f"  bytes per candidate: {res.raw_bytes_per_candidate:.0f} raw, {res.stored_bytes_per_candidate:.0f} stored")
    click.echo(str(res.path))
    if num_shards > 1:
        click.echo(f"when every shard is done: clawcrane cache merge {res.path}")
