"""Ref-YouTube-VOS reader, train-style folders (``../shared/datasets.md`` §4).

```
ROOT/<split>/JPEGImages/<vid>/<frame>.jpg
ROOT/<split>/Annotations/<vid>/<frame>.png             palette PNG, pixel value = object id (train only)
ROOT/meta_expressions/<split>/meta_expressions.json    {"videos": {vid: {"expressions": {exp_id:
                                                         {"exp": str, "obj_id": "1"}}, "frames": [...]}}}
```
Frame indices are positions in the video's ``frames`` list (the JPEG folder holds every 5th frame
of the 30 fps source, so ``00005.jpg`` is frame 1). A query is one expression: id
``<vid>_<exp_id>``, target instance ``obj_id``, samples = every frame with an Annotations PNG
(the target may be absent there: its mask is then empty, as the J&F protocol scores it). A split
without Annotations (valid, test) gives queries without ground truth. Splits keep their folder
names ('train', 'valid', 'test').
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from clawcrane.datasets.records import Dataset, Instance, Query, Video, normalise_sentence
from clawcrane.datasets.validate import Problem, log_summary, problem
from clawcrane.datasets.video_io import ImageFolderFrames, MissingFrames
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import tree_fingerprint

log = logging.getLogger(__name__)

META = "meta_expressions"
FPS = 6.0
"""Every 5th frame of 30 fps YouTube clips."""
FINGERPRINT_SAMPLE_BYTES = 4096
MASK_CACHE_FRAMES = 64


def ytvos_splits(root: Path) -> list[str]:
    """Splits that have ``meta_expressions/<split>/meta_expressions.json``."""
    base = root / META
    if not base.is_dir():
        return []
    return sorted(s for s in os.listdir(base) if (base / s / "meta_expressions.json").is_file())


def is_ytvos(root: Path) -> bool:
    return (root / META).is_dir() or any((root / s / "JPEGImages").is_dir() for s in ("train", "valid", "test"))


def read_index_png(path: Path) -> np.ndarray:
    """(H, W) uint8 object ids of an Annotations PNG (palette indices, not colours)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise DataError(
                    f"{path}: PNG mode is {img.mode}, expected a palette (P) or grey (L) image of object ids; "
                    "re-export it"
                )
            return np.array(img)
    except OSError as err:
        raise DataError(f"{path}: unreadable PNG ({err.__class__.__name__}); replace the file") from None


