"""The Python client and the `labelgate segment/detect/models` commands against a real server
(random demo weights on CPU), started once for this module."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from labelgate.client import Client, ImageId, LabelgateClientError
from labelgate.client.image_ids import digest
from labelgate.client.images import encode_image

STARTUP_TIMEOUT_S = 120
W, H = 64, 48
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory):
    """The address ("127.0.0.1:PORT") of a SERVING `labelgate serve --demo-weights` process."""
    work = tmp_path_factory.mktemp("server")
    port_file, log_path = work / "port.json", work / "server.log"
    command = [sys.executable, "-m", "labelgate.cli", "serve", "--demo-weights", str(demo_weights),
               "--port", "0", "--metrics-port", "-1", "--port-file", str(port_file)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    try:
        address = _wait_until_serving(process, port_file, log_path)
        yield address
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"the server did not exit within 30 s of SIGTERM:\n{_log_tail(log_path)}")
    assert process.returncode == 0, f"the server exited with {process.returncode} after SIGTERM:\n{_log_tail(log_path)}"


def _wait_until_serving(process: subprocess.Popen, port_file: Path, log_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    address = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} while starting:\n{_log_tail(log_path)}")
        if address is None and port_file.exists():
            try:
                address = f"127.0.0.1:{json.loads(port_file.read_text())['port']}"
            except (ValueError, KeyError):
                pass  # half-written; read again
        if address is not None:
            with grpc.insecure_channel(address) as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return address
                except grpc.RpcError:
                    pass
        time.sleep(0.25)
    process.kill()
    pytest.fail(f"the server was not SERVING within {STARTUP_TIMEOUT_S} s:\n{_log_tail(log_path)}")


def _png(directory: Path, seed: int, name: str = "") -> Path:
    y, x = np.mgrid[0:H, 0:W]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    pixels[10:30, 20:45] = np.random.default_rng(seed).integers(0, 256, (20, 25, 3), dtype=np.uint8)
    path = directory / (name or f"image_{seed}.png")
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def client(server):
    with Client(server, timeout=60) as client:
        yield client


def _spy_sources(client: Client, monkeypatch) -> list[str]:
    """Records, per RPC the client makes, whether the image went as "data" or "image_id"."""
    sources = []
    invoke = client._invoke

    def spy(method, request, *rest):
        sources.append(request.image.WhichOneof("source") if request.HasField("image") else None)
        return invoke(method, request, *rest)

    monkeypatch.setattr(client, "_invoke", spy)
    return sources


# --- Python client -----------------------------------------------------------------------------


def test_segment_point_then_cached_by_id(client, tmp_path, monkeypatch):
    sources = _spy_sources(client, monkeypatch)
    image = _png(tmp_path, seed=1)
    first = client.segment(image, points=[(30, 20)], formats=("coco_rle", "png", "polygons"))
    assert (first.width, first.height) == (W, H) and first.image_id.startswith("img_")
    assert len(first.objects) == 1 and first.objects[0].masks
    for mask in first.objects[0].masks:
        array = mask.to_numpy()
        assert array.shape == (H, W) and array.dtype == bool and int(array.sum()) == mask.area
    assert first.cache_hit is False

    second = client.segment(image, points=[(30, 20), (5, 5, True)], multimask=True)
    assert second.cache_hit is True and second.image_id == first.image_id
    assert len(second.objects) == 1 and second.objects[0].best.to_numpy().shape == (H, W)
    assert sources == ["data", "image_id"]  # the second call sent only the id


def test_stale_image_id_is_replaced_by_the_bytes(client, tmp_path, monkeypatch):
    image = _png(tmp_path, seed=2)
    key = digest(encode_image(image))
    stale = "img_" + "0" * 32
    client._image_ids.put(key, stale)
    sources = _spy_sources(client, monkeypatch)
    result = client.segment(image, points=[(10, 10)])
    assert sources == ["image_id", "data"]
    assert result.image_id != stale and client._image_ids.get(key) == result.image_id
    client.embed(image)
    assert sources[-1] == "image_id"


def test_explicit_image_id_and_embed(client, tmp_path):
    embedded = client.embed(_png(tmp_path, seed=3))
    assert (embedded.width, embedded.height) == (W, H)
    result = client.segment(ImageId(embedded.image_id), boxes=[(5, 5, 40, 30), (20, 10, 60, 45)])
    assert result.cache_hit and len(result.objects) == 2
    assert [obj.prompt_box for obj in result.objects] == [(5, 5, 40, 30), (20, 10, 60, 45)]
    with pytest.raises(LabelgateClientError) as error:
        client.segment(ImageId("img_" + "f" * 32), points=[(1, 1)])
    assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_detect(client, tmp_path):
    result = client.detect(_png(tmp_path, seed=4), "cat . dog .", box_threshold=0.05)
    assert (result.width, result.height) == (W, H) and result.image_id.startswith("img_")
    for detection in result.detections:  # random weights: any number, but well-formed
        x_min, y_min, x_max, y_max = detection.box
        assert x_max > x_min and y_max > y_min and 0.0 <= detection.score <= 1.0


def test_segment_text_prompt(client, tmp_path):
    result = client.segment(_png(tmp_path, seed=5), text="cat .", box_threshold=0.05)
    for obj in result.objects:
        assert obj.prompt_box is not None and obj.best.to_numpy().shape == (H, W)


def test_list_models(client):
    models = client.list_models()
    pair = [model for model in models if model.kind in ("grounding_dino", "sam2")]  # --demo-weights may add more
    assert sorted(model.kind for model in pair) == ["grounding_dino", "sam2"]
    assert all(model.is_default and model.name and model.version and model.device for model in pair)
    capabilities = {model.kind: set(model.capabilities) for model in pair}  # other kinds of work may be added
    assert "detect" in capabilities["grounding_dino"] and "segment_prompts" in capabilities["sam2"]


def test_rpc_errors_raise_client_error(client, tmp_path):
    image = _png(tmp_path, seed=6)
    with pytest.raises(LabelgateClientError) as error:
        client.segment(image, points=[(W + 50, 10)])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "outside" in error.value.details
    with pytest.raises(LabelgateClientError) as error:
        client.segment(image)  # no prompt
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(LabelgateClientError) as error:
        client.segment(b"not an image", points=[(1, 1)])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT


# --- CLI ---------------------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labelgate.cli", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def test_cli_segment_writes_overlay(server, tmp_path):
    image, out = _png(tmp_path, seed=7), tmp_path / "out" / "overlay.png"
    done = _cli("segment", str(image), "--point", "10,10", "--out", str(out), "--server", server)
    assert done.returncode == 0, done.stderr
    assert "1 object" in done.stdout and "area" in done.stdout
    with Image.open(out) as overlay:
        assert overlay.format == "PNG" and overlay.size == (W, H)


def test_cli_segment_json(server, tmp_path):
    done = _cli("segment", str(_png(tmp_path, seed=8)), "--box", "5,5,40,30", "--json", "--server", server)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["width"], result["height"]) == (W, H)
    [obj] = result["objects"]
    assert obj["prompt_box"] == [5, 5, 40, 30] and obj["masks"][0]["rle"]["size"] == [H, W]


def test_cli_detect_json(server, tmp_path):
    out = tmp_path / "boxes.png"
    done = _cli("detect", str(_png(tmp_path, seed=9)), "cat .", "--box-threshold", "0.05", "--json",
                "--out", str(out), "--server", server)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["width"], result["height"]) == (W, H) and isinstance(result["detections"], list)
    with Image.open(out) as overlay:
        assert overlay.size == (W, H)


def test_cli_models(server):
    done = _cli("models", "--server", server)
    assert done.returncode == 0, done.stderr
    assert "sam2" in done.stdout and "grounding_dino" in done.stdout and "NAME" in done.stdout


def test_cli_bad_point_syntax(tmp_path):
    done = _cli("segment", str(_png(tmp_path, seed=10)), "--point", "1,2,3,4")
    assert done.returncode != 0
    assert "--point" in done.stderr and "X,Y" in done.stderr and "Traceback" not in done.stderr


def test_cli_rpc_error(server, tmp_path):
    done = _cli("segment", str(_png(tmp_path, seed=11)), "--point", f"{W + 50},10", "--server", server)
    assert done.returncode == 1
    assert done.stderr.startswith("error: INVALID_ARGUMENT: ") and "Traceback" not in done.stderr


def test_cli_unreachable_server(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    done = _cli("segment", str(_png(tmp_path, seed=12)), "--point", "10,10", "--server", address)
    assert done.returncode == 1
    assert address in done.stderr and "make run" in done.stderr and "Traceback" not in done.stderr
