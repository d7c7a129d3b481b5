"""The `clawcrane` command: one thin click command per stage.

Each command builds its stage's frozen config, calls ``clawcrane.stages.<stage>.run`` and prints
a short summary. Any ``ClawcraneError``, and any ``OSError`` (read-only file system, full disk, a file
where a folder should be, ...), becomes one line on stderr (``error: PATH: what; fix``) and exit code 1.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

import click

from clawcrane import __version__
from clawcrane.cli_options import config_from, config_options, field_option
from clawcrane.config import (
    HEAD_OPTION_EXCLUDE,
    HEAD_SIZES,
    AblateConfig,
    DetectConfig,
    DoctorConfig,
    EvalConfig,
    ExportConfig,
    ExtractConfig,
    HeadConfig,
    QuickstartConfig,
    ReportConfig,
    SegmentConfig,
    SynthConfig,
    TrackRankConfig,
    TrainDetectorConfig,
    TrainHeadConfig,
    default_score_threshold,
)
from clawcrane.errors import ClawcraneError, ConfigError, os_error_message

log = logging.getLogger("clawcrane")

SHARD_HELP = ("Process shard I of N (0-based; videos by sorted id, i % N == I).  [default: from "
              "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else 0/1]  Join the shards with `clawcrane cache merge`.")
TRM_OPTIONS = ("gamma", "beta", "alpha", "score_mode")
"""The TRM options `track-rank` and `ablate` share (TrackRankConfig fields)."""


def trm_options(fn):
    for name in reversed(TRM_OPTIONS):
        fn = field_option(TrackRankConfig, name)(fn)
    return fn


DISTRIBUTED_COMMANDS = ("train-head", "train-detector")
"""The commands that run under torchrun (several processes); every other one refuses WORLD_SIZE > 1."""


def _rank() -> int:
    """This process's torchrun RANK (0 for a plain run)."""
    try:
        return int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0


def _fail(ctx: click.Context, message: str, *, same_on_every_rank: bool = False) -> None:
    """One line on stderr and exit 1. Under torchrun an option error (the same on every rank) is printed
    by rank 0 alone; any other error names the rank that met it."""
    rank = _rank()
    if rank == 0:
        click.echo("error: " + " ".join(message.split()), err=True)
    elif not same_on_every_rank:
        click.echo(f"error (rank {rank}): " + " ".join(message.split()), err=True)
    ctx.exit(1)


def _command_path_of(args) -> str:
    """'clawcrane CMD [SUB]' for an error click raised without its context (an option missing its value)."""
    path, group = ["clawcrane"], main
    for word in list(sys.argv[1:] if args is None else args):
        if word.startswith("-"):
            continue
        sub = group.commands.get(word) if isinstance(group, click.Group) else None
        if sub is None:
            if len(path) > 1:  # past the command: an argument or an option's value
                break
            continue  # a value of a global option (--log-level info)
        path.append(word)
        group = sub
    return " ".join(path)


class _Command(click.Command):
    """Click command that refuses an option followed by another of its options as its value (``--cache
    --skip-bad``: click would take '--skip-bad' as the folder name and drop the flag). Checked on the raw
    words before click parses them, so it is the first error; ``--query=--cache`` still passes text on."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = {n: p for p in self.get_params(ctx) if isinstance(p, click.Option) for n in (*p.opts, *p.secondary_opts)}
        for word, following in zip(args, args[1:]):
            if word == "--":
                break
            p = options.get(word)
            if p is not None and not p.is_flag and not p.count and following.split("=", 1)[0] in options:
                raise click.UsageError(f"{word} got {following!r}, another option, as its value; give {word} a "
                                       f"value (or write {word}={following} if you mean that text)", ctx)
        return super().parse_args(ctx, args)


class _Group(click.Group):
    """Click group that turns library errors and file-system errors into one line and exit 1, and a
    command line click refuses (unknown option, bad value, missing argument) into one line and exit 2."""

    command_class = _Command

    def main(self, *args, **kwargs):
        if not kwargs.pop("standalone_mode", True):
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as err:  # `clawcrane`, `clawcrane cache`: the help, as click shows it
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            where = err.ctx.command_path if err.ctx is not None else _command_path_of(kwargs.get("args"))
            message = " ".join(err.format_message().split()).rstrip(".")
            click.echo(f"error: {message}; see `{where} --help`", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as err:
            _fail(ctx, str(err), same_on_every_rank=True)
        except ClawcraneError as err:
            _fail(ctx, str(err))
        except OSError as err:  # the stages let file-system errors through; they name the path
            _fail(ctx, os_error_message(err))


def _setup_logging(level: str) -> None:
    value = getattr(logging, level.upper())
    if _rank() != 0:  # under torchrun only rank 0 logs (and shows progress bars); the others report errors
        value = max(value, logging.ERROR)
    logging.basicConfig(
        level=value,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("clawcrane").setLevel(value)


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
      clawcrane export PRED              COCO-RLE JSON, PNG masks, Ref-YouTube-VOS submission
      clawcrane report PRED              one static HTML page: tables, P@K curve, gallery
      clawcrane ablate                   the paper's Table 3 rows over one feature cache
      clawcrane segment VIDEO --query S  your own video and sentences: masks + overlay video
      clawcrane quickstart               all of it on the synthetic benchmark (the README's job)
      clawcrane cache ls|info|verify|merge   inspect and maintain the caches

    \b
    train-head and train-detector also run as several processes (one per GPU, or CPU processes):
      torchrun --nproc_per_node N -m clawcrane train-head ...
    """
    _setup_logging(log_level)
    ctx = click.get_current_context()
    world = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    if world != "1" and ctx.invoked_subcommand not in (None, *DISTRIBUTED_COMMANDS):
        raise click.UsageError(f"WORLD_SIZE={world}: only {' and '.join(DISTRIBUTED_COMMANDS)} run under torchrun; "
                               f"run `clawcrane {ctx.invoked_subcommand}` as one process")


