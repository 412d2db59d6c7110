"""The ssh_check hook: what the SoT accepts, the ssh command line it runs, how it judges an answer,
and the real ssh client against a port where nothing listens. A login into a real OS is
tests/e2e/test_image_install.py (Debian on a QEMU host's disk)."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError
from requirements import need
from waiting import wait_until

from vaquero.hooks import run_hook, ssh_command, ssh_verdict
from vaquero.sot import load
from vaquero.sot.models import Hook

BASE = {"apiVersion": "vaquero/v1", "kind": "Hook", "name": "ssh-login", "type": "ssh_check"}


def test_the_model_needs_user_and_key_and_refuses_shell_in_names() -> None:
    hook = Hook.model_validate({**BASE, "user": "debian", "ssh_key": "/etc/vaquero/ssh/id_ed25519"})
    assert hook.unit == "ssh.service" and hook.port == 22
    with pytest.raises(ValidationError, match="needs user, ssh_key"):
        Hook.model_validate(BASE)
    for field, value in (("user", "root; reboot"), ("user", "-oProxyCommand=x"), ("ssh_key", "relative/key"), ("unit", "ssh.service; reboot"),
                         ("unit", "$(reboot).service"), ("unit", "-h.service"), ("unit", "ssh")):  # fmt: skip
        with pytest.raises(ValidationError):
            Hook.model_validate({**BASE, "user": "debian", "ssh_key": "/k", field: value})


def test_the_command_line_uses_only_the_given_key_and_a_known_hosts_file_of_its_own(tmp_path: Path) -> None:
    cmd = ssh_command("10.90.0.11", 2222, "debian", "/keys/id_ed25519", tmp_path / "kh", "ssh.service", 7.9)
    assert cmd[1:3] == ["-F", "/dev/null"] and cmd[cmd.index("-i") + 1] == "/keys/id_ed25519" and cmd[cmd.index("-p") + 1] == "2222"
    options = {cmd[i + 1].split("=", 1)[0]: cmd[i + 1].split("=", 1)[1] for i, a in enumerate(cmd) if a == "-o"}
    assert options["BatchMode"] == "yes" and options["IdentitiesOnly"] == "yes" and options["IdentityAgent"] == "none"
    assert options["UserKnownHostsFile"] == str(tmp_path / "kh") and options["GlobalKnownHostsFile"] == "/dev/null"
    assert options["StrictHostKeyChecking"] == "accept-new" and options["ConnectTimeout"] == "7"
    assert cmd[-3:-1] == ["--", "debian@10.90.0.11"] and "systemctl is-active -- ssh.service" in cmd[-1]


def test_the_verdict_names_every_mismatch() -> None:
    good = "hostname=node1\naddresses=10.90.0.11 fe80::1\nunit=active\n"
    ok, text = ssh_verdict(good, "node1", "10.90.0.11", "ssh.service")
    assert ok and text == "ok: hostname node1, SoT name node1; ok: addresses 10.90.0.11 fe80::1, SoT address 10.90.0.11; ok: ssh.service is active", text
    assert ssh_verdict(good.replace("node1", "node1.lab.vaquero.test"), "node1", "10.90.0.11", "ssh.service")[0]
    for answer, expected in (
        (good.replace("hostname=node1", "hostname=localhost"), "MISMATCH: hostname localhost, SoT name node1"),
        (good.replace("10.90.0.11 ", "10.90.0.111 "), "MISMATCH: addresses 10.90.0.111 fe80::1, SoT address 10.90.0.11"),
        (good.replace("unit=active", "unit=failed"), "MISMATCH: ssh.service is failed, expected active"),
        ("", "MISMATCH: hostname (none), SoT name node1"),
    ):
        ok, text = ssh_verdict(answer, "node1", "10.90.0.11", "ssh.service")
        assert not ok and expected in text, text


def _ssh_hook(sot_dir: Path, key: Path, port: int) -> None:
    (sot_dir / "hooks" / "lab-hooks.yaml").write_text(
        textwrap.dedent(f"""\
            apiVersion: vaquero/v1
            kind: Hook
            name: ssh-login
            type: ssh_check
            user: debian
            ssh_key: {key}
            port: {port}
            timeout: 3
            """)
    )
    text = (sot_dir / "clusters" / "lab.yaml").read_text().replace("10.90.0.11", "127.0.0.1")
    (sot_dir / "clusters" / "lab.yaml").write_text(text)


def test_a_missing_key_file_or_no_sshd_fails_and_says_why(lab_sot: Path, tmp_path: Path) -> None:
    need("ssh", "openssh-client")
    need("ssh-keygen", "openssh-client")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _ssh_hook(lab_sot, tmp_path / "no-such-key", port)
    res = run_hook(load(lab_sot, semantic=False), "ssh-login", "node1", "validate")
    assert not res.ok and f"the private key file {tmp_path / 'no-such-key'} does not exist" in res.attempts[0].output

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
    _ssh_hook(lab_sot, key, port)
    res = run_hook(load(lab_sot, semantic=False), "ssh-login", "node1", "validate")
    out = res.attempts[0].output
    assert not res.ok and "no SSH login within 3s" in out and f"debian@127.0.0.1:{port}" in out, out
    assert "PRIVATE KEY" not in out and key.read_text().splitlines()[1] not in out


@pytest.fixture
def dropbear(tmp_path: Path):
    """A real SSH server (dropbear) on a loopback port, with a host key of its own: (port, its public key)."""
    server = need("dropbear", "dropbear-bin")
    keygen = need("dropbearkey", "dropbear-bin")
    key = tmp_path / "dropbear_ed25519"
    subprocess.run([keygen, "-t", "ed25519", "-f", str(key)], check=True, capture_output=True, timeout=60)
    public = next(
        line
        for line in subprocess.run([keygen, "-y", "-f", str(key)], check=True, capture_output=True, text=True, timeout=60).stdout.splitlines()
        if line.startswith("ssh-")
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "-F", "-E", "-R", "-s", "-p", f"127.0.0.1:{port}", "-r", str(key), "-P", str(tmp_path / "dropbear.pid")], stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: _answers(port), timeout=30, what="dropbear's banner")
        yield port, " ".join(public.split()[:2])
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def test_a_host_is_held_to_the_keys_it_reported(lab_sot: Path, tmp_path: Path, dropbear) -> None:
    """With the keys the host reported at its phone home, an ssh_check takes only a server showing one
    of them: another key fails at once (no retry makes another machine the host); the reported key
    gets as far as the login (refused here: the server has no such user), never a host key question."""
    need("ssh", "openssh-client")
    port, public = dropbear
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, capture_output=True)
    stranger = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    _ssh_hook(lab_sot, key, port)
    sot = load(lab_sot, semantic=False)

    res = run_hook(sot, "ssh-login", "node1", "validate", host_keys=[stranger])
    out = res.attempts[0].output
    assert not res.ok and "the host's SSH key is none of the 1 it reported when it phoned home" in out, out
    assert res.attempts[0].rc == 255 and len(res.attempts) == 1

    res = run_hook(sot, "ssh-login", "node1", "validate", host_keys=[stranger, public])
    out = res.attempts[0].output
    assert not res.ok and "Permission denied" in out and "none of the" not in out, out  # the key matched; the login itself was refused

    # Unpinned (no report), the first key is taken: the same login failure, after accept-new.
    res = run_hook(sot, "ssh-login", "node1", "validate")
    assert not res.ok and "Permission denied" in res.attempts[0].output and "none of the" not in res.attempts[0].output
