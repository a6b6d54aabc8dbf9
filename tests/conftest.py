"""Test selection: tests marked ``slow`` run in CI (``CI`` set) or with ``--slow``; shared fixtures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow") or os.environ.get("CI"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty temporary directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def on_cuda_simulator():
    """Run a Python script on numba's CUDA simulator; its last line of output, parsed as JSON.

    The script runs in a subprocess, since the simulator must be chosen before numba.cuda is
    imported; ``TESTS`` in it is replaced by the tests folder, so it can import test modules.
    """
    def run(script: str) -> dict:
        script = script.replace("TESTS", repr(str(Path(__file__).parent)))
        result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"},
                                capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run
