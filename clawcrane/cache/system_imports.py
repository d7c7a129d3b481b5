"""Reading the files Grounded-SAM-2, DEVA, SAM 2 and SAM 3 write (``--detector import:<kind>:PATH``).

Each reader follows what the system's own code writes; the files read to learn each format are
named per kind below (GitHub snapshots: IDEA-Research/Grounded-SAM-2 2c0178f, hkchengrex/
Tracking-Anything-with-DEVA 404a112, facebookresearch/sam2 2b90b9f, facebookresearch/sam3 99d02f2).

**Layout.** For a dataset, PATH holds one output folder per video, ``PATH/<video_id>/...``. For
one video (``segment``, or a dataset of one video) PATH may be that video's output folder itself.
SAM 3 also takes its one results JSON of all videos (``PATH`` the file, or a folder holding it).

**Frame numbers** come from file names (inside a file a frame's name may be wrong, see gsam2):
when the dataset's video is a folder of frames and the name (less gsam2's ``mask_`` prefix)
equals a frame image's name, it is that image's position; otherwise the last run of digits in the
name is the 0-based frame index (SAM 2's ``ffmpeg ... -start_number 0 %05d.jpg`` frames:
``00012.png`` and ``mask_00012.npy`` are frame 12). A file is a processed frame (visited, possibly
with no mask); frames without a file are not visited.

**Kept per mask:** the system's object / track id (``track_ids``), its score and class where it
writes them; masks are ordered by id. Boxes are recomputed from the masks.

``gsam2`` (grounded_sam2_tracking_demo_with_continuous_id.py and its ``_plus`` / ``_gd1.5``
variants; utils/mask_dictionary_model.py ``MaskDictionaryModel.to_dict``/``save_empty_mask_and_json``,
``ObjectInfo.update_box``/``to_dict``)::

    <video>/mask_data/mask_<frame>.npy    (H, W) uint16 id map, 0 = background (a later id overwrites)
    <video>/json_data/mask_<frame>.json   {"mask_name", "mask_height", "mask_width", "promote_type",
                                           "labels": {"<id>": {"instance_id", "class_name",
                                                      "x1", "y1", "x2", "y2", "logit"}}}

  Frames without a detection are written by ``save_empty_mask_and_json`` as a zero 1080x1920 map
  with the chunk's first ``mask_name`` inside, so size and name inside are ignored. The box is
  inclusive (min/max pixel index) and not needed. ``class_name`` is kept, the id is the track id;
  ``logit`` is the score when set (the demos leave ``ObjectInfo``'s default 0.0, read as "no
  score": 1.0); a value outside [0, 1] goes through a sigmoid. An .npy without its .json gets no
  class text. Class ids are 0.

``deva`` (demo/demo_with_text.py, demo/demo_automatic.py; deva/inference/result_utils.py
``ResultSaver(dataset='demo')``/``save_result``; deva/utils/pano_utils.py ``ID2RGBConverter``;
deva/inference/object_manager.py ``get_current_segments_info``)::

    <video>/Annotations/<frame>.png   RGB with id = R + 256 G + 65536 B (the demos' long ids), or an
                                      8-bit palette / grayscale PNG whose value is the id
    <video>/pred.json                 {"annotations": [{"file_name": "<frame>.jpg",
                                       "segments_info": [{"id", "category_id", "score", "area"}]}]}

  ``score`` (null: 1.0) and ``category_id`` (an index into the text prompts; null: -1) are kept,
  the id is the track id. DEVA does not write the prompt texts, so there is no class text.

``sam2`` (tools/vos_inference.py ``save_masks_to_dir``, ``save_ann_png``, ``put_per_obj_mask``)::

    <video>/<frame>.png                    palette PNG, value = object id (the lower id wins overlaps)
    <video>/<object_id:03d>/<frame>.png    with --per_obj_png_file: one 0/1 palette PNG per object

  The object id is the track id; score 1.0, class 0, no class text.

``sam3`` (sam3/eval/ytvis_eval.py ``YTVISResultsWriter.prepare``/``_dump_preds``; RLEs from
sam3/train/masks_ops.py ``rle_encode``; the annotation side from
assets/veval/toy_gt_and_pred/toy_saco_veval_sav_test_gt.json)::

    [{"video_id": 0, "category_id": 3, "score": 0.71, "bboxes": [[x, y, w, h], ...],
      "segmentations": [{"size": [H, W], "counts": "<COCO RLE>"} or null, ...], "areas": [...],
      "per_frame_scores": [...] (optional)}, ...]           one record per masklet

  Per-frame lists run over the video's frames in order: position i is frame i, unless a YT-VIS
  annotation file sits beside the results (a JSON object with ``videos``: [{"id", "file_names",
  "video_name"}] and ``categories``: [{"id", "name"}], the file the dump was evaluated against):
  then position i is the frame named by ``file_names[i]``, a video is named by ``video_name``
  (else the folder of ``file_names[0]``) and category names become class texts. Without it a
  ``video_id`` is matched to the dataset's video ids as text. A null or zero-area segmentation
  means the masklet is absent there. Score: ``per_frame_scores[i]`` when present and in [0, 1],
  else the masklet's ``score``; the masklet's position among its video's records is its track id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from clawcrane.cache.imports import IMPORT_KINDS, ImportedFrame, rle_from_json
from clawcrane.errors import DataError
from clawcrane.fingerprint import file_fingerprint

log = logging.getLogger(__name__)

Reader = Callable[[], ImportedFrame]

LAYOUT = {
    "gsam2": "mask_data/mask_<frame>.npy (+ json_data/mask_<frame>.json)",
    "deva": "Annotations/<frame>.png (+ pred.json)",
    "sam2": "<frame>.png or <object_id:03d>/<frame>.png",
    "sam3": "a YT-VIS results .json (+ its annotation .json)",
}
"""What one video's output folder holds, per kind (for messages)."""

