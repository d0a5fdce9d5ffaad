"""pytest fixtures for vireo's system tests: each test gets its own vireod
in its own network namespace and directories (see vireo_harness)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from vireo_harness import Daemon  # noqa: E402


@pytest.fixture
def daemon():
    d = Daemon()
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def fake_daemon():
    d = Daemon(driver="fake")
    try:
        yield d
    finally:
        d.cleanup()
