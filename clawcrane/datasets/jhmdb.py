"""J-HMDB-Sentences reader (``../shared/datasets.md`` §2): test only, evaluated with an A2D model.

```
ROOT/Rename_Images/<action>/<video_id>/00001.png ...     1-based frames
ROOT/puppet_mask/<action>/<video_id>/puppet_mask.mat     part_mask (H, W, T), MATLAB v5
ROOT/jhmdb_annotation.txt                                header video_id,query
ROOT/jhmdb_sentences_samples_metadata.json               optional: MTTR's reference sample list
```
Mask k belongs to PNG k; frames past T have no mask. Three frames per video are samples. MTTR
draws them with ``sorted(random.sample(masked_frames, 3))`` (unseeded) and saves the draw as
``jhmdb_sentences_samples_metadata.json`` (entries ``[video_id, frame_png, mask_mat, T, query]``);
published numbers use that file, so the reader takes its frames when the file is present. Without
it the reader draws the same way with a per-video seed (reproducible, not MTTR's exact draw).

Query ids are ``<video_id>_<k>``: the k-th sentence (1-based) of the video; the puppet's instance
id is ``"1"``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import scipy.io

from clawcrane.datasets.a2d import read_table
from clawcrane.datasets.records import Dataset, Instance, Query, Video, normalise_sentence
from clawcrane.datasets.validate import Problem, log_summary, problem
from clawcrane.datasets.video_io import ImageFolderFrames, MissingFrames
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import file_fingerprint, tree_fingerprint

log = logging.getLogger(__name__)

SENTENCES = "jhmdb_annotation.txt"
FRAMES = "Rename_Images"
MASKS = "puppet_mask"
SAMPLES_METADATA = "jhmdb_sentences_samples_metadata.json"
FRAMES_PER_VIDEO = 3
FPS = 30.0
"""J-HMDB frames come from 30 fps clips; the folders carry no rate."""
INSTANCE_ID = "1"
FINGERPRINT_SAMPLE_BYTES = 8192


def is_jhmdb(root: Path) -> bool:
    return (root / SENTENCES).is_file() or ((root / FRAMES).is_dir() and (root / MASKS).is_dir())


def choose_frames(video_id: str, num_masked: int, *, k: int = FRAMES_PER_VIDEO, seed: int = 0) -> tuple[int, ...]:
    """``k`` distinct 0-based frames among the first ``num_masked``, drawn as MTTR does (uniformly,
    sorted) but seeded by ``(seed, video_id)`` so that every run draws the same frames."""
    rng = random.Random(f"{seed}:{video_id}")
    return tuple(sorted(rng.sample(range(num_masked), min(k, num_masked))))


def read_samples_metadata(path: Path, problems: list[Problem]) -> dict[str, tuple[int, ...]]:
    """video_id -> 0-based sampled frames from MTTR's ``jhmdb_sentences_samples_metadata.json``."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(
            f"{path}: not a readable JSON sample list ({err.__class__.__name__}); fix or remove the file"
        ) from None
    if not isinstance(entries, list):
        raise DataError(
            f"{path}: expected a JSON list of [video_id, frame_png, mask_mat, T, query]; fix or remove the file"
        )
    out: dict[str, set[int]] = defaultdict(set)
    for i, e in enumerate(entries):
        stem = Path(str(e[1])).stem if isinstance(e, list) and len(e) == 5 else ""
        if not stem.isdigit() or int(stem) < 1:
            problems.append(
                problem(
                    f"{path} (entry {i})",
                    f"expected [video_id, .../00001.png, mask_mat, T, query], got {e!r:.80}",
                    "fix or delete the entry",
                )
            )
            continue
        out[str(e[0])].add(int(stem) - 1)
    return {v: tuple(sorted(f)) for v, f in out.items()}


def _frame_number(path: Path) -> tuple[int, str]:
    """Sort key of ``00012.png``: its number, then its name."""
    return (int(path.stem) if path.stem.isdigit() else -1, path.name)


def _index_folders(base: Path, depth_name: str | None) -> dict[str, Path]:
    """video_id -> ``base/<action>/<video_id>`` (plus ``/depth_name`` when given) that exist."""
    out = {}
    if not base.is_dir():
        return out
    for action in sorted(os.listdir(base)):
        adir = base / action
        if not adir.is_dir():
            continue
        for vid in sorted(os.listdir(adir)):
            p = adir / vid / depth_name if depth_name else adir / vid
            if p.exists():
                out[vid] = p
    return out


