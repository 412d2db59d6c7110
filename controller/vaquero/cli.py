"""The `vaquero` command line.

Building the parser imports nothing heavy: the commands that live with the code they drive are
listed in :data:`COMMANDS` (name, help, module), and a module is imported only when its command
is the one being run (then its ``add_parser(subparsers)`` fills in that command's arguments). So
``vaquero --help`` and ``vaquero validate`` never load FastAPI, httpx, ansible-runner or the BMC
libraries, and a module that fails to import is an error naming the import, not a command that
silently vanished from the list.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .gate.sandbox import Limits
    from .sot import SoT
    from .sot.source import Resolved

    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsers = argparse._SubParsersAction

EMPTY = ("", "-", "empty", "none")

# Commands that live with the code they drive: (name, help, module offering add_parser(subparsers)).
# The help is here so that listing the commands imports none of them; tests/unit/test_cli_lazy.py
# checks it against what each module registers.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("power", "power a host on/off, cycle or reset it, or show its power state", "vaquero.bmc.cli"),
    ("boot", "set a host's boot device (pxe, disk, cdrom, http, bios, none) or show it (status)", "vaquero.bmc.cli"),
    ("agent", "serve a site's netboot: DHCP (dnsmasq), TFTP, HTTP scripts, assets, callbacks", "vaquero.agent.cli"),
    ("lab", "the virtual lab: boot assets, netboot a QEMU host (needs root)", "vaquero.lab.cli"),
    # vaquero.deploy.cli registers `image` from vaquero.image.cli (build) and adds `ramdisk` to it.
    ("image", "build bootable OS disk images (raw + gzip) and the deploy ramdisk that writes them, cached by content hash (needs root)", "vaquero.deploy.cli"),
    ("server", "run the controller API: webhook, revisions, plans, approvals, hosts", "vaquero.api.cli"),
    ("apply", "send a SoT revision to a server to validate and plan it (token in $VAQUERO_TOKEN)", "vaquero.api.cli"),
    ("standalone", "controller + agent in one process with SQLite: apply a SoT to a lab or a small site", "vaquero.standalone"),
    ("run", "runs of approved plans: list, show, steps, approve, pause, resume, abort", "vaquero.runner.cli"),
)


class CommandUnavailable(Exception):
    """A command's module failed to import, or no longer defines the command."""


class _Chosen:
    """What a module's add_parser(subparsers) is given: the parser already registered for the chosen
    command, so its arguments land there; the module's other commands go to parsers that are dropped."""

    def __init__(self, name: str, parser: argparse.ArgumentParser) -> None:
        self.name = name
        self.parser = parser
        self.found = False
        self.helps: dict[str, str | None] = {}

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        self.helps[name] = kwargs.get("help")
        if name != self.name:
            return argparse.ArgumentParser(prog=name, add_help=False)
        self.found = True
        for key in ("description", "epilog"):
            if kwargs.get(key):
                setattr(self.parser, key, kwargs[key])
        return self.parser


def load_command(name: str, module_name: str, parser: argparse.ArgumentParser) -> _Chosen:
    """Import `module_name` and let it define command `name` on `parser`."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a syntax error or a failing import-time check is as fatal as a missing library
        raise CommandUnavailable(f"command {name!r} is unavailable: importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    add = getattr(module, "add_parser", None)
    if add is None:
        raise CommandUnavailable(f"command {name!r} is unavailable: {module_name} has no add_parser()")
    chosen = _Chosen(name, parser)
    try:
        add(chosen)
    except ImportError as exc:  # add_parser may import the options of the code it drives
        raise CommandUnavailable(f"command {name!r} is unavailable: {module_name}.add_parser() failed: {type(exc).__name__}: {exc}") from exc
    if not chosen.found:
        raise CommandUnavailable(f"command {name!r} is unavailable: {module_name}.add_parser() does not define it")
    return chosen


class _LazyCommands(_SubParsers):
    """Sub-parsers whose arguments are defined when argparse picks the command, not before."""

    modules: dict[str, str]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        name = values[0]
        module_name = self.modules.pop(name, None)
        if module_name is not None:
            try:
                load_command(name, module_name, self._name_parser_map[name])
            except CommandUnavailable as exc:
                parser.exit(1, f"{parser.prog}: error: {exc}\n")
        super().__call__(parser, namespace, values, option_string)


def _print_errors(errors: Sequence[Any], fmt: str, source: str) -> None:
    if fmt == "json":
        print(json.dumps({"valid": False, "source": source, "errors": [e.to_dict() for e in errors]}, indent=2))
    else:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"{source}: invalid, {len(errors)} error(s)", file=sys.stderr)


def _source_error(message: str, fmt: str, source: str) -> None:
    if fmt == "json":
        print(json.dumps({"valid": False, "source": source, "errors": [{"file": None, "line": None, "field": None, "message": message}]}))
    else:
        print(f"error: {message}", file=sys.stderr)


def _resolve(spec: str, subdir: str, fmt: str) -> Resolved | None:
    """Fetch (git) or find (folder) a SoT; reading and checking it happens in the bounded child."""
    from .sot import SoTInvalid, SourceError
    from .sot.source import resolve

    try:
        return resolve(spec, subdir=subdir)
    except SoTInvalid as exc:
        _print_errors(exc.errors, fmt, spec)
    except SourceError as exc:
        _source_error(str(exc), fmt, spec)
    return None


def _bounded(request: dict[str, Any], fmt: str, source: str, limits: Limits) -> dict[str, Any] | None:
    """Validate (and plan) in a child with the gate's bounds: hostile input ends in bounded time and memory."""
    from .gate.sandbox import run_bounded
    from .sot import SoTError

    answer = run_bounded(request, limits)
    errors = answer.get("errors") or []
    if not errors:
        return answer
    if all(e.get("file") for e in errors):
        _print_errors([SoTError(e["file"], int(e.get("line") or 1), _field_path(e.get("field")), e["message"]) for e in errors], fmt, source)
    elif fmt == "json":
        print(json.dumps({"valid": False, "source": source, "errors": errors}))
    else:
        for e in errors:
            where = f"{e['file']}:{e['line']}: {e['field']}: " if e.get("file") else ""
            print(f"error: {where}{e['message']}", file=sys.stderr)
        print(f"{source}: invalid, {len(errors)} error(s)", file=sys.stderr)
    return None


