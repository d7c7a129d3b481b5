"""`clawcrane doctor`: counts, every problem on its own line with its file, exit codes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.dataset_builders import (
    a2d_clip,
    a2d_h5,
    default_a2d_videos,
    make_a2d,
    make_clip,
    make_jhmdb,
    make_ytvos,
    truncate,
    write_a2d_h5,
)

from clawcrane.cli import main
from clawcrane.config import DoctorConfig
from clawcrane.datasets import open_dataset
from clawcrane.datasets.validate import split_problems, validate
from clawcrane.stages import doctor


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("CLAWCRANE_PROGRESS", "0")


def _doctor(*args):
    result = CliRunner().invoke(main, ["--log-level", "error", "doctor", *map(str, args)])
    return result.exit_code, result.output.splitlines()


def _break_a2d(root):
    """Five independent problems, one per kind the doctor must report."""
    os.remove(a2d_clip(root, "vidD"))  # missing clip
    truncate(a2d_clip(root, "vidB"))  # truncated clip (found only by decoding)
    spec = default_a2d_videos()[0]
    write_a2d_h5(a2d_h5(root, "vidA", 6), spec.mask("1", 6)[None], [1.0], [11], drop=("reMask",))  # h5 without reMask
    with open(root / "Release/videoset.csv", "a") as f:
        f.write("half,a,row\n")  # malformed CSV row
    with open(root / "text_annotations/a2d_annotation.txt", "a") as f:
        f.write("vidC,4,\n")  # empty sentence


def test_clean_dataset_prints_counts_and_exits_0(tmp_path):
    code, lines = _doctor(make_a2d(tmp_path))
    assert code == 0
    assert "test           2        3        5" in lines
    assert "train          2        3        4" in lines
    assert lines[-1] == "ok: 0 error(s), 0 warning(s)"


def test_every_problem_is_one_line_naming_its_file_and_exit_is_1(tmp_path):
    root = make_a2d(tmp_path)
    _break_a2d(root)
    code, lines = _doctor(root)
    assert code == 1
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 5, errors
    expected = [
        ("vidD.mp4", "clip is missing"),
        ("vidB.mp4", "cannot open video"),
        ("vidA/00007.h5", "no 'reMask'"),
        ("videoset.csv:6", "expected 9 comma-separated columns"),
        ("a2d_annotation.txt:", "empty sentence for video vidC instance 4"),
    ]
    for file, what in expected:
        assert any(file in e and what in e for e in errors), (file, what, errors)
    assert lines[-1] == "FAILED: 5 error(s), 0 warning(s)"


def test_quick_mode_skips_decoding_so_a_truncated_clip_goes_unseen(tmp_path):
    root = make_a2d(tmp_path)
    truncate(a2d_clip(root, "vidB"))
    assert _doctor(root, "--quick")[0] == 0
    code, lines = _doctor(root)
    assert code == 1 and sum(line.startswith("error: ") for line in lines) == 1


def test_clip_size_not_matching_the_masks_is_found_by_decoding(tmp_path):
    root = make_a2d(tmp_path)
    make_clip(a2d_clip(root, "vidC"), num_frames=8, height=32, width=64)  # videoset.csv and masks say 32x48
    problems = validate(open_dataset(root))
    errors, _ = split_problems(problems)
    assert len(errors) == 1 and "vidC.mp4" in errors[0] and "frames are 32x64" in errors[0]


def test_clip_shorter_than_its_annotations_is_reported_as_truncated(tmp_path):
    root = make_a2d(tmp_path)
    make_clip(a2d_clip(root, "vidD"), num_frames=3, height=32, width=48)  # frame 5 is annotated
    errors, _ = split_problems(validate(open_dataset(root)))
    assert len(errors) == 1 and "only 3 frames decode but frame 5" in errors[0]


def test_warnings_fail_only_with_strict(tmp_path):
    root = make_a2d(tmp_path)
    with open(root / "text_annotations/a2d_annotation.txt", "a") as f:
        f.write("vidB,7,a sentence whose instance is never annotated\n")
    code, lines = _doctor(root, "--quick")
    assert code == 0 and sum(line.startswith("warning: ") for line in lines) == 1
    assert _doctor(root, "--quick", "--strict")[0] == 1


def test_other_layouts_are_checked_too(tmp_path):
    for path in (make_jhmdb(tmp_path / "j"), make_ytvos(tmp_path / "y")):
        code, lines = _doctor(path)
        assert code == 0, lines
    clip = make_clip(tmp_path / "own.mp4")
    code, lines = _doctor(clip, "--query", "a box moving right")
    assert code == 0 and any(line.startswith("all ") and line.split()[1:] == ["1", "1", "0"] for line in lines)


def test_unknown_layout_is_one_error_line(tmp_path):
    result = CliRunner().invoke(main, ["doctor", str(tmp_path)])
    assert result.exit_code == 1
    (line,) = [x for x in result.output.splitlines() if x.strip()]
    assert line.startswith("error: ") and "unknown dataset layout" in line


def test_run_returns_counts_and_problems(tmp_path):
    root = make_a2d(tmp_path)
    spec = default_a2d_videos()[0]
    write_a2d_h5(a2d_h5(root, "vidA", 4), np.stack([spec.mask("1", 4)]), [1.0, 2.0], [11, 77])
    result = doctor.run(DoctorConfig(quick=True), root)
    assert result.layout == "a2d" and not result.ok and len(result.errors) == 1
    # frame 4 is gone, so vidA keeps 2 samples of instance 1 and none of instance 2 (a warning)
    assert result.counts["test"] == {"videos": 2, "queries": 3, "samples": 3}
    assert len(result.warnings) == 1


def test_clip_shorter_than_listed_but_covering_its_annotations_is_an_error_longer_a_warning(tmp_path):
    root = make_a2d(tmp_path)
    make_clip(a2d_clip(root, "vidA"), num_frames=7, height=32, width=48)  # lists 8; last annotated frame is 6
    make_clip(a2d_clip(root, "vidB"), num_frames=9, height=32, width=64)  # lists 8
    errors, warnings = split_problems(validate(open_dataset(root)))
    assert len(errors) == 1 and "vidA.mp4: only 7 frames decode but the dataset lists 8" in errors[0]
    assert len(warnings) == 1 and "vidB.mp4: 9 frames decode but the dataset lists 8" in warnings[0]


def test_annotated_instances_without_a_sentence_are_counted_in_one_line_unless_verbose(tmp_path):
    root = make_a2d(tmp_path)
    ann = root / "text_annotations/a2d_annotation.txt"
    lines = ann.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    videos = sorted({r.split(",")[0] for r in rows})[:2]
    # drop the first sentence of two videos: each now has an annotated instance no sentence names
    dropped = [next(r for r in rows if r.startswith(v + ",")) for v in videos]
    ann.write_text("\n".join([header] + [r for r in rows if r not in dropped]) + "\n")
    code, out = _doctor(root, "--quick")
    warned = [line for line in out if line.startswith("warning: ")]
    assert code == 0 and len(warned) == 1
    assert warned[0].startswith("warning: 2 video(s) have annotated instances") and "--verbose lists all 2" in warned[0]
    assert out[-1] == "ok: 0 error(s), 2 warning(s)"  # still counted as two warnings
    code, out = _doctor(root, "--quick", "--verbose")
    assert sorted(line.split(":")[1].strip().rsplit("/", 1)[-1] for line in out if line.startswith("warning: ")) == videos
