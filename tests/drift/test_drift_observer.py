"""The drift observer against real peers: emulated IPMI BMCs (vaquero.bmc.emulator) changed out of
band with ipmitool, a UDP port that never answers (an unreachable BMC), the site agent's boot HTTP
server (BootApp under uvicorn) armed out of band, a real SQLite Store, the real leader election, the
API served by uvicorn and `vaquero plan --live` talking to it."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

import pytest
import uvicorn
from api_helpers import auth, free_port, make_settings, start_live
from bmc_helpers import LAB_SOT, PASSWORD, ipmitool, start_ipmi_fleet, stop
from waiting import wait_until

from vaquero.agent.http import BootApp
from vaquero.agent.state import BootStates
from vaquero.bmc import Guard, GuardPolicy
from vaquero.drift.observer import DriftObserver
from vaquero.render import render_site
from vaquero.sot import load
from vaquero.state.machine import Event, transition
from vaquero.state.rounds import CURRENT_KEY
from vaquero.state.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

# the unreachable BMC costs one deadline, then its breaker answers at once for a while; a live
# BMC slow to answer on a loaded machine gets a second attempt, and a breaker it trips closes again
# soon (a long reset would leave it "unreachable" for longer than the test waits)
POLICY = GuardPolicy(attempt_timeout=4.0, deadline=8.0, retries=1, breaker_threshold=2, breaker_reset=5.0)
INTERVAL = 0.2


class Site:
    def __init__(self, tmp: Path, silent_port: int) -> None:
        self.fleet = start_ipmi_fleet(tmp, count=3)
        self.root = tmp / "sot"
        shutil.copytree(LAB_SOT, self.root)
        cluster = self.root / "clusters" / "lab.yaml"
        text = cluster.read_text()
        for i in range(3):
            text = text.replace(f"port: {6231 + i},", f"port: {self.fleet.port + i},")
        cluster.write_text(text.replace("port: 6234,", f"port: {silent_port},"))
        # the site agent's boot server, on loopback: its boot states are what the observer reads
        agent_port = free_port()
        site = self.root / "sites" / "lab.yaml"
        site.write_text(site.read_text().replace("url: http://10.90.0.1:8080", f"url: http://127.0.0.1:{agent_port}"))
        self.boot_states = BootStates(tmp / "agent" / "boot-states.json")
        app = BootApp(render_site(load(self.root, semantic=False)), self.boot_states, asset_root=tmp / "agent", admin_token="agent-admin-token-0123456789")
        self.agent = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=agent_port, log_config=None, lifespan="off"))
        self.agent_thread = threading.Thread(target=self.agent.run, daemon=True)
        self.agent_thread.start()
        wait_until(lambda: self.agent.started, what="the agent's boot server")
        self.store = SQLiteStore(tmp / "store.sqlite")
        self.store.put(CURRENT_KEY, {"root": str(self.root), "sha": None, "label": "lab", "plan": "p-test"})

    def ready(self, *names: str) -> None:
        for name in names:
            transition(self.store, Event(name, "ready", None, actor="test", reason="installed"))

    def endpoint(self, i: int):
        return self.fleet.endpoint(i)

    def record(self, host: str) -> dict:
        rec = self.store.get(f"/drift/{host}")
        return rec.value if rec else {}

    def received(self, i: int) -> int:
        return sum(self.fleet.bmc_state(i)["received"].values())


@pytest.fixture
def site(tmp_path, silent_udp, monkeypatch):
    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    s = Site(tmp_path, silent_udp)
    yield s
    s.agent.should_exit = True
    s.agent_thread.join(15)
    stop(s.fleet.proc)
    s.store.close()


def observer(site: Site, **kw) -> DriftObserver:
    return DriftObserver(site.store, Guard(concurrency=4, policy=POLICY), interval=INTERVAL, policy=POLICY, **kw)


def test_out_of_band_power_off_and_boot_override_show_as_drift_api_cli_and_gauge(site, tmp_path, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    site.ready("node1", "node2", "node4")
    transition(site.store, Event("node3", "enrolled", None, actor="test", reason="new"))
    for i in (0, 1):
        ipmitool(site.endpoint(i), "chassis", "power", "on")
    obs = observer(site).start()
    try:
        wait_until(lambda: site.record("node1").get("status") == "ok" and site.record("node2").get("status") == "ok", what="node1 and node2 observed ok")
        node4 = wait_until(lambda: site.record("node4").get("status") == "unknown" and site.record("node4"), what="node4 unknown")
        assert node4["findings"] == [] and node4["reason"]  # unknown (reason), never drift
        assert site.record("node3")["status"] == "skipped" and "enrolled" in site.record("node3")["reason"]
        assert site.received(2) == 0  # a host that is not ready: its BMC is not even asked

        assert site.record("node1")["agent_state"] == "none"  # never armed: served localboot

        # out of band: another client powers node2 off and sets node1 to netboot on every boot,
        # and node4's agent is armed to reinstall it (its BMC is still unreachable)
        ipmitool(site.endpoint(1), "chassis", "power", "off")
        ipmitool(site.endpoint(0), "chassis", "bootdev", "pxe", "options=persistent")
        install_token = site.boot_states.arm("node4").token
        node2 = wait_until(lambda: site.record("node2").get("status") == "drift" and site.record("node2"), what="node2 power drift")
        (finding,) = node2["findings"]
        assert finding["kind"] == "power" and finding["action"] == "power_on" and finding["observed"] == "off"
        assert finding["reason"].startswith("node2: power is off (observed ") and finding["reason"].endswith(" via ipmi), the SoT wants it on")
        node1 = wait_until(lambda: site.record("node1").get("status") == "drift" and site.record("node1"), what="node1 boot drift")
        assert [f["kind"] for f in node1["findings"]] == ["boot"] and "pxe" in node1["findings"][0]["observed"]
        node4 = wait_until(lambda: site.record("node4").get("status") == "drift" and site.record("node4"), what="node4 agent drift")
        assert [f["action"] for f in node4["findings"]] == ["agent_localboot"] and node4["reason"].startswith("BMC: ")
        assert "armed to install it" in node4["findings"][0]["reason"]
        # the unreachable BMC never stopped the loop: rounds go on past it
        seen = obs.rounds
        wait_until(lambda: obs.rounds >= seen + 2, what="two more rounds")
    finally:
        obs.stop()

    live = start_live(make_settings(tmp_path), site.store)
    try:
        assert live.client.get("/v1/drift").status_code == 401
        resp = live.client.get("/v1/drift", headers=auth("reader"))
        assert resp.status_code == 200
        body = resp.json()
        assert body["counts"] == {"power": 1, "boot": 1, "agent": 1, "unknown": 1}
        assert sorted((a["host"], a["action"]) for a in body["actions"]) == [("node1", "boot_disk"), ("node2", "power_on"), ("node4", "agent_localboot")]
        assert "/v1/drift" in live.client.get("/openapi.json").json()["paths"]
        metrics = live.client.get("/metrics", headers=auth("reader")).text
        assert 'vaquero_drift_hosts{kind="power"} 1.0' in metrics and 'vaquero_drift_hosts{kind="unknown"} 1.0' in metrics

        from vaquero.cli import main

        monkeypatch.setenv("VAQUERO_TOKEN", auth("reader")["Authorization"].split()[1])
        capsys.readouterr()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:  # main() sets logging up for a process: give the test's handlers back afterwards
            assert main(["plan", "--live", "--server", live.url]) == 2
            out = capsys.readouterr().out
            assert main(["plan", "--live", "--server", live.url, "--format", "json", str(site.root), str(site.root)]) == 2
            plan = json.loads(capsys.readouterr().out)
        finally:
            root.handlers[:], root.level = handlers, level
        assert "  ^ host node2: power_on [drift: power]" in out and "node2: power is off (observed " in out
        assert "  ^ host node4: agent_localboot [drift: agent]" in out
        assert plan["has_changes"] is False and len(plan["drift"]["actions"]) == 3
        api_text = resp.text + metrics + out
    finally:
        live.stop()

    stored = json.dumps([r.value for r in site.store.list("/")])
    assert install_token
    for where, text in (("store", stored), ("API and CLI", api_text), ("logs", caplog.text)):
        assert PASSWORD not in text, f"the BMC password leaked into the {where}"
        assert install_token not in text, f"the agent's install token leaked into the {where}"


def test_only_the_leader_observes(site):
    from vaquero.api.cli import _drift_observer
    from vaquero.state.leader import LeaderElector

    site.ready("node1", "node2")
    first = LeaderElector(site.store, identity="first", ttl=2.0).start()
    assert first.wait_for_leadership(30)
    second = LeaderElector(site.store, identity="second", ttl=2.0).start()
    follower = _drift_observer(site.store, second, INTERVAL)
    leader = _drift_observer(site.store, first, INTERVAL)
    try:
        before = site.received(0)
        assert follower.run_once() == 0
        assert site.store.list("/drift/") == [] and site.received(0) == before  # no write, no BMC touched
        assert leader.run_once() == 2  # node1 and node2, the ready hosts
        assert site.record("node1")["status"] == "drift"  # powered off since the emulator started, the SoT wants it on
        first.stop()  # resigns: the second takes over, and only now observes
        assert second.wait_for_leadership(30)
        written = site.record("node2")["observed_at"]
        assert follower.run_once() == 2
        assert site.record("node2")["observed_at"] > written
        # the deposed leader's observer does nothing any more
        again = site.received(0)
        assert leader.run_once() == 0 and site.received(0) == again
    finally:
        second.stop()
        first.stop()


def test_redfish_host_powered_on_out_of_band_stops_drifting(tmp_path, monkeypatch):
    """The same observer over Redfish (sushy-emulator, TLS, basic auth): node1's system starts off,
    which is drift; powered on by another Redfish client, its power no longer drifts. The lab site's
    agent address is not served here: the agent part stays unknown, and never hides the BMC's."""
    import ssl

    import httpx
    from bmc_helpers import start_sushy

    monkeypatch.setenv("VAQUERO_LAB_BMC_PASSWORD", PASSWORD)
    sushy = start_sushy(tmp_path)
    try:
        root = tmp_path / "sot"
        shutil.copytree(LAB_SOT, root)
        cluster = root / "clusters" / "lab.yaml"
        cluster.write_text(
            cluster.read_text().replace(
                "bmc: {type: ipmi, address: 127.0.0.1, port: 6231, credential: lab-bmc}",
                f"bmc: {{type: redfish, address: 127.0.0.1, port: {sushy.port}, credential: lab-bmc, ca_file: {sushy.ca_file}}}",
            )
        )
        store = SQLiteStore(tmp_path / "store.sqlite")
        store.put(CURRENT_KEY, {"root": str(root), "sha": None, "label": "lab"})
        transition(store, Event("node1", "ready", None, actor="test", reason="installed"))
        obs = DriftObserver(store, Guard(concurrency=4, policy=POLICY), interval=INTERVAL, policy=POLICY, agent_timeout=0.5)

        def record() -> dict:
            rec = store.get("/drift/node1")
            return rec.value if rec else {}

        obs.start()
        try:
            drift = wait_until(lambda: any(f["kind"] == "power" for f in record().get("findings", [])) and record(), what="node1 off over Redfish")
            assert drift["via"] == "redfish" and drift["power"] == "off"
            with httpx.Client(
                base_url=f"https://127.0.0.1:{sushy.port}", auth=("admin", PASSWORD), verify=ssl.create_default_context(cafile=str(sushy.ca_file)), timeout=10
            ) as rf:
                (member,) = rf.get("/redfish/v1/Systems").json()["Members"]
                rf.post(f"{member['@odata.id']}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}).raise_for_status()
            on = wait_until(lambda: record().get("power") == "on" and record(), what="node1 on over Redfish")
            assert (on["status"], on["findings"]) == ("unknown", []) and on["reason"].startswith("agent: ")
        finally:
            obs.stop()
            store.close()
    finally:
        stop(sushy.proc)