def _field_path(field: str | None) -> tuple[str, ...]:
    # The child already formatted the path; keep it as one segment so it prints unchanged.
    return (field,) if field and field != "(document)" else ()


def _limits(args: argparse.Namespace) -> Limits:
    from .gate.sandbox import Limits

    return Limits(seconds=args.timeout, memory=args.memory << 20)


def cmd_validate(args: argparse.Namespace) -> int:
    src = _resolve(args.sot, args.subdir, args.format)
    if src is None:
        return 1
    answer = _bounded({"root": str(src.root), "sha": src.sha, "label": src.label, "mode": "validate"}, args.format, args.sot, _limits(args))
    if answer is None:
        return 1
    counts = answer["counts"]
    if args.format == "json":
        print(json.dumps({"valid": True, "source": args.sot, "sha": answer["sha"], "counts": counts}))
    else:
        sha = f" at {answer['sha'][:12]}" if answer.get("sha") else ""
        text = f"{counts['sites']} site(s), {counts['clusters']} cluster(s), {counts['hosts']} host(s)"
        text += f", {counts['profiles']} profile(s), {counts['hooks']} hook(s)"
        print(f"{answer['label']}{sha}: valid: {text}")
    return 0


def _plan_spec(value: str, repo: str | None) -> str:
    return f"{repo}@{value}" if repo and value.lower() not in EMPTY else value


