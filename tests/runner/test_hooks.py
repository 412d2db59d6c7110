"""Hooks backend: each type against a real peer (a subprocess, a local HTTP server, a TCP listener)."""

from __future__ import annotations

import socket
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from waiting import wait_until

from vaquero.hooks import HookError, hooks_for, run_hook
from vaquero.sot import load


def _with_hooks(sot_dir: Path, text: str) -> None:
    (sot_dir / "hooks" / "lab-hooks.yaml").write_text(textwrap.dedent(text))


@pytest.fixture
def http_server():
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if self.path.startswith("/ok") else 503
            body = f'{{"state": "{"installed" if code == 200 else "install"}", "path": "{self.path}"}}'.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_command_hook_renders_host_context_and_keeps_output(lab_sot: Path) -> None:
    sot = load(lab_sot, semantic=False)
    res = run_hook(sot, "announce-drain", "node2", "pre_shutdown")
    assert res.ok and res.attempts[0].output.strip() == "draining node2" and res.attempts[0].rc == 0
    assert hooks_for(sot, "node2", "pre_shutdown") == ["announce-drain"]


def test_command_hook_retries_then_passes(lab_sot: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    _with_hooks(
        lab_sot,
        f"""\
        apiVersion: vaquero/v1
        kind: Hook
        name: announce-drain
        type: command
        command: "test -e {flag} || {{ touch {flag}; echo first try fails; exit 3; }}"
        retries: 2
        delay: 0
        timeout: 60
        ---
        apiVersion: vaquero/v1
        kind: Hook
        name: agent-saw-callback
        type: command
        command: "sleep 5"
        timeout: 1
        """,
    )
    sot = load(lab_sot, semantic=False)
    res = run_hook(sot, "announce-drain", "node1", "pre_shutdown")
    assert res.ok and [a.ok for a in res.attempts] == [False, True]
    assert res.attempts[0].rc == 3 and "first try fails" in res.attempts[0].output
    slow = run_hook(sot, "agent-saw-callback", "node1", "validate")
    assert not slow.ok and "timed out after 1s" in slow.attempts[0].output and len(slow.attempts) == 1


def test_http_check_status_and_body(lab_sot: Path, http_server: str) -> None:
    _with_hooks(
        lab_sot,
        f"""\
        apiVersion: vaquero/v1
        kind: Hook
        name: announce-drain
        type: http_check
        url: "{http_server}/ok/{{{{ host.name }}}}"
        body: '"installed"'
        ---
        apiVersion: vaquero/v1
        kind: Hook
        name: agent-saw-callback
        type: http_check
        url: "{http_server}/down"
        retries: 1
        delay: 0
        timeout: 2
        """,
    )
    sot = load(lab_sot, semantic=False)
    ok = run_hook(sot, "announce-drain", "node3", "validate")
    assert ok.ok and "/ok/node3" in ok.attempts[0].output
    bad = run_hook(sot, "agent-saw-callback", "node3", "validate")
    assert not bad.ok and len(bad.attempts) == 2 and "status 503, expected 200" in bad.attempts[-1].output


def test_wait_for_ssh_needs_a_banner(lab_sot: Path) -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    port = lst.getsockname()[1]

    def serve() -> None:
        conn, _ = lst.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("10.90.0.11", "127.0.0.1")
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    _with_hooks(
        lab_sot,
        f"""\
        apiVersion: vaquero/v1
        kind: Hook
        name: announce-drain
        type: wait_for_ssh
        port: {port}
        timeout: 5
        ---
        apiVersion: vaquero/v1
        kind: Hook
        name: agent-saw-callback
        type: kubernetes_drain
        timeout: 5
        """,
    )
    sot = load(lab_sot, semantic=False)
    res = run_hook(sot, "announce-drain", "node1", "validate")
    assert res.ok and "SSH-2.0" in res.attempts[0].output
    drain = run_hook(sot, "agent-saw-callback", "node1", "pre_shutdown")
    # No cluster here: with or without kubectl installed, the drain fails and says why.
    assert not drain.ok and drain.attempts[0].output.strip()


def test_unknown_hook_and_file_outside_the_sot(lab_sot: Path) -> None:
    sot = load(lab_sot, semantic=False)
    with pytest.raises(HookError):
        run_hook(sot, "nope", "node1", "validate")
    _with_hooks(
        lab_sot,
        """\
        apiVersion: vaquero/v1
        kind: Hook
        name: announce-drain
        type: tasks
        file: ../../etc/passwd
        ---
        apiVersion: vaquero/v1
        kind: Hook
        name: agent-saw-callback
        type: command
        command: "true"
        """,
    )
    sot = load(lab_sot, semantic=False)
    with pytest.raises(HookError, match="outside the SoT"):
        run_hook(sot, "announce-drain", "node1", "pre_shutdown")


def _running(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def test_a_command_hook_that_times_out_leaves_no_process_behind(lab_sot: Path) -> None:
    """The timeout ends what the hook's shell started too (a background job and the job it waits
    on), not only the shell: before, both sleeps ran on after the hook had failed."""
    marker = f"31{threading.get_ident() % 10000:04d}.5"  # an unusual sleep length names our processes
    _with_hooks(
        lab_sot,
        f"""\
        apiVersion: vaquero/v1
        kind: Hook
        name: agent-saw-callback
        type: command
        command: "sleep {marker} & sleep {marker}; echo never"
        timeout: 1
        """,
    )
    sot = load(lab_sot, semantic=False)
    res = run_hook(sot, "agent-saw-callback", "node1", "validate")
    assert not res.ok and "timed out after 1s" in res.attempts[0].output and "never" not in res.attempts[0].output
    wait_until(lambda: not _running(f"sleep {marker}"), timeout=30, what="the hook's sleeps to be gone")
