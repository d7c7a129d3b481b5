"""Python API: open a video once, then ask it any number of sentences.

    from clawcrane.api import VideoSession

    session = VideoSession.open("clip.mp4", head="runs/head", detector="runs/det/final.pt")
    result = session.query("the second square from the left")
    result.tracks()              # the top-k tracks: answer first, with scores and frames
    result.masks()               # (T, H, W) bool, the answer on every processed frame
    result.to_coco_rle()         # [{"frame", "segmentation": {"size", "counts"}, "score"}]
    result.to_png("masks/")      # one 0/255 PNG per frame
    result.overlay("answer.mp4")  # the video with the answer drawn

The pattern of SAM 2's video predictor: ``open`` runs `detect` and `extract` into the cache
root (``segment``'s: a second ``open`` of the same video, or a ``segment`` call on it, finds
them), loads the head and reads the video's candidates and features into memory once; ``query``
runs only the head and the TRM on those tensors (milliseconds per sentence on a CPU,
``bench/new_sentence_latency.py``). ``VideoSession(features=..., video_id=...)`` opens a video
of a dataset whose caches exist (after `clawcrane extract`) without decoding anything.

A sentence most of whose words the head never saw in training is answered all the same, with a
warning naming the unknown words (``Result.unknown_words``): a bi-LSTM head reads them as ``<unk>``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clawcrane.build.detectors import build_detector
from clawcrane.build.device import resolve_device
from clawcrane.build.heads import head_file, load_head
from clawcrane.build.text import sentence_inputs
from clawcrane.cache.checkpoints import check_head_features
from clawcrane.cache.features import open_features
from clawcrane.cache.predictions import COLUMNS, make_table
from clawcrane.config import DetectConfig, ExtractConfig, TrackRankConfig, default_score_threshold
from clawcrane.datasets.layout import open_dataset
from clawcrane.datasets.own_video import FINGERPRINT_SAMPLE_BYTES, check_query_id
from clawcrane.datasets.records import Dataset, Query, Video
from clawcrane.errors import CacheError, ConfigError, DataError, WeightsError
from clawcrane.fingerprint import hash_json, tree_fingerprint
from clawcrane.pipeline import masks as mask_ops
from clawcrane.pipeline.language import UNK_ID, tokenize
from clawcrane.pipeline.head import FrameContext
from clawcrane.pipeline.ranking import Submission, summarise_tracks
from clawcrane.pipeline.scoring import score_video, video_context
from clawcrane.stages import detect, extract
from clawcrane.stages.track_rank import (
    QueryAnswer,
    append_rows,
    check_config,
    check_track_ids,
    query_answer,
    video_inputs,
)

log = logging.getLogger(__name__)

UNKNOWN_WARN_FRACTION = 0.5
"""Warn when more than this fraction of a sentence's words is unknown to a bi-LSTM head."""
CONTEXT_BUDGET = 2**26
"""Most numbers (4 bytes each) a ``VideoSession`` keeps of the head's sentence-free work on its video;
a longer video (T N^2 48 above it) recomputes that work per sentence instead."""


def _shown(text: str, limit: int = 80) -> str:
    """``repr(text)`` cut to about ``limit`` characters (a log line stays one readable line)."""
    r = repr(text)
    return r if len(r) <= limit else f"{r[:limit]}...' ({len(text)} characters)"


def default_cache_root(env: dict[str, str] | None = None) -> Path:
    """``$CLAWCRANE_CACHE/segment``, else ``$XDG_CACHE_HOME/clawcrane/segment``, else ``~/.cache/clawcrane/segment``."""
    env = os.environ if env is None else env
    if env.get("CLAWCRANE_CACHE"):
        return Path(env["CLAWCRANE_CACHE"]).expanduser() / "segment"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "clawcrane" / "segment"


def content_dataset(ds: Dataset) -> Dataset:
    """The one-video dataset without its sentences, fingerprinted by the frames and frame rate only."""
    (video,) = ds.videos.values()
    root = Path(ds.root)
    if root.is_dir():
        base, files = root, list(video.source.files)
    else:
        base, files = root.parent, [root]
    key = hash_json({"layout": "video-content-v1", "fps": video.fps,
                     "frames": tree_fingerprint(base, files, sample_bytes=FINGERPRINT_SAMPLE_BYTES)})
    return dataclasses.replace(ds, queries=[], fingerprint=key)