@main.group(cls=_Group)
def data() -> None:
    """Make or inspect datasets."""


# ---- commands (one per stage) -------------------------------------------------------------


@main.command("evaluate")
@click.argument("predictions", metavar="PRED", type=click.Path(dir_okay=False, path_type=str))
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True, path_type=str),
              help="The dataset folder the predictions were made for (its ground truth is read).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder for metrics.json and metrics.md  [default: PRED's folder / <PRED stem>-eval, or "
                   "<PRED stem>-eval-<split> for another --split than test]")
@field_option(EvalConfig, "split")
@field_option(EvalConfig, "j_and_f")
def evaluate_cmd(predictions: str, dataset_path: str, out_dir: str | None, split: str, j_and_f: str) -> None:
    """Score PRED (a predictions Parquet file from `track-rank`) against the dataset's masks.

    \b
    Per (query, annotated frame) the highest-scored mask is compared with the ground truth at
    the annotation resolution: P@0.5..0.9 (IoU > K), mAP 0.5:0.95 in both published definitions
    (COCO AP over every submitted mask, and the mean of P@0.5:0.05:0.95 on the top-1 mask),
    Overall IoU and Mean IoU, overall and per query type. Writes metrics.json and metrics.md.
    """
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import evaluate

    ds = open_dataset(dataset_path, split=None, frames=False)  # ground truth only: the clips may be absent
    result = evaluate.run(EvalConfig(split=split, j_and_f=j_and_f), predictions=predictions, dataset=ds, out_dir=out_dir)
    click.echo(result.markdown)
    if result.missing:
        click.echo(f"warning: {len(result.missing)} samples had no prediction and were scored as empty", err=True)
    click.echo(f"wrote {result.out_dir}")


@main.command("export")
@click.argument("predictions", metavar="PRED", type=str)
@field_option(ExportConfig, "format", "--format", metavar="[coco-rle|png|ytvos]", type=str)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Output folder  [default: PRED's folder / <PRED stem>-<FORMAT>]")
@click.option("--dataset", "dataset_path", type=click.Path(exists=True, path_type=str), default=None,
              help="The dataset the predictions were made for: masks are written at its frame size, ytvos "
                   "frame files take its frame names and every video gets all its frames.")
@field_option(ExportConfig, "top_k")
@field_option(ExportConfig, "force")
def export_cmd(predictions: str, format: str, out_dir: str | None, dataset_path: str | None, top_k: int, force: bool) -> None:
    """Write PRED (a predictions Parquet file from `track-rank`) as COCO-RLE JSON, PNG masks or ytvos.

    \b
    Masks are binary. The answer of a (query, frame) is its rank-0 mask; a query that abstained
    on a frame gets an empty mask. The folder is written beside OUT and renamed into place, so a
    re-export replaces the previous one as a whole; a folder holding other files needs --force.
    """
    from clawcrane.stages import export

    config = ExportConfig(format=format, top_k=top_k, force=force)
    export.check_config(config)
    ds = None
    if dataset_path is not None:
        from clawcrane.datasets import open_dataset

        ds = open_dataset(dataset_path, split=None, frames=False)  # no format decodes a frame
    result = export.run(config, predictions=predictions, out_dir=out_dir, dataset=ds)
    click.echo(f"exported {result.masks} masks of {result.queries} queries in {result.videos} videos ({result.format})")
    click.echo(f"wrote {result.out_dir}")


@main.command("report")
@click.argument("predictions", metavar="PRED", type=click.Path(dir_okay=False, path_type=str))
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True, path_type=str),
              help="The dataset folder the predictions were made for (ground truth and frames are read).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder for index.html  [default: PRED's folder / <PRED stem>-report, or <PRED stem>-report-<split> "
                   "for another --split than test]")
