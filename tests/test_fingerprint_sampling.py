"""clawcrane.fingerprint with ``sample_bytes``: what a sampled dataset fingerprint does and does not see."""

from __future__ import annotations

from clawcrane.fingerprint import file_fingerprint, tree_fingerprint


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_sampled_fingerprint_sees_size_head_and_tail_but_not_the_middle(tmp_path):
    data = bytes(range(256)) * 16  # 4096 bytes; with sample_bytes=512 only bytes [0, 512) and [3584, 4096) are read
    f = _write(tmp_path / "clip.mp4", data)
    key = tree_fingerprint(tmp_path, ["clip.mp4"], sample_bytes=512)
    _write(f, data[:2000] + b"X" + data[2001:])  # same size, middle byte changed: by design unseen
    assert tree_fingerprint(tmp_path, ["clip.mp4"], sample_bytes=512) == key
    _write(f, b"X" + data[1:])  # head changed
    assert tree_fingerprint(tmp_path, ["clip.mp4"], sample_bytes=512) != key
    _write(f, data + b"\0")  # size changed
    assert tree_fingerprint(tmp_path, ["clip.mp4"], sample_bytes=512) != key
    # small files (<= 2 * sample_bytes) are hashed whole, so the middle counts there
    g = _write(tmp_path / "g.mp4", data[:2000] + b"X" + data[2001:])
    h = _write(tmp_path / "h.mp4", data)
    assert file_fingerprint(g, sample_bytes=512) == file_fingerprint(h, sample_bytes=512)
    assert file_fingerprint(g, sample_bytes=4096) != file_fingerprint(h, sample_bytes=4096)


def test_tree_key_depends_on_relative_paths_and_missing_files_only(tmp_path):
    a = _write(tmp_path / "one" / "x.h5", b"abc")
    b = _write(tmp_path / "two" / "x.h5", b"abc")
    key_abs = tree_fingerprint(tmp_path / "one", [a])
    assert key_abs == tree_fingerprint(tmp_path / "one", ["x.h5"])  # absolute or relative: same key
    assert key_abs == tree_fingerprint(tmp_path / "two", [b])  # same relative layout and bytes elsewhere
    assert tree_fingerprint(tmp_path, ["one/x.h5"]) != tree_fingerprint(tmp_path, ["two/x.h5"])
    missing = tree_fingerprint(tmp_path, ["one/x.h5", "gone.mp4"])
    assert missing != tree_fingerprint(tmp_path, ["one/x.h5"])
    assert missing == tree_fingerprint(tmp_path, ["gone.mp4", "one/x.h5"])  # order of the list does not matter
