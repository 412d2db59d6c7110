"""End to end: `vaquero standalone` takes the lab SoT from a local git repository, the plan is
approved, and a QEMU host (TCG) whose BMC is an emulated IPMI BMC driving its QEMU process
netboots through the agent's DHCP/TFTP/HTTP, calls back, and ends `ready` with its timeline.

Everything runs inside a network namespace this test creates (loopback BMCs, the agent on the
namespace's bridge). Prerequisites missing = a loud failure, not a skip: CI runs as root after
scripts/setup.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaquero.lab.harness import lab_assets
from vaquero.lab.netns import LabNetwork
from vaquero.lab.sot import prepare_sot

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Lab-BMC-pw-93c1e7"
MACS = {f"node{i}": f"52:54:00:00:10:0{i}" for i in range(1, 5)}


def require_prerequisites() -> None:
    missing = [
        b
        for b in ("qemu-system-x86_64", "dnsmasq", "ip", "git", "ansible-playbook")
        if shutil.which(b) is None and not (Path(sys.executable).parent / b).exists()
    ]
    assert os.geteuid() == 0, "the e2e tests need root (network namespaces, taps): run them as root after scripts/setup.sh"
    assert not missing, f"missing for the e2e tests: {', '.join(missing)} (run scripts/setup.sh)"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


def edit_cluster(sot: Path, hosts: list[str] | None = None, **changes: Any) -> None:
    path = sot / "clusters" / "lab.yaml"
    doc = yaml.safe_load(path.read_text())
    if hosts is not None:
        doc["hosts"] = [h for h in doc["hosts"] if h["name"] in hosts]
    for key, value in changes.items():
        doc[key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class Store:
    """Read-only view of the standalone's SQLite store from the test process (WAL allows it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        if not self.path.exists():
            return []
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def list(self, prefix: str) -> list[dict[str, Any]]:
        return [json.loads(v) for (v,) in self._rows("SELECT value FROM kv WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix + "\uffff"))]


class StandaloneLab:
    """A namespace, emulated BMCs driving QEMU hosts, and `vaquero standalone` on a git SoT."""

    def __init__(self, workdir: Path, hosts: list[str]) -> None:
        self.workdir = workdir
        self.hosts = hosts
        self.net = LabNetwork(address="10.90.0.1/24")
        self.repo = workdir / "sot-repo"
        self.data = workdir / "data"
        self.store = Store(self.data / "state.db")
        self.standalone: subprocess.Popen[bytes] | None = None

    def make_repo(self, **cluster: Any) -> str:
        kernel, initrd = lab_assets()
        prepare_sot(REPO / "inventories" / "lab", self.repo, "lab-linux", kernel, initrd)
        edit_cluster(self.repo, self.hosts, **cluster)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "lab SoT")
        return git(self.repo, "rev-parse", "HEAD")

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def start(self) -> None:
        self.net.create()
        (self.workdir / "bmc-password").write_text(PASSWORD + "\n")
        (self.workdir / "hosts.json").write_text(json.dumps([{"name": h, "mac": MACS[h], "port": 6230 + int(h[-1])} for h in self.hosts]))
        self.net.popen(
            [sys.executable, "-m", "vaquero.runner.labbmc", "--hosts", str(self.workdir / "hosts.json"), "--password-file", str(self.workdir / "bmc-password"),
             "--state-dir", str(self.workdir / "vms"), "--control-port", "6229", "--memory", "256"],
            log_file=self.workdir / "labbmc.log",
        )  # fmt: skip
        self.net.wait_port("127.0.0.1", 6229, timeout=20)

    def standalone_start(self, spec: str, *, approve: bool = True) -> None:
        env = {**os.environ, "VAQUERO_LAB_BMC_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
        cmd = [
            sys.executable,
            "-m",
            "vaquero.cli",
            "--log-level",
            "info",
            "standalone",
            "--sot",
            spec,
            "--data-dir",
            str(self.data),
            "--listen",
            "127.0.0.1:8000",
        ]
        if approve:
            cmd.append("--approve")
        self.standalone = self.net.popen(cmd, log_file=self.workdir / "standalone.log", env=env)

    def standalone_stop(self) -> None:
        if self.standalone is not None:
            LabNetwork.stop(self.standalone, timeout=15)
            self.standalone = None

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """An API call from inside the namespace (the API listens on its loopback)."""
        token = (self.data / "token").read_text().strip()
        code = (
            "import sys,json,httpx;b=json.loads(sys.argv[4]);"
            "r=httpx.request(sys.argv[1],'http://127.0.0.1:8000'+sys.argv[2],headers={'Authorization':'Bearer '+sys.argv[3]},json=b,timeout=60);"
            "print(json.dumps({'status':r.status_code,'body':r.json()}))"
        )
        res = self.net.run([sys.executable, "-c", code, method, path, token, json.dumps(body)], timeout=90)
        assert res.returncode == 0, res.stderr
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def bmcs(self) -> dict[str, Any]:
        res = self.net.run(["curl", "-s", "127.0.0.1:6229"], timeout=10)
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout else {}

    def plan_for(self, sha: str) -> dict[str, Any] | None:
        plans = [p for p in self.store.list("/plans/") if p.get("sha") == sha]
        return plans[-1] if plans else None

    def wait_plan(self, sha: str, states: tuple[str, ...], timeout: float, on_tick: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        plan = None
        while time.monotonic() < deadline:
            if on_tick is not None:
                on_tick()
            plan = self.plan_for(sha)
            if plan and plan.get("state") in states:
                return plan
            assert self.standalone is None or self.standalone.poll() is None, f"standalone exited:\n{self.log()}"
            time.sleep(0.5)
        raise AssertionError(f"plan for {sha[:12]} did not reach {states} in {timeout}s: {plan and plan.get('state')}\n{self.log()}")

    def log(self, n: int = 6000) -> str:
        p = self.workdir / "standalone.log"
        return p.read_text(errors="replace")[-n:] if p.exists() else ""

    def timeline(self, host: str) -> list[dict[str, Any]]:
        return self.store.list(f"/events/{host}/")

    def close(self) -> None:
        self.standalone_stop()
        self.net.close()


@pytest.fixture
def lab(tmp_path: Path):
    require_prerequisites()
    labs: list[StandaloneLab] = []

    def make(hosts: list[str]) -> StandaloneLab:
        lab = StandaloneLab(tmp_path, hosts)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()


def assert_no_secret(path: Path) -> None:
    grep = subprocess.run(["grep", "-r", "-l", "-a", PASSWORD, str(path)], capture_output=True, text=True)
    assert grep.returncode == 1, f"the BMC password is in {grep.stdout.strip()}"


def collapse(states: list[str]) -> list[str]:
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


@pytest.mark.e2e
def test_install_one_host_end_to_end(lab) -> None:
    t0 = time.monotonic()
    lab = lab(["node1"])
    sha = lab.make_repo(policy={"max_concurrent": 1, "min_available": 0, "on_failure": "halt"})
    lab.start()
    lab.standalone_start(f"{lab.repo}@main")
    plan = lab.wait_plan(sha, ("succeeded", "failed", "cancelled"), timeout=300)
    took = time.monotonic() - t0
    run = lab.store.get(f"/runs/{plan['id']}")
    assert plan["state"] == "succeeded", f"{run}\n{lab.log()}"
    assert plan["approved_by"] == "standalone --approve"
    host = lab.store.get("/hosts/node1")
    assert host is not None and host["state"] == "ready" and host["sha"] == sha and host["plan"] == plan["id"]
    events = lab.timeline("node1")
    seq = collapse([e["state"] for e in events])
    assert seq == ["pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready"], seq
    # The installer's callback report and the validate hook's output are in the timeline.
    installing = next(e for e in events if e["state"] == "installing")
    assert installing["detail"]["state"] == "installed" and installing["detail"]["report"]["mac"] == MACS["node1"]
    assert installing["detail"]["report"]["ip"] == "10.90.0.11"
    hook = next(e for e in events if e["detail"].get("hook"))
    assert hook["detail"]["hook"]["name"] == "agent-saw-callback" and hook["detail"]["hook"]["ok"]
    assert lab.store.get("/sites-applied/current")["sha"] == sha
    # The BMC really drove the VM: pxe once, power on (it was off), off after the callback (the
    # installer had already powered off: no change), boot disk, power on into the installed system.
    bmc = lab.bmcs()["node1"]
    assert bmc["boot"] == {"device": "disk", "persistent": True, "uefi": False}
    assert bmc["power"] == "on" and bmc["boots"] == 2
    ops = [h["op"] for h in bmc["history"]]
    assert ops[0] in ("on", "cycle") and ops[-1] == "on" and len(ops) in (2, 3), ops
    console = (lab.workdir / "vms" / "node1.console.1.log").read_text(errors="replace")
    assert "vaquero-lab: callback done" in console
    # After the callback the agent serves localboot: the second boot did not reinstall.
    agent = json.loads((lab.data / "agent" / "boot-states.json").read_text())["hosts"]["node1"]
    assert agent["state"] == "installed" and agent["attempt"] == 1
    # The BMC password is nowhere in the runner's artifacts (nor the store, nor the data folder).
    assert list((lab.data / "runs").glob("*/artifacts/*/job_events/*.json"))
    assert_no_secret(lab.data)
    print(f"\ninstall e2e: {took:.1f}s from an empty lab to node1 ready")