@click.option("--head", "head", type=click.Path(exists=True, path_type=str), default=None,
              help="A train-head run folder (or its metrics.json): adds its loss and accuracy per epoch.")
@click.option("--ablation", "ablation", type=click.Path(exists=True, path_type=str), default=None,
              help="TABLE/ablation.json of `clawcrane ablate` (or the TABLE folder): adds the ablation table.")
@field_option(ReportConfig, "split")
@field_option(ReportConfig, "j_and_f")
@field_option(ReportConfig, "gallery")
@field_option(ReportConfig, "thumb_width")
@field_option(ReportConfig, "force")
def report_cmd(predictions: str, dataset_path: str, out_dir: str | None, head: str | None, ablation: str | None,
               **options) -> None:
    """Write one static HTML page of PRED's results: OUT/index.html (no server, no network needed).

    \b
    The page holds, from the same computations as `evaluate`:
      - the metrics table (P@0.5..0.9, both mAPs, Overall/Mean IoU), per query type and wording;
      - P@K for IoU thresholds K = 0.5..0.95 as a chart, overall and per query type;
      - with --head: the head's loss and accuracy per epoch, the epoch of best.pt marked;
      - a gallery of the --gallery worst and best samples: the frame with the chosen mask filled
        and the true mask outlined, the sentence, IoU and score;
      - with --ablation: the Table 3 rows of an `ablate` run.
    Images are embedded in the file, so index.html can be opened, copied or mailed alone. OUT
    is replaced as a whole; a folder holding other files needs --force.

    \b
    Example:
      clawcrane report runs/pred.parquet --dataset data/small --head runs/head \\
          --ablation table-small-oracle/ablation.json --out report
    """
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import report

    config = config_from(ReportConfig, options)
    ds = open_dataset(dataset_path, split=None, frames=False)  # scores need annotations only; absent clips draw on grey
    res = report.run(config, predictions=predictions, dataset=ds, out_dir=out_dir, head=head, ablation=ablation)
    m = res.metrics
    click.echo(f"report: {res.samples} samples, P@0.5 {100 * m['P@0.5']:.1f}, mAP (COCO) {100 * m['mAP_coco']:.1f}, "
               f"Overall IoU {100 * m['overall_iou']:.1f}; sections {', '.join(res.sections)}; "
               f"{res.gallery} gallery images; {res.bytes / 1024:.0f} KiB")
    click.echo(f"wrote {res.index}")


@main.command("doctor")
@click.argument("path", metavar="PATH", type=click.Path(path_type=str))
@field_option(DoctorConfig, "split", type=str, show_default="all")
@field_option(DoctorConfig, "quick")
@field_option(DoctorConfig, "strict")
@field_option(DoctorConfig, "verbose")
@click.option("--query", "queries", multiple=True,
              help="For a single video or frame folder: a sentence to check (repeatable).")
