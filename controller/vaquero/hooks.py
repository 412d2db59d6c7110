"""Hooks: named actions run around a host's reboot (drain, checks, commands, task files).

The work of the ``vaquero.metal.hook`` module lives here, in plain Python, so it is tested
without Ansible. A hook is declared once in the SoT (``kind: Hook``) and named per cluster or
host under ``hooks: {pre_shutdown, pre_reboot, post_reboot, validate}``. Each attempt runs under
the hook's ``timeout``; a failed attempt is retried ``retries`` times, ``delay`` seconds apart.
Every attempt's output is returned so the controller keeps it in the host's timeline.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from vaquero.childenv import HOOK_ALLOW, ansible_env, child_env
from vaquero.hostkeys import known_hosts
from vaquero.secretref import SECRETS_DIR_ENV
from vaquero.sot.loader import SoT
from vaquero.sot.models import Cluster, Hook, Host
from vaquero.sot.templates import BootUrls, environment, host_context, primary_network

OUTPUT_LIMIT = 4000  # characters of output kept per attempt (the tail: where errors are)


class HookError(Exception):
    pass


@dataclass
class Attempt:
    number: int
    ok: bool
    output: str
    seconds: float
    rc: int | None = None


@dataclass
class HookResult:
    name: str
    type: str
    phase: str
    host: str
    ok: bool
    attempts: list[Attempt] = field(default_factory=list)
    include: str | None = None  # tasks hooks: the task file the role includes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def message(self) -> str:
        last = self.attempts[-1].output.strip().splitlines()[-1:] if self.attempts else []
        verdict = "passed" if self.ok else "failed"
        return f"hook {self.name} ({self.type}, {self.phase}) {verdict} after {len(self.attempts)} attempt(s)" + (f": {last[0]}" if last else "")


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "..." + text[-OUTPUT_LIMIT:]


def hooks_for(sot: SoT, host_name: str, phase: str) -> list[str]:
    """Hook names for one host and phase: the host's list when it has one, else its cluster's."""
    found = sot.host(host_name)
    if found is None:
        raise HookError(f"host {host_name} is not in the SoT at {sot.root}")
    cluster, host = found
    return list(host.hooks.get(phase, cluster.hooks.get(phase, [])))  # type: ignore[call-overload]


def context(sot: SoT, cluster: Cluster, host: Host) -> dict[str, Any]:
    site = sot.sites[cluster.site]
    profile = sot.profile_of(cluster, host)
    urls = BootUrls(site.agents[0].url.rstrip("/")) if site.agents else BootUrls()
    if profile is None:
        return {"host": {"name": host.name}, "cluster": {"name": cluster.name}, "site": {"name": site.name}, "vars": {**cluster.vars, **host.vars}}
    return host_context(site, cluster, host, profile, urls=urls, sha=sot.sha)


def render(text: str | None, ctx: dict[str, Any]) -> str | None:
    if text is None:
        return None
    try:
        return environment().from_string(text).render(ctx)
    except jinja2.TemplateError as exc:
        raise HookError(f"template {text!r}: {exc}") from None


def _host_ip(sot: SoT, cluster: Cluster, host: Host) -> str | None:
    site = sot.sites.get(cluster.site)
    if site is None:
        return None
    net = primary_network(site, host)
    ip = host.ips.get(net.name)
    return str(ip) if ip else None


def _run(cmd: str | list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run with its output captured, except that a timeout ends the command's whole process
    group, not only its first process: under ``sh -c`` that is the shell, and what the shell started
    (a ``sleep``, a ``curl`` to a host that hangs) would run on, holding the output pipes. A
    descendant that made a session of its own is ended by the run's keeper (vaquero.runner.reaper)
    when the launch ends."""
    with subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:  # the pipes close once the group is gone, unless one escaped it with the pipes open
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired as exc:
                out, err = _text(exc.stdout), _text(exc.stderr)
            raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _command(cmd: str, timeout: float, env: dict[str, str], cwd: Path) -> tuple[bool, str, int | None]:
    try:
        res = _run(cmd, timeout, shell=True, env=child_env(allow=HOOK_ALLOW, extra=env), cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        return False, f"{_text(exc.stdout)}\ntimed out after {timeout:g}s", None
    return res.returncode == 0, (res.stdout + res.stderr), res.returncode


def _http(url: str, status: int, body: str | None, timeout: float) -> tuple[bool, str, int | None]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            code, text = resp.status, resp.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        code, text = exc.code, exc.read(65536).decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return False, f"GET {url}: {getattr(exc, 'reason', exc)}", None
    if code != status:
        return False, f"GET {url}: status {code}, expected {status}: {text[:300]}", code
    if body is not None and body not in text:
        return False, f"GET {url}: status {code}, body does not contain {body!r}: {text[:300]}", code
    return True, f"GET {url}: status {code}" + (f", body contains {body!r}" if body else ""), code


def _ssh(address: str | None, port: int, timeout: float) -> tuple[bool, str, int | None]:
    if not address:
        return False, "the host has no address on its primary network", None
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=min(5.0, max(0.1, deadline - time.monotonic()))) as sock:
                sock.settimeout(min(5.0, max(0.1, deadline - time.monotonic())))
                banner = sock.recv(64).decode(errors="replace").strip()
                if banner.startswith("SSH-"):
                    return True, f"{address}:{port} answers: {banner}", None
                last = f"{address}:{port} answered {banner!r}, not an SSH banner"
        except OSError as exc:
            last = f"{address}:{port}: {exc}"
        time.sleep(1)
    return False, f"no SSH on {address}:{port} within {timeout:g}s ({last})", None


