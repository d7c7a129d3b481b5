"""The per-frame annotation files of A2D-Sentences: MATLAB v7.3 (HDF5) files, arrays transposed.

``text_annotations/a2d_annotation_with_instances/<video_id>/<FFFFF>.h5`` (5-digit, 1-based):

| key | shape as h5py reads it | meaning |
|---|---|---|
| ``reMask`` | (N, W, H); (W, H) when N == 1 | instance masks, transposed here to (N, H, W) |
| ``instance`` | (N,) | sentence instance ids; index i selects ``reMask[i]`` |
| ``reBBox`` | (4, N) | x1, y1, x2, y2 |
| ``id`` | (1, N) | actor*10 + action class |
| ``reS_id`` | (W, H) | actor-action label map |

``index_h5`` reads what loading needs (ids, mask size); ``A2DMasks`` reads masks on demand.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from clawcrane.datasets.records import Instance
from clawcrane.errors import DataError

INSTANCES = "text_annotations/a2d_annotation_with_instances"
MASK_CACHE_FRAMES = 64


def h5_path(root: Path, video_id: str, frame: int) -> Path:
    """The annotation file of 0-based ``frame`` (file names are 5-digit and 1-based)."""
    return root / INSTANCES / video_id / f"{frame + 1:05d}.h5"


def canonical_instance_id(value: object) -> str:
    """Instance ids as text: ``"01"``/``1.0`` -> ``"1"``; anything else stripped but kept."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return str(int(text)) if re.fullmatch(r"\d+", text) else text


@dataclass(frozen=True)
class FrameIndex:
    """What one h5 file says, without its mask data."""

    instance_ids: tuple[str, ...]
    height: int
    width: int


class BadFile(Exception):
    """A problem with one annotation file: ``what`` is wrong and the ``fix``."""

    def __init__(self, what: str, fix: str):
        super().__init__(what)
        self.what, self.fix = what, fix


def _mask_geometry(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(N, H, W) of a MATLAB-transposed ``reMask``: (N, W, H), or (W, H) when N == 1."""
    if len(shape) == 2:
        W, H = shape
        return 1, H, W
    if len(shape) == 3:
        N, W, H = shape
        return N, H, W
    raise BadFile(f"'reMask' has shape {shape}, expected (N, W, H) or (W, H)", "re-export this frame's annotation")


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise BadFile(
            f"not a readable HDF5/MATLAB v7.3 file ({err.__class__.__name__})", "re-extract or re-download it"
        ) from None


def _check_ids(values: np.ndarray) -> tuple[str, ...]:
    values = np.asarray(values).reshape(-1)
    if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        raise BadFile("'instance' does not hold integer ids", "re-export this frame's annotation")
    return tuple(canonical_instance_id(float(v)) for v in values)


def _ids(f: h5py.File) -> tuple[str, ...]:
    if "instance" not in f:
        raise BadFile("has no 'instance' dataset", "re-export this frame's annotation")
    return _check_ids(f["instance"][()])


def index_h5(path: Path) -> FrameIndex:
    """The instance ids and mask size of one annotated frame (reads no mask data).

    Uses h5py's low-level API: loading opens every h5 file of the dataset (about 12.5k for A2D),
    and this is about twice as fast as ``h5py.File``.
    """
    try:
        fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY)
    except OSError as err:
        raise BadFile(
            f"not a readable HDF5/MATLAB v7.3 file ({err.__class__.__name__})", "re-extract or re-download it"
        ) from None
    try:
        try:
            shape = h5py.h5d.open(fid, b"reMask").shape
        except KeyError:
            raise BadFile(
                "has no 'reMask' dataset (instance masks)", "re-export this frame's annotation or delete the file"
            ) from None
        try:
            dset = h5py.h5d.open(fid, b"instance")
        except KeyError:
            raise BadFile("has no 'instance' dataset", "re-export this frame's annotation") from None
        values = np.empty(dset.shape, dset.dtype)
        if values.dtype.kind not in "iuf":
            raise BadFile("'instance' does not hold integer ids", "re-export this frame's annotation")
        dset.read(h5py.h5s.ALL, h5py.h5s.ALL, values)
    except (OSError, RuntimeError, TypeError, ValueError) as err:
        raise BadFile(f"damaged HDF5 content ({err.__class__.__name__})", "re-extract or re-download it") from None
    finally:
        fid.close()
    ids = _check_ids(values)
    N, H, W = _mask_geometry(shape)
    if len(ids) != N:
        raise BadFile(
            f"'instance' lists {len(ids)} ids but 'reMask' holds {N} masks", "re-export this frame's annotation"
        )
    return FrameIndex(ids, H, W)


def read_h5_instances(path: Path) -> list[Instance]:
    """Every instance of one annotated frame: masks transposed to (H, W) bool, class = ``id``."""
    try:
        with _open_h5(path) as f:
            if "reMask" not in f:
                raise BadFile("has no 'reMask' dataset (instance masks)", "re-export this frame's annotation")
            ids = _ids(f)
            masks = np.asarray(f["reMask"][()])
            classes = np.asarray(f["id"][()]).reshape(-1) if "id" in f else np.zeros(len(ids))
    except BadFile as bad:
        raise DataError(f"{path}: {bad.what}; {bad.fix}") from None
    except (OSError, RuntimeError, TypeError, ValueError) as err:
        raise DataError(
            f"{path}: damaged HDF5 content ({err.__class__.__name__}); re-extract or re-download it"
        ) from None
    N, H, W = _mask_geometry(masks.shape)
    masks = masks.reshape(N, W, H).transpose(0, 2, 1) > 0  # (N, W, H) MATLAB order -> (N, H, W)
    if len(ids) != N:
        raise DataError(
            f"{path}: 'instance' lists {len(ids)} ids but 'reMask' holds {N} masks; re-export this frame's annotation"
        )
    if len(classes) != N:
        classes = np.zeros(N)
    return [
        Instance(instance_id=i, mask=np.ascontiguousarray(m), class_id=int(c))
        for i, m, c in zip(ids, masks, classes, strict=True)
    ]


class A2DMasks:
    """Lazy ground truth of an A2D-layout folder, with an LRU cache of recently read frames."""

    def __init__(self, root: Path, cache_frames: int = MASK_CACHE_FRAMES):
        self.root = Path(root)
        self.cache_frames = cache_frames
        self._cache: OrderedDict[tuple[str, int], list[Instance]] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"root": self.root, "cache_frames": self.cache_frames}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"], state["cache_frames"])

    def frame(self, video_id: str, frame: int) -> list[Instance]:
        """All instances annotated in ``frame`` (0-based) of ``video_id``."""
        key = (video_id, int(frame))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        path = h5_path(self.root, video_id, frame)
        if not path.is_file():
            raise DataError(f"{path}: no annotation for frame {frame} of {video_id}; only annotated frames have masks")
        instances = read_h5_instances(path)
        self._cache[key] = instances
        if len(self._cache) > self.cache_frames:
            self._cache.popitem(last=False)
        return instances

    __call__ = frame

    def mask(self, video_id: str, instance_id: str, frame: int) -> np.ndarray:
        """(H, W) bool mask of ``instance_id`` in ``frame``."""
        for inst in self.frame(video_id, frame):
            if inst.instance_id == instance_id:
                return inst.mask
        raise DataError(
            f"{h5_path(self.root, video_id, frame)}: instance {instance_id} is not in this frame's 'instance' list; "
            "only frames listing the instance are samples of its sentence"
        )
