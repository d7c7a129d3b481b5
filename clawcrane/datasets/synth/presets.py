"""Which generator makes a preset: the original world (tiny, small, full) or the hard one.

``family(preset)`` returns the functions and constants the `data synth` stage needs; both
families write the same A2D layout. The hard family adds query_types.csv's 4th column
(``wording``) and its own conventions and record fields to synth_scenes.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clawcrane.datasets.synth import writer
from clawcrane.datasets.synth.generate import (
    GENERATOR_VERSION,
    PRESETS,
    SynthVideo,
    VideoPlan,
    plan_dataset,
    synthesize_video,
)
from clawcrane.datasets.synth.hard.generate import (
    HARD_GENERATOR_VERSION,
    HARD_PRESETS,
    HARD_QUERY_TYPES,
    plan_hard_dataset,
    synthesize_hard_video,
)
from clawcrane.datasets.synth.hard.records import HARD_CONVENTIONS, hard_video_record
from clawcrane.datasets.synth.sentences import QUERY_TYPES
from clawcrane.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Family:
    """One synthetic world: its presets, generator version, query types and functions."""

    name: str
    """'original' or 'hard'."""
    presets: tuple[str, ...]
    version: int
    """Generator version (recorded in synth_scenes.json and the run marker)."""
    query_types: tuple[str, ...]
    plan: Callable[[str, int], list[VideoPlan]]
    """(preset, seed) -> every video's plan."""
    synthesize: Callable[[VideoPlan], SynthVideo]
    """A plan -> its checked scene and queries (a pure function of the plan)."""
    record: Callable[[SynthVideo], dict]
    """A video -> its synth_scenes.json entry."""
    wording_column: bool
    """Whether query_types.csv has the 4th column ``wording``."""
    conventions: dict
    """synth_scenes.json's 'conventions'."""


ORIGINAL = Family(name="original", presets=tuple(PRESETS), version=GENERATOR_VERSION, query_types=QUERY_TYPES,
                  plan=plan_dataset, synthesize=synthesize_video, record=writer.video_record, wording_column=False,
                  conventions=writer.CONVENTIONS)
HARD = Family(name="hard", presets=tuple(HARD_PRESETS), version=HARD_GENERATOR_VERSION, query_types=HARD_QUERY_TYPES,
              plan=plan_hard_dataset, synthesize=synthesize_hard_video, record=hard_video_record, wording_column=True,
              conventions=HARD_CONVENTIONS)
ALL_PRESETS = ORIGINAL.presets + HARD.presets
"""Every preset `clawcrane data synth --preset` accepts."""


def family(preset: str) -> Family:
    for fam in (ORIGINAL, HARD):
        if preset in fam.presets:
            return fam
    raise ConfigError(f"--preset {preset!r}: unknown preset; choose one of {', '.join(ALL_PRESETS)}")
