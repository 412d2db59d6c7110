"""The keeper of one playbook launch: no process the launch starts outlives it, however it detaches.

Why it exists: ansible-runner cancels a playbook by SIGKILLing the process group of
ansible-playbook. Ansible's workers leave that group at once (``os.setsid()`` in
``ansible.executor.process.worker``), and so can anything below them (``async``, ``setsid``, a
daemon's double fork). Killing the group killed ansible-playbook alone: its workers, the modules
and commands under them ran on, orphaned, a cancelled or deposed run still driving BMCs.

The keeper sits between ansible-runner and ansible-playbook (``python -I reaper.py --parent PID
--token T -- ansible-playbook ...``). It is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a
process below it whose parent dies is re-parented to the keeper, never to init, so every process
of the launch stays its descendant. When ansible-playbook ends, or on SIGTERM (the runner's
cancel, see :func:`stop`), or when the controller that started it dies (``PR_SET_PDEATHSIG``), it
SIGKILLs its descendants until it has none left: ``waitpid`` answering ECHILD is the read-back
that nothing of the launch remains. It then exits with ansible-playbook's status (0 after a
stop), or :data:`LEFT_BEHIND` naming on stderr what would not die within the time allowed.

This file runs as a script under ``python -I``: standard library only.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time
from pathlib import Path

# The keeper's exit status when processes of the launch were still there at its deadline
# (stuck in uninterruptible sleep, say). No ansible-playbook exit status is this.
LEFT_BEHIND = 117
# How long the keeper goes on killing before it gives up and says what is left.
KILL_TIMEOUT = 10.0

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}, {value}): {os.strerror(err)}")


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:  # gone since /proc was listed
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after the last ")" are fixed.
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def descendants(root: int) -> list[int]:
    """Every process below `root` now, read from /proc (zombies included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap(main: int) -> tuple[bool, int | None]:
    """Reap every child that has ended: (whether any child is left, `main`'s exit code if it ended)."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False, code
        if pid == 0:
            return True, code
        if pid == main:
            code = os.waitstatus_to_exitcode(status)
            code = code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


def kill_all(timeout: float = KILL_TIMEOUT) -> list[int]:
    """SIGKILL every descendant until none is left (the caller must be a subreaper); the pids still there at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left, _ = _reap(-1)
        if not left:
            return []
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return descendants(os.getpid())
        # A process killed above re-parents its children to us as it dies, then SIGCHLD comes: look again.
        signal.sigtimedwait({signal.SIGCHLD}, min(0.1, remaining))


def _describe(pids: list[int]) -> str:
    # The program name only: a command line may carry what an operator templated into a hook.
    out = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
        except (OSError, ValueError):
            name = "exited"
        out.append(f"{pid} ({name})")
    return ", ".join(out)


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[0] != "--parent" or argv[2] != "--token" or argv[4] != "--":
        print("usage: reaper.py --parent PID --token TOKEN -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    parent, command = int(argv[1]), argv[5:]
    # Signals are taken synchronously (sigwaitinfo): blocked before anything is started, so none is missed.
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the controller died before the line above: start nothing
        return 1
    try:
        main_pid = os.posix_spawnp(command[0], command, os.environ, setsigmask=())
    except OSError as exc:
        print(f"vaquero reaper: cannot start {command[0]}: {exc}", file=sys.stderr)
        return 127
    code: int | None = None
    stopped = False
    while code is None:
        info = signal.sigwaitinfo(_WATCHED)
        if info.si_signo != signal.SIGCHLD:
            stopped = True
            break
        _, code = _reap(main_pid)
    if not stopped and (leftover := descendants(os.getpid())):
        # e.g. an `async` task still under way, or a daemon a command started: the launch is over, so are they
        print(f"vaquero reaper: the playbook ended; stopping what it left running: {_describe(leftover)}", file=sys.stderr)
    left = kill_all()
    if left:
        print(f"vaquero reaper: {len(left)} process(es) of the launch would not die in {KILL_TIMEOUT:g}s: {_describe(left)}", file=sys.stderr)
        return LEFT_BEHIND
    return 0 if stopped or code is None else code


# -- the controller's side ------------------------------------------------------------------------


def command(playbook_command: list[str], token: str) -> list[str]:
    """`playbook_command` run under a keeper; `token` finds it again (:func:`find`)."""
    return [sys.executable, "-I", str(Path(__file__).resolve()), "--parent", str(os.getpid()), "--token", token, "--", *playbook_command]


def find(token: str) -> int | None:
    """The pid of this process's keeper started with `token`, None if there is none (yet, or any more)."""
    for pid in descendants(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[3:7] == [b"--parent", str(os.getpid()).encode(), b"--token", token.encode()]:
            return pid
    return None


def stop(pid: int, timeout: float = KILL_TIMEOUT + 5) -> str | None:
    """Stop the keeper `pid` (a child of this process) and everything of its launch.

    Returns None once the keeper has read back that no process of the launch is left, else why
    that is not known. The keeper is left a zombie for its owner (pexpect) to reap: WNOWAIT.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return f"keeper {pid} vanished before it could be stopped"
    try:
        os.kill(pid, signal.SIGTERM)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return f"keeper {pid} did not finish within {timeout:g}s"
    finally:
        os.close(pidfd)
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    if info is None:
        return f"keeper {pid} did not finish within {timeout:g}s"
    if info.si_code != os.CLD_EXITED:
        return f"keeper {pid} was killed by signal {info.si_status} before it could read back that the launch's processes were gone"
    if info.si_status == LEFT_BEHIND:
        return f"keeper {pid}: processes of the launch would not die (its message is in the launch's stdout)"
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