def _mask_shape(path: Path) -> tuple[int, int, int]:
    """(T, H, W) of ``part_mask`` from the file's variable headers (no mask data is converted)."""
    try:
        variables = {name: shape for name, shape, _ in scipy.io.whosmat(str(path))}
    except Exception as err:  # scipy raises several types for unreadable files
        raise DataError(f"{path}: not a readable MATLAB .mat file ({err.__class__.__name__}); re-extract it") from None
    if "part_mask" not in variables:
        raise DataError(f"{path}: has no 'part_mask' variable; re-extract puppet_mask.mat for this video")
    shape = variables["part_mask"]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) != 3:
        raise DataError(f"{path}: 'part_mask' has shape {shape}, expected (H, W, T); re-extract it")
    return shape[2], shape[0], shape[1]


class JhmdbMasks:
    """Lazy puppet masks: ``(video_id, frame) -> [Instance("1", mask)]``, a few videos cached."""

    def __init__(self, mat_files: dict[str, Path], cache_videos: int = 8):
        self.mat_files = dict(mat_files)
        self.cache_videos = cache_videos
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"mat_files": self.mat_files, "cache_videos": self.cache_videos}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["mat_files"], state["cache_videos"])

    def video_masks(self, video_id: str) -> np.ndarray:
        """(T, H, W) bool."""
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        path = self.mat_files[video_id]
        try:
            part = np.asarray(scipy.io.loadmat(str(path))["part_mask"])
        except Exception as err:
            raise DataError(f"{path}: cannot read 'part_mask' ({err.__class__.__name__}); re-extract it") from None
        if part.ndim == 2:
            part = part[:, :, None]
        masks = np.ascontiguousarray(part.transpose(2, 0, 1) > 0)  # (H, W, T) -> (T, H, W)
        self._cache[video_id] = masks
        if len(self._cache) > self.cache_videos:
            self._cache.popitem(last=False)
        return masks

    def mask(self, video_id: str, frame: int) -> np.ndarray:
        masks = self.video_masks(video_id)
        if not 0 <= frame < len(masks):
            raise DataError(
                f"{self.mat_files[video_id]}: no mask for frame {frame} (part_mask has {len(masks)}); "
                "only masked frames are samples"
            )
        return masks[frame]

    def __call__(self, video_id: str, frame: int) -> list[Instance]:
        return [Instance(INSTANCE_ID, self.mask(video_id, frame), 0)]