def feature_config(head_meta: dict[str, Any], backbone: str, head_path: Path, *, cache: Path, candidates: Path,
                   device: str) -> ExtractConfig:
    """The extract config of the head's feature space; an explicit other ``backbone`` is refused."""
    fcfg = dict((head_meta.get("feature_meta") or {}).get("config") or {})
    want = fcfg.get("backbone")
    if not want:
        raise ConfigError(f"{head_path}: the head records no feature backbone (trained by an older version); retrain it with `clawcrane train-head`")
    if backbone not in ("auto", "", want):
        raise ConfigError(f"--backbone {backbone}: the head {head_path} was trained on {want} features; "
                          f"drop --backbone (or pass --backbone {want}), or use a head trained on {backbone} features")
    names = {f.name for f in dataclasses.fields(ExtractConfig)}
    keep = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fcfg.items()
            if k in names and k in ("backbone", "weights", "levels", "input_size", "mask_threshold", "dtype")}
    return ExtractConfig(**keep, with_flip=False, cache=str(cache), candidates=str(candidates), device=device)


@dataclass(frozen=True)
class Track:
    """One TRM track of a query's ranking."""

    rank: int
    """0: the answer's track; then by score."""
    track_id: int
    score: float
    """The TRM's track score in the session's ``score_mode`` (mean, max or sum of its members' scores)."""
    frames: tuple[int, ...]
    """Frames on which the track has a candidate among the submitted ones."""


