"""Hostile inputs: every bad call ends in one line on stderr and exit 1, and loses nothing already on disk.

Each hostile case runs the real command line (``CliRunner``) on tiny inputs built here
(``colour_world``: caches written directly, a head trained 1 epoch) and asserts exit code 1,
exactly one line on stderr starting with ``error: ``, no traceback, that every file present
before (the test's folder and the shared world) is byte-identical after, and that no temporary
file of the tool is left behind. File-system failures that root can bypass (read-only folders,
permissions) are simulated by raising the ``OSError`` where the tool would meet it; a real
``chmod`` case runs when the tests do not run as root.

Covers issue 15 items 1 (any ``OSError`` is one line), 2 (outputs never replace a file the tool did
not write; whole-folder outputs are replaced whole) and 6 (the umask is honoured; temporary files
of a killed run are cleaned by the next run).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers.dataset_builders import make_clip
from helpers.head_world import colour_world

import clawcrane.datasets
from clawcrane import atomic
from clawcrane.cache import predictions as P
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
    monkeypatch.setattr(clawcrane.datasets, "open_dataset", lambda path, split=None: world[0], raising=False)

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
