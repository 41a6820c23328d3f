"""How the server proves itself and checks its callers: TLS (`--tls-cert`, `--tls-key`, and
`--tls-client-ca` for mutual TLS) and a bearer token (`--auth-token`).

With a token, every call to the Labelgate service must carry ``authorization: Bearer TOKEN``.
Health and reflection stay open, so load balancers and probes need no token. A refused call
raises `Unauthenticated`; the `RpcInterceptor` before this one answers it with UNAUTHENTICATED
(mapped in `labelgate.server.status` like every other error), counts and logs it.
"""

from __future__ import annotations

import hmac
from pathlib import Path

import grpc

from labelgate.core.errors import Unauthenticated

_PREFIX = "bearer "


def bearer_token(metadata) -> str | None:
    """The token of the first ``authorization: Bearer ...`` entry (None if there is none)."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str) and value[: len(_PREFIX)].lower() == _PREFIX:
            return value[len(_PREFIX):].strip()
    return None


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str, service: str):
        if not token:
            raise ValueError("an empty token would let everyone in")
        self._token = token.encode()
        self._guarded = f"/{service}/"

    def allows(self, method: str, metadata) -> bool:
        if not method.startswith(self._guarded):
            return True
        token = bearer_token(metadata)
        return token is not None and hmac.compare_digest(token.encode(), self._token)

    async def intercept_service(self, continuation, handler_call_details):
        if self.allows(handler_call_details.method, handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        given = bearer_token(handler_call_details.invocation_metadata) is not None
        reason = "wrong bearer token" if given else "missing 'authorization: Bearer <token>' metadata"
        return _refusal(f"{reason}: this server requires the token it was started with (--auth-token)")


def _refusal(message: str) -> grpc.RpcMethodHandler:
    async def refuse(request, context):
        raise Unauthenticated(message)

    return grpc.unary_unary_rpc_method_handler(refuse)


def server_credentials(settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings; None = plaintext."""
    if not settings.tls_cert:
        return None
    pair = (Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())
    client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def interceptors(settings, service: str) -> list[grpc.aio.ServerInterceptor]:
    return [BearerTokenInterceptor(settings.auth_token, service)] if settings.auth_token else []
