"""Serving through Triton without a Triton: the settings, the readiness monitor that drives health,
and what the Triton connection reports while nothing listens at its URL."""

from __future__ import annotations

import argparse
import socket

import numpy as np
import pytest

from labelgate.server.errors import NotReady
from labelgate.server.readiness import ReadinessMonitor
from labelgate.server.settings import Settings, add_serve_arguments, normalize_args


def _settings(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return Settings.from_args(normalize_args(parser.parse_args(list(argv))))


def test_triton_backend_needs_no_local_sam2_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights/ here
    settings = _settings("--backend", "triton", "--triton-url", "triton.internal:8001", "--gdino-model", "")
    assert settings.validate().triton_url == "triton.internal:8001"
    with pytest.raises(ValueError, match="--sam2-checkpoint"):
        _settings("--backend", "torch", "--gdino-model", "").validate()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--backend", "onnx"), "--backend onnx: choose torch or triton"),
        (("--backend", "triton", "--triton-url", "8001"), "expected HOST:PORT"),
        (("--backend", "triton", "--triton-url", "host:port"), "expected HOST:PORT"),
    ],
)
def test_bad_backend_settings_are_refused(argv, message, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        _settings(*argv, "--gdino-model", "").validate()


def test_backend_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LABELGATE_BACKEND", "triton")
    monkeypatch.setenv("LABELGATE_TRITON_URL", "10.0.0.5:9001")
    settings = _settings()
    assert (settings.backend, settings.triton_url) == ("triton", "10.0.0.5:9001")


async def test_readiness_monitor_flips_health_only_on_changes():
    states = iter([None, "Triton at h:1 is unreachable", "Triton at h:1 is unreachable", None, None])
    calls = []

    async def set_serving(serving):
        calls.append(serving)

    monitor = ReadinessMonitor([lambda: next(states)], set_serving)
    reasons = [await monitor.check_once() for _ in range(5)]

    assert reasons == [[], ["Triton at h:1 is unreachable"], ["Triton at h:1 is unreachable"], [], []]
    assert calls == [False, True]


async def test_readiness_monitor_watches_only_backends_that_can_become_unready():
    class Remote:
        def ready(self):
            return "down"

    class Local:
        pass

    calls = []

    async def set_serving(serving):
        calls.append(serving)

    monitor = ReadinessMonitor.for_backends((Local(), None, Remote()), set_serving)
    assert len(monitor.checks) == 1
    assert await monitor.check_once() == ["down"] and calls == [False]
    assert ReadinessMonitor.for_backends((Local(), None), set_serving).checks == []


@pytest.fixture
def nowhere():
    """A loopback URL where nothing listens."""
    from labelgate.models.triton.connection import TritonConnection

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = TritonConnection(f"127.0.0.1:{port}", timeout_s=5)
    yield connection
    connection.close()


def test_an_unreachable_triton_is_not_ready_and_named(nowhere):
    reason = nowhere.ready(["sam2_image_encoder"])
    assert reason is not None and nowhere.url in reason

    with pytest.raises(NotReady, match=nowhere.url):
        nowhere.model_config("sam2_image_encoder")

    results = nowhere.infer_many("sam2_image_encoder", [{"image": np.zeros((1, 3, 8, 8), np.float32)}] * 2, ["image_embed"])
    assert len(results) == 2
    assert all(isinstance(result, NotReady) and nowhere.url in str(result) for result in results)


def test_connecting_backends_to_an_unreachable_triton_raises_not_ready(nowhere):
    from labelgate.models.triton.connect import connect_backends

    with pytest.raises(NotReady, match=nowhere.url):
        connect_backends(nowhere.url)