SUFFIXES = {"gsam2": {".npy", ".json"}, "deva": {".png", ".json"}, "sam2": {".png"}, "sam3": {".json"}}
"""The files of a kind that enter the import's fingerprint."""

_LAST_DIGITS = re.compile(r"(\d+)\D*$")
_FIX_GSAM2 = ('Grounded-SAM-2 writes {"labels": {"<id>": {"instance_id", "class_name", "x1", "y1", "x2", "y2", '
              '"logit"}}}; fix or delete the file (the mask .npy alone is enough)')
_FIX_DEVA = ('DEVA writes {"annotations": [{"file_name": "<frame>.jpg", "segments_info": [{"id", "category_id", '
             '"score"}]}]}; fix or delete pred.json (the PNGs alone are enough)')
_FIX_SAM3 = ('each SAM 3 record needs video_id, score, category_id and segmentations (one RLE {size, counts} or null '
             'per frame); see `clawcrane detect --help`')


def frame_number(stem: str, stems: Mapping[str, int] | None, where: Path) -> int:
    """A frame's index from its file name (see the module doc); DataError when there is none."""
    if stems and stem in stems:
        return stems[stem]
    m = _LAST_DIGITS.search(stem)
    if m is None:
        raise DataError(f"{where}: no frame number in the file name; name frames by their 0-based index (00012.png)")
    return int(m.group(1))


def _put(out: dict[int, Reader], seen: dict[int, Path], frame: int, path: Path, reader: Reader) -> None:
    if frame in out:
        raise DataError(f"{path}: frame {frame} also comes from {seen[frame]}; keep one of the two files")
    out[frame], seen[frame] = reader, path


def _load_json(path: Path, fix: str):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); {fix}") from None
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err.strerror}); {fix}") from None


def _id_frame(ids: np.ndarray, *, scores=None, class_ids=None, class_names=None) -> ImportedFrame:
    """(H, W) id map -> one mask per non-zero id in ascending order; the id is the track id.

    ``scores`` / ``class_ids`` / ``class_names``: callables id -> value (default 1.0, 0, no names).
    """
    labels = np.unique(ids)
    labels = labels[labels != 0]
    K, (H, W) = len(labels), ids.shape  # masks, frame height, width
    masks = (ids[None] == labels[:, None, None]).reshape(K, H, W)
    return ImportedFrame(
        masks=masks,
        scores=np.array([scores(int(i)) if scores else 1.0 for i in labels], np.float32),
        class_ids=np.array([class_ids(int(i)) if class_ids else 0 for i in labels], np.int32),
        track_ids=labels.astype(np.int32),
        class_names=None if class_names is None else [class_names(int(i)) for i in labels],
    )


