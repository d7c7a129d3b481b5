"""One error family. The CLI prints ``str(err)`` on one line and exits 1; nothing below the CLI exits."""

from __future__ import annotations

import errno
import os


class ClawcraneError(Exception):
    """Base of every expected failure: bad input, stale caches, missing weights.

    The message names the file involved and the fix, on one line, e.g.
    ``f"{path}: features were extracted with backbone=resnet50 ...; re-run `clawcrane extract ...`"``.
    """


class DataError(ClawcraneError):
    """A dataset file is missing, truncated or malformed."""


class CacheError(ClawcraneError):
    """A cache artifact is missing, corrupted, or was built from different inputs."""


class ConfigError(ClawcraneError, ValueError):
    """Options that cannot work together, or a value out of range."""


class WeightsError(ClawcraneError):
    """Model weights are absent or of the wrong kind."""


_ELSEWHERE = "write somewhere else (another --out or --cache)"
_OS_FIXES = {  # after the system's own words (e.g. "Read-only file system"): the fix, and what the words mean where they are cryptic
    errno.EROFS: _ELSEWHERE,
    errno.EACCES: f"make it writable (chmod/chown) or {_ELSEWHERE}",
    errno.EPERM: f"make it writable (chmod/chown) or {_ELSEWHERE}",
    errno.ENOSPC: f"free some space or {_ELSEWHERE}",
    errno.EDQUOT: f"free some space or {_ELSEWHERE}",
    errno.EFBIG: _ELSEWHERE,
    errno.EEXIST: "a file is in the way where a folder (or a new file) is needed; move it away or choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "a folder is where a file is needed; pass a file path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ELOOP: "pass the real path, not a loop of symbolic links",
    errno.EMFILE: "raise the limit (`ulimit -n 4096`) or use fewer --workers",
    errno.EIO: "check the disk (dmesg) and re-run the command",
}


def os_error_message(err: OSError) -> str:
    """One line for an ``OSError`` from the file system: the path, what is wrong, and the fix.

    The CLI prints it (``error: ...``) for any ``OSError`` a stage raises, e.g. an output on a
    read-only file system: ``out/p.parquet: Read-only file system (OSError); write somewhere else
    (another --out or --cache)``.
    """
    what = " ".join(str(err.strerror or err).split()) or type(err).__name__
    fix = _OS_FIXES.get(err.errno if isinstance(err.errno, int) else -1, "check the path and the disk, then re-run the command")
    names = [os.fsdecode(p) if isinstance(p, (str, bytes, os.PathLike)) else str(p)
             for p in (err.filename, err.filename2) if p is not None]
    where = f"{' -> '.join(names)}: " if names else ""
    return f"{where}{what} ({type(err).__name__}); {fix}"
