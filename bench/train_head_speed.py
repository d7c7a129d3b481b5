"""How much the feature cache speeds up head training: seconds per epoch, cached vs. recomputed.

    PYTHONPATH=. python bench/train_head_speed.py [--preset full] [--size small] [--recompute-batches 30]

1. Builds the synthetic benchmark (``--preset``), oracle candidates and the feature cache with
   flips through the CLI (skipped when present under ``--work``).
2. Times one training epoch of ``train-head`` over the cached tensors (loading excluded; it
   happens once per run).
3. Times the same batches when every batch first decodes its frames, runs the frozen backbone
   and mask-max-pools its candidates (what an epoch costs without the cache; a lower bound,
   since the paper also back-propagates into the CNN). This is measured on the first
   ``--recompute-batches`` batches and scaled to the epoch's batch count (0 = the whole epoch).

Prints both, and their ratio (target: >= 50x).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _head_bench import quiet_logging, synthetic_caches

from clawcrane.build.backbones import build_backbone, resolve_backbone
from clawcrane.build.heads import new_head, sized
from clawcrane.cache.features import candidates_of, open_features
from clawcrane.config import HEAD_SIZES, TrainHeadConfig
from clawcrane.datasets import open_dataset
from clawcrane.datasets.splits import train_val_split
from clawcrane.pipeline import pooling, positions
from clawcrane.pipeline.language import Vocabulary
from clawcrane.pipeline.losses import contrastive_loss
from clawcrane.pipeline.trainer import Trainer
from clawcrane.stages import train_head


def recompute_batch(idx, data, dataset, candidates, backbone, threshold):
    """The batch's inputs computed from frames: decode, backbone, mask pooling, positions."""
    refs = [data.refs[i] for i in idx.tolist()]
    frames = sorted(set(refs))
    images, feats, poss = [], {}, {}
    for vid, f in frames:
        images.append(dataset.videos[vid].read_frame(f))
    fmaps = backbone(backbone.preprocess(images))  # one (F, C_l, h_l, w_l) per level
    for j, (vid, f) in enumerate(frames):
        vc = candidates[vid]
        rows = vc.frame_rows(f)
        masks = vc.masks(rows)
        cells = [pooling.select_cells(pooling.mask_coverage(masks, hw), threshold) for hw in backbone.feature_sizes]
        frame_of = torch.zeros(len(rows), dtype=torch.long)
        feats[(vid, f)] = pooling.pool_levels([m[j : j + 1] for m in fmaps], cells, frame_of).float()
        poss[(vid, f)] = torch.from_numpy(positions.positions(positions.tight_boxes(masks, vc.boxes[rows]), vc.width, vc.height))
    B, N = len(refs), max(len(feats[r]) for r in refs)  # batch, candidates of the largest frame
    C = backbone.channels
    feat, pos, valid = torch.zeros(B, N, C), torch.zeros(B, N, 10), torch.zeros(B, N, dtype=torch.bool)
    for b, r in enumerate(refs):
        k = len(feats[r])
        feat[b, :k], pos[b, :k], valid[b, :k] = feats[r], poss[r], True
    sent = data.sentence[idx]
    lengths = data.text_lengths[sent]
    text = data.text[sent][:, : int(lengths.max())]
    return text, lengths, feat, pos, valid, data.target[idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench_out"))
    ap.add_argument("--preset", default="full")
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--levels", default="", help="extract --levels (comma-separated; default: the backbone's)")
    ap.add_argument("--size", choices=sorted(HEAD_SIZES), default="small")
    ap.add_argument("--recompute-batches", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: a tiny head gains nothing from more, and they spin on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_logging()
    data_dir, features_dir = synthetic_caches(args.work, preset=args.preset, backbone=args.backbone, levels=args.levels)

    dataset = open_dataset(data_dir)
    fc = open_features(features_dir)
    cands = candidates_of(fc)
    cfg = TrainHeadConfig(head=sized(args.size, position="full", relation="text"), device="cpu")
    split = train_val_split(dataset, cfg.val_fraction)
    vocab = Vocabulary.build([q.sentence for q in split.fit])
    t0 = time.perf_counter()
    prep = train_head.prepare(cfg, split, features=fc, candidates=cands, vocab=vocab)
    load_s = time.perf_counter() - t0
    train = prep.train
    C = int(train.feat.shape[1])
    hcfg = cfg.head

    trainer = Trainer(model=new_head(hcfg, vocab_size=len(vocab), feat_dim=C, seed=0), lr=cfg.lr, batch_size=cfg.batch_size)
    t0 = time.perf_counter()
    trainer.train_epoch(train)
    cached_s = time.perf_counter() - t0

    meta = fc.meta.get("config", {})
    spec = resolve_backbone(meta.get("backbone", args.backbone), meta.get("weights", "imagenet"), tuple(meta.get("levels", ())), int(meta.get("input_size", 320)))
    backbone = build_backbone(spec, "cpu")
    threshold = float(meta.get("mask_threshold", pooling.DEFAULT_THRESHOLD))
    videos = sorted({v for v, _ in train.refs})
    candidates = {v: cands.video(v) for v in videos}  # in memory, as for the cached epoch
    model = new_head(hcfg, vocab_size=len(vocab), feat_dim=C, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    n_batches = -(-len(train) // cfg.batch_size)
    todo = n_batches if args.recompute_batches <= 0 else min(args.recompute_batches, n_batches)
    t0 = time.perf_counter()
    for b in range(todo):
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        text, lengths, feat, pos, valid, target = recompute_batch(idx, train, dataset, candidates, backbone, threshold)
        loss = contrastive_loss(model(text, lengths, feat, pos, valid), valid, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recompute_s = (time.perf_counter() - t0) * n_batches / todo

    frames = len(set(train.refs))
    print(f"preset {args.preset}: {len(train)} train samples over {frames} frames, {n_batches} batches of {cfg.batch_size}; "
          f"backbone {spec.name if hasattr(spec, 'name') else meta.get('backbone')} C={C}; head size {args.size}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"load caches into memory (once per run): {load_s:.2f} s")
    print(f"epoch over the cache:                  {cached_s:.2f} s")
    scaled = "" if todo == n_batches else f" (measured on {todo} of {n_batches} batches, scaled)"
    print(f"epoch recomputing features from frames: {recompute_s:.1f} s{scaled}")
    print(f"speed-up: {recompute_s / cached_s:.0f}x (target >= 50x)")


if __name__ == "__main__":
    main()
