"""The lab, end to end, in one command: a QEMU host brought to `ready` by `vaquero standalone`.

    python -m vaquero.lab.demo [--hosts node1] [--workdir /tmp/vaquero-lab] [--keep]

As root. It creates a network namespace with the lab bridge (10.90.0.1/24), builds the lab assets
(Debian kernel + busybox installer initramfs, cached), copies the lab SoT (inventories/lab) with
their real hashes into a local git repository, starts the emulated IPMI BMCs that drive the
hosts' QEMU processes (vaquero.lab.bmc), then runs, inside the namespace,

    vaquero standalone --sot <repo>@main --approve

and waits until every host is `ready`, printing each host's timeline. The same harness backs the
end-to-end tests (tests/e2e/test_install_standalone.py, test_upgrade_rolling.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .harness import lab_assets, lab_sot
from .netns import LabNetwork
from .sot import prepare_sot

MACS = {f"node{i}": f"52:54:00:00:10:0{i}" for i in range(1, 5)}
LAB_PASSWORD_ENV = "VAQUERO_LAB_BMC_PASSWORD"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "vaquero-lab", "GIT_AUTHOR_EMAIL": "lab@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "vaquero-lab", "GIT_COMMITTER_EMAIL": "lab@example.invalid"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


def edit_cluster(sot: Path, hosts: list[str] | None = None, **changes: Any) -> None:
    """Keep only `hosts` in the lab cluster and set top-level keys (policy, hooks...)."""
    path = sot / "clusters" / "lab.yaml"
    doc = yaml.safe_load(path.read_text())
    if hosts is not None:
        doc["hosts"] = [h for h in doc["hosts"] if h["name"] in hosts]
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class StoreView:
    """Read-only view of the standalone's SQLite store from another process (WAL allows it)."""

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

    def __init__(self, workdir: Path, hosts: list[str], password: str) -> None:
        self.workdir = workdir
        self.hosts = hosts
        self.password = password
        self.net = LabNetwork(address="10.90.0.1/24")
        self.repo = workdir / "sot-repo"
        self.data = workdir / "data"
        self.store = StoreView(self.data / "state.db")
        self.standalone: subprocess.Popen[bytes] | None = None

    def make_repo(self, **cluster: Any) -> str:
        kernel, initrd = lab_assets()
        prepare_sot(lab_sot(), self.repo, "lab-linux", kernel, initrd)
        edit_cluster(self.repo, self.hosts, **cluster)
        git(self.repo, "init", "-q", "-b", "main")
        return self.commit("lab SoT")

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.net.create()
        pw = self.workdir / "bmc-password"
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password + "\n")
        hosts = self.workdir / "hosts.json"
        hosts.write_text(json.dumps(self.host_entries()))
        cmd = [sys.executable, "-m", "vaquero.lab.bmc", "--hosts", str(hosts), "--password-file", str(pw)]
        cmd += ["--state-dir", str(self.workdir / "vms"), "--control-port", "6229", "--memory", "256"]
        self.net.popen(cmd, log_file=self.workdir / "labbmc.log")
        self.net.wait_port("127.0.0.1", 6229, timeout=20)

    def host_entries(self) -> list[dict[str, Any]]:
        """The lab BMC's hosts.json (vaquero.lab.bmc): one VM per host; a lab whose hosts need a
        disk, more memory or another UUID says so here."""
        return [{"name": h, "mac": MACS[h], "port": 6230 + int(h[-1])} for h in self.hosts]

    def standalone_start(self, spec: str, *, approve: bool = True, extra: Sequence[str] = ()) -> None:
        env = {**os.environ, LAB_PASSWORD_ENV: self.password, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "info", "standalone", "--sot", spec]
        cmd += ["--data-dir", str(self.data), "--listen", "127.0.0.1:8000"] + (["--approve"] if approve else []) + list(extra)
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
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
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
            if self.standalone is not None and self.standalone.poll() is not None:
                raise RuntimeError(f"standalone exited:\n{self.log()}")
            time.sleep(0.5)
        raise TimeoutError(f"plan for {sha[:12]} did not reach {states} in {timeout}s: {plan and plan.get('state')}\n{self.log()}")

    def log(self, n: int = 6000) -> str:
        p = self.workdir / "standalone.log"
        return p.read_text(errors="replace")[-n:] if p.exists() else ""

    def timeline(self, host: str) -> list[dict[str, Any]]:
        return self.store.list(f"/events/{host}/")

    def close(self) -> None:
        self.standalone_stop()
        self.net.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="node1", help="comma-separated lab hosts (node1..node4), default node1")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new folder under /tmp")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the workdir (store, logs, artifacts)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("labdemo: needs root (network namespaces, taps); run scripts/setup.sh first", file=sys.stderr)
        return 2
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vaquero-lab-"))
    password = os.environ.get(LAB_PASSWORD_ENV) or os.urandom(12).hex()
    lab = StandaloneLab(workdir, hosts, password)
    policy = {"max_concurrent": 2, "min_available": 0 if len(hosts) < 3 else 1, "on_failure": "retry", "retries": 1}
    t0 = time.monotonic()
    try:
        sha = lab.make_repo(policy=policy)
        print(f"lab SoT committed to {lab.repo} at {sha[:12]}; hosts {', '.join(hosts)}")
        lab.start()
        print(f"vaquero standalone --sot {lab.repo}@main --approve   (in namespace {lab.net.name})")
        lab.standalone_start(f"{lab.repo}@main")
        plan = lab.wait_plan(sha, ("succeeded", "failed", "cancelled"), timeout=args.timeout)
        print(f"\nplan {plan['id']}: {plan['state']} in {time.monotonic() - t0:.1f}s\n")
        for h in hosts:
            rec = lab.store.get(f"/hosts/{h}") or {}
            print(f"{h}: {rec.get('state')} at {str(rec.get('sha'))[:12]}")
            for e in lab.timeline(h):
                print(f"  {time.strftime('%H:%M:%S', time.localtime(e['time']))}  {e['state']:<13} {e['reason']}")
        return 0 if plan["state"] == "succeeded" else 1
    finally:
        lab.close()
        if args.keep:
            print(f"\nkept: {workdir} (state.db, standalone.log, runs/*/artifacts)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
