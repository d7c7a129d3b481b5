"""Every option has one source: the config field's default, docstring and choices are what the CLI offers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import click
from click.testing import CliRunner

from clawcrane import config as C
from clawcrane.cli import main
from clawcrane.cli_options import config_options, default_of, help_text

COMMANDS = {
    "train-head": (C.HeadConfig, C.TrainHeadConfig), "track-rank": (C.TrackRankConfig,), "ablate": (C.AblateConfig,),
    "evaluate": (C.EvalConfig,), "export": (C.ExportConfig,), "extract": (C.ExtractConfig,), "detect": (C.DetectConfig,),
    "train-detector": (C.TrainDetectorConfig,), "segment": (C.SegmentConfig,), "quickstart": (C.QuickstartConfig,),
    "doctor": (C.DoctorConfig,), "report": (C.ReportConfig,),
}
CLI_ONLY_DEFAULTS = {
    ("train-head", "embed_dim"), ("train-head", "word_dim"), ("train-head", "lstm_hidden"),  # from --size
    ("ablate", "seeds"), ("ablate", "rows"), ("extract", "levels"),  # comma-separated text of a tuple field
    ("segment", "cache"),  # None: the default cache root
    ("extract", "shard"), ("detect", "shard"),  # I/N text, parsed into shard and num_shards
    ("extract", "candidates"), ("extract", "dataset"),  # an existing path or nothing ('' in the config)
    ("detect", "score_threshold"),  # None: the field's 0.3 for a detector, 0 for an import
}
"""Options whose command-line default differs on purpose from the field's (they are parsed into it)."""
STAGE_CHECKED_CHOICES = {("export", "format")}
"""Choices the stage checks itself, for a one-line error naming the predictions file (exit 1, not a usage error)."""


def _command(name: str) -> click.Command:
    return main.commands[name]


def test_every_config_backed_option_has_the_fields_default_and_help():
    checked = 0
    for name, classes in COMMANDS.items():
        for p in _command(name).params:
            for cls in classes:
                names = {f.name for f in dataclasses.fields(cls)}
                if (not isinstance(p, click.Option) or p.name not in names or (name, p.name) in CLI_ONLY_DEFAULTS
                        or p.required):  # required paths have no default to share
                    continue
                doc = help_text(C.field_docs(cls).get(p.name, ""))
                assert p.default == default_of(cls, p.name), (name, p.name)
                assert doc and p.help == doc, (name, p.name)
                allowed = next(f for f in dataclasses.fields(cls) if f.name == p.name).metadata.get(C.CHOICES)
                if allowed is not None and (name, p.name) not in STAGE_CHECKED_CHOICES:
                    assert list(p.type.choices) == list(allowed), (name, p.name)
                checked += 1
    assert checked >= 60  # most options come from a field


def test_every_head_field_is_a_train_head_option():
    params = {p.name for p in _command("train-head").params}
    head = {f.name for f in dataclasses.fields(C.HeadConfig)} - set(C.HEAD_OPTION_EXCLUDE)
    train = {f.name for f in dataclasses.fields(C.TrainHeadConfig)} - {"head"}
    assert head <= params and train <= params


def test_a_new_config_field_becomes_an_option_without_touching_the_cli():
    @dataclass(frozen=True)
    class Toy:
        depth: int = 2
        """Layers of the toy module."""
        mode: str = field(default="a", metadata={C.CHOICES: ("a", "b")})
        """The toy's mode."""
        fast: bool = False
        """Run fast."""

    @click.command()
    @config_options(Toy)
    def toy(**options):
        click.echo(repr(Toy(**options)))

    r = CliRunner().invoke(toy, ["--help"])
    assert "--depth" in r.output and "Layers of the toy module." in r.output and "[a|b]" in r.output and "--fast" in r.output
    r = CliRunner().invoke(toy, ["--depth", "5", "--mode", "b", "--fast"])
    assert r.output.strip().endswith("Toy(depth=5, mode='b', fast=True)")
    assert CliRunner().invoke(toy, ["--mode", "c"]).exit_code == 2


def test_preset_names_have_one_registry():
    from clawcrane.build.heads import sized
    from clawcrane.datasets.synth.presets import ALL_PRESETS
    from clawcrane.pipeline import maskrcnn

    assert tuple(ALL_PRESETS) == C.SYNTH_PRESETS
    assert maskrcnn.PRESETS == C.DETECTOR_PRESETS and set(maskrcnn._DEFAULTS) == set(C.DETECTOR_PRESETS)
    small = sized("small")
    assert (small.embed_dim, small.word_dim, small.lstm_hidden) == C.HEAD_SIZES["small"]


def test_a_bad_head_option_is_refused_before_any_data_is_read(tmp_path):
    import pytest

    from clawcrane.errors import ConfigError
    from clawcrane.stages import train_head

    with pytest.raises(ConfigError, match="--relation 'polar'"):
        C.HeadConfig(relation="polar")
    with pytest.raises(ConfigError, match="--val-fraction"):
        C.TrainHeadConfig(val_fraction=1.5)
    # the device is checked before the (missing) feature cache is opened
    with pytest.raises(ConfigError, match="--device"):
        train_head.run(C.TrainHeadConfig(device="tpu"), dataset=None, features=tmp_path / "nowhere", out=tmp_path / "run")


def test_out_of_range_numbers_are_one_line_errors_not_tracebacks(tmp_path):
    """Numbers outside a field's range, nan and inf are refused by the CLI (one line, exit 2)."""
    feats = tmp_path / "f"
    feats.mkdir()
    base = ["train-head", "--features", str(feats), "--dataset", str(tmp_path), "--out", str(tmp_path / "o")]
    for extra in (["--dropout", "1.5"], ["--lr", "-1"], ["--embed-dim", "0"], ["--lstm-hidden", "0"], ["--tau", "0"],
                  ["--max-words", "0"], ["--seed", "99999999999999999999"], ["--weight-decay", "-1"]):
        r = CliRunner().invoke(main, base + extra)
        assert r.exit_code == 2 and "Traceback" not in r.output, (extra, r.output)
    for extra in (["--lr", "nan"], ["--tau", "inf"]):
        r = CliRunner().invoke(main, base + extra)
        assert r.exit_code == 2 and r.output.startswith("error:") and "finite" in r.output, (extra, r.output)
    r = CliRunner().invoke(main, ["train-detector", str(tmp_path), "--out", str(tmp_path / "d"), "--batch-size", "0"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["track-rank", "--head", str(feats), "--features", str(feats), "--dataset", str(tmp_path),
                                  "--out", str(tmp_path / "p.parquet"), "--gamma", "nan"])
    assert r.exit_code == 2 and "'--gamma': 'nan' is not a finite number" in r.output
