"""The guard's machine-wide layer: lock files in one private folder, shared by every process.

Under Ansible each module run is its own process, so a lock, a semaphore or a breaker held in
memory protects nothing. This layer keeps them in a folder every Vaquero process on the machine
opens (``$VAQUERO_BMC_GUARD_DIR``; default ``/run/vaquero/bmc-guard`` for root, else
``$XDG_RUNTIME_DIR/vaquero-bmc-guard`` or ``<tmp>/vaquero-<uid>/bmc-guard``):

- ``bmc-<sha256 of the BMC key>.lock``: the per-BMC lock (``flock`` LOCK_EX);
- ``slot-<n>.lock``, n < the limit: the global concurrency limit, a call holds any one of them;
- ``bmc-<hash>.json``: the BMC's circuit breaker (consecutive failures, and until when it is open
  on CLOCK_MONOTONIC, which is one clock for the whole machine), rewritten atomically and only by
  the holder of that BMC's lock.

``flock`` locks belong to open file descriptions: the kernel drops them when the process exits,
however it exits (SIGKILL included), so a dead holder never wedges a BMC or a slot. There is no
daemon to start or to lose. Waits poll with ``LOCK_NB`` in short, growing slices and are bounded by
the caller's deadline.

The folder is trusted only when it is a real folder (not a link) owned by this user, writable by
no one else, in a parent no one else can swap it out of; otherwise :func:`open_guard_dir` says why
and the guard falls back to its in-process primitives.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

GUARD_DIR_ENV = "VAQUERO_BMC_GUARD_DIR"
# The management network's limit of BMC sessions open at once, for every process sharing a folder.
MAX_SESSIONS_ENV = "VAQUERO_BMC_MAX_SESSIONS"
DEFAULT_MAX_SESSIONS = 16
MAX_SESSIONS_CAP = 1024

_FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_BREAKER_MAX_BYTES = 4096
# Poll slices while waiting for a lock another process holds: short at first (a BMC operation
# takes tens of milliseconds), growing to a ceiling that keeps 50 waiting processes cheap.
_POLL_FIRST = 0.005
_POLL_MAX = 0.05


class GuardDirError(Exception):
    """The shared folder cannot be trusted or created; the message says why."""


class GuardConfigError(ValueError):
    """A guard setting from the environment is not valid; the message names it."""


def default_guard_dir() -> Path:
    """Where the shared folder lives when ``$VAQUERO_BMC_GUARD_DIR`` is not set."""
    if os.geteuid() == 0:
        return Path("/run/vaquero/bmc-guard")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "vaquero-bmc-guard"
    return Path(tempfile.gettempdir()) / f"vaquero-{os.geteuid()}" / "bmc-guard"


def configured_max_sessions() -> int:
    """``$VAQUERO_BMC_MAX_SESSIONS`` (1-1024), else 16. A value that is not such a number is an error:
    guessing a limit for the management network would be worse than stopping."""
    raw = os.environ.get(MAX_SESSIONS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_SESSIONS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SESSIONS_CAP:
        raise GuardConfigError(f"${MAX_SESSIONS_ENV} must be a whole number from 1 to {MAX_SESSIONS_CAP}, not {raw[:40]!r}")
    return int(raw)


def configured_guard_dir() -> Path:
    raw = os.environ.get(GUARD_DIR_ENV, "").strip()
    if raw:
        if not os.path.isabs(raw):
            raise GuardDirError(f"${GUARD_DIR_ENV} must be an absolute path, not {raw!r}")
        return Path(raw)
    return default_guard_dir()


def _check_private(st: os.stat_result, path: Path) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise GuardDirError(f"{path} is not a folder")
    if st.st_uid != os.geteuid():
        raise GuardDirError(f"{path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})")
    if st.st_mode & 0o022:
        raise GuardDirError(f"{path} is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):o})")


def _check_parent(path: Path) -> None:
    """Nobody else may replace the folder: its parent belongs to us or root and only they write to
    it, or it is sticky (like /tmp), where only the owner of an entry can rename it."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise GuardDirError(f"{path} (the parent of the BMC guard folder) is not a folder")
    if st.st_uid not in (0, os.geteuid()):
        raise GuardDirError(f"{path} (the parent of the BMC guard folder) belongs to uid {st.st_uid}")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise GuardDirError(f"{path} (the parent of the BMC guard folder) is writable by others and not sticky")


