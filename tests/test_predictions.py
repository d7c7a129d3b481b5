"""Predictions Parquet: schema, round trip, per-query groups, refusal of foreign or broken files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clawcrane.cache import predictions as P
from clawcrane.errors import CacheError
from clawcrane.pipeline import masks as mask_ops

META = {"key": "k" * 64, "config": {"top_k": 2}, "upstream": {"head": "h", "features": "f", "candidates": "c"},
        "dataset": {"name": "synthetic", "root": "/data", "fingerprint": "fp"}}


def columns(n_rows_per_query=(3, 2)):
    rows = {c: [] for c in P.COLUMNS}
    for qi, n in enumerate(n_rows_per_query):
        for r in range(n):
            m = np.zeros((6, 9), bool)
            m[r : r + 2, qi : qi + 3] = True
            rows["query_id"].append(f"vid_{qi}")
            rows["video_id"].append("vid")
            rows["frame"].append(r)
            rows["track_id"].append(qi)
            rows["candidate_id"].append(r)
            rows["score"].append(0.5 + 0.1 * r)
            rows["rank"].append(0)
            rows["height"].append(6)
            rows["width"].append(9)
            rows["rle"].append(mask_ops.encode(m)["counts"])
    return rows


def test_round_trip_keeps_columns_types_meta_and_masks(tmp_path):
    cols = columns()
    path = P.write_predictions(tmp_path / "pred.parquet", cols, META)
    pred = P.read_predictions(path)
    assert len(pred) == 5 and pred.key == META["key"]
    assert pred.meta["dataset"]["fingerprint"] == "fp" and pred.meta["kind"] == P.KIND
    assert pred.table.schema.field("rank").type == pa.int16()
    assert pred.table.schema.field("rle").type == pa.binary()
    assert pred.column("frame").dtype == np.int32
    rle = {"size": [6, 9], "counts": pred.column("rle")[4]}
    expected = np.zeros((6, 9), bool)
    expected[1:3, 1:4] = True  # row 4 = query 1, r = 1
    assert np.array_equal(mask_ops.decode(rle), expected)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_groups_yield_each_querys_rows():
    table = P.make_table(columns((2, 3)), META)
    pred = P.Predictions(path=None, table=table, meta=META)
    groups = dict(pred.groups())
    assert sorted(groups) == ["vid_0", "vid_1"]
    assert groups["vid_0"].num_rows == 2 and groups["vid_1"].num_rows == 3
    assert groups["vid_1"].column("frame").to_pylist() == [0, 1, 2]


def test_missing_column_is_refused_at_write():
    cols = columns()
    del cols["rank"]
    with pytest.raises(ValueError, match="rank"):
        P.make_table(cols, META)


def test_corrupted_file_is_a_cache_error(tmp_path):
    path = P.write_predictions(tmp_path / "pred.parquet", columns(), META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated copy
    with pytest.raises(CacheError, match="pred.parquet"):
        P.read_predictions(path)


def test_foreign_parquet_file_is_a_cache_error(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    with pytest.raises(CacheError, match="not a ClawCrane predictions file"):
        P.read_predictions(path)
    with pytest.raises(CacheError, match="not found"):
        P.read_predictions(tmp_path / "absent.parquet")
