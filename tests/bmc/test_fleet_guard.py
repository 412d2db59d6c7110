"""One guard for the fleet: the per-BMC lock, the global limit and the breaker hold across processes.

Every proof is counted by the peers: the emulated IPMI BMCs (vaquero.bmc.emulator, pyghmi's
server) count the RMCP+ sessions open on them at once; a dead Redfish BMC (a TCP listener that
drops every request) counts the connections it accepted. The callers are separate Python processes
and real ansible-playbook runs of the vaquero.metal.power module (one process per module run).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from bmc_helpers import PASSWORD, USERNAME, free_port, stop
from waiting import wait_until

from vaquero.bmc import BmcCircuitOpen, BmcUnreachable, Endpoint, Guard, GuardPolicy, open_bmc
from vaquero.bmc.emulator import system_uuid_for
from vaquero.bmc.fleetguard import GUARD_DIR_ENV, MAX_SESSIONS_ENV, FleetDir, GuardConfigError, GuardDirError, configured_max_sessions

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Generous: these tests wait for work on a loaded 2-core machine; nothing here asserts a duration.
LONG = 600.0


# --- peers -----------------------------------------------------------------------------------


@dataclass
class Fleet:
    port: int
    count: int
    control: int
    proc: subprocess.Popen

    def get(self, path: str = "/") -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control}{path}", timeout=30) as r:
            return json.loads(r.read())

    def reset_sessions(self) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}/sessions/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["ok"]

    def endpoint(self, i: int = 0) -> Endpoint:
        return Endpoint("ipmi", "127.0.0.1", USERNAME, PASSWORD, host=f"node{i:03d}", port=self.port + i)


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(count: int, latency: float, power_delay: float = 0.0) -> Fleet:
        pw = tmp_path / "emulator-pw"
        pw.write_text(PASSWORD)
        port, control = free_port(socket.SOCK_DGRAM, count), free_port()
        cmd = [sys.executable, "-m", "vaquero.bmc.emulator", "--port", str(port), "--count", str(count), "--username", USERNAME]
        cmd += ["--password-file", str(pw), "--control-port", str(control), "--latency", str(latency), "--acpi-delay", "0"]
        cmd += ["--power-delay", str(power_delay)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        fleet = Fleet(port, count, control, proc)
        wait_until(lambda: fleet.get(), timeout=120, what="the emulated IPMI fleet")
        return fleet

    yield start
    for p in procs:
        stop(p)


class DeadRedfish:
    """A BMC that accepts TCP connections and drops every request unanswered; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._mu = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._mu:
                self.accepted += 1
            conn.close()

    def count(self) -> int:
        with self._mu:
            return self.accepted

    def endpoint(self) -> Endpoint:
        return Endpoint("redfish", "127.0.0.1", USERNAME, PASSWORD, host="deadhost", port=self.port, scheme="http")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dead_redfish() -> Iterator[DeadRedfish]:
    d = DeadRedfish()
    yield d
    d.close()


