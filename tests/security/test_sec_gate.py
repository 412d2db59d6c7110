"""A gate that cannot wedge or be bypassed (issue 10, items 2, 4, 5, 6, 18 and "approval binds to
the plan digest"), against a real uvicorn API, real git repositories and the real validation child.

- A runaway revision (nested template loops, an alias bomb, a SoT too slow for the deadline) becomes
  `invalid` with its reason, and the next push is planned.
- A revision left `fetching` by a dead controller is retried, then given up.
- Any failure is an invalid plan whose id answers 200 with file and line where there is one.
- `subdir` and local paths stay inside the fetched tree.
- Approval names the plan's digest.
- `vaquero standalone` without --approve serves nothing of an unapproved revision.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from vaquero.api.app import create_app
from vaquero.api.settings import Settings, Tokens
from vaquero.gate import records as r
from vaquero.gate.core import Gate
from vaquero.gate.sandbox import Limits
from vaquero.state.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
MEMORY = 500 << 20
DEADLINE = 30.0  # per revision in these tests: generous for a loaded machine, far below what the slow SoT needs
TOKENS = {"alice": ("approve", "tok-gate-alice-0123456789abcdef"), "reader": ("read", "tok-gate-reader-0123456789abcdef")}

BOMB = """    vars:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""
# Each render stays inside the sandbox's per-render budget; thousands of hosts make the whole
# revision far slower than the deadline: only the process-level bound stops it.
BUSY_LOOP = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}"


def git(cwd: Path, *args: str) -> str:
    cfg = ["-c", "user.email=test@example.invalid", "-c", "user.name=test", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *cfg, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


class Repo:
    def __init__(self, tmp: Path) -> None:
        self.bare = tmp / "remote" / "sot.git"
        self.bare.parent.mkdir(parents=True)
        git(tmp, "init", "-q", "--bare", str(self.bare))
        self.work = tmp / "work"
        git(tmp, "clone", "-q", str(self.bare), str(self.work))
        for item in ("sites", "profiles", "clusters", "hooks", "templates"):
            shutil.copytree(LAB / item, self.work / item)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, message: str) -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")

    def reset_to(self, sha: str) -> None:
        git(self.work, "checkout", "-q", sha, "--", ".")
        git(self.work, "clean", "-q", "-fdx")


class Live:
    def __init__(self, tmp: Path, repo: Repo, allowed: list[str]) -> None:
        text = "".join(f"{name}:{role}:{token}\n" for name, (role, token) in TOKENS.items())
        self.settings = Settings(data_dir=tmp / "data", tokens=Tokens.parse(text, "tokens"), repo_url=repo.url, branch="main", allowed_sources=allowed)
        self.store = SQLiteStore(tmp / "data" / "store.sqlite")
        self.gate = Gate(self.store, cache=self.settings.cache, limits=Limits(seconds=DEADLINE, memory=MEMORY, cpu=120))
        app = create_app(self.settings, self.store, gate=self.gate)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def submit(self, source: str, subdir: str = "") -> httpx.Response:
        return self.client.post("/v1/revisions", json={"source": source, "subdir": subdir}, headers=auth("alice"))

    def wait_revision(self, rid: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = self.client.get(f"/v1/revisions/{rid}", headers=auth("reader"))
            if resp.status_code == 200 and resp.json()["state"] in ("planned", "invalid"):
                return dict(resp.json())
            time.sleep(0.1)
        raise AssertionError(f"revision {rid} not planned in {timeout}s")

    def plan(self, pid: str) -> dict[str, Any]:
        resp = self.client.get(f"/v1/plans/{pid}", headers=auth("reader"))
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.store.close()


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path)


@pytest.fixture
def live(tmp_path, repo, monkeypatch):
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "must-not-be-used"))
    srv = Live(tmp_path, repo, allowed=[str(tmp_path / "local")])
    yield srv
    srv.stop()