def _npy_ids(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # truncated, not an .npy, a pickled object array
        raise DataError(f"{path}: unreadable mask ({type(err).__name__}: {err}); re-export or remove the file") from None
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise DataError(f"{path}: expected an (H, W) integer id map (Grounded-SAM-2 saves uint16), got {arr.dtype} "
                        f"{arr.shape}; re-export the file")
    return arr.astype(np.int64)


def _png_ids(path: Path, *, rgb_ids: bool, fix: str) -> np.ndarray:
    """A mask PNG -> (H, W) int64 ids: palette / grayscale value, or with ``rgb_ids`` R + 256 G + 65536 B."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im)
    except Exception as err:  # truncated file, not an image
        raise DataError(f"{path}: unreadable PNG ({type(err).__name__}: {err}); re-export or remove the file") from None
    if mode == "RGB" and rgb_ids:
        a = arr.astype(np.int64)
        return a[..., 0] + 256 * a[..., 1] + 65536 * a[..., 2]
    if mode not in ("P", "L", "I", "I;16", "I;16B", "1") or arr.ndim != 2:
        raise DataError(f"{path}: is a {mode} PNG; {fix}")
    return arr.astype(np.int64)


# ---- Grounded-SAM-2 -----------------------------------------------------------------------------
def _score_from_logit(x) -> float:
    """Grounded-SAM-2's ``logit``: unset (0.0, the default) -> 1.0; in [0, 1] as is; else its sigmoid."""
    if x is None or x == 0.0 or not math.isfinite(x):
        return 1.0
    return float(x) if 0.0 < x <= 1.0 else 1.0 / (1.0 + math.exp(-x))


def _gsam2_labels(path: Path) -> dict[int, tuple[str, float | None]]:
    doc = _load_json(path, _FIX_GSAM2)
    try:
        labels = doc["labels"]
        if not isinstance(labels, dict):
            raise TypeError("labels must be an object keyed by instance id")
        out = {}
        for k, v in labels.items():
            logit = v.get("logit")
            out[int(k)] = (str(v.get("class_name") or ""), None if logit is None else float(logit))
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: malformed ({type(err).__name__}: {err}); {_FIX_GSAM2}") from None


def _read_gsam2(npy: Path, js: Path) -> ImportedFrame:
    ids = _npy_ids(npy)
    labels = _gsam2_labels(js) if js.is_file() else {}
    return _id_frame(ids, scores=lambda i: _score_from_logit(labels.get(i, ("", None))[1]),
                     class_names=lambda i: labels.get(i, ("", None))[0])


def _gsam2_video(vdir: Path, stems: Mapping[str, int] | None) -> dict[int, Reader]:
    mask_dir, json_dir = vdir / "mask_data", vdir / "json_data"
    out: dict[int, Reader] = {}
    seen: dict[int, Path] = {}
    for f in sorted(mask_dir.glob("mask_*.npy")):
        _put(out, seen, frame_number(f.stem[len("mask_"):], stems, f), f, partial(_read_gsam2, f, json_dir / f"{f.stem}.json"))
    if not out:
        raise DataError(f"{mask_dir}: no mask_<frame>.npy files; pass the output_dir of Grounded-SAM-2's continuous-id demo")
    return out


# ---- DEVA ---------------------------------------------------------------------------------------
def _deva_segments(path: Path) -> dict[str, dict[int, tuple[int | None, float | None]]]:
    """pred.json -> frame stem -> id -> (category_id, score), None where DEVA wrote null."""
    doc = _load_json(path, _FIX_DEVA)
    out: dict[str, dict[int, tuple[int | None, float | None]]] = {}
    try:
        annotations = doc["annotations"]
        if not isinstance(annotations, list):
            raise TypeError("annotations must be a list")
    except (KeyError, TypeError) as err:
        raise DataError(f"{path}: malformed ({type(err).__name__}: {err}); {_FIX_DEVA}") from None
    for i, a in enumerate(annotations):
        try:
            per = out.setdefault(Path(str(a["file_name"])).stem, {})
            for s in a["segments_info"]:
                cat, score = s.get("category_id"), s.get("score")
                per[int(s["id"])] = (None if cat is None else int(cat), None if score is None else float(score))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"{path}: annotation {i} is malformed ({type(err).__name__}: {err}); {_FIX_DEVA}") from None
    return out


