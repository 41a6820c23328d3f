"""Session-wide fixtures: small random-weight checkpoints in the official formats, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "runs_last: slow end-to-end test against a real annotation tool; runs last")


def pytest_collection_modifyitems(items):
    """Tests marked `runs_last` go to the end of the run, in their own order (a stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


@pytest.fixture(scope="session")
def demo_weights(tmp_path_factory) -> Path:
    """A `labelgate weights demo` directory: SAM 2 `{'model': state_dict}` .pt + Grounding DINO save_pretrained."""
    from labelgate.models.demo import ensure_demo_weights

    directory = tmp_path_factory.mktemp("weights") / "demo"
    ensure_demo_weights(directory)
    return directory


@pytest.fixture(scope="session")
def demo_onnx(demo_weights, tmp_path_factory) -> Path:
    """`labelgate export onnx --demo-weights` output: the three graphs + labelgate.json."""
    from labelgate.models.export.cli import main

    directory = tmp_path_factory.mktemp("onnx")
    assert main(["export", "onnx", "--demo-weights", str(demo_weights), "--out", str(directory), "--no-check"]) == 0
    return directory


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port, one per test module; killed at the end."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()
