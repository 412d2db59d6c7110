"""CLI commands: ``vaquero power HOST on|off|cycle|reset|status`` and ``vaquero boot HOST DEVICE``.

The command functions take an already-resolved :class:`~vaquero.bmc.Endpoint`; :func:`add_parser`
adds the sub-commands to an argparse parser. Who resolves HOST to its BMC is the caller's choice:
pass ``resolve`` (e.g. from the SoT loader) to :func:`add_parser`; without one, the BMC is given
on the command line (``--bmc-type``, ``--bmc-address``, ...) with the password read from
``$VAQUERO_BMC_PASSWORD`` or ``--bmc-password-file``, never from an argument.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from vaquero.bmc import BmcError, BootDevice, BootMode, Endpoint, GuardPolicy, Secret, open_bmc
from vaquero.bmc.actions import BOOT_WAIT, POWER_WAIT, ensure_boot, ensure_power
from vaquero.bmc.errors import BmcSettingNotApplied, BmcStateNotReached

PASSWORD_ENV = "VAQUERO_BMC_PASSWORD"
POWER_ACTIONS = ("on", "off", "cycle", "reset", "status")
BOOT_DEVICES = tuple(d.value for d in BootDevice)

Resolver = Callable[[argparse.Namespace], Endpoint]


def _emit(out: TextIO, as_json: bool, data: dict[str, Any], text: str) -> None:
    out.write(json.dumps(data, sort_keys=True) + "\n" if as_json else text + "\n")


def _error(err: TextIO, as_json: bool, exc: BmcError) -> int:
    if as_json:
        data: dict[str, Any] = {"host": exc.host, "error": exc.kind, "message": exc.message}
        # what the BMC reads back, so a script sees the state the host is really in
        if isinstance(exc, BmcStateNotReached):
            data.update(requested=exc.target.value, power_state=exc.observed.value)
        elif isinstance(exc, BmcSettingNotApplied):
            data.update(requested=exc.requested.as_dict(), boot=exc.observed.as_dict())
        err.write(json.dumps(data) + "\n")
    else:
        err.write(f"error: {exc.host}: {exc.kind}: {exc.message}\n")
    return 1


def power_command(
    endpoint: Endpoint,
    action: str,
    *,
    force: bool = False,
    soft_timeout: float = 60.0,
    timeout: float = 60.0,
    wait_timeout: float = POWER_WAIT,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Power ``on``/``off``/``cycle``/``reset`` a host, or show its ``status``. Returns the exit code.

    ``on`` and ``off`` do nothing when the host is already there; ``off`` is soft (ACPI) then hard
    after ``soft_timeout`` seconds, or hard at once with ``force``; ``cycle`` and ``reset`` power on
    a host that is off. Success only once the BMC reads the asked state back (within
    ``wait_timeout`` s); otherwise exit code 1 with the state it reads.
    """
    if action not in POWER_ACTIONS:
        raise ValueError(f"unknown power action {action!r}")
    host = endpoint.host
    try:
        with open_bmc(endpoint, policy=GuardPolicy(attempt_timeout=min(20.0, timeout), deadline=timeout)) as bmc:
            res = ensure_power(bmc, action, force=force, soft_timeout=soft_timeout, wait_timeout=wait_timeout)
    except BmcError as exc:
        return _error(err, as_json, exc)
    before, after, changed, forced = res.before.value, res.after.value, res.changed, res.forced
    if action == "status":
        text = f"{host}: power {after}"
    elif changed:
        text = f"{host}: power {action}: {before} -> {after}" + (" (forced)" if forced else "")
    else:
        text = f"{host}: power already {after}"
    _emit(out, as_json, {"host": host, "action": action, "changed": changed, "before": before, "power_state": after, "forced": forced}, text)
    return 0


