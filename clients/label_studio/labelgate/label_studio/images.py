"""Downloading a task's image from what Label Studio puts in the task data:

| task data                              | fetched from                                            |
|----------------------------------------|---------------------------------------------------------|
| /data/upload/3/ab12-photo.jpg          | LABEL_STUDIO_URL + path, with the API key (uploads)     |
| /data/local-files/?d=photos/1.jpg      | LABEL_STUDIO_URL + path, with the API key (local storage)|
| s3://, gs://, azure-blob:// URIs       | LABEL_STUDIO_URL/tasks/<id>/presign/?fileuri=<base64>   |
| http(s)://host/photo.jpg               | the URL; the API key only goes to LABEL_STUDIO_URL's host|

Every failure raises ImageFetchError with a message that says what to change.
"""

from __future__ import annotations

import base64
from urllib.parse import urlparse

import requests

from labelgate.label_studio.auth import LabelStudioAuth, LabelStudioAuthError

_CLOUD_SCHEMES = ("s3:", "gs:", "azure-blob:")
_NOT_IMAGES = ("text/html", "application/json")  # a login page or an API error


class ImageFetchError(RuntimeError):
    pass


class ImageFetcher:
    def __init__(self, label_studio_url: str = "", api_key: str = "", timeout: float = 30.0):
        self.label_studio_url = label_studio_url.rstrip("/")
        self._session = requests.Session()
        self._timeout = timeout
        self._auth = LabelStudioAuth(self.label_studio_url, api_key, self._session, timeout) if api_key else None

    def fetch(self, reference: str, task_id: int | None = None) -> bytes:
        url, authenticated = self.resolve(reference, task_id)
        response = self._get(url, authenticated)
        if response.status_code == 401 and authenticated and self._auth is not None:
            self._auth.forget_access_token()
            response = self._get(url, authenticated)
        self._check(response, reference, url, authenticated)
        return response.content

    def resolve(self, reference: str, task_id: int | None = None) -> tuple[str, bool]:
        """(URL to download, whether it goes to Label Studio with the API key)."""
        reference = str(reference).strip()
        if not reference:
            raise ImageFetchError(f"task {task_id}: the image field is empty")
        if reference.startswith(("http://", "https://")):
            ls_host = urlparse(self.label_studio_url).netloc
            return reference, bool(ls_host) and urlparse(reference).netloc == ls_host
        if reference.startswith(_CLOUD_SCHEMES):
            if task_id is None:
                raise ImageFetchError(f"{reference}: cloud storage images need the task id to be presigned")
            fileuri = base64.urlsafe_b64encode(reference.encode()).decode()
            return self._in_label_studio(f"/tasks/{task_id}/presign/?fileuri={fileuri}", reference), True
        if reference.startswith("upload/"):
            reference = "/data/" + reference
        if reference.startswith("/"):
            return self._in_label_studio(reference, reference), True
        raise ImageFetchError(f"task {task_id}: cannot fetch image {reference!r}: expected an http(s) URL, a Label "
                              "Studio path (/data/upload/..., /data/local-files/?d=...) or an s3/gs/azure-blob URI")

    def _in_label_studio(self, path: str, reference: str) -> str:
        if not self.label_studio_url:
            raise ImageFetchError(
                f"image {reference!r} is stored in Label Studio: set LABEL_STUDIO_URL (e.g. http://localhost:8080) and "
                "LABEL_STUDIO_API_KEY so this backend can download it")
        if self._auth is None:
            raise ImageFetchError(
                f"image {reference!r} is stored in Label Studio, which needs an API key to hand it out: set "
                "LABEL_STUDIO_API_KEY (Account & Settings -> Personal Access Token)")
        return self.label_studio_url + path

    def _get(self, url: str, authenticated: bool) -> requests.Response:
        try:
            headers = {"Authorization": self._auth.header()} if authenticated and self._auth else {}
            return self._session.get(url, headers=headers, timeout=self._timeout)
        except LabelStudioAuthError as error:
            raise ImageFetchError(str(error)) from None
        except requests.RequestException as error:
            raise ImageFetchError(f"cannot download {url}: {error}") from None

    def _check(self, response: requests.Response, reference: str, url: str, authenticated: bool) -> None:
        status = response.status_code
        if status in (401, 403) and authenticated:
            kind = self._auth.kind if self._auth else "none"
            hint = (" Legacy tokens only work where the organization enables them; a personal access token "
                    "works everywhere." if kind == "legacy" else "")
            raise ImageFetchError(f"Label Studio refused LABEL_STUDIO_API_KEY ({kind} token) for {url} (HTTP {status}).{hint}")
        if status == 404:
            hint = (" For local storage, start Label Studio with LOCAL_FILES_SERVING_ENABLED=true and "
                    "LOCAL_FILES_DOCUMENT_ROOT set, and add the folder as Local Storage of the project."
                    if "local-files" in reference else "")
            raise ImageFetchError(f"image {reference!r} not found at {url} (HTTP 404).{hint}")
        if status >= 400:
            raise ImageFetchError(f"downloading image {reference!r} from {url} failed: HTTP {status}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in _NOT_IMAGES:
            raise ImageFetchError(f"{url} answered with {content_type}, not an image or video (a login page? check "
                                  "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
        if not response.content:
            raise ImageFetchError(f"{url} answered with an empty body")
