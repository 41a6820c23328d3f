"""The Authorization header for Label Studio's API, from whichever kind of key the user has.

- Personal access token (Label Studio >= 1.17, the default now): a JWT *refresh* token. It is
  exchanged at `POST /api/token/refresh/` for a short-lived access token, sent as
  `Authorization: Bearer <access>` and renewed before it expires.
- A JWT access token: sent as `Bearer` as it is.
- Legacy token (40 hex characters, "Account & Settings -> Legacy Token"): `Authorization: Token
  <key>`. Newer Label Studio organizations must enable legacy tokens before these work.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import requests

# Renew an access token this long before it expires.
_EXPIRY_MARGIN_S = 30.0


def jwt_claims(token: str) -> dict | None:
    """The unverified claims of a JWT, or None if `token` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


class LabelStudioAuthError(RuntimeError):
    pass


class LabelStudioAuth:
    """Thread-safe; `header()` may call Label Studio to get a fresh access token."""

    def __init__(self, base_url: str, api_key: str, session: requests.Session, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._key = api_key.strip()
        self._session = session
        self._timeout = timeout
        claims = jwt_claims(self._key)
        self.kind = "legacy" if claims is None else ("refresh" if claims.get("token_type") == "refresh" else "access")
        self._access: str | None = None
        self._access_expires = 0.0
        self._lock = threading.Lock()

    def header(self) -> str:
        if self.kind == "legacy":
            return f"Token {self._key}"
        if self.kind == "access":
            return f"Bearer {self._key}"
        with self._lock:
            if self._access is None or time.time() > self._access_expires - _EXPIRY_MARGIN_S:
                self._refresh()
            return f"Bearer {self._access}"

    def forget_access_token(self) -> None:
        """After a 401: the next header() gets a new access token."""
        with self._lock:
            self._access = None

    def _refresh(self) -> None:
        url = f"{self.base_url}/api/token/refresh/"
        try:
            response = self._session.post(url, json={"refresh": self._key}, timeout=self._timeout)
        except requests.RequestException as error:
            raise LabelStudioAuthError(f"cannot reach Label Studio at {self.base_url} to exchange the personal "
                                       f"access token for an access token: {error}") from None
        if response.status_code != 200:
            raise LabelStudioAuthError(
                f"Label Studio refused the personal access token in LABEL_STUDIO_API_KEY (HTTP {response.status_code} "
                f"from {url}): it may be revoked or expired, or from another Label Studio; create a new one "
                "under Account & Settings -> Personal Access Token")
        access = response.json().get("access", "")
        claims = jwt_claims(access) or {}
        self._access = access
        self._access_expires = float(claims.get("exp", time.time() + 60))
