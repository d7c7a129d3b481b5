"""Hostile inputs: every bad call ends in one line on stderr and exit 1, and loses nothing already on disk.

Each hostile case runs the real command line (``CliRunner``) on tiny inputs built here
(``colour_world``: caches written directly, a head trained 1 epoch) and asserts exit code 1,
exactly one line on stderr starting with ``error: ``, no traceback, that every file present
before (the test's folder and the shared world) is byte-identical after, and that no temporary
file of the tool is left behind. File-system failures that root can bypass (read-only folders,
permissions) are simulated by raising the ``OSError`` where the tool would meet it; a real
``chmod`` case runs when the tests do not run as root.

Covers issue 15 items 1 (any ``OSError`` is one line), 2 (outputs never replace a file the tool did
not write; whole-folder outputs are replaced whole), 3 (incomplete or empty artifacts fail
`cache verify` and are refused by the next stage, with the command that completes them), 4
(flipped bytes in any column are caught by `cache verify`, and on read when asked), 5 (a stage
refuses inputs that do not belong together, naming both), 6 (the umask is honoured; temporary
files of a killed run are cleaned by the next run) and the smaller items (dataset items detect
would skip, unterminated quotes, a head folder holding only last.pt). Items 3-5 run on a real
tiny synthetic world made by the CLI itself (``synth``): data synth, detect, extract, train-head.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.dataset_builders import make_clip
from helpers.head_world import colour_world

import clawcrane.datasets
import clawcrane.errors
from clawcrane import atomic
from clawcrane.cache import predictions as P
from clawcrane.cache.store import VERIFY_ENV, Store, escape_id
from clawcrane.cli import main
from clawcrane.config import HeadConfig, TrackRankConfig, TrainHeadConfig
from clawcrane.errors import os_error_message
from clawcrane.stages import track_rank, train_head

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
HEAD_SIZE = ["--embed-dim", "16", "--word-dim", "16", "--lstm-hidden", "16", "--batch-size", "4", "--device", "cpu"]


# ---- the world and the checks every hostile case shares ------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(dataset, feature folder, head run folder, predictions file), all under one module folder."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("hostile")
    dataset, features, _ = colour_world(tmp, n_train=4, n_test=2, write_videos=False)
    cfg = TrainHeadConfig(head=HeadConfig(embed_dim=16, word_dim=16, lstm_hidden=16), epochs=1, batch_size=4, device="cpu")
    train_head.run(cfg, dataset, features=features, out=tmp / "run")
    pred = track_rank.run(TrackRankConfig(device="cpu"), dataset, head=tmp / "run", features=features, out=tmp / "P.parquet").out
    torch.set_num_threads(n)
    return dataset, features, tmp / "run", pred


@pytest.fixture
def cli(world, monkeypatch):
    """Invoke the CLI with ``open_dataset`` giving the world's dataset (the tests pass any existing folder)."""
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, **kw: world[0], raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(main, ["--log-level", "error", *map(str, args)])

    return invoke


def snapshot(*roots: Path) -> dict[Path, bytes]:
    out = {}
    for root in roots:
        for p in Path(root).rglob("*"):
            if p.is_file() and not p.is_symlink():
                out[p] = p.read_bytes()
    return out


def temps(*roots: Path) -> list[Path]:
    return [p for root in roots for p in Path(root).rglob("*") if atomic.is_temp_name(p.name)]


def assert_refused(result, before: dict[Path, bytes], *roots: Path, says: tuple[str, ...] = ()) -> str:
    """Exit 1, one ``error:`` line on stderr, no traceback, files byte-identical, no temps left; returns the line."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    after = snapshot(*roots)
    changed = [p for p, data in before.items() if after.get(p) != data]
    assert not changed, changed
    assert not temps(*roots), temps(*roots)
    for s in says:
        assert s in lines[0], (s, lines[0])
    if os.environ.get("SHOW_HOSTILE"):
        print("\nSTDERR:", lines[0])
    return lines[0]


@pytest.fixture
def roots(world, tmp_path):
    """The folders whose files must survive every hostile call: the test's own and the shared world."""
    return (tmp_path, world[2].parent)


def raising(err: OSError):
    def fail(*a, **k):
        raise err
    return fail


def track_rank_args(world, out):
    _, features, run, _ = world
    return ["track-rank", "--head", run, "--features", features, "--dataset", features.parent, "--out", out, "--device", "cpu"]


def train_head_args(world, out):
    _, features, _, _ = world
    return ["train-head", "--features", features, "--dataset", features.parent, "--out", out, "--epochs", "1", *HEAD_SIZE]


