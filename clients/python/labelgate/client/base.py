"""What Client and AsyncClient share: their options, the channel security, the retry policy, the
image_id cache and the per-call deadline. Only the calling (blocking or awaited) differs."""

from __future__ import annotations

import math
from typing import Optional, Union

from labelgate.client.image_ids import DEFAULT_CAPACITY, ImageIdCache
from labelgate.client.retry import Attempts, RetryPolicy
from labelgate.client.transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TARGET,
    PemSource,
    Security,
    options_from_env,
)
from labelgate.v1 import labelgate_pb2_grpc


class _ClientTimeout:
    """The default of every method's `timeout`: use the client's."""

    def __repr__(self) -> str:
        return "<the client's timeout>"


CLIENT_TIMEOUT = _ClientTimeout()
Timeout = Union[float, None, _ClientTimeout]


def _check_timeout(timeout) -> None:
    if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be None (no deadline) or seconds > 0, got {timeout!r}")


class ClientBase:
    """Keyword options of both clients:

    - ``timeout``: seconds each call may take in all, retries included (None = no deadline);
      every method also takes ``timeout=`` for that one call.
    - ``tls``, ``root_certificates``, ``certificate_chain``, ``private_key``: TLS (see
      ``transport.Security``); certificates as PEM bytes or file paths.
    - ``token``: sent as ``authorization: Bearer <token>`` with every call.
    - ``retry``: a ``RetryPolicy`` for UNAVAILABLE (default: 4 attempts, backoff from 0.25 s);
      ``retry.NO_RETRIES`` turns retries off.
    - ``image_id_cache_size``: how many images' ids to remember; ``max_message_bytes``: the
      largest message sent or received.
    """

    def __init__(self, target: str = DEFAULT_TARGET, *, timeout: Optional[float] = 30.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, image_id_cache_size: int = DEFAULT_CAPACITY,
                 tls: bool = False, root_certificates: Optional[PemSource] = None,
                 certificate_chain: Optional[PemSource] = None, private_key: Optional[PemSource] = None,
                 token: Optional[str] = None, retry: Optional[RetryPolicy] = None):
        _check_timeout(timeout)
        self.target = target
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.security = Security.create(tls=tls, root_certificates=root_certificates,
                                        certificate_chain=certificate_chain, private_key=private_key, token=token)
        self._metadata = self.security.metadata()
        self._image_ids = ImageIdCache(image_id_cache_size)
        self._channel = self._open_channel(max_message_bytes)
        self._stub = labelgate_pb2_grpc.LabelgateStub(self._channel)

    @classmethod
    def from_env(cls, **options):
        """A client set up from the LABELGATE_* variables (see ``transport.options_from_env``);
        keyword `options` win over them."""
        return cls(**{**options_from_env(), **options})

    def _open_channel(self, max_message_bytes: int):
        raise NotImplementedError

    def _attempts(self, timeout: Timeout) -> Attempts:
        if timeout is CLIENT_TIMEOUT:
            timeout = self.timeout
        else:
            _check_timeout(timeout)
        return self.retry.start(timeout)

    def __repr__(self) -> str:
        tls = ", tls" if self.security.tls else ""
        return f"{type(self).__name__}({self.target!r}{tls})"
