"""One error family. The CLI prints ``str(err)`` on one line and exits 1; nothing below the CLI exits."""


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
