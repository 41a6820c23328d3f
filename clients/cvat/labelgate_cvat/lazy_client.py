"""The labelgate client of a cvat-sdk agent function, made on first use."""

from __future__ import annotations

from typing import Optional

from labelgate.client import Client


class LazyClient:
    def __init__(self, server: Optional[str] = None):
        self._options = {"target": server} if server else {}
        self._client: Optional[Client] = None

    @property
    def client(self) -> Client:
        # Created on first use, inside the agent's worker process (channels do not survive a fork).
        if self._client is None:
            self._client = Client.from_env(**self._options)
        return self._client
