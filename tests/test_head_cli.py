"""The `clawcrane train-head` command line."""

from click.testing import CliRunner

from clawcrane.cli import main


def test_train_head_help_documents_every_option():
    res = CliRunner().invoke(main, ["train-head", "--help"])
    assert res.exit_code == 0
    for opt in ("--features", "--dataset", "--out", "--position", "--relation", "--text-encoder", "--size",
                "--epochs", "--batch-size", "--lr", "--seed", "--flip / --no-flip", "--resume", "--device"):
        assert opt in res.output, opt


def test_train_head_missing_feature_folder_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["train-head", "--features", str(tmp_path / "nope"), "--dataset", str(tmp_path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "does not exist" in res.output