def ssh_command(address: str, port: int, user: str, key: str, known_hosts: Path, unit: str, connect_timeout: float, *, pinned: bool = False) -> list[str]:
    """The ssh command line of an ssh_check: no user or system config, no agent, only the SoT's key,
    batch mode. `pinned`: known_hosts holds the keys the installed OS reported when it phoned home
    (vaquero.hostkeys) and the host must show one of them; else the host keys are new at each install
    (cloud-init makes them at first boot) and the first one seen is taken (trust on first use)."""
    ssh = shutil.which("ssh") or "ssh"
    probe = f'echo "hostname=$(hostname)"; echo "addresses=$(hostname -I)"; echo "unit=$(systemctl is-active -- {shlex.quote(unit)})"'
    options = {
        "BatchMode": "yes",
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "PasswordAuthentication": "no",
        "StrictHostKeyChecking": "yes" if pinned else "accept-new",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "ConnectTimeout": str(max(1, int(connect_timeout))),
        "LogLevel": "ERROR",
    }
    cmd = [ssh, "-F", "/dev/null", "-i", key, "-p", str(port)]
    for name, value in options.items():
        cmd += ["-o", f"{name}={value}"]
    return [*cmd, "--", f"{user}@{address}", probe]


def ssh_verdict(output: str, name: str, address: str, unit: str) -> tuple[bool, str]:
    """Compare what the host reported over SSH with the SoT: its hostname (short, or with a domain) is
    the SoT name, the SoT address is one of its addresses, the unit is active."""
    seen = dict(line.split("=", 1) for line in output.splitlines() if "=" in line and line.split("=", 1)[0] in ("hostname", "addresses", "unit"))
    hostname, addresses, state = seen.get("hostname", "").strip(), seen.get("addresses", "").split(), seen.get("unit", "").strip()
    checks = [
        (hostname.split(".")[0] == name, f"hostname {hostname or '(none)'!s}, SoT name {name}"),
        (address in addresses, f"addresses {' '.join(addresses) or '(none)'}, SoT address {address}"),
        (state == "active", f"{unit} is active" if state == "active" else f"{unit} is {state or '(unknown)'}, expected active"),
    ]
    return all(ok for ok, _ in checks), "; ".join(("ok: " if ok else "MISMATCH: ") + text for ok, text in checks)


