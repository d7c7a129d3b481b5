"""A per-video table store in HDF5: the shared mechanism under the candidate and feature caches.

One artifact is one folder, named ``<stage>-<key16>``::

    <root>/<stage>-<key16>/
        meta.json                       stage, schema, full key, config, upstream keys, version
        parts/<video>.h5                one finished video each, written atomically (resume unit)
        shard-IIII-of-NNNN.h5           a finished shard: its videos consolidated, parts removed
        data.h5                         everything in one file (a single run, or `cache merge`)

Every .h5 file repeats ``meta.json`` (less its list of videos) in its root attribute ``meta``, and
holds one group per video (``/videos/<escaped id>``) with array datasets (the columns) and scalar
attributes. A video whose source could not be read is stored with ``status = "bad"`` and its error,
so a resumed run does not retry it and readers can report it. Because a video becomes visible only
by the rename of its finished part file, a run killed at any moment leaves no half-written video
behind.

Integrity (issue 15):

* Completeness: ``meta.json`` lists the ``videos`` the stage was asked to process (all shards) and
  the command that completes the artifact (``complete_with``). An artifact is complete when every
  listed video is present (ok or marked bad); ``require_complete`` refuses an incomplete one with
  the message `cache verify` prints. Artifacts written before the list was recorded fall back to
  ``dataset.num_videos`` (a count), or are taken as complete when they record neither.
* Checksums: every column (dataset) carries the BLAKE2b-128 of its values in its attribute
  ``checksum`` and every video group the checksum of its scalar attributes (``attrs_checksum``),
  computed when written. `cache verify` recomputes them all; readers do too when ``verify`` is set
  (``Store(path, verify=True)``, or the environment variable ``CLAWCRANE_VERIFY_READS=1``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from clawcrane import __version__
from clawcrane.atomic import atomic_path, clean_stale_temps, write_json
from clawcrane.errors import CacheError
from clawcrane.fingerprint import short

log = logging.getLogger(__name__)

META = "meta.json"
MERGED = "data.h5"
_SHARD_RE = re.compile(r"^shard-(\d{4})-of-(\d{4})\.h5$")
VLEN_BYTES = h5py.vlen_dtype(np.dtype("uint8"))
STALE_TEMP_S = 3600.0
"""A temp file untouched this long (seconds) belongs to a killed run and is removed on open."""
CHECKSUM = "checksum"
"""Attribute of every column dataset: ``blake2b-128:<hex>`` of its values (``column_checksum``)."""
ATTRS_CHECKSUM = "attrs_checksum"
"""Attribute of every video group: the checksum of its other attributes (``attrs_checksum``)."""
CHECKSUM_ALGO = "blake2b-128"
VERIFY_ENV = "CLAWCRANE_VERIFY_READS"
"""Set to 1 to check every video's checksums whenever it is read (default: only `cache verify`)."""
SHOW_IDS = 3
"""How many missing video ids a completeness message names."""


def escape_id(video_id: str) -> str:
    """A video id as a file and HDF5 name ('/' and '%' escaped, reversible)."""
    return video_id.replace("%", "%25").replace("/", "%2F")


