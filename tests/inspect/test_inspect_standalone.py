"""`vaquero standalone` (agent and controller in one process): an accepted report goes straight
into the controller's store; one the store cannot take yet stays in the agent's inbox. The real
Agent (rendered from a discovery SoT) and the standalone's own SQLite store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from inspect_helpers import UNKNOWN, body, discovery_sot

from vaquero.agent.service import Agent, AgentConfig
from vaquero.inspect import records
from vaquero.inspect.records import inspection_key
from vaquero.standalone import Standalone

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_standalone_stores_reports_and_keeps_what_it_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sot = discovery_sot(tmp_path / "sot")
    sa = Standalone(sot=str(sot), data_dir=tmp_path / "data")
    store = sa.open_store()
    agent = Agent(AgentConfig(sot=str(sot), dhcp=False, fetch_assets=False, tftp_port=0, asset_root=tmp_path / "assets", state_dir=tmp_path / "agent"))
    app = agent.prepare()
    sa.agent_service = agent  # what start_agent sets, without binding the site's address
    app.on_inspection = sa.store_inspections
    transport = httpx.ASGITransport(app=app, client=("10.90.0.150", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as c:
        assert (await c.post(f"/v1/inspect/{UNKNOWN}", content=body())).status_code == 202
        rec = store.get(inspection_key(UNKNOWN))
        assert rec is not None and rec.value["site"] == "lab" and rec.value["agent"] == "lab-agent" and rec.value["report"]["cpus"] == 2
        assert agent.inbox is not None and len(agent.inbox) == 0
        # the store is full (its bound, made small here): the agent keeps the report and says so
        monkeypatch.setattr(records, "MAX_INSPECTIONS", 1)
        other = "52:54:00:00:30:02"
        assert (await c.post(f"/v1/inspect/{other}", content=body(other, nics=[{"name": "e", "mac": other}]))).status_code == 202
        assert store.get(inspection_key(other)) is None and len(agent.inbox) == 1
        monkeypatch.setattr(records, "MAX_INSPECTIONS", 4096)
        sa.store_inspections()  # what a restart, or the next report, does
        assert store.get(inspection_key(other)) is not None and len(agent.inbox) == 0
    store.close()


def test_before_a_first_approval_the_site_only_sot_has_no_discovery(tmp_path: Path) -> None:
    from vaquero.render.site import get_site
    from vaquero.sot import load, load_spec

    sot = discovery_sot(tmp_path / "sot")
    site = get_site(load(sot))
    assert site.discovery is not None and site.discovery.enabled
    sa = Standalone(sot=str(sot), data_dir=tmp_path / "data")
    served = load_spec(sa.site_only(site))  # names a cluster it has not: it would not even load with discovery
    assert get_site(served).discovery is None and not served.profiles
