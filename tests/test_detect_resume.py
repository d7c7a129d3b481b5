"""A `detect` run killed with SIGKILL at an arbitrary moment resumes to the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.detect_world import assert_same_content, fake_factory, fake_key, load_dataset, read_all, write_videos

from clawcrane.cache.store import Store
from clawcrane.cache.verify import verify_store
from clawcrane.config import DetectConfig
from clawcrane.errors import CacheError
from clawcrane.stages import detect as stage

N_VIDEOS = 6

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from clawcrane.config import DetectConfig
    from clawcrane.stages import detect as stage
    from helpers.detect_world import fake_factory, fake_key, load_dataset
    ds = load_dataset(Path({data!r}), n={n})
    stage.run(DetectConfig(detector="fake", batch_size=2), ds, {cache!r},
              detector_factory=fake_factory(delay=0.05), key_fn=fake_key)
""")


def test_sigkilled_run_resumes_without_recomputing_finished_videos_and_equals_an_uninterrupted_run(tmp_path):
    data = tmp_path / "data"
    write_videos(data, n=N_VIDEOS)
    ds = load_dataset(data, n=N_VIDEOS)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    code = CHILD.format(tests=str(Path(__file__).parent), data=str(data), n=N_VIDEOS, cache=str(killed))
    env = dict(os.environ, CLAWCRANE_PROGRESS="0", PYTHONPATH=os.pathsep.join(sys.path))
    log = open(tmp_path / "child.log", "wb")
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=log)
    deadline = time.monotonic() + 60
    parts: list[Path] = []
    while time.monotonic() < deadline and child.poll() is None:
        parts = list(killed.glob("detect-*/parts/*.h5"))
        if len(parts) >= 2:
            break
        time.sleep(0.01)
    assert child.poll() is None, (tmp_path / "child.log").read_text()[-2000:]
    os.kill(child.pid, signal.SIGKILL)  # mid-run: some videos finished, one in flight
    child.wait()
    log.close()
    (art,) = killed.iterdir()
    assert not (art / "data.h5").exists()
    finished = set(Store(art).video_ids())
    assert 2 <= len(finished) < N_VIDEOS
    problems, _ = verify_store(Store(art))  # the killed run's artifact says it is incomplete
    assert problems[0] == f"incomplete artifact, {len(finished)} of {N_VIDEOS} videos done" + problems[0][problems[0].index(" ("):]
    with pytest.raises(CacheError, match="incomplete artifact.*complete it with `clawcrane detect"):
        Store(art).require_complete()

    made: list = []
    resumed = stage.run(DetectConfig(detector="fake", batch_size=2), ds, killed,
                        detector_factory=fake_factory(made), key_fn=fake_key)
    recomputed = {v for v, _ in made[0].calls}
    assert recomputed == set(ds.videos) - finished  # finished videos are never run again
    assert sorted(resumed.computed) == sorted(recomputed)

    uninterrupted = stage.run(DetectConfig(detector="fake", batch_size=2), ds, clean,
                              detector_factory=fake_factory(), key_fn=fake_key)
    assert resumed.path.name == uninterrupted.path.name
    assert_same_content(read_all(resumed.path), read_all(uninterrupted.path))
    assert [p.name for p in resumed.path.glob("*.h5")] == ["data.h5"]
    assert verify_store(Store(resumed.path)) == ([], [])
