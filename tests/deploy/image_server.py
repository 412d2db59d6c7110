"""A plain HTTP server for deploy tests, run inside the lab namespace: `python image_server.py DIR ADDR PORT`.

GET /<file> serves DIR/<file>. GET /cut/<file> announces the whole length, sends half of the
bytes and closes the connection (a download cut short). This is not the agent on purpose: the
agent refuses to keep an asset whose sha256 does not match, so a wrong image must come from elsewhere.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        cut = self.path.startswith("/cut/")
        name = self.path.removeprefix("/cut/").lstrip("/")
        path = ROOT / name
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        self.wfile.flush()
        self.close_connection = True


ThreadingHTTPServer((sys.argv[2], int(sys.argv[3])), Handler).serve_forever()
