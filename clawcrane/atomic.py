"""Atomic writes: write beside the target under a temporary name, fsync, then rename.

A process killed at any moment leaves either the old file or the new one, never half of one.

* ``atomic_path`` / ``write_text`` / ``write_json``: one file.
* ``atomic_dir``: a whole output folder (`export`, `segment`). It is written into a fresh
  temporary folder beside the target, listed in a manifest (``MANIFEST``) and renamed into place,
  so a re-run replaces the whole previous output, never mixes with it. The manifest keeps each
  file's BLAKE2b digest: a folder holding files the tool did not write (not listed) or files
  changed since (another digest) is refused unless ``force``. The swap is one atomic exchange of
  the two folders where the system has it (Linux ``renameat2(RENAME_EXCHANGE)``); elsewhere two
  renames, and a run killed between them is repaired by the next one (``recover_interrupted``).

Files and folders honour the umask (``mkstemp``/``mkdtemp`` would make them 0600/0700), and every
temporary name has the form ``.<name>.<8 random chars>.tmp``: ``clean_stale_temps`` removes the
leftovers of a killed run, and nothing else.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clawcrane.errors import ConfigError

MANIFEST = ".clawcrane-manifest.json"
"""The file ``atomic_dir`` writes into every output folder: the files the tool wrote there."""
MANIFEST_KIND = "clawcrane-output"
TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
"""Temporary names of this module: ``.<target name>.<mkstemp's 8 random characters>.tmp``."""


def umask() -> int:
    """The process umask, read without changing it where /proc allows (``os.umask`` sets it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have: 0o666 (0o777 for a folder) less the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


def _temp_name(path: Path) -> tuple[str, str]:
    return f".{path.name}.", ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The file gets the umask's mode. An ``OSError`` without a file name (e.g. a full disk during
    the write) is raised again naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_name(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            honour_umask(tmp_path)
            os.replace(tmp_path, path)
        except OSError as err:
            if err.filename is None and err.errno is not None:
                raise type(err)(err.errno, err.strerror, str(path)) from err
            raise
        _fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def check_writable(folder: str | os.PathLike) -> None:
    """Create ``folder`` (and its parents) and a temporary file in it, so a read-only or full place fails now, not after the work."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".clawcrane-probe.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def is_temp_name(name: str, target: str | None = None) -> bool:
    """Whether ``name`` is a temporary name of this module (of the target file/folder ``target`` when given)."""
    if not TEMP_RE.match(name):
        return False
    return target is None or (name.startswith(f".{target}.") and len(name) == len(target) + 14)


def clean_stale_temps(folder: str | os.PathLike, min_age_s: float = 0.0, *, target: str | None = None) -> int:
    """Remove the temporary files and folders of killed runs in ``folder``; returns how many.

    Only names of this module's form (``.<name>.<8 random chars>.tmp``) are touched; with
    ``target`` only those of that target name. ``min_age_s`` spares temps modified more recently
    (another process, e.g. a parallel shard, may be writing them right now).
    """
    n = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now = time.time()
    pattern = f".{glob.escape(target)}.*.tmp" if target is not None else ".*.tmp"
    for p in folder.glob(pattern):
        if not is_temp_name(p.name, target):
            continue
        try:
            if min_age_s and now - p.lstat().st_mtime < min_age_s:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            continue
        n += 1
    return n



# ---- whole output folders ----------------------------------------------------------------------
def files_under(folder: str | os.PathLike) -> list[str]:
    """Every non-folder entry under ``folder`` (links included, not followed), as sorted relative POSIX paths."""
    folder = Path(folder)
    out = []
    for base, dirs, files in os.walk(folder):
        rel = Path(base).relative_to(folder)
        for name in files + [d for d in dirs if (Path(base) / d).is_symlink()]:
            out.append((rel / name).as_posix())
    return sorted(out)


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b (16 bytes) of a file's bytes; of the link text for a symbolic link."""
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if path.is_symlink():
        h.update(os.readlink(path).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: str | os.PathLike) -> dict[str, str | None] | None:
    """``{file: digest}`` of the manifest in ``folder`` (digest None in manifests written before digests), or None without a readable one."""
    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND or not isinstance(doc.get("files"), list):
        return None
    digests = doc.get("digests") if isinstance(doc.get("digests"), dict) else {}
    return {str(f): digests.get(str(f)) for f in doc["files"]}


def manifest_files(folder: str | os.PathLike) -> set[str] | None:
    """The files the manifest in ``folder`` lists, or None when there is no readable manifest."""
    listed = read_manifest(folder)
    return None if listed is None else set(listed)


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """Files under ``folder`` the tool did not write: not in its manifest (all of them without one), or changed since."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    listed = read_manifest(folder) or {}
    out = []
    for f in files_under(folder):
        if f == MANIFEST:
            continue
        if f not in listed:
            out.append(f)
            continue
        want = listed[f]
        try:
            if want is not None and file_digest(folder / f) != want:
                out.append(f)
        except OSError:
            out.append(f)
    return out


PRECIOUS_SUFFIXES = (".pt", ".pth", ".h5", ".hdf5", ".parquet", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v",
                     ".mpg", ".mpeg", ".mat", ".npy")
"""Files ``--force`` never deletes: checkpoints, caches, predictions, videos, annotation arrays."""
PRECIOUS_NAMES = ("meta.json", "videoset.csv", "a2d_annotation.txt", "meta_expressions.json", MANIFEST)
"""Likewise: an artifact's metadata, the benchmark datasets' index files, another command's output manifest."""


