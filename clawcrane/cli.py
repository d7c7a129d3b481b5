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


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--preset",
    type=click.Choice(["tiny", "small", "full"]),
    default="small",
    show_default=True,
    help="Size: tiny (8 videos, seconds; for tests), small (120 videos, ~450 queries; the quickstart), "
    "full (800 videos, ~2,450 train / ~600 test queries; about a minute on 2 idle cores).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; the same preset and seed give identical annotations.")
@click.option("--preview", is_flag=True, help="Also write OUT/preview.png: frames with outlined masks and their sentences.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel worker processes (default: min(2, CPU count)); does not change the output.",
)
def data_synth(out: str, preset: str, seed: int, preview: bool, workers: int | None) -> None:
    """Write the synthetic referring-video benchmark to OUT in the A2D-Sentences layout.

    \b
    Shapes of several colours and sizes move over textured, noisy backgrounds, occlude one
    another, leave fading trails and pass through shadows. Each sentence is checked to single
    out its object; query types (text_annotations/query_types.csv): appearance, position,
    relation, motion, temporal. OUT/synth_scenes.json describes every scene. Re-running into a
    finished OUT with the same preset and seed does nothing; a killed run resumes.
    """
    from clawcrane.config import SynthConfig
    from clawcrane.stages import synth as stage

    cfg = SynthConfig(preset=preset, seed=seed, workers=workers or min(2, os.cpu_count() or 1), preview=preview)
    res = stage.run(cfg, out)
    if res.state == "complete":
        click.echo(f"{res.out}: already complete (preset={preset}, seed={seed}); nothing to do")
    else:
        click.echo(f"wrote {res.out} (preset={preset}, seed={seed}): {res.rendered} videos rendered in {res.seconds:.1f} s")
    for split in ("train", "test"):
        c, t = res.counts[split], res.types[split]
        kinds = ", ".join(f"{k} {v}" for k, v in t.items())
        click.echo(f"  {split}: {c['videos']} videos, {c['queries']} queries, {c['samples']} samples ({kinds})")
    if res.preview is not None:
        click.echo(f"  preview: {res.preview}")
