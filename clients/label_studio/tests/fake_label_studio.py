"""A stand-in for the few Label Studio endpoints the image fetcher calls, on a loopback port. It
records each request's Authorization header and accepts only the tokens the test configured."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"


def jwt(claims: dict) -> str:
    encode = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{encode({'alg': 'HS256', 'typ': 'JWT'})}.{encode(claims)}.signature"


REFRESH_TOKEN = jwt({"token_type": "refresh", "exp": time.time() + 3600, "user_id": "1"})
LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"


class FakeLabelStudio:
    def __init__(self):
        self.seen: list[tuple[str, str]] = []  # (path, Authorization)
        self.refreshes = 0
        self.accepted = {f"Token {LEGACY_TOKEN}"}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/token/refresh/" and body.get("refresh") == REFRESH_TOKEN:
                    fake.refreshes += 1
                    access = jwt({"token_type": "access", "exp": time.time() + 300, "n": fake.refreshes})
                    fake.accepted.add(f"Bearer {access}")
                    return self._send(200, json.dumps({"access": access}).encode(), "application/json")
                self._send(401, b'{"detail": "token_not_valid"}', "application/json")

            def do_GET(self):
                authorization = self.headers.get("Authorization", "")
                fake.seen.append((self.path, authorization))
                if self.path.startswith("/public/"):
                    return self._send(200, PNG, "image/png")
                if self.path == "/login-page.png":
                    return self._send(200, b"<html>login</html>", "text/html; charset=utf-8")
                if authorization not in fake.accepted:
                    return self._send(401, b'{"detail": "no"}', "application/json")
                if "missing" in self.path:
                    return self._send(404, b"not found", "text/plain")
                self._send(200, PNG, "image/png")

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
