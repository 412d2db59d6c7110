"""Emulated IPMI BMCs that drive lab VMs: power on starts the host's QEMU process, power off stops it.

Each lab host gets a pyghmi BMC (``vaquero.bmc.emulator.EmulatedBmc``) on its own UDP port; the
BMC's power state *is* the QEMU process (running = on; the guest's ``poweroff -f`` makes QEMU exit,
so the BMC reads off). The VM always boots from the network (``-boot n``): what it boots is
decided by the agent, which serves the installer to a host in ``install`` mode and ``localboot``
once its installer called back, like a real PXE-first server with a disk. The boot device set
through IPMI is recorded and reported, with every power operation, on a loopback HTTP endpoint.

Run it inside the lab's network namespace (the VMs' taps go on its bridge)::

    ip netns exec NS python -m vaquero.lab.bmc --hosts hosts.json --password-file pw \
        --state-dir /tmp/lab --control-port 6229
    # hosts.json: [{"name": "node1", "mac": "52:54:00:00:10:01", "port": 6231}, ...]

An entry may add ``"disk_gb": N`` (a blank qcow2 ``<state-dir>/<name>.qcow2``, made once),
``"memory": MiB`` and ``"firmware": "bios" | "uefi" | "uefi-http"`` (see qemu.Vm). A host with a disk boots what its BMC's boot
device says, at each power on: ``pxe`` the network, ``disk`` the disk; a one-time (not persistent)
device is spent by that power on, as the IPMI spec has the BIOS clear it, and with none set the
disk comes first (a blank disk falls through to the network).

Each BMC reports, as its system UUID (IPMI Get System GUID), the ``uuid`` the SoT gives the host of
that name: the SoT is the one source of the hosts' identity, so the roles' identity check (the
BMC must be the host's) holds in the lab as on real hardware. The SoT is ``--sot`` (default: the
lab SoT, inventories/lab); a ``uuid`` in an entry of hosts.json overrides it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyghmi.ipmi.bmc as pbmc

from vaquero.bmc.emulator import EmulatedBmc

from .harness import lab_sot
from .kernel import LabError
from .netns import LabNetwork
from .qemu import Vm, make_disk


class _Here(LabNetwork):
    """The network namespace this process already runs in (taps go on its bridge)."""

    def __init__(self, bridge: str) -> None:
        super().__init__(bridge=bridge)
        self.taps: list[str] = []

    def command(self, cmd: Any, ns: str | None = None) -> list[str]:
        return list(cmd)

    def add_tap(self) -> str:
        self._taps += 1
        tap = f"vqt{self._taps}-{uuid.uuid4().hex[:4]}"
        for args in (["tuntap", "add", "dev", tap, "mode", "tap"], ["link", "set", tap, "master", self.bridge], ["link", "set", tap, "up"]):
            subprocess.run(["ip", *args], check=True, capture_output=True)
        self.taps.append(tap)
        return tap


def sot_uuids(sot: Path) -> dict[str, uuid.UUID]:
    """host name -> system UUID, for the hosts of ``sot`` that have one."""
    from vaquero.sot import load

    return {host.name: uuid.UUID(host.uuid) for _, _, host in load(sot, semantic=False).hosts() if host.uuid}


def host_uuid(entry: dict[str, Any], known: dict[str, uuid.UUID], sot: Path) -> uuid.UUID:
    """The system UUID of one hosts.json entry: its own ``uuid``, else the SoT's; none is an error."""
    if entry.get("uuid"):
        return uuid.UUID(str(entry["uuid"]))
    found = known.get(entry["name"])
    if found is None:
        raise LabError(f"host {entry['name']!r}: no uuid in hosts.json and none in the SoT {sot}: its BMC would report a UUID the SoT does not know")
    return found


def _guest_restarted(console: Path) -> bool:
    """Linux's last console line on a reboot is "reboot: Restarting system" (then, on x86,
    "reboot: machine restart"); on a power off it is "reboot: Power down"."""
    try:
        with console.open("rb") as fh:
            fh.seek(max(0, console.stat().st_size - 2048))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return False
    said = [line for line in tail.splitlines() if "reboot: " in line]
    return bool(said) and ("Restarting system" in said[-1] or "machine restart" in said[-1])


