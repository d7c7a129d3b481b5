"""Writing the synthetic benchmark in the A2D-Sentences layout (../shared/datasets.md §1).

```
OUT/Release/videoset.csv                       no header: vid,label,start,end,H,W,T,labeled,split(0 train/1 test)
OUT/Release/clips320H/<vid>.mp4                every frame of the clip
OUT/text_annotations/a2d_annotation.txt        video_id,instance_id,query
OUT/text_annotations/a2d_missed_videos.txt     the one unannotated video
OUT/text_annotations/query_types.csv           video_id,instance_id,query_type (hard presets: ,wording)
OUT/text_annotations/a2d_annotation_with_instances/<vid>/<FFFFF>.h5   1-based frame number
OUT/synth_scenes.json                          the generator's scene description (written last)
```
Each ``.h5`` holds what h5py shows of a MATLAB v7.3 file (arrays transposed): ``reMask``
(N, W, H) uint8, or (W, H) when N == 1; ``instance`` (N,); ``reBBox`` (4, N) x1, y1, x2, y2
(x2, y2 exclusive); ``id`` (1, N) class ids (actor*10 + action, see ``scene``); ``reS_id``
(W, H) per-pixel class id, 0 = background. It lists every object annotated in that frame.
In videoset.csv, ``label`` is the class id of instance 1, start/end times are 0 and
ceil(frames / fps) seconds, ``labeled`` the number of annotated frames (0 for the missed video,
whose split column is 0).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np

from clawcrane import __version__
from clawcrane.atomic import atomic_path, write_text
from clawcrane.datasets.synth.generate import SynthVideo
from clawcrane.datasets.synth.render import render_frames
from clawcrane.datasets.synth.scene import motion_label
from clawcrane.datasets.video_io import write_mp4
from clawcrane.errors import ConfigError, DataError
from clawcrane.fingerprint import stable_json

SCENES_FILE = "synth_scenes.json"
RUN_FILE = ".synth_run.json"
"""Written first: which preset/seed a folder is being filled with (lets a killed run resume)."""
CONVENTIONS = {
    "frames": "0-based frame indices everywhere in this file; h5 file <FFFFF>.h5 holds frame FFFFF - 1",
    "instance_id": "object index + 1; a2d_annotation.txt's instance_id",
    "class_id": "actor*10 + action; actor 1 circle, 2 square, 3 triangle, 4 diamond; action 1 moving, 2 static",
    "centre": "true centre (x, y) of the whole shape per frame, also when outside the frame",
    "visible_box": "x1, y1, x2, y2 (exclusive) of the visible pixels per frame; zeros when not annotated",
    "shadow": "shadow strength at the object's centre per frame: 0 lit .. 1 colour fully hidden (drawn grey)",
    "listed": "annotated (in the frame's h5) when visible_px >= 20",
}


def clips_dir(root: Path) -> Path:
    return root / "Release" / "clips320H"


def mp4_path(root: Path, vid: str) -> Path:
    return clips_dir(root) / f"{vid}.mp4"


def h5_path(root: Path, vid: str, frame: int) -> Path:
    """The A2D per-frame file of 0-based ``frame`` (file names are 1-based)."""
    return root / "text_annotations" / "a2d_annotation_with_instances" / vid / f"{frame + 1:05d}.h5"


def video_files(root: Path, vid: str, annotated_frames) -> list[Path]:
    return [mp4_path(root, vid)] + [h5_path(root, vid, t) for t in annotated_frames]


def _annotated(video: SynthVideo) -> tuple[int, ...]:
    return () if video.plan.split == "missed" else video.scene.annotated


def video_complete(root: Path, video: SynthVideo) -> bool:
    return all(p.is_file() for p in video_files(root, video.scene.video_id, _annotated(video)))


def write_frame_h5(path: Path, *, masks: np.ndarray, instance_ids: np.ndarray, boxes: np.ndarray,
                   class_ids: np.ndarray, label_map: np.ndarray) -> None:
    """One A2D frame file (plain write: callers write into a temporary folder).

    masks (N, H, W) bool, boxes (N, 4), class_ids (N,), label_map (H, W); stored transposed.
    """
    N, H, W = masks.shape  # (N, H, W) instances, height, width
    re_mask = masks.astype(np.uint8).transpose(0, 2, 1)  # (N, W, H) as h5py sees MATLAB's (H, W, N)
    if N == 1:
        re_mask = re_mask[0]  # MATLAB drops the trailing singleton: (W, H)
    with h5py.File(path, "w") as f:
        f.create_dataset("reMask", data=re_mask, compression="gzip", compression_opts=1)
        f.create_dataset("instance", data=np.asarray(instance_ids, np.int32))
        f.create_dataset("reBBox", data=np.asarray(boxes, np.float64).reshape(N, 4).T)
        f.create_dataset("id", data=np.asarray(class_ids, np.int32).reshape(1, N))
        f.create_dataset("reS_id", data=np.ascontiguousarray(label_map.T), compression="gzip", compression_opts=1)


def write_video_files(root: Path, video: SynthVideo) -> None:
    """One h5 per annotated frame (listing every visible object), then the clip (every frame).

    The h5 files of a video are written into a temporary folder renamed into place at the end,
    and the mp4 is renamed into place too: a killed run never leaves part of a video behind.
    """
    scene, geo = video.scene, video.geometry
    vid = scene.video_id
    cls = np.array([o.class_id for o in scene.objects], np.int32)
    annotated = _annotated(video)
    if annotated:
        final = h5_path(root, vid, 0).parent
        tmp = final.with_name(f".{vid}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for t in annotated:
            idx = np.flatnonzero(geo.listed[t])
            class_map = np.concatenate([[0], cls]).astype(np.uint8)[geo.labels[t]]
            write_frame_h5(tmp / h5_path(root, vid, t).name, masks=geo.masks(t, idx), instance_ids=idx + 1,
                           boxes=geo.visible_box[t, idx], class_ids=cls[idx], label_map=class_map)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    write_mp4(mp4_path(root, vid), render_frames(scene), scene.fps)


def _r(a, nd=2):
    return np.round(np.asarray(a, np.float64), nd).tolist()


def video_record(video: SynthVideo) -> dict:
    """The video's entry of synth_scenes.json: scene, per-frame object facts, queries and why."""
    s, g = video.scene, video.geometry
    objects = []
    for o in s.objects:
        i = o.index
        objects.append({
            "instance_id": i + 1, "shape": o.shape, "colour": o.colour, "size": o.size, "radius": o.radius,
            "depth": o.depth, "role": o.role, "class_id": o.class_id, "start": list(o.start),
            "velocity": list(o.velocity), "motion": motion_label(o.velocity),
            "centre": _r(g.centres[:, i]), "visible_px": g.visible_px[:, i].tolist(),
            "full_px": g.full_px[:, i].tolist(), "visible_box": _r(g.visible_box[:, i], 0),
            "shadow": _r(g.shadow[:, i], 3),
        })
    return {
        "video_id": s.video_id, "split": video.plan.split, "width": s.width, "height": s.height,
        "num_frames": s.num_frames, "fps": s.fps, "annotated_frames": list(_annotated(video)),
        "shadow": None if s.shadow is None else {k: getattr(s.shadow, k) for k in
                                                 ("cx", "cy", "ax", "ay", "soft", "t0", "t1", "fade")},
        "motifs": [{"kind": m.kind, "members": [i + 1 for i in m.members], "references": [i + 1 for i in m.refs],
                    "words": list(m.words), "silent": [i + 1 for i in m.silent]} for m in s.motifs],
        "objects": objects,
        "queries": [{"instance_id": q.target + 1, "query": q.sentence, "query_type": q.query_type,
                     "frames": list(q.frames), "reason": q.reason, "detail": q.detail} for q in video.queries],
        "failed": video.failed,
    }


