"""Issue 10, item 17: a controller cut off from etcd mid-wave stops driving BMCs within the lease TTL.

Real peers only: a 3-member etcd cluster on loopback, two `vaquero server` processes (each reaches
etcd through its own TCP proxies, which the test can cut), and an emulated IPMI BMC fleet
(vaquero.bmc.emulator) that logs every command it executes with the CLOCK_MONOTONIC time and the
process chain of the sender (found from the UDP source port in /proc), so each operation is
attributed to the controller whose playbook sent it.

The plan powers three hosts off, one per wave, with a soft off that the emulated OS takes 7 s to
finish: the leader's playbook polls the BMC all that time. The leader is cut off from etcd right
after it asked node2's BMC to shut down. Asserted: no BMC command from the old leader later than
cut + TTL + 0.5 s (the issue's safety bound, the only timing assert), every later command comes
from the new leader, which resumes the run (it redoes the interrupted wave, then the others) and
completes it; the old leader stopped its run worker and its gate, the new one started both.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vaquero.bmc import FENCE_ENV, BmcFenced, Endpoint, Guard, open_bmc
from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.ansible import Launch, RunContext, record
from vaquero.runner.worker import RunWorker
from vaquero.sot import empty_sot, load
from vaquero.state.etcd import EtcdStore
from vaquero.state.leader import LeaderElector, NotLeader
from vaquero.state.machine import Event, current, transition
from vaquero.state.sqlite import SQLiteStore
from vaquero.state.store import FencedStore, FenceLost, Store

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "ha-fence-bmc-pw-7c1d"
TTL = 5.0  # the lease TTL of `vaquero server` (LeaderElector's default)
ACPI_DELAY = 7.0  # longer than TTL + 0.5 s: an unfenced playbook would still poll the BMC after the bound
HOSTS = ("node2", "node3", "node4")

# The emulator, with every executed command logged: time, BMC port, command, and the sender's
# process chain (the UDP source port's socket inode, found in /proc/net/udp{,6} and /proc/*/fd).
EMULATOR = r"""
import json, os, sys, time
from vaquero.bmc import emulator as E

LOG = open(os.environ["HA_BMC_LOG"], "a", buffering=1)
_owners = {}


def _inode(port):
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[9] != "0":
                return f[9]
    return None


def _owner(inode):
    pid = _owners.get(inode)
    if pid is not None and os.path.exists(f"/proc/{pid}"):
        return pid
    target = f"socket:[{inode}]"
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                if os.readlink(f"/proc/{d}/fd/{fd}") == target:
                    _owners[inode] = int(d)
                    return int(d)
        except OSError:
            continue
    return None


def _chain(pid):
    out = []
    while pid and pid > 1 and len(out) < 64:
        out.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return out


_orig = E.EmulatedBmc.handle_raw_request


def handle(self, request, session):
    t = time.monotonic()
    try:
        inode = _inode(session.sockaddr[1])
        pids = _chain(_owner(inode)) if inode else []
    except Exception as exc:
        pids = [f"error: {exc}"]
    LOG.write(json.dumps({"t": t, "bmc": self.port, "netfn": request.get("netfn"), "command": request.get("command"), "pids": pids}) + "\n")
    return _orig(self, request, session)


