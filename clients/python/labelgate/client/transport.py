"""How a client reaches its server: channel options, TLS credentials, the bearer token sent in
the call metadata, and the LABELGATE_* environment variables that set them. Shared by Client and
AsyncClient."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# Environment variables read by `options_from_env` (and so by `Client.from_env`, the CLI, and
# the CVAT and Label Studio adapters).
SERVER_ENV = "LABELGATE_SERVER"
TOKEN_ENV = "LABELGATE_AUTH_TOKEN"
TLS_ENV = "LABELGATE_TLS"
TLS_CA_ENV = "LABELGATE_TLS_CA"
TLS_CLIENT_CERT_ENV = "LABELGATE_TLS_CLIENT_CERT"
TLS_CLIENT_KEY_ENV = "LABELGATE_TLS_CLIENT_KEY"

# PEM data as bytes, PEM text as a str starting with "-----BEGIN", or the path of a PEM file.
PemSource = Union[bytes, str, os.PathLike]


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def read_pem(source: Optional[PemSource], what: str) -> Optional[bytes]:
    if source is None:
        return None
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode("ascii")
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{what}: cannot read {path}: {error.strerror or error}") from None


@dataclass(frozen=True)
class Security:
    """TLS and the bearer token. TLS is on when `tls` is set or any certificate is given; without
    `root_certificates` the system's trusted roots check the server. `certificate_chain` and
    `private_key` (both or neither) are this client's certificate, for servers that require one
    (mutual TLS). The token goes in every call's metadata as ``authorization: Bearer <token>``;
    over a plaintext channel anyone on the path can read it, so use TLS beyond loopback."""

    tls: bool = False
    root_certificates: Optional[bytes] = None
    certificate_chain: Optional[bytes] = None
    private_key: Optional[bytes] = field(default=None, repr=False)
    token: Optional[str] = field(default=None, repr=False)

    @classmethod
    def create(cls, *, tls: bool = False, root_certificates: Optional[PemSource] = None,
               certificate_chain: Optional[PemSource] = None, private_key: Optional[PemSource] = None,
               token: Optional[str] = None) -> "Security":
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("certificate_chain and private_key go together: give both (mutual TLS) or neither")
        if token is not None and (not token or any(c in token for c in "\r\n")):
            raise ValueError("token must be a non-empty single line")
        roots = read_pem(root_certificates, "root_certificates")
        chain = read_pem(certificate_chain, "certificate_chain")
        key = read_pem(private_key, "private_key")
        return cls(tls=bool(tls or roots or chain), root_certificates=roots, certificate_chain=chain,
                   private_key=key, token=token)

    def credentials(self) -> Optional[grpc.ChannelCredentials]:
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)

    def metadata(self) -> Optional[tuple[tuple[str, str], ...]]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


def open_channel(target: str, security: Security, max_message_bytes: int) -> grpc.Channel:
    options = channel_options(max_message_bytes)
    credentials = security.credentials()
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


def open_aio_channel(target: str, security: Security, max_message_bytes: int) -> grpc.aio.Channel:
    options = channel_options(max_message_bytes)
    credentials = security.credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


def options_from_env(environ: Mapping[str, str] = os.environ) -> dict:
    """Client keyword arguments from the environment:

    - ``LABELGATE_SERVER``: host:port (default 127.0.0.1:50051)
    - ``LABELGATE_AUTH_TOKEN``: bearer token for servers started with ``--auth-token``
    - ``LABELGATE_TLS_CA``: PEM file of the CA that signed the server's certificate (turns TLS on)
    - ``LABELGATE_TLS=1``: TLS checked against the system's trusted roots
    - ``LABELGATE_TLS_CLIENT_CERT`` / ``LABELGATE_TLS_CLIENT_KEY``: this client's certificate
      and key, for servers that require one (``--tls-client-ca``)
    """
    tls = environ.get(TLS_ENV, "").strip().lower()
    if tls not in ("", "0", "1", "false", "true", "no", "yes", "off", "on"):
        raise ValueError(f"{TLS_ENV}={environ[TLS_ENV]!r}: expected 1 or 0")
    return {
        "target": environ.get(SERVER_ENV) or DEFAULT_TARGET,
        "token": environ.get(TOKEN_ENV) or None,
        "tls": tls in ("1", "true", "yes", "on"),
        "root_certificates": environ.get(TLS_CA_ENV) or None,
        "certificate_chain": environ.get(TLS_CLIENT_CERT_ENV) or None,
        "private_key": environ.get(TLS_CLIENT_KEY_ENV) or None,
    }
