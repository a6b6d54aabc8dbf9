"""Test selection: tests marked ``slow`` run in CI (``CI`` set) or with ``--slow``."""

import os

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
