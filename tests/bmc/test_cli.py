"""vaquero power / vaquero boot: the command functions and the argparse hook, against real BMCs."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys

from bmc_helpers import PASSWORD

from vaquero.bmc.cli import add_parser, boot_command, power_command


def run(fn, *args, **kw):
    out, err = io.StringIO(), io.StringIO()
    rc = fn(*args, out=out, err=err, **kw)
    return rc, out.getvalue(), err.getvalue()


def test_power_and_boot_commands(ipmi_bmc):
    ep = ipmi_bmc.endpoint(host="node7")
    assert run(power_command, ep, "status") == (0, "node7: power off\n", "")
    rc, out, _ = run(power_command, ep, "on")
    assert rc == 0 and "off -> on" in out
    rc, out, _ = run(power_command, ep, "on")
    assert rc == 0 and "already on" in out
    rc, out, _ = run(boot_command, ep, "pxe", uefi=True, as_json=True)
    data = json.loads(out)
    assert rc == 0 and data["changed"] and data["boot"] == {"device": "pxe", "persistent": False, "mode": "uefi"}
    rc, out, _ = run(boot_command, ep, "pxe", uefi=True)
    assert rc == 0 and "already" in out
    rc, out, _ = run(power_command, ep, "cycle")
    assert rc == 0 and "cycle" in out
    rc, out, _ = run(power_command, ep, "off", force=True)
    assert rc == 0 and "(forced)" in out
    assert ipmi_bmc.bmc_state()["counts"] == {"power_on": 1, "set_boot": 1, "power_cycle": 1, "power_off": 1}


def test_errors_are_typed_with_the_host_and_no_password(ipmi_bmc):
    ep = ipmi_bmc.endpoint(host="node9", password="wrong-" + PASSWORD)
    rc, out, err = run(power_command, ep, "status", timeout=5)
    assert rc == 1 and out == "" and err.startswith("error: node9: auth:")
    rc, _, err = run(boot_command, ipmi_bmc.endpoint(host="node9"), "http")
    assert rc == 1 and "unsupported" in err
    assert PASSWORD not in err


def test_add_parser_with_a_resolver(ipmi_bmc):
    parser = argparse.ArgumentParser(prog="vaquero")
    seen = []

    def resolve(args):
        seen.append(args.host)
        return ipmi_bmc.endpoint(host=args.host)

    add_parser(parser.add_subparsers(dest="command", required=True), resolve=resolve)
    args = parser.parse_args(["boot", "node3", "disk", "--persistent", "--bios"])
    assert args.func(args) == 0
    args = parser.parse_args(["power", "node3", "status", "--json"])
    assert args.func(args) == 0
    assert seen == ["node3", "node3"]
    assert ipmi_bmc.bmc_state()["boot"] == {"device": "disk", "persistent": True, "uefi": False}


def test_standalone_entry_point_reads_the_password_from_the_environment(ipmi_bmc):
    ep = ipmi_bmc.endpoint()
    env = {**os.environ, "VAQUERO_BMC_PASSWORD": PASSWORD}
    cmd = [sys.executable, "-m", "vaquero.bmc.cli", "power", "node1", "on", "--bmc-type", "ipmi", "--bmc-address", "127.0.0.1"]
    cmd += ["--bmc-port", str(ep.port), "--bmc-username", ep.username, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["power_state"] == "on"
    assert PASSWORD not in proc.stdout + proc.stderr
