"""Reading masks made by another system (``clawcrane detect --detector import:PATH``).

Three formats, chosen by what PATH is:

* **COCO-RLE JSON** (a ``.json`` file): a list of records, one per mask::

      [{"video_id": "v1", "frame": 0, "score": 0.9, "category_id": 3,
        "segmentation": {"size": [H, W], "counts": "<COCO compressed RLE string>"}}, ...]

  ``frame`` is 0-based; ``score`` (default 1.0) and ``category_id`` (default 0) are optional;
  ``counts`` may also be an uncompressed run-length list. A record with ``"segmentation": null``
  marks a frame that was processed and has no mask.
* **id PNGs** (a folder): ``PATH/<video_id>/<frame:05d>.png``, palette or grayscale (8 or 16 bit),
  pixel value = instance id, 0 = background.
* **.npy id maps** (a folder): ``PATH/<video_id>/<frame:05d>.npy``, a 2-D integer array, same meaning.

Frame file names are 0-based frame indices. A frame with an entry is a processed frame; frames
without one are not visited. id-map instances get score 1.0 and class 0, ordered by id.

The files other systems write (``import:<kind>:PATH`` with kind ``gsam2``, ``deva``, ``sam2`` or
``sam3``) are read by ``cache.system_imports``; ``split_import`` tells the two spellings apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import file_fingerprint

log = logging.getLogger(__name__)

_FRAME_RE = re.compile(r"^(\d+)\.(png|npy)$")
_FIX_JSON = "each record needs video_id, frame (0-based), segmentation {size, counts}; see `clawcrane detect --help`"

IMPORT_KINDS = ("gsam2", "deva", "sam2", "sam3")
"""Systems whose own output files ``import:<kind>:PATH`` reads (``cache.system_imports``)."""


def split_import(value: str | os.PathLike) -> tuple[str | None, Path]:
    """The part after ``import:`` -> (kind or None for the generic formats, PATH)."""
    text = str(value)
    head, sep, rest = text.partition(":")
    if sep and head in IMPORT_KINDS:
        if not rest:
            raise ConfigError(f"--detector import:{head}: needs a path, e.g. import:{head}:outputs/")
        return head, Path(rest)
    return None, Path(text)


@dataclass
class ImportedFrame:
    """The imported masks of one frame."""

    masks: np.ndarray
    """(K, H, W) bool at the import's resolution."""
    scores: np.ndarray
    """(K,) float32."""
    class_ids: np.ndarray
    """(K,) int32."""
    track_ids: np.ndarray | None = None
    """(K,) int32 the system's object / track id (None: the format has none)."""
    class_names: list[str] | None = None
    """K class texts ("" where unknown; None: the format names no classes)."""


def import_format(path: str | os.PathLike) -> str:
    """'json' for a file, 'ids' for a folder of per-video id maps (PNG / .npy)."""
    p = Path(path)
    if p.is_file():
        return "json"
    if p.is_dir():
        return "ids"
    raise DataError(f"{p}: import path not found; pass a COCO-RLE .json file or a folder <video_id>/<frame:05d>.png|.npy, "
                    f"or another system's output as import:<{'|'.join(IMPORT_KINDS)}>:PATH")


def _id_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_file() and _FRAME_RE.match(p.name))


def import_fingerprint(path: str | os.PathLike) -> str:
    """Content fingerprint of the imported files (full hashes: masks are small and any edit matters)."""
    p = Path(path)
    if import_format(p) == "json":
        return file_fingerprint(p, full=True)
    h = hashlib.sha256()
    for f in _id_files(p):
        h.update(str(f.relative_to(p)).encode())
        h.update(file_fingerprint(f, full=True).encode())
    return h.hexdigest()


def read_id_map(path: str | os.PathLike) -> np.ndarray:
    """A PNG or .npy id map -> (H, W) integer array (0 = background)."""
    p = Path(path)
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(p) as im:
                if im.mode not in ("P", "L", "I", "I;16", "I;16B", "1"):
                    raise DataError(
                        f"{p}: is a {im.mode} PNG; save instance ids as a palette or grayscale PNG (pixel value = instance id)"
                    )
                arr = np.asarray(im)
    except DataError:
        raise
    except Exception as err:  # truncated file, not an image, pickled object array
        raise DataError(f"{p}: unreadable id map ({type(err).__name__}: {err}); rewrite or remove the file") from None
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise DataError(f"{p}: id map must be a 2-D integer array, got {arr.dtype} {arr.shape}; pixel value = instance id")
    return arr.astype(np.int64)


def id_map_to_frame(ids: np.ndarray) -> ImportedFrame:
    """(H, W) id map -> one mask per non-zero id, in ascending id order, score 1.0, class 0."""
    H, W = ids.shape  # (H, W) frame height, width
    labels = np.unique(ids)
    labels = labels[labels != 0]
    masks = ids[None] == labels[:, None, None]  # (K, H, W)
    K = len(labels)
    return ImportedFrame(masks=masks.reshape(K, H, W), scores=np.ones(K, np.float32), class_ids=np.zeros(K, np.int32))


