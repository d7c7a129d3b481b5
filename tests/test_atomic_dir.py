"""Whole output folders (`export`, `segment`): replaced as a whole, never mixed, never losing a file the tool did not write."""

import json
import os

import pytest

from clawcrane import atomic
from clawcrane.atomic import MANIFEST, atomic_dir, foreign_files, recover_interrupted
from clawcrane.errors import ConfigError


def _write(out, files: dict[str, str], **kw):
    with atomic_dir(out, command="export", **kw) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def test_rewrite_replaces_the_whole_previous_output(tmp_path):
    out = tmp_path / "E"
    _write(out, {"a.png": "1", "q2/b.png": "2"})
    _write(out, {"a.png": "3"})
    # q2/b.png belonged to the first export only: a second export must not leave it beside the new files
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [MANIFEST, "a.png"]
    assert (out / "a.png").read_text() == "3"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".E.")]  # no temporary folder left


def test_manifest_keeps_a_digest_of_every_file(tmp_path):
    out = tmp_path / "E"
    _write(out, {"a.png": "1"})
    doc = json.loads((out / MANIFEST).read_text())
    assert doc["files"] == ["a.png"]
    assert doc["digests"]["a.png"] == atomic.file_digest(out / "a.png")


def test_file_edited_by_hand_is_foreign_and_not_replaced(tmp_path):
    out = tmp_path / "E"
    _write(out, {"a.png": "1", "notes.txt": "tool"})
    (out / "notes.txt").write_text("my own notes")  # same name, other bytes: the user's now
    assert foreign_files(out) == ["notes.txt"]
    with pytest.raises(ConfigError, match="changed since"):
        _write(out, {"a.png": "2"})
    assert (out / "notes.txt").read_text() == "my own notes"
    assert (out / "a.png").read_text() == "1"
    _write(out, {"a.png": "2"}, force=True)  # --force is the stated way out
    assert not (out / "notes.txt").exists()


def test_manifest_without_digests_still_owns_its_files(tmp_path):
    # folders written before digests were kept: listed files count as the tool's
    out = tmp_path / "E"
    out.mkdir()
    (out / "a.png").write_text("1")
    (out / MANIFEST).write_text(json.dumps({"kind": atomic.MANIFEST_KIND, "command": "export", "files": ["a.png"]}))
    assert foreign_files(out) == []


def test_swap_exchanges_without_a_moment_where_out_is_missing(tmp_path, monkeypatch):
    out = tmp_path / "E"
    _write(out, {"a.png": "1"})
    calls = []
    real = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: calls.append((a, b)) or real(a, b))
    _write(out, {"a.png": "2"})
    assert (out / "a.png").read_text() == "2"
    moved_out = [c for c in calls if os.fspath(c[0]) == os.fspath(out)]
    # with renameat2(RENAME_EXCHANGE) the old folder is never renamed away from OUT; elsewhere it is (two renames)
    probe_a, probe_b = tmp_path / "pa", tmp_path / "pb"
    probe_a.mkdir(), probe_b.mkdir()
    (probe_a / "x").write_text("a")
    if atomic._exchange(probe_a, probe_b):
        assert (probe_b / "x").read_text() == "a" and not (probe_a / "x").exists()
        assert moved_out == []
    else:
        assert len(moved_out) == 1


def test_killed_between_the_two_renames_is_repaired_by_the_next_run(tmp_path):
    # The state a SIGKILL leaves between the fallback's renames: OUT gone, the previous output
    # moved aside and the new, complete one (manifest written last) still at its temporary name.
    out = tmp_path / "E"
    _write(out, {"a.png": "old"})
    aside = tmp_path / ".E.abcdefgh.tmp"
    os.replace(out, aside)
    new = tmp_path / ".E.ijklmnop.tmp"
    new.mkdir()
    (new / "a.png").write_text("new")
    (new / MANIFEST).write_text(json.dumps({"kind": atomic.MANIFEST_KIND, "command": "export", "files": ["a.png"]}))
    os.utime(aside / MANIFEST, (1, 1))  # written long before the new one
    half = tmp_path / ".E.qrstuvwx.tmp"
    half.mkdir()  # a temp of a run killed before its manifest: never restored
    (half / "a.png").write_text("partial")
    assert recover_interrupted(out)
    assert (out / "a.png").read_text() == "new"
    assert not recover_interrupted(out)  # OUT exists: nothing to do
    _write(out, {"a.png": "next"})  # the next run cleans the other temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["E"]
