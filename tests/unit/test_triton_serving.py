"""Serving through Triton without a Triton: the settings, the readiness monitor that drives health,
what the Triton connection reports while nothing listens at its URL or when Triton refuses an
input, and the python-flavour model's per-request error codes (with stand-in Triton utilities)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from add_graph import write_add_model

from labelgate.core.errors import InvalidInput, NotReady
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


async def test_readiness_monitor_asks_every_backend_and_reports_the_unready_ones():
    class Remote:
        def ready(self):
            return "down"

    class Local:
        def ready(self):
            return None

    calls = []

    async def set_serving(serving):
        calls.append(serving)

    monitor = ReadinessMonitor.for_backends((Local(), Remote()), set_serving)
    assert len(monitor.checks) == 2
    assert await monitor.check_once() == ["down"] and calls == [False]


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


def test_connecting_backends_to_an_unreachable_triton_raises_not_ready(nowhere, tmp_path):
    from labelgate.models.triton.connect import connect_grounding_dino, connect_sam2

    with pytest.raises(NotReady, match=nowhere.url):
        connect_sam2(nowhere.url)
    with pytest.raises(NotReady, match=nowhere.url):
        connect_grounding_dino(nowhere.url, tmp_path)


def test_an_input_triton_refuses_is_the_callers_mistake_and_other_statuses_are_not(nowhere):
    from tritonclient.utils import InferenceServerException

    refused = InferenceServerException("unexpected shape for input 'image'", status="StatusCode.INVALID_ARGUMENT")
    error = nowhere.translate(refused, "sam2_image_encoder")
    assert isinstance(error, InvalidInput)
    assert "sam2_image_encoder" in str(error) and "unexpected shape for input 'image'" in str(error)

    failed = InferenceServerException("Failed to run", status="StatusCode.INTERNAL")
    assert not isinstance(nowhere.translate(failed, "sam2_image_encoder"), (InvalidInput, NotReady))


class _TritonError(Exception):
    """Stands in for `triton_python_backend_utils.TritonError` (code defaults to INTERNAL, as Triton's)."""

    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG = range(4)

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class _Tensor:
    def __init__(self, name, array):
        self.name, self.array = name, array

    def as_numpy(self):
        return self.array


class _Request:
    def __init__(self, **arrays):
        self.inputs = {name: _Tensor(name, array) for name, array in arrays.items()}

    def requested_output_names(self):
        return []


@pytest.fixture
def python_model(tmp_path, monkeypatch):
    """models/export/triton_python_model.py serving a tiny Add graph, as Triton's python backend would load it."""
    write_add_model(tmp_path / "1" / "model.onnx")
    utils = SimpleNamespace(
        TritonError=_TritonError, Tensor=_Tensor, InferenceResponse=lambda output_tensors, error=None: SimpleNamespace(
            output_tensors=output_tensors, error=error),
        get_input_tensor_by_name=lambda request, name: request.inputs.get(name),
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    from labelgate.models.export.triton_repository import PYTHON_MODEL_TEMPLATE

    spec = importlib.util.spec_from_file_location("triton_python_model_under_test", PYTHON_MODEL_TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps({}), "model_repository": str(tmp_path), "model_version": "1"})
    return model


def test_the_python_model_answers_a_bad_request_invalid_arg_and_a_failed_run_internal(python_model):
    ones = np.ones((1, 2), np.float32)
    good, missing, disagreeing, unrunnable = python_model.execute([
        _Request(a=ones, b=ones),
        _Request(a=ones),
        _Request(a=ones, b=np.ones((3, 2), np.float32)),
        _Request(a=np.ones((1, 2, 2), np.float32), b=np.ones((1, 2, 2), np.float32)),  # rank 3: ONNX Runtime fails
    ])

    assert good.error is None and good.output_tensors[0].array.tolist() == [[2.0, 2.0]]
    assert missing.error.code == _TritonError.INVALID_ARG and "missing input tensor 'b'" in str(missing.error)
    assert disagreeing.error.code == _TritonError.INVALID_ARG and "batch size" in str(disagreeing.error)
    assert unrunnable.error.code == _TritonError.INTERNAL