@click.option("--queries", "queries_file", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="For a single video: a CSV (column query, optional query_id), JSON or TXT file of sentences.")
def doctor_cmd(path: str, split: str | None, quick: bool, strict: bool, verbose: bool, queries: tuple[str, ...],
               queries_file: str | None) -> None:
    """Check the dataset at PATH and count its samples.

    \b
    Detects the layout (A2D-Sentences / synthetic, J-HMDB-Sentences, Ref-YouTube-VOS, or one
    video file / frame folder), reads it as every stage will, decodes every clip and reads every
    mask (unless --quick), then prints videos / queries / samples per split and every problem on
    its own line, with the file and the fix; warnings that are normal by the hundred (annotated
    instances without a sentence, as in A2D) are counted in one line unless --verbose. Exit code
    0 when no errors were found, 1 otherwise.
    """
    from clawcrane.stages import doctor

    result = doctor.run(DoctorConfig(split=split, quick=quick, strict=strict, verbose=verbose), path,
                        queries=list(queries) or None, queries_file=queries_file)
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        click.get_current_context().exit(1)


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@field_option(SynthConfig, "preset")
@field_option(SynthConfig, "seed")
@field_option(SynthConfig, "preview")
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

    \b
    The hard presets (hard-tiny, hard, hard-full) make a world without shortcuts: no trails
    (motion shows only across frames: eight directions, three speed bands, 'the faster X'),
    a sixth query type, size ('the bigger X'), objects that vanish behind others and
    reappear, lighting drift, close shades (red/orange, blue/teal, purple/pink), synonyms and
    several templates per meaning. Some wordings appear only in test sentences (the paraphrase
    split): query_types.csv gets a 4th column, wording = seen | paraphrase.
    """
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


@main.command("extract")
@click.option("--cache", "cache", required=True, type=click.Path(file_okay=False),
              help="Cache root: reads the candidate artifact under it and writes extract-<key>/ beside it.")
@field_option(ExtractConfig, "candidates", type=click.Path(exists=True, file_okay=False), default=None,
              show_default="the one under --cache")
@field_option(ExtractConfig, "backbone")
@field_option(ExtractConfig, "weights")
@field_option(ExtractConfig, "levels", type=str, default="", show_default=False, metavar="L1,L2,...")
@field_option(ExtractConfig, "input_size")
@field_option(ExtractConfig, "mask_threshold")
@field_option(ExtractConfig, "dtype")
@field_option(ExtractConfig, "with_flip")
@field_option(ExtractConfig, "batch_size")
@field_option(ExtractConfig, "skip_bad")
@field_option(ExtractConfig, "workers")
@field_option(ExtractConfig, "device")
@click.option("--shard", default=None, metavar="I/N", help=SHARD_HELP)
@field_option(ExtractConfig, "dataset", type=click.Path(exists=True), default=None, show_default="the one `detect` recorded")
def extract_cmd(cache, candidates, backbone, weights, levels, input_size, mask_threshold, dtype, with_flip,
                skip_bad, batch_size, workers, device, shard, dataset) -> None:
    """Mask-pooled CNN features and positions p_i of every candidate -> feature cache.

    Frames are decoded once; train-head then reads only the cached tensors.
    """
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


# ---- detect -------------------------------------------------------------------------------------
@main.command(context_settings={"max_content_width": 100})
@click.argument("dataset", type=click.Path(exists=True))
@field_option(DetectConfig, "detector", required=True, metavar="SPEC", show_default=False)
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False),
              help="Cache root; the candidates go to CACHE/detect-<key>/ (a new folder when an output-affecting option changes).")
@field_option(DetectConfig, "frame_stride")
@field_option(DetectConfig, "train_frames")
@field_option(DetectConfig, "score_threshold", default=None,
              show_default=f"{DetectConfig.score_threshold} for a detector, 0 for --detector import:... (every imported mask)")
@field_option(DetectConfig, "max_per_frame")
@field_option(DetectConfig, "dedup_iou")
@field_option(DetectConfig, "refine_masks")
@field_option(DetectConfig, "batch_size")
@field_option(DetectConfig, "device")
@click.option("--shard", default=None, metavar="I/N", help=SHARD_HELP)
@field_option(DetectConfig, "workers")
@field_option(DetectConfig, "skip_bad")
def detect(dataset, detector, cache_dir, frame_stride, train_frames, score_threshold, max_per_frame, dedup_iou,
           refine_masks, batch_size, device, shard, workers, skip_bad):
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

    \b
    Other systems' own output (--detector import:KIND:PATH; PATH/<video_id>/ per video, or for one
    video PATH itself; frame = the file name's number, 0-based; track ids, scores, classes kept):
      import:gsam2:PATH  Grounded-SAM-2 continuous-id demos: mask_data/mask_<frame>.npy (uint16 ids)
                         + json_data/mask_<frame>.json (labels: class_name, logit)
      import:deva:PATH   DEVA demos: Annotations/<frame>.png (RGB id = R + 256G + 65536B, or palette)
                         + pred.json (segments_info: id, category_id, score)
      import:sam2:PATH   SAM 2 tools/vos_inference.py: <frame>.png palette (value = object id), or
                         <object_id:03d>/<frame>.png with --per_obj_png_file
      import:sam3:PATH   SAM 3 YT-VIS results .json (per masklet: video_id, score, category_id,
                         segmentations per frame), or a folder with it and its YT-VIS annotation
                         .json (frame names, video names, category names)
    """
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import detect as stage

    shard_i, num_shards = stage.parse_shard(shard)
    if score_threshold is None:  # another system chose its masks on its own score scale: keep them all
        score_threshold = default_score_threshold(detector)
    cfg = DetectConfig(
        detector=detector, frame_stride=frame_stride, train_frames=train_frames, score_threshold=score_threshold,
        max_per_frame=max_per_frame, dedup_iou=dedup_iou, refine_masks=refine_masks, batch_size=batch_size,
        device=device, shard=shard_i, num_shards=num_shards, workers=workers, skip_bad=skip_bad,
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
    """Check one artifact, or every artifact under a cache root: every video the stage was asked to
    process is there, every column matches the checksum recorded when it was written, every record
    reads, RLEs decode at the recorded size, rows sorted and aligned, features finite and aligned
    with their candidates. Exit 1 listing the problems and the command that fixes them."""
    from clawcrane.stages import cache_cmds

    results = cache_cmds.verify_all(path)
    for r in results:
        for n in r.notes:
            click.echo(f"note: {r.store.path.name}: {n}" if len(results) > 1 else f"note: {n}")
        for p in r.problems:
            click.echo(f"problem: {r.store.path.name}: {p}" if len(results) > 1 else f"problem: {p}")
        if r.ok:
            click.echo(f"{r.store.path}: ok ({len(r.store.video_ids())} videos)")
    line = cache_cmds.failure_line(path, results)
    if line:
        _fail(click.get_current_context(), line)


@cache.command("merge")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def cache_merge(path):
    """Join the shard files (and finished parts) of one artifact into data.h5."""
    from clawcrane.stages import cache_cmds

    target, n, expected = cache_cmds.merge(path)
    click.echo(f"merged {n} videos into {target}")
    if expected is not None and n != int(expected):
        click.echo(f"warning: the dataset has {expected} videos; {int(expected) - n} are missing (shards not run yet?)", err=True)


@main.command("train-head")
@click.option("--features", "features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Feature cache: the extract-<key> folder, or the cache root holding exactly one.")
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True),
              help="The dataset the caches were built from (annotations only: sentences, splits, GT masks; videos are not read).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Run folder for last.pt, best.pt and metrics.json.")
