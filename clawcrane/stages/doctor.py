"""`clawcrane doctor`: detect a dataset's layout, validate it, count videos/queries/samples per split.

A thin shell over ``datasets.open_dataset`` and ``datasets.validate``; the CLI prints the result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clawcrane.config import DoctorConfig
from clawcrane.datasets.layout import detect_layout, open_dataset
from clawcrane.datasets.validate import SUMMARISED, Problem, split_problems, validate


@dataclass(frozen=True)
class DoctorResult:
    layout: str
    """Detected layout: 'a2d', 'jhmdb', 'ytvos' or 'video'."""
    name: str
    """Dataset name ('synthetic' for the synthetic benchmark in the A2D layout)."""
    root: Path
    fingerprint: str
    counts: dict[str, dict[str, int]]
    """split -> {'videos', 'queries', 'samples'}."""
    query_types: list[str]
    errors: list[Problem]
    warnings: list[Problem]
    strict: bool = False
    verbose: bool = False
    """List every warning; otherwise the common kinds (``validate.SUMMARISED``) are counted in one line each."""

    @property
    def ok(self) -> bool:
        """No errors (and, when strict, no warnings)."""
        return not self.errors and not (self.strict and self.warnings)

    def lines(self) -> list[str]:
        """The report: header, one row per split, then one line per problem."""
        out = [f"{self.name} dataset ({self.layout} layout) at {self.root}", f"fingerprint {self.fingerprint[:16]}"]
        out.append(f"{'split':<8}{'videos':>8}{'queries':>9}{'samples':>9}")
        for split, c in self.counts.items():
            out.append(f"{split:<8}{c['videos']:>8}{c['queries']:>9}{c['samples']:>9}")
        if self.query_types:
            out.append(f"query types: {', '.join(self.query_types)}")
        out += [f"error: {p}" for p in self.errors]
        counted: dict[str, list[Problem]] = {}
        for p in self.warnings:
            kind = getattr(p, "kind", "")
            if not self.verbose and kind in SUMMARISED:
                counted.setdefault(kind, []).append(p)
            else:
                out.append(f"warning: {p}")
        for kind, items in counted.items():
            out.append(f"warning: {len(items)} {SUMMARISED[kind]}; e.g. {items[0]} (--verbose lists all {len(items)})")
        verdict = "ok" if self.ok else "FAILED"
        out.append(f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return out


def run(
    config: DoctorConfig,
    path: str | os.PathLike,
    *,
    queries: Sequence[str] | None = None,
    queries_file: str | os.PathLike | None = None,
) -> DoctorResult:
    """Read ``path`` in its layout and check it (``config.quick``: without decoding any clip)."""
    layout = detect_layout(path)
    dataset = open_dataset(path, split=config.split, queries=queries, queries_file=queries_file)
    errors, warnings = split_problems(validate(dataset, decode=not config.quick))
    return DoctorResult(
        layout=layout,
        name=dataset.name,
        root=Path(path),
        fingerprint=dataset.fingerprint,
        counts=dataset.counts(),
        query_types=dataset.query_types(),
        errors=errors,
        warnings=warnings,
        strict=config.strict,
        verbose=config.verbose,
    )
