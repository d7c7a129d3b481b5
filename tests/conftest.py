"""Shared fixtures. Helper modules live in ``tests/helpers/`` (``from helpers.head_world import ...``)."""

from __future__ import annotations

import logging
import os

import pytest
import torch

# every cache read in the tests checks the checksums recorded when the video was written
# (cache.store.VERIFY_ENV; off by default for users), so a writer and its reader never disagree unseen
os.environ.setdefault("CLAWCRANE_VERIFY_READS", "1")


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test, restored after.

    Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the threads spin.
    Test files that train tiny heads use it for every test: ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _clawcrane_log_level_restored():
    """Every CLI call sets the ``clawcrane`` logger's level (``--log-level``), also from module-scoped
    fixtures; reset it to unset before each test, so a test that reads warnings with ``caplog`` does not
    depend on which test or fixture ran before it."""
    logging.getLogger("clawcrane").setLevel(logging.NOTSET)
    yield
