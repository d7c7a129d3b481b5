"""Content fingerprints (cache keys), chained from upstream keys, as HF datasets and DVC do.

``key = sha256(stage, stage_version, upstream keys, output-affecting config)``. Runtime-only
options (batch size, workers, device, shard) never enter a key, so they never invalidate a cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from clawcrane.errors import ClawcraneError

log = logging.getLogger(__name__)

KEY_LEN = 16
"""Hex characters of a key shown in file names; the full digest is stored in artifacts."""

_SAMPLE_BYTES = 1 << 20


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj)
    return obj


def stable_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) of dicts, lists, dataclasses and scalars."""
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))


def hash_json(obj: Any) -> str:
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()


def chain_key(stage: str, version: int, upstream: Mapping[str, str], config: Any) -> str:
    """The key of an artifact: its stage and version, its inputs' keys, its output-affecting config."""
    return hash_json({"stage": stage, "version": version, "upstream": dict(upstream), "config": config})


def _digest(f: BinaryIO, size: int, full: bool, sample_bytes: int) -> str:
    h = hashlib.sha256()
    h.update(str(size).encode())
    if full or size <= 2 * sample_bytes:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    else:
        h.update(f.read(sample_bytes))
        f.seek(size - sample_bytes)
        h.update(f.read(sample_bytes))
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike, full: bool = False, *, sample_bytes: int = _SAMPLE_BYTES) -> str:
    """Hash of a file's size and content (first and last ``sample_bytes`` unless ``full``).

    Sampling keeps fingerprinting a 30 GB video collection cheap; any edit to a clip changes its
    size or its head/tail bytes in practice (container headers and indexes sit there). Files of
    at most ``2 * sample_bytes`` are hashed whole.
    """
    with open(path, "rb") as f:
        return _digest(f, os.fstat(f.fileno()).st_size, full, sample_bytes)


def tree_fingerprint(
    root: str | os.PathLike, files: Iterable[str | os.PathLike], *, sample_bytes: int = _SAMPLE_BYTES
) -> str:
    """Fingerprint of a set of files under ``root``: their relative paths and contents (sampled).

    A file that is absent (or not a regular file) enters as ``<missing>``. ``sample_bytes`` is
    passed to ``file_fingerprint``; the default keeps existing keys unchanged. One stat and one
    open per file: a dataset of 17k files (A2D) is fingerprinted in about a second.
    """
    root = Path(root)
    prefix = str(root).rstrip("/") + "/"
    h = hashlib.sha256()
    for f in sorted(Path(f) for f in files):
        text = str(f)
        if f.is_absolute():
            rel = text[len(prefix) :] if text.startswith(prefix) else str(f.relative_to(root))
        else:
            rel = text
        h.update(rel.encode())
        try:
            with open(os.path.join(prefix, rel), "rb") as fh:
                st = os.fstat(fh.fileno())
                digest = _digest(fh, st.st_size, False, sample_bytes) if stat.S_ISREG(st.st_mode) else None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            digest = None
        h.update(digest.encode() if digest else b"<missing>")
    return h.hexdigest()


def short(key: str) -> str:
    return key[:KEY_LEN]


# ---- does an artifact belong to this dataset? -------------------------------------------------------------
@dataclass(frozen=True)
class DatasetMatch:
    """How the dataset an artifact records compares with the dataset given now (``match_dataset``)."""

    same: bool | None
    """True: the same dataset; False: another; None: cannot tell (the media are absent and the
    artifact records no annotation fingerprint: it was written before they were)."""
    by: str
    """'fingerprint' (the full one), 'annotations' (the media are absent), or '' when there was nothing to compare."""
    recorded: str
    """The artifact's fingerprint that was compared."""
    current: str
    """The dataset's fingerprint it was compared with."""
    fingerprint: str
    """The dataset's full fingerprint: the recorded one when only the annotations could be compared, so
    that keys chained from it and artifacts recording it do not depend on whether the media are there."""

    @property
    def what(self) -> str:
        return "annotation fingerprint" if self.by == "annotations" else "fingerprint"


def match_dataset(recorded: Mapping[str, Any] | None, *, fingerprint: str, annotation_fingerprint: str = "",
                  media_complete: bool = True) -> DatasetMatch:
    """Compare an artifact's ``dataset`` record (``fingerprint``, ``annotation_fingerprint``) with a dataset.

    The full fingerprints are compared (they cover the media); when they differ and the dataset's
    media are absent (opened without them, for the stages that decode no frame), the annotation
    fingerprints are compared instead. An artifact or dataset without a fingerprint is not compared.
    """
    info = recorded or {}
    fp, afp = str(info.get("fingerprint") or ""), str(info.get("annotation_fingerprint") or "")
    if not fp or not fingerprint:
        return DatasetMatch(True, "", fp, fingerprint, fingerprint or fp)
    if fp == fingerprint or media_complete:
        return DatasetMatch(fp == fingerprint, "fingerprint", fp, fingerprint, fingerprint)
    if not afp or not annotation_fingerprint:
        return DatasetMatch(None, "annotations", afp, annotation_fingerprint, fp)
    return DatasetMatch(afp == annotation_fingerprint, "annotations", afp, annotation_fingerprint, fp)


def check_dataset_match(
    recorded: Mapping[str, Any] | None,
    dataset: Any,
    *,
    artifact: str | os.PathLike,
    mismatch: Callable[[DatasetMatch], str],
    error: type[ClawcraneError],
) -> str:
    """Refuse an artifact made for another dataset; returns the dataset's full fingerprint (``DatasetMatch.fingerprint``).

    ``dataset``: a ``datasets.records.Dataset`` (its ``root``, ``fingerprint``, ``annotation_fingerprint``,
    ``missing_media``); ``mismatch(match)``: the one-line message when it is another dataset. The
    media being absent is said in a log line; an artifact that predates annotation fingerprints is
    refused then, since only the media could tell.
    """
    missing = dict(getattr(dataset, "missing_media", {}) or {})
    m = match_dataset(recorded, fingerprint=dataset.fingerprint,
                      annotation_fingerprint=getattr(dataset, "annotation_fingerprint", ""), media_complete=not missing)
    if m.same is None:
        raise error(
            f"{artifact}: records no annotation fingerprint (written before they were), and the media of {dataset.root} "
            f"are absent (e.g. {next(iter(missing.values()))}), so it can be checked against the dataset only with them: "
            "put the clips back, or re-run `clawcrane detect` and `clawcrane extract` into a new --cache where they are"
        )
    if not m.same:
        raise error(mismatch(m))
    if m.by == "annotations":
        log.info("%s: the clips (media) of %d videos are absent (e.g. %s), so %s was checked against the annotation "
                 "fingerprint %s only", dataset.root, len(missing), next(iter(missing.values())), artifact, short(m.current))
    return m.fingerprint