E.EmulatedBmc.handle_raw_request = handle
sys.exit(E.main(sys.argv[1:]))
"""


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _free_ports(n: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _free_udp_block(count: int) -> int:
    for base in range(21000, 60000, 89):
        socks = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP ports")


def _wait(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred()
            if value:
                return value
        except (httpx.HTTPError, OSError):
            pass  # not up yet
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class TcpProxy:
    """A loopback TCP relay to one etcd member; cut() drops every connection and stops listening."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.closed:
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            self.closed = True
            conns, self.conns = self.conns, []
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture(scope="module")
def etcd3() -> Iterator[list[int]]:
    """A real 3-member etcd cluster on loopback; yields the client ports."""
    etcd = shutil.which("etcd")
    assert etcd, "etcd is not installed (Debian etcd-server; scripts/setup.sh installs it)"
    base = Path(tempfile.mkdtemp(prefix="vaquero-etcd-ha-fence-"))
    ports = _free_ports(6)
    clients, peers = ports[:3], ports[3:]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peers[i]}" for i in range(3))
    procs = []
    try:
        for i in range(3):
            args = [etcd, "--name", f"m{i}", "--data-dir", str(base / f"m{i}")]
            args += ["--listen-client-urls", f"http://127.0.0.1:{clients[i]}", "--advertise-client-urls", f"http://127.0.0.1:{clients[i]}"]
            args += ["--listen-peer-urls", f"http://127.0.0.1:{peers[i]}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peers[i]}"]
            args += ["--initial-cluster", initial, "--initial-cluster-token", f"ha-fence-{base.name}", "--initial-cluster-state", "new"]
            args += ["--heartbeat-interval", "100", "--election-timeout", "1000"]
            with open(base / f"m{i}.log", "ab") as log:
                procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent))

        def healthy() -> bool:
            return all(httpx.get(f"http://127.0.0.1:{p}/health", timeout=1).json().get("health") == "true" for p in clients)

        _wait(healthy, 60, "the etcd cluster to be healthy")
        yield clients
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bmc_fleet(tmp_path: Path) -> Iterator[tuple[int, Path, int]]:
    """Four emulated IPMI BMCs (node1..node4) logging each executed command; yields (first port, log, control port)."""
    port = _free_udp_block(4)
    control = _free_ports(1)[0]
    pw = tmp_path / "bmc-pw"
    pw.write_text(PASSWORD)
    script = tmp_path / "logging_emulator.py"
    script.write_text(EMULATOR)
    log = tmp_path / "bmc-ops.jsonl"
    log.touch()
    cmd = [sys.executable, str(script), "--address", "127.0.0.1", "--port", str(port), "--count", "4", "--username", "admin"]
    cmd += ["--password-file", str(pw), "--control-port", str(control), "--acpi-delay", str(ACPI_DELAY)]
    # node1..node4's machines: power.yml and the roles check each BMC's system UUID against the SoT first.
    cmd += [a for _, _, h in load(REPO / "inventories" / "lab", semantic=False).hosts() for a in ("--uuid", str(h.uuid))]
    out = open(tmp_path / "emulator.out", "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HA_BMC_LOG": str(log)}, preexec_fn=_die_with_parent)
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{control}/", timeout=2).status_code == 200, 30, "the BMC emulator")
        yield port, log, control
    finally:
        proc.kill()
        proc.wait(10)
        out.close()


def _ops(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _messages(log: Path) -> list[str]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(str(json.loads(line).get("msg", "")))
    return out


def _start_server(tmp_path: Path, name: str, proxies: list[TcpProxy], prefix: str) -> tuple[subprocess.Popen[bytes], Path, int]:
    port = _free_ports(1)[0]
    log = tmp_path / f"server-{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}
    env["VAQUERO_LAB_BMC_PASSWORD"] = PASSWORD
    store = "etcd://" + ",".join(f"127.0.0.1:{p.port}" for p in proxies) + prefix
    cmd = [sys.executable, "-m", "vaquero.cli", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / name)]
    cmd += ["--store", store, "--tokens-file", str(tmp_path / "tokens")]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
    return proc, log, port


def _sots(tmp_path: Path, bmc_port: int) -> tuple[Path, Path]:
    old_dir, new_dir = tmp_path / "sot-old", tmp_path / "sot-new"
    shutil.copytree(REPO / "inventories" / "lab", old_dir)
    cluster = old_dir / "clusters" / "lab.yaml"
    text = cluster.read_text().replace("max_concurrent: 2", "max_concurrent: 1")  # one host per wave
    for i in range(4):
        text = text.replace(f"port: {6231 + i}", f"port: {bmc_port + i}")
    cluster.write_text(text)
    shutil.copytree(old_dir, new_dir)
    path = new_dir / "clusters" / "lab.yaml"
    text = path.read_text()
    for ip in ("10.90.0.12", "10.90.0.13", "10.90.0.14"):
        text = text.replace(f"ips: {{prov: {ip}}}", f'ips: {{prov: {ip}}}\n    power: "off"')
    path.write_text(text)
    return old_dir, new_dir