def _instant(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T01:30:00+00:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _live_drift(args: argparse.Namespace) -> dict[str, Any] | None:
    """GET /v1/drift from the server (token in $VAQUERO_TOKEN); None after printing why not."""
    import ssl

    import httpx

    token = os.environ.get("VAQUERO_TOKEN")
    if not token:
        print("vaquero plan --live: set VAQUERO_TOKEN to an API token (role read or above)", file=sys.stderr)
        return None
    verify: Any = ssl.create_default_context(cafile=args.cacert) if args.cacert else True
    try:
        with httpx.Client(base_url=args.server.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=30) as client:
            resp = client.get("/v1/drift")
    except httpx.HTTPError as exc:
        print(f"vaquero plan --live: {args.server}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    if resp.status_code != 200:
        print(f"vaquero plan --live: {args.server}: GET /v1/drift answered {resp.status_code}", file=sys.stderr)
        return None
    report: dict[str, Any] = resp.json()
    return report


def cmd_plan(args: argparse.Namespace) -> int:
    if args.old is None or args.new is None:
        if not args.live or args.old is not None:
            print("vaquero plan: OLD and NEW are needed (only --live alone shows the drift by itself)", file=sys.stderr)
            return 1
        return _drift_only(args)
    drift = _live_drift(args) if args.live else None
    if args.live and drift is None:
        return 1
    old_spec = _plan_spec(args.old, args.repo)
    new_spec = _plan_spec(args.new, args.repo)
    old = None if args.old.lower() in EMPTY else _resolve(old_spec, args.subdir, args.format)
    new = None if args.new.lower() in EMPTY else _resolve(new_spec, args.subdir, args.format)
    if (old is None and args.old.lower() not in EMPTY) or (new is None and args.new.lower() not in EMPTY):
        return 1
    if new is None:
        # Planning to an empty SoT (decommission everything): nothing new to validate, so in-process is bounded.
        from .plan import make_plan, render_text
        from .sot import empty_sot

        old_sot = _parse_only(old, args.format, old_spec) if old is not None else empty_sot()
        if old_sot is None:
            return 1
        plan = make_plan(old_sot, empty_sot(), now=args.now)
        answer: dict[str, Any] | None = {"plan": plan.to_dict(), "text": render_text(plan), "has_changes": plan.has_changes}
    else:
        # The old revision is what the hardware runs: it was validated when it was applied, so the child only parses it.
        current = {"root": str(old.root), "sha": old.sha, "label": old.label} if old is not None else None
        request = {"root": str(new.root), "sha": new.sha, "label": new.label, "current": current, "now": args.now.isoformat() if args.now else None}
        answer = _bounded(request, args.format, new_spec, _limits(args))
    if answer is None:
        return 1
    if args.format == "json":
        print(json.dumps(answer["plan"] | ({"drift": drift} if drift is not None else {}), indent=2))
    else:
        sys.stdout.write(answer["text"])
        if drift is not None:
            from .drift.text import render_drift

            sys.stdout.write("\n" + render_drift(drift))
    return 2 if answer["has_changes"] or (drift is not None and drift.get("actions")) else 0


def _drift_only(args: argparse.Namespace) -> int:
    drift = _live_drift(args)
    if drift is None:
        return 1
    if args.format == "json":
        print(json.dumps({"drift": drift}, indent=2))
    else:
        from .drift.text import render_drift

        sys.stdout.write(render_drift(drift))
    return 2 if drift.get("actions") else 0


def _parse_only(src: Resolved, fmt: str, spec: str) -> SoT | None:
    from .sot import SoTInvalid, SourceError, load

    try:
        return load(src.root, sha=src.sha, label=src.label, semantic=False)
    except SoTInvalid as exc:
        _print_errors(exc.errors, fmt, spec)
    except SourceError as exc:
        _source_error(str(exc), fmt, spec)
    return None


def cmd_schema(args: argparse.Namespace) -> int:
    from .sot.models import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def _bound_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=60.0, help="seconds the check may take before it is stopped (default %(default)s)")
    p.add_argument("--memory", type=int, default=1024, help="MiB of memory the check may use (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaquero", description="Bare metal as code: validate, plan, gate and apply a git source of truth.")
    parser.add_argument("--version", action="version", version=f"vaquero {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["json", "text"], help="log lines as JSON objects (default) or text for people (or $VAQUERO_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=_LazyCommands)
    assert isinstance(sub, _LazyCommands)
    sub.modules = {}

    p = sub.add_parser("validate", help="check a SoT: schema, references, addresses, cycles, templates")
    p.add_argument("sot", help="a folder, or GIT-URL@REVISION (URL may be a local repository path)")
    p.add_argument("--subdir", default="", help="the SoT's folder inside the git repository")
    p.add_argument("--format", choices=["text", "json"], default="text")
    _bound_options(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what changing the SoT from OLD to NEW will do; exit 2 when there are changes")
    p.add_argument("old", nargs="?", help="folder or URL@REV of the current revision ('-' or 'empty' for a new site)")
    p.add_argument("new", nargs="?", help="folder or URL@REV of the new revision")
    p.add_argument("--live", action="store_true", help="add the drift the server's leader observed on the hardware (GET /v1/drift; token in $VAQUERO_TOKEN)")
    p.add_argument(
        "--server",
        default=os.environ.get("VAQUERO_SERVER", "http://127.0.0.1:8080"),
        help="with --live: API URL (default $VAQUERO_SERVER or http://127.0.0.1:8080)",
    )
    p.add_argument("--cacert", help="with --live: CA certificate to verify the server's HTTPS certificate")
    p.add_argument("--repo", help="a git repository: OLD and NEW are then revisions in it")
    p.add_argument("--subdir", default="", help="the SoT's folder inside the git repository")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--now", type=_instant, help="ISO 8601 time (UTC if no offset): explain when waves wait for reboot windows")
    _bound_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of SoT documents (for editors)")
    p.set_defaults(func=cmd_schema)

    for name, text, module_name in COMMANDS:
        sub.add_parser(name, help=text)
        sub.modules[name] = module_name
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .logs import FORMAT_ENV, setup_logging

    if args.log_format:
        # Commands that set logging up again (agent, server) keep the choice.
        os.environ[FORMAT_ENV] = args.log_format
    setup_logging(args.log_level)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