@pytest.fixture
def guard_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh shared folder for this test, for this process and every child it starts."""
    d = tmp_path / "guard"
    monkeypatch.setenv(GUARD_DIR_ENV, str(d))
    return d


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "controller"), **extra}


# --- the folder ------------------------------------------------------------------------------


def test_guard_dir_is_created_private_and_untrusted_folders_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "a" / "guard"
    FleetDir(good)
    assert oct(good.stat().st_mode & 0o777) == "0o700"

    loose = tmp_path / "loose"
    loose.mkdir(mode=0o700)
    loose.chmod(0o770)
    with pytest.raises(GuardDirError, match="writable by its group"):
        FleetDir(loose)

    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    with pytest.raises(GuardDirError, match="belongs to uid 65534"):
        FleetDir(foreign)

    link = tmp_path / "link"
    link.symlink_to(good)
    with pytest.raises(GuardDirError, match="symbolic link"):
        FleetDir(link)

    open_parent = tmp_path / "open"
    open_parent.mkdir()
    open_parent.chmod(0o777)  # anyone could rename the guard folder away and put their own in its place
    with pytest.raises(GuardDirError, match="not sticky"):
        FleetDir(open_parent / "guard")


def test_the_session_limit_comes_from_the_environment_and_a_bad_value_is_refused(monkeypatch: pytest.MonkeyPatch, guard_dir: Path) -> None:
    monkeypatch.delenv(MAX_SESSIONS_ENV, raising=False)
    assert configured_max_sessions() == 16 and Guard(guard_dir=guard_dir).concurrency == 16
    monkeypatch.setenv(MAX_SESSIONS_ENV, " 5 ")
    g = Guard(guard_dir=guard_dir)
    # children (ansible-playbook and its modules) get the folder and the same limit
    assert g.concurrency == 5 and g.child_env() == {GUARD_DIR_ENV: str(guard_dir), MAX_SESSIONS_ENV: "5"}
    for bad in ("0", "-3", "1025", "four", "1e3", "16 sessions"):
        monkeypatch.setenv(MAX_SESSIONS_ENV, bad)
        with pytest.raises(GuardConfigError, match=MAX_SESSIONS_ENV):
            Guard(guard_dir=guard_dir)


def test_unusable_folder_falls_back_to_the_in_process_guard_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    g = Guard(concurrency=2, guard_dir=loose)
    with caplog.at_level(logging.WARNING, logger="vaquero.bmc"):
        assert g.run(Endpoint("ipmi", "10.0.0.1", "u", "p"), "op", lambda: 41) == 41
        assert g.run(Endpoint("ipmi", "10.0.0.1", "u", "p"), "op", lambda: 42) == 42
    warnings = [r for r in caplog.records if "shared folder unusable" in r.getMessage()]
    assert len(warnings) == 1 and g.fleet() is None and g.child_env() == {}


def test_a_corrupt_breaker_file_gives_one_trial_call_not_a_wedged_bmc(guard_dir: Path) -> None:
    g = Guard(policy=GuardPolicy(breaker_threshold=3, breaker_reset=60, retries=0), guard_dir=guard_dir)
    ep = Endpoint("ipmi", "10.0.0.9", "u", "p", port=623)
    g.run(ep, "op", lambda: None)
    fleet = g.fleet()
    assert fleet is not None
    from vaquero.bmc.fleetguard import bmc_file_stem

    (guard_dir / (bmc_file_stem(ep.key) + ".json")).write_text("{not json")
    assert g.breaker_state(ep.key) == "closed"  # half-open counts as closed until a failure

    def dead() -> None:
        raise BmcUnreachable(ep.host, "no answer")

    with pytest.raises(BmcUnreachable):
        g.run(ep, "op", dead)
    assert g.breaker_state(ep.key) == "open"  # the one trial failed: open at once


# --- across processes ------------------------------------------------------------------------

_SESSIONS_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vaquero.bmc import Endpoint, GuardPolicy, open_bmc
    port, rounds, go = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    ep = Endpoint("ipmi", "127.0.0.1", "@USER@", "@PASSWORD@", host="node000", port=port)
    Path(sys.argv[4]).write_text("ready")
    while not go.exists():  # both processes start their sessions together
        time.sleep(0.01)
    for _ in range(rounds):
        with open_bmc(ep, policy=GuardPolicy(attempt_timeout=120, deadline=300)) as bmc:
            bmc.get_power_state()
            bmc.set_boot_device("pxe", persistent=False, mode="uefi")
            bmc.get_boot_device()
    """
).replace("@USER@", USERNAME).replace("@PASSWORD@", PASSWORD)


def _two_processes_on_one_bmc(tmp_path: Path, fleet: Fleet, dirs: tuple[Path, Path], rounds: int) -> int:
    """Peak of sessions open at once on BMC 0 while two processes each open ``rounds`` sessions."""
    script = tmp_path / "sessions.py"
    script.write_text(_SESSIONS_SCRIPT)
    go = tmp_path / f"go-{dirs[0].name}"
    before = fleet.get()[str(fleet.port)]["counts"].get("set_boot", 0)
    fleet.reset_sessions()
    procs, marks = [], []
    for i, d in enumerate(dirs):
        mark = tmp_path / f"ready-{d.name}-{i}"
        marks.append(mark)
        env = child_env(**{GUARD_DIR_ENV: str(d)})
        procs.append(subprocess.Popen([sys.executable, str(script), str(fleet.port), str(rounds), str(go), str(mark)], env=env))
    wait_until(lambda: all(m.exists() for m in marks), timeout=LONG, what="both clients started")
    go.touch()
    for p in procs:
        assert p.wait(LONG) == 0
    st = fleet.get()[str(fleet.port)]
    assert st["counts"]["set_boot"] - before == 2 * rounds  # none lost, none done twice
    assert st["sessions"]["open"] == 0  # every session logged out
    return st["sessions"]["peak"]


def test_two_processes_never_share_one_bmc_counted_at_the_bmc(tmp_path: Path, fleet_factory) -> None:
    fleet = fleet_factory(1, latency=0.05)
    shared = tmp_path / "shared-guard"
    peak = _two_processes_on_one_bmc(tmp_path, fleet, (shared, shared), rounds=6)
    assert peak == 1, "two processes held sessions on the same BMC at once through one guard folder"

    # the control: each process with its own folder (no shared guard) does overlap at the BMC,
    # so the measurement above can see an overlap when there is one
    peak = _two_processes_on_one_bmc(tmp_path, fleet, (tmp_path / "own-a", tmp_path / "own-b"), rounds=6)
    assert peak == 2