@click.option("--size", type=click.Choice(sorted(HEAD_SIZES)), default="paper", show_default=True,
              help="Model width preset: paper (D=256, 1000-d words, 2x1000 bi-LSTM) or small (D=128, 128, 2x128; fast "
                   "on CPU); --embed-dim, --word-dim and --lstm-hidden override it.")
@config_options(HeadConfig, exclude=HEAD_OPTION_EXCLUDE,
                **{k: {"default": None, "show_default": "from --size"} for k in ("embed_dim", "word_dim", "lstm_hidden")})
@config_options(TrainHeadConfig, exclude=("head",))
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt (same options; --epochs may grow).")
def train_head_cmd(features, dataset_path, out, size, resume, **options):
    """Train the retrieval head (language encoder, PRM, TSRM; contrastive loss) from the caches.

    Reads the feature cache, the candidate cache beside it (for GT matching) and the dataset's
    train-split annotations; never decodes a frame (the clips may be absent) and never reads the
    test split. Validates on
    videos held out of the train split (--val-fraction) every epoch (top-1 accuracy, overall and
    per query type) and writes OUT/best.pt (best validation epoch), OUT/last.pt and
    OUT/metrics.json.
    """
    from clawcrane.build.heads import sized
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import train_head

    head_fields = {f.name for f in dataclasses.fields(HeadConfig)}
    head = dataclasses.replace(sized(size), **{k: v for k, v in options.items() if k in head_fields and v is not None})
    config = config_from(TrainHeadConfig, options, head=head)
    train_head.check_config(config)
    dataset = open_dataset(dataset_path, frames=False)  # annotations + caches: the clips may be absent
    result = train_head.run(config, dataset, features=features, out=out, resume=resume)
    if _rank() != 0:  # under torchrun rank 0 reports
        return
    val = result.best_metrics
    click.echo(f"wrote {result.out} ({result.epochs} epoch{'s' if result.epochs != 1 else ''}; best: {result.best.name}"
               + (f", validation accuracy {val['accuracy']:.3f}" if val else "") + ")")
    for name, m in sorted((val or {}).get("per_type", {}).items()):
        click.echo(f"  {name:<12} {m['accuracy']:.3f}  ({m['samples']} samples)")


