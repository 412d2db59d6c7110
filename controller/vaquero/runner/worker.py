"""The run worker: picks up approved plans and applies them, wave by wave, host step by host step.

plan (``/plans/<id>``, state ``approved``) -> run (``/runs/<id>``) -> waves -> host steps
(``/run-steps/<id>/<host>``). Each level is persisted before the runner acts, so a controller
that stops can resume mid-way:

- a step still marked ``running`` whose host got past ``netbooting`` for this plan is *not*
  started again (its install may be under way or done): it fails with a reason a person reads;
- a step whose host had not yet started netbooting is started again (its first actions -
  hooks, boot device, power cycle - can be repeated);
- a step whose host reached ``ready`` for this plan counts as done.

Before every launch the run-time policy gate (``vaquero.policy.runtime.gate``) is asked with the
live host states; after a failure the failure budget (``budget``) decides continue / retry /
halt / rollback. An operator can pause (takes effect before the next launch), resume and abort
(``cancel_requested``: the playbook is cancelled through ansible-runner's cancel callback).

HA (``elector``): the worker acts only while it holds the leadership it was started with. Before
each wave, each launch and each write it checks the elector (a local check of the lease deadline,
no store round trip, so a controller cut off from the store stops by itself); every write is a
fenced transaction (:class:`vaquero.state.store.FencedStore`); a running playbook is cancelled
as soon as the leadership is lost, and its BMC calls are refused past the lease deadline through
the fence file (``$VAQUERO_FENCE_FILE``, see :mod:`vaquero.bmc.guard`). A run whose fencing token
is older than ours belonged to a deposed leader: it is resumed at once, without waiting for its
heartbeat to go stale.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vaquero.bmc.guard import FENCE_ENV
from vaquero.callback import AGENT_TOKEN_ENV
from vaquero.policy import runtime
from vaquero.secretref import SecretsDir, env_references, sweep_stale
from vaquero.sot.loader import SoT, load
from vaquero.state.leader import LeaderElector, NotLeader
from vaquero.state.machine import State, current
from vaquero.state.store import FencedStore, FenceLost, Store

from . import records as R
from .ansible import PLAYBOOKS, Launch, RunContext, launch, record

log = logging.getLogger("vaquero.runner")

PAST_NETBOOT = (State.NETBOOTING.value, State.INSTALLING.value, State.REBOOTING.value, State.VALIDATING.value)
# A wipe under way may start again: zeroing a disk twice does what zeroing it once did.
ACTIVE = (State.PENDING.value, State.DRAINING.value, State.WIPING.value, State.POWERING_OFF.value, *PAST_NETBOOT)
# The state a host ends a step in when the step did what it was for.
DONE_STATE = {"remove": State.REMOVED.value}

Launcher = Callable[..., Launch]


class RunError(Exception):
    pass


def run_outcome(steps: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """The state of a run whose waves all ran, from its steps: `succeeded` only when every step did
    what it was for. A failed step (tolerated by policy) or one that was not run (skipped, still
    pending) means the revision is not applied everywhere: /sites-applied/current stays where it
    was, so the next plan includes these hosts again."""
    failed = sorted(h for h, st in steps.items() if st["state"] == R.STEP_FAILED)
    if failed:
        why = "; ".join(f"{h} ({str(steps[h].get('error') or 'failed')[:200]})" for h in failed)
        return R.FAILED, f"every wave ran; {len(failed)} host(s) failed (tolerated by policy): {why}"
    not_run = sorted(h for h, st in steps.items() if st["state"] != R.STEP_SUCCEEDED)
    if not_run:
        why = "; ".join(f"{h}: {steps[h].get('error') or steps[h]['state']}" for h in not_run)
        return R.FAILED, f"every wave ran; {len(not_run)} step(s) not run: {why}"
    return R.SUCCEEDED, None


class _Stopping(Exception):
    """The controller is shutting down, or lost the leadership: leave the run `running` for the next one to resume."""


class _FenceFile:
    """Keeps ``{token, until}`` (until: the lease deadline on CLOCK_MONOTONIC) in a file the playbooks'
    BMC calls read; removed as soon as the leadership is lost. Without a fresh file they refuse."""

    def __init__(self, path: Path, elector: LeaderElector, token: int, period: float = 0.2) -> None:
        self.path, self.elector, self.token, self.period = path, elector, token, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vaquero-fence", daemon=True)

    def __enter__(self) -> _FenceFile:
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._remove()

    def _write(self) -> bool:
        until = self.elector.deadline
        if until is None or self.elector.token != self.token:
            self._remove()
            return False
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"token": self.token, "until": until}, fh)
        os.replace(tmp, self.path)
        return True

    def _remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _run(self) -> None:
        # A deadline that lags the elector's by one period is still ahead of now: the lease is
        # refreshed every ttl/3, far more often than the margin this lag eats into.
        while not self._stop.wait(self.period):
            try:
                if not self._write():
                    return
            except OSError:
                log.exception("fence file %s could not be written", self.path)


class RunWorker:
    def __init__(
        self,
        store: Store,
        data_dir: str | os.PathLike[str],
        *,
        poll: float = 1.0,
        heartbeat: float = 2.0,
        hold_timeout: float = 600.0,
        launcher: Launcher = launch,
        worker_id: str | None = None,
        before_run: Callable[[dict[str, Any]], None] | None = None,
        elector: LeaderElector | None = None,
    ) -> None:
        # With an elector, the worker is bound to the leadership it starts under (its fencing token):
        # if this process loses it and gains it again, a new worker takes over, never this one.
        self.elector = elector
        self.token: int | None = elector.check() if elector is not None else None
        self.store: Store = FencedStore(store, self._fence) if elector is not None else store
        self.data_dir = Path(data_dir)
        self.poll = poll
        self.heartbeat = heartbeat
        self.hold_timeout = hold_timeout
        self.launcher = launcher
        self.before_run = before_run  # e.g. standalone: point the agent at the plan's SoT
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> RunWorker:
        sweep_stale()  # secrets folders of a controller killed mid-run
        self._thread = threading.Thread(target=self.loop, name="vaquero-run-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- leadership -------------------------------------------------------------------------
    def _fence(self) -> tuple[str, int]:
        """(leader key, token) for a fenced write; NotLeader once our leadership is over (local check)."""
        assert self.elector is not None
        key, token = self.elector.fence()
        if token != self.token:
            raise NotLeader(f"worker {self.id} was started under fencing token {self.token}, the leader now holds {token}")
        return key, token

    def lost(self) -> bool:
        """True once this worker must stop acting: stopped, or its leadership is over (no I/O)."""
        return self._stop.is_set() or (self.elector is not None and self.elector.token != self.token)

    def _check(self) -> None:
        """Called before each wave and each launch: _Stopping unless we may still act."""
        if self._stop.is_set():
            raise _Stopping("the worker is stopping")
        if self.elector is not None:
            try:
                self._fence()
            except NotLeader as exc:
                raise _Stopping(str(exc)) from None

    def loop(self) -> None:
        log.info("run worker %s started", self.id)
        while not self.lost():
            try:
                self.tick()
            except (NotLeader, FenceLost, _Stopping) as exc:
                log.warning("run worker %s stops: %s", self.id, exc)
                return
            except Exception:
                log.exception("run worker: tick failed")
            self._stop.wait(self.poll)
        log.info("run worker %s stopped", self.id)

    def tick(self) -> bool:
        """Resume an abandoned run, or start the oldest approved plan. True when a run was executed."""
        for rec in self.store.list("/plans/"):
            plan = rec.value
            if plan.get("state") == R.RUNNING and self._abandoned(plan["id"]):
                if self._claim(plan["id"], R.RUNNING):
                    self.execute(plan["id"], resume=True)
                    return True
        for rec in self.store.list("/plans/"):
            plan = rec.value
            if plan.get("state") == "approved" and plan.get("cancel_requested"):
                R.update(
                    self.store, R.plan_key(plan["id"]), lambda p: {**p, "state": R.CANCELLED, "finished": time.time()} if p.get("state") == "approved" else None
                )
                continue
            if plan.get("state") == "approved" and self._claim(plan["id"], "approved"):
                self.execute(plan["id"], resume=False)
                return True
        return False

    def _abandoned(self, pid: str) -> bool:
        run = self.store.get(R.run_key(pid))
        if run is None:
            return True
        if run.value.get("worker") == self.id:
            return False
        theirs = run.value.get("token")
        if self.token is not None and isinstance(theirs, int) and theirs < self.token:
            # Claimed under an older leadership: that leader's lease ended before ours began, and its
            # writes are fenced off. No need to wait for its heartbeat to go stale.
            return True
        return bool(time.time() - float(run.value.get("heartbeat") or 0) > 3 * self.heartbeat)

    def _claim(self, pid: str, expect_state: str) -> bool:
        rec = self.store.get(R.plan_key(pid))
        if rec is None or rec.value.get("state") != expect_state:
            return False
        value = {**rec.value, "state": R.RUNNING, "run": pid}
        if self.store.cas(R.plan_key(pid), value, expect=rec.revision) is None:
            return False
        now = time.time()
        prev = self.store.get(R.CURRENT_KEY)

        def claim_run(run: dict[str, Any]) -> dict[str, Any]:
            if not run:
                waves = (value.get("plan") or {}).get("waves") or []
                run = {
                    "id": pid,
                    "plan": pid,
                    "sha": value.get("sha"),
                    "root": value.get("root"),
                    "state": R.RUNNING,
                    "started": now,
                    "finished": None,
                    "wave": None,
                    "waves": [{"number": w["number"], "state": "pending"} for w in waves],
                    "error": None,
                    "paused": False,
                    "abort_requested": False,
                    "decisions": [],
                    "previous": prev.value if prev else None,
                    "resumed": 0,
                }
            else:
                run["resumed"] = int(run.get("resumed") or 0) + 1
                run["state"] = R.PAUSED if run.get("paused") else R.RUNNING
            run["worker"] = self.id
            run["token"] = self.token
            run["heartbeat"] = now
            return run

        R.update(self.store, R.run_key(pid), claim_run)
        return True

    # -- helpers ----------------------------------------------------------------------------
    def _extra(self, pid: str, sha: str | None, host: str | None = None) -> dict[str, Any]:
        return {"plan": pid, "run": pid, "sha": sha, "host": host}

    def _run_update(self, pid: str, **fields: Any) -> dict[str, Any] | None:
        return R.update(self.store, R.run_key(pid), lambda run: {**run, **fields, "heartbeat": time.time()})

    def _decision(self, pid: str, text: str) -> None:
        def add(run: dict[str, Any]) -> dict[str, Any] | None:
            decisions = list(run.get("decisions") or [])
            if decisions and decisions[-1]["text"] == text:
                return None
            decisions.append({"time": time.time(), "text": text})
            return {**run, "decisions": decisions[-200:]}

        R.update(self.store, R.run_key(pid), add)

    def _step_update(self, pid: str, host: str, **fields: Any) -> dict[str, Any]:
        new = R.update(self.store, R.step_key(pid, host), lambda s: {**s, **fields, "updated": time.time()})
        assert new is not None
        return new

    def cancelled(self, pid: str) -> bool:
        plan = self.store.get(R.plan_key(pid))
        run = self.store.get(R.run_key(pid))
        return bool((plan and plan.value.get("cancel_requested")) or (run and run.value.get("abort_requested")))

    def _cancel_requested(self, pid: str) -> bool:
        """ansible-runner's cancel callback: the leadership check comes first and needs no store."""
        if self.lost():
            return True
        try:
            return self.cancelled(pid)
        except Exception as exc:  # an unreachable store must not break the callback (the playbook would run on unwatched)
            log.warning("cancel check failed: %s", exc, extra={"run": pid, "plan": pid})
            return self.lost()

    def _beat(self, pid: str, stop: threading.Event) -> None:
        # A deposed leader stops beating at once, so the run no longer looks alive.
        while not stop.wait(self.heartbeat) and not self.lost():
            try:
                R.update(self.store, R.run_key(pid), lambda run: {**run, "heartbeat": time.time()} if run.get("worker") == self.id else None)
            except Exception:
                log.exception("heartbeat failed", extra={"run": pid, "plan": pid})

    def _wait_while_paused(self, pid: str) -> bool:
        """Block while the run is paused. False when it was aborted meanwhile."""
        announced = False
        while True:
            if self.cancelled(pid):
                return False
            run = self.store.get(R.run_key(pid))
            if not run or not run.value.get("paused"):
                if announced:
                    self._run_update(pid, state=R.RUNNING)
                    log.info("run resumed", extra={"run": pid, "plan": pid})
                return True
            if not announced:
                self._run_update(pid, state=R.PAUSED)
                log.info("run paused", extra={"run": pid, "plan": pid})
                announced = True
            if self._stop.wait(0.5):
                raise _Stopping()
            self._check()

    # -- a run ------------------------------------------------------------------------------
    def execute(self, pid: str, *, resume: bool) -> str:
        rec = self.store.get(R.plan_key(pid))
        assert rec is not None
        plan = rec.value
        sha = plan.get("sha")
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._beat, args=(pid, stop_beat), daemon=True)
        beat.start()
        log.info("run %s %s", pid, "resumed" if resume else "started", extra=self._extra(pid, sha))
        try:
            if self.before_run is not None:
                self.before_run(plan)
            state, error = self._execute(pid, plan, resume)
        except (_Stopping, NotLeader, FenceLost) as exc:
            stop_beat.set()
            log.warning("run %s left running for the next leader to resume: %s", pid, exc, extra=self._extra(pid, sha))
            return R.RUNNING
        except Exception as exc:
            log.exception("run failed", extra=self._extra(pid, sha))
            state, error = R.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            stop_beat.set()
        self._finish(pid, plan, state, error)
        return state

    def _finish(self, pid: str, plan: dict[str, Any], state: str, error: str | None) -> None:
        now = time.time()
        self._run_update(pid, state=state, finished=now, error=error, wave=None)
        R.update(self.store, R.plan_key(pid), lambda p: {**p, "state": state, "run": pid, "finished": now, "error": error})
        if state == R.SUCCEEDED:
            self.store.put(R.CURRENT_KEY, {"sha": plan.get("sha"), "root": plan.get("root"), "plan": pid, "time": now})
        log.info("run %s %s%s", pid, state, f": {error}" if error else "", extra=self._extra(pid, plan.get("sha")))

    def _execute(self, pid: str, plan: dict[str, Any], resume: bool) -> tuple[str, str | None]:
        sha = plan.get("sha")
        root = Path(plan["root"])
        sot = load(root, sha=sha, label=plan.get("label") or sha, semantic=False)
        waves = (plan.get("plan") or {}).get("waves") or []
        private = self.data_dir / "runs" / pid
        private.mkdir(parents=True, exist_ok=True)
        with SecretsDir(env_references(sot) | {AGENT_TOKEN_ENV}) as secrets, self._fence_file(private) as fence_env:
            for index, wave in enumerate(waves):
                self._check()
                run = self.store.get(R.run_key(pid))
                progress = (run.value.get("waves") if run else None) or []
                if index < len(progress) and progress[index].get("state") == "done":
                    continue
                self._set_wave(pid, index, "running")
                outcome, error = self._wave(pid, plan, sot, private, wave, {**secrets.envvars(), **fence_env})
                if outcome != "done":
                    self._set_wave(pid, index, outcome)
                    return (R.CANCELLED if outcome == "cancelled" else R.FAILED), error
                self._set_wave(pid, index, "done")
        return run_outcome(R.steps(self.store, pid))

    @contextlib.contextmanager
    def _fence_file(self, private: Path) -> Iterator[dict[str, str]]:
        """The environment that lets playbooks' BMC calls check our leadership ({} without an elector)."""
        if self.elector is None or self.token is None:
            yield {}
            return
        with _FenceFile(private / "fence.json", self.elector, self.token) as fence:
            yield {FENCE_ENV: str(fence.path)}

    def _set_wave(self, pid: str, index: int, state: str) -> None:
        def change(run: dict[str, Any]) -> dict[str, Any]:
            waves = [dict(w) for w in run.get("waves") or []]
            if index < len(waves):
                waves[index]["state"] = state
                waves[index].setdefault("started", time.time())
                if state in ("done", "failed", "cancelled"):
                    waves[index]["finished"] = time.time()
            return {**run, "waves": waves, "wave": waves[index]["number"] if index < len(waves) else None}

        R.update(self.store, R.run_key(pid), change)

    def _init_steps(self, pid: str, wave: dict[str, Any]) -> dict[str, dict[str, Any]]:
        out = {}
        for step in wave["steps"]:
            host = step["host"]

            def create(s: dict[str, Any], step: dict[str, Any] = step) -> dict[str, Any] | None:
                if s:
                    return None
                return {
                    "host": step["host"],
                    "cluster": step["cluster"],
                    "action": step["action"],
                    "wave": wave["number"],
                    "state": R.STEP_PENDING,
                    "attempt": 0,
                    "failures": 0,
                    "playbook": PLAYBOOKS.get(step["action"]),
                    "started": None,
                    "finished": None,
                    "error": None,
                }

            value = R.update(self.store, R.step_key(pid, host), create)
            assert value is not None
            out[host] = value
        return out

    def _recover_step(self, pid: str, sha: str | None, sot: SoT, step: dict[str, Any]) -> dict[str, Any]:
        """A step left `running` by a controller that stopped: decide without guessing."""
        host = step["host"]
        now = current(self.store, host) or {}
        ctx = RunContext(self.store, pid, pid, sha, {host: int(step.get("attempt") or 0)})
        state = now.get("state")
        if state == DONE_STATE.get(step["action"], State.READY.value) and now.get("plan") == pid:
            log.info("recovered step: host reached %s before the restart", state, extra=self._extra(pid, sha, host))
            return self._step_update(pid, host, state=R.STEP_SUCCEEDED, finished=time.time(), error=None)
        if state in PAST_NETBOOT and now.get("plan") == pid:
            reason = f"the controller restarted while the host was {state} for this plan: its install is not started again; check the host and re-run"
            record(ctx, host, State.FAILED.value, reason, step=state, key=f"{pid}:{host}:{step.get('attempt')}:interrupted")
            cluster = sot.clusters.get(step["cluster"])
            exhausted = (cluster.policy.retries if cluster and cluster.policy.on_failure == "retry" else 0) + 1
            return self._step_update(pid, host, state=R.STEP_FAILED, failures=exhausted, finished=time.time(), error=reason, final=True)
        if state in ACTIVE:
            record(
                ctx,
                host,
                State.FAILED.value,
                f"interrupted by a controller restart while {state}; the step is started again",
                step=state,
                key=f"{pid}:{host}:{step.get('attempt')}:interrupted",
            )
        log.info("recovered step: host had not started netbooting (%s): start it again", state, extra=self._extra(pid, sha, host))
        return self._step_update(pid, host, state=R.STEP_PENDING)

    def _wave(self, pid: str, plan: dict[str, Any], sot: SoT, private: Path, wave: dict[str, Any], secrets_env: dict[str, str]) -> tuple[str, str | None]:
        sha = plan.get("sha")
        steps = self._init_steps(pid, wave)
        recovered_failed: dict[str, bool] = {}
        for host, step in list(steps.items()):
            if step["state"] == R.STEP_RUNNING:
                steps[host] = self._recover_step(pid, sha, sot, step)
                if steps[host]["state"] == R.STEP_FAILED:
                    recovered_failed[host] = False
        for host, step in list(steps.items()):
            if step["state"] == R.STEP_PENDING and step["action"] not in PLAYBOOKS:
                if step["action"] == "config":
                    note = "config only: nothing to do on the machine"
                    steps[host] = self._step_update(pid, host, state=R.STEP_SUCCEEDED, error=None, note=note)
                else:
                    # Never `skipped` in a run that then succeeds: what the plan asked was not done.
                    why = f"not run: the runner has no playbook for action {step['action']}"
                    steps[host] = self._step_update(pid, host, state=R.STEP_FAILED, error=why, note=why, final=True, failures=1, finished=time.time())
                    recovered_failed[host] = False
            elif step["state"] == R.STEP_PENDING and step["action"] == "remove" and not step.get("sot_root"):
                steps[host] = self._removed_host_source(pid, sha, host)
                if steps[host]["state"] == R.STEP_FAILED:
                    recovered_failed[host] = False
        held_since: float | None = None
        halted: str | None = self._apply_budget(pid, sha, sot, private, wave, recovered_failed, secrets_env) if recovered_failed else None
        while True:
            self._check()
            if not self._wait_while_paused(pid):
                return "cancelled", "cancelled by an operator"
            steps = {h: self.store.get(R.step_key(pid, h)).value for h in steps}  # type: ignore[union-attr]
            todo = [s for s in steps.values() if s["state"] == R.STEP_PENDING]
            if halted or not todo:
                break
            allowed, window = self._gate(pid, sot, todo)
            if not allowed:
                # Waiting for a reboot window is normal (hours, days); a hold that nothing we run can
                # release (min_available with failed hosts) fails the run after hold_timeout.
                held_since = None if window else (held_since or time.monotonic())
                if held_since is not None and time.monotonic() - held_since > self.hold_timeout:
                    return "failed", f"wave {wave['number']}: held by policy for more than {self.hold_timeout:g}s"
                if self._stop.wait(1.0):
                    raise _Stopping()
                continue
            self._check()
            held_since = None
            results = self._launch_all(pid, sha, sot, private, wave["number"], [steps[h] for h in allowed], secrets_env)
            if self.cancelled(pid):
                return "cancelled", "cancelled by an operator"
            halted = self._apply_budget(pid, sha, sot, private, wave, results, secrets_env)
        failed = [s["host"] for s in steps.values() if s["state"] == R.STEP_FAILED]
        if halted:
            return "failed", halted
        if failed:
            self._decision(pid, f"wave {wave['number']}: {len(failed)} failed host(s) tolerated by policy ({', '.join(failed)})")
        return "done", None

    def _removed_host_source(self, pid: str, sha: str | None, host: str) -> dict[str, Any]:
        """Where a `remove` step takes its host from: the new revision no longer has it, so its BMC,
        MACs and identity come from the revision applied before this run (the one that still has
        it). Without that revision, or without the host in it, the step fails: a machine that cannot
        be identified is never power-cycled."""
        run = self.store.get(R.run_key(pid))
        previous = (run.value.get("previous") if run else None) or {}
        root = previous.get("root")
        why = None
        if not root or not Path(root).is_dir():
            why = "no previously applied revision is on disk to take its BMC, MACs and identity from"
        else:
            try:
                old = load(Path(root), sha=previous.get("sha"), semantic=False)
            except Exception as exc:  # a tree that no longer parses identifies nothing
                why = f"the previously applied revision {str(previous.get('sha'))[:12]} at {root} cannot be read: {type(exc).__name__}: {exc}"
            else:
                if old.host(host) is None:
                    why = f"the previously applied revision {str(previous.get('sha'))[:12]} does not have the host"
        if why is not None:
            why = f"not run: host {host} cannot be decommissioned: {why}; nothing was powered or wiped"
            log.error("%s", why, extra=self._extra(pid, sha, host))
            return self._step_update(pid, host, state=R.STEP_FAILED, error=why, note=why, final=True, failures=1, finished=time.time())
        self._decision(pid, f"host {host}: decommissioned with its data from the applied revision {str(previous.get('sha'))[:12]}")
        return self._step_update(pid, host, sot_root=str(root), sot_sha=previous.get("sha"))

    def _gate(self, pid: str, sot: SoT, todo: list[dict[str, Any]]) -> tuple[list[str], bool]:
        """Hosts that may start now, and whether some wait for a reboot window (not a hold)."""
        states = {r.value["name"]: r.value.get("state") for r in self.store.list("/hosts/") if "name" in r.value}
        by_cluster: dict[str, list[str]] = {}
        for s in todo:
            by_cluster.setdefault(s["cluster"], []).append(s["host"])
        allowed: list[str] = []
        window = False
        now = datetime.now(UTC)
        for cluster, hosts in by_cluster.items():
            if cluster not in sot.clusters:
                allowed.extend(hosts)
                continue
            members = {h.name for h in sot.clusters[cluster].hosts}
            known = [h for h in hosts if h in members]
            allowed.extend(h for h in hosts if h not in members)
            if not known:
                continue
            verdict = runtime.gate(sot, cluster, known, {k: v for k, v in states.items() if v}, now)
            if isinstance(verdict, runtime.Allow):
                allowed.extend(verdict.hosts)
            elif isinstance(verdict, runtime.Hold):
                allowed.extend(verdict.allowed)
                self._decision(pid, verdict.reason)
            else:
                self._decision(pid, verdict.reason)
                window = window or verdict.until is not None
        return allowed, window

    def _launch_all(
        self,
        pid: str,
        sha: str | None,
        sot: SoT,
        private: Path,
        number: int,
        steps: list[dict[str, Any]],
        secrets_env: dict[str, str],
        *,
        root: Path | None = None,
    ) -> dict[str, bool]:
        """Launch the steps (one ansible-runner per playbook, in parallel); host -> succeeded."""
        self._check()
        # One launch per playbook and SoT tree: a remove step's inventory is the revision that still has its host.
        groups: dict[tuple[str, Path], list[dict[str, Any]]] = {}
        for s in steps:
            tree = root or (Path(s["sot_root"]) if s.get("sot_root") and not s.get("playbook_override") else sot.root)
            groups.setdefault((s.get("playbook_override") or s["playbook"], tree), []).append(s)
        attempts: dict[str, int] = {}
        for s in steps:
            attempt = int(s.get("attempt") or 0) + 1
            attempts[s["host"]] = attempt
            # Persist before acting: a restarted controller knows this host's step was under way.
            self._step_update(pid, s["host"], state=R.STEP_RUNNING, attempt=attempt, started=s.get("started") or time.time(), error=None)
            ctx = RunContext(self.store, pid, pid, sha, attempts)
            record(
                ctx,
                s["host"],
                State.PENDING.value,
                f"wave {number}: {s['action']} (attempt {attempt})",
                step=s["action"],
                key=f"{pid}:{s['host']}:{attempt}:pending",
            )
        launches: dict[tuple[str, Path], Launch] = {}
        folders: dict[tuple[str, Path], Path] = {}
        errors: dict[tuple[str, Path], str] = {}

        def one(key: tuple[str, Path], group: list[dict[str, Any]]) -> None:
            playbook, tree = key
            hosts = [s["host"] for s in group]
            ctx = RunContext(self.store, pid, pid, sha, {h: attempts[h] for h in hosts})
            ident = f"w{number}-{playbook.removesuffix('.yml')}-{'-'.join(hosts)[:60]}-a{max(attempts[h] for h in hosts)}-{int(time.time())}"
            try:
                # One private data dir per playbook: launches running at once never share env/ or inventory/.
                folder = folders[key] = private / ("rollback" if root is not None else playbook.removesuffix(".yml"))
                folder.mkdir(parents=True, exist_ok=True)
                if self.lost():  # checked again right before the launch: the other launches may have taken a while to set up
                    errors[key] = "not launched: this controller is no longer the leader"
                    return
                launches[key] = self.launcher(
                    ctx, folder, tree, playbook, hosts, ident=ident, cancelled=lambda: self._cancel_requested(pid), secrets_env=secrets_env
                )
            except Exception as exc:
                log.exception("launch failed", extra=self._extra(pid, sha))
                errors[key] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=one, args=(key, g), daemon=True) for key, g in groups.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A launch cancelled because we lost the leadership is not a host failure: leave the steps
        # `running` for the next leader to recover.
        self._check()
        results: dict[str, bool] = {}
        for key, group in groups.items():
            res = launches.get(key)
            where = str(folders.get(key, private) / "artifacts" / (res.ident if res else ""))
            for s in group:
                host = s["host"]
                h = current(self.store, host) or {}
                # A launch with several hosts is "failed" when any of them failed: judge each host by its own events.
                done = DONE_STATE.get(s["action"], State.READY.value) if not s.get("playbook_override") else State.READY.value
                ok = res is not None and h.get("state") == done and h.get("plan") == pid and host not in res.failures
                if not ok:
                    why = (res.failures.get(host) if res else None) or errors.get(key) or (f"playbook {res.status} (rc {res.rc})" if res else "not launched")
                    if res is not None and res.status == "canceled":
                        why = "cancelled by an operator"
                    if h.get("state") in ACTIVE:
                        ctx = RunContext(self.store, pid, pid, sha, attempts)
                        record(ctx, host, State.FAILED.value, why, step=h.get("state"), key=f"{pid}:{host}:{attempts[host]}:failed")
                    self._step_update(
                        pid,
                        host,
                        state=R.STEP_FAILED,
                        error=why,
                        finished=time.time(),
                        artifacts=where,
                    )
                else:
                    self._step_update(
                        pid,
                        host,
                        state=R.STEP_SUCCEEDED,
                        error=None,
                        finished=time.time(),
                        artifacts=where,
                    )
                results[host] = ok
        return results

    def _apply_budget(
        self, pid: str, sha: str | None, sot: SoT, private: Path, wave: dict[str, Any], results: dict[str, bool], secrets_env: dict[str, str]
    ) -> str | None:
        """After a launch: ask the failure budget about each failed host. Returns why the run halts, or None."""
        halted: str | None = None
        rollback: list[str] = []
        all_steps = R.steps(self.store, pid)
        for host, ok in results.items():
            if ok:
                continue
            step = all_steps[host]
            failures = int(step.get("failures") or 0) + (0 if step.get("final") else 1)
            self._step_update(pid, host, failures=failures)
            all_steps[host]["failures"] = failures
            cluster = sot.clusters.get(step["cluster"])
            if cluster is None:
                halted = halted or f"host {host} failed: {step.get('error')}"
                continue
            counts = {h: int(s.get("failures") or 0) for h, s in all_steps.items() if s["cluster"] == cluster.name and s["state"] == R.STEP_FAILED}
            counts[host] = failures
            outcome = runtime.budget(cluster, host, counts)
            self._decision(pid, outcome.reason)
            log.info("failure budget: %s", outcome.reason, extra=self._extra(pid, sha, host))
            if isinstance(outcome, runtime.Retry) and not step.get("final"):
                self._step_update(pid, host, state=R.STEP_PENDING)
            elif isinstance(outcome, runtime.Halt):
                halted = halted or outcome.reason
                if cluster.upgrade.rollback and step["action"] == "upgrade" and host not in rollback and not step.get("rolled_back"):
                    # upgrade.rollback: a host whose upgrade failed returns to the previous profile.
                    rollback.append(host)
                    self._decision(pid, f"host {host}: upgrade.rollback is set: it returns to the previous revision")
            elif isinstance(outcome, runtime.Rollback):
                rollback.extend(h for h in outcome.hosts if h not in rollback and not all_steps.get(h, {}).get("rolled_back"))
                halted = halted or outcome.reason
        if rollback:
            self._rollback(pid, sha, private, wave["number"], rollback, secrets_env)
        return halted

    def _rollback(self, pid: str, sha: str | None, private: Path, number: int, hosts: list[str], secrets_env: dict[str, str]) -> None:
        run = self.store.get(R.run_key(pid))
        previous = (run.value.get("previous") if run else None) or {}
        root = previous.get("root")
        if not root or not Path(root).is_dir():
            self._decision(pid, f"rollback of {', '.join(hosts)} impossible: no previous revision was applied")
            return
        old = load(root, sha=previous.get("sha"), semantic=False)
        steps = []
        for h in hosts:
            step = self._step_update(pid, h, playbook_override="upgrade.yml", rollback_to=previous.get("sha"))
            steps.append(step)
        self._decision(pid, f"rolling back {', '.join(hosts)} to {str(previous.get('sha'))[:12]}")
        results = self._launch_all(pid, previous.get("sha"), old, private, number, steps, secrets_env, root=Path(root))
        for h, ok in results.items():
            self._step_update(
                pid, h, state=R.STEP_FAILED, rolled_back=ok, error=f"rolled back to {str(previous.get('sha'))[:12]}" + ("" if ok else " (rollback failed)")
            )
