"""A cancelled or deposed run leaves no process behind, with real ansible-playbook launches.

Ansible's workers call setsid(), so ansible-runner's cancel (SIGKILL to ansible-playbook's process
group) used to kill ansible-playbook alone: the workers and whatever they ran lived on. The
playbook here makes that worse on purpose: a task starts a daemon in a session of its own with an
empty environment, then the worker waits in a long command. A process counts as the run's when
its command line or its environment names this test's FAKE_DIR (unique per test).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from requirements import need
from waiting import wait_until

from vaquero.plan import make_plan
from vaquero.runner import reaper
from vaquero.runner import records as R
from vaquero.runner.worker import RunWorker
from vaquero.sot import empty_sot, load
from vaquero.state.leader import LeaderElector
from vaquero.state.machine import current
from vaquero.state.sqlite import SQLiteStore

ESCAPING = textwrap.dedent(
    """\
    - name: A playbook whose processes leave ansible-playbook's session
      hosts: all
      gather_facts: false
      connection: local
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
      tasks:
        - {name: Off, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: powering_off, reason: fake}}
        - name: A daemon in a session of its own, its parent gone, its environment empty
          ansible.builtin.command: >-
            setsid -f env -i {{ ansible_playbook_python }} -c "import time; time.sleep(3600)" {{ lookup('env', 'FAKE_DIR') }}
          changed_when: false
        - {name: Netboot, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: netbooting, reason: fake}}
        - name: Work (the host's Ansible worker waits here)
          ansible.builtin.command: sleep 3600
          changed_when: false
    """
)


def processes_of(fake: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line or environment names `fake`."""
    marker = str(fake).encode()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if marker in cmdline or b"FAKE_DIR=" + marker in environ:
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def session_leaders(pids: dict[int, str]) -> list[str]:
    out = []
    for pid, cmd in pids.items():
        with contextlib.suppress(OSError, ValueError):
            if os.getsid(pid) == pid:
                out.append(cmd)
    return out


def kill(pids: dict[int, str]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def escaping(content: Path, lab_sot: Path, tmp_path: Path):
    """The lab plan approved, its install playbook replaced with ESCAPING; yields (store, FAKE_DIR)."""
    need("setsid", "util-linux")
    (tmp_path / "content" / "playbooks" / "install.yml").write_text(ESCAPING)
    store = SQLiteStore(tmp_path / "state.db")
    plan = make_plan(empty_sot(), load(lab_sot, sha="a" * 40))
    store.put(R.plan_key("p1"), {"id": "p1", "sha": "a" * 40, "root": str(lab_sot), "state": "approved", "plan": plan.to_dict(), "cancel_requested": False})
    try:
        yield store, content
    finally:
        kill(processes_of(content))  # a failing test leaves nothing running either
        store.close()


def under_way(store: SQLiteStore, fake: Path) -> None:
    """Both hosts of wave 1 past their daemon task, their workers in the long command."""
    wait_until(lambda: all((current(store, h) or {}).get("state") == "netbooting" for h in ("node1", "node2")), 120, "node1 and node2 to netboot")
    wait_until(lambda: sum("sleep 3600" in c for c in processes_of(fake).values()) == 2, 60, "both workers to be in their long command")


def test_abort_leaves_no_process_of_the_run(escaping) -> None:
    store, fake = escaping
    worker = RunWorker(store, fake.parent / "data")
    t = threading.Thread(target=worker.tick)
    t.start()
    under_way(store, fake)
    before = processes_of(fake)
    assert len([c for c in before.values() if "time.sleep(3600)" in c]) == 2, before
    R.update(store, R.plan_key("p1"), lambda p: {**p, "cancel_requested": True})
    t.join(120)
    assert not t.is_alive(), "the cancel did not stop the playbook"
    assert store.get(R.run_key("p1")).value["state"] == "cancelled"
    # The run is reported stopped: by then every process of it is gone (read back, not waited for here).
    assert processes_of(fake) == {}


def test_lost_leadership_leaves_no_process_of_the_run(escaping) -> None:
    store, fake = escaping
    elector = LeaderElector(store, name="controller", identity="a", ttl=2).start()
    try:
        assert elector.wait_for_leadership(30)
        worker = RunWorker(store, fake.parent / "data", elector=elector, heartbeat=60)
        t = threading.Thread(target=worker.tick)
        t.start()
        under_way(store, fake)
        elector.stop(resign=False)  # cut off: the worker sees its leadership end and cancels the playbook
        t.join(120)
        assert not t.is_alive(), "the lost leadership did not stop the playbook"
        assert processes_of(fake) == {}
        # Left for the next leader, not marked failed by the deposed one.
        assert store.get(R.step_key("p1", "node1")).value["state"] == "running"  # type: ignore[union-attr]
    finally:
        elector.stop()


def test_without_the_keeper_the_workers_escape_the_cancel(escaping, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: with ansible-playbook launched as ansible-runner does it, the same cancel leaves
    the setsid() workers, their commands and the daemon running. (Proves the tests above can fail.)"""
    store, fake = escaping
    monkeypatch.setattr(reaper, "command", lambda playbook_command, token: playbook_command)
    worker = RunWorker(store, fake.parent / "data")
    t = threading.Thread(target=worker.tick)
    t.start()
    under_way(store, fake)
    R.update(store, R.plan_key("p1"), lambda p: {**p, "cancel_requested": True})
    t.join(120)
    assert not t.is_alive()
    left = processes_of(fake)
    try:
        assert sum("ansible-playbook" in c for c in session_leaders(left)) == 2, left  # the two workers
        assert sum("time.sleep(3600)" in c for c in left.values()) == 2, left
        # Without the keeper nothing confirms the launch stopped: the step says so.
        assert "not known to be gone" in store.get(R.step_key("p1", "node1")).value["error"]  # type: ignore[union-attr]
    finally:
        kill(left)
    wait_until(lambda: not processes_of(fake), 30, "the leftovers to die")


def test_keeper_passes_the_status_on_and_stops_what_a_command_left(tmp_path: Path) -> None:
    """No Ansible: the keeper alone. A command that detaches a daemon (new session, parent gone) and
    exits 3: the keeper exits 3 once the daemon is gone."""
    need("setsid", "util-linux")
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    # The command ends only once the daemon is up (it writes to the fifo): the keeper has something to stop.
    daemon = f"import time; open('{fifo}', 'w').write('up'); time.sleep(3600)"
    script = f'setsid -f {sys.executable} -c "{daemon}" {tmp_path}; read up < {fifo}; test "$up" = up && exit 3'
    env = {**os.environ, "FAKE_DIR": str(tmp_path)}  # marks every process below, for processes_of
    proc = subprocess.run(reaper.command(["sh", "-c", script], "t"), capture_output=True, text=True, timeout=60, env=env)
    try:
        assert proc.returncode == 3, proc.stderr
        assert "stopping what it left running" in proc.stderr and "(python" in proc.stderr, proc.stderr
        assert processes_of(tmp_path) == {}
    finally:
        kill(processes_of(tmp_path))


def test_keeper_stop_reads_back_and_answers_none(tmp_path: Path) -> None:
    """reaper.stop on a keeper whose command detached a daemon: None (all gone), the keeper left for its owner to reap."""
    need("setsid", "util-linux")
    ready = tmp_path / "ready"
    script = f'setsid -f {sys.executable} -c "import time; time.sleep(3600)" {tmp_path}; touch {ready}; exec sleep 3600'
    proc = subprocess.Popen(reaper.command(["sh", "-c", script], "tok"), env={**os.environ, "FAKE_DIR": str(tmp_path)})
    try:
        wait_until(ready.exists, 30, "the command to start its daemon")
        assert reaper.find("tok") == proc.pid
        assert reaper.stop(proc.pid) is None
        assert processes_of(tmp_path) == {}
        assert proc.wait(10) == 0
    finally:
        kill(processes_of(tmp_path))
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)


PARENT = """
import subprocess, sys
from vaquero.runner import reaper
subprocess.Popen(reaper.command(["sh", "-c", sys.argv[1]], "dies")).wait()
"""


def test_a_dying_controller_takes_its_launch_along(tmp_path: Path) -> None:
    """The process that started the keeper is SIGKILLed (nothing of it runs cleanup): the keeper is told
    (PR_SET_PDEATHSIG) and stops the launch, a detached daemon included."""
    need("setsid", "util-linux")
    ready = tmp_path / "ready"
    script = f'setsid -f {sys.executable} -c "import time; time.sleep(3600)" {tmp_path}; touch {ready}; exec sleep 3600'
    env = {**os.environ, "PYTHONPATH": str(Path(reaper.__file__).parents[2]), "FAKE_DIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, script], env=env)
    try:
        wait_until(ready.exists, 30, "the command to start its daemon")
        assert any("time.sleep(3600)" in c for c in processes_of(tmp_path).values())
        parent.kill()
        parent.wait(10)
        wait_until(lambda: not processes_of(tmp_path), 30, "the launch of the dead controller to be stopped")
    finally:
        kill(processes_of(tmp_path))
        with contextlib.suppress(ProcessLookupError):
            parent.kill()
        parent.wait(10)
