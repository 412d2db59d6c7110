"""The `vaquero` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .sot import SoT, SoTInvalid, SourceError, empty_sot, load_spec
from .sot.models import json_schema

EMPTY = ("", "-", "empty", "none")

# Sub-commands that live with the code they drive; each module offers add_parser(subparsers).
_PLUGGED = ("vaquero.bmc.cli", "vaquero.agent.cli", "vaquero.lab.cli", "vaquero.api.cli", "vaquero.runner.cli")


def _print_errors(errors: Sequence[Any], fmt: str, source: str) -> None:
    if fmt == "json":
        print(json.dumps({"valid": False, "source": source, "errors": [e.to_dict() for e in errors]}, indent=2))
    else:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"{source}: invalid, {len(errors)} error(s)", file=sys.stderr)


def _load(spec: str, subdir: str, fmt: str, semantic: bool = True) -> SoT | None:
    try:
        return load_spec(spec, subdir=subdir, semantic=semantic)
    except SoTInvalid as exc:
        _print_errors(exc.errors, fmt, spec)
    except SourceError as exc:
        if fmt == "json":
            print(json.dumps({"valid": False, "source": spec, "errors": [{"file": None, "line": None, "field": None, "message": str(exc)}]}))
        else:
            print(f"error: {exc}", file=sys.stderr)
    return None


def cmd_validate(args: argparse.Namespace) -> int:
    sot = _load(args.sot, args.subdir, args.format)
    if sot is None:
        return 1
    hosts = sum(1 for _ in sot.hosts())
    if args.format == "json":
        print(
            json.dumps(
                {
                    "valid": True,
                    "source": args.sot,
                    "sha": sot.sha,
                    "counts": {"sites": len(sot.sites), "clusters": len(sot.clusters), "hosts": hosts, "profiles": len(sot.profiles), "hooks": len(sot.hooks)},
                }
            )
        )
    else:
        sha = f" at {sot.sha[:12]}" if sot.sha else ""
        counts = f"{len(sot.sites)} site(s), {len(sot.clusters)} cluster(s), {hosts} host(s)"
        counts += f", {len(sot.profiles)} profile(s), {len(sot.hooks)} hook(s)"
        print(f"{sot.label}{sha}: valid: {counts}")
    return 0


def _plan_spec(value: str, repo: str | None) -> str:
    return f"{repo}@{value}" if repo and value.lower() not in EMPTY else value


def _instant(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T01:30:00+00:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import make_plan, render_text

    old_spec = _plan_spec(args.old, args.repo)
    new_spec = _plan_spec(args.new, args.repo)
    # The old revision is what the hardware runs: it was validated when it was applied, so only parse it.
    old = empty_sot() if args.old.lower() in EMPTY else _load(old_spec, args.subdir, args.format, semantic=False)
    new = empty_sot() if args.new.lower() in EMPTY else _load(new_spec, args.subdir, args.format)
    if old is None or new is None:
        return 1
    plan = make_plan(old, new, now=args.now)
    if args.format == "json":
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        sys.stdout.write(render_text(plan))
    return 2 if plan.has_changes else 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaquero", description="Bare metal as code: validate, plan, gate and apply a git source of truth.")
    parser.add_argument("--version", action="version", version=f"vaquero {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a SoT: schema, references, addresses, cycles, templates")
    p.add_argument("sot", help="a folder, or GIT-URL@REVISION (URL may be a local repository path)")
    p.add_argument("--subdir", default="", help="the SoT's folder inside the git repository")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what changing the SoT from OLD to NEW will do; exit 2 when there are changes")
    p.add_argument("old", help="folder or URL@REV of the current revision ('-' or 'empty' for a new site)")
    p.add_argument("new", help="folder or URL@REV of the new revision")
    p.add_argument("--repo", help="a git repository: OLD and NEW are then revisions in it")
    p.add_argument("--subdir", default="", help="the SoT's folder inside the git repository")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--now", type=_instant, help="ISO 8601 time (UTC if no offset): explain when waves wait for reboot windows")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of SoT documents (for editors)")
    p.set_defaults(func=cmd_schema)

    for name in _PLUGGED:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        add: Callable[[Any], None] | None = getattr(module, "add_parser", None)
        if add is not None:
            add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .logs import setup_logging

    setup_logging(args.log_level)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
