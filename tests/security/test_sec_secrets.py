"""Issue 10 item 15: secret hygiene, against real processes.

A `vaquero standalone` (controller + agent + dnsmasq, in a network namespace this test creates)
holds an API token, a webhook secret, an agent token, the BMC password the SoT names, and two
variables of its operator's (``MY_DB_PASSWORD``, and ``DATABASE_URL`` whose name does not even
look secret). It applies a plan through ansible-runner against an emulated IPMI BMC. While the
playbook waits for the install callback, every descendant process (dnsmasq, ansible-playbook, the
module it runs) has its ``/proc/<pid>/environ`` read; then the API's answers, the process's log,
the run artifacts and the SQLite store are grepped for every secret value. The controller is then
killed with SIGKILL: its secrets folder survives that, and the next controller removes it at start,
leaving a live process's folder alone; a controller that exits normally leaves none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaquero.childenv import child_env
from vaquero.hooks import run_hook
from vaquero.lab.demo import StoreView, edit_cluster
from vaquero.lab.netns import LabNetwork
from vaquero.secretref import PREFIX, SecretsDir, sweep_stale
from vaquero.sot import load
from vaquero.sot.source import resolve

REPO = Path(__file__).resolve().parents[2]
LAB_SOT = REPO / "inventories" / "lab"
BMC_PORT = 6231


def _secret(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(12)}"


def wait_for(pred: Callable[[], Any], timeout: float, what: str, details: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g}s\n{details()}")
        time.sleep(0.2)


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rfind(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids = children_map()
    out: list[int] = []
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_info(pid: int) -> tuple[str, bytes, bytes] | None:
    """(comm, cmdline, environ) of a live process, None when it is gone."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    return comm, cmdline, environ


def grep(values: dict[str, str], path: Path) -> list[str]:
    """Files under `path` holding any of the values (binary files too: the SQLite store)."""
    found = []
    for name, value in values.items():
        res = subprocess.run(["grep", "-r", "-l", "-a", "-F", value, str(path)], capture_output=True, text=True)
        assert res.returncode in (0, 1), res.stderr
        found += [f"{name} in {line}" for line in res.stdout.splitlines()]
    return found


def own_folders(base: Path, pid: int) -> list[Path]:
    return sorted(base.glob(f"{PREFIX}{pid}-*"))


def require_tools() -> None:
    missing = [t for t in ("ip", "dnsmasq", "curl", "grep") if shutil.which(t) is None]
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        missing.append("ansible-playbook (in the venv)")
    assert os.geteuid() == 0, "needs root (network namespace, DHCP port 67)"
    assert not missing, f"missing: {', '.join(missing)} (run scripts/setup.sh)"


