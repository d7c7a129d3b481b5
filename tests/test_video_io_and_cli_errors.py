"""Video decoding, frame folders, and the CLI's error contract."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clawcrane.cli import main
from clawcrane.datasets.video_io import ImageFolderFrames, Mp4Frames, open_frames, write_mp4
from clawcrane.errors import DataError


def _frames(T=6, H=32, W=48):
    # Each frame is one flat grey level; lossy YUV coding keeps it within a few levels.
    return [np.full((H, W, 3), (20 + 30 * t) % 250, np.uint8) for t in range(T)]


def test_mp4_round_trip_keeps_count_size_fps_and_order(tmp_path):
    p = tmp_path / "clip.mp4"
    assert write_mp4(p, _frames(), fps=12) == 6
    src = Mp4Frames(p)
    info = src.info()
    assert (info.width, info.height, info.num_frames) == (48, 32, 6)
    assert abs(info.fps - 12) < 1e-6
    got = dict(src.iter([4, 1]))
    assert sorted(got) == [1, 4]
    assert abs(int(got[4].mean()) - 140) <= 8 and abs(int(got[1].mean()) - 50) <= 8
    assert abs(int(src.read(5).mean()) - 170) <= 8


def test_truncated_mp4_names_the_file_and_the_fix(tmp_path):
    p = tmp_path / "clip.mp4"
    write_mp4(p, _frames(T=30, H=64, W=64), fps=10)
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(DataError) as err:
        list(Mp4Frames(p).iter())
        Mp4Frames(p).read(29)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_an_mp4_without_its_index_is_one_clawcrane_error_and_nothing_from_ffmpeg(tmp_path):
    # an 'ftyp' box and media data but no 'moov' index: ffmpeg would print "moov atom not found" itself.
    # In a fresh process (ffmpeg's log level is read there), with the variable unset as a user's shell has it.
    path = tmp_path / "nomoov.mp4"
    path.write_bytes(struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
                     + struct.pack(">I", 8 + 4000) + b"mdat" + bytes(range(256)) * 15 + bytes(160))
    code = ("import sys\nfrom clawcrane.datasets.video_io import Mp4Frames\nfrom clawcrane.errors import DataError\n"
            "try:\n    Mp4Frames(sys.argv[1]).info()\nexcept DataError as err:\n    print(err)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert "nomoov.mp4: cannot open video" in r.stdout
    assert "moov" not in r.stderr and "moov atom" not in r.stdout, (r.stdout, r.stderr)


def test_missing_video_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing"):
        Mp4Frames(tmp_path / "nope.mp4").info()


def test_frame_folder_sorts_naturally_and_returns_rgb(tmp_path):
    for i, name in enumerate(["f2.png", "f10.png", "f1.png"]):
        img = np.zeros((4, 5, 3), np.uint8)
        img[..., 0] = int(name[1:-4])  # red channel = the frame number
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    src = open_frames(tmp_path)
    assert isinstance(src, ImageFolderFrames)
    assert [int(f[0, 0, 0]) for _, f in src.iter()] == [1, 2, 10]
    assert src.info(fps=5).num_frames == 3


def test_cli_version_and_help():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and "0.1.0" in r.output
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "detect" in r.output


def test_cli_turns_library_errors_into_one_line_and_exit_1():
    @main.command("_boom", hidden=True)
    def _boom():
        raise DataError("x.mp4: cannot open video;\n re-encode it")

    try:
        r = CliRunner().invoke(main, ["_boom"])
    finally:
        main.commands.pop("_boom")
    assert r.exit_code == 1
    assert r.output.strip() == "error: x.mp4: cannot open video; re-encode it"


@pytest.mark.parametrize("args,says", [
    (["detect", "ds", "--refine-masks", "bogus"], "'bogus' is not one of 'none', 'grabcut'; see `clawcrane detect --help`"),
    (["train-head"], "Missing option '--features'; see `clawcrane train-head --help`"),
    (["nosuch"], "No such command 'nosuch'; see `clawcrane --help`"),
    (["detect", "ds", "--detector", "oracle", "--cache"], "'--cache' requires an argument; see `clawcrane detect --help`"),
    (["detect", "ds", "--skip-bad=yes"], "does not take a value; see `clawcrane detect --help`"),
    # click would name a cache folder '--skip-bad' and drop the flag
    (["detect", ".", "--detector", "oracle", "--cache", "--skip-bad"], "--cache got '--skip-bad', another option"),
    (["--log-level", "info", "detect", "ds", "--detector"], "see `clawcrane detect --help`"),
    (["data", "synth", "out", "--seed"], "see `clawcrane data synth --help`"),
])
def test_a_command_line_click_refuses_is_one_line_and_exit_2(args, says):
    r = CliRunner().invoke(main, args, prog_name="clawcrane")
    assert r.exit_code == 2
    assert len(r.output.strip().splitlines()) == 1 and "Usage:" not in r.output
    assert r.output.startswith("error: ") and says in r.output


def test_a_group_without_its_subcommand_shows_its_help():
    for args, name in (([], "clawcrane"), (["cache"], "clawcrane cache")):
        r = CliRunner().invoke(main, args, prog_name="clawcrane")
        assert r.exit_code == 2 and r.output.startswith(f"Usage: {name} [OPTIONS] COMMAND") and "error:" not in r.output


@pytest.mark.parametrize("option,value", [("--score-threshold", "nan"), ("--dedup-iou", "inf"), ("--score-threshold", "-inf")])
def test_a_number_that_is_not_finite_is_refused_as_a_command_line_error(tmp_path, option, value):
    # a range check alone lets nan through (every comparison with nan is False)
    r = CliRunner().invoke(main, ["detect", str(tmp_path), "--detector", "oracle", "--cache", str(tmp_path / "c"),
                                  option, value], prog_name="clawcrane")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert option in r.output and ("finite" in r.output or "range" in r.output)


def test_an_option_value_given_with_equals_is_text_even_when_it_looks_like_an_option(tmp_path):
    # '--detector=--cache' says what it means; only '--detector --cache' (two words) is refused
    r = CliRunner().invoke(main, ["detect", str(tmp_path), "--detector=--cache", "--cache", str(tmp_path / "c")],
                           prog_name="clawcrane")
    assert "another option" not in r.output and r.exit_code == 1, r.output  # refused later, as a detector spec


def test_the_completing_command_names_the_cache_root_absolute_and_quoted(tmp_path, monkeypatch):
    from clawcrane.cache.store import Store

    root = tmp_path / "my cache" / "detect-x"
    root.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps({"stage": "detect", "complete_with": "clawcrane detect D --cache {cache}"}))
    monkeypatch.chdir(tmp_path)
    assert Store(Path("my cache") / "detect-x").complete_with() == f"clawcrane detect D --cache '{tmp_path / 'my cache'}'"