def _read_deva(png: Path, segs: Mapping[int, tuple[int | None, float | None]]) -> ImportedFrame:
    ids = _png_ids(png, rgb_ids=True, fix="DEVA writes RGB (id = R + 256 G + 65536 B) or palette mask PNGs; re-export it")

    def score(i: int) -> float:
        s = segs.get(i, (None, None))[1]
        return 1.0 if s is None else s

    def cat(i: int) -> int:
        c = segs.get(i, (None, None))[0]
        return -1 if c is None else c

    return _id_frame(ids, scores=score, class_ids=cat)


def _deva_video(vdir: Path, stems: Mapping[str, int] | None) -> dict[int, Reader]:
    ann, pred = vdir / "Annotations", vdir / "pred.json"
    segs = _deva_segments(pred) if pred.is_file() else {}
    out: dict[int, Reader] = {}
    seen: dict[int, Path] = {}
    for f in sorted(ann.glob("*.png")):
        _put(out, seen, frame_number(f.stem, stems, f), f, partial(_read_deva, f, segs.get(f.stem, {})))
    if not out:
        raise DataError(f"{ann}: no <frame>.png masks; pass the --output folder of DEVA's demo")
    return out


# ---- SAM 2 --------------------------------------------------------------------------------------
_FIX_SAM2_PNG = "SAM 2's vos_inference.py writes palette PNGs (value = object id); re-export it"


def _read_sam2_palette(png: Path) -> ImportedFrame:
    return _id_frame(_png_ids(png, rgb_ids=False, fix=_FIX_SAM2_PNG))


def _read_sam2_objects(files: Mapping[int, Path]) -> ImportedFrame:
    masks, ids = [], []
    for oid in sorted(files):
        m = _png_ids(files[oid], rgb_ids=False, fix=_FIX_SAM2_PNG) > 0
        if m.any():
            masks.append(m)
            ids.append(oid)
    if len({m.shape for m in masks}) > 1:
        raise DataError(f"{files[ids[0]].parent.parent}: the object PNGs of frame {files[ids[0]].stem} differ in size; "
                        "re-export them from one run")
    K = len(masks)
    return ImportedFrame(masks=np.stack(masks) if K else np.zeros((0, 0, 0), bool), scores=np.ones(K, np.float32),
                         class_ids=np.zeros(K, np.int32), track_ids=np.array(ids, np.int32))


def _object_dirs(vdir: Path) -> list[Path]:
    return sorted(d for d in vdir.iterdir() if d.is_dir() and d.name.isdigit() and any(d.glob("*.png")))


def _sam2_video(vdir: Path, stems: Mapping[str, int] | None) -> dict[int, Reader]:
    direct = sorted(vdir.glob("*.png"))
    objects = _object_dirs(vdir)
    if direct and objects:
        raise DataError(f"{vdir}: holds both <frame>.png files and per-object folders; keep one layout "
                        "(vos_inference.py writes one or the other, by --per_obj_png_file)")
    out: dict[int, Reader] = {}
    seen: dict[int, Path] = {}
    for f in direct:
        _put(out, seen, frame_number(f.stem, stems, f), f, partial(_read_sam2_palette, f))
    per_frame: dict[int, dict[int, Path]] = {}
    for d in objects:
        oid = int(d.name)
        for f in sorted(d.glob("*.png")):
            frame = frame_number(f.stem, stems, f)
            files = per_frame.setdefault(frame, {})
            if oid in files:
                raise DataError(f"{f}: frame {frame} of object {oid} also comes from {files[oid]}; keep one of the two files")
            files[oid] = f
    for frame, files in per_frame.items():
        out[frame] = partial(_read_sam2_objects, files)
    if not out:
        raise DataError(f"{vdir}: no <frame>.png masks; pass the --output_mask_dir of SAM 2's vos_inference.py")
    return out