@main.command("train-detector")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for last.pt (resumable), final.pt (the detector) and metrics.json.")
@field_option(TrainDetectorConfig, "preset")
@field_option(TrainDetectorConfig, "epochs")
@field_option(TrainDetectorConfig, "max_minutes", "--max-minutes", "--minutes")
@field_option(TrainDetectorConfig, "batch_size")
@field_option(TrainDetectorConfig, "lr")
@field_option(TrainDetectorConfig, "warmup_steps")
@click.option("--size", type=click.IntRange(min=0), default=0,
              help="Input size: shorter side and longer-side cap in pixels (sets min_size and max_size; 0: the preset's, lite 320).")
@field_option(TrainDetectorConfig, "classes")
@field_option(TrainDetectorConfig, "weights", show_default="the torch hub cache")
@field_option(TrainDetectorConfig, "seed")
@field_option(TrainDetectorConfig, "resume")
@field_option(TrainDetectorConfig, "device")
def train_detector_cmd(dataset, out, preset, epochs, max_minutes, batch_size, lr, warmup_steps, size, classes,
                       weights, seed, resume, device) -> None:
    """Train the Mask R-CNN candidate proposer on every annotated instance of the train split.

    Frames of the 'train' videos with instance annotations are decoded once into memory; the
    model learns all their instances (no sentences). At the end the detector is scored on the
    annotated frames of the 'test' videos: COCO mask AP / AP50 (pycocotools), printed and written
    to OUT/metrics.json. Use OUT/final.pt with `clawcrane detect --detector`.

    \b
    Example (about 10 CPU minutes on the synthetic benchmark):
      clawcrane train-detector data --preset lite --out runs/det --max-minutes 10
    """
    from clawcrane.stages import train_detector

    config = TrainDetectorConfig(
        dataset=str(dataset), out=str(out), preset=preset, epochs=epochs, max_minutes=max_minutes,
        batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, min_size=size, max_size=size, classes=classes,
        weights=str(weights or ""), seed=seed, resume=resume, device=device,
    )
    result = train_detector.run(config)
    if _rank() == 0:  # under torchrun rank 0 reports
        click.echo(train_detector.summary(result))


# ---- track-rank ---------------------------------------------------------------------------------
@main.command("track-rank")
@click.option("--head", "head", required=True, type=click.Path(exists=True),
              help="A trained head: the train-head run folder (its best.pt is used) or a checkpoint .pt file.")
@click.option("--features", "features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Feature cache: the extract-<key> folder, or the cache root holding exactly one "
                   "(its candidate cache must sit beside it; the masks come from there).")
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True),
              help="The dataset the caches were built from (queries and sentences are read; videos are not).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Predictions Parquet file to write (atomically); `clawcrane evaluate` and `export` read it.")
@field_option(TrackRankConfig, "split")
@field_option(TrackRankConfig, "top_k")
@field_option(TrackRankConfig, "trm")
@field_option(TrackRankConfig, "abstain_below", show_default="never")
@trm_options
@field_option(TrackRankConfig, "fallback")
@field_option(TrackRankConfig, "tracks")
@field_option(TrackRankConfig, "batch_size")
@field_option(TrackRankConfig, "device")
def track_rank_cmd(head, features, dataset_path, out, **options):
    """Score every candidate of every processed frame for each query, link them into tracks and write
    the ranked masks (query, frame, track, candidate, score, rank, RLE) to a Parquet file.

    With --tracks imported the track ids of a tracking system imported by `detect --detector
    import:KIND:PATH` (Grounded-SAM-2, DEVA, SAM 2, SAM 3) seed the linking: candidates sharing an id
    are one track; candidates without one are linked by the TRM.

    A second run with the same head, caches, dataset and options finds OUT up to date.
    """
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import track_rank

    config = config_from(TrackRankConfig, options)
    track_rank.check_config(config)
    ds = open_dataset(dataset_path, frames=False)  # annotations + caches: the clips may be absent
    res = track_rank.run(config, ds, head=head, features=features, out=out)
    if res.hit:
        click.echo(f"{res.out}: up to date ({res.queries} queries, {res.rows} rows); nothing to do")
        return
    click.echo(f"track-rank: {res.queries} queries in {res.videos} videos, {res.frames} frames "
               f"({res.query_frames} query-frames, {res.rows} rows, {res.abstained} queries without a mask) "
               f"in {res.seconds:.1f} s ({res.queries_per_second:.1f} queries/s)")
    click.echo(f"wrote {res.out}")


