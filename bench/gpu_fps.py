"""End-to-end frames per second on one device: decode, detect, extract, head, TRM, and each one's share.

    python bench/gpu_fps.py --device cuda [--videos 8] [--frames 100] [--size 320x240] [--detector lite|r50-fpn]
        [--batch-size 8] [--backbone efficientnet-lite0] [--work DIR]

What runs, on synthetic mp4s the bench writes (moving boxes on noise, 320x240 like A2D's clips):

1. **decode**: every frame of every video, alone (its cost is also inside detect and extract,
   which decode for themselves, as the CLI stages do);
2. **detect**: the `detect` stage over every frame (batches of ``--batch-size`` frames; the
   Mask R-CNN has random weights, so it proposes its capped number of masks per frame and
   postprocessing and RLE encoding do their full work: timing only);
3. **extract**: the `extract` stage (mask pooling on the backbone's pyramid; computed in float32,
   stored in float16 as the CLI does), and stored in float32 to state what half storage changes;
4. **head + TRM**: one sentence per video through a randomly initialised head of the default
   architecture and the TRM (what `track-rank` computes, without writing Parquet).

Prints frames per second end to end (frames / (detect + extract + head + TRM); decode is inside
the first two) beside the paper's 9.27 FPS (ClawCraneNet, one GPU) and MTTR's 76 FPS (its
paper), each stage's share, and the float16-vs-float32 feature difference with the fraction of
answers (rank-0 candidate per frame) that stay the same. ``--amp`` (CUDA only) also runs detect under
float16 autocast and reports its time and how many of the float32
candidates it reproduces (a candidate with mask IoU >= 0.9 on the same frame): the stages have
no mixed-precision switch yet, and this measures whether one would pay. Warm-up runs on a short video first,
so CUDA initialisation and cuDNN autotuning are not timed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect_overhead import one_video_dataset, write_video  # noqa: E402

from clawcrane.build.detectors import maskrcnn_from_checkpoint, new_detector_model  # noqa: E402
from clawcrane.build.device import resolve_device  # noqa: E402
from clawcrane.build.heads import new_head, sized  # noqa: E402
from clawcrane.cache.features import open_features  # noqa: E402
from clawcrane.config import DetectConfig, ExtractConfig, TrackRankConfig  # noqa: E402
from clawcrane.datasets.records import Dataset, Query  # noqa: E402
from clawcrane.pipeline.language import Vocabulary, pad_ids, tokenize  # noqa: E402
from clawcrane.pipeline.maskrcnn import MaskRCNNDetector, model_spec  # noqa: E402
from clawcrane.pipeline.scoring import score_video  # noqa: E402
from clawcrane.stages import detect, extract  # noqa: E402
from clawcrane.stages.track_rank import query_submissions, video_inputs  # noqa: E402

PAPER_FPS, MTTR_FPS = 9.27, 76.0
SENTENCE = "the red box moving to the left"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def videos_dataset(root: Path, n: int, frames: int, H: int, W: int) -> Dataset:
    """``n`` synthetic mp4s as one dataset, one sentence each."""
    vids, queries = {}, []
    for i in range(n):
        path = root / f"v{i:03d}.mp4"
        if not path.is_file():
            write_video(path, frames, H, W)
        (video,) = one_video_dataset(path).videos.values()
        vids[video.video_id] = video
        queries.append(Query(f"{video.video_id}_0", video.video_id, SENTENCE, "0", (0,), "appearance", split="test"))
    return Dataset(name="bench", root=root, videos=vids, queries=queries, fingerprint=f"gpu-fps-{n}-{frames}-{H}x{W}")


def detector(preset: str, device: str, batch_size: int) -> MaskRCNNDetector:
    """A trained `train-detector` checkpoint (PATH), or a preset with random weights whose mask logits are
    biased positive, so that every proposal keeps a non-empty mask and the later stages do their full work."""
    if Path(preset).is_file():
        return maskrcnn_from_checkpoint(preset, device=device, batch_size=batch_size, score_threshold=0.0)
    torch.manual_seed(0)
    model = new_detector_model(preset, num_classes=8, pretrained=False)
    with torch.no_grad():
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.fill_(2.0)
    return MaskRCNNDetector(model=model, spec=model_spec(preset, num_classes=8), weights_key=f"bench-random-{preset}",
                            device=device, batch_size=batch_size, score_threshold=0.0)


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def head_and_trm(features: Path, ds: Dataset, device: str) -> tuple[float, dict[str, list[int]]]:
    """Seconds of head + TRM for every video's sentence, and each video's rank-0 candidate rows per frame."""
    fc = open_features(features)
    cand = fc.require_complete_inputs()
    hcfg = sized("small")
    vocab = Vocabulary.build([SENTENCE])
    model = new_head(hcfg, vocab_size=len(vocab), feat_dim=fc.channels, seed=0).to(device)
    text, lengths = pad_ids([vocab.ids(tokenize(SENTENCE))])
    cfg = TrackRankConfig(split="all", device=device)
    answers: dict[str, list[int]] = {}
    sync(device)
    t0 = time.perf_counter()
    for vid in sorted(ds.videos):
        vi = video_inputs(vid, [], candidates=cand, features=fc, dataset=ds, cand_ids=set(cand.video_ids()),
                          feat_ids=set(fc.video_ids()), motion=hcfg.motion)
        if not vi.has_candidates:
            answers[vid] = []
            continue
        emb, sim = score_video(model, text, lengths, vi.feat, vi.pos, vi.valid)
        subs = query_submissions(emb[0].cpu().numpy(), sim[0].cpu().numpy(), vi, cfg)
        answers[vid] = [int(vi.rows[t][s[0].k]) if s[0].k >= 0 else -1 for t, s in enumerate(subs)]
    sync(device)
    return time.perf_counter() - t0, answers


def candidates_reproduced(a: Path, b: Path, iou: float = 0.9) -> float:
    """Fraction of the candidates in artifact ``a`` that ``b`` has on the same frame with mask IoU >= ``iou``."""
    from pycocotools import mask as mask_utils

    from clawcrane.cache.candidates import open_candidates

    ca, cb = open_candidates(a), open_candidates(b)
    hit = total = 0
    for vid in ca.video_ids():
        va, vb = ca.video(vid), cb.video(vid)
        for f in sorted(set(int(x) for x in va.frames)):
            ra, rb = [va.rles[int(i)] for i in va.frame_rows(f)], [vb.rles[int(i)] for i in vb.frame_rows(f)]
            total += len(ra)
            if ra and rb:
                ious = mask_utils.iou(ra, rb, [0] * len(rb))
                hit += int((np.asarray(ious).max(axis=1) >= iou).sum())
    return hit / total if total else float("nan")


def feature_gap(a: Path, b: Path) -> tuple[float, float]:
    """(max relative L2 difference per candidate, min cosine) between two feature artifacts of the same candidates."""
    fa, fb = open_features(a), open_features(b)
    worst_rel, min_cos = 0.0, 1.0
    for vid in fa.video_ids():
        x, y = np.asarray(fa.video(vid).feat, np.float64), np.asarray(fb.video(vid).feat, np.float64)
        if not len(x):
            continue
        rel = np.linalg.norm(x - y, axis=1) / np.maximum(np.linalg.norm(y, axis=1), 1e-12)
        cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12)
        worst_rel, min_cos = max(worst_rel, float(rel.max())), min(min_cos, float(cos.min()))
    return worst_rel, min_cos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="320x240", help="WxH of the videos")
    ap.add_argument("--detector", default="lite", help="lite or r50-fpn (random weights), or a train-detector checkpoint PATH")
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--batch-size", type=int, default=8, help="frames per detector batch")
    ap.add_argument("--amp", action="store_true", help="also time detect under autocast and compare its candidates")
    ap.add_argument("--work", type=Path, default=None, help="keep the videos and caches here (default: a temp folder)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    device = str(resolve_device(args.device))
    W, H = (int(v) for v in args.size.split("x"))
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    print(f"device: {device} = {name}; torch {torch.__version__}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        warm = videos_dataset(work / "warm", 1, min(16, args.frames), H, W)
        ds = videos_dataset(work / "videos", args.videos, args.frames, H, W)
        det = detector(args.detector, device, args.batch_size)
        key = lambda spec, d: f"bench-{args.detector}"  # noqa: E731 (a fixed detector key: random weights)

        def run_detect(d: Dataset, cache: Path):
            cfg = DetectConfig(detector="bench", batch_size=args.batch_size, score_threshold=0.0, device=device)
            return detect.run(cfg, d, cache, detector_factory=lambda *a, **k: det, key_fn=key)

        def run_extract(d: Dataset, cand: Path, dtype: str):
            cfg = ExtractConfig(backbone=args.backbone, cache=str(cand.parent), candidates=str(cand), device=device,
                                dtype=dtype, workers=1)
            return extract.run(cfg, dataset=d)

        wd = run_detect(warm, work / "warm-cache")  # warm-up: CUDA context, cuDNN autotuning, weights on device
        run_extract(warm, wd.path, "float16")
        head_and_trm(run_extract(warm, wd.path, "float32").path, warm, device)

        frames = sum(v.num_frames for v in ds.videos.values())
        t_decode, _ = timed(lambda: sum(1 for v in ds.videos.values() for _ in v.iter_frames()), "cpu")
        t_detect, d = timed(lambda: run_detect(ds, work / "cache"), device)
        t_x16, x16 = timed(lambda: run_extract(ds, d.path, "float16"), device)
        t_x32, x32 = timed(lambda: run_extract(ds, d.path, "float32"), device)
        t_head16, ans16 = head_and_trm(x16.path, ds, device)
        _, ans32 = head_and_trm(x32.path, ds, device)
        rel, cos = feature_gap(x16.path, x32.path)
        if args.amp and not device.startswith("cuda"):
            print("--amp: autocast is measured on CUDA only (float16); skipped on this device")
            args.amp = False
        if args.amp:
            with torch.autocast("cuda", dtype=torch.float16):
                run_detect(warm, work / "warm-amp")
                t_amp, d_amp = timed(lambda: run_detect(ds, work / "cache-amp"), device)
            kept = candidates_reproduced(d.path, d_amp.path)

    total = t_detect + t_x16 + t_head16
    same = [a == b for v in ans16 for a, b in zip(ans16[v], ans32[v])]
    print(f"\n{args.videos} videos x {args.frames} frames at {W}x{H} = {frames} frames; detector {args.detector} "
          f"(random weights), backbone {args.backbone}, detect batch {args.batch_size}")
    print("| stage | seconds | frames/s | share of end to end |")
    print("|---|---|---|---|")
    for label, t in (("decode (inside detect and extract)", t_decode), ("detect", t_detect),
                     ("extract (float16)", t_x16), ("head + TRM", t_head16)):
        share = f"{100 * t / total:.0f}%" if "inside" not in label else "-"
        print(f"| {label} | {t:.2f} | {frames / t:.1f} | {share} |")
    print(f"| **end to end** | {total:.2f} | **{frames / total:.1f}** | 100% |")
    print(f"\npaper (ClawCraneNet, one GPU): {PAPER_FPS} FPS; MTTR: {MTTR_FPS} FPS; here: {frames / total:.1f} FPS "
          f"({frames / total / PAPER_FPS:.1f}x the paper's)")
    print(f"extract float32: {t_x32:.2f} s ({t_x32 / t_x16:.2f}x float16); float16 vs float32 features: max relative "
          f"L2 difference {rel:.2e}, min cosine {cos:.6f}; rank-0 answers identical on {100 * np.mean(same):.1f}% "
          f"of {len(same)} frames")
    if args.amp:
        print(f"detect under float16 autocast: {t_amp:.2f} s "
              f"({t_detect / t_amp:.2f}x faster than float32); {100 * kept:.1f}% of the float32 candidates reproduced "
              f"(mask IoU >= 0.9)")


if __name__ == "__main__":
    sys.exit(main())
