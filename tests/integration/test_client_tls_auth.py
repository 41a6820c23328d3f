"""Client and AsyncClient against a real server started with TLS, client certificates and a
bearer token (--tls-cert, --tls-key, --tls-client-ca, --auth-token), with a CA made by the test."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
from certs import write_test_pki
from server_process import start_server

from labelgate.client import NO_RETRIES, AsyncClient, Client, LabelgateClientError
from labelgate.v1 import labelgate_pb2 as pb

TOKEN = "labelgate-test-token"
IMAGE = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return write_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(demo_weights, pki, tmp_path_factory):
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.client_key.read_bytes(),
                                               pki.client_cert.read_bytes())
    running = start_server(
        tmp_path_factory.mktemp("tls-server"), demo_weights, "--tls-cert", str(pki.server_cert),
        "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca), "--auth-token", TOKEN,
        credentials=credentials,  # the launcher's health check: TLS with a client certificate, no token
    )
    yield running
    assert running.stop() == 0, running.log()


def trusted(pki, **options) -> dict:
    return {"root_certificates": pki.ca, "certificate_chain": pki.client_cert, "private_key": pki.client_key,
            "token": TOKEN, "timeout": 60, **options}


def test_sync_client_over_mutual_tls_with_token(server, pki):
    with Client(server.address, **trusted(pki)) as client:
        first = client.segment(IMAGE, points=[(30, 20)])
        second = client.segment(IMAGE, boxes=[(5, 5, 40, 30)])
        kinds = sorted(model.kind for model in client.list_models())
    assert first.objects[0].best.to_numpy().shape == (48, 64)
    assert second.cache_hit and second.image_id == first.image_id
    assert kinds == ["edgetam", "grounding_dino", "sam2", "sam3"]  # --demo-weights: the pair, SAM 3, EdgeTAM


async def test_async_client_over_mutual_tls_with_token(server, pki):
    async with AsyncClient(server.address, **trusted(pki)) as client:
        embedded = await client.embed(IMAGE + 1)
        segmented = await client.segment(IMAGE + 1, points=[(10, 10), (40, 30, True)], multimask=True)
        detected = await client.detect(IMAGE + 1, "cat .", box_threshold=0.05)
    assert segmented.cache_hit and segmented.image_id == embedded.image_id == detected.image_id
    assert len(segmented.objects[0].masks) == 3


@pytest.mark.parametrize("token, says", [("wrong", "wrong bearer token"), (None, "missing 'authorization")])
def test_calls_without_the_token_are_unauthenticated(server, pki, token, says):
    refused = server.metric("labelgate_requests_total", method="Segment", code="UNAUTHENTICATED")
    with Client(server.address, **trusted(pki, token=token, retry=NO_RETRIES)) as client:
        with pytest.raises(LabelgateClientError) as error:
            client.segment(IMAGE, points=[(30, 20)])
    assert error.value.code == grpc.StatusCode.UNAUTHENTICATED and says in error.value.details
    assert TOKEN not in error.value.details
    assert server.metric("labelgate_requests_total", method="Segment", code="UNAUTHENTICATED") == refused + 1
    assert server.health() == 1  # health answers without a token: SERVING


@pytest.mark.parametrize("options", [
    {"root_certificates": None, "certificate_chain": None, "private_key": None},  # plaintext
    {"certificate_chain": None, "private_key": None},  # TLS, but no client certificate
    {"root_certificates": "other_ca"},  # the server's certificate is not signed by a CA we trust
], ids=["plaintext", "no-client-certificate", "untrusted-server"])
def test_connections_the_server_or_client_must_refuse(server, pki, options):
    if options.get("root_certificates") == "other_ca":
        options = {"root_certificates": pki.other_ca}
    with Client(server.address, **trusted(pki, retry=NO_RETRIES, timeout=20, **options)) as client:
        with pytest.raises(LabelgateClientError) as error:
            client.list_models()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE


def test_from_env_and_the_cli_use_the_labelgate_variables(server, pki, monkeypatch):
    env = {"LABELGATE_SERVER": server.address, "LABELGATE_AUTH_TOKEN": TOKEN, "LABELGATE_TLS_CA": str(pki.ca),
           "LABELGATE_TLS_CLIENT_CERT": str(pki.client_cert), "LABELGATE_TLS_CLIENT_KEY": str(pki.client_key)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Client.from_env(timeout=60) as client:
        assert len(client.list_models()) == 4
    done = subprocess.run([sys.executable, "-m", "labelgate.cli", "models"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sam2" in done.stdout and "grounding_dino" in done.stdout


def test_raw_stub_over_tls_needs_the_token_too(server):
    stub = server.stub()  # the launcher's TLS channel with a client certificate
    with pytest.raises(grpc.RpcError) as error:
        stub.ListModels(pb.ListModelsRequest(), timeout=30)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = stub.ListModels(pb.ListModelsRequest(), timeout=30, metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert {model.kind for model in reply.models} == {"sam2", "grounding_dino", "sam3", "edgetam"}
