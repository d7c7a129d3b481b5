"""Build tiny datasets in each real on-disk layout, for tests of every module.

``make_a2d(tmp_path)``, ``make_jhmdb(tmp_path)``, ``make_ytvos(tmp_path)``, ``make_clip(path)`` and
``make_frame_folder(path)`` write the exact files a reader sees in the real benchmarks (MATLAB
v7.3 h5 files with transposed arrays, MATLAB v5 .mat files, palette PNGs, mp4 clips), from small
specs whose ``mask(...)`` methods give the expected ground truth, so tests can check round trips.

    from helpers.dataset_builders import make_a2d, A2DVideo, A2DObject
    root = make_a2d(tmp_path)                       # the default: 2 test + 2 train videos + 1 missed
    root = make_a2d(tmp_path, videos=[A2DVideo("v1", objects=[A2DObject("1", "a dog", {0: (2, 2, 10, 12)})])])
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

from clawcrane.datasets.video_io import write_mp4

Box = tuple[int, int, int, int]
"""(y0, x0, y1, x1) pixel rectangle, end-exclusive."""

PALETTE = [0, 0, 0, 236, 95, 103, 249, 145, 87, 250, 200, 99, 153, 199, 148, 98, 179, 178, 102, 153, 204]
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."


def box_mask(height: int, width: int, box: Box) -> np.ndarray:
    y0, x0, y1, x1 = box
    m = np.zeros((height, width), bool)
    m[y0:y1, x0:x1] = True
    return m


def render_frames(height: int, width: int, num_frames: int, boxes: Iterable[dict[int, Box]]) -> list[np.ndarray]:
    """RGB frames: a grey background with one coloured rectangle per object where it has a box."""
    frames = []
    boxes = list(boxes)
    for t in range(num_frames):
        img = np.full((height, width, 3), 90 + 5 * t, np.uint8)
        for k, per_frame in enumerate(boxes):
            if t in per_frame:
                y0, x0, y1, x1 = per_frame[t]
                img[y0:y1, x0:x1] = PALETTE[3 * (k + 1) : 3 * (k + 2)]
        frames.append(img)
    return frames


def make_clip(path: Path, *, num_frames: int = 6, height: int = 32, width: int = 48, fps: float = 10.0) -> Path:
    """A small mp4 (mp4v) with a moving rectangle."""
    boxes = {t: (4, 2 + 3 * t, 14, 12 + 3 * t) for t in range(num_frames)}
    write_mp4(path, render_frames(height, width, num_frames, [boxes]), fps)
    return path


def make_frame_folder(
    path: Path, *, num_frames: int = 4, height: int = 24, width: int = 32, suffix: str = ".png"
) -> Path:
    """A folder of numbered frames ``00001.png`` ... (1-based, as J-HMDB and most extractors name them)."""
    path.mkdir(parents=True, exist_ok=True)
    boxes = {t: (2, 2 + 2 * t, 10, 10 + 2 * t) for t in range(num_frames)}
    for t, img in enumerate(render_frames(height, width, num_frames, [boxes])):
        Image.fromarray(img).save(path / f"{t + 1:05d}{suffix}")
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Cut a file to ``fraction`` of its bytes (a download that stopped half way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_csv(path: Path, rows: Iterable[Sequence[object]], header: Sequence[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


# ---- A2D-Sentences ------------------------------------------------------------------------------


@dataclass
class A2DObject:
    """One actor instance: where it is annotated (0-based frame -> box) and its sentence."""

    instance_id: str
    sentence: str | None
    boxes: dict[int, Box]
    class_id: int = 11
    query_type: str | None = None


@dataclass
class A2DVideo:
    video_id: str
    split: str = "test"
    height: int = 32
    width: int = 48
    num_frames: int = 8
    annotated: tuple[int, ...] = ()
    """0-based frames with an h5 file; default: every frame where some object has a box."""
    objects: list[A2DObject] = field(default_factory=list)

    def frames(self) -> tuple[int, ...]:
        return self.annotated or tuple(sorted({f for o in self.objects for f in o.boxes}))

    def listed(self, frame: int) -> list[A2DObject]:
        """Objects listed in the h5 of ``frame`` (annotated there)."""
        return [o for o in self.objects if frame in o.boxes]

    def mask(self, instance_id: str, frame: int) -> np.ndarray:
        obj = next(o for o in self.objects if o.instance_id == instance_id)
        return box_mask(self.height, self.width, obj.boxes[frame])


def default_a2d_videos() -> list[A2DVideo]:
    """Two test and two train videos. Hand-countable: test has 2 videos, 3 queries, 5 samples;
    train has 2 videos, 3 queries, 4 samples (see the comments)."""
    return [
        # test: instance 1 in frames 1, 4, 6 (3 samples); instance 2 only in frame 4 (1 sample), so the
        # h5 of frames 1 and 6 hold one mask (2-D reMask) and frame 4 holds two.
        A2DVideo(
            "vidA",
            "test",
            objects=[
                A2DObject(
                    "1",
                    "The man  on the LEFT",
                    {1: (4, 2, 20, 14), 4: (5, 4, 21, 16), 6: (6, 6, 22, 18)},
                    11,
                    "position",
                ),
                A2DObject("2", "a dog running", {4: (10, 26, 26, 44)}, 77, "motion"),
            ],
        ),
        # test: one instance in frame 2 (1 sample), wider clip
        A2DVideo(
            "vidB",
            "test",
            width=64,
            objects=[A2DObject("1", "red ball rolling", {2: (8, 30, 20, 44)}, 36, "appearance")],
        ),
        # train: instance 1 in frames 0 and 3 (2 samples), instance 3 in frame 3 (1 sample)
        A2DVideo(
            "vidC",
            "train",
            objects=[
                A2DObject("1", "a bird flying", {0: (2, 2, 12, 12), 3: (3, 3, 13, 13)}, 44, "motion"),
                A2DObject("3", "the car behind the bird", {3: (16, 20, 30, 46)}, 57, "relation"),
            ],
        ),
        # train: one instance in frame 5 (1 sample)
        A2DVideo("vidD", "train", objects=[A2DObject("2", "baby crawling", {5: (12, 8, 28, 30)}, 22, "motion")]),
    ]


def missed_a2d_video() -> A2DVideo:
    """A complete video that the missed list excludes from both splits."""
    return A2DVideo("vidMissed", "train", objects=[A2DObject("1", "a cat eating", {2: (2, 2, 12, 12)}, 63)])


def write_a2d_h5(
    path: Path, masks: np.ndarray, instance_ids: Sequence[float], class_ids: Sequence[int], *, drop: Sequence[str] = ()
) -> None:
    """One annotated frame as MATLAB v7.3 writes it: every array transposed, (W, H) reMask when N == 1.

    masks: (N, H, W) bool. ``drop`` leaves out datasets (e.g. ``("reMask",)``) to make bad files.
    """
    N, H, W = masks.shape
    remask = masks.astype(np.uint8).transpose(0, 2, 1)  # (N, W, H)
    if N == 1:
        remask = remask[0]  # (W, H)
    boxes = np.zeros((4, N))
    label_map = np.zeros((H, W))
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(ys):
            boxes[:, i] = [xs.min(), ys.min(), xs.max(), ys.max()]
        label_map[m] = class_ids[i]
    data = {
        "reMask": remask,
        "instance": np.asarray(instance_ids, np.float64),
        "reBBox": boxes,
        "id": np.asarray(class_ids, np.float64)[None, :],
        "reS_id": label_map.T,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in data.items():
            if k not in drop:
                f.create_dataset(k, data=v)
    with open(path, "r+b") as f:
        f.write(MATLAB_HEADER)


def make_a2d(
    root: Path,
    videos: Sequence[A2DVideo] | None = None,
    *,
    missed: Sequence[A2DVideo] | None = None,
    copy_row: bool = True,
    query_types: bool = True,
    clips: bool = True,
    extra_sentence_rows: Sequence[Sequence[object]] = (),
    synthetic: bool = False,
) -> Path:
    """Write an A2D-Sentences folder at ``root`` (created) and return it.

    ``missed`` videos are written completely and listed in ``a2d_missed_videos.txt`` (default: one).
    ``copy_row`` adds the protocol's ``1 (copy)`` row (which the reader must drop); ``query_types``
    writes ``query_types.csv``; ``synthetic`` adds a ``synth_scenes.json`` marker.
    """
    root = Path(root)
    videos = default_a2d_videos() if videos is None else list(videos)
    missed = [missed_a2d_video()] if missed is None else list(missed)
    rows, sentences, types = [], [], []
    for v in [*videos, *missed]:
        rows.append(
            [
                v.video_id,
                11,
                0,
                v.num_frames,
                v.height,
                v.width,
                v.num_frames,
                len(v.frames()),
                1 if v.split == "test" else 0,
            ]
        )
        for f in v.frames():
            listed = v.listed(f)
            masks = (
                np.stack([v.mask(o.instance_id, f) for o in listed])
                if listed
                else np.zeros((0, v.height, v.width), bool)
            )
            write_a2d_h5(
                root / f"text_annotations/a2d_annotation_with_instances/{v.video_id}/{f + 1:05d}.h5",
                masks,
                [float(o.instance_id) for o in listed],
                [o.class_id for o in listed],
            )
        for o in v.objects:
            if o.sentence is not None:
                sentences.append([v.video_id, o.instance_id, o.sentence])
                if o.query_type:
                    types.append([v.video_id, o.instance_id, o.query_type])
        if clips:
            frames = render_frames(v.height, v.width, v.num_frames, [o.boxes for o in v.objects])
            write_mp4(root / f"Release/clips320H/{v.video_id}.mp4", frames, 10.0)
    if copy_row and videos:
        first = next((v for v in videos if v.objects), videos[0])
        sentences.insert(1, [first.video_id, "1 (copy)", "a duplicated sentence the protocol drops"])
    sentences += [list(r) for r in extra_sentence_rows]
    write_csv(root / "Release/videoset.csv", rows)
    write_csv(root / "text_annotations/a2d_annotation.txt", sentences, ["video_id", "instance_id", "query"])
    (root / "text_annotations/a2d_missed_videos.txt").write_text("".join(f"{v.video_id}\n" for v in missed))
    if query_types:
        write_csv(root / "text_annotations/query_types.csv", types, ["video_id", "instance_id", "query_type"])
    if synthetic:
        (root / "synth_scenes.json").write_text("{}")
    return root


def a2d_h5(root: Path, video_id: str, frame: int) -> Path:
    """Path of the h5 of 0-based ``frame``."""
    return Path(root) / f"text_annotations/a2d_annotation_with_instances/{video_id}/{frame + 1:05d}.h5"


def a2d_clip(root: Path, video_id: str) -> Path:
    return Path(root) / f"Release/clips320H/{video_id}.mp4"


# ---- J-HMDB-Sentences ---------------------------------------------------------------------------


@dataclass
class JhmdbVideo:
    video_id: str
    action: str = "walk"
    sentence: str = "a man walking"
    num_pngs: int = 8
    num_masks: int = 6
    """T of ``part_mask``; may be smaller than ``num_pngs`` (trailing frames without a mask)."""
    height: int = 24
    width: int = 32

    def mask(self, frame: int) -> np.ndarray:
        """(H, W) bool puppet mask of 0-based ``frame``: a box that moves right one pixel a frame."""
        return box_mask(self.height, self.width, (4, 2 + frame, 18, 10 + frame))


def default_jhmdb_videos() -> list[JhmdbVideo]:
    return [
        JhmdbVideo("walk_video_1", "walk", "A man  walking to the right", num_pngs=8, num_masks=6),
        JhmdbVideo("pullup_video_2", "pullup", "a woman doing pull ups", num_pngs=5, num_masks=5),
    ]


def make_jhmdb(root: Path, videos: Sequence[JhmdbVideo] | None = None, *, samples_metadata: list | None = None) -> Path:
    """Write a J-HMDB-Sentences folder; ``samples_metadata`` (MTTR's entries) is written as
    ``jhmdb_sentences_samples_metadata.json`` when given."""
    root = Path(root)
    videos = default_jhmdb_videos() if videos is None else list(videos)
    for v in videos:
        frames_dir = root / "Rename_Images" / v.action / v.video_id
        frames_dir.mkdir(parents=True, exist_ok=True)
        boxes = {t: (4, 2 + t, 18, 10 + t) for t in range(v.num_pngs)}
        for t, img in enumerate(render_frames(v.height, v.width, v.num_pngs, [boxes])):
            Image.fromarray(img).save(frames_dir / f"{t + 1:05d}.png")
        part = np.stack([v.mask(t) for t in range(v.num_masks)], axis=-1).astype(np.uint8)  # (H, W, T)
        mat = root / "puppet_mask" / v.action / v.video_id / "puppet_mask.mat"
        mat.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(mat, {"part_mask": part}, do_compression=True)
    write_csv(root / "jhmdb_annotation.txt", [[v.video_id, v.sentence] for v in videos], ["video_id", "query"])
    if samples_metadata is not None:
        (root / "jhmdb_sentences_samples_metadata.json").write_text(json.dumps(samples_metadata))
    return root


def mttr_samples_entry(v: JhmdbVideo, frame: int) -> list:
    """One entry of MTTR's metadata file for 0-based ``frame`` (paths as MTTR wrote them)."""
    base = f"./jhmdb_sentences/{{}}/{v.action}/{v.video_id}"
    return [
        v.video_id,
        base.format("Rename_Images") + f"/{frame + 1:05d}.png",
        base.format("puppet_mask") + "/puppet_mask.mat",
        min(v.num_pngs, v.num_masks),
        v.sentence,
    ]


# ---- Ref-YouTube-VOS ----------------------------------------------------------------------------


@dataclass
class YtvosVideo:
    video_id: str
    frames: tuple[str, ...] = ("00000", "00005", "00010", "00015")
    objects: dict[str, dict[str, Box]] = field(default_factory=dict)
    """obj_id -> frame name -> box; the object's pixels get value int(obj_id) in Annotations."""
    expressions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """exp_id -> (sentence, obj_id)."""
    height: int = 24
    width: int = 32

    def id_map(self, frame: str) -> np.ndarray:
        out = np.zeros((self.height, self.width), np.uint8)
        for obj, boxes in self.objects.items():
            if frame in boxes:
                out[box_mask(self.height, self.width, boxes[frame])] = int(obj)
        return out

    def mask(self, obj_id: str, frame: str) -> np.ndarray:
        return self.id_map(frame) == int(obj_id)


def default_ytvos_videos() -> list[YtvosVideo]:
    return [
        YtvosVideo(
            "abc123",
            objects={
                "1": {
                    "00000": (2, 2, 10, 10),
                    "00005": (2, 4, 10, 12),
                    "00010": (2, 6, 10, 14),
                    "00015": (2, 8, 10, 16),
                },
                "2": {"00005": (14, 16, 22, 30), "00010": (14, 18, 22, 30)},
            },
            expressions={
                "0": ("a white duck on the left", "1"),
                "1": ("the duck", "1"),
                "2": ("a person walking", "2"),
            },
        ),
        YtvosVideo(
            "def456",
            frames=("00000", "00005", "00010"),
            objects={"3": {"00000": (4, 4, 20, 20), "00005": (4, 6, 20, 22), "00010": (4, 8, 20, 24)}},
            expressions={"0": ("A big  Dog", "3")},
        ),
    ]


def make_ytvos(
    root: Path, videos: Sequence[YtvosVideo] | None = None, *, split: str = "train", annotations: bool = True
) -> Path:
    """Write ``split`` of a Ref-YouTube-VOS folder (``annotations=False``: the valid split, no GT)."""
    root = Path(root)
    videos = default_ytvos_videos() if videos is None else list(videos)
    meta: dict = {"videos": {}}
    for v in videos:
        jpg_dir = root / split / "JPEGImages" / v.video_id
        jpg_dir.mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(v.frames):
            img = np.full((v.height, v.width, 3), 80 + 20 * k, np.uint8)
            img[v.id_map(name) > 0] = (200, 60, 60)
            Image.fromarray(img).save(jpg_dir / f"{name}.jpg", quality=95)
            if annotations:
                png = Image.frombytes("P", (v.width, v.height), v.id_map(name).tobytes())
                png.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
                (root / split / "Annotations" / v.video_id).mkdir(parents=True, exist_ok=True)
                png.save(root / split / "Annotations" / v.video_id / f"{name}.png")
        exps = {}
        for exp_id, (sentence, obj) in v.expressions.items():
            exps[exp_id] = {"exp": sentence, "obj_id": obj} if annotations else {"exp": sentence}
        meta["videos"][v.video_id] = {"expressions": exps, "frames": list(v.frames)}
    out = root / "meta_expressions" / split / "meta_expressions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(meta))
    return root