# ---- layouts of the folder kinds ----------------------------------------------------------------
def _looks_like(kind: str, d: Path) -> bool:
    """Whether folder ``d`` is one video's output of ``kind``."""
    if kind == "gsam2":
        return (d / "mask_data").is_dir()
    if kind == "deva":
        return (d / "Annotations").is_dir()
    if kind == "sam2":
        return any(d.glob("*.png")) or bool(_object_dirs(d))
    if kind == "sam3":
        return any(d.glob("*.json"))
    raise ValueError(kind)


def video_folders(kind: str, root: Path, video_ids: Iterable[str] | None) -> dict[str, Path]:
    """video id -> its output folder: ``root/<video_id>/``, or ``root`` itself for one video."""
    if not root.is_dir():
        raise DataError(f"{root}: a {kind} import is a folder ({LAYOUT[kind]}, or one such folder per video id)")
    known = None if video_ids is None else set(video_ids)
    per_video = {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and _looks_like(kind, d)}
    if known is not None and known & per_video.keys():
        return per_video
    if _looks_like(kind, root):
        if known is None:
            return {root.name: root}
        if len(known) == 1:
            return {next(iter(known)): root}
        raise DataError(f"{root}: holds one video's {kind} output but the dataset has {len(known)} videos; "
                        f"put each video's output in {root}/<video_id>/")
    if per_video:
        return per_video
    raise DataError(f"{root}: no {kind} output found; expected {LAYOUT[kind]} in {root}/<video_id>/ "
                    f"(or in {root} itself for one video)")


# ---- SAM 3 --------------------------------------------------------------------------------------
def _sam3_files(files: list[Path]) -> tuple[Path, list, dict | None, Path | None]:
    """(results file, its records, the annotation document or None, its file) among one folder's JSONs."""
    results, annotation = [], []
    for f in files:
        doc = _load_json(f, _FIX_SAM3)
        if isinstance(doc, list):
            results.append((f, doc))
        elif isinstance(doc, dict) and isinstance(doc.get("videos"), list):
            annotation.append((f, doc))
        else:
            raise DataError(f"{f}: neither a SAM 3 results list nor a YT-VIS annotation object (with \"videos\"); "
                            "move it out of the import folder")
    if len(results) != 1:
        where = files[0].parent
        raise DataError(f"{where}: {len(results)} SAM 3 results lists ({', '.join(f.name for f, _ in results) or 'none'}); "
                        "keep exactly one per folder")
    if len(annotation) > 1:
        raise DataError(f"{files[0].parent}: {len(annotation)} YT-VIS annotation files; keep at most one beside the results")
    (rf, records), ann = results[0], (annotation[0] if annotation else (None, None))
    return rf, records, ann[1], ann[0]


def _sam3_annotation(doc: dict | None, path: Path | None) -> tuple[dict[str, tuple[str, list[str]]], dict[int, str]]:
    """(video_id text -> (video name, frame stems), category id -> name) of a YT-VIS annotation document."""
    if doc is None:
        return {}, {}
    try:
        videos = {}
        for v in doc["videos"]:
            names = [Path(str(n)).stem for n in v.get("file_names") or []]
            first = (v.get("file_names") or [""])[0]
            name = str(v.get("video_name") or Path(str(first)).parent.name or v["id"])
            videos[str(v["id"])] = (name, names)
        cats = {int(c["id"]): str(c.get("name", "")) for c in doc.get("categories") or []}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: malformed YT-VIS annotation ({type(err).__name__}: {err}); it needs videos "
                        "[{id, file_names, video_name}] and categories [{id, name}]") from None
    return videos, cats