def unescape_id(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")


def artifact_dir(root: str | os.PathLike, stage: str, key: str) -> Path:
    return Path(root) / f"{stage}-{short(key)}"


@dataclass
class VideoRecord:
    """One video's rows: equal-length column arrays plus scalar attributes."""

    video_id: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    """Column name -> array whose first axis is the row (candidate) axis; ``bytes`` lists allowed."""
    attrs: dict[str, Any] = field(default_factory=dict)
    """Scalars: height, width, num_frames, status ('ok' or 'bad'), error, ..."""

    @property
    def ok(self) -> bool:
        return self.attrs.get("status", "ok") == "ok"


def column_checksum(value: np.ndarray | list[bytes]) -> str:
    """``blake2b-128:<hex>`` of a column: dtype, shape and bytes of an array; lengths and bytes of a bytes list."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(value, list):
        h.update(b"bytes")
        for b in value:
            b = bytes(b)
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    else:
        a = np.ascontiguousarray(value)
        if a.dtype.byteorder == ">":  # the same values hash the same whatever their byte order
            a = a.astype(a.dtype.newbyteorder("<"))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return f"{CHECKSUM_ALGO}:{h.hexdigest()}"


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def attrs_checksum(attrs: Mapping[str, Any]) -> str:
    """Checksum of a video's scalar attributes as HDF5 gives them back (``ATTRS_CHECKSUM`` itself left out)."""
    plain = {k: _plain(v) for k, v in attrs.items() if k != ATTRS_CHECKSUM}
    h = hashlib.blake2b(json.dumps(plain, sort_keys=True, default=str).encode(), digest_size=16)
    return f"{CHECKSUM_ALGO}:{h.hexdigest()}"


def _write_group(g: h5py.Group, rec: VideoRecord, compression: str | None) -> None:
    for name, value in rec.attrs.items():
        g.attrs[name] = value
    g.attrs[ATTRS_CHECKSUM] = attrs_checksum(dict(g.attrs.items()))  # as read back, so reading computes the same
    for name, arr in rec.arrays.items():
        if isinstance(arr, list):  # list of bytes (RLE counts) -> vlen uint8
            d = g.create_dataset(name, shape=(len(arr),), dtype=VLEN_BYTES)
            for i, b in enumerate(arr):
                d[i] = np.frombuffer(b, dtype=np.uint8)
            d.attrs["kind"] = "bytes"
            d.attrs[CHECKSUM] = column_checksum(arr)
            continue
        arr = np.asarray(arr)
        kw: dict[str, Any] = {}
        if compression and arr.size >= 64 and arr.ndim >= 1 and arr.shape[0] > 0:
            kw = {"compression": compression, "chunks": True}
        d = g.create_dataset(name, data=arr, **kw)
        d.attrs[CHECKSUM] = column_checksum(arr)


def _read_group(g: h5py.Group, video_id: str, check: bool = True) -> tuple[VideoRecord, list[str]]:
    """The record, and with ``check`` its checksum findings (empty: all match).

    A mismatch reads ``"column 'score'"`` or ``"attribute block"``; a column or group without a
    checksum (written before checksums existed) is ``"no checksum: ..."``, not a mismatch.
    """
    arrays: dict[str, Any] = {}
    found: list[str] = []
    for name, d in g.items():
        value = [bytes(x) for x in d[()]] if d.attrs.get("kind") == "bytes" else d[()]
        arrays[name] = value
        if check:
            want = d.attrs.get(CHECKSUM)
            if want is None:
                found.append(f"no checksum: column {name!r}")
            elif _plain(want) != column_checksum(value):
                found.append(f"column {name!r}")
    attrs = {k: _plain(v) if isinstance(v, np.generic) else v for k, v in g.attrs.items() if k != ATTRS_CHECKSUM}
    if check:
        want = g.attrs.get(ATTRS_CHECKSUM)
        if want is None:
            found.append("no checksum: attribute block")
        elif _plain(want) != attrs_checksum(dict(g.attrs.items())):
            found.append("attribute block")
    return VideoRecord(video_id=video_id, arrays=arrays, attrs=attrs), found


def checksum_mismatches(found: list[str]) -> list[str]:
    """The real mismatches among ``_read_group``'s findings (missing checksums left out)."""
    return [f for f in found if not f.startswith("no checksum")]


@dataclass
class Completeness:
    """Which of the videos an artifact was asked to hold are there (ok or marked bad)."""

    expected: int | None
    """Videos the stage was asked to process (None: the artifact does not record it)."""
    present: int
    missing: list[str]
    """Missing ids (empty when only a count is recorded; see ``missing_count``)."""
    missing_count: int = 0

    @property
    def complete(self) -> bool:
        return self.missing_count == 0

    def describe(self) -> str:
        """``"2 of 8 videos done (6 missing: a, b, c and 3 more)"``."""
        what = f"{self.missing_count} missing"
        if self.missing:
            more = len(self.missing) - SHOW_IDS
            what += ": " + ", ".join(self.missing[:SHOW_IDS]) + (f" and {more} more" if more > 0 else "")
        return f"{self.present} of {self.expected} videos done ({what})"


class Store:
    """Read/write access to one artifact folder."""

    def __init__(self, path: str | os.PathLike, *, verify: bool | None = None):
        self.path = Path(path)
        self._index: dict[str, Path] | None = None
        self._meta: dict[str, Any] | None = None
        self.verify = os.environ.get(VERIFY_ENV, "") not in ("", "0") if verify is None else verify
        """Check a video's checksums whenever it is read (``read`` raises on a mismatch)."""

    # ---- creation and metadata ---------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, meta: Mapping[str, Any]) -> Store:
        """Open ``path`` for writing; creates it with ``meta`` or checks an existing one matches."""
        store = cls(path)
        meta = dict(meta, package_version=__version__, checksums=CHECKSUM_ALGO)
        if (store.path / META).exists():
            old = store.meta
            if old.get("key") != meta.get("key"):
                raise CacheError(
                    f"{store.path}: holds key {short(old.get('key', '?'))} but this run has key "
                    f"{short(meta.get('key', '?'))}; remove the folder or choose another --cache"
                )
        else:
            store.path.mkdir(parents=True, exist_ok=True)
            write_json(store.path / META, meta)
        (store.path / "parts").mkdir(exist_ok=True)
        # parallel shards share the folder: only temps untouched for a while are leftovers
        clean_stale_temps(store.path / "parts", min_age_s=STALE_TEMP_S)
        clean_stale_temps(store.path, min_age_s=STALE_TEMP_S)
        return store

    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is not None:
            return self._meta
        p = self.path / META
        try:
            self._meta = json.loads(p.read_text())
            if not isinstance(self._meta, dict):
                self._meta = None
                raise ValueError("not a JSON object")
            return self._meta
        except FileNotFoundError:
            raise CacheError(f"{self.path}: not a ClawCrane cache ({META} missing); point to a folder made by a clawcrane stage") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise CacheError(f"{p}: corrupted ({err}); delete the folder and re-run the stage that made it") from None

    @property
    def key(self) -> str:
        return self.meta["key"]

    def _file_meta(self) -> str:
        """The meta every data file repeats (without the list of videos, which can be long)."""
        return json.dumps({k: v for k, v in self.meta.items() if k != "videos"})

    # ---- completeness -----------------------------------------------------------------------
    def expected_videos(self) -> list[str] | None:
        """The videos the stage was asked to process (every shard), or None when not recorded."""
        videos = self.meta.get("videos")
        return [str(v) for v in videos] if isinstance(videos, list) else None

    def completeness(self, videos: Iterable[str] | None = None) -> Completeness:
        """Which of ``videos`` (default: every expected video) are present."""
        index = self.index()
        wanted = list(videos) if videos is not None else self.expected_videos()
        if wanted is None:  # written before the list was recorded: a count, when there is one
            count = self.meta.get("dataset", {}).get("num_videos") if self.meta.get("stage") == "detect" else None
            if count is None:
                return Completeness(None, len(index), [])
            return Completeness(int(count), len(index), [], max(0, int(count) - len(index)))
        missing = [v for v in wanted if v not in index]
        return Completeness(len(wanted), len(wanted) - len(missing), missing, len(missing))

    def complete_with(self) -> str:
        """The command that completes (or rebuilds) this artifact, as its stage recorded it."""
        cmd = self.meta.get("complete_with")
        if isinstance(cmd, str) and cmd:
            return cmd.replace("{cache}", shlex.quote(os.path.abspath(self.path.parent)))  # runs from any folder
        stage = self.meta.get("stage", "STAGE")
        return f"clawcrane {stage} ... --cache {shlex.quote(os.path.abspath(self.path.parent))}"

    def incomplete_message(self, c: Completeness) -> str:
        """One line: what is missing and the command that completes it (`cache verify` and the stages say the same)."""
        return (f"{self.path}: incomplete artifact, {c.describe()}; the run that wrote it was killed or failed, or "
                f"some of its shards have not run yet: "
                f"complete it with `{self.complete_with()}` (it resumes where it stopped; with --shard or a "
                f"SLURM array, re-running the failed shard's task does the same for its videos)")

    def require_complete(self, videos: Iterable[str] | None = None) -> None:
        """Raise ``CacheError`` (``incomplete_message``) unless every one of ``videos`` (default: all expected) is present."""
        c = self.completeness(videos)
        if not c.complete:
            raise CacheError(self.incomplete_message(c))

    # ---- writing ----------------------------------------------------------------------------
    def write_video(self, rec: VideoRecord, compression: str | None = "gzip") -> Path:
        """Write one finished video as ``parts/<id>.h5`` atomically."""
        target = self.path / "parts" / f"{escape_id(rec.video_id)}.h5"
        with atomic_path(target) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["meta"] = self._file_meta()
                _write_group(f.require_group("videos").create_group(escape_id(rec.video_id)), rec, compression)
        self._index = None
        return target

    def consolidate(self, video_ids: Iterable[str], target_name: str, compression: str | None = "gzip") -> Path:
        """Copy the given videos (from any file) into ``target_name`` atomically; drop their parts."""
        video_ids = list(video_ids)
        index = self.index()
        missing = [v for v in video_ids if v not in index]
        if missing:
            raise CacheError(f"{self.path}: videos not finished yet: {missing[:5]}; re-run the stage to complete them")
        target = self.path / target_name
        with atomic_path(target) as tmp:
            with h5py.File(tmp, "w") as out:
                out.attrs["meta"] = self._file_meta()
                videos = out.require_group("videos")
                for vid in video_ids:
                    src_path = index[vid]
                    with h5py.File(src_path, "r") as src:
                        src.copy(src["videos"][escape_id(vid)], videos, name=escape_id(vid))
        sources = {index[v] for v in video_ids} - {target}
        wanted = set(video_ids)
        for p in sources:
            if p.parent.name == "parts":
                p.unlink(missing_ok=True)
            elif target.name == MERGED and _SHARD_RE.match(p.name) and self._file_videos(p) <= wanted:
                p.unlink(missing_ok=True)  # an unsharded run completed a sharded one: data.h5 holds it all now
        self._index = None
        return target

    @staticmethod
    def _file_videos(path: Path) -> set[str]:
        with h5py.File(path, "r") as f:
            return {unescape_id(n) for n in (f["videos"].keys() if "videos" in f else [])}

    def merge(self) -> Path:
        """Consolidate every shard file and part into ``data.h5``; remove the sources."""
        index = self.index()
        sources = set(index.values())
        target = self.consolidate(sorted(index), MERGED)
        for p in sources - {target}:
            p.unlink(missing_ok=True)
        self._index = None
        return target

    # ---- reading ----------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """Data files: data.h5, shard files, then parts."""
        out = []
        if (self.path / MERGED).exists():
            out.append(self.path / MERGED)
        out += sorted(p for p in self.path.glob("shard-*.h5") if _SHARD_RE.match(p.name))
        out += sorted((self.path / "parts").glob("*.h5")) if (self.path / "parts").is_dir() else []
        return out

    def index(self) -> dict[str, Path]:
        """video_id -> the file holding it (the first one found, in ``files()`` order)."""
        if self._index is None:
            idx: dict[str, Path] = {}
            for p in self.files():
                try:
                    with h5py.File(p, "r") as f:
                        names = list(f["videos"].keys()) if "videos" in f else []
                except OSError as err:
                    raise CacheError(f"{p}: corrupted HDF5 file ({err}); delete it and re-run the stage to rebuild it") from None
                for n in names:
                    idx.setdefault(unescape_id(n), p)
            self._index = idx
        return self._index

    def video_ids(self) -> list[str]:
        return sorted(self.index())

    def has(self, video_id: str) -> bool:
        return video_id in self.index()

    def read(self, video_id: str, *, verify: bool | None = None) -> VideoRecord:
        """One video's record; with ``verify`` (default: the store's) a checksum mismatch raises ``CacheError``."""
        verify = self.verify if verify is None else verify
        rec, found = self._read(video_id, check=verify)
        bad = checksum_mismatches(found)
        if bad:
            p = self.index()[video_id]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise CacheError(
                f"{p}: video {video_id!r}: {bad[0]}{more} does not match its checksum (the bytes changed on disk since "
                f"they were written); delete {p} and re-run `{self.complete_with()}`"
            )
        return rec

    def read_checked(self, video_id: str) -> tuple[VideoRecord, list[str]]:
        """The record and its checksum findings (see ``_read_group``); never raises for a mismatch."""
        return self._read(video_id, check=True)

    def _read(self, video_id: str, check: bool) -> tuple[VideoRecord, list[str]]:
        try:
            p = self.index()[video_id]
        except KeyError:
            raise CacheError(f"{self.path}: video {video_id!r} is not in this cache; re-run the stage over it") from None
        try:
            with h5py.File(p, "r") as f:
                return _read_group(f["videos"][escape_id(video_id)], video_id, check)
        except (OSError, KeyError, ValueError) as err:
            raise CacheError(f"{p}: cannot read video {video_id!r} ({err}); delete the file and re-run the stage") from None

    def summaries(self) -> dict[str, dict[str, Any]]:
        """video_id -> its scalar attributes plus ``rows`` (length of the ``frame`` column); no arrays read."""
        out: dict[str, dict[str, Any]] = {}
        by_file: dict[Path, list[str]] = {}
        for vid, p in self.index().items():
            by_file.setdefault(p, []).append(vid)
        for p, vids in by_file.items():
            try:
                with h5py.File(p, "r") as f:
                    for vid in vids:
                        g = f["videos"][escape_id(vid)]
                        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in g.attrs.items() if k != ATTRS_CHECKSUM}
                        attrs["rows"] = int(g["frame"].shape[0]) if "frame" in g else 0
                        out[vid] = attrs
            except (OSError, KeyError) as err:
                raise CacheError(f"{p}: cannot read ({err}); delete the file and re-run the stage") from None
        return out

    def shard_file_name(self, shard: int, num_shards: int) -> str:
        return MERGED if num_shards == 1 else f"shard-{shard:04d}-of-{num_shards:04d}.h5"

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())


