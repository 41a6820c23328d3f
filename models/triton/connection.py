"""One connection to a Triton server, for the synchronous batch-in/batch-out backends.

The batchers call backends from worker threads; the `tritonclient.grpc.aio` client lives on an
event loop of its own (one thread), so a batch of items becomes concurrent Triton requests that
Triton's dynamic batcher can group, with no blocking of the server's own loop.

Errors become domain errors: Triton unreachable, or a model missing or not ready, is `NotReady`
with the Triton URL in the message (the client sees UNAVAILABLE); an input Triton or the model
refuses (INVALID_ARGUMENT) is `InvalidInput`; anything else is a server fault.
The channel retries connecting every second at most, so labelgate serves again soon after Triton
comes back, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Mapping, Sequence

import numpy as np

from labelgate.core.errors import InvalidInput, NotReady

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0
_MAX_MESSAGE = 2**31 - 1
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# Triton (tritonclient) data types of the numpy dtypes labelgate sends.
_TRITON_DTYPES = {"float32": "FP32", "float16": "FP16", "int32": "INT32", "int64": "INT64", "bool": "BOOL", "uint8": "UINT8"}
_UNREACHABLE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")


class TritonConnection:
    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S):
        try:
            import tritonclient.grpc.aio  # noqa: F401
        except ImportError as error:
            raise ValueError(f"--backend triton needs tritonclient ({error}): pip install 'labelgate[triton]'") from None
        self.url = url
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"triton-{url}", daemon=True)
        self._thread.start()
        self._client = self._call(self._create_client())

    async def _create_client(self):
        import tritonclient.grpc.aio as triton_aio

        return triton_aio.InferenceServerClient(self.url, channel_args=_CHANNEL_ARGS)

    def _call(self, coroutine, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # --- inference ------------------------------------------------------------------------------

    def infer_many(
        self, model: str, requests: Sequence[Mapping[str, np.ndarray]], outputs: Sequence[str]
    ) -> list[dict[str, np.ndarray] | Exception]:
        """Sends every request at once (each with its own batch axis); one result per request."""
        if not requests:
            return []
        return self._call(self._infer_all(model, requests, outputs))

    async def _infer_all(self, model, requests, outputs):
        return list(await asyncio.gather(*(self._infer(model, request, outputs) for request in requests), return_exceptions=True))

    async def _infer(self, model: str, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        from tritonclient.grpc import InferInput, InferRequestedOutput

        inputs = []
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            tensor = InferInput(name, list(array.shape), _TRITON_DTYPES[array.dtype.name])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        try:
            result = await self._client.infer(
                model, inputs, outputs=[InferRequestedOutput(name) for name in outputs], client_timeout=self.timeout_s
            )
        except Exception as error:
            raise self.translate(error, model) from None
        return {name: result.as_numpy(name) for name in outputs}

    # --- state ----------------------------------------------------------------------------------

    def ready(self, models: Sequence[str]) -> str | None:
        """None when the server and every model are ready, else why not (a sentence)."""
        try:
            return self._call(self._readiness(models), timeout=self.timeout_s)
        except Exception as error:
            return str(self.translate(error, None))

    async def _readiness(self, models: Sequence[str]) -> str | None:
        timeout = min(self.timeout_s, 5.0)
        if not await self._client.is_server_ready(client_timeout=timeout):
            return f"Triton at {self.url} is not ready"
        for model in models:
            if not await self._client.is_model_ready(model, client_timeout=timeout):
                return f"Triton at {self.url} has no model {model!r} ready"
        return None

    def model_config(self, model: str) -> dict:
        """The model's config as JSON (Triton's `ModelConfig`), NotReady while it cannot be had."""
        try:
            return self._call(self._client.get_model_config(model, as_json=True, client_timeout=self.timeout_s))["config"]
        except Exception as error:
            raise self.translate(error, model) from None

    def translate(self, error: BaseException, model: str | None) -> Exception:
        """NotReady for an unreachable server or a model it cannot serve now, InvalidInput for an
        input refused; other errors unchanged."""
        status = str(getattr(error, "status", lambda: None)() or "")
        message = getattr(error, "message", lambda: str(error))() or type(error).__name__
        if isinstance(error, (ConnectionError, OSError)) or status in _UNREACHABLE:
            return NotReady(f"Triton at {self.url} is unavailable: {message}")
        if model is not None and status == "StatusCode.NOT_FOUND":
            return NotReady(f"Triton at {self.url} has no model {model!r} ready ({message})")
        if status == "StatusCode.INVALID_ARGUMENT":
            return InvalidInput(f"Triton model {model!r} refused the input: {message}")
        if isinstance(error, Exception) and not status:
            return error
        return RuntimeError(f"Triton at {self.url}, model {model}: {status} {message}")

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close(), timeout=5)
        except Exception:
            log.debug("closing the Triton client failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
