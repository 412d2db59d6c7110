"""Module fixes of issue 13 (point 8) for the modules that render files or talk to the site agent:
dhcp_config modes through Ansible's file-attribute code, boot_mode read-before/read-after,
wait_callback check mode, hook check mode predicting the real run. Real ansible-playbook, a real
`vaquero agent` process on loopback."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB = REPO / "inventories" / "lab"
AGENT_TOKEN = "agent-admin-token-3b9e71c0d2f4a8"


def playbook(tmp: Path, tasks_yaml: str, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, dict], str]:
    """Run tasks written as YAML text (so `mode: 0644` stays unquoted, as a user writes it) on
    localhost; every task registers r_<name> and all results are saved as JSON."""
    names = [line.split("name:", 1)[1].strip() for line in tasks_yaml.splitlines() if line.startswith("- name:")]
    out = tmp / "results.json"
    collect = "{{ {" + ", ".join(f"'{n}': r_{n} | default({{}})" for n in names) + "} | to_json }}"
    body = textwrap.indent(tasks_yaml, "    ")
    pb = tmp / "play.yml"
    pb.write_text(
        f"- name: t\n  hosts: localhost\n  gather_facts: false\n  tasks:\n{body}\n"
        f"    - name: collect\n      check_mode: false\n      ansible.builtin.copy:\n"
        f"        content: \"{collect}\"\n        dest: {out}\n        mode: '0600'\n"
    )
    full_env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        **(env or {}),
    }
    if out.exists():
        out.unlink()
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", str(pb), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=tmp, timeout=600)
    text = proc.stdout + proc.stderr
    assert out.exists(), text[-4000:]
    return json.loads(out.read_text()), text


class Raw(str):
    """A value written into the YAML as it is: Raw("0644") is the unquoted literal a user types."""


def task(name: str, module: str, args: dict, **extra: object) -> str:
    """One task as YAML text; Raw values verbatim, the others JSON-quoted."""
    lines = [f"- name: {name}", "  ignore_errors: true", f"  register: r_{name}"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in extra.items()]
    lines.append(f"  vaquero.metal.{module}:")
    lines += [f"    {k}: {v if isinstance(v, Raw) else json.dumps(v)}" for k, v in args.items()]
    return "\n".join(lines) + "\n"


def perms(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- dhcp_config ---------------------------------------------------------------------------------


def test_dhcp_config_unquoted_mode_is_octal_with_diff_and_check(tmp_path):
    dest, hosts = tmp_path / "dnsmasq.conf", tmp_path / "dnsmasq.hosts"
    base = {"sot": str(LAB), "dest": str(dest), "hosts_file": str(hosts)}

    # `mode: 0640` unquoted: YAML gives the int 416, which is 0o640 (the old code wrote 0o640 -> 0o1200 / 0644 -> 420)
    r, _ = playbook(tmp_path, task("first", "dhcp_config", {**base, "mode": Raw("0640")}))
    assert not r["first"].get("failed"), r["first"].get("msg")
    assert r["first"]["changed"] and perms(dest) == 0o640 and perms(hosts) == 0o640
    assert r["first"]["mode"] == "0640"  # Ansible's own report of the file

    r, _ = playbook(tmp_path, task("check", "dhcp_config", {**base, "mode": Raw("0644")}), "--check", "--diff")
    assert r["check"]["changed"] and perms(dest) == 0o640  # predicted, not done
    modes = [d for d in r["check"]["diff"] if isinstance(d.get("before"), dict)]
    assert {(d["before"]["mode"], d["after"]["mode"]) for d in modes} == {("0640", "0644")} and len(modes) == 2

    r, _ = playbook(tmp_path, task("mode", "dhcp_config", {**base, "mode": Raw("0644")}), "--diff")
    assert r["mode"]["changed"] and perms(dest) == 0o644 and perms(hosts) == 0o644
    assert all(isinstance(d.get("before"), dict) for d in r["mode"]["diff"])  # the bytes did not change, only the mode

    r, _ = playbook(tmp_path, task("again", "dhcp_config", {**base, "mode": Raw("0644")}) + task("quoted", "dhcp_config", {**base, "mode": Raw("'0644'")}))
    assert not r["again"]["changed"] and not r["quoted"]["changed"]

    r, _ = playbook(tmp_path, task("symbolic", "dhcp_config", {**base, "mode": "u=rw,g=,o="}))
    assert r["symbolic"]["changed"] and perms(dest) == 0o600 and perms(hosts) == 0o600

    before = dest.read_bytes()
    r, _ = playbook(tmp_path, task("bad", "dhcp_config", {**base, "dest": str(tmp_path / "new.conf"), "mode": Raw("'rwx'")}))
    assert r["bad"]["failed"] and "mode must be octal" in r["bad"]["msg"]
    assert not (tmp_path / "new.conf").exists() and dest.read_bytes() == before


def test_dhcp_config_new_file_default_mode_and_existing_mode_kept(tmp_path):
    dest = tmp_path / "kea.json"
    args = {"sot": str(LAB), "flavor": "kea", "interface": "lo", "dest": str(dest)}
    r, _ = playbook(tmp_path, task("new", "dhcp_config", args))
    assert r["new"]["changed"] and perms(dest) == 0o644
    os.chmod(dest, 0o600)
    r, _ = playbook(tmp_path, task("kept", "dhcp_config", args))
    assert not r["kept"]["changed"] and perms(dest) == 0o600  # no mode given: the file keeps the one it has


# --- a real site agent ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Agent:
    url: str
    state_dir: Path
    proc: subprocess.Popen

    def status(self, host: str) -> dict:
        with urllib.request.urlopen(f"{self.url}/v1/boot/status/{host}", timeout=10) as r:
            return json.loads(r.read())

    def callback(self, host: str) -> None:
        """The installer's callback, with the install token the agent minted (read from its state file)."""
        token = json.loads((self.state_dir / "boot-states.json").read_text())["hosts"][host]["token"]
        req = urllib.request.Request(f"{self.url}/v1/boot/callback/{host}?token={token}", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200


@pytest.fixture
def agent(tmp_path) -> Iterator[Agent]:
    port = free_port()
    state = tmp_path / "agent-state"
    (tmp_path / "assets").mkdir()
    cmd = [sys.executable, "-m", "vaquero.agent", "--sot", str(LAB), "--listen", "127.0.0.1", "--http-port", str(port), "--tftp-port", "0"]
    cmd += ["--no-dhcp", "--no-fetch-assets", "--asset-root", str(tmp_path / "assets"), "--state-dir", str(state)]
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VAQUERO_AGENT_TOKEN": AGENT_TOKEN})
    a = Agent(f"http://127.0.0.1:{port}", state, proc)
    try:
        wait_until(lambda: a.status("node1"), timeout=60, what="the vaquero agent")
        yield a
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_boot_mode_changed_only_when_it_changed(tmp_path, agent):
    base = {"host": "node1", "sot": str(LAB), "url": agent.url}
    env = {"VAQUERO_AGENT_TOKEN": AGENT_TOKEN}
    tasks = task("check_install", "boot_mode", {**base, "mode": "install"}, check_mode=True)
    r, _ = playbook(tmp_path, tasks, "--diff", env=env)
    assert r["check_install"]["changed"] and r["check_install"]["previous_mode"] == "localboot"
    assert r["check_install"]["diff"]["before"]["mode"] == "localboot" and r["check_install"]["diff"]["after"]["mode"] == "install"
    assert agent.status("node1")["state"] == "none"  # check mode asked nothing of the agent

    tasks = (
        task("install", "boot_mode", {**base, "mode": "install"})
        + task("install_again", "boot_mode", {**base, "mode": "install"})
        + task("check_again", "boot_mode", {**base, "mode": "install"}, check_mode=True)
        + task("rearm", "boot_mode", {**base, "mode": "install", "rearm": True})
        + task("localboot", "boot_mode", {**base, "mode": "localboot"})
        + task("localboot_again", "boot_mode", {**base, "mode": "localboot"})
        + task("rearm_localboot", "boot_mode", {**base, "mode": "localboot", "rearm": True})
        + task("bad_host", "boot_mode", {**base, "host": "../node1", "mode": "install"})
    )
    r, out = playbook(tmp_path, tasks, env=env)
    assert r["install"]["changed"] and r["install"]["status"]["state"] == "install" and r["install"]["status"]["attempt"] == 1
    assert not r["install_again"]["changed"] and r["install_again"]["status"]["attempt"] == 1
    assert not r["check_again"]["changed"]  # the check-mode answer is the real one
    assert r["rearm"]["changed"] and r["rearm"]["status"]["attempt"] == 2
    assert r["localboot"]["changed"] and r["localboot"]["status"]["script"] == "localboot" and r["localboot"]["previous_mode"] == "install"
    assert not r["localboot_again"]["changed"]
    assert r["rearm_localboot"]["failed"] and "rearm is for mode=install" in r["rearm_localboot"]["msg"]
    assert r["bad_host"]["failed"] and "SoT host name" in r["bad_host"]["msg"]
    st = agent.status("node1")
    assert st["state"] == "none" and st["attempt"] == 2
    assert AGENT_TOKEN not in out


def test_boot_mode_without_the_admin_token_fails_and_changes_nothing(tmp_path, agent):
    args = {"host": "node2", "sot": str(LAB), "url": agent.url, "mode": "install"}
    r, _ = playbook(tmp_path, task("install", "boot_mode", args), env={"VAQUERO_AGENT_TOKEN": ""})
    assert r["install"]["failed"] and "HTTP 401" in r["install"]["msg"]
    assert agent.status("node2")["state"] == "none"


def test_wait_callback_check_mode_looks_once_and_bounds_are_refused(tmp_path, agent):
    base = {"host": "node3", "sot": str(LAB), "url": f"{agent.url}/v1/boot/status/node3"}
    tasks = (
        task("check_none", "wait_callback", {**base, "timeout": 3600}, check_mode=True)
        + task("zero_timeout", "wait_callback", {**base, "timeout": 0})
        + task("negative_timeout", "wait_callback", {**base, "timeout": -5})
        + task("zero_interval", "wait_callback", {**base, "interval": 0})
        + task("negative_since", "wait_callback", {**base, "since": -1})
    )
    r, _ = playbook(tmp_path, tasks)
    # check mode answers at once instead of waiting the hour for a callback that cannot come
    assert not r["check_none"].get("failed") and r["check_none"]["called_back"] is False and not r["check_none"]["changed"]
    assert r["zero_timeout"]["failed"] and "timeout must be between 1 and" in r["zero_timeout"]["msg"]
    assert r["negative_timeout"]["failed"] and "timeout must be between 1 and" in r["negative_timeout"]["msg"]
    assert r["zero_interval"]["failed"] and "interval must be more than 0" in r["zero_interval"]["msg"]
    assert r["negative_since"]["failed"] and "since must be" in r["negative_since"]["msg"]

    req = urllib.request.Request(f"{agent.url}/v1/boot/install/node3", data=b"", method="POST", headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
    urllib.request.urlopen(req, timeout=10).close()
    agent.callback("node3")
    tasks = task("check_done", "wait_callback", base, check_mode=True) + task("real", "wait_callback", {**base, "timeout": 60})
    r, _ = playbook(tmp_path, tasks)
    assert r["check_done"]["called_back"] is True and r["check_done"]["callback"]["state"] == "installed"
    assert r["real"]["called_back"] is True and r["real"]["callback"] == r["check_done"]["callback"] and not r["real"]["changed"]

    r, _ = playbook(tmp_path, task("unreachable", "wait_callback", {**base, "url": f"http://127.0.0.1:{free_port()}/v1/boot/status/node3"}, check_mode=True))
    assert r["unreachable"]["failed"] and "unreachable" in r["unreachable"]["msg"]  # check mode does not pretend


def test_wait_callback_gives_the_reported_host_keys_as_known_hosts_for_an_ip_only(tmp_path):
    """The phone home's ssh_host_keys come back checked, and as known_hosts lines for the address and
    port SSH will use (vaquero.hostkeys); a name instead of an IP, or a key that is not one, fails."""
    keys = []
    for kind in ("ed25519", "ecdsa"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@node3", "-f", str(tmp_path / kind)], check=True, capture_output=True)
        keys.append((tmp_path / f"{kind}.pub").read_text().strip())
    doc = {"host": "node3", "state": "installed", "phoned_home_at": 1000.0, "report": {"phone_home": {"event": "booted", "ssh_host_keys": keys}}}

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = {"host": "node3", "sot": str(LAB), "url": f"http://127.0.0.1:{srv.server_port}/v1/boot/status/node3", "wait_for": "phone_home", "timeout": 5}
        tasks = (
            task("port22", "wait_callback", {**base, "ssh_address": "10.90.0.13"})
            + task("port2222", "wait_callback", {**base, "ssh_address": "10.90.0.13", "ssh_port": 2222})
            + task("a_name", "wait_callback", {**base, "ssh_address": "node3.example"})
        )
        r, _ = playbook(tmp_path, tasks)
        wanted = sorted(" ".join(k.split()[:2]) for k in keys)
        assert r["port22"]["ssh_host_keys"] == wanted and r["port22"]["known_hosts"] == "".join(f"10.90.0.13 {k}\n" for k in wanted)
        assert r["port2222"]["known_hosts"] == "".join(f"[10.90.0.13]:2222 {k}\n" for k in wanted)
        assert r["a_name"]["failed"] and r["a_name"]["called_back"] and "no known_hosts for SSH at 'node3.example'" in r["a_name"]["msg"]
        doc["report"]["phone_home"]["ssh_host_keys"] = [keys[0].replace("ssh-ed25519", "ecdsa-sha2-nistp256")]
        r, _ = playbook(tmp_path, task("forged", "wait_callback", {**base, "ssh_address": "10.90.0.13"}))
        assert r["forged"]["failed"] and "unusable SSH host keys" in r["forged"]["msg"] and "known_hosts" not in r["forged"]
    finally:
        srv.shutdown()


# --- hook ----------------------------------------------------------------------------------------


def test_hook_check_mode_predicts_the_real_run(tmp_path, agent):
    sot = tmp_path / "sot"
    shutil.copytree(LAB, sot)
    (sot / "tasks").mkdir()
    (sot / "tasks" / "mark.yml").write_text("---\n- name: Mark\n  ansible.builtin.debug:\n    msg: marked\n")
    hooks = sot / "hooks" / "lab-hooks.yaml"
    hooks.write_text(
        hooks.read_text()
        + "\n---\n"
        + textwrap.dedent(
            f"""\
            apiVersion: vaquero/v1
            kind: Hook
            name: touch
            type: command
            command: "echo ran >> ran.txt"
            timeout: 30
            ---
            apiVersion: vaquero/v1
            kind: Hook
            name: look
            type: http_check
            url: "{agent.url}/v1/boot/status/{{{{ host.name }}}}"
            status: 200
            timeout: 10
            ---
            apiVersion: vaquero/v1
            kind: Hook
            name: mark
            type: tasks
            file: tasks/mark.yml
            """
        )
    )
    tasks = ""
    for name in ("touch", "look", "mark", "nosuch"):
        args = {"name": name, "host": "node1", "phase": "validate", "sot": str(sot)}
        tasks += task(f"check_{name}", "hook", args, check_mode=True) + task(f"real_{name}", "hook", args)
    r, _ = playbook(tmp_path, tasks)
    for name in ("touch", "look", "mark"):
        check, real = r[f"check_{name}"], r[f"real_{name}"]
        assert not check.get("failed") and not real.get("failed"), (name, check.get("msg"), real.get("msg"))
        assert check["changed"] == real["changed"], name
        assert check["vaquero_hook"]["type"] == real["vaquero_hook"]["type"]
        assert check["include"] == real["include"], name
    assert r["real_touch"]["changed"] and not r["real_look"]["changed"] and not r["real_mark"]["changed"]
    assert r["check_touch"]["vaquero_hook"]["attempts"] == [] and r["real_touch"]["vaquero_hook"]["attempts"][0]["ok"]
    assert (sot / "ran.txt").read_text() == "ran\n"  # once: the real run, not the check
    assert r["check_mark"]["include"] == str((sot / "tasks" / "mark.yml").resolve())
    assert r["check_nosuch"]["failed"] and r["real_nosuch"]["failed"]
    assert r["check_nosuch"]["msg"] == r["real_nosuch"]["msg"]