def busy_sot(work: Path, hosts: int) -> None:
    profile = work / "profiles" / "lab-linux.yaml"
    text = profile.read_text()
    profile.write_text(text[: text.index("cmdline: >-")] + f"cmdline: '{BUSY_LOOP}'\nconfig:\n  format: cloud-init\n  inline: '{BUSY_LOOP}'\n")
    rows = "".join(f'  - name: busy{i}\n    macs: ["52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"]\n' for i in range(hosts))
    path = work / "clusters" / "lab.yaml"
    path.write_text(path.read_text() + rows)


def test_runaway_revisions_become_invalid_and_the_next_push_is_planned(live, repo):
    base = repo.commit("lab")

    profile = repo.work / "profiles" / "lab-linux.yaml"
    text = profile.read_text()
    nested = "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}"
    profile.write_text(text[: text.index("cmdline: >-")] + f"cmdline: '{nested}'\n" + text[text.index("config:") :])
    loops = repo.commit("nested loops")
    repo.reset_to(base)

    cluster = repo.work / "clusters" / "lab.yaml"
    cluster.write_text(cluster.read_text().replace("    ips: {prov: 10.90.0.12}\n", "    ips: {prov: 10.90.0.12}\n" + BOMB, 1))
    bomb = repo.commit("alias bomb")
    bomb_line = next(i for i, t in enumerate(cluster.read_text().splitlines(), 1) if "g: &g" in t)
    repo.reset_to(base)

    busy_sot(repo.work, 4000)
    slow = repo.commit("too slow for the deadline")
    repo.reset_to(base)

    (repo.work / "clusters" / "lab.yaml").write_text(
        (repo.work / "clusters" / "lab.yaml").read_text()
        + '  - name: node5\n    macs: ["52:54:00:00:10:05"]\n    roles: [worker]\n    ips: {prov: 10.90.0.15}\n'
    )
    good = repo.commit("add node5")

    # All queued at once, in push order: the gate works through them one by one.
    for sha in (loops, bomb, slow, good):
        assert live.submit(f"{repo.url}@{sha}").status_code == 202
    revs = {sha: live.wait_revision(sha, timeout=600) for sha in (loops, bomb, slow, good)}

    assert revs[loops]["state"] == "invalid"
    [err] = revs[loops]["errors"]
    assert err["file"] == "profiles/lab-linux.yaml" and err["field"] == "cmdline" and "loop budget" in err["message"], err

    assert revs[bomb]["state"] == "invalid"
    [err] = revs[bomb]["errors"]
    assert (err["file"], err["line"]) == ("clusters/lab.yaml", bomb_line) and "alias bomb" in err["message"], err

    assert revs[slow]["state"] == "invalid"
    [err] = revs[slow]["errors"]
    assert err["message"].startswith(f"validation exceeded {DEADLINE:g} s"), err

    assert revs[good]["state"] == "planned"
    plan = live.plan(revs[good]["plan"])
    assert plan["state"] == "pending_approval" and [(h["host"], h["action"]) for h in plan["plan"]["hosts"]][-1] == ("node5", "add")
    # Every invalid revision has a plan that answers, with the same errors.
    for sha in (loops, bomb, slow):
        assert live.plan(revs[sha]["plan"])["errors"] == revs[sha]["errors"]
    # The children that answered measured their own peak; none can exceed the limit, and none did.
    for sha in (loops, bomb, good):
        peak = live.plan(revs[sha]["plan"])["validation"]["peak_rss"]
        assert 0 < peak < MEMORY


def test_a_revision_interrupted_again_and_again_is_given_up_and_the_queue_moves_on(tmp_path):
    sot = tmp_path / "sot"
    shutil.copytree(LAB, sot)
    store = SQLiteStore(tmp_path / "store.sqlite")
    gate = Gate(store, cache=tmp_path / "cache", limits=Limits(seconds=DEADLINE, memory=MEMORY))
    try:
        # Left by controllers that died while checking them: one tried 3 times, one once.
        for rid, attempts in (("local-wedged", 3), ("local-retry", 1)):
            store.put(
                r.revision_key(rid),
                {
                    "id": rid, "kind": "path", "sha": None, "digest": rid, "source": str(sot), "subdir": "", "label": rid, "root": str(sot),
                    "created": time.time(), "state": r.FETCHING, "attempts": attempts, "actor": "t", "plan": f"p-{rid}", "errors": [],
                },
            )  # fmt: skip
        gate.start()
        assert gate.wait_idle(300)
        wedged = store.get(r.revision_key("local-wedged")).value
        assert wedged["state"] == "invalid" and "did not finish in 3 attempts" in wedged["errors"][0]["message"]
        plan = store.get(r.plan_key("p-local-wedged")).value
        assert plan["state"] == "invalid" and plan["errors"] == wedged["errors"]
        retried = store.get(r.revision_key("local-retry")).value
        assert retried["state"] == "planned" and retried["attempts"] == 2
        assert store.get(r.plan_key("p-local-retry")).value["state"] == "pending_approval"
    finally:
        gate.stop()
        store.close()


