"""Secrets for playbooks without putting them in runner artifacts or child environments.

ansible-runner writes the full environment of ansible-playbook, its command line and its
extravars into the run's artifacts folder, and every module and hook command inherits that
environment. So, for one run:

- ansible-playbook gets an allow-listed environment (:mod:`vaquero.childenv`): no variable of
  the controller's reaches it unless it is a known, non-secret name;
- the value of every environment variable the SoT names as a secret is written to a file
  ``<dir>/<NAME>`` (mode 0600, folder 0700, outside the private data dir, removed when the run
  ends and when the process exits) and the runner gets ``VAQUERO_SECRETS_DIR=<dir>``, a path,
  not a secret;
- modules resolve a reference at the moment of use with :func:`resolve_secret`: the environment
  variable when it is set and not empty (a person running ansible-playbook by hand), else the
  file of that name in ``VAQUERO_SECRETS_DIR``; a ``file`` reference is read directly.

A process killed with SIGKILL cannot remove its folder, so the folder's name carries its
owner's PID and start time: :func:`sweep_stale` (called when a worker starts and before each new
folder) removes the folders whose owner is gone, and never one of a live process.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
from pathlib import Path

from vaquero.sot.loader import SoT

log = logging.getLogger("vaquero.runner")

SECRETS_DIR_ENV = "VAQUERO_SECRETS_DIR"
BASE_ENV = "VAQUERO_SECRETS_BASE"
PREFIX = "vaquero-secrets-"
# vaquero-secrets-<pid>-<start time in clock ticks since boot>-<random>
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)-(\d+)-[A-Za-z0-9_]+$")


class SecretMissing(LookupError):
    pass


def resolve_secret(env: str | None = None, file: str | None = None) -> str:
    """The secret a SoT reference points at, read now. Raises SecretMissing (naming the reference, never a value)."""
    if file:
        try:
            with open(os.path.expanduser(file), encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise SecretMissing(f"secret file {file}: {exc.strerror}") from None
    if env:
        value = os.environ.get(env)
        if value:
            return value
        folder = os.environ.get(SECRETS_DIR_ENV)
        if folder and os.path.isfile(os.path.join(folder, env)):
            with open(os.path.join(folder, env), encoding="utf-8") as fh:
                return fh.read()
        raise SecretMissing(f"environment variable {env} is not set")
    raise SecretMissing("no secret reference (env or file) given")


def env_references(sot: SoT) -> set[str]:
    """Names of the environment variables the SoT uses as secrets."""
    return {c.password.env for s in sot.sites.values() for c in s.credentials.values() if c.password.env}


def default_base() -> str:
    """$VAQUERO_SECRETS_BASE (e.g. a dedicated tmpfs), else RAM-backed when possible: a secret written there never reaches a disk."""
    configured = os.environ.get(BASE_ENV)
    if configured:
        return configured
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def _start_time(pid: int) -> int | None:
    """The process's start time (field 22 of /proc/<pid>/stat): tells a live owner from a reused PID."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _owner_alive(pid: int, started: int) -> bool:
    return _start_time(pid) == started


def sweep_stale(base: str | None = None) -> list[Path]:
    """Remove secret folders in `base` whose owning process is gone; returns what was removed.

    Only real folders (not symlinks) owned by this user whose name carries an owner are touched:
    /dev/shm is world-writable, so a planted name must not make this delete anything else.
    """
    folder = Path(base or default_base())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        if _owner_alive(int(m.group(1)), int(m.group(2))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
            log.warning("removed the secrets folder %s of process %s, which is gone", entry.path, m.group(1))
    return removed


_open: set[Path] = set()
_open_lock = threading.Lock()


@atexit.register
def _remove_open() -> None:
    """On a normal exit (SIGTERM handled, end of main) no secrets folder of this process stays."""
    with _open_lock:
        paths = list(_open)
        _open.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


class SecretsDir:
    """A private folder with the env-referenced secrets of one run; a context manager."""

    def __init__(self, names: set[str], base: str | None = None) -> None:
        self.names = sorted(names)
        base = base or default_base()
        sweep_stale(base)
        pid = os.getpid()
        started = _start_time(pid)
        if started is None:
            raise RuntimeError("cannot read this process's start time from /proc: secrets folders need it to be cleaned up")
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-{started}-", dir=base))
        with _open_lock:
            _open.add(self.path)
        try:
            os.chmod(self.path, 0o700)
            for name in self.names:
                value = os.environ.get(name)
                if not value:
                    continue
                fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(value)
        except BaseException:
            self.close()
            raise

    def envvars(self) -> dict[str, str]:
        """What the runner's environment gets on top of the allow-list: the folder, a path."""
        return {SECRETS_DIR_ENV: str(self.path)}

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with _open_lock:
            _open.discard(self.path)

    def __enter__(self) -> SecretsDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