def precious_file(folder: str | os.PathLike, foreign: list[str]) -> str | None:
    """The first of ``foreign`` (files under ``folder``) that is data ``--force`` must not delete, else None.

    ``--force`` is for a folder of notes or an older output; a dataset, a cache, a train-head run, predictions,
    videos or another command's output (its own manifest, below ``folder``) are never replaced by it."""
    for f in foreign:
        p = Path(f)
        if p.suffix.lower() in PRECIOUS_SUFFIXES or p.name in PRECIOUS_NAMES:
            return f
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_replaceable(out: str | os.PathLike, *, command: str, force: bool = False, flag: str = "--out",
                      keep: tuple[str | os.PathLike, ...] = ()) -> None:
    """Refuse to replace ``out`` unless it is absent, an empty folder, or a folder ``atomic_dir`` wrote (or ``force``).

    Even with ``force``, ``out`` may not hold any of ``keep`` (the command's inputs), the current
    folder, the home folder or a file-system root; and a folder inside one of ``keep`` is replaced
    only when it holds nothing but what the command wrote (``force`` would delete part of the input).
    """
    out = Path(out)
    if out.is_symlink():
        raise ConfigError(f"{out}: is a symbolic link; pass the folder it points to, or another {flag} (`clawcrane {command} {flag} DIR`)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a folder; choose another {flag} (`clawcrane {command} {flag} DIR`)")
    if not out.exists():
        return
    held = [Path(k) for k in keep if _inside(Path(k), out)]
    if held or _inside(Path.cwd(), out) or out.resolve() in (Path.home().resolve(), Path(out.resolve().anchor)):
        what = f"holds the input {held[0]}" if held else "holds the current folder, or is the home folder or a root"
        raise ConfigError(f"{out}: {what}, so it is never replaced, not even with --force; choose a new {flag} "
                          f"(`clawcrane {command} ... {flag} NEW_DIR`)")
    within = [Path(k) for k in keep if _inside(out, Path(k))]
    foreign = foreign_files(out)
    if foreign and within:  # a folder of an input's tree: --force would delete part of the input
        raise ConfigError(
            f"{out}: lies inside the input {within[0]} and holds {len(foreign)} file(s) `clawcrane {command}` did not "
            f"write (e.g. {foreign[0]}), so it is not replaced, not even with --force; choose a {flag} outside "
            f"{within[0]} (`clawcrane {command} ... {flag} NEW_DIR`)"
        )
    precious = precious_file(out, foreign) if force else None
    if precious is not None:
        raise ConfigError(
            f"{out}: holds {precious}, data `clawcrane {command}` did not write (a dataset, cache, checkpoint, predictions, "
            f"video or another command's output), which --force never deletes; choose a new {flag} "
            f"(`clawcrane {command} ... {flag} NEW_DIR`)"
        )
    if force and not within:
        return
    if foreign:
        raise ConfigError(
            f"{out}: holds {len(foreign)} file(s) `clawcrane {command}` did not write or that changed since it wrote them "
            f"(e.g. {foreign[0]}); choose another "
            f"{flag}, or pass --force to replace the whole folder (`clawcrane {command} ... {flag} {out} --force`)"
        )


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap folders ``a`` and ``b`` in one atomic step (Linux ``renameat2``); False where the system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system or kernel without the flag
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap(tmp: Path, out: Path) -> None:
    """Put folder ``tmp`` at ``out``; a previous ``out`` is exchanged with it atomically and deleted after.

    Without an atomic exchange the previous ``out`` is moved aside first; a kill between the two
    renames leaves ``out`` missing and the complete new folder at its temporary name, which
    ``recover_interrupted`` (run by the next ``atomic_dir``) puts back.
    """
    if not out.exists():
        os.replace(tmp, out)
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous output
        return
    prefix, suffix = _temp_name(out)
    old = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=out.parent))
    os.replace(out, old)  # onto the empty folder just made: the name is ours and matches clean_stale_temps
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_interrupted(out: str | os.PathLike) -> bool:
    """Where ``out`` is missing but a run was killed while swapping it, put the newest complete temporary folder back.

    Only a temporary folder of ``out``'s name holding a manifest qualifies: ``atomic_dir`` writes
    the manifest last, so such a folder is a whole output (the new one, or the previous one moved
    aside). Returns whether ``out`` was restored.
    """
    out = Path(out)
    if out.exists() or out.is_symlink() or not out.parent.is_dir():
        return False
    done = [p for p in out.parent.glob(f".{glob.escape(out.name)}.*.tmp")
            if is_temp_name(p.name, out.name) and p.is_dir() and read_manifest(p) is not None]
    if not done:
        return False
    newest = max(done, key=lambda p: (p / MANIFEST).stat().st_mtime)
    os.replace(newest, out)
    return True


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, *, command: str, force: bool = False,
               keep: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out`` as a whole.

    ``out`` must be replaceable (``check_replaceable`` with ``keep``: checked on entry and again
    before the swap). Leftover temporary folders of a killed run for the same ``out`` are removed first. The
    folder gets a ``MANIFEST`` listing its files, so the next run recognises it as the tool's.
    """
    out = Path(out)
    recover_interrupted(out)
    check_replaceable(out, command=command, force=force, keep=keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out.parent, target=out.name)
    prefix, suffix = _temp_name(out)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=out.parent))
    try:
        honour_umask(tmp, folder=True)
        yield tmp
        files = files_under(tmp)
        write_json(tmp / MANIFEST, {"kind": MANIFEST_KIND, "command": command, "files": files,
                                    "digests": {f: file_digest(tmp / f) for f in files}})
        check_replaceable(out, command=command, force=force, keep=keep)
        _swap(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