def open_guard_dir(path: Path) -> int:
    """Create ``path`` (0700) if needed, check it and return an O_DIRECTORY descriptor of it."""
    for p in reversed(path.parents):  # create the missing parents 0700; existing ones are left alone
        if not p.exists():
            with contextlib.suppress(FileExistsError):
                os.mkdir(p, 0o700)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    _check_parent(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise GuardDirError(f"{path} is a symbolic link or not a folder") from None
        raise
    try:
        _check_private(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def bmc_file_stem(key: str) -> str:
    # hashed: a BMC key holds an address and a port, never a valid or safe file name by itself
    return "bmc-" + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass
class BreakerState:
    failures: int = 0
    open_until: float = 0.0  # CLOCK_MONOTONIC; 0: closed


class Held:
    """One flock held by this process; :meth:`release` closes the descriptor, which unlocks it."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class FleetDir:
    """The shared folder, opened and checked once per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dfd = open_guard_dir(path)

    def _open(self, name: str) -> int:
        fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=self._dfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise GuardDirError(f"{self.path / name} is not a regular file of this user")
        return fd

    def _poll(self, names: list[str], deadline: float, check: Callable[[], None] | None) -> Held | None:
        """Lock the first of ``names`` that is free, polling until ``deadline``; None when none came free."""
        fds = [self._open(n) for n in names]
        try:
            pause = _POLL_FIRST
            rng = random.Random()
            while True:
                order = list(range(len(fds)))
                rng.shuffle(order)  # waiters spread over the slots instead of all trying slot 0 first
                for i in order:
                    try:
                        fcntl.flock(fds[i], fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    held = Held(fds.pop(i))
                    return held
                now = time.monotonic()
                if now >= deadline:
                    return None
                if check is not None:
                    check()
                time.sleep(min(rng.uniform(pause / 2, pause), max(0.0, deadline - now)))
                pause = min(_POLL_MAX, pause * 2)
        finally:
            for fd in fds:
                os.close(fd)

    def lock_bmc(self, key: str, deadline: float, check: Callable[[], None] | None = None) -> Held | None:
        """The BMC's lock, or None if another holder kept it until ``deadline``; ``check`` runs
        between polls (the breaker: a BMC that went dead meanwhile fails the wait fast)."""
        return self._poll([bmc_file_stem(key) + ".lock"], deadline, check)

    def take_slot(self, limit: int, deadline: float) -> Held | None:
        """One of the ``limit`` global slots, or None if all stayed taken until ``deadline``.

        Waiters are served in the order they came (a ticket queue): with 50 processes polling,
        first-free-wins would let an unlucky one starve past its deadline while later ones pass.
        Only the head of the queue tries the slots. A waiter holds a lock on its ticket file while it
        waits; the queue skips a ticket whose file is unlocked (its waiter gave up or died)."""
        names = [f"slot-{i:04d}.lock" for i in range(limit)]
        ticket, ticket_held = self._take_ticket()
        try:
            pause = _POLL_FIRST
            while True:
                serving = self._serving()
                if serving >= ticket:  # our turn (or the queue already moved past us: never wait behind nothing)
                    held = self._poll(names, time.monotonic(), None)  # one pass over the slots
                    if held is not None:
                        self._advance(ticket)
                        return held
                elif serving < ticket and not self._ticket_alive(serving):
                    self._advance(serving)
                    continue
                if time.monotonic() >= deadline:
                    self._advance(ticket)
                    return None
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(_POLL_MAX / 2, pause * 1.5)
        finally:
            ticket_held.release()
            with contextlib.suppress(OSError):
                os.unlink(f"ticket-{ticket}", dir_fd=self._dfd)

    @contextlib.contextmanager
    def _queue_locked(self) -> Iterator[None]:
        fd = self._open("queue.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a few system calls only
            yield
        finally:
            os.close(fd)

    def _read_queue(self) -> tuple[int, int]:
        try:
            fd = os.open("queue.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dfd)
        except FileNotFoundError:
            return 0, 0
        try:
            raw = os.read(fd, 256)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw)
            nxt, serving = data["next"], data["serving"]
            if type(nxt) is not int or type(serving) is not int or not 0 <= serving <= nxt:
                raise ValueError("bad queue")
        except (ValueError, KeyError, TypeError):
            return 0, 0  # a damaged queue restarts empty; the slots themselves stay exact
        return nxt, serving

    def _write_queue(self, nxt: int, serving: int) -> None:
        fd = os.open("queue.json.tmp", _FILE_FLAGS | os.O_TRUNC, 0o600, dir_fd=self._dfd)
        try:
            os.write(fd, json.dumps({"next": nxt, "serving": serving}).encode())
        finally:
            os.close(fd)
        os.replace("queue.json.tmp", "queue.json", src_dir_fd=self._dfd, dst_dir_fd=self._dfd)

    def _take_ticket(self) -> tuple[int, Held]:
        with self._queue_locked():
            nxt, serving = self._read_queue()
            while True:
                # the ticket file is locked before the queue says the ticket exists: it is never seen unlocked while alive
                fd = self._open(f"ticket-{nxt}")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # only after a damaged queue restarted its numbers: a live waiter has it
                    os.close(fd)
                    nxt += 1
                    continue
                self._write_queue(nxt + 1, min(serving, nxt))
                return nxt, Held(fd)

    def _serving(self) -> int:
        return self._read_queue()[1]

    def _ticket_alive(self, ticket: int) -> bool:
        try:
            fd = os.open(f"ticket-{ticket}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dfd)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _advance(self, ticket: int) -> None:
        """The queue moves past ``ticket`` (served, gone or given up), unless it already has."""
        with self._queue_locked():
            nxt, serving = self._read_queue()
            if serving == ticket:
                self._write_queue(nxt, ticket + 1)

    def read_breaker(self, key: str, threshold: int, reset: float) -> BreakerState:
        """The BMC's breaker as the last writer left it. A file that does not parse gives a half-open
        breaker (one trial call, one more failure opens it), never a wedged or a silently closed one."""
        name = bmc_file_stem(key) + ".json"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dfd)
        except FileNotFoundError:
            return BreakerState()
        try:
            raw = os.read(fd, _BREAKER_MAX_BYTES + 1)
        finally:
            os.close(fd)
        try:
            if len(raw) > _BREAKER_MAX_BYTES:
                raise ValueError("too large")
            data = json.loads(raw)
            failures, open_until = data["failures"], data["open_until"]
            if type(failures) is not int or type(open_until) not in (int, float) or failures < 0 or open_until < 0:
                raise ValueError("bad types")
        except (ValueError, KeyError, TypeError):
            return BreakerState(failures=max(0, threshold - 1), open_until=0.0)
        # CLOCK_MONOTONIC restarts at boot; a folder that survived one must not hold a circuit open for days
        return BreakerState(failures=min(failures, 1_000_000), open_until=min(float(open_until), time.monotonic() + reset))

    def write_breaker(self, key: str, state: BreakerState) -> None:
        """Replace the BMC's breaker file atomically; the caller holds the BMC's lock."""
        stem = bmc_file_stem(key)
        body = json.dumps({"failures": state.failures, "open_until": state.open_until}).encode()
        tmp = stem + ".json.tmp"
        fd = os.open(tmp, _FILE_FLAGS | os.O_TRUNC, 0o600, dir_fd=self._dfd)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(tmp, stem + ".json", src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