def _sam3_group(path: Path, records: list, videos: Mapping[str, tuple[str, list[str]]]) -> dict[str, list[tuple[int, dict]]]:
    """Records by video name (the annotation's, else the ``video_id`` text), with their index in the file."""
    out: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "video_id" not in r:
            raise DataError(f"{path}: record {i} is malformed (no video_id); {_FIX_SAM3}")
        vid = str(r["video_id"])
        out.setdefault(videos[vid][0] if vid in videos else vid, []).append((i, r))
    return out


def _decode_sam3(path: Path, video_id: str, frame: int, entries: list[tuple]) -> ImportedFrame:
    if not entries:
        return ImportedFrame(np.zeros((0, 0, 0), bool), np.zeros(0, np.float32), np.zeros(0, np.int32),
                             track_ids=np.zeros(0, np.int32), class_names=[])
    try:
        masks = np.stack([mask_utils.decode(e[0]).astype(bool) for e in entries])
    except Exception as err:  # pycocotools raises on inconsistent sizes / counts
        raise DataError(f"{path}: a mask of {video_id} frame {frame} does not decode ({err}); {_FIX_SAM3}") from None
    return ImportedFrame(masks=masks, scores=np.array([e[1] for e in entries], np.float32),
                         class_ids=np.array([e[2] for e in entries], np.int32),
                         class_names=[e[3] for e in entries], track_ids=np.array([e[4] for e in entries], np.int32))


def _sam3_video(path: Path, video_id: str, recs: list[tuple[int, dict]], stems_in_file: list[str] | None,
                cats: Mapping[int, str], stems: Mapping[str, int] | None) -> dict[int, Reader]:
    entries: dict[int, list[tuple]] = {}
    for track, (i, r) in enumerate(recs):
        try:
            segs, score, cat = r["segmentations"], float(r["score"]), int(r.get("category_id") or 0)
            if not isinstance(segs, list):
                raise TypeError("segmentations must be a list with one entry per frame")
            areas, pfs = r.get("areas"), r.get("per_frame_scores")
            for pos, seg in enumerate(segs):
                if stems_in_file:
                    if pos >= len(stems_in_file):
                        raise ValueError(f"{len(segs)} frames but the annotation lists {len(stems_in_file)}")
                    frame = frame_number(stems_in_file[pos], stems, path)
                else:
                    frame = pos
                per = entries.setdefault(frame, [])
                if seg is None or (isinstance(areas, list) and pos < len(areas) and areas[pos] == 0):
                    continue  # the masklet is absent from this frame
                s = pfs[pos] if isinstance(pfs, list) and pos < len(pfs) and pfs[pos] is not None else None
                s = float(s) if s is not None and 0.0 <= float(s) <= 1.0 else score
                per.append((rle_from_json(seg), s, cat, cats.get(cat, ""), track))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"{path}: record {i} is malformed ({type(err).__name__}: {err}); {_FIX_SAM3}") from None
    if not entries:
        raise DataError(f"{path}: the masklets of {video_id} have no frames; {_FIX_SAM3}")
    return {f: partial(_decode_sam3, path, video_id, f, e) for f, e in entries.items()}


def _sam3_folder(files: list[Path], video_ids: set[str] | None, frame_stems, *, one_video: str | None = None
                 ) -> dict[str, dict[int, Reader]]:
    rf, records, ann, ann_path = _sam3_files(files)
    videos, cats = _sam3_annotation(ann, ann_path)
    groups = _sam3_group(rf, records, videos)
    if one_video is not None:  # a per-video folder: its records are that video's
        if len(groups) > 1:
            raise DataError(f"{rf}: holds masklets of {len(groups)} videos; a per-video folder holds one video's results")
        groups = {one_video: next(iter(groups.values()), [])}
    elif video_ids is not None and not (video_ids & groups.keys()) and len(video_ids) == 1 and len(groups) == 1:
        groups = {next(iter(video_ids)): next(iter(groups.values()))}  # one video: whatever its id in the file
    out = {}
    for name, recs in groups.items():
        if recs:
            src = str(recs[0][1]["video_id"])
            in_file = videos[src][1] if src in videos else None
            out[name] = _sam3_video(rf, name, recs, in_file, cats, (frame_stems or {}).get(name))
    return out


