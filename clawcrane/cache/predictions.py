"""Predictions (stage ``track-rank``) as one Parquet file.

One row per submitted mask: a query's candidate in one frame with its rank among that frame's
submissions (0 = the answer) and its score.

| column | type | meaning |
|---|---|---|
| ``query_id`` | string | the query (``Query.query_id``) |
| ``video_id`` | string | its video |
| ``frame`` | int32 | 0-based frame index |
| ``track_id`` | int32 | TRM track of the candidate (-1: none, e.g. ``--no-trm``) |
| ``candidate_id`` | int32 | row of the candidate cache within the video (-1: empty mask) |
| ``score`` | float32 | ranking score (higher is better) |
| ``rank`` | int16 | 0 = the answer of that (query, frame), then 1, 2, ... |
| ``height``, ``width`` | int32 | mask size (the candidate cache's frame size) |
| ``rle`` | binary | COCO RLE ``counts`` of the mask |

The schema metadata key ``clawcrane`` holds the JSON meta: ``kind``, ``schema``, ``key``,
``config``, ``upstream`` (``head``, ``features``, ``candidates`` keys), ``dataset``
(``name``, ``root``, ``fingerprint``, ``annotation_fingerprint``), ``package_version``. Writes are atomic, and replace only a
file this meta marks as ClawCrane predictions (``existing_predictions``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clawcrane import __version__
from clawcrane.atomic import atomic_path
from clawcrane.errors import CacheError, ConfigError

STAGE = "track-rank"
KIND = "clawcrane-predictions"
SCHEMA = 1
META_KEY = b"clawcrane"

SCHEMA_FIELDS = pa.schema([
    ("query_id", pa.string()),
    ("video_id", pa.string()),
    ("frame", pa.int32()),
    ("track_id", pa.int32()),
    ("candidate_id", pa.int32()),
    ("score", pa.float32()),
    ("rank", pa.int16()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("rle", pa.binary()),
])
COLUMNS = tuple(SCHEMA_FIELDS.names)


def make_table(columns: Mapping[str, Sequence[Any] | np.ndarray], meta: Mapping[str, Any]) -> pa.Table:
    """A predictions table from equal-length columns (all of ``COLUMNS``) and the meta dict."""
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"prediction columns missing: {missing}")
    lengths = {c: len(columns[c]) for c in COLUMNS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"prediction columns differ in length: {lengths}")
    arrays = [pa.array(columns[f.name], type=f.type) for f in SCHEMA_FIELDS]
    full_meta = {"kind": KIND, "schema": SCHEMA, "package_version": __version__, **dict(meta)}
    schema = SCHEMA_FIELDS.with_metadata({META_KEY: json.dumps(full_meta, sort_keys=True, default=str).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)


def write_predictions(path: str | os.PathLike, columns: Mapping[str, Any] | pa.Table, meta: Mapping[str, Any] | None = None) -> Path:
    """Write predictions atomically; ``columns`` is a dict of columns (then ``meta`` is needed) or a table."""
    table = columns if isinstance(columns, pa.Table) else make_table(columns, meta or {})
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


@dataclass
class Predictions:
    """A read predictions file: the Arrow table and its meta."""

    path: Path
    table: pa.Table
    meta: dict[str, Any]

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def key(self) -> str:
        return str(self.meta.get("key", ""))

    def query_ids(self) -> list[str]:
        """Distinct query ids, sorted."""
        return sorted(set(self.table.column("query_id").to_pylist()))

    def column(self, name: str) -> np.ndarray:
        """One column as numpy (``rle`` as an object array of bytes)."""
        col = self.table.column(name)
        if name in ("rle", "query_id", "video_id"):
            return np.asarray(col.to_pylist(), dtype=object)
        return col.to_numpy()

    def groups(self) -> Iterator[tuple[str, pa.Table]]:
        """(query_id, its rows) per query, queries sorted, rows in file order."""
        qids = self.column("query_id")
        if len(qids) == 0:
            return
        uniq, inverse = np.unique(qids.astype(str), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        for i, q in enumerate(uniq):
            yield str(q), self.table.take(pa.array(order[bounds[i] : bounds[i + 1]]))


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Open a predictions file; ``CacheError`` when it is unreadable or not ClawCrane predictions."""
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"{path}: predictions file not found; run `clawcrane track-rank ... --out {path}` first")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise CacheError(f"{path}: not a readable Parquet file ({type(err).__name__}); re-run `clawcrane track-rank`") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    try:
        meta = json.loads(raw) if raw is not None else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise CacheError(f"{path}: is not a ClawCrane predictions file (no '{META_KEY.decode()}' meta); pass the file `clawcrane track-rank` wrote")
    if int(meta.get("schema", -1)) > SCHEMA:
        raise CacheError(f"{path}: predictions schema {meta.get('schema')} is newer than this ClawCrane ({SCHEMA}); upgrade clawcrane")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise CacheError(f"{path}: predictions lack columns {missing}; re-run `clawcrane track-rank`")
    return Predictions(path=path, table=table.select(list(COLUMNS)).cast(SCHEMA_FIELDS.with_metadata(table.schema.metadata)), meta=meta)


def existing_predictions(path: str | os.PathLike, *, command: str = "track-rank") -> Predictions | None:
    """The predictions already at ``path`` (None when nothing is there), which a new write may replace.

    Anything else at ``path`` (a checkpoint, a folder, an unreadable file) is refused with a
    ``ConfigError``: an output never replaces a file the tool did not write.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a predictions file; pass a file path (`clawcrane {command} ... --out FILE.parquet`)")
    try:
        return read_predictions(path)
    except CacheError:
        raise ConfigError(
            f"{path}: exists and is not a predictions file ClawCrane wrote; it is left as it is: choose another --out "
            f"(`clawcrane {command} ... --out FILE.parquet`) or move the file away"
        ) from None