# ---- ablate -------------------------------------------------------------------------------------
@main.command("ablate")
@click.option("--cache", "cache", required=True, type=click.Path(exists=True, file_okay=False),
              help="The feature cache (extract-<key> folder, or the cache root holding one, with its candidates beside "
                   "it); run `clawcrane detect` and `clawcrane extract --with-flip` first.")
@click.option("--dataset", "dataset_path", required=True, type=click.Path(exists=True),
              help="The dataset the caches were built from.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Table folder: runs/s<seed>/<row>/ (head, predictions, eval) and ablation.md / ablation.json "
                   "(ablation-<split>.md for another --split than test).")
@field_option(AblateConfig, "epochs")
@field_option(AblateConfig, "size")
@field_option(AblateConfig, "seeds", type=str, default="0", metavar="S1,S2,...")
@field_option(AblateConfig, "rows", type=str, default="", show_default="all", metavar="R1,R2,...")
@field_option(AblateConfig, "val_fraction")
@field_option(AblateConfig, "weight_decay")
@field_option(AblateConfig, "dropout")
@field_option(AblateConfig, "split")
@trm_options
@field_option(AblateConfig, "device")
def ablate_cmd(cache, dataset_path, out, seeds, rows, **options):
    """Train and evaluate the rows of the paper's Table 3 over one feature cache.

    \b
    Rows: 1 top-down (no position, no relation, no TRM); 2 + absolute PE; 3 + relative PE;
    4 + PRM (full p_i); 5 + PRM + vanilla attention; 6 + PRM + TSRM (nonlinear fusion); 7 + PRM +
    TSRM + TRM (row 6's head with the TRM on). Not in the paper: 8 + PRM + TSRM-geo (train-head
    --relation text-geo), 9 the same + TRM; 10 + PRM + TSRM-linear (Eq. 5 read as linear), 11 the
    same + TRM; 12 TSRM-geo + text-guided ranks (--ranks) + TRM; 13 TSRM-geo + motion from tracks
    (--motion) + TRM; 14 TSRM-geo + ranks + motion + TRM; 15 row 14's head with the sum track score.
    Each row: train-head -> track-rank -> evaluate. Writes OUT/ablation.md
    (P@0.5..0.9, both mAPs, Overall and Mean IoU, then P@0.5 per query type) and OUT/ablation.json.
    Re-running reuses trained rows.
    """
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import ablate

    try:
        seed_list = tuple(int(x) for x in seeds.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: expected comma-separated integers, e.g. 0,1,2", param_hint="--seeds") from None
    config = config_from(AblateConfig, options, seeds=seed_list, rows=tuple(r.strip() for r in rows.split(",") if r.strip()))
    ablate.check_config(config)
    ds = open_dataset(dataset_path, frames=False)  # annotations + caches: the clips may be absent
    track = config_from(TrackRankConfig, {k: options[k] for k in TRM_OPTIONS})
    res = ablate.run(config, ds, cache=cache, out=out, track=track)
    click.echo(res.markdown)
    trained = sum(1 for r in res.rows for s in r.seeds if s.trained_epochs)
    click.echo(f"ablate: {len(res.rows)} rows x {len(res.rows[0].seeds) if res.rows else 0} seeds "
               f"({trained} heads trained now) in {res.seconds:.0f} s")
    click.echo(f"wrote {res.out / ablate.split_name('ablation.md', config.split)}")


# ---- segment ------------------------------------------------------------------------------------
@main.command("segment")
@click.argument("video", type=click.Path())
@click.option("--query", "queries", multiple=True, metavar="SENTENCE",
              help="A sentence describing one object (repeat for several).")
@click.option("--queries-file", "queries_file", type=click.Path(dir_okay=False), default=None,
              help="Sentences from a file: .txt (one per line), .csv (column query, optional query_id) or .json.")
@field_option(SegmentConfig, "detector", required=True, metavar="SPEC", show_default=False)
@click.option("--head", required=True, type=click.Path(exists=True),
              help="A trained head: the train-head run folder (its best.pt) or a checkpoint .pt file.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder: overlay.mp4, contact_sheet.png, masks/<query_id>/<frame>.png, segments.json.")
@field_option(SegmentConfig, "backbone")
@field_option(SegmentConfig, "top_k")
@field_option(SegmentConfig, "abstain_below", show_default="always answer")
@field_option(SegmentConfig, "tracks")
@field_option(SegmentConfig, "frame_stride")
@field_option(SegmentConfig, "refine_masks")
@field_option(SegmentConfig, "overlay")
@field_option(SegmentConfig, "device")
@field_option(SegmentConfig, "cache", default=None, show_default="$CLAWCRANE_CACHE/segment, else ~/.cache/clawcrane/segment")
@field_option(SegmentConfig, "force")
def segment_cmd(video, queries, queries_file, detector, head, out, backbone, top_k, abstain_below, tracks, frame_stride,
                refine_masks, overlay, device, cache, force):
    """Segment the objects that sentences describe in VIDEO (an mp4 or a folder of frames).

    Detection and features run once per video and are cached by its content, so asking new
    sentences about the same video only runs the head and the tracker (seconds). OUT is written
    beside itself and renamed into place (a re-run replaces it as a whole); a folder holding
    other files needs --force.

    \b
    Example:
      clawcrane segment clip.mp4 --query "the red ball on the left" --query "the dog" \\
          --detector runs/det/final.pt --head runs/head --out seg_out
    """
    from clawcrane.stages import segment

    config = SegmentConfig(detector=detector, backbone=backbone, top_k=top_k, abstain_below=abstain_below,
                           tracks=tracks, frame_stride=frame_stride, refine_masks=refine_masks, overlay=overlay, device=device,
                           cache=str(cache or ""), force=force)
    started = time.perf_counter()

    def answered(doc) -> None:  # printed as soon as the answers are known, before the overlay is drawn
        click.echo(f"answers after {time.perf_counter() - started:.1f} s  [backbone {doc['backbone']}]")
        for q in doc["queries"]:
            what = f"score {q['score']:.2f}" if q["status"] == "ok" else segment.NO_MATCH
            click.echo(f"  {q['query_id']}: {q['sentence']}  -> {what}")

    res = segment.run(config, video, head=head, out=out, queries=queries, queries_file=queries_file, on_answer=answered)
    click.echo(f"detect+extract: {res.prepare_seconds:.1f} s" + (" (cached)" if res.cached else "")
               + f"; head+tracker: {res.answer_seconds:.2f} s; masks"
               + (" and overlay" if res.render is not None else "") + f": {res.render_seconds:.1f} s")
    drawn = f"{res.render.frames} frames drawn, " if res.render is not None else ""
    click.echo(f"wrote {res.out}/ ({drawn}{res.mask_files} mask files, {segment.SEGMENTS_FILE})")


# ---- quickstart ---------------------------------------------------------------------------------
@main.command("quickstart")
@click.option("--out", "out", default="quickstart_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for everything: data/, detector/, cache/, head/, predictions.parquet, eval/, overlays/.")
@field_option(QuickstartConfig, "preset")
@field_option(QuickstartConfig, "seed")
@field_option(QuickstartConfig, "detector", metavar="SPEC", show_default="train the lite detector into OUT/detector/")
@field_option(QuickstartConfig, "detector_minutes")
@field_option(QuickstartConfig, "head_epochs")
@field_option(QuickstartConfig, "frame_stride")
@field_option(QuickstartConfig, "overlays")
@field_option(QuickstartConfig, "device")
def quickstart_cmd(out, preset, seed, detector, detector_minutes, head_epochs, frame_stride, overlays, device):
    """The whole pipeline on the synthetic benchmark: synth, train-detector, detect, extract,
    train-head, track-rank, evaluate, overlays. Prints each stage's time and the metric tables.

    A second run finds every stage done and finishes in well under a minute.
    """
    from clawcrane.stages import quickstart

    config = QuickstartConfig(preset=preset, seed=seed, detector=detector, detector_minutes=detector_minutes, head_epochs=head_epochs,
                              frame_stride=frame_stride, overlays=overlays, device=device)

    def show(st) -> None:
        click.echo(f"{st.name:<15} {st.seconds:7.1f} s  (cpu {st.cpu_seconds:7.1f} s)  "
                   f"{'reused' if st.reused else 'done'}  {st.note}")

    res = quickstart.run(config, out, on_stage=show)
    click.echo(f"{'total':<15} {res.seconds:7.1f} s  (cpu {res.cpu_seconds:7.1f} s)")
    click.echo("")
    click.echo(res.markdown)
    click.echo(f"overlays: {', '.join(str(p) for p in res.overlays)}")
    click.echo(f"tables: {res.out / 'eval' / 'metrics.md'}")