def _sam3(root: Path, video_ids: Iterable[str] | None, frame_stems) -> dict[str, dict[int, Reader]]:
    known = None if video_ids is None else set(video_ids)
    if root.is_file():
        return _sam3_folder([root], known, frame_stems)
    if not root.is_dir():
        raise DataError(f"{root}: import path not found; pass SAM 3's results .json or a folder holding it")
    files = sorted(root.glob("*.json"))
    if files:
        return _sam3_folder(files, known, frame_stems)
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json"))):
        out.update(_sam3_folder(sorted(d.glob("*.json")), known, frame_stems, one_video=d.name))
    if not out:
        raise DataError(f"{root}: no sam3 output found; expected {LAYOUT['sam3']} in {root} or in {root}/<video_id>/")
    return out


# ---- the source ---------------------------------------------------------------------------------
def system_fingerprint(kind: str, path: str | os.PathLike) -> str:
    """Content fingerprint of a kind's files under ``path`` (full hashes: any edit of a mask matters)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: import path not found; pass the folder {kind} wrote ({LAYOUT[kind]})")
    h = hashlib.sha256(f"{kind}\n".encode())
    if p.is_file():
        h.update(file_fingerprint(p, full=True).encode())
        return h.hexdigest()
    for f in sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIXES[kind] and f.is_file()):
        h.update(str(f.relative_to(p)).encode())
        h.update(file_fingerprint(f, full=True).encode())
    return h.hexdigest()


_VIDEO_READERS = {"gsam2": _gsam2_video, "deva": _deva_video, "sam2": _sam2_video}


class SystemImport:
    """One system's output over a set of videos (a ``MaskSource``); frames are read when asked for."""

    def __init__(self, kind: str, root: Path, frames: dict[str, dict[int, Reader]], key: str):
        self.kind, self.root, self._frames, self.key = kind, root, frames, key

    def video_ids(self) -> list[str]:
        return sorted(self._frames)

    def frames(self, video_id: str) -> frozenset[int]:
        return frozenset(self._frames.get(video_id, {}))

    def read(self, video_id: str, frame: int) -> ImportedFrame:
        return self._frames[video_id][frame]()


def open_system_import(kind: str, path: str | os.PathLike, video_ids: Iterable[str] | None = None,
                       frame_stems: Mapping[str, Mapping[str, int]] | None = None) -> SystemImport:
    """Open ``kind``'s output at ``path`` for the dataset's ``video_ids`` (None: take the folders' names).

    ``frame_stems``: video id -> {frame image stem: frame index} of videos stored as frame folders.
    Files are listed and JSON indexes parsed now (malformed ones fail here); masks are read per frame.
    """
    if kind not in IMPORT_KINDS:
        raise DataError(f"import kind {kind!r}: expected one of {', '.join(IMPORT_KINDS)}")
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: import path not found; pass the folder {kind} wrote ({LAYOUT[kind]})")
    if kind == "sam3":
        frames = _sam3(root, video_ids, frame_stems)
    else:
        frames = {vid: _VIDEO_READERS[kind](d, (frame_stems or {}).get(vid))
                  for vid, d in video_folders(kind, root, video_ids).items()}
    if not frames:
        raise DataError(f"{root}: the {kind} output holds no video's masks; expected {LAYOUT[kind]}")
    if video_ids is not None:
        known = set(video_ids)
        unknown = sorted(v for v in frames if v not in known)
        if len(unknown) == len(frames):
            fix = (f"name each video's {kind} output folder by its video id ({root}/<video_id>/)" if kind != "sam3" else
                   "give each record the dataset's video id as video_id, put the YT-VIS annotation .json (videos with "
                   "video_name) beside the results, or use one folder per video id")
            raise DataError(f"{root}: none of the imported videos ({', '.join(unknown[:3])}) is in the dataset; {fix}")
        if unknown:
            log.warning("%s: %d imported videos are not in the dataset and are ignored (e.g. %s)", root, len(unknown), unknown[:3])
    return SystemImport(kind, root, frames, system_fingerprint(kind, root))