class YtvosMasks:
    """Lazy ground truth: object-id maps read on demand, the last few cached."""

    def __init__(self, root: Path, cache_frames: int = MASK_CACHE_FRAMES):
        self.root = Path(root)
        self.frames: dict[str, tuple[str, tuple[str, ...]]] = {}
        """video_id -> (split, frame names) for videos with Annotations."""
        self.cache_frames = cache_frames
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"root": self.root, "frames": self.frames, "cache_frames": self.cache_frames}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"], state["cache_frames"])
        self.frames = state["frames"]

    def png(self, video_id: str, frame: int) -> Path:
        split, names = self.frames[video_id]
        return self.root / split / "Annotations" / video_id / f"{names[frame]}.png"

    def id_map(self, video_id: str, frame: int) -> np.ndarray:
        key = (video_id, int(frame))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        ids = read_index_png(self.png(video_id, frame))
        self._cache[key] = ids
        if len(self._cache) > self.cache_frames:
            self._cache.popitem(last=False)
        return ids

    def mask(self, video_id: str, obj_id: str, frame: int) -> np.ndarray:
        return self.id_map(video_id, frame) == int(obj_id)

    def __call__(self, video_id: str, frame: int) -> list[Instance]:
        if video_id not in self.frames:
            return []  # a split without Annotations
        ids = self.id_map(video_id, frame)
        return [Instance(str(int(v)), ids == v, 0) for v in np.unique(ids) if v != 0]


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the image header."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except OSError as err:
        raise DataError(f"{path}: unreadable image ({err.__class__.__name__}); replace the file") from None


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
        videos = meta["videos"]
        if not isinstance(videos, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(
            f'{path}: not a meta_expressions file ({{"videos": {{vid: {{"expressions": ..., "frames": ...}}}}}}); '
            "fix or replace it"
        ) from None
    return videos


def _sort_key(exp_id: str) -> tuple[int, str]:
    return (int(exp_id), "") if str(exp_id).isdigit() else (1 << 30, str(exp_id))


def read_ytvos(root: str | os.PathLike, *, split: str | None = None, frames: bool = True) -> Dataset:
    """Read a Ref-YouTube-VOS folder (``split``: one of its splits, or None for all).

    ``frames``: whether the caller decodes frames. When it does (the default) a video whose JPEG
    folder is missing is left out, as a problem. With ``frames=False`` it is kept when
    meta_expressions.json lists its frames (its size is its first Annotations PNG's, 0x0 without
    one) and decoding a frame raises a one-line ``DataError`` naming the folder.
    """
    root = Path(root)
    splits = ytvos_splits(root)
    if not splits:
        raise DataError(
            f"{root / META}: no <split>/meta_expressions.json found; "
            "a Ref-YouTube-VOS folder needs meta_expressions/train/meta_expressions.json"
        )
    if split is not None and split not in splits:
        raise ConfigError(
            f"{root}: Ref-YouTube-VOS split {split!r} not found (has {', '.join(splits)}); "
            "pass one of them with --split"
        )
    problems: list[Problem] = []
    videos: dict[str, Video] = {}
    queries: list[Query] = []
    annotated: dict[str, tuple[int, ...]] = {}
    masks = YtvosMasks(root)
    text, media, annotation_files, video_list = [], [], [], []
    missing_media: dict[str, Path] = {}
    for s in [split] if split else splits:
        meta_path = root / META / s / "meta_expressions.json"
        text.append(meta_path)
        for vid, info in _read_meta(meta_path).items():
            jpg_dir = root / s / "JPEGImages" / vid
            if vid in videos:
                problems.append(
                    problem(
                        meta_path,
                        f"video {vid} is also in another split (skipped here)",
                        "keep each video in one split",
                    )
                )
                continue
            ann_dir = root / s / "Annotations" / vid
            has_gt = ann_dir.is_dir()
            pngs = {p.stem: p for p in ann_dir.iterdir() if p.suffix.lower() == ".png"} if has_gt else {}
            video_list.append(f"{s}/{vid}")
            annotation_files += list(pngs.values())
            listed = [str(n) for n in info.get("frames", [])] if isinstance(info, dict) else []
            if not jpg_dir.is_dir():
                missing_media[vid] = jpg_dir
                if frames or not listed:
                    problems.append(
                        problem(
                            jpg_dir,
                            "frame folder is missing (video skipped)" if frames else
                            "frame folder is missing and meta_expressions.json lists no frames (video skipped)",
                            "put the JPEG frames there or remove the video from meta_expressions.json",
                        )
                    )
                    continue
                names = listed
                files = [jpg_dir / f"{n}.jpg" for n in names]
                first = next((pngs[n] for n in names if n in pngs), None)
                try:
                    H, W = _image_size(first) if first is not None else (0, 0)
                except DataError as err:
                    problems.append(Problem(str(err)))
                    continue
                source = MissingFrames(jpg_dir, "frame folder is missing", files)
            else:
                jpgs = {p.stem: p for p in jpg_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")}
                names = listed or sorted(jpgs)
                lost = [n for n in names if n not in jpgs]
                if lost or not names:
                    shown = ", ".join(lost[:3]) + (" ..." if len(lost) > 3 else "")
                    problems.append(
                        problem(
                            jpg_dir,
                            f"frames listed in meta_expressions.json are missing ({shown or 'no frames'}); video skipped",
                            "restore the JPEG files",
                        )
                    )
                    continue
                files = [jpgs[n] for n in names]
                try:
                    H, W = _image_size(files[0])
                except DataError as err:
                    problems.append(Problem(str(err)))
                    continue
                source = ImageFolderFrames(jpg_dir, files)
                media += files
            videos[vid] = Video(vid, source, FPS, W, H, len(files), s)
            frames_gt: tuple[int, ...] = ()
            if has_gt:
                position = {n: i for i, n in enumerate(names)}
                frames_gt = tuple(sorted(position[n] for n in pngs if n in position))
                stray = sorted(n for n in pngs if n not in position)
                if stray:
                    problems.append(
                        problem(
                            ann_dir,
                            f"masks {', '.join(stray[:3])} have no JPEG frame in the list (ignored)",
                            "delete them or add the frames",
                        )
                    )
                annotated[vid] = frames_gt
                masks.frames[vid] = (s, tuple(names))
                media += list(pngs.values())
            for exp_id, exp in sorted(info.get("expressions", {}).items(), key=lambda kv: _sort_key(kv[0])):
                where = f"{meta_path} (video {vid}, expression {exp_id})"
                sentence = normalise_sentence(exp.get("exp", "") if isinstance(exp, dict) else "")
                if not sentence:
                    problems.append(problem(where, "empty expression", "write the sentence or delete the expression"))
                    continue
                obj = exp.get("obj_id")
                obj = None if obj is None else str(obj).strip()
                if has_gt and (obj is None or not obj.isdigit()):
                    problems.append(
                        problem(where, f"obj_id is {obj!r}, expected the object's integer id", "fix obj_id")
                    )
                    continue
                queries.append(
                    Query(
                        query_id=f"{vid}_{exp_id}",
                        video_id=vid,
                        sentence=sentence,
                        instance_id=obj,
                        frames=frames_gt if has_gt else (),
                        split=s,
                        mask_loader=functools.partial(masks.mask, vid, obj) if has_gt else None,
                    )
                )
    text_fp = tree_fingerprint(root, text)
    h = hashlib.sha256(b"ytvos-layout-v1")
    h.update(text_fp.encode())
    h.update(tree_fingerprint(root, media, sample_bytes=FINGERPRINT_SAMPLE_BYTES).encode())
    # the annotations alone: the expressions, the video list and every Annotations PNG (no JPEG)
    a = hashlib.sha256(b"ytvos-annotations-v1")
    a.update(text_fp.encode())
    a.update("\n".join(video_list).encode())
    a.update(tree_fingerprint(root, annotation_files, sample_bytes=FINGERPRINT_SAMPLE_BYTES).encode())
    dataset = Dataset(
        name="ytvos",
        root=root,
        videos=videos,
        queries=queries,
        annotated_frames=annotated,
        instance_loader=masks,
        fingerprint=h.hexdigest(),
        problems=list(problems),
        annotation_fingerprint=a.hexdigest(),
        missing_media=missing_media,
    )
    log_summary(dataset)
    return dataset