def _ssh_check(
    address: str | None, port: int, user: str, key: str, unit: str, name: str, timeout: float, host_keys: list[str] | None = None
) -> tuple[bool, str, int | None]:
    """Log in over SSH with the SoT's key and check the host's hostname, address and unit. Retries a
    failed connection (ssh exit 255) until the timeout; a host that answered is judged at once, and
    so is a host whose key is not one of `host_keys` (those it reported when it phoned home)."""
    if not address:
        return False, "the host has no address on its primary network", None
    if not os.path.isfile(key):
        return False, f"ssh_check: the private key file {key} does not exist on this node", None
    deadline = time.monotonic() + timeout
    last = "not tried"
    with tempfile.TemporaryDirectory(prefix="vaquero-ssh-") as tmp:
        if host_keys:
            try:
                (Path(tmp) / "known_hosts").write_text(known_hosts(address, port, host_keys))
            except ValueError as exc:
                return False, f"ssh_check: the host keys to hold {address} to are unusable: {exc}", None
        while True:
            left = deadline - time.monotonic()
            cmd = ssh_command(address, port, user, key, Path(tmp) / "known_hosts", unit, min(10.0, max(1.0, left)), pinned=bool(host_keys))
            try:
                res = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=max(5.0, min(30.0, left + 5)), env=child_env(allow=HOOK_ALLOW), stdin=subprocess.DEVNULL
                )
            except subprocess.TimeoutExpired:
                last = f"ssh {user}@{address}:{port} timed out"
            else:
                if res.returncode != 255:
                    ok, verdict = ssh_verdict(res.stdout, name, address, unit)
                    return ok, f"ssh {user}@{address}:{port}: {verdict}" + ("" if ok else f"\n{(res.stdout + res.stderr)[-1000:]}"), res.returncode
                last = f"ssh {user}@{address}:{port}: {res.stderr.strip()[-300:] or 'connection failed'}"
                if host_keys and "Host key verification failed" in res.stderr:
                    # Another machine answers for the address: no retry makes it the host.
                    return False, f"ssh {user}@{address}:{port}: the host's SSH key is none of the {len(host_keys)} it reported when it phoned home", 255
            if time.monotonic() + 2 >= deadline:
                return False, f"no SSH login within {timeout:g}s ({last})", None
            time.sleep(2)


def _kubectl(args: list[str], timeout: float) -> tuple[bool, str, int | None]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return False, "kubectl is not installed on the node running the hook", None
    try:
        res = _run([kubectl, *args], timeout + 10, env=child_env(allow=HOOK_ALLOW))
    except subprocess.TimeoutExpired:
        return False, f"kubectl {' '.join(args)} timed out", None
    return res.returncode == 0, res.stdout + res.stderr, res.returncode


# ansible-runner's plumbing for the run's own job (its event callback patches Ansible's display at import
# and writes into that job's artifacts, as does its fact cache): a hook playbook is a separate, plain run.
RUNNER_ONLY = ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION")


def _secrets_ref() -> dict[str, str]:
    """A hook playbook's modules may resolve SoT credentials like the run's own: they get the folder's path."""
    folder = os.environ.get(SECRETS_DIR_ENV)
    return {SECRETS_DIR_ENV: folder} if folder else {}