# ---- 1. any OSError is one line naming the path and a fix ---------------------------------------------
def test_track_rank_output_on_a_read_only_file_system_is_one_line_naming_the_folder(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", raising(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))))
    r = cli(*track_rank_args(world, tmp_path / "ro" / "p.parquet"))
    assert_refused(r, before, *roots, says=(str(tmp_path / "ro"), "Read-only file system", "another --out"))


def test_train_head_checkpoint_on_a_read_only_file_system_is_one_line(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", raising(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "run"))))
    r = cli(*train_head_args(world, tmp_path / "run"))
    assert_refused(r, before, *roots, says=(str(tmp_path / "run"), "Read-only file system", "write somewhere else"))


def test_detect_cache_on_a_read_only_file_system_is_one_line(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", raising(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "c"))))
    r = cli("detect", tmp_path, "--detector", "oracle", "--cache", tmp_path / "c", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(tmp_path / "c"), "Read-only file system", "--cache"))


def test_export_on_a_read_only_file_system_is_one_line(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", raising(OSError(errno.EROFS, "Read-only file system", str(tmp_path))))
    r = cli("export", world[3], "--format", "png", "--out", tmp_path / "E")
    assert_refused(r, before, *roots, says=(str(tmp_path), "Read-only file system"))
    assert not (tmp_path / "E").exists()


def test_segment_output_on_a_read_only_file_system_is_one_line(world, cli, tmp_path, roots, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", raising(OSError(errno.EROFS, "Read-only file system", str(tmp_path))))
    r = cli("segment", clip, "--query", "the red ball", "--detector", "oracle", "--head", world[2], "--out", tmp_path / "seg",
            "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(tmp_path), "Read-only file system"))


def test_permission_denied_names_the_path_and_says_how_to_fix_it(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", raising(PermissionError(errno.EACCES, "Permission denied", str(tmp_path))))
    r = cli("export", world[3], "--out", tmp_path / "E")
    assert_refused(r, before, *roots, says=(str(tmp_path), "Permission denied", "chmod"))


def test_a_full_disk_during_a_write_names_the_file_being_written(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(P.pq, "write_table", raising(OSError(errno.ENOSPC, "No space left on device")))
    out = tmp_path / "p.parquet"
    r = cli(*track_rank_args(world, out))
    assert_refused(r, before, *roots, says=(str(out), "No space left on device", "free some space"))
    assert not out.exists()


def test_an_io_error_while_syncing_a_file_is_one_line(world, cli, tmp_path, roots, monkeypatch):
    before = snapshot(*roots)
    monkeypatch.setattr(atomic.os, "fsync", raising(OSError(errno.EIO, "Input/output error")))
    r = cli("export", world[3], "--out", tmp_path / "E")
    assert_refused(r, before, *roots, says=("Input/output error", "check the disk"))
    assert not (tmp_path / "E").exists()


def test_track_rank_out_below_a_file_is_one_line_not_file_exists_traceback(world, cli, tmp_path, roots):
    (tmp_path / "afile").write_text("mine\n")
    before = snapshot(*roots)
    r = cli(*track_rank_args(world, tmp_path / "afile" / "p.parquet"))
    assert_refused(r, before, *roots, says=(str(tmp_path / "afile"), "FileExistsError", "choose another path"))


def test_export_out_below_a_file_is_one_line_not_a_traceback(world, cli, tmp_path, roots):
    (tmp_path / "afile").write_text("mine\n")
    before = snapshot(*roots)
    r = cli("export", world[3], "--out", tmp_path / "afile" / "x")
    assert_refused(r, before, *roots, says=(str(tmp_path / "afile"),))


def test_train_head_out_below_a_file_is_one_line(world, cli, tmp_path, roots):
    (tmp_path / "afile").write_text("mine\n")
    before = snapshot(*roots)
    r = cli(*train_head_args(world, tmp_path / "afile" / "run"))
    assert_refused(r, before, *roots, says=(str(tmp_path / "afile"),))


def test_detect_cache_below_a_file_is_one_line(world, cli, tmp_path, roots):
    (tmp_path / "afile").write_text("mine\n")
    before = snapshot(*roots)
    r = cli("detect", tmp_path, "--detector", "oracle", "--cache", tmp_path / "afile" / "c", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(tmp_path / "afile"),))


@pytest.mark.skipif(ROOT, reason="root writes into a chmod 0555 folder; the read-only cases above simulate the OSError instead")
def test_a_real_read_only_folder_is_one_line(world, cli, tmp_path, roots):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_text("mine\n")
    ro.chmod(0o555)
    try:
        before = snapshot(*roots)
        r = cli(*track_rank_args(world, ro / "p.parquet"))
        assert_refused(r, before, *roots, says=(str(ro), "Permission denied"))
    finally:
        ro.chmod(0o755)


def test_os_error_message_is_one_line_with_path_what_and_fix():
    msg = os_error_message(FileExistsError(errno.EEXIST, "File exists", "a/b"))
    assert msg.startswith("a/b: File exists (FileExistsError); ") and "\n" not in msg
    assert os_error_message(OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")).startswith("a -> b: Invalid cross-device link")
    assert os_error_message(OSError(errno.EIO, "Input/output error")).startswith("Input/output error (OSError); ")


# ---- 2. outputs never replace a file the tool did not write --------------------------------------------
def test_track_rank_refuses_to_replace_a_checkpoint(world, cli, tmp_path, roots):
    b = tmp_path / "b.pt"
    b.write_bytes((world[2] / "best.pt").read_bytes())
    before = snapshot(*roots)
    r = cli(*track_rank_args(world, b))
    assert_refused(r, before, *roots, says=(str(b), "not a predictions file", "choose another --out"))


def test_track_rank_refuses_to_replace_any_other_file(world, cli, tmp_path, roots):
    notes = tmp_path / "notes.parquet"
    notes.write_text("my notes, not parquet\n")
    before = snapshot(*roots)
    assert_refused(cli(*track_rank_args(world, notes)), before, *roots, says=(str(notes), "--out"))


def test_track_rank_replaces_predictions_it_wrote(world, cli, tmp_path):
    out = tmp_path / "p.parquet"
    out.write_bytes(world[3].read_bytes())  # same inputs: up to date
    r = cli(*track_rank_args(world, out))
    assert r.exit_code == 0 and "up to date" in r.output, r.output
    r = cli(*track_rank_args(world, out), "--top-k", "2")  # other options: replaced
    assert r.exit_code == 0, r.output
    assert P.read_predictions(out).meta["config"]["top_k"] == 2


def test_export_refuses_a_folder_holding_files_it_did_not_write(world, cli, tmp_path, roots):
    E = tmp_path / "E"
    E.mkdir()
    (E / "predictions.json").write_text("[1]\n")
    before = snapshot(*roots)
    r = cli("export", world[3], "--format", "coco-rle", "--out", E)
    assert_refused(r, before, *roots, says=(str(E), "did not write", "predictions.json", "--force"))


def test_evaluate_refuses_metrics_files_it_did_not_write_and_replaces_its_own(world, cli, tmp_path, roots):
    E = tmp_path / "ev"
    E.mkdir()
    (E / "metrics.json").write_text('{"mine": 1}\n')  # a user's file of the same name
    before = snapshot(*roots)
    dataset = world[1].parent
    assert_refused(cli("evaluate", world[3], "--dataset", dataset, "--out", E), before, *roots,
                   says=("metrics.json", "not written by", "--out"))
    (E / "metrics.json").unlink()
    (E / "metrics.md").write_text("my table\n")  # a lone metrics.md evaluate would have written beside its json
    before = snapshot(*roots)
    assert_refused(cli("evaluate", world[3], "--dataset", dataset, "--out", E), before, *roots, says=("metrics.md",))
    (E / "metrics.md").unlink()
    assert cli("evaluate", world[3], "--dataset", dataset, "--out", E).exit_code == 0
    assert cli("evaluate", world[3], "--dataset", dataset, "--out", E).exit_code == 0  # its own files: replaced


def test_ablate_refuses_table_files_it_did_not_write_before_training(world, cli, tmp_path, roots):
    T = tmp_path / "table"
    T.mkdir()
    (T / "ablation.md").write_text("my own table\n")  # a lone ablation.md: ablate writes it beside its json
    before = snapshot(*roots)
    args = ("ablate", "--cache", world[1], "--dataset", world[1].parent, "--out", T, "--rows", "1", "--epochs", "1",
            "--device", "cpu")
    assert_refused(cli(*args), before, *roots, says=("ablation.md", "not written by", "--out"))
    assert not (T / "runs").exists()  # refused before any head was trained
    (T / "ablation.md").unlink()
    (T / "ablation.json").write_text('{"rows": []}\n')  # json of the same name that is not ablate's report
    before = snapshot(*roots)
    assert_refused(cli(*args), before, *roots, says=("ablation.json",))


def test_export_refuses_a_file_edited_by_hand_in_an_earlier_export(world, cli, tmp_path, roots):
    E = tmp_path / "E"
    assert cli("export", world[3], "--format", "coco-rle", "--out", E).exit_code == 0
    with open(E / "predictions.json", "a") as f:
        f.write(" ")  # the same name the manifest lists, other bytes: the user's edit now
    before = snapshot(*roots)
    assert_refused(cli("export", world[3], "--format", "coco-rle", "--out", E), before, *roots,
                   says=("predictions.json", "changed since", "--force"))


def test_export_refuses_a_file_a_user_added_to_an_earlier_export(world, cli, tmp_path, roots):
    E = tmp_path / "E"
    assert cli("export", world[3], "--format", "png", "--out", E).exit_code == 0
    (E / "README.txt").write_text("my notes\n")
    before = snapshot(*roots)
    assert_refused(cli("export", world[3], "--format", "png", "--out", E), before, *roots, says=("README.txt", "--force"))


def test_export_default_out_that_is_a_file_is_refused(world, cli, tmp_path, roots):
    pred = tmp_path / "P.parquet"
    pred.write_bytes(world[3].read_bytes())
    (tmp_path / "P-coco-rle").write_text("a file where the export folder would go\n")
    before = snapshot(*roots)
    assert_refused(cli("export", pred), before, *roots, says=(str(tmp_path / "P-coco-rle"), "is a file"))


def test_export_force_replaces_a_foreign_folder_whole(world, cli, tmp_path):
    E = tmp_path / "E"
    E.mkdir()
    (E / "predictions.json").write_text("[1]\n")
    (E / "old.txt").write_text("x\n")
    r = cli("export", world[3], "--format", "coco-rle", "--out", E, "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in E.iterdir()) == [atomic.MANIFEST, "predictions.json"]
    assert json.loads((E / "predictions.json").read_text()) != [1]


def test_export_force_never_replaces_the_folder_holding_its_own_input(world, cli, tmp_path, roots):
    E = tmp_path / "E"
    E.mkdir()
    pred = E / "P.parquet"
    pred.write_bytes(world[3].read_bytes())
    before = snapshot(*roots)
    r = cli("export", pred, "--out", E, "--force")
    assert_refused(r, before, *roots, says=(str(E), "holds the input", "not even with --force", "NEW_DIR"))


def test_segment_force_never_replaces_the_folder_holding_the_video(world, cli, tmp_path, roots):
    out = tmp_path / "seg"
    clip = make_clip(out / "clip.mp4")
    before = snapshot(*roots)
    r = cli("segment", clip, "--query", "the red ball", "--detector", "oracle", "--head", world[2], "--out", out,
            "--cache", tmp_path / "segcache", "--device", "cpu", "--force")
    assert_refused(r, before, *roots, says=(str(out), "holds the input", str(clip)))


def test_re_export_replaces_the_previous_export_whole(world, cli, tmp_path):
    pred = world[3]
    fewer = tmp_path / "fewer.parquet"
    table = P.read_predictions(pred).table
    qids = sorted(set(table.column("query_id").to_pylist()))
    keep = [i for i, q in enumerate(table.column("query_id").to_pylist()) if q == qids[0]]
    P.write_predictions(fewer, table.take(keep))
    E = tmp_path / "E"
    assert cli("export", pred, "--format", "png", "--out", E).exit_code == 0
    assert len({p.parent.name for p in E.rglob("*.png")}) == len(qids) > 1
    r = cli("export", fewer, "--format", "png", "--out", E)
    assert r.exit_code == 0, r.output
    assert {p.parent.name for p in E.rglob("*.png")} == {qids[0]}  # no stale query folder of the first export
    assert set(atomic.manifest_files(E)) == set(atomic.files_under(E)) - {atomic.MANIFEST}
    assert not temps(tmp_path)


def test_segment_refuses_an_out_folder_holding_other_files_before_any_work(world, cli, tmp_path, roots):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "seg"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work\n")
    before = snapshot(*roots)
    r = cli("segment", clip, "--query", "the red ball", "--detector", "oracle", "--head", world[2], "--out", out,
            "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(out), "thesis.tex", "clawcrane segment", "--force"))
    assert not (tmp_path / "segcache").exists()  # nothing was computed


def test_train_head_refuses_a_folder_holding_a_foreign_best_pt(world, cli, tmp_path, roots):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"someone else's checkpoint")
    before = snapshot(*roots)
    assert_refused(cli(*train_head_args(world, run)), before, *roots, says=(str(run / "best.pt"), "--out"))


# ---- 6. the umask, and the leftovers of killed runs --------------------------------------------------
@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_atomic_files_honour_the_umask_not_mkstemps_0600(tmp_path, umask_027):
    atomic.write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_predictions_and_exports_honour_the_umask(world, cli, tmp_path, umask_027):
    out = tmp_path / "p.parquet"
    assert cli(*track_rank_args(world, out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    E = tmp_path / "E"
    assert cli("export", out, "--format", "png", "--out", E).exit_code == 0
    modes = {stat.S_IMODE(p.stat().st_mode) for p in [E, *E.rglob("*")] if p.is_dir()}
    assert modes == {0o750}
    assert {stat.S_IMODE(p.stat().st_mode) for p in E.rglob("*") if p.is_file()} == {0o640}


def test_train_head_removes_temp_checkpoints_of_a_killed_run_and_nothing_else(world, cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".best.pt.k9x2ab_1.tmp"  # what atomic_path leaves when the process is killed mid-write
    stale.write_bytes(b"\0" * 1000)
    mine = [run / "notes.tmp", run / ".notes.tmp", run / ".plan.txt.tmp"]  # not the tool's temp names
    for p in mine:
        p.write_text("mine\n")
    r = cli(*train_head_args(world, run))
    assert r.exit_code == 0, r.output
    assert not stale.exists() and (run / "best.pt").is_file()
    assert all(p.read_text() == "mine\n" for p in mine)


def test_track_rank_removes_its_own_stale_temp_beside_out_only(world, cli, tmp_path):
    stale = tmp_path / ".p.parquet.abcd1234.tmp"
    other = tmp_path / ".q.parquet.abcd1234.tmp"  # another output's temp: maybe being written right now
    stale.write_bytes(b"half")
    other.write_bytes(b"half")
    r = cli(*track_rank_args(world, tmp_path / "p.parquet"))
    assert r.exit_code == 0, r.output
    assert not stale.exists() and other.read_bytes() == b"half"


def test_export_removes_the_staging_folder_of_a_killed_export(world, cli, tmp_path):
    stale = tmp_path / ".E.zz99yy88.tmp"
    (stale / "vid").mkdir(parents=True)
    (stale / "vid" / "00000.png").write_bytes(b"half")
    r = cli("export", world[3], "--format", "png", "--out", tmp_path / "E")
    assert r.exit_code == 0, r.output
    assert not stale.exists() and (tmp_path / "E").is_dir()


def test_a_failed_write_leaves_no_temp_and_the_old_file(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n" and not temps(tmp_path)


def test_clean_stale_temps_touches_only_the_tools_temp_names(tmp_path):
    fd, name = tempfile.mkstemp(prefix=".x.bin.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    keep = [tmp_path / ".x.tmp", tmp_path / "x.tmp", tmp_path / ".x.bin.toolong123.tmp", tmp_path / ".x.bin.abc.tmp"]
    for p in keep:
        p.write_text("mine")
    assert atomic.clean_stale_temps(tmp_path) == 1
    assert not Path(name).exists() and all(p.exists() for p in keep)


# ---- a real synthetic world for items 3, 4, 5: made by the CLI itself ------------------------------
EXTRACT = ["--backbone", "resnet18", "--weights", "none", "--input-size", "64", "--device", "cpu", "--workers", "1"]


def invoke(*args):
    """The CLI as a user runs it: nothing patched."""
    return CliRunner().invoke(main, ["--log-level", "error", *map(str, args)])


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """D (tiny synthetic dataset), D2 (the same preset, another seed), C (D's candidates and features), RUN (a head on C)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("synth")
    ok("data", "synth", tmp / "D", "--preset", "tiny", "--workers", "1")
    ok("data", "synth", tmp / "D2", "--preset", "tiny", "--seed", "1", "--workers", "1")
    ok("detect", tmp / "D", "--detector", "oracle", "--cache", tmp / "C", "--device", "cpu")
    ok("extract", "--cache", tmp / "C", *EXTRACT)
    ok("train-head", "--features", tmp / "C", "--dataset", tmp / "D", "--out", tmp / "RUN", "--epochs", "1", *HEAD_SIZE)
    torch.set_num_threads(n)
    (det,), (ext,) = (tmp / "C").glob("detect-*"), (tmp / "C").glob("extract-*")
    return SimpleNamespace(root=tmp, D=tmp / "D", D2=tmp / "D2", C=tmp / "C", det=det, ext=ext, run=tmp / "RUN")


@pytest.fixture
def sroots(synth, tmp_path):
    return (tmp_path, synth.root)


def copy_cache(synth, dst: Path, *which: str) -> Path:
    """A copy of the synthetic cache root (or only the artifacts ``which``: 'det', 'ext') at ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in which or ("det", "ext"):
        src = getattr(synth, name)
        shutil.copytree(src, dst / src.name)
    return dst


def killed_after(art: Path, n: int) -> list[str]:
    """Make ``art`` what a run killed after its first ``n`` videos leaves: their parts, no data.h5; returns the kept ids."""
    store = Store(art)
    keep = [store.read(v) for v in store.video_ids()[:n]]
    (art / "data.h5").unlink()
    store = Store(art)
    for rec in keep:
        store.write_video(rec)
    return [r.video_id for r in keep]


def emptied(art: Path) -> None:
    """Make ``art`` what a failed first run leaves: meta.json and an empty parts/."""
    for p in art.glob("*.h5"):
        p.unlink()
    for p in (art / "parts").glob("*"):
        p.unlink()


def flip_byte(h5: Path, video: str, column: str, at: int = 3) -> None:
    """Flip bits of one stored byte of ``column`` of ``video`` in the file itself (bit rot, a bad copy)."""
    with h5py.File(h5, "r") as f:
        d = f["videos"][escape_id(video)][column]
        off = d.id.get_offset() if d.chunks is None else d.id.get_chunk_info(0).byte_offset
        assert off is not None
    with open(h5, "r+b") as fh:
        fh.seek(off + at)
        b = fh.read(1)
        fh.seek(off + at)
        fh.write(bytes([b[0] ^ 0x41]))


def uncompressed(h5: Path, video: str) -> list[str]:
    with h5py.File(h5, "r") as f:
        g = f["videos"][escape_id(video)]
        return [k for k, d in g.items() if d.compression is None and d.attrs.get("kind") != "bytes" and d.size]


def synth_track_rank(synth, features, out, dataset=None, head=None):
    return ["track-rank", "--head", head or synth.run, "--features", features, "--dataset", dataset or synth.D,
            "--out", out, "--device", "cpu"]


def synth_train_head(synth, features, out, dataset=None):
    return ["train-head", "--features", features, "--dataset", dataset or synth.D, "--out", out, "--epochs", "1", *HEAD_SIZE]


# ---- 3. artifacts say whether they are complete -------------------------------------------------------
def test_cache_verify_fails_a_detect_killed_at_2_of_8_videos_and_names_the_command_that_completes_it(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    art = cache / synth.det.name
    kept = killed_after(art, 2)
    before = snapshot(*sroots)
    line = assert_refused(invoke("cache", "verify", art), before, *sroots,
                          says=(str(art), "incomplete artifact, 2 of 8 videos done", f"clawcrane detect {synth.D} --detector oracle --cache {cache}"))
    assert not any(v in line for v in kept)
    ok("detect", synth.D, "--detector", "oracle", "--cache", cache, "--device", "cpu")  # the named command completes it
    ok("cache", "verify", art)


def test_cache_verify_fails_an_empty_artifact_left_by_a_failed_run(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c", "det") / synth.det.name
    emptied(art)
    before = snapshot(*sroots)
    assert_refused(invoke("cache", "verify", art), before, *sroots, says=("0 of 8 videos done", "clawcrane detect"))


def test_cache_verify_of_a_root_names_the_incomplete_artifact_among_several(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    killed_after(cache / synth.ext.name, 3)
    before = snapshot(*sroots)
    r = invoke("cache", "verify", cache)
    assert f"{cache / synth.det.name}: ok" in r.output  # each artifact is verified
    assert_refused(r, before, *sroots, says=(str(cache / synth.ext.name), "3 of 8 videos done", "clawcrane extract --cache"))


def test_cache_verify_of_a_root_with_two_failing_artifacts_is_one_line(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    emptied(cache / synth.det.name)
    killed_after(cache / synth.ext.name, 1)
    before = snapshot(*sroots)
    assert_refused(invoke("cache", "verify", cache), before, *sroots, says=("2 of 2 artifacts failed", synth.det.name, synth.ext.name))


def test_extract_refuses_a_killed_detect_with_the_message_of_cache_verify(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    killed_after(cache / synth.det.name, 2)
    before = snapshot(*sroots)
    verify_line = assert_refused(invoke("cache", "verify", cache / synth.det.name), before, *sroots)
    line = assert_refused(invoke("extract", "--cache", cache, *EXTRACT), before, *sroots)
    assert line == verify_line  # the same message, with the command that completes it


def test_extract_refuses_an_empty_detect_artifact_instead_of_extracting_0_videos(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    emptied(cache / synth.det.name)
    before = snapshot(*sroots)
    assert_refused(invoke("extract", "--cache", cache, *EXTRACT), before, *sroots, says=("0 of 8 videos done", "clawcrane detect"))
    assert not list(cache.glob("extract-*"))


def test_extract_shard_refuses_when_its_shard_of_the_candidates_is_not_done(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    store = Store(cache / synth.det.name)
    shard1 = sorted(store.video_ids())[1::2]
    keep = [store.read(v) for v in sorted(store.video_ids())[0::2]]
    (cache / synth.det.name / "data.h5").unlink()
    store = Store(cache / synth.det.name)
    for rec in keep:
        store.write_video(rec)
    ok("extract", "--cache", cache, *EXTRACT, "--shard", "0/2")  # shard 0 of the candidates is done: allowed
    before = snapshot(*sroots)
    assert_refused(invoke("extract", "--cache", cache, *EXTRACT, "--shard", "1/2"), before, *sroots, says=(shard1[0], "clawcrane detect"))


def test_train_head_refuses_an_incomplete_feature_cache(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    killed_after(cache / synth.ext.name, 4)
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_train_head(synth, cache, tmp_path / "run")), before, *sroots,
                   says=(str(cache / synth.ext.name), "4 of 8 videos done", "clawcrane extract --cache"))
    assert not (tmp_path / "run").exists()


def test_train_head_refuses_an_empty_feature_cache(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    emptied(cache / synth.ext.name)
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_train_head(synth, cache, tmp_path / "run")), before, *sroots, says=("0 of 8 videos done",))


def test_track_rank_refuses_an_incomplete_feature_cache(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    killed_after(cache / synth.ext.name, 2)
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_track_rank(synth, cache, tmp_path / "p.parquet")), before, *sroots,
                   says=("incomplete artifact", "clawcrane extract --cache"))


def test_track_rank_refuses_features_whose_candidate_cache_lost_videos(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    killed_after(cache / synth.det.name, 5)
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_track_rank(synth, cache, tmp_path / "p.parquet")), before, *sroots,
                   says=(str(cache / synth.det.name), "5 of 8 videos done", "clawcrane detect"))


def test_track_rank_refuses_features_without_their_candidate_cache(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "ext")
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_track_rank(synth, cache, tmp_path / "p.parquet")), before, *sroots, says=("is not beside it",))


# ---- 4. checksums of every column, checked by cache verify (and on read) ------------------------------
@pytest.mark.parametrize("column", ["score", "frame", "processed_frames"])
def test_cache_verify_catches_a_flipped_byte_in_an_uncompressed_candidate_column(synth, tmp_path, sroots, column):
    art = copy_cache(synth, tmp_path / "c", "det") / synth.det.name
    vid = Store(art).video_ids()[3]
    assert column in uncompressed(art / "data.h5", vid)
    flip_byte(art / "data.h5", vid, column)
    before = snapshot(*sroots)
    r = invoke("cache", "verify", art)
    assert f"{vid}: column '{column}' does not match its checksum" in r.output
    assert_refused(r, before, *sroots, says=(str(art), "problem(s)", "clawcrane detect"))


def test_cache_verify_catches_a_flipped_byte_in_a_compressed_feature_column(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c") / synth.ext.name
    vid = Store(art).video_ids()[0]
    flip_byte(art / "data.h5", vid, "feat", at=40)
    before = snapshot(*sroots)
    r = invoke("cache", "verify", art)
    assert vid in r.output
    assert_refused(r, before, *sroots, says=(str(art), "clawcrane extract --cache"))


def test_cache_verify_catches_values_rewritten_through_hdf5_that_still_look_valid(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c") / synth.ext.name
    vid = Store(art).video_ids()[1]
    with h5py.File(art / "data.h5", "r+") as f:
        d = f["videos"][escape_id(vid)]["pos"]
        d[...] = d[()][::-1]  # finite, in range, right shape: only the checksum can tell
    before = snapshot(*sroots)
    r = invoke("cache", "verify", art)
    assert f"{vid}: column 'pos' does not match its checksum" in r.output
    assert_refused(r, before, *sroots)


def test_cache_verify_catches_a_changed_scalar_attribute(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c", "det") / synth.det.name
    vid = Store(art).video_ids()[2]
    with h5py.File(art / "data.h5", "r+") as f:
        f["videos"][escape_id(vid)].attrs["fps"] = 99.0
    before = snapshot(*sroots)
    r = invoke("cache", "verify", art)
    assert f"{vid}: attribute block does not match its checksum" in r.output
    assert_refused(r, before, *sroots)


def test_cache_verify_catches_a_truncated_data_file(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c", "det") / synth.det.name
    data = (art / "data.h5").read_bytes()
    (art / "data.h5").write_bytes(data[: len(data) // 2])
    before = snapshot(*sroots)
    assert_refused(invoke("cache", "verify", art), before, *sroots, says=(str(art),))


def test_track_rank_reading_with_checks_refuses_flipped_feature_bytes(synth, tmp_path, sroots, monkeypatch):
    monkeypatch.setenv(VERIFY_ENV, "1")
    cache = copy_cache(synth, tmp_path / "c")
    vid = next(v for v in Store(cache / synth.ext.name).video_ids() if synth_split(synth, v) == "test")
    flip_byte(cache / synth.ext.name / "data.h5", vid, "frame", at=0)
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_track_rank(synth, cache, tmp_path / "p.parquet")), before, *sroots,
                   says=(str(cache / synth.ext.name / "data.h5"), vid, "does not match its checksum"))


def test_train_head_reading_with_checks_refuses_flipped_candidate_bytes(synth, tmp_path, sroots, monkeypatch):
    monkeypatch.setenv(VERIFY_ENV, "1")
    cache = copy_cache(synth, tmp_path / "c")
    vid = next(v for v in Store(cache / synth.det.name).video_ids() if synth_split(synth, v) == "train")
    flip_byte(cache / synth.det.name / "data.h5", vid, "score")
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_train_head(synth, cache, tmp_path / "run")), before, *sroots,
                   says=(vid, "column 'score' does not match its checksum", "clawcrane detect"))


def synth_split(synth, vid: str) -> str:
    for line in (synth.D / "Release" / "videoset.csv").read_text().splitlines():
        cols = line.split(",")
        if cols[0] == vid:
            return "train" if cols[8].strip() == "0" else "test"
    return "?"


# ---- 5. the inputs of a stage belong together ----------------------------------------------------------
def test_track_rank_refuses_features_of_another_dataset_naming_both(synth, tmp_path, sroots):
    before = snapshot(*sroots)
    line = assert_refused(invoke(*synth_track_rank(synth, synth.C, tmp_path / "p.parquet", dataset=synth.D2)), before, *sroots,
                          says=(str(synth.ext), str(synth.D2), "fingerprint"))
    assert line.count("fingerprint") >= 2


def test_train_head_refuses_features_of_another_dataset_naming_both(synth, tmp_path, sroots):
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_train_head(synth, synth.C, tmp_path / "run", dataset=synth.D2)), before, *sroots,
                   says=(str(synth.ext), str(synth.D2), "fingerprint"))
    assert not (tmp_path / "run").exists()


def test_extract_refuses_a_dataset_other_than_the_candidates_were_detected_on(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    before = snapshot(*sroots)
    assert_refused(invoke("extract", "--cache", cache, *EXTRACT, "--dataset", synth.D2), before, *sroots,
                   says=(str(synth.D2), "fingerprint", "clawcrane detect"))
    assert not list(cache.glob("extract-*"))


def test_track_rank_refuses_a_head_of_another_backbone(synth, world, tmp_path, sroots):
    before = snapshot(*sroots, world[2])
    assert_refused(invoke(*synth_track_rank(synth, synth.C, tmp_path / "p.parquet", head=world[2])), before, *sroots, world[2],
                   says=(str(synth.ext), "backbone"))


def test_train_head_resume_refuses_features_of_another_run(synth, world, tmp_path, sroots):
    run = tmp_path / "run"
    shutil.copytree(world[2], run)  # a run trained on the colour world's features
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_train_head(synth, synth.C, run), "--resume"), before, *sroots, says=(str(synth.ext),))


def test_detect_refuses_a_cache_folder_holding_another_key(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    meta = json.loads((cache / synth.det.name / "meta.json").read_text())
    meta["key"] = "f" * 64
    (cache / synth.det.name / "meta.json").write_text(json.dumps(meta))
    before = snapshot(*sroots)
    assert_refused(invoke("detect", synth.D, "--detector", "oracle", "--cache", cache, "--device", "cpu"), before, *sroots,
                   says=(str(cache / synth.det.name),))


def test_train_head_refuses_a_candidate_cache_as_features(synth, tmp_path, sroots):
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_train_head(synth, synth.det, tmp_path / "run")), before, *sroots, says=("clawcrane extract",))


def test_extract_refuses_a_feature_cache_as_candidates(synth, tmp_path, sroots):
    before = snapshot(*sroots)
    assert_refused(invoke("extract", "--cache", tmp_path / "c", "--candidates", synth.ext, *EXTRACT), before, *sroots,
                   says=(str(synth.ext), "clawcrane detect"))


# ---- smaller: dataset rows and files detect would skip, queries files, --head folders -------------------
def dataset_copy(synth, tmp_path) -> Path:
    return Path(shutil.copytree(synth.D, tmp_path / "D"))


def test_detect_refuses_a_frame_whose_remask_has_the_wrong_shape_unless_skip_bad(synth, tmp_path, sroots, caplog):
    D = dataset_copy(synth, tmp_path)
    h5 = D / "text_annotations" / "a2d_annotation_with_instances" / "s0000" / "00002.h5"
    with h5py.File(h5, "r+") as f:
        m = f["reMask"][()]
        del f["reMask"]
        f["reMask"] = m[None]
    before = snapshot(*sroots)
    assert_refused(invoke("detect", D, "--detector", "oracle", "--cache", tmp_path / "c", "--device", "cpu"), before, *sroots,
                   says=(str(h5), "'reMask' has shape", "--skip-bad"))
    assert not (tmp_path / "c").exists()
    caplog.set_level("WARNING", logger="clawcrane")
    r = CliRunner().invoke(main, ["--log-level", "warning", "detect", str(D), "--detector", "oracle", "--cache",
                                  str(tmp_path / "c"), "--device", "cpu", "--skip-bad"])
    assert r.exit_code == 0, r.output
    assert "skipped dataset items (--skip-bad): 1" in r.stdout  # counted in the summary
    assert any(str(h5) in m and "'reMask' has shape" in m for m in caplog.messages)  # and warned, naming the frame


def test_detect_exits_1_on_a_malformed_videoset_row(synth, tmp_path, sroots):
    D = dataset_copy(synth, tmp_path)
    with open(D / "Release" / "videoset.csv", "a") as f:
        f.write("s0099,1,2\n")
    before = snapshot(*sroots)
    assert_refused(invoke("detect", D, "--detector", "oracle", "--cache", tmp_path / "c", "--device", "cpu"), before, *sroots,
                   says=("videoset.csv:10", "expected 9 comma-separated columns", "--skip-bad"))


def test_detect_exits_1_on_a_malformed_sentence_row(synth, tmp_path, sroots):
    D = dataset_copy(synth, tmp_path)
    with open(D / "text_annotations" / "a2d_annotation.txt", "a") as f:
        f.write("s0000,1,the ball,extra,columns\n")
    before = snapshot(*sroots)
    assert_refused(invoke("detect", D, "--detector", "oracle", "--cache", tmp_path / "c", "--device", "cpu"), before, *sroots,
                   says=("a2d_annotation.txt", "--skip-bad"))


def test_detect_exits_1_on_a_missing_clip(synth, tmp_path, sroots):
    D = dataset_copy(synth, tmp_path)
    (D / "Release" / "clips320H" / "s0001.mp4").unlink()
    before = snapshot(*sroots)
    assert_refused(invoke("detect", D, "--detector", "oracle", "--cache", tmp_path / "c", "--device", "cpu"), before, *sroots,
                   says=("s0001.mp4", "clip is missing", "--skip-bad"))


def test_a_sentence_file_with_an_unterminated_quote_is_an_error_naming_the_line(synth, tmp_path, sroots):
    D = dataset_copy(synth, tmp_path)
    path = D / "text_annotations" / "a2d_annotation.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(",the ", ',"the ', 1)
    path.write_text("".join(lines))
    before = snapshot(*sroots)
    assert_refused(invoke("detect", D, "--detector", "oracle", "--cache", tmp_path / "c", "--device", "cpu"), before, *sroots,
                   says=(f"{path}:4", "quote", "not closed"))


def test_a_queries_csv_with_an_unterminated_quote_is_an_error_naming_the_file_and_line(world, tmp_path, roots):
    clip = make_clip(tmp_path / "clip.mp4")
    qf = tmp_path / "q.csv"
    qf.write_text('query_id,query\nq1,"the red ball\nq2,the green ball\n')
    before = snapshot(*roots)
    r = invoke("segment", clip, "--queries-file", qf, "--detector", "oracle", "--head", world[2], "--out", tmp_path / "seg",
               "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(f"{qf}:2", "quote", "not closed"))


def test_a_queries_csv_row_with_too_many_columns_is_an_error_naming_the_line(world, tmp_path, roots):
    clip = make_clip(tmp_path / "clip.mp4")
    qf = tmp_path / "q.csv"
    qf.write_text("query_id,query\nq1,the red, ball\n")
    before = snapshot(*roots)
    r = invoke("segment", clip, "--queries-file", qf, "--detector", "oracle", "--head", world[2], "--out", tmp_path / "seg",
               "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(f"{qf}:2", "quote sentences that contain commas"))


def test_a_queries_json_that_does_not_parse_is_one_line(world, tmp_path, roots):
    clip = make_clip(tmp_path / "clip.mp4")
    qf = tmp_path / "q.json"
    qf.write_text('["the red ball",')
    before = snapshot(*roots)
    r = invoke("segment", clip, "--queries-file", qf, "--detector", "oracle", "--head", world[2], "--out", tmp_path / "seg",
               "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(qf), "invalid JSON"))


def test_track_rank_refuses_a_head_folder_holding_only_last_pt(world, cli, tmp_path, roots):
    run = tmp_path / "killed-run"
    run.mkdir()
    (run / "last.pt").write_bytes((world[2] / "last.pt").read_bytes())
    before = snapshot(*roots)
    _, features, _, _ = world
    r = cli("track-rank", "--head", run, "--features", features, "--dataset", features.parent, "--out", tmp_path / "p.parquet",
            "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(run), "no best.pt", "--resume", str(run / "last.pt")))


def test_segment_refuses_a_head_folder_holding_only_last_pt(world, tmp_path, roots):
    run = tmp_path / "killed-run"
    run.mkdir()
    (run / "last.pt").write_bytes((world[2] / "last.pt").read_bytes())
    clip = make_clip(tmp_path / "clip.mp4")
    before = snapshot(*roots)
    r = invoke("segment", clip, "--query", "the red ball", "--detector", "oracle", "--head", run, "--out", tmp_path / "seg",
               "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(run), "--resume"))


def test_track_rank_uses_an_explicit_last_pt_with_a_warning(world, cli, tmp_path, caplog):
    _, features, run, _ = world
    caplog.set_level("WARNING", logger="clawcrane")
    r = cli("--log-level", "warning", "track-rank", "--head", run / "last.pt", "--features", features, "--dataset",
            features.parent, "--out", tmp_path / "p.parquet", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert any("last.pt: using the latest epoch" in m and "best.pt" in m for m in caplog.messages)


# ---- more hostile inputs across the stages -------------------------------------------------------------
def test_cache_verify_of_a_folder_without_artifacts_is_one_line(tmp_path, sroots):
    (tmp_path / "empty").mkdir()
    before = snapshot(*sroots)
    assert_refused(invoke("cache", "verify", tmp_path / "empty"), before, *sroots, says=("no ClawCrane artifact",))


def test_cache_verify_of_an_artifact_with_a_corrupted_meta_is_one_line(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c", "det") / synth.det.name
    (art / "meta.json").write_text("{half a json")
    before = snapshot(*sroots)
    assert_refused(invoke("cache", "verify", art), before, *sroots, says=(str(art / "meta.json"), "corrupted"))


def test_cache_merge_of_an_empty_artifact_is_one_line(synth, tmp_path, sroots):
    art = copy_cache(synth, tmp_path / "c", "det") / synth.det.name
    emptied(art)
    before = snapshot(*sroots)
    assert_refused(invoke("cache", "merge", art), before, *sroots, says=("no data files to merge",))


def test_extract_refuses_a_truncated_candidate_file(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c", "det")
    data = cache / synth.det.name / "data.h5"
    data.write_bytes(data.read_bytes()[:4096])
    before = snapshot(*sroots)
    assert_refused(invoke("extract", "--cache", cache, *EXTRACT), before, *sroots, says=(str(data), "re-run"))


def test_track_rank_refuses_a_features_root_holding_two_feature_caches(synth, tmp_path, sroots):
    cache = copy_cache(synth, tmp_path / "c")
    shutil.copytree(cache / synth.ext.name, cache / "extract-0000000000000000")
    before = snapshot(*sroots)
    assert_refused(invoke(*synth_track_rank(synth, cache, tmp_path / "p.parquet")), before, *sroots, says=("several", "pass one"))


def test_detect_refuses_an_impossible_shard(synth, tmp_path, sroots):
    before = snapshot(*sroots)
    assert_refused(invoke("detect", synth.D, "--detector", "oracle", "--cache", tmp_path / "c", "--shard", "3/2"), before, *sroots,
                   says=("--shard",))


def test_evaluate_refuses_predictions_of_another_dataset(synth, tmp_path, sroots):
    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    before = snapshot(*sroots)
    assert_refused(invoke("evaluate", pred, "--dataset", synth.D2, "--out", tmp_path / "eval"), before, *sroots,
                   says=(str(pred), "fingerprint"))


def test_export_refuses_a_file_that_is_not_predictions(tmp_path, sroots):
    bad = tmp_path / "p.parquet"
    bad.write_text("not parquet\n")
    before = snapshot(*sroots)
    assert_refused(invoke("export", bad, "--out", tmp_path / "E"), before, *sroots, says=(str(bad),))


def test_export_refuses_a_dataset_other_than_the_predictions_were_made_for(synth, tmp_path, sroots):
    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    before = snapshot(*sroots)
    assert_refused(invoke("export", pred, "--format", "png", "--dataset", synth.D2, "--out", tmp_path / "E"), before, *sroots,
                   says=(str(pred), "fingerprint", "--dataset"))
    assert not (tmp_path / "E").exists()


# ---- found by the second hostile pass ------------------------------------------------------------------
def predictions_and_dataset_copy(synth, tmp_path) -> tuple[Path, Path]:
    """Predictions of the synthetic world's head (track-rank) and a copy of its dataset, both under ``tmp_path``."""
    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    data = tmp_path / "D"
    shutil.copytree(synth.D, data)
    return pred, data


@pytest.mark.parametrize("qid", ["../../escaped", "/tmp/clawcrane-abs-escape", "sub/dir"])
def test_segment_refuses_a_queries_file_id_that_is_a_path(world, tmp_path, roots, qid):
    # the id names masks/<query_id>/: '../..' or an absolute path would write outside --out
    qf = tmp_path / "queries.json"
    qf.write_text(json.dumps([{"query_id": qid, "query": "the red ball"}]))
    clip = make_clip(tmp_path / "clip.mp4")
    before = snapshot(*roots)
    r = invoke("segment", clip, "--queries-file", qf, "--detector", "oracle", "--head", world[2], "--out", tmp_path / "seg",
               "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(qf), "cannot name an output folder"))
    assert not (tmp_path / "seg").exists() and not Path("/tmp/clawcrane-abs-escape").exists()


def test_force_never_replaces_a_folder_inside_an_input(synth, tmp_path, sroots):
    pred, data = predictions_and_dataset_copy(synth, tmp_path)
    before = snapshot(*sroots)
    # --out is the dataset's own Release/ folder: --force would delete the clips and annotations
    r = invoke("report", pred, "--dataset", data, "--out", data / "Release", "--force")
    assert_refused(r, before, *sroots, says=(str(data / "Release"), "inside the input", "not even with --force"))
    # a folder inside the input that the command wrote itself is still replaced (no foreign files)
    ok("report", pred, "--dataset", data, "--out", data / "report")
    ok("report", pred, "--dataset", data, "--out", data / "report", "--force")


def test_cache_verify_accepts_a_video_without_candidates_and_flags_a_bad_position_shape():
    from clawcrane.cache.store import VideoRecord
    from clawcrane.cache.verify import check_features

    # a video where the detector found nothing: every column has 0 rows, positions (0, 10)
    empty = VideoRecord("v", arrays={"frame": np.zeros(0, np.int32), "feat": np.zeros((0, 8), np.float16),
                                     "pos": np.zeros((0, 10), np.float32)})
    assert check_features(empty, np.zeros(0, np.int32)) == []
    bad = VideoRecord("v", arrays={"frame": np.zeros(2, np.int32), "feat": np.zeros((2, 8), np.float16),
                                   "pos": np.zeros((2, 9), np.float32)})
    assert check_features(bad, None) == ["pos has shape (2, 9), expected (N, 10)"]


def test_ablate_does_not_write_over_its_own_report_edited_by_hand(tmp_path):
    from clawcrane.stages import ablate

    out = tmp_path / "table"
    out.mkdir()
    md = "| # | method | P@0.5 |\n"
    report = ablate.sealed({"config": {}, "rows": [], "dataset": {}, "track_rank": {}}, md)
    atomic.write_json(out / "ablation.json", report)
    atomic.write_text(out / "ablation.md", md)
    ablate.check_out(out, "test")  # as written: a re-run may replace both
    (out / "ablation.md").write_text(md + "my note\n")
    with pytest.raises(clawcrane.errors.ConfigError, match="changed since `clawcrane ablate` wrote it"):
        ablate.check_out(out, "test")
    (out / "ablation.md").write_text(md)
    edited = json.loads((out / "ablation.json").read_text())
    edited["rows"] = [{"name": "mine"}]
    (out / "ablation.json").write_text(json.dumps(edited))
    with pytest.raises(clawcrane.errors.ConfigError, match="ablation.json: changed since"):
        ablate.check_out(out, "test")


def test_report_refuses_the_training_curves_of_another_run(synth, tmp_path, sroots):
    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    other = tmp_path / "other-run"
    other.mkdir()
    shutil.copy(synth.run / "metrics.json", other / "metrics.json")  # a run's history without the head that predicted
    before = snapshot(*sroots)
    r = invoke("report", pred, "--dataset", synth.D, "--head", other, "--out", tmp_path / "R")
    assert_refused(r, before, *sroots, says=(str(other / "metrics.json"), "another train-head run"))
    moved = tmp_path / "moved-run"
    shutil.copytree(synth.run, moved)  # the same run, moved: its best.pt is the one that predicted
    ok("report", pred, "--dataset", synth.D, "--head", moved, "--out", tmp_path / "R")


def test_report_refuses_an_ablation_of_another_dataset(synth, tmp_path, sroots):
    from clawcrane.config import AblateConfig
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import ablate

    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    table = tmp_path / "table"
    atomic.write_json(table / "ablation.json", ablate.report_json(AblateConfig(), TrackRankConfig(), synth.ext,
                                                                  open_dataset(synth.D2, frames=False), []))
    before = snapshot(*sroots)
    r = invoke("report", pred, "--dataset", synth.D, "--ablation", table, "--out", tmp_path / "R")
    assert_refused(r, before, *sroots, says=(str(table / "ablation.json"), str(synth.D2), "not on --dataset"))


def test_report_of_a_dataset_without_its_clips_draws_the_gallery_on_grey(synth, tmp_path):
    pred, data = predictions_and_dataset_copy(synth, tmp_path)
    shutil.rmtree(data / "Release" / "clips320H")  # a node with the annotations only
    r = ok("report", pred, "--dataset", data, "--out", tmp_path / "R")
    assert "gallery" in r.output and (tmp_path / "R" / "index.html").is_file()


def test_detect_refuses_an_import_that_covers_no_frame_of_the_dataset(synth, tmp_path, sroots):
    from clawcrane.cache.imports import write_id_map

    imp = tmp_path / "imp"
    for vid in ("s0000", "s0001"):  # the dataset's ids, but frame numbers past every video's end
        write_id_map(imp / vid / "00900.png", np.ones((8, 8), np.uint16))
    before = snapshot(*sroots)
    r = invoke("detect", synth.D, "--detector", f"import:{imp}", "--cache", tmp_path / "c")
    assert_refused(r, before, *sroots, says=(str(imp), "no imported mask falls on a frame", "0-based index"))


def test_detect_warns_about_videos_an_import_does_not_cover(synth, tmp_path, caplog):
    from clawcrane.cache.imports import write_id_map
    from clawcrane.datasets import open_dataset

    ds = open_dataset(synth.D)
    vid = sorted(ds.videos)[0]
    video = ds.videos[vid]
    imp = tmp_path / "imp"
    write_id_map(imp / vid / "00000.png", np.ones((video.height, video.width), np.uint16))
    caplog.set_level("WARNING", logger="clawcrane")
    r = invoke("--log-level", "warning", "detect", synth.D, "--detector", f"import:{imp}", "--cache", tmp_path / "c")
    assert r.exit_code == 0, r.output
    n = len(ds.videos)
    assert any(f"{n - 1} of {n} videos have no imported mask" in m for m in caplog.messages), caplog.messages


def test_segment_refine_masks_with_ground_truth_candidates_is_refused(world, tmp_path, roots):
    clip = make_clip(tmp_path / "clip.mp4")
    before = snapshot(*roots)
    r = invoke("segment", clip, "--query", "the red ball", "--detector", "oracle", "--refine-masks", "grabcut",
               "--head", world[2], "--out", tmp_path / "seg", "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=("--refine-masks grabcut", "leave --refine-masks out"))


@pytest.mark.parametrize("what", ["cache", "dataset", "run"])
def test_force_never_deletes_a_cache_a_dataset_or_a_run_that_is_not_an_input(synth, tmp_path, sroots, what):
    # report names none of these as inputs; --force is for notes or an older output, not for data
    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    victim = tmp_path / what
    shutil.copytree({"cache": synth.C, "dataset": synth.D2, "run": synth.run}[what], victim)
    before = snapshot(*sroots)
    r = invoke("report", pred, "--dataset", synth.D, "--out", victim, "--force")
    assert_refused(r, before, *sroots, says=(str(victim), "--force never deletes"))


def test_export_force_does_not_delete_the_dataset_it_was_not_given(synth, tmp_path, sroots):
    pred, data = predictions_and_dataset_copy(synth, tmp_path)
    before = snapshot(*sroots)
    r = invoke("export", pred, "--format", "png", "--out", data / "Release", "--force")  # no --dataset given
    assert_refused(r, before, *sroots, says=("--force never deletes",))


def test_segment_force_does_not_delete_the_import_it_reads(world, tmp_path, roots):
    imp = tmp_path / "imp"
    imp.mkdir()
    (imp / "masks.json").write_text("[]")
    (imp / "notes.txt").write_text("mine")
    clip = make_clip(tmp_path / "clip.mp4")
    before = snapshot(*roots)
    r = invoke("segment", clip, "--query", "the red ball", "--detector", f"import:{imp / 'masks.json'}", "--head", world[2],
               "--out", imp, "--force", "--cache", tmp_path / "segcache", "--device", "cpu")
    assert_refused(r, before, *roots, says=(str(imp), "holds the input"))


@pytest.mark.parametrize("frame", [-1, 1.5, "3", True])
def test_detect_refuses_an_import_record_whose_frame_is_no_frame_index(synth, tmp_path, sroots, frame):
    imp = tmp_path / "imp.json"
    imp.write_text(json.dumps([{"video_id": "s0000", "frame": frame, "segmentation": None}]))
    before = snapshot(*sroots)
    r = invoke("detect", synth.D, "--detector", f"import:{imp}", "--cache", tmp_path / "c")
    assert_refused(r, before, *sroots, says=(str(imp), "record 0", "0-based frame index"))


@pytest.mark.parametrize("env", [{"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"},
                                 {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": ""},
                                 {"SLURM_ARRAY_TASK_ID": "1"}])
def test_unusable_slurm_array_variables_are_one_line(synth, tmp_path, sroots, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = snapshot(*sroots)
    r = invoke("detect", synth.D, "--detector", "oracle", "--cache", tmp_path / "c")
    assert_refused(r, before, *sroots, says=("SLURM_ARRAY_TASK_ID", "--shard I/N"))


def test_report_refuses_an_ablation_json_edited_by_hand(synth, tmp_path, sroots):
    from clawcrane.config import AblateConfig
    from clawcrane.datasets import open_dataset
    from clawcrane.stages import ablate

    pred = tmp_path / "p.parquet"
    ok(*synth_track_rank(synth, synth.C, pred))
    table = tmp_path / "table"
    report = ablate.report_json(AblateConfig(), TrackRankConfig(), synth.ext, open_dataset(synth.D, frames=False), [])
    atomic.write_json(table / "ablation.json", ablate.sealed(report, "| table |\n"))
    ok("report", pred, "--dataset", synth.D, "--ablation", table, "--out", tmp_path / "R")  # as ablate wrote it
    forged = json.loads((table / "ablation.json").read_text())
    forged["config"]["epochs"] = 999
    (table / "ablation.json").write_text(json.dumps(forged))
    before = snapshot(*sroots)
    r = invoke("report", pred, "--dataset", synth.D, "--ablation", table, "--out", tmp_path / "R2")
    assert_refused(r, before, *sroots, says=(str(table / "ablation.json"), "edited by hand"))
