"""The README's Python API example runs as written, in a folder laid out as `make quickstart` leaves it.

The quickstart is drastically reduced (tiny data, oracle candidates, 64-px features, 1 head
epoch), and the detector the example loads is a lite Mask R-CNN trained for one epoch at 64 px:
the test checks that the example runs and writes what it says, not how good the answer is.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clawcrane.config import QuickstartConfig, TrainDetectorConfig
from clawcrane.datasets import open_dataset
from clawcrane.stages import quickstart, train_detector

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_api_example() -> str:
    text = README.read_text()
    m = re.search(r"<!-- api-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its api-example block"
    return m.group(1)


def test_the_readme_api_example_runs_as_written(tmp_path, monkeypatch):
    qs = tmp_path / "quickstart_out"
    quickstart.run(QuickstartConfig(preset="tiny", detector="oracle", frame_stride=16, input_size=64, head_epochs=1,
                                    overlays=1), qs)
    train_detector.run(TrainDetectorConfig(out=str(qs / "detector"), epochs=1, batch_size=2, min_size=64, max_size=64,
                                           warmup_steps=1, lr=0.005, eval_batch_size=2), dataset=open_dataset(qs / "data"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAWCRANE_CACHE", str(tmp_path / "segment-cache"))
    code = readme_api_example()
    namespace: dict = {}
    exec(compile(code, "README.md:api-example", "exec"), namespace)
    result = namespace["result"]
    assert namespace["masks"].shape == (len(result.frames), result.height, result.width)
    assert len(namespace["rles"]) == len(result.frames)
    assert len(list((tmp_path / "api_out" / "masks").glob("*.png"))) == len(result.frames)
    assert (tmp_path / "api_out" / "answer.mp4").stat().st_size > 0