def _playbook(sot: SoT, path: Path, host: str, timeout: float, env: dict[str, str]) -> tuple[bool, str, int | None]:
    with tempfile.TemporaryDirectory(prefix="vaquero-hook-") as tmp:
        inv = Path(tmp) / "inventory.vaquero.yml"
        inv.write_text(f"plugin: vaquero.metal.sot\npath: {sot.root}\nvalidate: false\n")
        cmd = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(inv), "--limit", host, str(path)]
        # The hook playbook's modules run with this Python (the one that has vaquero), not a discovered one.
        env = {**env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        try:
            child = ansible_env(extra={**env, **_secrets_ref()}, deny=RUNNER_ONLY)
            res = _run(cmd, timeout, env=child, cwd=sot.root)
        except subprocess.TimeoutExpired:
            return False, f"playbook {path.name} timed out after {timeout:g}s", None
        except FileNotFoundError:
            return False, "ansible-playbook is not on PATH", None
    return res.returncode == 0, res.stdout + res.stderr, res.returncode


def sot_file(sot: SoT, rel: str) -> Path:
    path = (sot.root / rel).resolve()
    if not path.is_relative_to(sot.root.resolve()):
        raise HookError(f"hook file {rel!r} is outside the SoT repository")
    if not path.is_file():
        raise HookError(f"hook file {rel!r} does not exist in the SoT")
    return path


def attempt_once(sot: SoT, hook: Hook, cluster: Cluster, host: Host, phase: str, host_keys: list[str] | None = None) -> tuple[bool, str, int | None]:
    ctx = context(sot, cluster, host)
    env = {
        "VAQUERO_HOST": host.name,
        "VAQUERO_CLUSTER": cluster.name,
        "VAQUERO_SITE": cluster.site,
        "VAQUERO_PHASE": phase,
        "VAQUERO_HOOK": hook.name,
        "VAQUERO_HOST_IP": _host_ip(sot, cluster, host) or "",
        "VAQUERO_SOT_SHA": sot.sha or "",
        "VAQUERO_SOT_ROOT": str(sot.root),
    }
    if hook.type == "command":
        return _command(render(hook.command, ctx) or "", hook.timeout, env, sot.root)
    if hook.type == "http_check":
        return _http(render(hook.url, ctx) or "", hook.status, render(hook.body, ctx), hook.timeout)
    if hook.type == "wait_for_ssh":
        return _ssh(_host_ip(sot, cluster, host), hook.port, hook.timeout)
    if hook.type == "ssh_check":
        assert hook.user is not None and hook.ssh_key is not None  # the model requires both for ssh_check
        return _ssh_check(_host_ip(sot, cluster, host), hook.port, hook.user, hook.ssh_key, hook.unit, host.name, hook.timeout, host_keys)
    if hook.type == "kubernetes_drain":
        return _kubectl(["drain", host.name, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={hook.timeout}s"], hook.timeout)
    if hook.type == "kubernetes_uncordon":
        return _kubectl(["uncordon", host.name], hook.timeout)
    if hook.type == "playbook":
        return _playbook(sot, sot_file(sot, hook.file or ""), host.name, hook.timeout, env)
    raise HookError(f"hook type {hook.type} is run by the hooks role, not here")


def run_hook(sot: SoT, name: str, host_name: str, phase: str, *, sleep: Any = time.sleep, host_keys: list[str] | None = None) -> HookResult:
    """Run one hook for one host with its timeout, retries and delay. Never raises for a failed check.
    `host_keys`: the SSH host keys the host reported (vaquero.hostkeys), which an ssh_check holds it to."""
    hook = sot.hooks.get(name)
    if hook is None:
        raise HookError(f"hook {name!r} is not defined in the SoT")
    found = sot.host(host_name)
    if found is None:
        raise HookError(f"host {host_name} is not in the SoT at {sot.root}")
    cluster, host = found
    result = HookResult(name=name, type=hook.type, phase=phase, host=host_name, ok=False)
    if hook.type == "tasks":
        result.include = str(sot_file(sot, hook.file or ""))
        result.ok = True
        return result
    for number in range(1, hook.retries + 2):
        start = time.monotonic()
        try:
            ok, output, rc = attempt_once(sot, hook, cluster, host, phase, host_keys)
        except HookError as exc:
            ok, output, rc = False, str(exc), None
        result.attempts.append(Attempt(number, ok, _tail(output), round(time.monotonic() - start, 3), rc))
        if ok:
            result.ok = True
            break
        if number <= hook.retries:
            sleep(hook.delay)
    return result
