"""The report page in a real browser: headless Chromium opens index.html from disk, with no network.

``--dump-dom`` gives the document after its load event: the page's own script marks every error
(script errors, console.error, images that do not decode) in ``#page-errors`` and counts the
decoded images in ``data-report-loaded``. A page with a planted error checks that the marker
works. ``--screenshot`` must not be blank. Chromium is Debian's ``chromium``: when it is missing
the test installs it with apt-get (as root only), and skips, saying why, when that cannot be done
(no root, no apt-get, no reachable package source) so the suite never hangs on a network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest
from helpers.report_world import ablation_table, head_run, rows, world, write_preds

from clawcrane.config import ReportConfig
from clawcrane.stages import report
from clawcrane.stages import report_page as R

pytestmark = pytest.mark.slow

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
APT_QUICK = ["-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=10", "-o", "Acquire::https::Timeout=10"]


def _find() -> str | None:
    return next((p for p in map(shutil.which, NAMES) if p), None)


def _apt(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *APT_QUICK, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _find()
    if found:
        return found
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("chromium is not installed, and installing it needs root (apt-get install chromium)")
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and there is no apt-get to install it")
    try:
        up = _apt(["update"], timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium is not installed and `apt-get update` did not finish in 2 minutes (no package source?)")
    if up.returncode != 0 or re.search(r"^(Err|E):", up.stdout + up.stderr, re.M):
        tail = (up.stdout + up.stderr).strip().splitlines()[-1:] or [""]
        pytest.skip(f"chromium is not installed and apt cannot reach a package source: {tail[0][:200]}")
    try:
        inst = _apt(["install", "-y", "--no-install-recommends", "chromium"], timeout=1500)
    except subprocess.TimeoutExpired:
        pytest.skip("`apt-get install chromium` did not finish in 25 minutes")
    found = _find()
    if inst.returncode != 0 or not found:
        tail = (inst.stdout + inst.stderr).strip().splitlines()[-1:] or [""]
        pytest.skip(f"`apt-get install chromium` failed: {tail[0][:200]}")
    return found


def _browser(chromium: str, profile: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, HOME=str(profile)))


def _dom(chromium: str, tmp_path: Path, page: Path) -> str:
    r = _browser(chromium, tmp_path / "profile-dom", "--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    assert r.returncode == 0 and "<html" in r.stdout, r.stderr[-2000:]
    return r.stdout


def _errors(dom: str) -> str:
    """The text the page's script wrote into its error box ('' when there is none)."""
    m = re.search(rf'<pre id="{R.ERROR_ID}"[^>]*>(.*?)</pre>', dom, re.S)
    return m.group(1) if m else ""


def test_the_page_loads_in_chromium_without_errors_and_renders(tmp_path, chromium):
    ds = world(tmp_path / "data")
    pred = write_preds(tmp_path / "pred.parquet", rows())
    res = report.run(ReportConfig(gallery=2), predictions=pred, dataset=ds, out_dir=tmp_path / "rep",
                     head=head_run(tmp_path / "head"), ablation=ablation_table(tmp_path / "table", ds))

    dom = _dom(chromium, tmp_path, res.index)
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert f'id="{R.ERROR_ID}"' not in dom and R.ERROR_ATTR not in html_tag, _errors(dom)
    assert f'{R.LOADED_ATTR}="{res.gallery}"' in html_tag, f"the load handler did not run or images failed: {html_tag}"
    for part in ('id="metrics-table"', 'id="type-table"', 'id="pk-curve"', 'id="training-accuracy"', 'id="ablation-table"',
                 "the car left of the box"):
        assert part in dom, part

    # the marker works: a planted script error and an image that cannot decode show up in the DOM
    broken = tmp_path / "broken.html"
    broken.write_text(res.index.read_text().replace(
        "</main>", '<img alt="planted" src="data:image/png;base64,AAAA"><script>no_such_function();</script></main>'))
    bad = _dom(chromium, tmp_path, broken)
    assert R.ERROR_ATTR in re.search(r"<html[^>]*>", bad).group(0)
    assert "no_such_function" in _errors(bad) and "planted" in _errors(bad)

    shot = tmp_path / "shot.png"
    r = _browser(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,2000",
                 "--virtual-time-budget=10000", res.index.as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1200)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert grey.std() > 15, f"screenshot looks blank (std {grey.std():.1f})"
    assert (grey < 200).mean() > 0.02  # text, lines and images, not a white page
