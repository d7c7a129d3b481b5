"""ablate: the seven rows of Table 3 plus the two TSRM-geo rows over one tiny cache, and reuse of trained rows on a second call."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers.head_world import colour_world

import clawcrane.datasets
from clawcrane.cache.predictions import read_predictions
from clawcrane.cli import main
from clawcrane.config import AblateConfig, TrackRankConfig
from clawcrane.errors import ConfigError
from clawcrane.stages import ablate, train_head

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ablate_writes_every_row_and_a_second_call_reuses_the_trained_heads(tmp_path, monkeypatch):
    dataset, features, root = colour_world(tmp_path, write_videos=False)
    calls = []
    real_train = train_head.run
    monkeypatch.setattr(train_head, "run", lambda *a, **kw: calls.append(kw["out"]) or real_train(*a, **kw))
    config = AblateConfig(epochs=1, size="small", device="cpu")
    res = ablate.run(config, dataset, cache=root, out=tmp_path / "table")

    assert [r.row.name for r in res.rows] == [r.name for r in ablate.ROWS] and len(res.rows) == 15
    assert len(calls) == 11  # 15 rows, 4 of which (7, 9, 11, 15) reuse the head of the row before them
    for trm_row, head_row in ((6, 5), (8, 7), (10, 9)):  # same head, predictions made with the TRM on vs off
        assert res.rows[trm_row].run == res.rows[head_row].run
        metas = [read_predictions(res.rows[i].predictions).meta for i in (trm_row, head_row)]
        assert [m["config"]["trm"] for m in metas] == [True, False] and metas[0]["key"] != metas[1]["key"]
    assert res.rows[14].run == res.rows[13].run  # row 15: row 14's head with Eq. 3's summed track score
    metas = [read_predictions(res.rows[i].predictions).meta for i in (14, 13)]
    assert [m["config"]["score_mode"] for m in metas] == ["sum", TrackRankConfig().score_mode] and metas[0]["key"] != metas[1]["key"]
    heads = {r.run / "best.pt": (r.run / "best.pt").stat().st_mtime_ns for r in res.rows}
    for r in res.rows:
        assert r.predictions.is_file() and (r.predictions.parent / "eval" / "metrics.json").is_file()
    md = (tmp_path / "table" / "ablation.md").read_text()
    for r in ablate.ROWS:
        assert r.label in md
    assert "mAP 0.5:0.95 (COCO)" in md and "Overall IoU" in md and "appearance" in md
    report = json.loads((tmp_path / "table" / "ablation.json").read_text())
    assert [r["name"] for r in report["rows"]] == [r.name for r in ablate.ROWS]
    assert [r["trm"] for r in report["rows"]] == [False] * 6 + [True, False, True, False] + [True] * 5
    assert [r["motion"] for r in report["rows"]] == [False] * 12 + [True] * 3
    assert report["rows"][0]["metrics"]["samples"] == (3 * 3 + 1) * 2  # test split: 3 videos x 3 objects + 1 missed, 2 frames

    again = ablate.run(config, dataset, cache=root, out=tmp_path / "table")
    assert len(calls) == 11 and all(r.trained_epochs == 0 for r in again.rows)  # nothing retrained
    assert {p: p.stat().st_mtime_ns for p in heads} == heads
    assert [r.metrics for r in again.rows] == [r.metrics for r in res.rows]

    with pytest.raises(ConfigError, match="other options"):  # another width must not silently reuse the heads
        ablate.run(AblateConfig(epochs=1, size="paper", device="cpu"), dataset, cache=root, out=tmp_path / "table")


def test_ablate_cli_help_and_bad_size(tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["ablate", "--help"])
    assert r.exit_code == 0
    for opt in ("--cache", "--dataset", "--out", "--epochs", "--size", "--seed", "--split", "--gamma", "--beta", "--alpha", "--device"):
        assert opt in r.output, opt
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, **kw: None, raising=False)
    r = CliRunner().invoke(main, ["ablate", "--cache", str(tmp_path), "--dataset", str(tmp_path), "--out", str(tmp_path / "t"),
                                  "--size", "huge"])
    assert r.exit_code == 2 and "huge" in r.output


def test_ablate_seeds_give_mean_and_min_max_cells_and_rows_pick_a_subset(tmp_path):
    dataset, features, root = colour_world(tmp_path, write_videos=False)
    config = AblateConfig(epochs=1, size="small", seeds=(0, 1), rows=("4", "7-prm-tsrm-trm"), device="cpu")
    res = ablate.run(config, dataset, cache=root, out=tmp_path / "table")
    assert [r.row.name for r in res.rows] == ["4-prm", "7-prm-tsrm-trm"]
    for r in res.rows:
        assert [s.seed for s in r.seeds] == [0, 1]
        assert [s.run.parent.name for s in r.seeds] == ["s0", "s1"]  # one head per seed
        vals = [s.metrics["P@0.5"] for s in r.seeds]
        assert r.metrics["P@0.5"] == pytest.approx(sum(vals) / 2) and r.spread["P@0.5"] == (min(vals), max(vals))
    assert res.rows[1].seeds[0].run.name == "6-prm-tsrm"  # row 7 trains (then reuses) row 6's head
    lo, hi = res.rows[0].spread["P@0.5"]
    assert f"{100 * res.rows[0].metrics['P@0.5']:.1f} ({100 * lo:.1f}-{100 * hi:.1f})" in res.markdown
    assert "mean (min-max) over seeds 0,1" in res.markdown
    with pytest.raises(ConfigError, match="--rows '16'"):
        ablate.check_config(AblateConfig(rows=("16",)))
    with pytest.raises(ConfigError, match="repeated"):
        ablate.check_config(AblateConfig(seeds=(1, 1)))
