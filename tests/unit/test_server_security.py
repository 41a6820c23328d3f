"""The server's TLS and bearer-token options: settings validation, the token check, and what a
refused call gets. (tests/integration/test_client_tls_auth.py runs them on a real server.)"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from labelgate.core.errors import Unauthenticated
from labelgate.server.security import BearerTokenInterceptor, bearer_token, interceptors, server_credentials
from labelgate.server.settings import Settings, add_serve_arguments, normalize_args

SERVICE = "labelgate.v1.Labelgate"


def settings(**values) -> Settings:
    return Settings(demo_weights="demo", **values)


def test_tls_settings_are_checked_at_start(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    settings(tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(cert), auth_token="t").validate()
    for values, message in [
        ({"tls_cert": str(cert)}, "go together"),
        ({"tls_key": str(key)}, "go together"),
        ({"tls_client_ca": str(cert)}, "needs --tls-cert"),
        ({"tls_cert": str(tmp_path / "missing.pem"), "tls_key": str(key)}, "--tls-cert .*missing.pem: no such file"),
        ({"auth_token": "a\nb"}, "single line"),
    ]:
        with pytest.raises(ValueError, match=message):
            settings(**values).validate()


def test_flags_and_variables(monkeypatch):
    monkeypatch.setenv("LABELGATE_AUTH_TOKEN", "from-env")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    parsed = Settings.from_args(normalize_args(parser.parse_args(["--tls-cert", "c.pem", "--tls-key", "k.pem"])))
    assert (parsed.tls_cert, parsed.tls_key, parsed.tls_client_ca, parsed.auth_token) == ("c.pem", "k.pem", "", "from-env")
    assert "from-env" not in repr(parsed)


def test_plaintext_and_no_token_by_default():
    assert server_credentials(settings()) is None
    assert interceptors(settings(), SERVICE) == []
    assert len(interceptors(settings(auth_token="t"), SERVICE)) == 1


@pytest.mark.parametrize("metadata, token", [
    ((("authorization", "Bearer abc"),), "abc"),
    ((("Authorization", "bearer  abc "),), "abc"),
    ((("x-other", "1"), ("authorization", "Bearer abc")), "abc"),
    ((("authorization", "Basic abc"),), None),
    ((), None),
    (None, None),
])
def test_bearer_token(metadata, token):
    assert bearer_token(metadata) == token


def test_only_the_labelgate_service_needs_the_token():
    guard = BearerTokenInterceptor("s3cret", SERVICE)
    right, wrong = (("authorization", "Bearer s3cret"),), (("authorization", "Bearer nope"),)
    assert guard.allows(f"/{SERVICE}/Segment", right)
    assert not guard.allows(f"/{SERVICE}/Segment", wrong)
    assert not guard.allows(f"/{SERVICE}/ListModels", ())
    assert guard.allows("/grpc.health.v1.Health/Check", ())
    assert guard.allows("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", ())
    with pytest.raises(ValueError):
        BearerTokenInterceptor("", SERVICE)


async def test_a_refused_call_raises_unauthenticated_and_never_reaches_the_service():
    guard = BearerTokenInterceptor("s3cret", SERVICE)
    reached = []

    async def continuation(details):
        reached.append(details.method)
        return "the real handler"

    allowed = SimpleNamespace(method=f"/{SERVICE}/Embed", invocation_metadata=(("authorization", "Bearer s3cret"),))
    assert await guard.intercept_service(continuation, allowed) == "the real handler"
    refused = SimpleNamespace(method=f"/{SERVICE}/Embed", invocation_metadata=(("authorization", "Bearer nope"),))
    handler = await guard.intercept_service(continuation, refused)
    # RpcInterceptor answers it with UNAUTHENTICATED (tests/unit/test_interceptor.py)
    with pytest.raises(Unauthenticated) as error:
        await handler.unary_unary(b"", None)
    assert "wrong bearer token" in str(error.value) and "s3cret" not in str(error.value)
    assert reached == [f"/{SERVICE}/Embed"]
