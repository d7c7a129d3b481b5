"""Candidate proposers behind one interface: frames in, per-frame masks/boxes/scores/classes out.

Implementations: ``MaskRCNNDetector`` (``pipeline/maskrcnn.py``: the trained lite model or
torchvision's COCO R50-FPN), ``OracleDetector`` (ground-truth instances of annotated frames) and
``ImportDetector`` (masks made by any other system, parsed by ``cache.imports``). ``postprocess``
applies the stage's threshold, duplicate removal and per-frame cap identically to all of them;
``candidate_recall`` measures how many GT instances the candidates cover.

Pure: no file is read here. ``build.detectors`` turns a ``--detector`` value into one of these
(and its cache key) by reading checkpoints, weight files and imported masks.
"""

from __future__ import annotations

import dataclasses

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from clawcrane.errors import ConfigError
from clawcrane.fingerprint import hash_json
from clawcrane.pipeline import masks as mask_ops

log = logging.getLogger(__name__)

InstanceLoader = Callable[[str, int], list]
"""(video_id, frame) -> the ``Instance`` records annotated in that frame."""


@dataclass
class FrameCandidates:
    """Candidates of one frame, at the frame's original resolution."""

    masks: np.ndarray
    """(K, H, W) bool."""
    boxes: np.ndarray
    """(K, 4) float32 x1, y1, x2, y2 in pixels."""
    scores: np.ndarray
    """(K,) float32 in [0, 1]."""
    class_ids: np.ndarray
    """(K,) int32."""
    track_ids: np.ndarray | None = None
    """(K,) int32 track id given by the proposer (imports of trackers), -1 for none; None: no proposer ids."""
    class_names: list[str] | None = None
    """K class texts given by the proposer ("" for none); None: the proposer names no classes."""

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, height: int, width: int) -> FrameCandidates:
        return cls(
            masks=np.zeros((0, height, width), bool),
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int32),
        )

    def select(self, rows: np.ndarray) -> FrameCandidates:
        rows = np.asarray(rows, dtype=np.int64)
        return FrameCandidates(self.masks[rows], self.boxes[rows], self.scores[rows], self.class_ids[rows],
                               track_ids=None if self.track_ids is None else self.track_ids[rows],
                               class_names=None if self.class_names is None else [self.class_names[int(r)] for r in rows])


class Detector(ABC):
    """Proposes candidate objects for a batch of frames."""

    name: str = "detector"
    needs_pixels: bool = True
    """False: ``detect`` never looks at pixels; the stage then skips decoding and passes ``None`` frames."""
    exact: bool = False
    """True: candidates are final (ground truth); the stage keeps them all (no threshold, dedup or cap)."""

    @abstractmethod
    def key(self) -> str:
        """Fingerprint of the weights and every output-affecting detector setting."""

    @abstractmethod
    def detect(self, frames: list[np.ndarray], refs: list[tuple[str, int]]) -> list[FrameCandidates]:
        """``frames``: RGB uint8 (H, W, 3) (``None`` when ``needs_pixels`` is False); ``refs``:
        (video_id, frame index) of each frame. One entry per frame, masks at the frame's resolution."""

    def wants_frame(self, video_id: str, frame: int) -> bool:
        """Whether this detector has anything to say about a frame (the oracle: annotated ones)."""
        return True


def postprocess(
    fc: FrameCandidates, *, score_threshold: float, max_per_frame: int, dedup_iou: float
) -> FrameCandidates:
    """Keep candidates with score >= threshold and a non-empty mask, drop duplicates, cap to K.

    Duplicates: greedily, in descending score, a mask whose IoU with an already kept mask exceeds
    ``dedup_iou`` is dropped (mask NMS). Output rows are in descending score order.
    """
    return postprocess_rles(fc, score_threshold=score_threshold, max_per_frame=max_per_frame, dedup_iou=dedup_iou)[0]