@pytest.mark.parametrize("subdir", ["../../..", "..", "/etc", "a/../../b", "./sites/..", "sites/./x", "a\\..\\b", "-x", "a\n"])
def test_subdir_outside_the_tree_is_refused_at_the_door(live, repo, subdir):
    sha = repo.commit("lab")
    resp = live.submit(f"{repo.url}@{sha}", subdir=subdir)
    assert resp.status_code == 422, resp.text
    assert live.client.get("/v1/revisions", headers=auth("reader")).json()["count"] == 0


def test_subdir_through_a_link_and_links_in_the_sot_make_invalid_plans(live, repo):
    (repo.work / "escape").symlink_to("/etc")
    (repo.work / "up").symlink_to("..")
    (repo.work / "clusters" / "passwd.yaml").symlink_to("/etc/passwd")
    sha = repo.commit("links")
    for subdir, expected in (("escape", "goes through escape, a symlink"), ("up/x", "goes through up, a symlink")):
        resp = live.submit(f"{repo.url}@{sha}", subdir=subdir)
        assert resp.status_code == 202, resp.text
        rev = live.wait_revision(resp.json()["revision"]["id"])
        assert rev["state"] == "invalid" and expected in rev["errors"][0]["message"], rev
        # Same SHA, another subdir: the revision id is the SHA, so later submissions are "already known".
        live.store.delete(r.revision_key(sha))
    resp = live.submit(f"{repo.url}@{sha}")
    rev = live.wait_revision(resp.json()["revision"]["id"])
    assert rev["state"] == "invalid"
    plan = live.plan(rev["plan"])
    by_file = {e["file"]: e for e in plan["errors"]}
    assert set(by_file) == {"clusters/passwd.yaml", "escape", "up"}, plan["errors"]
    err = by_file["clusters/passwd.yaml"]
    assert err["line"] == 1 and "is a symlink" in err["message"], err
    assert "root:" not in json.dumps(plan)


