"""Validate and plan one revision in a child process with hard bounds on memory, CPU and time.

Python threads cannot be interrupted, so a template or a document that makes validation run
away would pin the gate (and, with it, every later push). The work runs in `python -m
vaquero.gate.sandbox` instead: it sets RLIMIT_AS and RLIMIT_CPU on itself before it reads its
request, and the gate kills it at a wall-clock deadline. Whatever happens in there (an error, a
runaway template, an alias bomb, a crash), the gate gets an answer it can record: a plan, or
errors with file and line, or the reason the child was stopped.

The child gets an allow-listed environment (no secret of the controller) and only the paths of
the trees to read; it writes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..childenv import child_env

if TYPE_CHECKING:
    from ..plan import Plan
    from ..sot import SoT

log = logging.getLogger("vaquero.gate.sandbox")

Errors = list[dict[str, Any]]


@dataclass(frozen=True)
class Limits:
    seconds: float = 60.0  # wall clock, per revision
    memory: int = 1 << 30  # bytes of address space (RLIMIT_AS)
    cpu: int = 90  # CPU seconds (RLIMIT_CPU): a second bound should the clock be generous
    output: int = 256 << 20  # bytes of answer read from the child
    tree: int = 256 << 20  # bytes of files in a fetched commit, checked before it is extracted


def touched_clusters(plan: Plan) -> set[str]:
    return {h.cluster for h in plan.hosts} | {s.name for s in plan.scopes if s.kind == "cluster"}


def auto_apply(plan: Plan, old: SoT, new: SoT) -> bool:
    """True when every cluster the plan touches is marked policy.auto_apply (and it touches at least one,
    and no site changes: a site holds the network every cluster in it depends on)."""
    touched = touched_clusters(plan)
    if not touched or any(s.kind == "site" for s in plan.scopes):
        return False
    for name in touched:
        cluster = new.clusters.get(name) or old.clusters.get(name)
        if cluster is None or not cluster.policy.auto_apply:
            return False
    return True


def _error(message: str, file: str | None = None, line: int | None = None, field: str | None = None) -> dict[str, Any]:
    return {"file": file, "line": line, "field": field, "message": message}


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    """Load, validate and plan in this process. Never raises: every failure is an `errors` answer.

    request: {"root", "sha", "label", "current": {"root", "sha", "label"} | None, "mode": "plan" | "validate", "now": ISO time | None}
    answer: {"errors": [...]} or {"errors": [], "plan", "text", "auto_apply", "has_changes", "base_sha"}
    (mode "validate": {"errors": [], "label", "sha", "counts"})
    """
    from ..plan import make_plan, render_text
    from ..sot import SoTInvalid, SourceError, empty_sot, load

    try:
        new = load(request["root"], sha=request.get("sha"), label=request.get("label"))
    except SoTInvalid as exc:
        return {"errors": [e.to_dict() for e in exc.errors]}
    except SourceError as exc:
        return {"errors": [_error(str(exc))]}
    except MemoryError:
        raise
    except Exception as exc:
        return {"errors": [_error(_internal("validating", exc))]}
    if request.get("mode") == "validate":
        hosts = sum(1 for _ in new.hosts())
        counts = {"sites": len(new.sites), "clusters": len(new.clusters), "hosts": hosts, "profiles": len(new.profiles), "hooks": len(new.hooks)}
        return {"errors": [], "label": new.label, "sha": new.sha, "counts": counts}
    current = request.get("current")
    try:
        if current and current.get("root"):
            # What the hardware runs was validated when it was applied: parse only.
            old = load(current["root"], sha=current.get("sha"), label=current.get("label") or current.get("sha") or current["root"], semantic=False)
            base_sha = current.get("sha")
        else:
            old, base_sha = empty_sot(), None
    except (SoTInvalid, SourceError) as exc:
        return {"errors": [_error(f"the current revision cannot be read: {exc}")]}
    except MemoryError:
        raise
    except Exception as exc:
        return {"errors": [_error(_internal("reading the current revision", exc))]}
    try:
        now = datetime.fromisoformat(request["now"]) if request.get("now") else None
        plan = make_plan(old, new, now=now)
        return {
            "errors": [],
            "plan": plan.to_dict(),
            "text": render_text(plan),
            "auto_apply": auto_apply(plan, old, new),
            "has_changes": plan.has_changes,
            "base_sha": base_sha,
        }
    except MemoryError:
        raise
    except Exception as exc:
        return {"errors": [_error(_internal("planning", exc))]}


def _internal(doing: str, exc: BaseException) -> str:
    """An unexpected exception, told with where it was raised in the SoT's templates if it was."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            where = f" (template line {tb.tb_lineno})"
        tb = tb.tb_next
    return f"the revision could not be checked: {type(exc).__name__} while {doing}{where}"


def _set_limits(limits: Limits) -> None:
    # Only ever lower a limit: a caller that is already bounded tighter (a test, a systemd unit) stays so.
    wanted = ((resource.RLIMIT_AS, limits.memory, limits.memory), (resource.RLIMIT_CPU, limits.cpu, limits.cpu + 5), (resource.RLIMIT_CORE, 0, 0))
    for which, soft, hard in wanted:
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        if cur_soft != resource.RLIM_INFINITY:
            soft = min(soft, cur_soft)
        resource.setrlimit(which, (soft, hard))


def _failure(message: str) -> dict[str, Any]:
    return {"errors": [_error(message)], "failed": True}


def run_bounded(request: dict[str, Any], limits: Limits | None = None) -> dict[str, Any]:
    """Evaluate `request` in a child process under `limits`; returns its answer (see `evaluate`) plus
    `peak_rss` (bytes) and `seconds`. A child stopped or crashed gives an answer with one error saying why."""
    limits = limits or Limits()
    # -P: the controller's working folder is not a place to import code from.
    cmd = [sys.executable, "-P", "-m", "vaquero.gate.sandbox", str(limits.memory), str(limits.cpu)]
    env = child_env(allow=("PYTHONPATH",))
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as exc:
        return _failure(f"the validation process could not start: {exc.strerror}")
    timed_out = False
    try:
        out, err = proc.communicate(json.dumps(request).encode(), timeout=limits.seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(proc)
        out, err = proc.communicate()
    seconds = time.monotonic() - started
    rc = proc.returncode
    if err:
        log.warning("validation process said: %s", err.decode(errors="replace")[-2000:].strip())
    if timed_out:
        answer = _failure(f"validation exceeded {limits.seconds:g} s: the revision was stopped (a runaway template or a huge SoT?)")
    elif rc == -signal.SIGXCPU:
        answer = _failure(f"validation exceeded its CPU limit ({limits.cpu} s)")
    elif rc == -signal.SIGKILL:
        answer = _failure("the validation process was killed (out of memory or CPU time)")
    else:
        try:
            parsed: Any = json.loads(out[: limits.output]) if out else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list):
            answer = parsed
        else:
            why = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
            answer = _failure(f"the validation process failed ({why}) without an answer")
    answer.setdefault("seconds", round(seconds, 3))
    return answer


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _main(argv: list[str]) -> int:
    limits = Limits(memory=int(argv[0]), cpu=int(argv[1]))
    _set_limits(limits)
    request = json.loads(sys.stdin.buffer.read())
    try:
        answer = evaluate(request)
    except MemoryError:
        answer = _failure(f"validation exceeded its memory limit ({limits.memory >> 20} MiB): the revision was stopped (a YAML alias bomb?)")
    except RecursionError:
        answer = _failure("validation recursed too deep")
    answer["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sys.stdout.buffer.write(json.dumps(answer).encode())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(_main(sys.argv[1:]))