def postprocess_rles(
    fc: FrameCandidates, *, score_threshold: float, max_per_frame: int, dedup_iou: float
) -> tuple[FrameCandidates, list[dict]]:
    """``postprocess`` plus the kept masks as COCO RLE (encoded once, for dedup and for storage)."""
    K, H, W = fc.masks.shape  # (K, H, W) candidates, height, width
    if K == 0:
        return fc, []
    nonempty = fc.masks.reshape(K, -1).any(axis=1)
    keep0 = np.flatnonzero((fc.scores >= score_threshold) & nonempty)
    order = keep0[np.argsort(-fc.scores[keep0], kind="stable")]
    if len(order) == 0:
        return FrameCandidates.empty(H, W), []
    rles = mask_ops.encode_many(fc.masks[order])
    if dedup_iou >= 1.0:  # IoU never exceeds 1: nothing is a duplicate
        kept = list(range(min(len(order), max_per_frame)))
    else:
        iou = mask_ops.iou_matrix(rles, rles)  # (k, k)
        kept = []
        for i in range(len(order)):
            if len(kept) >= max_per_frame:
                break
            if kept and iou[i, kept].max() > dedup_iou:
                continue
            kept.append(i)
    return fc.select(order[kept]), [rles[i] for i in kept]


def candidate_recall(gt_rles: Sequence[dict], cand_rles: Sequence[dict], iou_threshold: float = 0.5) -> int:
    """How many of one frame's GT instances are covered by a candidate with mask IoU >= threshold."""
    if len(gt_rles) == 0 or len(cand_rles) == 0:
        return 0
    iou = mask_ops.iou_matrix(gt_rles, cand_rles)  # (G, K) GT instances x candidates
    return int((iou.max(axis=1) >= iou_threshold).sum())


def fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H', W') mask -> (H, W) bool, nearest-neighbour resized when the sizes differ."""
    if mask.shape == (height, width):
        return mask.astype(bool, copy=False)
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def _frame_candidates(masks: Sequence[np.ndarray], scores, class_ids, height: int, width: int, *,
                      track_ids=None, class_names: Sequence[str] | None = None) -> FrameCandidates:
    """Masks of one frame (any size) -> FrameCandidates at (H, W) with tight boxes."""
    if len(masks) == 0:
        fc = FrameCandidates.empty(height, width)
        if track_ids is not None:
            fc.track_ids = np.zeros(0, np.int32)
        if class_names is not None:
            fc.class_names = []
        return fc
    m = np.stack([fit_mask(x, height, width) for x in masks])  # (K, H, W)
    return FrameCandidates(
        masks=m,
        boxes=np.stack([mask_ops.tight_box(x) for x in m]).astype(np.float32),
        scores=np.asarray(scores, np.float32).reshape(-1),
        class_ids=np.asarray(class_ids, np.int32).reshape(-1),
        track_ids=None if track_ids is None else np.asarray(track_ids, np.int32).reshape(-1),
        class_names=None if class_names is None else [str(c) for c in class_names],
    )


class OracleDetector(Detector):
    """The ground truth as candidates: every annotated instance of an annotated frame, score 1.0.

    An upper bound for the retrieval head (and a way to test it without a trained segmenter).
    Only annotated frames are visited (``wants_frame``); pixels are never needed.
    """

    name = "oracle"
    needs_pixels = False
    exact = True

    def __init__(
        self,
        *,
        instance_loader: InstanceLoader,
        annotated_frames: Mapping[str, Sequence[int]],
        fingerprint: str,
        sizes: Mapping[str, tuple[int, int]],
    ):
        self.instance_loader = instance_loader
        self.annotated = {v: frozenset(int(f) for f in fs) for v, fs in annotated_frames.items()}
        self.fingerprint = fingerprint
        self.sizes = dict(sizes)

    @classmethod
    def from_dataset(cls, dataset) -> OracleDetector:
        if not any(dataset.annotated_frames.values()) or dataset.instance_loader is None:
            raise ConfigError(
                f"{dataset.root}: has no instance annotations, so the oracle detector has nothing to return; "
                "use a trained checkpoint, r50-fpn or import:PATH"
            )
        return cls(
            instance_loader=dataset.instance_loader,
            annotated_frames=dataset.annotated_frames,
            fingerprint=dataset.fingerprint,
            sizes={v: (video.height, video.width) for v, video in dataset.videos.items()},
        )

    @staticmethod
    def key_for(fingerprint: str) -> str:
        return hash_json({"detector": "oracle", "version": 1, "dataset": fingerprint})

    def key(self) -> str:
        return self.key_for(self.fingerprint)

    def wants_frame(self, video_id: str, frame: int) -> bool:
        return frame in self.annotated.get(video_id, ())

    def detect(self, frames, refs) -> list[FrameCandidates]:
        out = []
        for video_id, frame in refs:
            H, W = self.sizes[video_id]
            inst = self.instance_loader(video_id, frame) if self.wants_frame(video_id, frame) else []
            out.append(_frame_candidates([i.mask for i in inst], [1.0] * len(inst), [i.class_id for i in inst], H, W))
        return out


class MaskSource(Protocol):
    """Masks made by another system, already parsed (``cache.imports``)."""

    key: str
    """Fingerprint of the imported files."""

    def frames(self, video_id: str) -> frozenset[int]:
        """Frames of ``video_id`` the import has an entry for (possibly with no masks)."""

    def read(self, video_id: str, frame: int):
        """An object with ``masks`` (K, H', W') bool, ``scores`` (K,), ``class_ids`` (K,), and
        optionally ``track_ids`` (K,) and ``class_names`` (K texts), None where the format has none."""


class ImportDetector(Detector):
    """Serves masks made by any other system (COCO-RLE JSON, id PNGs, .npy id maps, or the files
    Grounded-SAM-2, DEVA, SAM 2 and SAM 3 write).

    Only frames the import has an entry for are visited. Masks of another size than the video are
    resized (nearest neighbour) to the video's resolution. Track ids and class texts the source
    gives ride along with the candidates (``FrameCandidates.track_ids`` / ``class_names``).
    """

    name = "import"
    needs_pixels = False

    def __init__(self, source: MaskSource, sizes: Mapping[str, tuple[int, int]]):
        self.source = source
        self.sizes = dict(sizes)
        self._resized: set[str] = set()

    def key(self) -> str:
        return hash_json({"detector": "import", "version": 1, "files": self.source.key})

    def wants_frame(self, video_id: str, frame: int) -> bool:
        return frame in self.source.frames(video_id)

    def detect(self, frames, refs) -> list[FrameCandidates]:
        out = []
        for video_id, frame in refs:
            H, W = self.sizes[video_id]
            if not self.wants_frame(video_id, frame):
                out.append(FrameCandidates.empty(H, W))
                continue
            got = self.source.read(video_id, frame)
            if len(got.masks) and got.masks.shape[1:] != (H, W) and video_id not in self._resized:
                self._resized.add(video_id)
                log.warning("imported masks of %s are %s, the video is %dx%d; resizing (nearest)",
                            video_id, "x".join(map(str, got.masks.shape[1:])), H, W)
            out.append(_frame_candidates(list(got.masks), got.scores, got.class_ids, H, W,
                                         track_ids=getattr(got, "track_ids", None),
                                         class_names=getattr(got, "class_names", None)))
        return out


def refine_candidates(frame: np.ndarray, fc: FrameCandidates, *, method: str, min_score: float) -> FrameCandidates:
    """``fc`` with the masks of candidates scoring >= ``min_score`` refined on ``frame`` (``mask_refine``).

    Candidates below ``min_score`` are left as they are: the detect stage drops them next.
    """
    from clawcrane.pipeline.mask_refine import refine_masks

    keep = np.flatnonzero(fc.scores >= min_score)
    if method == "none" or len(keep) == 0:
        return fc
    masks = fc.masks.copy()
    masks[keep] = refine_masks(frame, fc.masks[keep], method=method)
    return dataclasses.replace(fc, masks=masks)