def read_jhmdb(
    root: str | os.PathLike,
    *,
    split: str | None = None,
    samples_metadata: str | os.PathLike | None = None,
    frames_per_video: int = FRAMES_PER_VIDEO,
    seed: int = 0,
    frames: bool = True,
) -> Dataset:
    """Read a J-HMDB-Sentences folder (every video is in the 'test' split).

    ``samples_metadata``: MTTR's sample list; default ``ROOT/jhmdb_sentences_samples_metadata.json``
    when it exists, else ``frames_per_video`` frames drawn per video by ``choose_frames``.

    ``frames``: whether the caller decodes frames. When it does (the default) a video without its
    PNG frames is left out, as a problem. With ``frames=False`` it is kept (its frame count and size
    are the puppet mask's) and decoding a frame raises a one-line ``DataError`` naming the folder.
    """
    root = Path(root)
    if split not in (None, "test"):
        raise ConfigError(f"{root}: J-HMDB-Sentences has only a 'test' split, not {split!r}; pass --split test")
    if not (root / SENTENCES).is_file():
        raise DataError(
            f"{root / SENTENCES}: missing; a J-HMDB-Sentences folder needs jhmdb_annotation.txt (header video_id,query)"
        )
    problems: list[Problem] = []
    rows = read_table(root / SENTENCES, ("video_id", "query"), problems)
    meta_path = Path(samples_metadata) if samples_metadata else root / SAMPLES_METADATA
    given = read_samples_metadata(meta_path, problems) if meta_path.is_file() else None
    if samples_metadata and given is None:
        raise DataError(f"{meta_path}: samples metadata file not found; check the path")
    frame_dirs = _index_folders(root / FRAMES, None)
    mat_files = _index_folders(root / MASKS, "puppet_mask.mat")

    videos: dict[str, Video] = {}
    missing_media: dict[str, Path] = {}
    masked: dict[str, int] = {}
    queries: list[Query] = []
    per_video: dict[str, int] = defaultdict(int)
    masks = JhmdbMasks({})
    for line, (vid, query) in rows:
        vid = vid.strip()
        where = f"{root / SENTENCES}:{line}"
        sentence = normalise_sentence(query)
        if not sentence:
            problems.append(problem(where, f"empty sentence for video {vid}", "write the sentence or delete the row"))
            continue
        if vid not in videos and vid not in masked:
            if vid not in frame_dirs and vid in mat_files:
                missing_media[vid] = root / FRAMES / mat_files[vid].parent.parent.name / vid
            if vid not in frame_dirs and (frames or vid not in mat_files):
                problems.append(
                    problem(
                        where,
                        f"no frame folder {FRAMES}/<action>/{vid}/ (video skipped)",
                        "put the PNG frames there or delete the row",
                    )
                )
                masked[vid] = -1
                continue
            if vid not in mat_files:
                problems.append(
                    problem(
                        where,
                        f"no {MASKS}/<action>/{vid}/puppet_mask.mat (video skipped)",
                        "put the mask file there or delete the row",
                    )
                )
                masked[vid] = -1
                continue
            folder = frame_dirs.get(vid) or missing_media[vid]
            pngs = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=_frame_number) if folder.is_dir() else []
            if not pngs:
                missing_media[vid] = folder
            try:
                T, H, W = _mask_shape(mat_files[vid])
            except DataError as err:
                problems.append(Problem(str(err)))
                masked[vid] = -1
                continue
            if not pngs and frames:
                problems.append(
                    problem(folder, "no PNG frames (video skipped)", "put the frames 00001.png ... there")
                )
                masked[vid] = -1
                continue
            if pngs:
                masked[vid] = min(T, len(pngs))
                videos[vid] = Video(vid, ImageFolderFrames(folder, pngs), FPS, W, H, len(pngs), "test")
            else:  # opened without the frames: the puppet mask gives the frame count and size
                what = "frame folder is missing" if vid not in frame_dirs else "frame folder holds no PNG frames"
                masked[vid] = T
                videos[vid] = Video(vid, MissingFrames(folder, what), FPS, W, H, T, "test")
            masks.mat_files[vid] = mat_files[vid]
        if masked[vid] < 0:
            continue
        frames = choose_frames(vid, masked[vid], k=frames_per_video, seed=seed)
        if given is not None:
            if vid in given:
                frames = tuple(f for f in given[vid] if f < masked[vid])
                if len(frames) < len(given[vid]):
                    problems.append(
                        problem(
                            meta_path,
                            f"video {vid} lists frames past its {masked[vid]} masked frames (dropped)",
                            "regenerate the sample list",
                        )
                    )
            else:
                problems.append(
                    problem(
                        meta_path,
                        f"video {vid} has no entry; drew {len(frames)} frames instead",
                        "regenerate the sample list",
                        warning=True,
                    )
                )
        per_video[vid] += 1
        queries.append(
            Query(
                query_id=f"{vid}_{per_video[vid]}",
                video_id=vid,
                sentence=sentence,
                instance_id=INSTANCE_ID,
                frames=frames,
                split="test",
                mask_loader=functools.partial(masks.mask, vid),
            )
        )
    if given is not None:
        for vid in sorted(set(given) - set(masked)):
            problems.append(
                problem(meta_path, f"video {vid} is not in {SENTENCES}", "regenerate the sample list", warning=True)
            )

    text = [p for p in (SENTENCES, SAMPLES_METADATA) if (root / p).is_file()]
    text_fp = tree_fingerprint(root, text)
    media = [p for vid in videos for p in (*videos[vid].source.files, mat_files[vid])]
    h = hashlib.sha256(b"jhmdb-layout-v1")
    h.update(text_fp.encode())
    h.update(tree_fingerprint(root, media, sample_bytes=FINGERPRINT_SAMPLE_BYTES).encode())
    h.update(f"{frames_per_video}:{seed}".encode())
    # the annotations alone: the sentences, the videos that have a puppet mask, and those masks (no frame)
    annotated = sorted({v for v in masked if v in mat_files})
    a = hashlib.sha256(b"jhmdb-annotations-v1")
    a.update(text_fp.encode())
    a.update("\n".join(annotated).encode())
    a.update(tree_fingerprint(root, [mat_files[v] for v in annotated], sample_bytes=FINGERPRINT_SAMPLE_BYTES).encode())
    a.update(f"{frames_per_video}:{seed}".encode())
    if given is not None:
        h.update(file_fingerprint(meta_path).encode())
        a.update(file_fingerprint(meta_path).encode())
    dataset = Dataset(
        name="jhmdb",
        root=root,
        videos=videos,
        queries=queries,
        annotated_frames={vid: tuple(range(masked[vid])) for vid in videos},
        instance_loader=masks,
        fingerprint=h.hexdigest(),
        problems=list(problems),
        annotation_fingerprint=a.hexdigest(),
        missing_media=missing_media,
    )
    log_summary(dataset)
    return dataset
