"""Overhead of `clawcrane detect` over the bare model, and its memory against video length.

Prints, in one run:
  1. the ratio of the detect stage's wall time (decode + detector + postprocess + RLE + HDF5
     write, as `clawcrane detect` runs it) to the bare detector forward over the same frames,
     decoded beforehand (target <= 1.15); also in process CPU time, and the stage's own cost
     measured alone (the detector replaced by a replay of its recorded outputs), which bounds the
     ratio even on a loaded machine where wall times are noisy;
  2. the peak RSS of `detect` on a 50-frame and on a 500-frame video, each measured in its own
     subprocess (target: within 10% of each other: memory must not grow with video length).

The detector is the lite Mask R-CNN of ``clawcrane.pipeline.maskrcnn`` with random weights (timing
only; a random model still proposes its capped number of masks per frame, so postprocessing and
encoding do their full work). The video is a synthetic mp4 the bench writes.

    python bench/detect_overhead.py [--frames 120] [--batch-size 4] [--device auto] [--size 320x240]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clawcrane.config import DetectConfig  # noqa: E402
from clawcrane.datasets.records import Dataset, Video  # noqa: E402
from clawcrane.datasets.video_io import Mp4Frames, write_mp4  # noqa: E402
from clawcrane.fingerprint import file_fingerprint  # noqa: E402
from clawcrane.pipeline.detectors import Detector  # noqa: E402

NUM_CLASSES = 8


def synthetic_frames(n: int, height: int, width: int, seed: int = 0):
    """Moving coloured boxes on a noisy background (decoding cost like real footage)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    boxes = [(rng.integers(0, height // 2), rng.integers(0, width // 2), rng.integers(20, height // 2),
              rng.integers(20, width // 2), rng.integers(60, 255, 3)) for _ in range(4)]
    for t in range(n):
        img = background.copy()
        for k, (y, x, h, w, colour) in enumerate(boxes):
            dx = (t * (k + 1)) % max(1, width - x - w)
            img[y:y + h, x + dx:x + dx + w] = colour
        yield img


def write_video(path: Path, n: int, height: int, width: int) -> Path:
    write_mp4(path, synthetic_frames(n, height, width), fps=24)
    return path


def make_detector(device: str, batch_size: int):
    import torch

    from clawcrane.build.detectors import new_detector_model as build_model
    from clawcrane.pipeline.maskrcnn import MaskRCNNDetector, model_spec

    torch.manual_seed(0)
    model = build_model("lite", num_classes=NUM_CLASSES)
    return MaskRCNNDetector(model=model, spec=model_spec("lite", num_classes=NUM_CLASSES), weights_key="bench-random",
                            device=device, batch_size=batch_size)


def one_video_dataset(path: Path) -> Dataset:
    info = Mp4Frames(path).info()
    video = Video(path.stem, Mp4Frames(path), fps=info.fps, width=info.width, height=info.height, num_frames=info.num_frames)
    return Dataset(name="video", root=path.parent, videos={video.video_id: video}, queries=[],
                   fingerprint=file_fingerprint(path, full=True))


def run_stage(detector, dataset: Dataset, cache: Path, batch_size: int) -> float:
    from clawcrane.stages import detect as stage

    # score_threshold 0: every mask the (random) model proposes is deduplicated, encoded and stored
    cfg = DetectConfig(detector="bench", batch_size=batch_size, score_threshold=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    stage.run(cfg, dataset, cache, detector_factory=lambda *a, **k: detector, key_fn=lambda spec, ds: "bench")
    return time.perf_counter() - t0, time.process_time() - c0


def bare_forward(detector, frames: list[np.ndarray], video_id: str, batch_size: int, keep: dict | None = None):
    """(wall s, process CPU s) of the detector alone over pre-decoded frames; ``keep`` collects outputs."""
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(0, len(frames), batch_size):
        chunk = frames[s:s + batch_size]
        refs = [(video_id, s + i) for i in range(len(chunk))]
        out = detector.detect(chunk, refs)
        if keep is not None:
            keep.update(zip(refs, out))
    return time.perf_counter() - t0, time.process_time() - c0


class ReplayDetector(Detector):
    """Returns recorded outputs at no model cost: the stage's own work (decode, postprocess, RLE, write)."""

    name = "replay"

    def __init__(self, outputs: dict):
        self.outputs = outputs

    def key(self) -> str:
        return "replay"

    def detect(self, frames, refs):
        return [self.outputs[r] for r in refs]


def rss_child(video: Path, args) -> None:
    """Subprocess body: detect over one video, print peak RSS (KiB) as JSON."""
    det = make_detector(args.device, args.batch_size)
    ds = one_video_dataset(video)
    with tempfile.TemporaryDirectory() as tmp:
        seconds, _ = run_stage(det, ds, Path(tmp), args.batch_size)
    print(json.dumps({"frames": ds.videos[video.stem].num_frames, "seconds": seconds,
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=120, help="frames of the timing video")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", default="320x240", help="WxH of the synthetic video")
    ap.add_argument("--repeat", type=int, default=2, help="timing repetitions (the minimum counts)")
    ap.add_argument("--rss-frames", default="50,500", help="video lengths for the memory check")
    ap.add_argument("--only", choices=("all", "ratio", "rss"), default="all", help="run one part of the bench")
    ap.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("CLAWCRANE_PROGRESS", "0")
    if args.rss_child:
        rss_child(Path(args.rss_child), args)
        return
    width, height = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only != "rss":
            timing(args, tmp, height, width)
        if args.only != "ratio":
            memory(args, tmp, height, width)


def timing(args, tmp: Path, height: int, width: int) -> None:
    """Part 1: detect wall time over the bare forward on the same frames."""
    video = write_video(tmp / "bench.mp4", args.frames, height, width)
    ds = one_video_dataset(video)
    det = make_detector(args.device, args.batch_size)
    frames = [f for _, f in ds.videos["bench"].iter_frames()]
    det.detect(frames[: args.batch_size], [("bench", i) for i in range(args.batch_size)])  # warm-up
    bare, full, own = [], [], []
    outputs: dict = {}
    for r in range(args.repeat):
        bare.append(bare_forward(det, frames, "bench", args.batch_size, keep=outputs if r == 0 else None))
        full.append(run_stage(det, ds, tmp / f"cache{r}", args.batch_size))
        own.append(run_stage(ReplayDetector(outputs), ds, tmp / f"replay{r}", args.batch_size))
    wall = min(w for w, _ in full) / min(w for w, _ in bare)
    cpu = min(c for _, c in full) / min(c for _, c in bare)
    print(f"device: {det.device}  video: {args.frames} frames {width}x{height}  batch: {args.batch_size}  "
          f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, runs in (("bare forward", bare), ("detect stage", full)):
        w = min(x for x, _ in runs)
        print(f"{name}: {w:.2f} s wall ({args.frames / w:.2f} frames/s)  runs (wall s, process cpu s): "
              f"{[(round(a, 2), round(b, 2)) for a, b in runs]}")
    print(f"ratio detect / bare forward, wall time: {wall:.3f}  (target <= 1.15: {'ok' if wall <= 1.15 else 'MISSED'})")
    print(f"ratio detect / bare forward, process CPU time (all threads): {cpu:.3f}")
    o = min(w for w, _ in own)
    print(f"stage without the model (replayed outputs): {o:.2f} s wall, {min(c for _, c in own):.2f} s CPU "
          f"-> overhead bound without any overlap: {1 + o / min(w for w, _ in bare):.3f}")
    del outputs, frames


def memory(args, tmp: Path, height: int, width: int) -> None:
    """Part 2: peak RSS of detect on short and long videos, each in a fresh subprocess."""
    peaks = {}
    for n in (int(x) for x in args.rss_frames.split(",")):
        v = write_video(tmp / f"rss{n}.mp4", n, height, width)
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(v), "--batch-size", str(args.batch_size),
                              "--device", args.device], capture_output=True, text=True, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[n] = rec["peak_rss_kib"]
        print(f"peak RSS, {n}-frame video: {rec['peak_rss_kib'] / 1024:.1f} MiB  ({rec['seconds']:.1f} s)")
    lo, hi = min(peaks.values()), max(peaks.values())
    print(f"peak RSS spread: {(hi - lo) / lo * 100:.1f}%  (target <= 10%: {'ok' if hi <= 1.10 * lo else 'MISSED'})")


if __name__ == "__main__":
    main()