def boot_command(
    endpoint: Endpoint,
    device: str,
    *,
    persistent: bool = False,
    uefi: bool | None = None,
    timeout: float = 60.0,
    wait_timeout: float = BOOT_WAIT,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Set the boot device (``device`` one of pxe, disk, cdrom, http, bios, none), or show it
    (``device="status"``); nothing is sent when the BMC already holds that setting. Success only
    once the BMC reads the setting back as asked (within ``wait_timeout`` s); otherwise exit code 1
    naming what it reads."""
    host = endpoint.host
    mode = None if uefi is None else (BootMode.UEFI if uefi else BootMode.BIOS)
    try:
        with open_bmc(endpoint, policy=GuardPolicy(attempt_timeout=min(20.0, timeout), deadline=timeout)) as bmc:
            res = ensure_boot(bmc, device, persistent=persistent, mode=mode, wait_timeout=wait_timeout)
    except BmcError as exc:
        return _error(err, as_json, exc)
    before, after, changed = res.before, res.after, res.changed
    desc = after.describe()
    if device == "status":
        text = f"{host}: boot {desc}"
    elif changed:
        text = f"{host}: boot set to {desc}"
    else:
        text = f"{host}: boot already {desc}"
    _emit(out, as_json, {"host": host, "changed": changed, "before": before.as_dict(), "boot": after.as_dict()}, text)
    return 0


# --- argparse ----------------------------------------------------------------------------------


def endpoint_from_args(args: argparse.Namespace) -> Endpoint:
    """The BMC given on the command line (no SoT). The password comes from a file or the env."""
    if not args.bmc_type or not args.bmc_address:
        raise SystemExit("error: no BMC for this host: give --bmc-type and --bmc-address (or run with a SoT)")
    if args.bmc_password_file:
        with open(args.bmc_password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise SystemExit(f"error: no BMC password: set ${PASSWORD_ENV} or --bmc-password-file")
    kg = None
    if args.bmc_kg_file:
        with open(args.bmc_kg_file, encoding="utf-8") as fh:
            kg = fh.read().strip()
        if args.bmc_type != "ipmi":
            raise SystemExit("error: --bmc-kg-file is an IPMI option (the BMC key of a two-key login)")
    return Endpoint(
        kind=args.bmc_type,
        address=args.bmc_address,
        port=args.bmc_port,
        username=args.bmc_username,
        password=Secret(password),
        host=args.host,
        verify=not args.insecure,
        ca_file=args.ca_file,
        scheme=args.bmc_scheme,
        system_id=args.system_id,
        kg=Secret(kg) if kg else None,
    )


def endpoint_from_sot(args: argparse.Namespace) -> Endpoint:
    """HOST's BMC from the SoT (``--sot`` or $VAQUERO_SOT); the password is read from its reference now."""
    from ..secretref import SecretMissing
    from ..sot import SoTInvalid, SourceError, load_spec
    from .from_sot import sot_endpoint

    try:
        sot = load_spec(args.sot)
    except SoTInvalid as exc:
        raise SystemExit(_sot_errors(exc.errors, args.sot, args.json)) from None
    except SourceError as exc:
        raise SystemExit(_sot_errors([], args.sot, args.json, str(exc))) from None
    found = sot.host(args.host)
    if found is None:
        raise SystemExit(f"vaquero: no host {args.host!r} in the SoT {args.sot}")
    cluster, host = found
    if host.bmc is None:
        raise SystemExit(f"vaquero: host {args.host} has no BMC in the SoT")
    try:
        return sot_endpoint(sot, cluster, host)
    except SecretMissing as exc:
        raise SystemExit(f"vaquero: host {args.host}: BMC credential {host.bmc.credential}: {exc}") from None


def _sot_errors(errors: list[Any], source: str, as_json: bool, message: str | None = None) -> int:
    """Print what is wrong with the SoT as ``vaquero validate`` does (``file:line: field: message``); exit code 1."""
    if as_json:
        found = [e.to_dict() for e in errors] or [{"file": None, "line": None, "field": None, "message": message}]
        print(json.dumps({"valid": False, "source": source, "errors": found}, indent=2 if errors else None))
    elif message is not None:
        print(f"error: {message}", file=sys.stderr)
    else:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"{source}: invalid, {len(errors)} error(s)", file=sys.stderr)
    return 1


