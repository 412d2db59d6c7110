"""A real HTTP server on loopback that serves an ISO only with the right ``?token=``, as the agent does,
and records what it was asked for (sushy-emulator downloads an image when it is inserted)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TOKEN = "vm-Token-0123456789abcdefXYZ"  # tests grep logs and results for this string


class ImageServer:
    def __init__(self, image: Path, token: str = TOKEN) -> None:
        self.image = image
        self.token = token
        self.requests: list[tuple[str, int]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                given = parse_qs(parts.query).get("token", [None])[0]
                ok = parts.path == f"/v1/boot/iso/{outer.image.name}" and given == outer.token
                data = outer.image.read_bytes() if ok else b"not found\n"
                code = 200 if ok else 404
                outer.requests.append((parts.path, code))
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream" if ok else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, token: str | None = None, name: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/v1/boot/iso/{name or self.image.name}?token={token or self.token}"

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