@pytest.mark.slow
def test_deposed_leader_sends_no_bmc_command_after_ttl(tmp_path: Path, etcd3: list[int], bmc_fleet: tuple[int, Path, int]) -> None:
    bmc_port, ops_log, control = bmc_fleet
    port_of = {f"node{i + 1}": bmc_port + i for i in range(4)}
    old_dir, new_dir = _sots(tmp_path, bmc_port)
    old, new = load(old_dir, sha="a" * 40), load(new_dir, sha="b" * 40)
    plan = make_plan(old, new)
    waves = plan.to_dict()["waves"]
    assert [[s["host"] for s in w["steps"]] for w in waves] == [[h] for h in HOSTS]

    prefix = f"/ha-fence-{uuid.uuid4().hex[:8]}"
    store = EtcdStore([f"127.0.0.1:{p}" for p in etcd3], prefix=prefix)
    for host in ("node1", *HOSTS):
        transition(store, Event(host, "ready", None, "test", "installed earlier", sha="a" * 40))
    for host in HOSTS:
        open_bmc(Endpoint(kind="ipmi", address="127.0.0.1", port=port_of[host], username="admin", password=PASSWORD, host=host)).power_on()
    (tmp_path / "tokens").write_text("ops:admin:ha-fence-admin-token-0123456789\n")

    proxies_a = [TcpProxy(p) for p in etcd3]
    proxies_b = [TcpProxy(p) for p in etcd3]
    a, log_a, _ = _start_server(tmp_path, "a", proxies_a, prefix)
    b = None
    try:
        _wait(lambda: any("starting the run worker and the gate" in m for m in _messages(log_a)), 60, "server a to lead")
        b, log_b, port_b = _start_server(tmp_path, "b", proxies_b, prefix)
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port_b}/healthz/ready", timeout=2).status_code == 200, 60, "server b to be ready")
        assert not any("starting the run worker" in m for m in _messages(log_b)), "two leaders"

        store.put(R.plan_key("p1"), {"id": "p1", "sha": "b" * 40, "root": str(new_dir), "label": "power", "state": "approved", "plan": plan.to_dict()})

        # Cut the leader off right after its playbook asked node2's BMC to shut down (chassis control:
        # netfn 0, command 2): the emulated OS then takes ACPI_DELAY seconds, polled by the playbook.
        def a_asked_node2() -> bool:
            return any(o["bmc"] == port_of["node2"] and o["netfn"] == 0 and o["command"] == 2 and a.pid in o["pids"] for o in _ops(ops_log))

        _wait(a_asked_node2, 120, "server a to drive node2's BMC")
        for p in proxies_a:
            p.cut()
        cut = time.monotonic()

        def finished() -> dict[str, Any] | None:
            rec = store.get(R.run_key("p1"))
            return rec.value if rec and rec.value.get("state") in R.FINAL else None

        run = _wait(finished, 300, "the run to finish")
        assert run["state"] == R.SUCCEEDED, run
        assert f"-{b.pid}-" in run["worker"], run["worker"]  # the new leader completed it
        assert int(run["resumed"]) >= 1

        ops = _ops(ops_log)
        bound = cut + TTL + 0.5
        late_a = [o for o in ops if o["t"] > bound and a.pid in o["pids"]]
        assert late_a == [], f"the deposed leader drove BMCs after cut + TTL + 0.5 s: {late_a}"
        late = [o for o in ops if o["t"] > bound]
        assert late and all(b.pid in o["pids"] for o in late), f"a BMC command after the bound from neither the new leader: {late}"
        assert {o["bmc"] for o in late if o["netfn"] == 0 and o["command"] == 2} >= {port_of["node3"], port_of["node4"]}
        # Meaningful: the old leader was mid-wave, with work left that an unfenced playbook would have
        # carried on past the bound (node2 still powering off), and node2's wave was redone by b.
        assert any(o["bmc"] == port_of["node2"] and b.pid in o["pids"] for o in ops if o["t"] > cut)
        powers = httpx.get(f"http://127.0.0.1:{control}/", timeout=5).json()
        assert [powers[str(port_of[h])]["power"] for h in HOSTS] == ["off", "off", "off"]

        last_a = max(o["t"] for o in ops if a.pid in o["pids"])
        first_b = min(o["t"] for o in ops if b.pid in o["pids"])
        print(f"old leader's last BMC command {last_a - cut:.2f}s after the cut (bound {TTL + 0.5:g}s); new leader's first {first_b - cut:.2f}s after")
        msgs_a, msgs_b = _messages(log_a), _messages(log_b)
        assert any("lost leadership" in m for m in msgs_a), msgs_a[-20:]
        assert any("run worker and gate stopped" in m for m in msgs_a), msgs_a[-20:]
        assert any("starting the run worker and the gate" in m for m in msgs_b), msgs_b[-20:]
        assert not (tmp_path / "a" / "runs" / "p1" / "fence.json").exists()  # the playbooks' fence is gone with the leadership
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        for p in proxies_a + proxies_b:
            with contextlib.suppress(OSError):
                p.cut()
        store.close()


