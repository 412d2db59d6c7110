"""A supervised dnsmasq: validated config, start, SIGHUP on host changes, restart on crash.

The config is split in two files: the main config (ranges, options, boot rules) and a
dhcp-hostsfile with the reservations. dnsmasq re-reads the hosts file on SIGHUP, so adding or
changing a host is a SIGHUP; a change of the main config is a restart. Every config is checked
with `dnsmasq --test` before it replaces the running one; a bad one is refused and the running
dnsmasq keeps its config. dnsmasq's log lines go to this process's log.

dnsmasq runs as root and runs scripts (``dhcp-script``): it gets an allow-listed environment
(:func:`vaquero.childenv.child_env`), never the agent's, which holds tokens and passwords.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from vaquero.childenv import child_env
from vaquero.render.dhcp_check import DhcpConfigError, check_dhcp_config
from vaquero.render.files import write_file

log = logging.getLogger(__name__)


class DnsmasqError(RuntimeError):
    """dnsmasq refused a config or failed to start."""


def check_config(text: str, binary: str = "dnsmasq") -> None:
    """Raise DnsmasqError with dnsmasq's own message when `dnsmasq --test` rejects the config."""
    try:
        check_dhcp_config(text, "dnsmasq", binary=binary)
    except DhcpConfigError as exc:
        raise DnsmasqError(str(exc)) from None


class Dnsmasq:
    def __init__(self, workdir: Path, *, binary: str = "dnsmasq", site: str = "", extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.binary = shutil.which(binary) or binary
        self.site = site
        self.extra_args = extra_args
        self.conf = workdir / "dnsmasq.conf"
        self.hosts = workdir / "dnsmasq.hosts"
        self.leases = workdir / "dnsmasq.leases"
        self.proc: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=200)
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None

    # -- config --
    def apply(self, main: str, hosts: str) -> str:
        """Install a new config. Returns what happened: 'unchanged', 'reloaded', 'restarted' or 'written'."""
        if not Path(self.binary).exists() and shutil.which(self.binary) is None:
            raise DnsmasqError(f"{self.binary} is not installed (dnsmasq-base)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # dnsmasq re-reads the hosts file as 'nobody' on SIGHUP
        check_config(main.replace(f"dhcp-hostsfile={self.hosts}", f"dhcp-hostsfile={os.devnull}"), self.binary)
        bad = [ln for ln in hosts.splitlines() if ln.strip() and "," not in ln]
        if bad:
            raise DnsmasqError(f"malformed host reservation: {bad[0]!r}")
        with self._lock:
            main_changed = write_file(self.conf, main).changed
            hosts_changed = write_file(self.hosts, hosts).changed
            running = self.proc is not None and self.proc.poll() is None
        if not running:
            return "written"
        if main_changed:
            self.restart()
            return "restarted"
        if hosts_changed:
            self.reload()
            return "reloaded"
        return "unchanged"

    # -- process --
    def _reachable_by_others(self) -> bool:
        """dnsmasq drops to 'nobody' and re-reads the hosts file as that user."""
        p = self.workdir.resolve()
        for d in (p, *p.parents):
            if not os.stat(d).st_mode & 0o001:
                return False
        return True

    def command(self) -> list[str]:
        cmd = [
            self.binary, "-k", "-C", str(self.conf), "--log-facility=-", f"--dhcp-leasefile={self.leases}",
            f"--pid-file={self.workdir / 'dnsmasq.pid'}", *self.extra_args,
        ]  # fmt: skip
        if os.geteuid() == 0 and not self._reachable_by_others():
            log.warning("%s is not readable by 'nobody': dnsmasq keeps running as root", self.workdir, extra={"site": self.site})
            cmd.append("--user=root")
        return cmd

    def _spawn(self) -> None:
        proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=child_env())
        self.proc = proc
        threading.Thread(target=self._pump, args=(proc,), name="dnsmasq-log", daemon=True).start()
        # dnsmasq reports bind errors and bad options at once; give it a moment to fail.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                time.sleep(0.05)  # let the log pump catch the last lines
                tail = " | ".join(list(self.lines)[-3:]) or "no output"
                log.error("dnsmasq failed to start (exit %s): %s", proc.returncode, tail, extra={"site": self.site})
                raise DnsmasqError(f"dnsmasq failed to start (exit {proc.returncode}): {tail}")
            time.sleep(0.05)
        log.info("dnsmasq running (pid %d)", proc.pid, extra={"site": self.site})

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            self.lines.append(line)
            log.info("dnsmasq: %s", line, extra={"site": self.site})

    def start(self) -> None:
        if not self.conf.is_file():
            raise DnsmasqError("no config applied yet")
        self._stop.clear()
        self._spawn()
        self._watch = threading.Thread(target=self._supervise, name="dnsmasq-supervisor", daemon=True)
        self._watch.start()

    def _supervise(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            proc = self.proc
            if proc is None:
                return
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if self._stop.is_set():
                return
            with self._lock:
                if self.proc is not proc:  # restarted on purpose meanwhile
                    continue
                log.error("dnsmasq exited (code %s); restarting in %.1fs", proc.returncode, backoff, extra={"site": self.site})
                if self._stop.wait(backoff):
                    return
                try:
                    self._spawn()
                    self.restarts += 1
                    backoff = 0.5
                except DnsmasqError:
                    backoff = min(backoff * 2, 30.0)

    def reload(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            log.info("dnsmasq reloaded (SIGHUP): host reservations re-read", extra={"site": self.site})

    def restart(self) -> None:
        with self._lock:
            old = self.proc
            if old is not None:
                self._terminate(old)
            self._spawn()
            self.restarts += 1

    @staticmethod
    def _terminate(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self.proc is not None:
                self._terminate(self.proc)
        if self._watch is not None:
            self._watch.join(2)
