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


# --- a real `vaquero agent` serving the lab SoT with one virtual_media host ---------------------

REPO = Path(__file__).resolve().parents[2]


def vmedia_sot(tmp: Path, bmc_port: int, host: str = "node1", ca_file: Path | None = None) -> Path:
    """A copy of the lab SoT where ``host`` boots by virtual media through a Redfish BMC on loopback."""
    import shutil

    import yaml

    dest = tmp / "sot"
    shutil.copytree(REPO / "inventories" / "lab", dest)
    cluster_file = dest / "clusters" / "lab.yaml"
    cluster = yaml.safe_load(cluster_file.read_text())
    for h in cluster["hosts"]:
        if h["name"] == host:
            h["boot"] = {"method": "virtual_media"}
            h["bmc"] = {"type": "redfish", "address": "127.0.0.1", "port": bmc_port, "credential": "lab-bmc"}
            if ca_file is not None:
                h["bmc"]["ca_file"] = str(ca_file)
    cluster_file.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return dest


class VmediaAgent:
    """`python -m vaquero.agent` on 127.0.0.1 with no DHCP and no TFTP, ``host`` armed for install."""

    def __init__(self, tmp: Path, sot: Path, host: str = "node1") -> None:
        import json
        import os
        import socket
        import subprocess
        import sys

        from waiting import wait_until

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.state_dir = tmp / "agent-state"
        self.log = tmp / "agent.log"
        self.base = f"http://127.0.0.1:{self.port}"
        (tmp / "assets").mkdir(exist_ok=True)
        cmd = [
            sys.executable, "-m", "vaquero.agent", "--sot", str(sot), "--listen", "127.0.0.1", "--http-port", str(self.port),
            "--tftp-port", "0", "--no-dhcp", "--no-fetch-assets", "--asset-root", str(tmp / "assets"), "--state-dir", str(self.state_dir),
            "--base-url", self.base, "--install", host,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited; its log:\n{self.log.read_text(errors='replace')[-3000:]}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        wait_until(up, timeout=60, what="the agent")
        self.host = host
        self.token = json.loads((self.state_dir / "boot-states.json").read_text())["hosts"][host]["token"]  # the install token
        self.admin_token = (self.state_dir / "admin-token").read_text().strip()

    def iso_url(self, host: str | None = None, token: str | None = None) -> str:
        """The boot ISO URL the agent hands out (admin API); ``token`` replaces its ISO token."""
        from vaquero.callback import boot_iso_url

        url = boot_iso_url(self.base, self.host, self.admin_token)
        if host is not None:
            url = url.replace(f"/iso/{self.host}.iso", f"/iso/{host}.iso")
        if token is not None:
            url = url.split("?token=")[0] + f"?token={token}"
        return url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)
