"""The retry policy, the channel security and the LABELGATE_* client variables, without a server."""

from __future__ import annotations

import random

import grpc
import pytest

from labelgate.client import LabelgateClientError, RetryPolicy
from labelgate.client.retry import Attempts
from labelgate.client.transport import Security, options_from_env

UNAVAILABLE = LabelgateClientError(grpc.StatusCode.UNAVAILABLE, "connection refused")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_with_bounded_jitter_and_a_cap():
    policy = RetryPolicy(initial_backoff=0.5, multiplier=2.0, max_backoff=3.0, jitter=0.2)
    rng = random.Random(7)
    for retry, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert max(delays) - min(delays) > base * 0.2  # jittered, not constant
    assert RetryPolicy(jitter=0.0).backoff(2) == 0.5


def test_only_unavailable_is_retried_up_to_max_attempts():
    attempts = RetryPolicy(max_attempts=3, jitter=0.0).start(timeout=None)
    assert attempts.timeout() is None
    assert attempts.retry_delay(LabelgateClientError(grpc.StatusCode.RESOURCE_EXHAUSTED, "full")) is None
    assert attempts.retry_delay(LabelgateClientError(grpc.StatusCode.INTERNAL, "x")) is None
    assert attempts.retry_delay(UNAVAILABLE) == 0.25
    assert attempts.retry_delay(UNAVAILABLE) == 0.5
    assert attempts.retry_delay(UNAVAILABLE) is None  # 3 attempts made
    assert attempts.retries == 2


def test_the_deadline_covers_all_attempts():
    clock = FakeClock()
    attempts = Attempts(RetryPolicy(max_attempts=10, initial_backoff=1.0, jitter=0.0), timeout=5.0, clock=clock)
    assert attempts.timeout() == 5.0
    clock.now += 1.5
    assert attempts.timeout() == 3.5
    assert attempts.retry_delay(UNAVAILABLE) == 1.0  # 1.5 + 1 < 5
    clock.now += 1.0 + 1.0
    assert attempts.retry_delay(UNAVAILABLE) is None  # 3.5 + 2 would pass the deadline
    clock.now += 10
    assert attempts.timeout() == 0.0


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"initial_backoff": -1}, {"multiplier": 0.5},
                                    {"jitter": 1.5}, {"max_backoff": float("inf")}])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_security_reads_pem_from_paths_bytes_and_text(tmp_path):
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = tmp_path / "ca.pem"
    path.write_bytes(pem)
    for source in (path, str(path), pem, pem.decode()):
        security = Security.create(root_certificates=source)
        assert security.tls and security.root_certificates == pem
    assert not Security.create().tls and Security.create().credentials() is None
    assert Security.create(tls=True).credentials() is not None  # system roots
    assert Security.create(token="t").metadata() == (("authorization", "Bearer t"),)
    assert Security.create().metadata() is None


def test_security_refuses_what_cannot_work(tmp_path):
    with pytest.raises(ValueError, match="together"):
        Security.create(certificate_chain=b"-----BEGIN CERTIFICATE-----")
    with pytest.raises(ValueError, match="cannot read"):
        Security.create(root_certificates=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="single line"):
        Security.create(token="a\nb")


def test_options_from_env(tmp_path):
    assert options_from_env({}) == {"target": "127.0.0.1:50051", "token": None, "tls": False,
                                    "root_certificates": None, "certificate_chain": None, "private_key": None}
    env = {"LABELGATE_SERVER": "gpu:7000", "LABELGATE_AUTH_TOKEN": "t", "LABELGATE_TLS": "1",
           "LABELGATE_TLS_CA": "/ca.pem", "LABELGATE_TLS_CLIENT_CERT": "/c.pem", "LABELGATE_TLS_CLIENT_KEY": "/k.pem"}
    assert options_from_env(env) == {"target": "gpu:7000", "token": "t", "tls": True, "root_certificates": "/ca.pem",
                                     "certificate_chain": "/c.pem", "private_key": "/k.pem"}
    with pytest.raises(ValueError, match="LABELGATE_TLS"):
        options_from_env({"LABELGATE_TLS": "maybe"})