@pytest.fixture(params=["sqlite", "etcd"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store: Store = SQLiteStore(tmp_path / "state.db")
    else:
        ports = request.getfixturevalue("etcd3")
        store = EtcdStore([f"127.0.0.1:{p}" for p in ports], prefix=f"/fence-{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


def test_fenced_writes_refuse_a_deposed_leader(any_store: Store) -> None:
    a = LeaderElector(any_store, name="fence", identity="a", ttl=2).start()
    b = None
    try:
        assert a.wait_for_leadership(30)
        fenced_a = FencedStore(any_store, a.fence)
        fenced_a.put("/runs/x", {"by": "a"})
        stale = a.fence()
        a.stop(resign=True)
        with pytest.raises(NotLeader):  # refused locally, without a store round trip
            fenced_a.put("/runs/x", {"by": "a, after its lease"})
        b = LeaderElector(any_store, name="fence", identity="b", ttl=2).start()
        assert b.wait_for_leadership(30)
        assert b.check() > stale[1]
        # A leader paused past its lease still holds its old token: the store itself refuses it.
        with pytest.raises(FenceLost):
            any_store.fenced_write("/runs/x", {"by": "a, woken up"}, expect=None, fence=stale)
        with pytest.raises(FenceLost):
            any_store.fenced_write("/runs/x", {"by": "a, woken up"}, expect=any_store.get("/runs/x").revision, fence=stale)  # type: ignore[union-attr]
        with pytest.raises(FenceLost):
            any_store.fenced_write("/runs/x", None, expect=None, fence=stale)
        assert any_store.get("/runs/x").value == {"by": "a"}  # type: ignore[union-attr]
        fenced_b = FencedStore(any_store, b.fence)
        rev = any_store.get("/runs/x").revision  # type: ignore[union-attr]
        assert fenced_b.cas("/runs/x", {"by": "b"}, expect=rev + 1000) is None  # a plain conflict is not a fence failure
        assert fenced_b.cas("/runs/x", {"by": "b"}, expect=rev) is not None
        assert any_store.get("/runs/x").value == {"by": "b"}  # type: ignore[union-attr]
        assert fenced_b.delete("/runs/x") and not fenced_b.delete("/runs/x")
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_bmc_calls_need_a_live_leader_fence(tmp_path: Path, bmc_fleet: tuple[int, Path, int], monkeypatch: pytest.MonkeyPatch) -> None:
    port, ops_log, control = bmc_fleet
    endpoint = Endpoint(kind="ipmi", address="127.0.0.1", port=port, username="admin", password=PASSWORD, host="node1")
    fence = tmp_path / "fence.json"
    monkeypatch.setenv(FENCE_ENV, str(fence))
    with pytest.raises(BmcFenced, match="no valid leader fence"):
        open_bmc(endpoint).power_on()
    fence.write_text(json.dumps({"token": 7, "until": time.monotonic() - 0.01}))
    with pytest.raises(BmcFenced, match="fencing token 7"):
        open_bmc(endpoint).power_on()
    fence.write_text("{not json")
    with pytest.raises(BmcFenced):
        open_bmc(endpoint).get_power_state()
    assert _ops(ops_log) == []  # nothing reached the BMC
    fence.write_text(json.dumps({"token": 7, "until": time.monotonic() + 120}))
    open_bmc(endpoint).power_on()
    assert httpx.get(f"http://127.0.0.1:{control}/", timeout=5).json()[str(port)]["power"] == "on"
    assert any(o["netfn"] == 0 and o["command"] == 2 and os.getpid() in o["pids"] for o in _ops(ops_log))
    # In the controller itself, the guard asks the elector: a process that does not lead is refused.
    monkeypatch.delenv(FENCE_ENV)
    store = SQLiteStore(tmp_path / "state.db")
    follower = LeaderElector(store, name="bmc-fence", ttl=2)  # never started: not the leader
    guard = Guard()
    guard.fence = follower.check
    count = len(_ops(ops_log))
    with pytest.raises(BmcFenced, match="not the bmc-fence leader"):
        open_bmc(endpoint, guard=guard).power_on()
    assert len(_ops(ops_log)) == count
    store.close()


class _LoseLeadershipDuringLaunch:
    """A launcher standing in for ansible-runner: the first launch runs until its cancel callback fires,
    and the leadership is lost while it runs; later launches play a good install's host events."""

    def __init__(self, lose: Callable[[], None]) -> None:
        self.lose = lose
        self.calls: list[list[str]] = []
        self.cancelled_first = False

    def __call__(self, ctx: RunContext, private: Path, root: Path, playbook: str, hosts: list[str], **kw: Any) -> Launch:
        self.calls.append(list(hosts))
        if len(self.calls) == 1:
            self.lose()
            self.cancelled_first = bool(_wait(kw["cancelled"], 30, "the cancel callback to fire after the loss"))
            return Launch("canceled", 254, kw["ident"], {})
        for h in hosts:
            for s in ("powering_off", "netbooting", "installing", "rebooting", "validating", "ready"):
                record(ctx, h, s, "recorded")
        return Launch("successful", 0, kw["ident"], {})


def test_worker_stops_at_loss_and_the_next_leader_resumes_at_once(tmp_path: Path) -> None:
    sot_dir = tmp_path / "sot"
    shutil.copytree(REPO / "inventories" / "lab", sot_dir)
    store = SQLiteStore(tmp_path / "state.db")
    plan = make_plan(empty_sot(), load(sot_dir, sha="a" * 40))
    store.put(R.plan_key("p1"), {"id": "p1", "sha": "a" * 40, "root": str(sot_dir), "label": "lab", "state": "approved", "plan": plan.to_dict()})
    a = LeaderElector(store, name="controller", identity="a", ttl=2).start()
    b = LeaderElector(store, name="controller", identity="b", ttl=2)
    try:
        assert a.wait_for_leadership(30)
        launcher = _LoseLeadershipDuringLaunch(lambda: a.stop(resign=False))  # cut off: the lease is left to expire
        worker_a = RunWorker(store, tmp_path / "a", launcher=launcher, elector=a, heartbeat=60)
        assert worker_a.tick()
        assert launcher.cancelled_first and launcher.calls == [["node1", "node2"]]
        run = store.get(R.run_key("p1")).value  # type: ignore[union-attr]
        # Left for the next leader: nothing marked failed, no wave 2 launched.
        assert run["state"] == R.RUNNING and run["waves"][1]["state"] == "pending", run
        assert {h: s["state"] for h, s in R.steps(store, "p1").items()} == {"node1": "running", "node2": "running"}
        assert not (tmp_path / "a" / "runs" / "p1" / "fence.json").exists()
        with pytest.raises(NotLeader):
            worker_a.store.put(R.run_key("p1"), {"by": "the deposed worker"})
        b.start()
        assert b.wait_for_leadership(30)
        # The run's heartbeat is fresh (60 s period) but its token is older than b's: b resumes it at once.
        worker_b = RunWorker(store, tmp_path / "b", launcher=launcher, elector=b)
        assert worker_b.tick()
        run = store.get(R.run_key("p1")).value  # type: ignore[union-attr]
        assert run["state"] == R.SUCCEEDED and run["token"] == b.check() and run["resumed"] == 1, run
        assert launcher.calls == [["node1", "node2"], ["node1", "node2"], ["node3", "node4"]]
        assert all(current(store, h)["state"] == "ready" for h in ("node1", "node2", "node3", "node4"))  # type: ignore[index]
    finally:
        a.stop()
        b.stop()
        store.close()


def test_playbook_bmc_module_refuses_without_a_live_fence(tmp_path: Path, bmc_fleet: tuple[int, Path, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The fence reaches the BMC modules of a real playbook: power.yml, launched as the worker launches it
    but with a fence whose deadline has passed, fails on the BMC task and sends the BMC nothing."""
    from vaquero.runner.ansible import launch
    from vaquero.secretref import SecretsDir, env_references

    bmc_port, ops_log, control = bmc_fleet
    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    monkeypatch.delenv("VAQUERO_CONTENT_DIR", raising=False)  # the checkout's real playbooks
    _, new_dir = _sots(tmp_path, bmc_port)
    sot = load(new_dir, sha="b" * 40)
    store = SQLiteStore(tmp_path / "state.db")
    transition(store, Event("node3", "ready", None, "test", "installed earlier", sha="a" * 40))
    fence = tmp_path / "fence.json"
    fence.write_text(json.dumps({"token": 3, "until": time.monotonic() - 0.01}))
    ctx = RunContext(store, "p1", "p1", "b" * 40, {"node3": 1})
    private = tmp_path / "private"
    private.mkdir()
    with SecretsDir(env_references(sot)) as secrets:
        res = launch(
            ctx, private, new_dir, "power.yml", ["node3"], ident="fenced", cancelled=lambda: False, secrets_env={**secrets.envvars(), FENCE_ENV: str(fence)}
        )
    assert res.status == "failed" and "node3" in res.failures, res
    assert "fencing token 3" in res.failures["node3"], res.failures
    assert _ops(ops_log) == []
    assert httpx.get(f"http://127.0.0.1:{control}/", timeout=5).json()[str(bmc_port + 2)]["power"] == "off"  # never powered on: untouched
    store.close()


def test_gate_runs_only_on_the_leader(tmp_path: Path) -> None:
    """A revision sent to a follower's API is validated and planned by the leader's gate, never the follower's;
    when the leader goes, the new leader's gate takes over."""
    sot_dir = tmp_path / "sots" / "lab"
    shutil.copytree(REPO / "inventories" / "lab", sot_dir)
    token = "ha-gate-admin-token-0123456789"
    (tmp_path / "tokens").write_text(f"ops:admin:{token}\n")
    store = tmp_path / "shared" / "store.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAQUERO_")}

    def start(name: str) -> tuple[subprocess.Popen[bytes], Path, int]:
        port = _free_ports(1)[0]
        log = tmp_path / f"{name}.log"
        cmd = [sys.executable, "-m", "vaquero.cli", "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / name)]
        cmd += ["--store", f"sqlite://{store}", "--tokens-file", str(tmp_path / "tokens"), "--allow-source", str(tmp_path / "sots")]
        with open(log, "wb") as fh:
            return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent), log, port

    def planned_by(log: Path) -> list[str]:
        return [m for m in _messages(log) if m.startswith("plan ") and " ready (" in m]

    def submit(port: int) -> str:
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/revisions", json={"source": str(sot_dir)}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert resp.status_code < 300, resp.text
        return str(resp.json()["revision"]["id"])

    def done(port: int, rid: str) -> bool:
        resp = httpx.get(f"http://127.0.0.1:{port}/v1/revisions/{rid}", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        return resp.json()["state"] not in ("queued", "fetching")

    a, log_a, _ = start("a")
    b = None
    try:
        _wait(lambda: any("starting the run worker and the gate" in m for m in _messages(log_a)), 60, "server a to lead")
        b, log_b, port_b = start("b")
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port_b}/healthz/ready", timeout=2).status_code == 200, 60, "server b to be ready")
        rid = submit(port_b)  # to the follower
        _wait(lambda: done(port_b, rid), 120, "the revision sent to the follower to be planned")
        assert len(planned_by(log_a)) == 1 and planned_by(log_b) == []
        a.terminate()  # a clean stop resigns: b leads at once
        a.wait(30)
        _wait(lambda: any("starting the run worker and the gate" in m for m in _messages(log_b)), 60, "server b to lead")
        (sot_dir / "clusters" / "lab.yaml").write_text((sot_dir / "clusters" / "lab.yaml").read_text().replace("max_concurrent: 2", "max_concurrent: 1"))
        rid = submit(port_b)
        _wait(lambda: done(port_b, rid), 120, "the new leader's gate to plan")
        assert len(planned_by(log_b)) == 1
        assert any("run worker and gate stopped" in m for m in _messages(log_a))
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
