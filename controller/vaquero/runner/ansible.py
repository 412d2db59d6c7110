"""Running the collection's playbooks through ansible-runner, and turning its events into host events.

One private data dir per run and playbook (``<data_dir>/runs/<run>/install|upgrade|rollback``):
its inventory file points the ``vaquero.metal.sot`` inventory plugin at the SoT tree of the
plan's SHA. Each launch is one runner *ident* inside it (``artifacts/<ident>/``), so every
attempt's artifacts are kept.

What goes to Ansible: the playbook, ``--limit``, the inventory file and non-secret extravars
(plan id, run id, SHA). Secrets never do: see :mod:`vaquero.secretref`. ansible-runner seeds
the job's environment with the whole ``os.environ``; :func:`job_env` replaces it with the
allow-listed one (:mod:`vaquero.childenv`) before the job starts, so neither ansible-playbook,
nor the modules and hook commands under it, nor ``artifacts/<ident>/command`` see the
controller's variables.

Cancelling (an operator's abort, a lost leadership, a stopping worker): ansible-playbook runs
under a keeper process (:mod:`vaquero.runner.reaper`) that every process of the launch stays
below, however it detaches; the cancel callback has the keeper kill them all and answers
"cancel" to ansible-runner only once the keeper has read back that none is left (else
:class:`ProcessesLeft`).

Events: the ``vaquero.metal.host_state`` module returns ``vaquero_event``; the handler turns it
into a host state transition. ``vaquero.metal.hook`` returns ``vaquero_hook``; the handler keeps
its output in the host's timeline. A failed task (not ignored) or an unreachable host moves the
host to ``failed`` with the task as the step and the module's message as the reason.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaquero.bmc.guard import DEFAULT_GUARD
from vaquero.childenv import ansible_env
from vaquero.content import content_dir
from vaquero.secretref import SECRETS_DIR_ENV
from vaquero.state.machine import Event, State, TransitionRefused, current, transition
from vaquero.state.store import Store

from . import reaper

log = logging.getLogger("vaquero.runner")

PLAYBOOKS = {"add": "install.yml", "reinstall": "install.yml", "upgrade": "upgrade.yml", "power": "power.yml", "remove": "decommission.yml"}


@dataclass
class RunContext:
    """Who the events of one playbook launch belong to."""

    store: Store
    run: str
    plan: str
    sha: str | None
    attempts: dict[str, int]  # host -> attempt number of its step
    failures: dict[str, str] = field(default_factory=dict)  # host -> why it failed in this launch
    lock: threading.Lock = field(default_factory=threading.Lock)

    def extra(self, host: str | None = None) -> dict[str, Any]:
        return {"host": host, "plan": self.plan, "sha": self.sha, "run": self.run}


def record(
    ctx: RunContext, host: str, state: str, reason: str, *, step: str | None = None, detail: dict[str, Any] | None = None, key: str | None = None
) -> bool:
    """Apply one host event; False (logged) when the state machine refuses it."""
    attempt = ctx.attempts.get(host)
    event = Event(
        host=host,
        state=state,
        previous=None,
        actor="runner",
        reason=reason,
        sha=ctx.sha,
        plan=ctx.plan,
        run=ctx.run,
        step=step,
        attempt=attempt,
        detail=detail or {},
    )
    if key is not None:
        event.id = key
    try:
        transition(ctx.store, event)
    except TransitionRefused as exc:
        log.warning("event refused: %s", exc, extra=ctx.extra(host))
        return False
    log.info("host %s: %s (%s)", host, state, reason, extra=ctx.extra(host))
    return True


def event_key(ctx: RunContext, host: str, state: str) -> str:
    """Deterministic id of a state event: replaying the same step does not add it twice."""
    return f"{ctx.run}:{host}:{ctx.attempts.get(host, 0)}:{state}"


def handle_event(ctx: RunContext, event: dict[str, Any]) -> None:
    kind = event.get("event", "")
    data = event.get("event_data") or {}
    host = data.get("host") or data.get("remote_addr")
    if not host or kind not in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_item_on_failed"):
        return
    res = data.get("res") or {}
    task = data.get("task") or data.get("task_action") or "?"
    hook = res.get("vaquero_hook") if isinstance(res, dict) else None
    if isinstance(hook, dict) and hook.get("name"):
        now = current(ctx.store, host)
        state = now["state"] if now else State.PENDING.value
        verdict = "passed" if hook.get("ok") else "failed"
        record(ctx, host, state, f"hook {hook['name']} ({hook.get('phase')}) {verdict}", step=task, detail={"hook": hook}, key=event.get("uuid"))
    if kind == "runner_on_ok":
        ev = res.get("vaquero_event") if isinstance(res, dict) else None
        if isinstance(ev, dict) and ev.get("state"):
            record(ctx, host, ev["state"], ev.get("reason") or "", step=task, detail=ev.get("detail") or {}, key=event_key(ctx, host, ev["state"]))
        return
    if data.get("ignore_errors"):
        return
    msg = res.get("msg") if isinstance(res, dict) else None
    reason = f"task '{task}' {'unreachable' if kind == 'runner_on_unreachable' else 'failed'}: {msg or 'no message'}"
    with ctx.lock:
        ctx.failures.setdefault(host, reason)
    now = current(ctx.store, host)
    if now is None or now.get("state") not in (State.READY.value, State.FAILED.value, State.REMOVED.value):
        record(ctx, host, State.FAILED.value, reason, step=now.get("state") if now else task, detail={"task": task}, key=event_key(ctx, host, "failed"))


def write_inventory(private: Path, sot_root: Path) -> Path:
    inv = private / "inventory" / "inventory.vaquero.yml"
    inv.parent.mkdir(parents=True, exist_ok=True)
    inv.write_text(f"# the SoT tree of this run's SHA\nplugin: vaquero.metal.sot\npath: {sot_root}\nvalidate: false\n", encoding="utf-8")
    return inv


def job_env(runner_env: dict[str, str], envvars: dict[str, str], deny: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """The environment ansible-playbook runs with: the allow-list, our `envvars`, and what ansible-runner itself set.

    ansible-runner starts from ``os.environ``; a variable whose value is still the one inherited
    from this process was not set by ansible-runner, so it goes unless the allow-list keeps it.
    """
    own = {k: v for k, v in runner_env.items() if os.environ.get(k) != v and k not in deny}
    return ansible_env(extra={**own, **envvars}, deny=deny)


class ProcessesLeft(RuntimeError):
    """A cancelled launch whose processes could not all be seen gone (they may still be driving BMCs)."""


@dataclass
class Launch:
    status: str
    rc: int | None
    ident: str
    failures: dict[str, str]


def launch(
    ctx: RunContext,
    private: Path,
    sot_root: Path,
    playbook: str,
    hosts: list[str],
    *,
    ident: str,
    cancelled: Callable[[], bool],
    secrets_env: dict[str, str],
    extravars: dict[str, Any] | None = None,
) -> Launch:
    """Run one playbook for `hosts` and wait. Host events are applied while it runs."""
    from ansible_runner.interface import init_runner

    content = content_dir()
    inventory = write_inventory(private, sot_root)
    bindir = str(Path(sys.executable).parent)
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": str(content),
        "ANSIBLE_INVENTORY_ENABLED": "vaquero.metal.sot,yaml,ini,host_list",
        # A SoT the inventory plugin cannot read fails the launch with its file:line errors, not a bare "no hosts".
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        # the modules' BMC calls share this controller's guard folder: one lock per BMC, one limit and one breaker for the fleet
        **DEFAULT_GUARD.child_env(),
        **secrets_env,
    }
    variables = {"vaquero_run": ctx.run, "vaquero_plan": ctx.plan, "vaquero_run_sha": ctx.sha or "", "upgrade_serial": len(hosts)}
    variables.update(extravars or {})
    last_check = [0.0, False]
    token = uuid.uuid4().hex
    not_stopped: list[str] = []  # why the launch's processes are not known to be gone, once it was cancelled

    def cancel_callback() -> bool:
        now = time.monotonic()
        if now - last_check[0] > 0.5 and not last_check[1]:
            last_check[0], last_check[1] = now, cancelled()
            if last_check[1]:
                # Before answering "cancel": ansible-runner would SIGKILL the keeper's process group,
                # which the workers left (setsid). The keeper kills them all and reads back that none is left.
                try:
                    keeper = reaper.find(token)
                    why = reaper.stop(keeper) if keeper is not None else "its keeper process was not found"
                except Exception as exc:  # raising here would make ansible-runner skip even its own kill
                    why = f"stopping its keeper failed: {type(exc).__name__}: {exc}"
                if why is not None:
                    not_stopped.append(why)
        return bool(last_check[1])

    def event_handler(event: dict[str, Any]) -> bool:
        try:
            handle_event(ctx, event)
        except Exception:  # a bad event must not kill the run; it is logged with its context
            log.exception("event handler failed on %s", event.get("event"), extra=ctx.extra(event.get("event_data", {}).get("host")))
        return True

    log.info("ansible-runner %s for %s (%s)", playbook, ", ".join(hosts), ident, extra=ctx.extra())
    r = init_runner(
        private_data_dir=str(private),
        project_dir=str(content / "playbooks"),
        playbook=playbook,
        inventory=str(inventory),
        limit=",".join(hosts),
        forks=max(1, len(hosts)),
        ident=ident,
        extravars=variables,
        envvars=envvars,
        event_handler=event_handler,
        cancel_callback=cancel_callback,
        quiet=True,
        rotate_artifacts=0,
        timeout=None,
    )
    # The SoT's secret variables (the files of the secrets folder) stay out even if an operator's allow-list names one.
    folder = secrets_env.get(SECRETS_DIR_ENV)
    secret_names = frozenset(os.listdir(folder)) if folder and os.path.isdir(folder) else frozenset()
    r.config.env = job_env(r.config.env, envvars, deny=secret_names)
    # How often ansible-runner asks the cancel callback (default 5 s): a controller that lost the
    # leadership (or an operator's abort) stops the launch within this.
    r.config.pexpect_timeout = 0.25
    # ansible-playbook runs under a keeper: nothing the launch starts outlives it, see vaquero.runner.reaper.
    r.config.command = reaper.command(r.config.command, token)
    r.run()
    if not_stopped:
        raise ProcessesLeft(f"run {ctx.run}: launch {ident} was cancelled, but its processes are not known to be gone: {not_stopped[0]}")
    return Launch(status=r.status, rc=r.rc, ident=ident, failures=dict(ctx.failures))
