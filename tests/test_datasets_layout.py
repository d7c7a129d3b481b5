"""open_dataset: layout detection for every supported layout, and one-line refusals."""

from __future__ import annotations

import pytest
from helpers.dataset_builders import make_a2d, make_clip, make_frame_folder, make_jhmdb, make_ytvos

from clawcrane.datasets import detect_layout, open_dataset
from clawcrane.errors import ConfigError, DataError


def test_each_layout_is_detected_and_read(tmp_path):
    cases = {
        "a2d": make_a2d(tmp_path / "a2d"),
        "jhmdb": make_jhmdb(tmp_path / "jhmdb"),
        "ytvos": make_ytvos(tmp_path / "ytvos"),
        "video": make_clip(tmp_path / "clip.mp4"),
    }
    folder = make_frame_folder(tmp_path / "frames")
    for layout, path in cases.items():
        assert detect_layout(path) == layout
        assert open_dataset(path).name == layout
    assert detect_layout(folder) == "video"
    assert len(open_dataset(folder, queries=["a box"]).queries) == 1


def test_synthetic_marker_names_the_dataset(tmp_path):
    ds = open_dataset(make_a2d(tmp_path, synthetic=True), split="test")
    assert ds.name == "synthetic" and set(ds.video_ids()) == {"vidA", "vidB"}


def test_unknown_layout_says_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "unknown dataset layout" in msg
    assert "Release/videoset.csv" in msg and "jhmdb_annotation.txt" in msg and "meta_expressions" in msg
    with pytest.raises(DataError, match="no such file or folder"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(DataError, match="not a video file"):
        open_dataset(tmp_path / "notes.txt")


def test_benchmark_layouts_refuse_extra_queries(tmp_path):
    with pytest.raises(ConfigError):
        open_dataset(make_jhmdb(tmp_path), queries=["a man"])
