"""The leader's enrollment proposer: every ``/inspections/*`` record still ``new`` whose site, in the
applied revision, has discovery enabled becomes one proposed host file, validated with the applied SoT
in the gate's bounded child, then a pull request (with a GitHub token) or a patch file (without).

A round runs every ``interval`` seconds and as soon as a new report is written (a store watch), and
proposes at most ``batch`` machines. Outcomes, on the record:

- ``proposed`` with ``proposal`` (``{kind: pull, number, url, branch, path}`` or ``{kind: patch, path}``):
  never proposed again, whatever the machine reports later;
- ``refused`` with ``reason``: the file would not validate (or no address is free); tried again only
  once another revision is applied;
- still ``new`` with ``last_error`` and ``retry_at``: GitHub or git failed; retried with backoff.

Only the leader proposes (``leader`` is asked before each round and the caller passes a fenced store),
so two controllers never open two pull requests for one machine. The GitHub token lives in the client's
headers only: no record, log line or exception here holds it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..gate.github import GitHubClient
from ..gate.sandbox import Limits, run_bounded
from ..inspect import INSPECTIONS, InspectionReport, list_inspections
from ..sot import SoT, SourceError
from ..state.leader import NotLeader
from ..state.rounds import AppliedSoT, RoundLoop
from ..state.store import FenceLost, Record, Store, StoreUnavailable, WatchCompacted
from .hostfile import HostFile, NoAddress, facts, host_file
from .patch import PatchFailed, write_patch
from .pull import NOTHING_INSTALLED, PullFailed, body_of, open_pull

log = logging.getLogger("vaquero.enroll")

DEFAULT_INTERVAL = 30.0
BACKOFF_FIRST = 10.0
BACKOFF_MAX = 3600.0
NEW, PROPOSED, REFUSED = "new", "proposed", "refused"
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class Target:
    """Where proposals go. With ``client`` and ``repo``: pull requests into ``branch``; else patches."""

    data_dir: Path
    client: GitHubClient | None = None
    repo: str | None = None  # owner/name on GitHub
    repo_url: str | None = None  # the git URL the gate fetches (the patch's scratch clone comes from it)
    branch: str = "main"
    subdir: str = ""
    cache: Path | None = None
    secrets: tuple[str, ...] = ()  # scrubbed from any error text kept in a record

    @property
    def pulls(self) -> bool:
        return self.client is not None and bool(self.repo)


class Refused(Exception):
    """The machine cannot be proposed into this revision (kept as the record's reason)."""


class Transient(Exception):
    """A step that may work later (GitHub, git, the validation child): the record is retried."""


class Proposer(RoundLoop):
    name = "vaquero-enroll"
    _log = log

    def __init__(
        self,
        store: Store,
        target: Target,
        *,
        interval: float = DEFAULT_INTERVAL,
        batch: int = 8,
        max_open: int = 16,
        leader: Callable[[], object] | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError("the enrollment interval must be > 0 seconds")
        super().__init__()
        self.store = store
        self.target = target
        self.interval = interval
        self.batch = max(1, batch)
        # Reports come from anyone on the provisioning network: however many machines claim to be
        # new, at most this many proposals wait for review at once (no flood of pull requests).
        self.max_open = max(1, max_open)
        self.leader = leader
        self.limits = limits or Limits()
        self.clock = clock
        self.rounds = 0
        self._sot = AppliedSoT(store)
        self._since: int | None = None

    # -- the loop --
    def stop_timeout(self) -> float:
        return self.limits.seconds + 30

    def before_round(self) -> None:
        self._since = self.store.revision()

    def wait(self) -> None:
        """Until the interval ends or a machine's report asks for a proposal (our own writes do not wake us)."""
        deadline = time.monotonic() + self.interval
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self._since is None:
                self._stop.wait(left)
                return
            try:
                for event in self.store.watch(INSPECTIONS, since=self._since, timeout=min(left, 1.0)):
                    self._since = event.revision
                    value = event.value or {}
                    if event.type == "put" and value.get("status") == NEW and float(value.get("retry_at") or 0) <= self.clock():
                        return
                    if self._stop.is_set() or time.monotonic() >= deadline:
                        return
            except WatchCompacted:
                return
            except (StoreUnavailable, NotImplementedError):
                self._stop.wait(min(left, 1.0))

    # -- one round --
    def _applied(self) -> tuple[SoT, dict[str, Any]] | None:
        return self._sot.get()

    def run_once(self) -> int:
        """Propose the machines waiting (at most ``batch``); returns how many were proposed."""
        if not self.leading():
            return 0
        applied = self._applied()
        if applied is None:
            return 0
        sot, current = applied
        now = self.clock()
        records = list_inspections(self.store)
        # Addresses of proposals not merged yet: two machines must not be offered the same one.
        taken = {
            str(p["address"])
            for r in records
            if r.value.get("status") in (PROPOSED, "merged") and isinstance(p := r.value.get("proposal"), dict) and p.get("address")
        }
        waiting = [r for r in records if self._eligible(r.value, sot, current, now)]
        waiting.sort(key=lambda r: (float(r.value.get("first_seen") or 0), r.key))
        room = self.max_open - sum(1 for r in records if r.value.get("status") == PROPOSED)
        if waiting and room <= 0:
            log.warning(
                "enroll: %d proposal(s) await review (at most %d): %d machine(s) wait until some are merged or closed",
                self.max_open - room,
                self.max_open,
                len(waiting),
            )
        proposed = 0
        for rec in waiting[: max(0, min(self.batch, room))]:
            if self._stop.is_set():
                break
            outcome = self._one(rec, sot, current, taken)
            if outcome is not None and outcome.get("status") == PROPOSED:
                proposed += 1
                taken.add(str(outcome["proposal"]["address"]))
        self.rounds += 1
        return proposed

    def _eligible(self, value: dict[str, Any], sot: SoT, current: dict[str, Any], now: float) -> bool:
        status = value.get("status")
        if status == REFUSED:
            if value.get("refused_sha") == current.get("sha") and value.get("refused_root") == current.get("root"):
                return False
        elif status != NEW or float(value.get("retry_at") or 0) > now:
            return False
        site = sot.sites.get(str(value.get("site")))
        return site is not None and site.discovery is not None and site.discovery.enabled

    def _one(self, rec: Record, sot: SoT, current: dict[str, Any], taken: set[str]) -> dict[str, Any] | None:
        value = rec.value
        mac = str(value.get("mac"))
        try:
            report = InspectionReport.model_validate(value.get("report"))
            proposal = self._propose(report, value, sot, current, taken)
        except Refused as exc:
            log.warning("enroll: machine %s not proposed: %s", mac, exc)
            return self._update(rec.key, {"status": REFUSED, "reason": str(exc), "refused_sha": current.get("sha"), "refused_root": current.get("root")})
        except ValidationError as exc:
            why = f"the stored report is not a valid report ({exc.error_count()} error(s))"
            return self._update(rec.key, {"status": REFUSED, "reason": why, "refused_sha": current.get("sha"), "refused_root": current.get("root")})
        except (Transient, PullFailed, PatchFailed, SourceError, OSError) as exc:
            return self._retry(rec.key, value, str(exc) if not isinstance(exc, OSError) else f"{type(exc).__name__}: {exc.strerror}")
        except (NotLeader, FenceLost, StoreUnavailable):
            raise
        except Exception as exc:
            # One machine's unexpected failure must not stop the others' proposals, nor repeat every round.
            log.exception("enroll: machine %s could not be proposed", mac)
            return self._retry(rec.key, value, f"internal error ({type(exc).__name__}); see the controller's log")
        log.info("enroll: machine %s proposed as %s: %s", mac, proposal["host"], proposal.get("url") or proposal["path"])
        return self._update(rec.key, {"status": PROPOSED, "proposal": proposal, "proposed_at": self.clock(), "last_error": None, "retry_at": None})

    def _retry(self, key: str, value: dict[str, Any], error: str) -> dict[str, Any] | None:
        attempts = int(value.get("attempts") or 0) + 1
        delay = min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
        error = self._scrub(error)
        log.warning("enroll: machine %s: %s; retrying in %.0fs", value.get("mac"), error, delay)
        return self._update(key, {"last_error": error, "attempts": attempts, "retry_at": self.clock() + delay})

    def _scrub(self, text: str) -> str:
        text = _USERINFO.sub(r"\1***@", text)  # git echoes a clone URL, credentials and all
        for secret in self.target.secrets:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text[:2000]

    def _update(self, key: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply ``changes`` to the record unless it was proposed meanwhile (a report between our read and
        write keeps its new report and gets the changes)."""
        for _ in range(16):
            rec = self.store.get(key)
            if rec is None or rec.value.get("status") == PROPOSED:
                return None
            value = rec.value | changes
            if self.store.cas(key, value, expect=rec.revision) is not None:
                return value
        return None

    # -- the proposal --
    def _propose(self, report: InspectionReport, value: dict[str, Any], sot: SoT, current: dict[str, Any], taken: set[str]) -> dict[str, Any]:
        owner = next((h.name for _, _, h in sot.hosts() if set(h.macs) & set(report.macs)), None)
        if owner is not None:
            raise Refused(f"a MAC of this machine already belongs to host {owner} of the applied revision")
        site = sot.sites[str(value["site"])]
        try:
            hf = host_file(sot, site, report, agent=str(value.get("agent") or ""), also_taken=taken)
        except NoAddress as exc:
            raise Refused(str(exc)) from None
        self._validate(hf, Path(current["root"]))
        sha = current.get("sha")
        repo_path = f"{self.target.subdir.strip('/')}/{hf.path}" if self.target.subdir.strip("/") else hf.path
        message = f"enroll {hf.name}: a machine reported at site {site.name} (boot MAC {report.boot_mac})"
        common = {"host": hf.name, "address": hf.address, "network": hf.network, "mac": report.boot_mac}
        if self.target.pulls and sha:
            assert self.target.client is not None and self.target.repo is not None
            body = body_of(facts(report), host=hf.name, path=repo_path, site=site.name, address=hf.address, network=hf.network)
            pull = open_pull(
                self.target.client,
                self.target.repo,
                base=self.target.branch,
                sha=sha,
                mac=report.boot_mac,
                path=repo_path,
                text=hf.text,
                title=f"Enroll {hf.name} ({report.boot_mac}) at site {site.name}",
                body=body,
                message=message,
            )
            return {"kind": "pull", "number": pull.number, "url": pull.url, "branch": pull.branch, "path": pull.path} | common
        if self.target.pulls:
            log.info("enroll: the applied revision is a folder, not a commit: machine %s gets a patch, not a pull request", report.boot_mac)
        dest = self.target.data_dir / "enrollments" / f"{report.boot_mac.replace(':', '-')}.patch"
        write_patch(
            dest,
            repo_url=self.target.repo_url if sha else None,
            sha=sha,
            root=Path(current["root"]),
            subdir=self.target.subdir,
            path=hf.path,
            text=hf.text,
            message=f"{message}\n\n{NOTHING_INSTALLED}",
            cache=self.target.cache,
        )
        log.info("enroll: machine %s: patch %s (git am or git apply it to the SoT repository)", report.boot_mac, dest)
        return {"kind": "patch", "path": str(dest), "file": repo_path} | common

    def _validate(self, hf: HostFile, root: Path) -> None:
        """The applied SoT plus the host file must validate, in the gate's bounded child."""
        with tempfile.TemporaryDirectory(prefix="vaquero-enroll-check-") as tmp:
            scratch = Path(tmp) / "sot"
            shutil.copytree(root, scratch, symlinks=True, copy_function=_link_or_copy)
            target = scratch / hf.path
            if target.exists():
                raise Refused(f"{hf.path} already exists in the applied revision")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(hf.text)
            answer = run_bounded({"root": str(scratch), "mode": "validate", "label": f"enrollment of {hf.name}"}, self.limits)
        errors = answer.get("errors") or []
        if answer.get("failed"):
            raise Transient(str(errors[0].get("message")) if errors else "the validation process failed")
        if errors:
            shown = "; ".join(f"{e.get('file')}:{e.get('line')}: {e.get('field')}: {e.get('message')}" for e in errors[:5])
            raise Refused(f"the host file does not validate with the applied revision: {shown}")


def _link_or_copy(src: str, dst: str) -> object:
    # The applied tree is never written to: a hard link is a copy here, and free for disk images.
    try:
        os.link(src, dst)
        return dst
    except OSError:
        return shutil.copy2(src, dst)