def find_artifacts(root: str | os.PathLike, stage: str | None = None) -> list[Store]:
    """Every artifact folder directly under ``root`` (optionally of one stage)."""
    root = Path(root)
    if (root / META).exists():
        return [Store(root)]
    out = []
    for p in sorted(root.glob("*/" + META)) if root.is_dir() else []:
        s = Store(p.parent)
        if stage is None or s.meta.get("stage") == stage:
            out.append(s)
    return out


class StageArtifact:
    """Read access to one artifact folder of a known stage (base of the candidate/feature caches).

    Subclasses set ``STAGE``, ``NOUN`` (for messages), ``MADE_BY`` (the command that writes it)
    and implement ``video(video_id)``.
    """

    STAGE = ""
    NOUN = "cache"
    MADE_BY = ""

    def __init__(self, store: Store):
        self.store = store
        meta = store.meta
        if meta.get("stage") != self.STAGE:
            raise CacheError(
                f"{store.path}: is a '{meta.get('stage')}' cache, not a {self.NOUN}; "
                f"point to the folder `{self.MADE_BY}` wrote"
            )
        self.meta = meta

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def key(self) -> str:
        return self.meta["key"]

    def video_ids(self) -> list[str]:
        return self.store.video_ids()

    def require_complete(self, videos: Iterable[str] | None = None) -> None:
        """Refuse an incomplete artifact (``Store.require_complete``): the same message as `cache verify`."""
        self.store.require_complete(videos)

    @classmethod
    def open(cls, path: str | os.PathLike, missing_hint: str):
        """The artifact folder ``path``, or the single artifact of this stage under a cache root."""
        found = find_artifacts(path, cls.STAGE)
        if not found:
            raise CacheError(f"{path}: no {cls.NOUN} here; {missing_hint}")
        if len(found) > 1:
            names = ", ".join(s.path.name for s in found)
            raise CacheError(f"{path}: holds several {cls.NOUN}s ({names}); pass one of those folders")
        return cls(found[0])