def test_a_local_folder_with_a_link_is_refused(live, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(LAB, local)
    (local / "templates" / "extra.j2").symlink_to("/etc/shadow")
    resp = live.submit(str(local))
    assert resp.status_code == 422 and "templates/extra.j2 is a symlink" in resp.json()["detail"], resp.text
    resp = live.submit(str(local), subdir="../..")
    assert resp.status_code == 422
    assert live.client.get("/v1/revisions", headers=auth("reader")).json()["count"] == 0


def test_include_in_a_template_makes_an_invalid_plan_with_the_template_line(live, repo):
    template = repo.work / "templates" / "user-data.j2"
    template.write_text(template.read_text() + '{% include "/etc/passwd" %}\n')
    sha = repo.commit("include")
    live.submit(f"{repo.url}@{sha}")
    rev = live.wait_revision(sha)
    plan = live.plan(rev["plan"])
    assert plan["state"] == "invalid"
    [err] = plan["errors"]
    assert err["file"] == "templates/user-data.j2" and err["line"] == len(template.read_text().splitlines()), err
    text = live.client.get(f"/v1/plans/{plan['id']}/text", headers=auth("reader")).text
    assert f"templates/user-data.j2:{err['line']}: config.template: " in text


def test_approval_binds_to_the_plan_digest(live, repo):
    sha = repo.commit("lab")
    live.submit(f"{repo.url}@{sha}")
    plan = live.plan(live.wait_revision(sha)["plan"])
    assert plan["state"] == "pending_approval" and len(plan["digest"]) == 64
    url = f"/v1/plans/{plan['id']}/approve"
    assert live.client.post(url, headers=auth("alice"), json={}).status_code == 422
    assert live.client.post(url, headers=auth("alice"), json={"digest": "0" * 64}).status_code == 409
    # The plan record changes under the approver (its text here) while the stored digest stays: refused.
    rec = live.store.get(r.plan_key(plan["id"]))
    live.store.put(rec.key, rec.value | {"text": rec.value["text"] + "  + something the approver never saw\n"})
    resp = live.client.post(url, headers=auth("alice"), json={"digest": plan["digest"]})
    assert resp.status_code == 409 and live.plan(plan["id"])["state"] == "pending_approval"
    live.store.put(rec.key, rec.value)
    resp = live.client.post(url, headers=auth("alice"), json={"digest": plan["digest"]})
    assert resp.status_code == 200 and live.plan(plan["id"])["state"] == "approved"


def _ipxe(net: Any, mac: str) -> str:
    code = "import sys,httpx;r=httpx.get(sys.argv[1],timeout=10);print(r.status_code);print(r.text)"
    res = net.run([sys.executable, "-c", code, f"http://10.90.0.1:8080/v1/boot/ipxe/{mac}"], timeout=60)
    return res.stdout if res.returncode == 0 else ""


def test_standalone_serves_nothing_of_an_unapproved_revision(tmp_path):
    from vaquero.lab.demo import StoreView
    from vaquero.lab.netns import LabNetwork
    from vaquero.render.ipxe import unknown_script

    assert os.geteuid() == 0, "this test needs root (a network namespace)"
    work = tmp_path / "repo"
    shutil.copytree(LAB, work)
    git(tmp_path, "init", "-q", str(work))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "lab")
    sha = git(work, "rev-parse", "HEAD")
    data = tmp_path / "data"
    store = StoreView(data / "state.db")
    net = LabNetwork(address="10.90.0.1/24")
    net.create()
    try:
        cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "info", "standalone", "--sot", f"{work}@main", "--data-dir", str(data)]
        cmd += ["--listen", "127.0.0.1:8000"]
        proc = net.popen(cmd, log_file=tmp_path / "standalone.log", env={**os.environ, "VAQUERO_LAB_BMC_PASSWORD": "x-lab-pw"})
        log = tmp_path / "standalone.log"
        net.wait_port("10.90.0.1", 8080, timeout=120)
        deadline = time.monotonic() + 300
        plan = None
        while time.monotonic() < deadline and (plan is None or plan.get("state") not in ("pending_approval", "invalid")):
            assert proc.poll() is None, log.read_text()
            plans = [p for p in store.list("/plans/") if p.get("sha") == sha]
            plan = plans[0] if plans else None
            time.sleep(0.2)
        assert plan is not None and plan["state"] == "pending_approval", log.read_text()

        # Pending approval: node1 is unknown to the agent, it gets the script that installs nothing; no DHCP runs.
        before = _ipxe(net, "52-54-00-00-10-01")
        assert before == "200\n" + unknown_script() + "\n", before
        assert not (data / "agent" / "dnsmasq" / "dnsmasq.conf").exists()
        assert "node1" not in (data / "agent" / "unapproved-site" / "sites" / "site.yaml").read_text()

        token = (data / "token").read_text().strip()
        code = "import sys,httpx;r=httpx.post(sys.argv[1],json={'digest':sys.argv[2]},headers={'Authorization':'Bearer '+sys.argv[3]});print(r.status_code)"
        res = net.run([sys.executable, "-c", code, f"http://127.0.0.1:8000/v1/plans/{plan['id']}/approve", plan["digest"], token], timeout=60)
        assert res.stdout.strip() == "200", res.stdout + res.stderr

        # Approved and about to run: the agent now serves that revision.
        deadline = time.monotonic() + 300
        after = before
        while time.monotonic() < deadline and after == before:
            assert proc.poll() is None, log.read_text()
            after = _ipxe(net, "52-54-00-00-10-01")
            time.sleep(0.5)
        assert after != before and "node1" in after, after
    finally:
        net.close()