def write_id_map(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write an (H, W) id map as PNG (8 or 16 bit grayscale) or .npy, by suffix (used by tests and tools)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".npy":
        np.save(p, np.asarray(ids))
        return
    from PIL import Image

    ids = np.asarray(ids)
    Image.fromarray(ids.astype(np.uint8) if ids.max(initial=0) < 256 else ids.astype(np.uint16)).save(p)


class IdMapImport:
    """A folder ``<video_id>/<frame:05d>.png|.npy``; frames are read when asked for."""

    def __init__(self, root: Path):
        self.root = root
        self._files: dict[str, dict[int, Path]] = {}
        for f in _id_files(root):
            frame = int(_FRAME_RE.match(f.name).group(1))
            per = self._files.setdefault(f.parent.name, {})
            if frame in per:
                raise DataError(f"{f}: frame {frame} of {f.parent.name} exists twice ({per[frame].name}); keep one")
            per[frame] = f
        if not self._files:
            raise DataError(f"{root}: no id maps found; expected <video_id>/<frame:05d>.png or .npy inside")
        self.key = import_fingerprint(root)

    def video_ids(self) -> list[str]:
        return sorted(self._files)

    def frames(self, video_id: str) -> frozenset[int]:
        return frozenset(self._files.get(video_id, {}))

    def read(self, video_id: str, frame: int) -> ImportedFrame:
        return id_map_to_frame(read_id_map(self._files[video_id][frame]))


def rle_from_json(seg: dict) -> dict:
    """A JSON segmentation ``{"size": [H, W], "counts": str | [run lengths]}`` -> compressed COCO RLE.

    Raises KeyError / TypeError / ValueError on a malformed one (callers turn them into DataError).
    """
    H, W = (int(x) for x in seg["size"])
    counts = seg["counts"]
    if isinstance(counts, list):  # uncompressed RLE -> compressed
        return mask_utils.frPyObjects({"size": [H, W], "counts": counts}, H, W)
    if not isinstance(counts, str):
        raise TypeError("segmentation.counts must be a string or a list of run lengths")
    return {"size": [H, W], "counts": counts.encode("ascii")}


class RleJsonImport:
    """A COCO-RLE JSON list; parsed at once, masks decoded when asked for."""

    def __init__(self, path: Path):
        self.path = path
        try:
            records = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: not valid JSON ({err}); {_FIX_JSON}") from None
        if not isinstance(records, list):
            raise DataError(f"{path}: top level must be a list of mask records; {_FIX_JSON}")
        self._frames: dict[str, dict[int, list[tuple[dict, float, int]]]] = {}
        for i, r in enumerate(records):
            try:
                video_id, frame, seg = str(r["video_id"]), r["frame"], r["segmentation"]
                if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
                    raise ValueError(f"frame {frame!r} is not a 0-based frame index (an integer >= 0)")
                score, cat = float(r.get("score", 1.0)), int(r.get("category_id", 0))
                if not 0.0 <= score <= 1.0:  # NaN fails too
                    raise ValueError(f"score {score!r} is not in [0, 1]")
                per = self._frames.setdefault(video_id, {}).setdefault(frame, [])
                if seg is not None:
                    per.append((rle_from_json(seg), score, cat))
            except (KeyError, TypeError, ValueError) as err:
                raise DataError(f"{path}: record {i} is malformed ({type(err).__name__}: {err}); {_FIX_JSON}") from None
        self.key = import_fingerprint(path)

    def video_ids(self) -> list[str]:
        return sorted(self._frames)

    def frames(self, video_id: str) -> frozenset[int]:
        return frozenset(self._frames.get(video_id, {}))

    def read(self, video_id: str, frame: int) -> ImportedFrame:
        entries = self._frames[video_id][frame]
        if not entries:
            return ImportedFrame(np.zeros((0, 0, 0), bool), np.zeros(0, np.float32), np.zeros(0, np.int32))
        try:
            masks = np.stack([mask_utils.decode(rle).astype(bool) for rle, _, _ in entries])
        except Exception as err:  # pycocotools raises on inconsistent sizes / counts
            raise DataError(f"{self.path}: a mask of {video_id} frame {frame} does not decode ({err}); {_FIX_JSON}") from None
        return ImportedFrame(
            masks=masks,
            scores=np.array([s for _, s, _ in entries], np.float32),
            class_ids=np.array([c for _, _, c in entries], np.int32),
        )


def open_import(path: str | os.PathLike, video_ids: Iterable[str] | None = None) -> IdMapImport | RleJsonImport:
    """Open an import (format by what ``path`` is); warns about videos the dataset does not have."""
    p = Path(path)
    src = RleJsonImport(p) if import_format(p) == "json" else IdMapImport(p)
    if video_ids is not None:
        known = set(video_ids)
        unknown = [v for v in src.video_ids() if v not in known]
        if unknown:
            log.warning("%s: %d imported videos are not in the dataset and are ignored (e.g. %s)", p, len(unknown), unknown[:3])
        if len(unknown) == len(src.video_ids()):
            raise DataError(f"{p}: none of the imported video ids match the dataset's; name entries by the dataset's video ids")
    return src
