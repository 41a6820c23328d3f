"""The few calls of Label Studio's REST API a labeling job makes (list a project's tasks, download
their images, create predictions), over urllib: the light client does not depend on
label_studio_sdk (whose 2.x pins pandas, nltk and opencv), nor on the ML backend package.

The API key is either a personal access token (a JWT refresh token, exchanged at
`/api/token/refresh/` for a short-lived access token sent as `Bearer`) or a legacy token (sent as
`Token`), as the ML backend's auth.py does. Used from the job's main thread only.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode, urlparse

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
PAGE_SIZE = 100  # tasks per page of /api/tasks
_EXPIRY_MARGIN_S = 30.0
_NOT_IMAGES = ("text/html", "application/json")  # a login page or an API error


class LabelStudioError(OSError):
    """A failed call: an OSError, so that a task whose image cannot be downloaded fails alone."""


class LabelStudioApi:
    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        if not api_key:
            raise ValueError(f"Label Studio needs an API key: set ${API_KEY_ENV} or pass --ls-token "
                             "(Account & Settings -> Personal Access Token)")
        self.url = url.rstrip("/")
        self._key = api_key.strip()
        self._timeout = timeout
        claims = _jwt_claims(self._key)
        self._kind = "legacy" if claims is None else ("refresh" if claims.get("token_type") == "refresh" else "access")
        self._access, self._access_expires = "", 0.0

    # --- calls -----------------------------------------------------------------------------------

    def get_json(self, path: str, params: dict | None = None):
        return json.loads(self._call("GET", path + ("?" + urlencode(params) if params else "")) or b"null")

    def post_json(self, path: str, body):
        return json.loads(self._call("POST", path, json.dumps(body).encode()) or b"null")

    def tasks(self, project: int, page_size: int | None = None) -> Iterator[dict]:
        """Every task of the project, in id order, a page at a time (Label Studio answers 404 past the last page)."""
        size = page_size or PAGE_SIZE
        page, seen = 1, 0
        while True:
            answer = self.get_json("/api/tasks", {"project": project, "page": page, "page_size": size})
            tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
            yield from tasks
            seen += len(tasks)
            total = answer.get("total", seen) if isinstance(answer, dict) else seen
            if not tasks or seen >= total:
                return
            page += 1

    def image_bytes(self, reference: str, task_id: int) -> bytes:
        """A task's image: a Label Studio path (/data/upload/..., /data/local-files/?d=..., a resolved
        cloud URI) or an s3/gs/azure-blob URI with the API key; another host's URL without it."""
        url, authenticated = self._image_url(reference, task_id)
        request = urllib.request.Request(url, headers={"Authorization": self._header()} if authenticated else {})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                data = response.read()
        except urllib.error.HTTPError as error:
            hint = (" (Label Studio serves local files only with LOCAL_FILES_SERVING_ENABLED=true and the folder "
                    "added as the project's Local Storage)" if error.code == 404 and "local-files" in url else "")
            raise LabelStudioError(f"task {task_id}: downloading {url} failed: HTTP {error.code}{hint}") from None
        except (urllib.error.URLError, OSError) as error:
            raise LabelStudioError(f"task {task_id}: cannot download {url}: {error}") from None
        if content_type in _NOT_IMAGES or not data:
            raise LabelStudioError(f"task {task_id}: {url} answered with {content_type or 'nothing'}, not an image")
        return data

    # --- plumbing --------------------------------------------------------------------------------

    def _image_url(self, reference: str, task_id: int) -> tuple[str, bool]:
        reference = str(reference or "").strip()
        if reference.startswith(("http://", "https://")):
            return reference, urlparse(reference).netloc == urlparse(self.url).netloc
        if reference.startswith(("s3:", "gs:", "azure-blob:")):
            fileuri = base64.urlsafe_b64encode(reference.encode()).decode()
            return f"{self.url}/tasks/{task_id}/presign/?fileuri={fileuri}", True
        if reference.startswith("upload/"):
            reference = "/data/" + reference
        if reference.startswith("/"):
            return self.url + reference, True
        raise LabelStudioError(f"task {task_id}: image {reference!r} is not a URL, a Label Studio path or a cloud URI")

    def _call(self, method: str, path: str, body: bytes | None = None, retry: bool = True) -> bytes:
        headers = {"Authorization": self._header(), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            if error.code == 401 and retry and self._kind == "refresh":
                self._access = ""  # expired early: get a new access token once
                return self._call(method, path, body, retry=False)
            detail = error.read()[:500].decode(errors="replace")
            if error.code in (401, 403):
                raise LabelStudioError(f"Label Studio refused the API key ({self._kind} token) for {method} {path}: "
                                       f"HTTP {error.code}; check ${API_KEY_ENV} / --ls-token") from None
            raise LabelStudioError(f"Label Studio: {method} {path}: HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} ({error}); is it running?") from None

    def _header(self) -> str:
        if self._kind == "legacy":
            return f"Token {self._key}"
        if self._kind == "access":
            return f"Bearer {self._key}"
        if not self._access or time.time() > self._access_expires - _EXPIRY_MARGIN_S:
            self._refresh()
        return f"Bearer {self._access}"

    def _refresh(self) -> None:
        request = urllib.request.Request(f"{self.url}/api/token/refresh/", method="POST",
                                         data=json.dumps({"refresh": self._key}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                access = json.loads(response.read()).get("access", "")
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise LabelStudioError(f"Label Studio at {self.url} refused to exchange the personal access token "
                                   f"({error}): it may be revoked or from another Label Studio") from None
        self._access = access
        self._access_expires = float((_jwt_claims(access) or {}).get("exp", time.time() + 60))


def _jwt_claims(token: str) -> dict | None:
    """The unverified claims of a JWT, or None if `token` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None