class VmBmc(EmulatedBmc):
    def __init__(
        self, name: str, mac: str, port: int, authdata: dict[str, str], address: str, net: _Here, state_dir: Path, memory: int, system_uuid: uuid.UUID
    ) -> None:
        super().__init__(authdata, port, address, system_uuid=system_uuid, acpi_delay=None, delay=0.0)
        self.name = name
        self.vm = Vm(net=net, mac=mac, log=state_dir / f"{name}.console.log", memory=memory, uuid=str(system_uuid))
        self.net = net
        self.lock = threading.Lock()
        self.history: list[dict[str, Any]] = []
        self.boots = 0

    def _running(self) -> bool:
        return self.vm.proc is not None and self.vm.proc.poll() is None

    def _note(self, what: str) -> None:
        self.history.append({"time": time.time(), "op": what, "boot": self.boot_state()["device"]})

    def _start(self) -> None:
        if not self._running():
            console = self.vm.log
            if console.exists() and console.stat().st_size:
                console.with_suffix(f".{self.boots}.log").write_bytes(console.read_bytes())
            self.boots += 1
            if self.vm.disk is not None:
                self.vm.boot = self._boot_target()
            self.vm.start()
            threading.Thread(target=self._watch, args=(self.vm.proc,), name=f"{self.name}-reset", daemon=True).start()

    def _watch(self, proc: Any) -> None:
        """A guest that reboots itself: QEMU runs with -no-reboot (each power on is a process of its
        own, with the boot device of that moment), so the process ends; a server would restart. When
        the kernel's last words were a restart, start the VM again as the machine's warm reset would:
        the BMC's persistent boot device, a one-time device already spent."""
        proc.wait()
        with self.lock:
            if self.vm.proc is not proc:  # stopped or replaced by the BMC itself
                return
            if not _guest_restarted(self.vm.log):
                return  # the guest powered off
            self._note("guest reset")
            self.vm.proc = None
            self._start()

    def _boot_target(self) -> str:
        """What this power on boots (hosts with a disk): the BMC's device; a one-time device is spent."""
        boot = self.boot_state()
        if boot["device"] == "none":
            return "disk"
        if not boot["persistent"]:
            self.boot_flags = [self.boot_flags[0] & 0x7F, *self.boot_flags[1:]]  # the valid bit, cleared
        return "network" if boot["device"] == "pxe" else "disk"

    def _stop(self) -> None:
        if self.vm.proc is not None:
            LabNetwork.stop(self.vm.proc)
            self.vm.proc = None

    def get_power_state(self) -> str:
        return "on" if self._running() else "off"

    def power_on(self) -> int:
        with self.lock:
            self.counts["power_on"] += 1
            self._note("on")
            self._start()
        return 0

    def power_off(self) -> int:
        with self.lock:
            self.counts["power_off"] += 1
            self._note("off")
            self._stop()
        return 0

    def power_shutdown(self) -> int:
        return self.power_off()

    def power_cycle(self) -> int:
        with self.lock:
            self.counts["power_cycle"] += 1
            self._note("cycle")
            self._stop()
            self._start()
        return 0

    def power_reset(self) -> int:
        return self.power_cycle()

    def is_active(self) -> bool:
        return self._running()

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "power": self.get_power_state(),
            "boot": self.boot_state(),
            "counts": dict(self.counts),
            "boots": self.boots,
            "history": self.history,
            "uuid": str(self.system_uuid),
            "received": dict(self.received),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", required=True, help="JSON file: [{name, mac, port}]")
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--username", default="admin")
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--bridge", default="vq-br0")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--sot", type=Path, default=None, help="the SoT whose host uuids the BMCs report (default: the lab SoT)")
    args = ap.parse_args(argv)
    password = Path(args.password_file).read_text().strip()
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    net = _Here(args.bridge)
    entries = json.loads(Path(args.hosts).read_text())
    sot = args.sot or lab_sot()
    known = sot_uuids(sot) if any(not e.get("uuid") for e in entries) else {}
    bmcs = []
    for h in entries:
        memory = int(h.get("memory") or args.memory)
        bmc = VmBmc(h["name"], h["mac"], int(h["port"]), {args.username: password}, args.address, net, state_dir, memory, host_uuid(h, known, sot))
        if h.get("disk_gb"):
            bmc.vm.disk = make_disk(state_dir / f"{h['name']}.qcow2", float(h["disk_gb"]))
        bmc.vm.firmware = str(h.get("firmware") or "bios")
        bmcs.append(bmc)
    if args.control_port:

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({b.name: b.state() for b in bmcs}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *a: Any) -> None:
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", args.control_port), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"ready {', '.join(f'{b.name}:{b.port}' for b in bmcs)}", flush=True)
    try:
        pbmc.Bmc.listen(timeout=1)
    finally:
        for b in bmcs:
            b._stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