_BREAKER_SCRIPT = textwrap.dedent(
    """
    import sys
    from vaquero.bmc import BmcError, Endpoint, GuardPolicy, open_bmc
    ep = Endpoint("redfish", "127.0.0.1", "u", "p", host="deadhost", port=int(sys.argv[1]), scheme="http")
    try:
        with open_bmc(ep, policy=GuardPolicy(attempt_timeout=60, deadline=120, retries=0)) as bmc:
            bmc.get_power_state()
    except BmcError as exc:
        print(exc.kind)
    """
)


def test_breaker_counts_failures_of_separate_processes(tmp_path: Path, guard_dir: Path, dead_redfish: DeadRedfish) -> None:
    script = tmp_path / "breaker.py"
    script.write_text(_BREAKER_SCRIPT)

    def call() -> str:
        out = subprocess.run([sys.executable, str(script), str(dead_redfish.port)], env=child_env(), capture_output=True, text=True, timeout=LONG)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    # one attempt per process (retries=0), threshold 3: the third process's failure opens the circuit
    assert [call() for _ in range(3)] == ["unreachable"] * 3
    touched = dead_redfish.count()
    assert touched >= 3
    assert call() == "circuit_open"
    assert dead_redfish.count() == touched  # the fourth process never reached the BMC

    # and this process, sharing the folder, sees the same open circuit. Its own guard: the process-wide
    # default resolves its folder once, at whichever earlier test first used it.
    mine = Guard(guard_dir=guard_dir)
    with pytest.raises(BmcCircuitOpen), open_bmc(dead_redfish.endpoint(), guard=mine, policy=GuardPolicy(retries=0)) as bmc:
        bmc.get_power_state()
    assert dead_redfish.count() == touched


# --- through ansible-playbook ----------------------------------------------------------------

# A power-on shows after 3 s, as on real servers: the module's session (login, read, power on, read
# back until on, logout) lasts that long, so 12 forks overlap far beyond a limit of 4 sessions
# without the shared limit. Each command is answered in 50 ms, well inside pyghmi's 0.5 s
# retransmit timer (a retransmitted request would be executed twice and spoil the count of
# operations). The wave is 24 hosts and 12 forks with the limit set to 4 through
# $VAQUERO_BMC_MAX_SESSIONS: forks at three times the limit, as 50 forks against the default 16,
# in a quarter of the module processes (the suite's time goes to starting them).
WAVE_BMCS = {"latency": 0.05, "power_delay": 3.0}
WAVE_HOSTS, WAVE_FORKS, WAVE_LIMIT = 24, 12, 4


def _inventory(tmp: Path, hosts: dict[str, dict]) -> Path:
    pw = tmp / "bmc-password"
    pw.write_text(PASSWORD)
    pw.chmod(0o600)
    inv = {"all": {"children": {"fleet": {"hosts": {}}}}}
    for name, bmc in hosts.items():
        inv["all"]["children"]["fleet"]["hosts"][name] = {
            "vaquero_bmc": {"username": USERNAME, "password_file": str(pw), **bmc},
            # the machine the emulated BMC is (power.yml checks the BMC's system UUID first)
            "vaquero_host": {"power": "on", "uuid": str(system_uuid_for(bmc["port"]))},
        }
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def run_power_playbook(tmp: Path, inventory: Path, forks: int, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """playbooks/power.yml, as an operator runs it: one module process per host and task."""
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(env_extra or {})}
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), "--forks", str(forks), "--limit", "fleet"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}", str(ROOT / "playbooks" / "power.yml")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3 * LONG)