def _csv(rows, header=None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_index(root: Path, records: list[dict], meta: dict, *, wording_column: bool = False,
                conventions: dict | None = None) -> None:
    """videoset.csv, the annotation txt files, query_types.csv, then synth_scenes.json (last).

    ``wording_column`` adds query_types.csv's 4th column ``wording`` ('seen' or 'paraphrase', from
    each query's ``wording['label']``: hard presets); ``conventions`` replaces ``CONVENTIONS``.
    """
    videoset, ann, types, missed = [], [], [], []
    for rec in records:
        first = rec["objects"][0]["class_id"] if rec["objects"] else 0
        end = int(np.ceil(rec["num_frames"] / rec["fps"]))
        videoset.append([rec["video_id"], first, 0, end, rec["height"], rec["width"], rec["num_frames"],
                         len(rec["annotated_frames"]), 1 if rec["split"] == "test" else 0])
        if rec["split"] == "missed":
            missed.append(rec["video_id"])
        for q in rec["queries"]:
            ann.append([rec["video_id"], q["instance_id"], q["query"]])
            types.append([rec["video_id"], q["instance_id"], q["query_type"]]
                         + ([q["wording"]["label"]] if wording_column else []))
    text = root / "text_annotations"
    write_text(root / "Release" / "videoset.csv", _csv(videoset))
    write_text(text / "a2d_annotation.txt", _csv(ann, ["video_id", "instance_id", "query"]))
    write_text(text / "a2d_missed_videos.txt", "".join(f"{v}\n" for v in missed))
    header = ["video_id", "instance_id", "query_type"] + (["wording"] if wording_column else [])
    write_text(text / "query_types.csv", _csv(types, header))
    doc = {"generator": {**meta, "package_version": __version__}, "conventions": conventions or CONVENTIONS,
           "videos": records}
    write_text(root / SCENES_FILE, json.dumps(doc, separators=(",", ":")) + "\n")


def write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise DataError(f"{path}: could not encode the preview image")
        tmp.write_bytes(buf.tobytes())


# ---- the output folder's state ----------------------------------------------------------------


def _same(found: dict, meta: dict) -> bool:
    return all(found.get(k) == meta[k] for k in ("preset", "seed", "version"))


def folder_state(root: Path, meta: dict) -> str:
    """'new', 'resume' or 'complete' for ``meta`` (preset, seed, version); refuses anything else."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: exists and is not a folder; choose a new folder for the benchmark")
    if not root.exists() or not any(root.iterdir()):
        return "new"
    want = f"preset={meta['preset']} seed={meta['seed']}"
    for name in (SCENES_FILE, RUN_FILE):
        p = root / name
        if not p.is_file():
            continue
        try:
            found = json.loads(p.read_text())
            found = found.get("generator", found)
        except (OSError, ValueError) as err:
            raise DataError(f"{p}: unreadable ({err}); delete the folder and run again") from err
        if not _same(found, meta):
            raise ConfigError(
                f"{root}: already holds the synthetic benchmark preset={found.get('preset')} seed={found.get('seed')} "
                f"(generator v{found.get('version')}); refusing to write {want} into it; choose an empty folder")
        if name == SCENES_FILE:
            vids = json.loads((root / SCENES_FILE).read_text())["videos"]
            if all(p.is_file() for v in vids for p in video_files(root, v["video_id"], v["annotated_frames"])):
                return "complete"
        return "resume"
    raise ConfigError(f"{root}: folder is not empty and was not written by `clawcrane data synth`; "
                      f"choose an empty or new folder for {want}")


def start_run(root: Path, meta: dict) -> None:
    """Mark the folder as being filled with ``meta`` and clear temporary files of killed runs."""
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / RUN_FILE, stable_json(meta) + "\n")
    for folder in (clips_dir(root), root / "text_annotations" / "a2d_annotation_with_instances"):
        for p in folder.glob(".*.tmp*") if folder.is_dir() else ():
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def finish_run(root: Path) -> None:
    """The index is written: the run marker is no longer needed."""
    (root / RUN_FILE).unlink(missing_ok=True)