class Controller:
    """`vaquero standalone` inside the lab namespace, with secrets in its environment."""

    def __init__(self, net: LabNetwork, workdir: Path, sot: Path, env: dict[str, str], token_file: Path) -> None:
        self.net, self.workdir, self.sot, self.env, self.token_file = net, workdir, sot, env, token_file
        self.data = workdir / "data"
        self.log = workdir / "standalone.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.store = StoreView(self.data / "state.db")

    def start(self, *, approve: bool) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "debug", "standalone", "--sot", str(self.sot), "--data-dir", str(self.data)]
        cmd += ["--listen", "127.0.0.1:8000", "--token-file", str(self.token_file)] + (["--approve"] if approve else [])
        self.proc = self.net.popen(cmd, log_file=self.log, env=self.env)
        self.net.wait_port("127.0.0.1", 8000, timeout=60)
        return self.proc

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def states(self, host: str) -> list[str]:
        return [e["state"] for e in self.store.list(f"/events/{host}/")]

    def api(self, path: str, header: Path) -> tuple[int, str]:
        res = self.net.run(["curl", "-s", "-H", f"@{header}", "-w", "\n%{http_code}", f"http://127.0.0.1:8000{path}"], timeout=60)
        body, _, code = res.stdout.rpartition("\n")
        return int(code or 0), body


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[LabNetwork, Path, Path]]:
    """The namespace, a work folder, and a RAM-backed base for the controller's secrets folders."""
    require_tools()
    shm = Path(tempfile.mkdtemp(prefix="vaquero-test-secrets-base-", dir="/dev/shm"))
    try:
        with LabNetwork(address="10.90.0.1/24") as net:
            yield net, tmp_path, shm
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def make_sot(dst: Path) -> Path:
    """The lab SoT for node1, its profile pointing at stand-in kernel and initrd files (nothing boots them)."""
    shutil.copytree(LAB_SOT, dst)
    edit_cluster(dst, ["node1"], policy={"max_concurrent": 1, "min_available": 0, "on_failure": "halt"})
    assets = dst.parent / "assets"
    assets.mkdir(exist_ok=True)
    profile_path = dst / "profiles" / "lab-linux.yaml"
    profile = yaml.safe_load(profile_path.read_text())
    for name, entry in (("vmlinuz", profile["kernel"]), ("initramfs.img", profile["initrd"][0])):
        data = name.encode() * 1024
        (assets / name).write_bytes(data)
        entry["path"], entry["sha256"] = str(assets / name), hashlib.sha256(data).hexdigest()
    profile_path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return dst