def sot_or_args(args: argparse.Namespace) -> Endpoint:
    return endpoint_from_sot(args) if args.sot else endpoint_from_args(args)


def _bmc_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sot", default=os.environ.get("VAQUERO_SOT"), help="SoT folder or URL@REV to find HOST's BMC in (default $VAQUERO_SOT)")
    g = p.add_argument_group("BMC (when HOST is not resolved from the SoT)")
    g.add_argument("--bmc-type", choices=["ipmi", "redfish"])
    g.add_argument("--bmc-address")
    g.add_argument("--bmc-port", type=int)
    g.add_argument("--bmc-username", default="admin")
    g.add_argument("--bmc-password-file", help=f"file holding the password (else ${PASSWORD_ENV})")
    g.add_argument("--bmc-kg-file", help="IPMI: file holding the BMC key (Kg) of a two-key login (default: none, the password is the key)")
    g.add_argument("--bmc-scheme", choices=["https", "http"], default="https")
    g.add_argument("--ca-file", help="Redfish: CA certificate(s) of the BMC (PEM)")
    g.add_argument("--insecure", action="store_true", help="Redfish: do not verify the BMC's TLS certificate (logs a warning)")
    g.add_argument("--system-id", help="Redfish: the System when the BMC has several")
    p.add_argument("--timeout", type=float, default=60.0, help="deadline of each BMC operation, retries included (s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0 to 3600 seconds)")
    return value


def add_parser(subparsers: Any, resolve: Resolver | None = None) -> None:
    """Add ``power`` and ``boot`` to ``subparsers`` (from ``ArgumentParser.add_subparsers()``).

    ``resolve(args) -> Endpoint`` turns ``args.host`` into its BMC (the SoT); without it the BMC
    options on the command line are used. Each sub-command sets ``args.func(args) -> int``.
    """
    get_endpoint: Resolver = resolve or sot_or_args

    p = subparsers.add_parser("power", help="power a host on/off, cycle or reset it, or show its power state")
    p.add_argument("host", metavar="HOST")
    p.add_argument("action", choices=POWER_ACTIONS)
    p.add_argument("--force", action="store_true", help="off: cut the power at once (no ACPI shutdown)")
    p.add_argument("--soft-timeout", type=float, default=60.0, help="off: seconds to wait for the OS before forcing (default 60)")
    p.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=POWER_WAIT,
        help=f"seconds to wait for the BMC to read back the asked power state before failing (default {POWER_WAIT:g})",
    )
    _bmc_options(p)
    p.set_defaults(
        func=lambda a: power_command(
            get_endpoint(a), a.action, force=a.force, soft_timeout=a.soft_timeout, timeout=a.timeout, wait_timeout=a.wait_timeout, as_json=a.json
        )
    )

    b = subparsers.add_parser("boot", help="set a host's boot device (pxe, disk, cdrom, http, bios, none) or show it (status)")
    b.add_argument("host", metavar="HOST")
    b.add_argument("device", choices=[*BOOT_DEVICES, "status"])
    b.add_argument("--persistent", action="store_true", help="every boot, not just the next one")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--uefi", dest="uefi", action="store_const", const=True, default=None, help="boot in UEFI mode")
    mode.add_argument("--bios", dest="uefi", action="store_const", const=False, help="boot in legacy BIOS mode")
    b.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=BOOT_WAIT,
        help=f"seconds to wait for the BMC to read back the asked boot override before failing (default {BOOT_WAIT:g})",
    )
    _bmc_options(b)
    b.set_defaults(
        func=lambda a: boot_command(
            get_endpoint(a), a.device, persistent=a.persistent, uefi=a.uefi, timeout=a.timeout, wait_timeout=a.wait_timeout, as_json=a.json
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m vaquero.bmc.cli``) until the main CLI wires these in."""
    parser = argparse.ArgumentParser(prog="vaquero", description="BMC power and boot device")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