@dataclass
class Result:
    """One sentence's answer on one video: per processed frame, the ranked submissions."""

    query_id: str
    sentence: str
    video: Video
    frames: list[int]
    """Processed frames, ascending (frame position t -> frame number)."""
    height: int
    width: int
    submissions: list[list[Submission]]
    """Per frame position, ranked (rank 0 = the answer; k = -1: an empty mask)."""
    rows: list[np.ndarray] = field(repr=False)
    """Candidate ids of each frame position (the cache's rows)."""
    rles: list[bytes] = field(repr=False)
    """COCO RLE counts of every candidate of the video, by candidate id."""
    unknown_words: tuple[str, ...] = ()
    """Words of the sentence the head's vocabulary lacks (bi-LSTM heads)."""
    seconds: float = 0.0
    """Wall time of the head and the TRM for this sentence (shared when asked together)."""
    track_scores: dict[int, float] = field(default_factory=dict, repr=False)
    """The TRM's score (``score_mode``) of each top-k track; empty without the TRM."""
    answer_track: int = -1
    """The TRM's best track (-1: none, or the query abstained)."""

    def _rle(self, t: int, rank: int = 0) -> bytes | None:
        subs = [s for s in self.submissions[t] if s.rank == rank]
        if not subs or subs[0].k < 0:
            return None
        return self.rles[int(self.rows[t][subs[0].k])]

    def mask(self, frame: int) -> np.ndarray:
        """The answer's (H, W) bool mask on ``frame`` (all False where the query abstained)."""
        if frame not in self.frames:
            raise ValueError(f"frame {frame} was not processed (processed: {self.frames[0]}..{self.frames[-1]}, "
                             f"{len(self.frames)} frames)" if self.frames else f"frame {frame}: no frame was processed")
        rle = self._rle(self.frames.index(frame))
        if rle is None:
            return np.zeros((self.height, self.width), bool)
        return mask_ops.decode({"size": [self.height, self.width], "counts": rle})

    def masks(self) -> np.ndarray:
        """(T, H, W) bool: the answer on every processed frame, in ``frames`` order."""
        T, H, W = len(self.frames), self.height, self.width  # frames, height, width
        out = np.zeros((T, H, W), bool)
        for t in range(T):
            rle = self._rle(t)
            if rle is not None:
                out[t] = mask_ops.decode({"size": [H, W], "counts": rle})
        return out

    @property
    def score(self) -> float | None:
        """The answer track's score, the one ``abstain_below`` compares; without the TRM (no tracks) the best
        rank-0 score of any frame (each frame is held to ``abstain_below`` on its own). None when the query
        abstained everywhere."""
        tracks = self.tracks()
        if tracks:
            return tracks[0].score
        answered = [s.score for subs in self.submissions for s in subs if s.rank == 0 and s.k >= 0 and math.isfinite(s.score)]
        return max(answered) if answered else None

    def tracks(self) -> list[Track]:
        """The top-k tracks with a submitted row: the answer's first, then by the TRM's track score."""
        rows = ((f, s) for f, subs in zip(self.frames, self.submissions) for s in subs)
        return [Track(rank=i, track_id=tr.track_id, score=tr.score, frames=tr.frames)
                for i, tr in enumerate(summarise_tracks(rows, scores=self.track_scores, first=self.answer_track))]

    def table(self, meta: dict[str, Any] | None = None) -> pa.Table:
        """The rows in the predictions-file layout (``cache.predictions.COLUMNS``)."""
        cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        q = Query(query_id=self.query_id, video_id=self.video.video_id, sentence=self.sentence, instance_id="", frames=())
        vi = _Frames(frames=self.frames, rows=self.rows, height=self.height, width=self.width, rles=self.rles)
        empty = mask_ops.encode(np.zeros((self.height, self.width), bool))["counts"] if self.height * self.width else b""
        append_rows(cols, q, self.submissions, vi, empty)
        return make_table(cols, meta or {})

    def to_coco_rle(self) -> list[dict[str, Any]]:
        """The answer per processed frame: ``{"frame", "segmentation": {"size": [H, W], "counts": str} | None, "score"}``."""
        out = []
        for t, f in enumerate(self.frames):
            rle = self._rle(t)
            s = next((s for s in self.submissions[t] if s.rank == 0), None)
            seg = {"size": [self.height, self.width], "counts": rle.decode("ascii")} if rle is not None else None
            out.append({"frame": int(f), "segmentation": seg,
                        "score": float(s.score) if rle is not None and s is not None else None})
        return out

    def to_png(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/<frame:05d>.png`` (single channel, 0 / 255) for every processed frame; returns ``folder``."""
        from clawcrane.stages.mask_files import write_png

        folder = Path(folder)
        for f, m in zip(self.frames, self.masks()):
            write_png(folder / f"{f:05d}.png", m)
        return folder

    def overlay(self, path: str | os.PathLike) -> Path:
        """Write the video with the answer (and two runners-up, faintly) drawn as the mp4 ``path``; returns it."""
        from clawcrane.atomic import atomic_path
        from clawcrane.stages.render import render_overlays

        if self.video.source is None:
            raise ConfigError(f"overlay: the frames of video {self.video.video_id!r} are unknown to this session; open it "
                              f"with VideoSession.open(VIDEO, ...) or pass dataset= to VideoSession")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".overlay-") as tmp:
            r = render_overlays(self.video, self.table(), tmp, sentences={self.query_id: self.sentence}, write_masks=False)
            with atomic_path(path) as out:
                os.replace(r.overlay, out)
        return path


@dataclass
class _Frames:
    """What ``append_rows`` reads of a video (``track_rank.VideoInputs``' frame part)."""

    frames: list[int]
    rows: list[np.ndarray]
    height: int
    width: int
    rles: list[bytes]


class VideoSession:
    """One video, its candidates and features in memory, and a head: ``query(sentence)`` answers in milliseconds."""

    def __init__(self, *, head: str | os.PathLike, features: str | os.PathLike, video_id: str | None = None,
                 dataset: Dataset | None = None, device: str = "cpu", track: TrackRankConfig | None = None,
                 prepare_seconds: float = 0.0):
        """Read ``video_id`` (default: the only video) of the feature artifact ``features`` and load ``head``.

        ``dataset`` gives the video's frames (for ``Result.overlay``) and size; ``track`` the TRM
        options (default: `track-rank`'s defaults; ``tracks="imported"`` needs candidates imported from a
        tracking system, ``detector="import:KIND:PATH"``).
        """
        self.track = dataclasses.replace(track or TrackRankConfig(), split="all")
        check_config(self.track)
        self.head_path = head_file(head)
        if not self.head_path.is_file():
            raise WeightsError(f"{self.head_path}: head checkpoint not found; pass the run folder or .pt of `clawcrane train-head`")
        self.features = open_features(features)
        candidates = self.features.require_complete_inputs()
        ids = self.features.video_ids()
        if video_id is None:
            if len(ids) != 1:
                raise ConfigError(f"{self.features.path}: holds {len(ids)} videos; pass video_id= (one of {ids[:3]} ...)")
            video_id = ids[0]
        if video_id not in ids:
            raise CacheError(f"{self.features.path}: has no features for video {video_id!r}; run `clawcrane extract` on it")
        self.model, self.head_config, self.vocab, meta = load_head(self.head_path)
        check_head_features(meta, self.features.key, self.features.meta, self.features.path, same_dataset=False)
        C = self.features.channels  # channels of the cached features
        if C and int(meta.get("feat_dim", C)) != C:
            raise CacheError(f"{self.features.path}: features have C={C} but the head {self.head_path} expects "
                             f"C={meta['feat_dim']}; use the feature cache the head was trained on")
        check_track_ids(self.track, candidates, [video_id])  # --tracks imported needs an import's track ids
        if dataset is not None:
            if not isinstance(dataset, Dataset):
                raise ConfigError(f"dataset= takes a clawcrane Dataset (clawcrane.datasets.open_dataset(PATH)), "
                                  f"got {type(dataset).__name__}")
            self.features.check_dataset(dataset)  # the frames drawn must be the ones the features came from
            if video_id not in dataset.videos:
                raise ConfigError(f"{dataset.root}: has no video {video_id!r}, which {self.features.path} holds; "
                                  f"pass the dataset the features were extracted from")
        self.dataset = dataset
        video = dataset.videos.get(video_id) if dataset is not None else None
        self.vi = video_inputs(video_id, [], candidates=candidates, features=self.features,
                               dataset=dataset or Dataset(name="cache", root=self.features.path, videos={}, queries=[]),
                               cand_ids=set(candidates.video_ids()), feat_ids=set(ids), motion=self.head_config.motion)
        self.video = video or Video(video_id, None, 0.0, self.vi.width, self.vi.height, len(self.vi.frames), "")
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.prepare_seconds = prepare_seconds
        self.cached = False
        """True when ``open`` found both the candidates and the features in the cache."""
        self.backbone = str((self.features.meta.get("config") or {}).get("backbone", ""))
        self._asked = 0
        self._context: FrameContext | None = None

    @classmethod
    def open(cls, video: str | os.PathLike, *, head: str | os.PathLike, detector: str, cache: str | os.PathLike | None = None,
             device: str = "auto", frame_stride: int = 1, refine_masks: str = "none", backbone: str = "auto",
             track: TrackRankConfig | None = None, detector_factory: Callable[..., Any] | None = None) -> VideoSession:
        """Detect and extract ``video`` (an mp4 or a frame folder) into ``cache`` (default: segment's root) unless cached; open it."""
        t0 = time.perf_counter()
        if cache and Path(cache).exists() and not Path(cache).is_dir():
            raise ConfigError(f"{cache}: is a file, not a cache folder; pass cache= a folder (it is created if absent)")
        from clawcrane.datasets.layout import detect_layout

        layout = detect_layout(video)
        if layout != "video":
            raise ConfigError(f"{video}: a session opens one video (an mp4 or a frame folder), not a dataset ({layout} layout); "
                              f"for a video of an extracted dataset use VideoSession(head=..., features=..., video_id=..., "
                              f"dataset=...)")
        ds = open_dataset(video, queries=["(session)"])
        if ds.name != "video" or len(ds.videos) != 1:
            raise ConfigError(f"{video}: a session opens one video (an mp4 or a frame folder), not a {ds.name} dataset")
        if not detector:
            raise ConfigError("VideoSession.open needs detector= (a train-detector checkpoint PATH, r50-fpn, import:PATH or import:KIND:PATH)")
        cache = Path(cache) if cache else default_cache_root()
        head_path = head_file(head)
        if not head_path.is_file():
            raise WeightsError(f"{head_path}: head checkpoint not found; pass the run folder or .pt of `clawcrane train-head`")
        _, _, _, meta = load_head(head_path)
        content = content_dataset(ds)
        # skip_bad: an undecodable clip is reported here in the session's words
        # an import's masks were already chosen by the system that made them, on its own score scale: keep them all
        # (a detector's candidates keep detect's default score threshold)
        det_cfg = DetectConfig(detector=detector, frame_stride=frame_stride, refine_masks=refine_masks, device=device,
                               skip_bad=True, score_threshold=default_score_threshold(detector))
        det = detect.run(det_cfg, content, cache, detector_factory=detector_factory or build_detector)
        if det.bad:
            raise DataError(f"{video}: the video could not be decoded ({det.bad[0][1]}); re-encode it as mp4 (H.264/mp4v)")
        ext_cfg = dataclasses.replace(
            feature_config(meta, backbone, head_path, cache=cache, candidates=det.path, device=device), skip_bad=True)
        ext = extract.run(ext_cfg, dataset=content)
        fc = open_features(ext.path)
        for vid in fc.video_ids():
            if fc.video(vid).status != "ok":
                raise DataError(f"{video}: frames of the video could not be decoded; re-encode it as mp4 (H.264/mp4v)")
        session = cls(head=head_path, features=ext.path, dataset=content, device=device, track=track,
                      prepare_seconds=time.perf_counter() - t0)
        session.cached = det.cache_hit and ext.hit
        return session

    def unknown_words(self, sentence: str) -> tuple[str, ...]:
        """The words of ``sentence`` the head's vocabulary lacks (none for a MiniLM head: it reads any word)."""
        if self.head_config.text_encoder != "lstm":
            return ()
        words = tokenize(sentence, self.head_config.max_words)
        return tuple(w for w, i in zip(words, self.vocab.ids(words)) if i == UNK_ID)

    def query(self, sentence: str, *, query_id: str | None = None) -> Result:
        """Answer one sentence (head + TRM on the tensors in memory)."""
        if not isinstance(sentence, str):
            raise ConfigError(f"query: takes one sentence (a string), got {type(sentence).__name__}; "
                              f"use query_all(list) for several")
        return self.query_all([sentence], query_ids=[query_id] if query_id is not None else None)[0]

    def query_all(self, sentences: Sequence[str], *, query_ids: Sequence[str] | None = None) -> list[Result]:
        """Answer several sentences at once (one head pass); ``query_ids`` default to q1, q2, ..."""
        if not isinstance(sentences, Sequence) or isinstance(sentences, (str, bytes)):
            raise ConfigError(f"query_all: takes a list of sentences, got {type(sentences).__name__} {sentences!r:.60}; "
                              f"use query(sentence) or query_all([sentence])")
        sentences = list(sentences)
        bad = next((s for s in sentences if not isinstance(s, str)), None)
        if bad is not None:
            raise ConfigError(f"query: sentences must be strings, got {type(bad).__name__} {bad!r:.60}")
        if not sentences:
            raise ConfigError("query: every sentence must hold at least one word")
        wordless = next((s for s in sentences if not tokenize(s, 1)), None)
        if wordless is not None:  # '', '!!!', an emoji: nothing a head can read
            raise ConfigError(f"query: every sentence must hold at least one word (letters or digits), got {wordless!r:.60}")
        if query_ids is None:
            query_ids = [f"q{self._asked + i + 1}" for i in range(len(sentences))]
        if not isinstance(query_ids, Sequence) or isinstance(query_ids, (str, bytes)) or len(query_ids) != len(sentences):
            n = (f"{len(query_ids)} ids" if isinstance(query_ids, Sequence) and not isinstance(query_ids, (str, bytes))
                 else f"a {type(query_ids).__name__}")
            raise ConfigError(f"query_all: query_ids must be a list with one id per sentence "
                              f"({len(sentences)} sentences, got {n})")
        query_ids = [check_query_id(q, "query_ids") for q in query_ids]
        if len(set(query_ids)) != len(query_ids):
            raise ConfigError(f"query_all: query_ids must be unique, got {query_ids}")
        self._asked += len(sentences)
        t0 = time.perf_counter()
        vi = self.vi
        if vi.has_candidates:
            text, lengths = sentence_inputs(self.head_config, self.vocab, list(sentences), cache_root=self.features.path.parent)
            T, N = vi.valid.shape  # (T, N) frames, candidates
            if self._context is None and T * N * N * 48 <= CONTEXT_BUDGET:  # the head's sentence-free work, once
                self._context = video_context(self.model, vi.feat, vi.pos, vi.valid)
            emb, sim = score_video(self.model, text, lengths, vi.feat, vi.pos, vi.valid, batch_size=self.track.batch_size,
                                   context=self._context)
            emb, sim = emb.cpu().numpy(), sim.cpu().numpy()
            answers = [query_answer(emb[i], sim[i], vi, self.track) for i in range(len(sentences))]
        else:
            from clawcrane.pipeline.ranking import abstention

            answers = [QueryAnswer([[abstention()] for _ in vi.frames], {}, -1) for _ in sentences]
        seconds = (time.perf_counter() - t0) / len(sentences)
        results = []
        for qid, sentence, answer in zip(query_ids, sentences, answers):
            unknown = self.unknown_words(sentence)
            n_words = len(tokenize(sentence, self.head_config.max_words))
            n_all = len(tokenize(sentence, 10**6))
            if self.head_config.text_encoder == "lstm" and n_all > n_words:
                log.warning("%s: %d words, but the head reads only the first %d (its max_words); the words from %s on "
                            "are ignored: shorten the sentence", _shown(sentence), n_all, n_words,
                            _shown(tokenize(sentence, 10**6)[n_words], 40))
            if unknown and len(unknown) > UNKNOWN_WARN_FRACTION * n_words:
                rest = ("no word of it is known, so the answer is a guess" if len(unknown) >= n_words
                        else "the answer rests on the other words")
                log.warning("%s: %d of %d words are unknown to the head (%s); it reads them as <unk>: %s",
                            _shown(sentence), len(unknown), n_words, _shown(", ".join(unknown), 200), rest)
            results.append(Result(query_id=qid, sentence=sentence, video=self.video, frames=list(vi.frames),
                                  height=vi.height, width=vi.width, submissions=answer.subs, rows=vi.rows, rles=vi.rles,
                                  unknown_words=unknown, seconds=seconds, track_scores=answer.track_scores,
                                  answer_track=answer.answer_track))
        return results