def test_controller_children_logs_api_artifacts_and_store_hold_no_secret(lab: tuple[LabNetwork, Path, Path]) -> None:
    net, tmp, shm = lab
    values = {
        "api token": _secret("api-token"),
        "webhook secret": _secret("webhook"),
        "agent token": _secret("agent-token"),
        "BMC password": _secret("bmc-pw"),
        "MY_DB_PASSWORD": _secret("db-pw"),
    }
    values["DATABASE_URL password"] = _secret("url-pw")
    sot = make_sot(tmp / "sot")
    pw_file = tmp / "bmc-password"
    pw_file.write_text(values["BMC password"])
    token_file = tmp / "api-token"
    token_file.write_text(values["api token"] + "\n")
    header = tmp / "auth-header"
    header.write_text(f"Authorization: Bearer {values['api token']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "VAQUERO_WEBHOOK_SECRET": values["webhook secret"],
        "VAQUERO_AGENT_TOKEN": values["agent token"],
        "VAQUERO_LAB_BMC_PASSWORD": values["BMC password"],
        "MY_DB_PASSWORD": values["MY_DB_PASSWORD"],
        "DATABASE_URL": f"postgresql://vaquero:{values['DATABASE_URL password']}@db.example.invalid/vaquero",
        "VAQUERO_CACHE": str(tmp / "cache"),
        # Its own base: another controller on this machine would rightly sweep a dead one's folder before we look.
        "VAQUERO_SECRETS_BASE": str(shm),
    }
    bmc = [sys.executable, "-m", "vaquero.bmc.emulator", "--address", "127.0.0.1", "--port", str(BMC_PORT), "--count", "1"]
    bmc += ["--username", "admin", "--password-file", str(pw_file)]
    # node1's machine, as the SoT says: the install role checks the BMC's identity before power or boot
    bmc += ["--uuid", next(str(h.uuid) for _, _, h in load(sot, semantic=False).hosts() if h.name == "node1")]
    net.popen(bmc, log_file=tmp / "bmc.log")
    ctl = Controller(net, tmp, sot, env, token_file)
    first = ctl.start(approve=True)

    # The playbook powered the host on through the BMC and now waits for the install callback.
    def netbooting() -> bool:
        states = ctl.states("node1")
        assert "failed" not in states, ctl.tail()
        return "netbooting" in states

    wait_for(netbooting, 180, "node1 never reached netbooting", ctl.tail)

    def with_module() -> dict[int, tuple[str, bytes, bytes]] | None:
        """Every live descendant, once the wait_callback module's own process (where hook commands run too) is among them."""
        found = {p: info for p in descendants(first.pid) if (info := proc_info(p)) is not None}
        return found if any(b"AnsiballZ" in info[1] for info in found.values()) else None

    procs = wait_for(with_module, 120, "no module process under ansible-playbook", ctl.tail)
    names = {info[0] for info in procs.values()}
    playbooks = [p for p, info in procs.items() if b"ansible-playbook" in info[1]]
    assert "dnsmasq" in names and playbooks, f"expected dnsmasq and ansible-playbook under the controller, found {sorted(names)}"
    leaks = [f"{name} in the environment of {info[0]} ({pid})" for pid, info in procs.items() for name, v in values.items() if v.encode() in info[2]]
    assert not leaks, leaks
    for info in procs.values():
        env_names = {line.split(b"=", 1)[0].decode() for line in info[2].split(b"\0") if line}
        assert not env_names & {"MY_DB_PASSWORD", "DATABASE_URL", "VAQUERO_WEBHOOK_SECRET", "VAQUERO_AGENT_TOKEN", "VAQUERO_LAB_BMC_PASSWORD"}, info[0]
    # The play still reached its secrets: by reference, through the controller's private folder.
    playbook_env = dict(line.split(b"=", 1) for line in procs[playbooks[0]][2].split(b"\0") if b"=" in line)
    folder = Path(playbook_env[b"VAQUERO_SECRETS_DIR"].decode())
    assert folder in own_folders(shm, first.pid), (folder, own_folders(shm, first.pid))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert (folder / "VAQUERO_LAB_BMC_PASSWORD").read_text() == values["BMC password"]

    # API answers: every read route a token holder sees.
    plan = ctl.store.list("/plans/")[-1]
    answers = {}
    for path in ("/v1/revisions", "/v1/plans", f"/v1/plans/{plan['id']}", f"/v1/plans/{plan['id']}/text", "/v1/runs", f"/v1/runs/{plan['id']}"):
        answers[path] = ctl.api(path, header)
    answers["steps"] = ctl.api(f"/v1/runs/{plan['id']}/steps", header)
    answers["hosts"] = ctl.api("/v1/hosts/node1/timeline", header)
    answers["metrics"] = ctl.api("/metrics", header)
    assert all(code == 200 for code, _ in answers.values()), {p: c for p, (c, _) in answers.items()}
    assert "node1" in answers["hosts"][1]
    leaks = [f"{name} in {path}" for path, (_, body) in answers.items() for name, v in values.items() if v in body]
    assert not leaks, leaks

    # SIGKILL: nothing runs cleanup. The folder stays until the next controller starts.
    dnsmasq = [p for p, info in procs.items() if info[0] == "dnsmasq"]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    for p in procs:  # its children in their own sessions (dnsmasq, ansible-playbook) outlive it: a crash, not a test, would leave them
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: all(proc_info(p) is None for p in dnsmasq), 30, "dnsmasq of the killed controller is still running")
    assert folder.is_dir(), "the killed controller's folder should have survived SIGKILL"
    live = SecretsDir({"MY_DB_PASSWORD"}, base=str(folder.parent))  # a live process's folder: never swept
    try:
        second = ctl.start(approve=False)
        wait_for(lambda: not folder.exists(), 60, "the stale secrets folder was not removed at start", ctl.tail)
        assert live.path.is_dir()
        os.kill(second.pid, signal.SIGTERM)
        second.wait(60)
        assert own_folders(shm, second.pid) == [], "a controller that exits normally leaves no secrets folder"
    finally:
        live.close()

    # The process's log (both lives), the run artifacts and the store: no value anywhere.
    text = ctl.log.read_text(errors="replace")
    assert "ansible-runner" in text and "netbooting" in text
    assert not [name for name, v in values.items() if v in text]
    commands = list((ctl.data / "runs").glob("*/install/artifacts/*/command"))
    assert commands, "ansible-runner wrote no artifacts"
    job = json.loads(commands[0].read_text())
    assert "VAQUERO_SECRETS_DIR" in job["env"] and not set(job["env"]) & {"MY_DB_PASSWORD", "DATABASE_URL", "VAQUERO_WEBHOOK_SECRET"}
    assert (ctl.data / "state.db").is_file()
    assert not grep(values, ctl.data)
    files = sum(1 for f in ctl.data.rglob("*") if f.is_file())
    print(f"\n{len(values)} secrets; environ of {len(procs)} child processes ({', '.join(sorted(names))})")
    print(f"{len(answers)} API answers; {files} files under the data dir; {len(text.splitlines())} log lines")


