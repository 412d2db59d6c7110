"""The leader's drift observer: every ``interval`` seconds, read each ready host's BMC and its site
agent's boot state, and record how they differ from the applied SoT revision.

Every BMC read goes through the :class:`~vaquero.bmc.guard.Guard` it is given (the fleet-wide lock
per BMC, concurrency limit, deadlines and circuit breaker shared with playbooks and ``vaquero
power``): a dead BMC costs one deadline, then fails fast while its breaker is open, and is
recorded as ``unknown (reason)``. A round waits for its reads, each bounded by the guard's
deadline (and the agent's by ``agent_timeout``), so the loop never hangs on a BMC or an agent.

Only the leader observes: ``leader`` (the elector's ``check``) is asked before each round and the
guard's own fence before each BMC call, and the records are written through the Store the caller
gives (a ``FencedStore`` in the controller), so a deposed leader neither touches a BMC nor writes.
Passwords are read from their references per round, live only in the endpoint, and never reach a
record or a log line (errors carry the BMC's message and the host name, not the endpoint).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..bmc import Bmc, BmcError, BootSetting, Guard, GuardPolicy, PowerState, open_bmc
from ..bmc.from_sot import sot_endpoint
from ..secretref import SecretMissing
from ..sot import SoT
from ..state.machine import current
from ..state.rounds import AppliedSoT, RoundLoop
from ..state.store import Store
from .agent import AGENT_TIMEOUT, AgentUnread, read_agent
from .compare import Observation, judge, should_observe
from .records import PREFIX, actions, drift_key

log = logging.getLogger("vaquero.drift")

DEFAULT_INTERVAL = 60.0
# An observation is a read: one retry, and a deadline well inside any sane interval.
OBSERVE_POLICY = GuardPolicy(attempt_timeout=5.0, deadline=10.0, retries=1)


class DriftObserver(RoundLoop):
    name = "vaquero-drift"
    _log = log

    def __init__(
        self,
        store: Store,
        guard: Guard,
        *,
        interval: float = DEFAULT_INTERVAL,
        policy: GuardPolicy = OBSERVE_POLICY,
        leader: Callable[[], object] | None = None,
        workers: int = 8,
        opener: Callable[..., Bmc] = open_bmc,
        agent_timeout: float = AGENT_TIMEOUT,
        correct: Callable[[SoT, list[dict[str, Any]]], object] | None = None,
    ) -> None:
        """``correct`` (optional): called after every round with the applied SoT and the round's drift
        actions (empty when none); the controller passes the gate's drift planner (a plan through the gate,
        never a BMC call from here)."""
        if interval <= 0:
            raise ValueError("the drift interval must be > 0 seconds")
        super().__init__()
        self.store = store
        self.guard = guard
        self.interval = interval
        self.policy = policy
        self.leader = leader
        self.workers = max(1, min(workers, guard.concurrency))
        self.opener = opener
        self.agent_timeout = agent_timeout
        self.correct = correct
        self.rounds = 0  # finished rounds, for tests and logs
        self._verdicts: dict[str, tuple[Any, ...]] = {}
        self._sot = AppliedSoT(store)

    def stop_timeout(self) -> float:
        """Stop after the BMC reads under way (each ends by its guard deadline)."""
        return self.policy.deadline + 5

    def _applied(self) -> SoT | None:
        applied = self._sot.get()
        return applied[0] if applied else None

    def run_once(self) -> int:
        """One round over the applied revision's hosts; returns how many BMCs were read."""
        if not self.leading():
            return 0
        sot = self._applied()
        if sot is None:
            return 0
        names = set()
        tasks: list[tuple[str, str | None, str, Any]] = []
        for cluster, _, host in sot.hosts():
            names.add(host.name)
            state = (current(self.store, host.name) or {}).get("state")
            tasks.append((host.name, state, host.power, (cluster, host)))
        read = 0
        written: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vaquero-drift-read") as pool:
            futures = []
            for name, state, power, (cluster, host) in tasks:
                if self._stop.is_set():
                    break
                if should_observe(state) is not None or host.bmc is None:
                    why = None if host.bmc is not None else "no BMC in the SoT"
                    written.append(self._write(judge(name, state, power, None, skipped=why)))
                    continue
                futures.append((name, state, power, pool.submit(self._observe, sot, cluster, host)))
            for name, state, power, fut in futures:
                obs = fut.result()
                read += 1
                written.append(self._write(judge(name, state, power, obs)))
        for rec in self.store.list(PREFIX):
            if rec.value.get("host") not in names:
                self.store.delete(rec.key)  # the host left the applied revision
                self._verdicts.pop(str(rec.value.get("host")), None)
        if self.correct is not None and not self._stop.is_set():
            self.correct(sot, actions(written))  # every round: a round without drift tells the planner it cleared
        self.rounds += 1
        return read

    def _observe(self, sot: SoT, cluster: Any, host: Any) -> Observation:
        at = time.time()
        power, boot, error = self._read_bmc(sot, cluster, host)
        agent_state = os_report_at = agent_error = None
        try:
            status = read_agent(sot, host.name, self.agent_timeout)
        except AgentUnread as exc:
            agent_error = str(exc)
        else:
            if status is not None:
                agent_state, os_report_at = status.state, status.phoned_home_at
        return Observation(
            host.bmc.type, at=at, power=power, boot=boot, error=error, agent_state=agent_state, os_report_at=os_report_at, agent_error=agent_error
        )

    def _read_bmc(self, sot: SoT, cluster: Any, host: Any) -> tuple[PowerState | None, BootSetting | None, str | None]:
        try:
            endpoint = sot_endpoint(sot, cluster, host)
        except SecretMissing as exc:
            return None, None, f"BMC credential {host.bmc.credential}: {exc}"
        bmc = self.opener(endpoint, self.guard, self.policy)
        try:
            return bmc.get_power_state(), bmc.get_boot_device(), None
        except BmcError as exc:
            return None, None, f"{exc.kind}: {exc.message}"
        finally:
            try:
                bmc.close()
            except BmcError as exc:
                log.info("drift: closing the BMC session failed: %s", exc.message, extra={"host": host.name})

    def _write(self, record: dict[str, Any]) -> dict[str, Any]:
        # logged when a host's verdict changes, not every round (10,000 hosts behind a dead agent
        # would otherwise log 10,000 lines an interval)
        verdict = (record["status"], tuple(f["action"] for f in record["findings"]), bool(record["reason"]))
        if self._verdicts.get(record["host"]) != verdict:
            for f in record["findings"]:
                log.info("drift: %s", f["reason"], extra={"host": record["host"]})
            if record["status"] == "unknown":
                log.info("drift: %s: unknown (%s)", record["host"], record["reason"], extra={"host": record["host"]})
        self.store.put(drift_key(record["host"]), record)
        self._verdicts[record["host"]] = verdict
        return record
