"""`clawcrane data synth` through the CLI: run, no-op re-run, resume, refusals, preview."""

from __future__ import annotations

import shutil

import cv2
from click.testing import CliRunner

from clawcrane.cli import main


def _run(*args):
    return CliRunner().invoke(main, ["--log-level", "warning", "data", "synth", *map(str, args)])


def test_cli_writes_reruns_as_noop_resumes_and_refuses_other_seeds(tmp_path):
    out = tmp_path / "data"
    res = _run(out, "--preset", "tiny", "--seed", "0", "--workers", "1", "--preview")
    assert res.exit_code == 0, res.output
    assert "9 videos rendered" in res.output and "train: 6 videos" in res.output and "test: 2 videos" in res.output
    sheet = cv2.imread(str(out / "preview.png"))
    assert sheet is not None and sheet.shape[1] == 3 * 320  # three frames per row

    mp4 = out / "Release" / "clips320H" / "s0003.mp4"
    stamp = mp4.stat().st_mtime_ns
    res = _run(out, "--preset", "tiny", "--seed", "0")
    assert res.exit_code == 0 and "already complete" in res.output
    assert mp4.stat().st_mtime_ns == stamp  # nothing rewritten

    # a lost clip and a lost frame folder: the re-run renders only that video, byte-identical
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "preview.png"}
    mp4.unlink()
    shutil.rmtree(out / "text_annotations" / "a2d_annotation_with_instances" / "s0003")
    res = _run(out, "--preset", "tiny", "--seed", "0")
    assert res.exit_code == 0 and "1 videos rendered" in res.output, res.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "preview.png"} == before

    res = _run(out, "--preset", "tiny", "--seed", "1")
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "preset=tiny seed=0" in res.output and "refusing" in res.output


def test_cli_refuses_a_foreign_nonempty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    res = _run(tmp_path, "--preset", "tiny")
    assert res.exit_code == 1 and "not written by `clawcrane data synth`" in res.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_resumes_a_killed_run(tmp_path):
    # a run killed mid-way leaves the run marker, some finished videos and temporary files
    from clawcrane.datasets.synth import writer
    from clawcrane.datasets.synth.generate import GENERATOR_VERSION

    out = tmp_path / "data"
    writer.start_run(out, {"name": "clawcrane data synth", "preset": "tiny", "seed": 0, "version": GENERATOR_VERSION})
    stale = out / "Release" / "clips320H" / ".s0001.tmp999.mp4"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a video")
    res = _run(out, "--preset", "tiny", "--seed", "0", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert not stale.exists() and not (out / writer.RUN_FILE).exists()
    assert (out / "synth_scenes.json").is_file()


def test_cli_help_explains_every_option():
    res = CliRunner().invoke(main, ["data", "synth", "--help"])
    assert res.exit_code == 0
    for opt in ("--preset", "--seed", "--preview", "--workers", "A2D-Sentences"):
        assert opt in res.output
