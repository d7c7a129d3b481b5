"""`clawcrane cache ls|info|verify|merge`: inspect and maintain artifacts of any stage.

Written over ``Store`` only, so candidate caches (``detect``), feature caches (``extract``) and any
later per-video artifact are listed, described and verified the same way.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from clawcrane.cache.store import Store, find_artifacts
from clawcrane.cache.verify import verify_store
from clawcrane.errors import CacheError
from clawcrane.fingerprint import short

_CONFIG_SKIP = {"detector_key"}


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def open_artifact(path: str | os.PathLike) -> Store:
    """An artifact folder, or the only artifact under a cache root."""
    found = find_artifacts(path)
    if not found:
        raise CacheError(f"{path}: no ClawCrane artifact here (no meta.json); pass a folder like CACHE/detect-<key>")
    if len(found) > 1:
        raise CacheError(f"{path}: holds several artifacts ({', '.join(s.path.name for s in found)}); pass one of them")
    return found[0]


def _created(store: Store) -> str:
    created = store.meta.get("created")
    if created:
        return str(created)
    ts = (store.path / "meta.json").stat().st_mtime
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")


def config_summary(config: dict, width: int = 120) -> str:
    text = " ".join(f"{k}={v}" for k, v in sorted(config.items()) if k not in _CONFIG_SKIP)
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class ArtifactRow:
    """One line of `cache ls`."""

    name: str
    stage: str
    key: str
    created: str
    size: int
    videos: int
    config: str


def list_artifacts(root: str | os.PathLike) -> list[ArtifactRow]:
    """Every artifact directly under ``root`` (or ``root`` itself when it is one)."""
    if not Path(root).is_dir():
        raise CacheError(f"{root}: not a folder; pass the --cache DIR a stage wrote into")
    rows = []
    for s in find_artifacts(root):
        meta = s.meta
        rows.append(ArtifactRow(
            name=s.path.name, stage=str(meta.get("stage", "?")), key=short(str(meta.get("key", "?"))),
            created=_created(s), size=s.size_bytes(), videos=len(s.index()), config=config_summary(meta.get("config", {})),
        ))
    return rows


def ls_lines(root: str | os.PathLike) -> list[str]:
    rows = list_artifacts(root)
    if not rows:
        return [f"{root}: no artifacts"]
    out = [f"{'folder':<26} {'stage':<8} {'key':<16} {'created':<24} {'size':>9} {'videos':>6}  config"]
    for r in rows:
        out.append(f"{r.name:<26} {r.stage:<8} {r.key:<16} {r.created:<24} {human_size(r.size):>9} {r.videos:>6}  {r.config}")
    return out


def info_lines(path: str | os.PathLike) -> list[str]:
    """Sizes, counts, candidates per frame, recall (when recorded) and bad videos of one artifact."""
    store = open_artifact(path)
    meta = store.meta
    files = store.files()
    parts = [p for p in files if p.parent.name == "parts"]
    out = [
        f"artifact: {store.path}",
        f"stage: {meta.get('stage')}  schema: {meta.get('schema')}  key: {meta.get('key')}",
        f"created: {_created(store)}  package: {meta.get('package_version', '?')}",
        f"config: {config_summary(meta.get('config', {}), width=400)}",
    ]
    for name, key in sorted(meta.get("upstream", {}).items()):
        out.append(f"upstream {name}: {key}")
    for p in files:
        if p.parent.name != "parts":
            out.append(f"file {p.name}: {human_size(p.stat().st_size)}")
    if parts:
        out.append(f"unconsolidated parts: {len(parts)} ({human_size(sum(p.stat().st_size for p in parts))})")
    out.append(f"total size: {human_size(store.size_bytes())}")
    summ = store.summaries()
    bad = {v: a.get("error", "") for v, a in summ.items() if a.get("status", "ok") != "ok"}
    expected = meta.get("dataset", {}).get("num_videos")
    out.append(f"videos: {len(summ)} ({len(summ) - len(bad)} ok, {len(bad)} bad)"
               + (f" of {expected} in the dataset" if expected is not None else ""))
    c = store.completeness()
    if not c.complete:
        out.append(f"incomplete: {c.describe()}; complete it with `{store.complete_with()}`")
    rows = sum(int(a.get("rows", 0)) for a in summ.values())
    if meta.get("stage") == "detect":
        frames = sum(int(a.get("processed", 0)) for a in summ.values())
        out.append(f"frames processed: {frames}  candidates: {rows}  per frame: {rows / frames if frames else 0:.2f}")
        gt = sum(int(a.get("gt_instances", 0)) for a in summ.values())
        cov = sum(int(a.get("gt_covered", 0)) for a in summ.values())
        if gt:
            out.append(f"candidate recall (mask IoU >= 0.5): {cov / gt:.3f} ({cov} of {gt} annotated instances)")
    else:
        out.append(f"rows: {rows}")
        cfg = meta.get("config", {})
        for k in ("backbone", "channels", "with_flip", "dtype"):
            if k in cfg or k in meta:
                out.append(f"{k}: {meta.get(k, cfg.get(k))}")
    for v, err in sorted(bad.items()):
        out.append(f"bad video {v}: {err}")
    return out


@dataclass
class Verified:
    """The outcome of verifying one artifact."""

    store: Store
    problems: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def fix(self) -> str:
        """One line for a failed artifact: the completion message when it is only incomplete, else the problems' fix."""
        c = self.store.completeness()
        if not c.complete and len(self.problems) == 1:
            return self.store.incomplete_message(c)
        return (f"{self.store.path}: {len(self.problems)} problem(s) (listed above); delete the affected files and "
                f"re-run `{self.store.complete_with()}`")


def verify_all(path: str | os.PathLike) -> list[Verified]:
    """Verify the artifact at ``path``, or every artifact under a cache root."""
    found = find_artifacts(path)
    if not found:
        raise CacheError(f"{path}: no ClawCrane artifact here (no meta.json); pass a folder like CACHE/detect-<key> or a cache root")
    return [Verified(s, *verify_store(s)) for s in found]


def verify(path: str | os.PathLike) -> tuple[Store, list[str], list[str]]:
    """(store, problems, notes) of the one artifact at ``path``; no problems means it verified."""
    store = open_artifact(path)
    problems, notes = verify_store(store)
    return store, problems, notes


def failure_line(path: str | os.PathLike, results: list[Verified]) -> str | None:
    """The one error line of `cache verify` (None: everything verified)."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    if len(failed) == 1:
        return failed[0].fix()
    names = ", ".join(r.store.path.name for r in failed)
    return (f"{path}: {len(failed)} of {len(results)} artifacts failed verification ({names}; problems listed above); "
            f"first: {failed[0].fix()}")


def merge(path: str | os.PathLike) -> tuple[Path, int, int | None]:
    """Consolidate shard files and parts into ``data.h5``: (file, videos, videos the dataset has)."""
    store = open_artifact(path)
    if not store.files():
        raise CacheError(f"{store.path}: no data files to merge; run the stage first")
    target = store.merge()
    expected = store.meta.get("dataset", {}).get("num_videos")
    return target, len(store.index()), expected