def test_stale_sweep_spares_live_owners_foreign_names_and_symlinks(tmp_path: Path) -> None:
    base = tmp_path / "shm"
    base.mkdir()
    code = textwrap.dedent(
        """
        import sys, time
        from vaquero.secretref import SecretsDir
        d = SecretsDir({"MY_DB_PASSWORD"}, base=sys.argv[1])
        print(d.path, flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "MY_DB_PASSWORD": _secret("db")}
    holder = subprocess.Popen([sys.executable, "-c", code, str(base)], stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout is not None
    held = Path(holder.stdout.readline().strip())
    try:
        assert held.is_dir() and (held / "MY_DB_PASSWORD").read_text() == env["MY_DB_PASSWORD"]
        assert sweep_stale(str(base)) == [] and held.is_dir()  # its owner lives
    finally:
        holder.kill()
        holder.wait(30)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    (base / f"{PREFIX}1-1-planted").symlink_to(victim)  # /dev/shm is world-writable: a planted link
    (base / f"{PREFIX}notapid").mkdir()  # not ours to judge
    assert sweep_stale(str(base)) == [held]
    assert not held.exists() and (victim / "keep").exists() and (base / f"{PREFIX}notapid").is_dir()

    # A process that ends normally with a folder still open (its run was under way) removes it on the way out.
    leaver = "import sys\nfrom vaquero.secretref import SecretsDir\nprint(SecretsDir({'MY_DB_PASSWORD'}, base=sys.argv[1]).path)\nsys.exit(0)\n"
    res = subprocess.run([sys.executable, "-c", leaver, str(base)], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and res.stdout.strip().startswith(str(base / PREFIX)), res.stderr
    assert not Path(res.stdout.strip()).exists()


def test_hook_commands_and_hook_playbooks_get_no_controller_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"MY_DB_PASSWORD": _secret("db"), "VAQUERO_WEBHOOK_SECRET": _secret("wh"), "VAQUERO_LAB_BMC_PASSWORD": _secret("bmc")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VAQUERO_CHILD_ENV", "MY_DB_PASSWORD")  # an operator's allow-list cannot pass a secret-looking name
    sot_dir = make_sot(tmp_path / "sot")
    dump = "cat /proc/self/environ | tr '\\0' '\\n'"
    (sot_dir / "hooks" / "lab-hooks.yaml").write_text(
        yaml.safe_dump_all(
            [
                {"apiVersion": "vaquero/v1", "kind": "Hook", "name": "announce-drain", "type": "command", "command": dump, "timeout": 30},
                {"apiVersion": "vaquero/v1", "kind": "Hook", "name": "agent-saw-callback", "type": "command", "command": "true", "timeout": 10},
            ]
        )
    )
    result = run_hook(load(sot_dir), "announce-drain", "node1", "pre_shutdown")
    output = json.dumps(dataclasses.asdict(result), default=str)
    assert "VAQUERO_HOST=node1" in output and "PATH=" in output, output[:2000]
    assert not [n for n, v in values.items() if v in output or f"{n}=" in output]


def test_git_runs_with_the_allow_listed_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `git` first on PATH records its environment, then runs the real git."""
    real = shutil.which("git")
    assert real, "git is not installed"
    repo = tmp_path / "repo"
    repo.mkdir()
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([real, "init", "-q", "-b", "main", str(repo)], check=True)
    shutil.copytree(LAB_SOT, repo, dirs_exist_ok=True)
    subprocess.run([real, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([real, "-C", str(repo), *ident, "commit", "-q", "-m", "sot"], check=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    seen = tmp_path / "git-envs"
    (bindir / "git").write_text(f"#!/bin/sh\ncat /proc/self/environ >> {seen}\nprintf '\\n--\\n' >> {seen}\nexec {real} \"$@\"\n")
    (bindir / "git").chmod(0o755)
    values = {"MY_DB_PASSWORD": _secret("db"), "VAQUERO_GITHUB_TOKEN": _secret("gh"), "DATABASE_URL": "postgresql://u:" + _secret("url") + "@x/y"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "cache"))
    resolved = resolve(f"{repo}@main")
    assert resolved.sha and (resolved.root / "clusters" / "lab.yaml").is_file()
    text = seen.read_bytes()
    assert text.count(b"--") >= 2 and b"GIT_TERMINAL_PROMPT=0" in text
    assert not [n for n, v in values.items() if v.encode() in text]


def test_child_env_is_an_allow_list() -> None:
    source = {"PATH": "/bin", "LC_ALL": "C", "HOME": "/root", "MY_DB_PASSWORD": "x1", "DATABASE_URL": "pg://u:p@h", "ANSIBLE_NOCOLOR": "1"}
    source |= {"ANSIBLE_BECOME_PASSWORD": "x2", "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault", "VAQUERO_CHILD_ENV": "DATABASE_URL,MY_DB_PASSWORD"}
    env = child_env(environ=source)
    assert env == {"PATH": "/bin", "LC_ALL": "C", "HOME": "/root", "DATABASE_URL": "pg://u:p@h"}  # the operator asked for DATABASE_URL
    env = child_env(environ=source, prefixes=("ANSIBLE_",), deny=("DATABASE_URL",), extra={"VAQUERO_SECRETS_DIR": "/dev/shm/x"})
    base = {"PATH": "/bin", "LC_ALL": "C", "HOME": "/root"}
    assert env == {**base, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault", "VAQUERO_SECRETS_DIR": "/dev/shm/x"}


def test_log_lines_are_scrubbed_of_the_secrets_the_process_holds(tmp_path: Path) -> None:
    """The last line of defence, in a real process: a secret that reaches a log call leaves as ***."""
    code = textwrap.dedent(
        """
        import logging, os
        from vaquero.logs import register_secret, setup_logging
        setup_logging("debug")
        register_secret(open(os.environ["TOKEN_PATH"]).read().strip())
        log = logging.getLogger("vaquero.test")
        log.info("db %s, token %s", os.environ["MY_DB_PASSWORD"], open(os.environ["TOKEN_PATH"]).read().strip(), extra={"host": os.environ["MY_DB_PASSWORD"]})
        try:
            raise RuntimeError("login with " + os.environ["MY_DB_PASSWORD"] + ' "quoted"')
        except RuntimeError:
            log.exception("failed")
        log.info("plain line")
        """
    )
    values = {"MY_DB_PASSWORD": _secret("db"), "token": _secret("tok")}
    (tmp_path / "token").write_text(values["token"] + "\n")
    env = {**os.environ, "MY_DB_PASSWORD": values["MY_DB_PASSWORD"], "TOKEN_PATH": str(tmp_path / "token")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stderr.splitlines()]
    assert [x["msg"] for x in lines] == ["db ***, token ***", "failed", "plain line"], lines
    assert lines[0]["host"] == "***" and lines[1]["error"] == 'RuntimeError: login with *** "quoted"'
    assert not [n for n, v in values.items() if v in res.stderr]
