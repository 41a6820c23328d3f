"""Downloading task images: which URL, which Authorization header, and what the errors say."""

import base64

import pytest

from fake_label_studio import LEGACY_TOKEN, PNG, REFRESH_TOKEN, jwt
from labelgate.label_studio.auth import LabelStudioAuth, jwt_claims
from labelgate.label_studio.images import ImageFetchError, ImageFetcher


def test_jwt_claims_are_read_without_a_signature_check_and_legacy_tokens_are_not_jwts():
    assert jwt_claims(REFRESH_TOKEN)["token_type"] == "refresh"
    assert jwt_claims(LEGACY_TOKEN) is None
    assert jwt_claims("a.b.c") is None


@pytest.mark.parametrize("key, kind", [(LEGACY_TOKEN, "legacy"), (REFRESH_TOKEN, "refresh"),
                                       (jwt({"token_type": "access", "exp": 1}), "access")])
def test_the_kind_of_key_decides_the_header(key, kind):
    assert LabelStudioAuth("http://ls", key, session=None).kind == kind


def test_uploads_and_local_files_go_to_label_studio_with_a_legacy_token(fake_label_studio):
    fetcher = ImageFetcher(fake_label_studio.url, LEGACY_TOKEN)
    assert fetcher.fetch("/data/upload/3/photo.png", 7) == PNG
    assert fetcher.fetch("/data/local-files/?d=photos/a.png", 8) == PNG
    assert fetcher.fetch("upload/3/photo.png") == PNG  # an upload key as exports write it
    assert fake_label_studio.seen == [
        ("/data/upload/3/photo.png", f"Token {LEGACY_TOKEN}"),
        ("/data/local-files/?d=photos/a.png", f"Token {LEGACY_TOKEN}"),
        ("/data/upload/3/photo.png", f"Token {LEGACY_TOKEN}"),
    ]


def test_a_personal_access_token_is_exchanged_once_for_a_bearer_access_token(fake_label_studio):
    fetcher = ImageFetcher(fake_label_studio.url, REFRESH_TOKEN)
    for _ in range(3):
        assert fetcher.fetch("/data/upload/1/a.png") == PNG
    assert fake_label_studio.refreshes == 1
    headers = {authorization for _, authorization in fake_label_studio.seen}
    assert len(headers) == 1 and headers.pop().startswith("Bearer ")


def test_a_rejected_access_token_is_renewed_once(fake_label_studio):
    fetcher = ImageFetcher(fake_label_studio.url, REFRESH_TOKEN)
    fetcher.fetch("/data/upload/1/a.png")
    fake_label_studio.accepted = {a for a in fake_label_studio.accepted if not a.startswith("Bearer")}  # "revoked"
    assert fetcher.fetch("/data/upload/1/a.png") == PNG
    assert fake_label_studio.refreshes == 2


def test_the_api_key_only_goes_to_label_studio(fake_label_studio):
    fetcher = ImageFetcher("http://label-studio.example:8080", LEGACY_TOKEN)
    assert fetcher.fetch(fake_label_studio.url + "/public/a.png") == PNG
    assert fake_label_studio.seen == [("/public/a.png", "")]
    same_host = ImageFetcher(fake_label_studio.url, LEGACY_TOKEN)
    assert same_host.resolve(fake_label_studio.url + "/data/upload/1/a.png") == (fake_label_studio.url + "/data/upload/1/a.png", True)


def test_cloud_storage_uris_are_presigned_through_the_task():
    url, authenticated = ImageFetcher("http://ls:8080", LEGACY_TOKEN).resolve("s3://bucket/a b.png", task_id=12)
    fileuri = base64.urlsafe_b64encode(b"s3://bucket/a b.png").decode()
    assert (url, authenticated) == (f"http://ls:8080/tasks/12/presign/?fileuri={fileuri}", True)


@pytest.mark.parametrize("url, key, reference, message", [
    ("", LEGACY_TOKEN, "/data/upload/1/a.png", "set LABEL_STUDIO_URL"),
    ("LS", "", "/data/upload/1/a.png", "set LABEL_STUDIO_API_KEY"),
    ("LS", "wrong-token", "/data/upload/1/a.png", r"refused LABEL_STUDIO_API_KEY \(legacy token\).*HTTP 401"),
    ("LS", LEGACY_TOKEN, "/data/local-files/?d=missing.png", "HTTP 404.*LOCAL_FILES_SERVING_ENABLED"),
    ("LS", LEGACY_TOKEN, "LS/login-page.png", "text/html, not an image"),
    ("LS", LEGACY_TOKEN, "ftp://host/a.png", "expected an http"),
    ("LS", LEGACY_TOKEN, "", "empty"),
    ("LS", LEGACY_TOKEN, "gs://bucket/a.png", "task id"),
    ("http://127.0.0.1:9", LEGACY_TOKEN, "/data/upload/1/a.png", "cannot download"),
])
def test_failures_say_what_to_fix(fake_label_studio, url, key, reference, message):
    url = url.replace("LS", fake_label_studio.url)
    with pytest.raises(ImageFetchError, match=message):
        ImageFetcher(url, key).fetch(reference.replace("LS", fake_label_studio.url))


def test_a_refused_personal_access_token_says_so(fake_label_studio):
    revoked = jwt({"token_type": "refresh", "exp": 9999999999})
    with pytest.raises(ImageFetchError, match="refused the personal access token"):
        ImageFetcher(fake_label_studio.url, revoked).fetch("/data/upload/1/a.png")