def _power_module_once(tmp: Path, dead: DeadRedfish) -> dict:
    """One run of the vaquero.metal.power module (its own process) against the dead BMC; its result."""
    (tmp / "pw.yml").write_text(yaml.safe_dump({"bmc_password": PASSWORD}))
    task = {
        "name": "power",
        "vaquero.metal.power": {
            "bmc_type": "redfish",
            "bmc_scheme": "http",
            "bmc_address": "127.0.0.1",
            "bmc_port": dead.port,
            "bmc_username": USERNAME,
            "bmc_password": "{{ bmc_password }}",
            "host_name": "deadhost",
            "state": "on",
        },
        "register": "r",
        "ignore_errors": True,
    }
    dump = tmp / "result.json"
    collect = {"name": "collect", "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(dump), "mode": "0600"}}
    pb = tmp / "breaker.yml"
    pb.write_text(yaml.safe_dump([{"name": "dead bmc", "hosts": "localhost", "gather_facts": False, "tasks": [task, collect]}], sort_keys=False))
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{tmp / 'pw.yml'}"]
    cmd += ["-e", f"ansible_python_interpreter={sys.executable}", str(pb)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LONG)
    assert dump.exists(), out.stdout[-3000:] + out.stderr[-2000:]
    return json.loads(dump.read_text())


def test_module_breaker_survives_between_module_runs(tmp_path: Path, guard_dir: Path, dead_redfish: DeadRedfish) -> None:
    first = _power_module_once(tmp_path, dead_redfish)
    touched = dead_redfish.count()
    # the module retries (3 attempts): the failures it counts open the circuit, in the shared folder
    assert first["failed"] and first["error_kind"] == "unreachable" and touched == 3, first
    second = _power_module_once(tmp_path, dead_redfish)
    assert second["failed"] and second["error_kind"] == "circuit_open", second
    assert dead_redfish.count() == touched  # the second module process failed fast without touching the BMC


def test_wave_with_more_forks_than_the_limit_never_opens_more_sessions_than_it(tmp_path: Path, guard_dir: Path, fleet_factory) -> None:
    fleet = fleet_factory(WAVE_HOSTS, **WAVE_BMCS)
    inv = _inventory(tmp_path, {f"node{i:03d}": {"type": "ipmi", "address": "127.0.0.1", "port": fleet.port + i} for i in range(WAVE_HOSTS)})
    fleet.reset_sessions()
    out = run_power_playbook(tmp_path, inv, forks=WAVE_FORKS, env_extra={MAX_SESSIONS_ENV: str(WAVE_LIMIT)})
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    state = fleet.get()
    assert all(s["power"] == "on" for s in state.values())
    sessions = fleet.get("/sessions")
    odd = {p: s["counts"] for p, s in state.items() if s["counts"].get("power_on", 0) != 1}
    assert not odd, (odd, sessions["peak"])  # none lost, none done twice
    assert sessions["open"] == 0
    assert 1 < sessions["peak"] <= WAVE_LIMIT, sessions["peak"]
    assert max(s["sessions"]["peak"] for s in state.values()) == 1


def test_wave_without_the_shared_guard_does_exceed_the_limit(tmp_path: Path, fleet_factory) -> None:
    """The control of the test above: with the folder refused (world-writable), each module
    process only guards itself, and the BMCs see more sessions at once than the limit."""
    fleet = fleet_factory(WAVE_HOSTS, **WAVE_BMCS)
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    inv = _inventory(tmp_path, {f"node{i:03d}": {"type": "ipmi", "address": "127.0.0.1", "port": fleet.port + i} for i in range(WAVE_HOSTS)})
    fleet.reset_sessions()
    out = run_power_playbook(tmp_path, inv, forks=WAVE_FORKS, env_extra={GUARD_DIR_ENV: str(loose), MAX_SESSIONS_ENV: str(WAVE_LIMIT)})
    assert out.returncode == 0, out.stdout[-5000:]
    peak = fleet.get("/sessions")["peak"]
    print(f"control wave: peak {peak} sessions at once")
    assert peak > WAVE_LIMIT, peak


_HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vaquero.bmc import Endpoint, Guard, GuardPolicy
    guard_dir, address, mark = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    g = Guard(concurrency=1, policy=GuardPolicy(attempt_timeout=3600, deadline=3600, retries=0), guard_dir=guard_dir)

    def hold():
        mark.write_text("holding")
        while True:  # holds the BMC and the only slot until it is killed
            time.sleep(1)

    g.run(Endpoint("ipmi", address, "u", "p", port=623), "hold", hold)
    """
)


def test_a_killed_process_frees_its_bmc_its_slot_and_its_place_in_the_queue(tmp_path: Path) -> None:
    d = tmp_path / "guard"
    fleet = FleetDir(d)
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER_SCRIPT)
    mark = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, str(script), str(d), "10.0.0.1", str(mark)], env=child_env())
    waiter = None
    try:
        wait_until(mark.exists, timeout=LONG, what="the holder took the BMC and the slot")
        key = Endpoint("ipmi", "10.0.0.1", "u", "p", port=623).key
        now = time.monotonic
        assert fleet.lock_bmc(key, now()) is None  # held by the other process
        assert fleet.take_slot(1, now()) is None
        # a second process queues for the only slot (tickets 0: the holder, 1: this process's try above, 2: it), then dies in the queue
        waiter = subprocess.Popen([sys.executable, str(script), str(d), "10.0.0.2", str(tmp_path / "never")], env=child_env())
        wait_until(lambda: json.loads((d / "queue.json").read_text())["next"] >= 3, timeout=LONG, what="the waiter took a ticket")
        waiter.kill()
        waiter.wait(LONG)
        holder.kill()
        holder.wait(LONG)
        # the kernel dropped both processes' locks: the BMC and the slot are free, and the queue
        # skips the dead waiter's ticket instead of waiting for it
        bmc = fleet.lock_bmc(key, now() + LONG)
        slot = fleet.take_slot(1, now() + LONG)
        assert bmc is not None and slot is not None
        bmc.release()
        slot.release()
    finally:
        for p in (holder, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(LONG)
