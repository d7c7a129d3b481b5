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


@main.command("train-detector")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for last.pt (resumable), final.pt (the detector) and metrics.json.")
@click.option("--preset", type=click.Choice(["lite", "r50-fpn"]), default="lite", show_default=True,
              help="lite: ResNet-18 FPN at 320 px trained from scratch (CPU minutes); "
                   "r50-fpn: torchvision's R50-FPN initialised from COCO weights (GPU advised).")
@click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True,
              help="Passes over the annotated training frames.")
@click.option("--max-minutes", "--minutes", "max_minutes", type=click.FloatRange(min=0), default=0.0,
              show_default=True,
              help="Training-time budget; the learning-rate schedule is compressed to end within it (0: no budget).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Frames per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.02, show_default=True,
              help="Peak SGD learning rate (warm-up, then cosine decay).")
@click.option("--size", type=click.IntRange(min=0), default=0,
              help="Input size: shorter side and longer-side cap in pixels (0: the preset's, lite 320).")
@click.option("--classes", type=click.Choice(["auto", "dataset", "actor", "agnostic"]), default="auto",
              show_default=True,
              help="Labels to learn: dataset class ids; actor (A2D-style id // 10, dropping the action a "
                   "single frame rarely shows); agnostic (one 'object' class); auto: actor for A2D and "
                   "synthetic data, dataset ids otherwise.")
@click.option("--weights", type=click.Path(dir_okay=False), default="",
              help="r50-fpn: torchvision's COCO weights file (default: the torch hub cache).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialisation, shuffles, augmentation.")
@click.option("--resume", is_flag=True, help="Continue the run saved in OUT/last.pt.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda (cuda:N) or auto (CUDA when available).")
def train_detector_cmd(dataset, out, preset, epochs, max_minutes, batch_size, lr, size, classes, weights,
                       seed, resume, device) -> None:
    """Train the Mask R-CNN candidate proposer on every annotated instance of the train split.

    Frames of the 'train' videos with instance annotations are decoded once into memory; the
    model learns all their instances (no sentences). At the end the detector is scored on the
    annotated frames of the 'test' videos: COCO mask AP / AP50 (pycocotools), printed and written
    to OUT/metrics.json. Use OUT/final.pt with `clawcrane detect --detector`.

    \b
    Example (about 10 CPU minutes on the synthetic benchmark):
      clawcrane train-detector data --preset lite --out runs/det --max-minutes 10
    """
    from clawcrane.config import TrainDetectorConfig
    from clawcrane.stages import train_detector

    config = TrainDetectorConfig(
        dataset=str(dataset), out=str(out), preset=preset, epochs=epochs, max_minutes=max_minutes,
        batch_size=batch_size, lr=lr, min_size=size, max_size=size, classes=classes,
        weights=str(weights or ""), seed=seed, resume=resume, device=device,
    )
    result = train_detector.run(config)
    click.echo(train_detector.summary(result))
