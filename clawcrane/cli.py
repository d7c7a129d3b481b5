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


@main.command("evaluate")
@click.argument("predictions", metavar="PRED", type=click.Path(dir_okay=False, path_type=str))
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True, path_type=str),
              help="The dataset folder the predictions were made for (its ground truth is read).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder for metrics.json and metrics.md  [default: PRED's folder / <PRED stem>-eval]")
@click.option("--split", type=click.Choice(["test", "train", "all"]), default="test", show_default=True,
              help="Which samples to score (the paper reports test).")
@click.option("--j-and-f", "j_and_f", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Also compute DAVIS J&F; 'auto' does so when every query has masks on all frames.")
def evaluate_cmd(predictions: str, dataset_path: str, out_dir: str | None, split: str, j_and_f: str) -> None:
    """Score PRED (a predictions Parquet file from `track-rank`) against the dataset's masks.

    \b
    Per (query, annotated frame) the highest-scored mask is compared with the ground truth at
    the annotation resolution: P@0.5..0.9 (IoU > K), mAP 0.5:0.95 in both published definitions
    (COCO AP over every submitted mask, and the mean of P@0.5:0.05:0.95 on the top-1 mask),
    Overall IoU and Mean IoU, overall and per query type. Writes metrics.json and metrics.md.
    """
    from clawcrane.config import EvalConfig
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import evaluate

    ds = open_dataset(dataset_path, split=None)
    result = evaluate.run(EvalConfig(split=split, j_and_f=j_and_f), predictions=predictions, dataset=ds, out_dir=out_dir)
    click.echo(result.markdown)
    if result.missing:
        click.echo(f"warning: {len(result.missing)} samples had no prediction and were scored as empty", err=True)
    click.echo(f"wrote {result.out_dir}")


@main.command("export")
@click.argument("predictions", metavar="PRED", type=str)
@click.option("--format", "fmt", metavar="FORMAT", default="coco-rle", show_default=True,
              help="coco-rle: DIR/predictions.json, a list of {query_id, video_id, frame, track_id, rank, score, "
                   "segmentation: {size: [H, W], counts: str}} (COCO compressed RLE); png: "
                   "DIR/<video_id>/<query_id>/<frame:05d>.png, 0/255; ytvos: the Ref-YouTube-VOS submission "
                   "folder DIR/Annotations/<video_id>/<exp_id>/<frame>.png with a PNG for every frame.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Output folder  [default: PRED's folder / <PRED stem>-<FORMAT>]")
@click.option("--dataset", "dataset_path", type=click.Path(exists=True, path_type=str), default=None,
              help="The dataset the predictions were made for: masks are written at its frame size, ytvos "
                   "frame files take its frame names and every video gets all its frames.")
@click.option("--top-k", "top_k", type=int, default=1, show_default=True,
              help="coco-rle only: export the masks of rank < K per (query, frame); png and ytvos hold the answer.")
def export_cmd(predictions: str, fmt: str, out_dir: str | None, dataset_path: str | None, top_k: int) -> None:
    """Write PRED (a predictions Parquet file from `track-rank`) as COCO-RLE JSON, PNG masks or ytvos.

    \b
    Masks are binary. The answer of a (query, frame) is its rank-0 mask; a query that abstained
    on a frame gets an empty mask. Every file is written atomically.
    """
    from clawcrane.config import ExportConfig
    from clawcrane.stages import export

    config = ExportConfig(format=fmt, top_k=top_k)
    export.check_config(config)
    ds = None
    if dataset_path is not None:
        from clawcrane.datasets import open_dataset

        ds = open_dataset(dataset_path, split=None)
    result = export.run(config, predictions=predictions, out_dir=out_dir, dataset=ds)
    click.echo(f"exported {result.masks} masks of {result.queries} queries in {result.videos} videos ({result.format})")
    click.echo(f"wrote {result.out_dir}")


@main.command("doctor")
@click.argument("path", metavar="PATH", type=click.Path(path_type=str))
@click.option("--split", default=None,
              help="Check one split only (A2D: train/test; J-HMDB: test; Ref-YouTube-VOS: its folder names).  [default: all]")
@click.option("--quick", is_flag=True,
              help="Skip decoding every clip and reading every mask (checks files, tables and h5 headers only).")
@click.option("--strict", is_flag=True,
              help="Also fail (exit 1) on warnings, e.g. annotated instances that no sentence refers to.")
@click.option("--query", "queries", multiple=True,
              help="For a single video or frame folder: a sentence to check (repeatable).")
@click.option("--queries", "queries_file", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="For a single video: a CSV (column query, optional query_id), JSON or TXT file of sentences.")
def doctor_cmd(path: str, split: str | None, quick: bool, strict: bool, queries: tuple[str, ...], queries_file: str | None) -> None:
    """Check the dataset at PATH and count its samples.

    \b
    Detects the layout (A2D-Sentences / synthetic, J-HMDB-Sentences, Ref-YouTube-VOS, or one
    video file / frame folder), reads it as every stage will, decodes every clip and reads every
    mask (unless --quick), then prints videos / queries / samples per split and EVERY problem on
    its own line, with the file and the fix. Exit code 0 when no errors were found, 1 otherwise.
    """
    from clawcrane.config import DoctorConfig
    from clawcrane.stages import doctor

    result = doctor.run(DoctorConfig(split=split, quick=quick, strict=strict), path,
                        queries=list(queries) or None, queries_file=queries_file)
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        click.get_current_context().exit(1)


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--preset",
    type=click.Choice(["tiny", "small", "full"]),
    default="small",
    show_default=True,
    help="Size: tiny (8 videos, seconds; for tests), small (120 videos, ~500 queries; the quickstart), "
    "full (720 videos, >= 2,000 train / >= 500 test queries; under 2 minutes on 2 cores).",
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
