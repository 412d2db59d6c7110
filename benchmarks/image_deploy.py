"""Image deploy: the deploy ramdisk writing the Debian reference image vs a plain `wget | dd`.

Both sides boot the same kernel with the same QEMU options (TCG, one vCPU, virtio-net on a tap in
one lab namespace, one raw virtio disk, cache=writeback) and fetch from the same HTTP server (a small Python server
in the namespace, files in the host's page cache: read once before the first VM starts).

  - vaquero: the deploy ramdisk (vaquero.deploy.ramdisk, its real /init) gets its instructions
    from the server, streams the gzip image (as deployed) through its pipeline (sha256 of the bytes
    as served, decompression, dd), checks the digest, then grows the root partition and writes the
    NoCloud seed. Its write time is host time from its `disk` progress report (just before the
    stream starts) to its `written` report (digest checked, disk synced).
  - peer: a ramdisk from the same builder (same kernel, modules, busybox), whose /init runs
    `wget -O - URL | dd of=/dev/vda bs=4M conv=fsync` on the raw image between two reports.

Verified afterwards: the peer's disk holds the image byte for byte (sha256 of the written range);
the vaquero host reported success with the expected sha256 and byte count, its disk holds the
image's BIOS boot and EFI partitions byte for byte and a root file system that e2fsck passes
(partition table and root were grown by design). Throughput = raw image bytes / write time;
ratio = vaquero / peer, target >= 0.8.

Then power-on to SSH-ready (unless --no-ssh): through vaquero = the deploy ramdisk's run (QEMU
start to its power-off) + the disk it wrote booted under SeaBIOS until sshd on the host answers
with its banner (a TCP connection from the lab namespace, every 0.5 s); vs the image already on a
disk (the peer's disk, given the same NoCloud seed with debugfs) booted the same way. Ratio =
vaquero / direct, target <= 1.5. The gap between the two boots (a BMC's power cycle) is not counted.
Exit 0 only when every run is complete and verified.

    sudo .venv/bin/python benchmarks/image_deploy.py [--runs 1] [--smp 1]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "controller"))

ADDRESS = "10.90.0.1"
PORT = 8098
GUEST = "10.90.0.50"
MAC = "52:54:00:00:40:01"
DISK_BYTES = 2 << 30
MIB = 1 << 20
SEEDS = {"meta-data": "instance-id: bench-1\nlocal-hostname: bench\n", "user-data": "#cloud-config\n{}\n"}

# The peer's /init: the deploy ramdisk's start (busybox, modules, DHCP), then the plain dd.
PEER_INIT = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /run /tmp
for m in $(cat /etc/modules); do modprobe "$m" 2>/dev/null; done
for i in $(seq 1 50); do [ -e /sys/class/net/eth0 ] && [ -b /dev/vda ] && break; sleep 0.2; done
ip link set lo up
udhcpc -i eth0 -f -q -n -t 20 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1
set -f
for w in $(cat /proc/cmdline); do case "$w" in peer.url=*) URL="${w#peer.url=}" ;; esac; done
set +f
post() { wget -q -O /dev/null --header "Content-Type: application/json" --post-data "$2" "$1"; }
post "$URL/peer/progress" '{"phase":"start"}'
wget -q -O - "$URL/image.raw" | dd of=/dev/vda bs=4M conv=fsync 2>/run/dd.err
rc=$?
post "$URL/peer/progress" "{\"phase\":\"done\",\"rc\":$rc}"
poweroff -f
"""


class Recorder:
    """What the guests POSTed, with the host's time of arrival."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, dict[str, object]]] = []
        self.lock = threading.Lock()

    def add(self, path: str, body: dict[str, object]) -> None:
        with self.lock:
            self.events.append((time.monotonic(), path, body))

    def at(self, path_part: str, phase: str) -> float | None:
        return next((t for t, p, b in self.events if path_part in p and b.get("phase") == phase), None)

    def body(self, path_part: str) -> dict[str, object] | None:
        return next((b for _t, p, b in self.events if path_part in p), None)


def serve(root: Path, instructions: str, recorder: Recorder) -> ThreadingHTTPServer:
    """The one HTTP server both sides use: files from `root`, the deploy instructions, the
    NoCloud seed, and the progress/callback POSTs (recorded)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/deploy":
                data = instructions.encode()
            elif self.path.startswith("/nocloud/"):
                name = self.path.removeprefix("/nocloud/")
                if name not in SEEDS:
                    self.send_error(404)
                    return
                data = SEEDS[name].encode()
            else:
                path = root / self.path.lstrip("/")
                if "/" in self.path.lstrip("/") or not path.is_file():
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                with open(path, "rb") as fh:
                    shutil.copyfileobj(fh, self.wfile, 1 << 20)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
            try:
                recorder.add(self.path, json.loads(body))
            except ValueError:
                recorder.add(self.path, {"unparsed": body.decode(errors="replace")})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((ADDRESS, PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def instructions_for(image_sha_gz: str, base: str) -> str:
    lines = {
        "format": "vaquero-deploy/1", "host": "bench", "image_url": f"{base}/image.raw.gz", "image_sha256": image_sha_gz,
        "image_compression": "gzip", "progress_url": f"{base}/vaquero/progress", "callback_url": f"{base}/vaquero/callback",
        "nocloud_url": f"{base}/nocloud/", "phone_home_url": f"{base}/phone-home", "disk_path": "/dev/vda",
        "disk_min_bytes": "0", "end": "1",
    }  # fmt: skip
    return "".join(f"{k}='{v}'\n" for k, v in lines.items())


SMP = ["1"]


def qemu(net, kernel: Path | None, initrd: Path | None, append: str, disk: Path, log: Path) -> subprocess.Popen[bytes]:
    """A TCG guest on a tap of the lab bridge with the disk on virtio-blk; from the kernel given, else
    from the disk (SeaBIOS)."""
    tap = net.add_tap()
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", SMP[0], "-display", "none", "-monitor", "none",
           "-serial", f"file:{log}", "-no-reboot", "-nodefaults",
           "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no", "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
           "-drive", f"file={disk},if=none,id=d0,format=raw,cache=writeback", "-device", "virtio-blk-pci,drive=d0"]  # fmt: skip
    if kernel is not None and initrd is not None:
        cmd += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", append]
    else:
        cmd[-1] += ",bootindex=0"
    return net.popen(cmd, log_file=log.with_suffix(".qemu.log"))


class InNamespace:
    """Run code with this thread inside the lab namespace (sockets made there stay there)."""

    def __init__(self, name: str) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.path = f"/run/netns/{name}"

    def __enter__(self) -> None:
        self.here = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        failed = self.libc.setns(target, 0) != 0
        os.close(target)
        if failed:
            raise OSError("setns into the lab namespace failed")

    def __exit__(self, *exc: object) -> None:
        self.libc.setns(self.here, 0)
        os.close(self.here)


def ssh_banner(ns: InNamespace, timeout: float) -> bool:
    """True once sshd on GUEST:22 sends its banner (tried every 0.5 s, up to `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ns:
            try:
                with socket.create_connection((GUEST, 22), timeout=2) as conn:
                    conn.settimeout(5)
                    if conn.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                pass
        time.sleep(0.5)
    return False


def boot_to_ssh(net, ns: InNamespace, disk: Path, log: Path) -> float | None:
    """Seconds from QEMU's start (booting `disk` under SeaBIOS) to sshd's banner; None if it never came."""
    t0 = time.monotonic()
    proc = qemu(net, None, None, "", disk, log)
    try:
        return time.monotonic() - t0 if ssh_banner(ns, 900) else None
    finally:
        net.stop(proc)


def seed(disk: Path, root_offset: int, work: Path) -> None:
    """Write the NoCloud seed the deploy ramdisk writes into the root file system on `disk` (debugfs)."""
    script = ["mkdir /var/lib/cloud", "mkdir /var/lib/cloud/seed", "mkdir /var/lib/cloud/seed/nocloud"]
    for name, text in SEEDS.items():
        (work / name).write_text(text)
        script.append(f"write {work / name} /var/lib/cloud/seed/nocloud/{name}")
    (work / "seed.debugfs").write_text("\n".join(script) + "\n")
    subprocess.run(["debugfs", "-w", "-f", str(work / "seed.debugfs"), f"{disk}?offset={root_offset}"], check=True, capture_output=True)


def blank(path: Path) -> Path:
    path.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(DISK_BYTES)], check=True)
    return path


def read_back(disk: Path, start: int, length: int, work: Path) -> str:
    """sha256 of disk[start:start+length], read with qemu-img (what the guest left on its disk)."""
    out = work / "range.raw"
    out.unlink(missing_ok=True)
    # qemu-img dd counts the skipped blocks in count=
    subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=512", f"skip={start // 512}", f"count={(start + length) // 512}",
                    f"if={disk}", f"of={out}"], check=True, capture_output=True)  # fmt: skip
    digest = hashlib.sha256()
    with open(out, "rb") as fh:
        while chunk := fh.read(4 * MIB):
            digest.update(chunk)
    out.unlink()
    return digest.hexdigest()


def image_range_sha(raw: Path, start: int, length: int) -> str:
    digest = hashlib.sha256()
    with open(raw, "rb") as fh:
        fh.seek(start)
        left = length
        while left:
            chunk = fh.read(min(left, 4 * MIB))
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def run_once(net, ns: InNamespace | None, built, deploy, peer, recorder: Recorder, work: Path, n: int) -> tuple[list[float], list[str]]:
    """One vaquero write and one peer write, then (with `ns`) each disk booted to SSH.
    ([vaquero write s, peer write s, ramdisk s, deployed disk to SSH s, image disk to SSH s], problems)"""
    info, size = built.info, built.info["size"]
    problems: list[str] = []
    recorder.events.clear()
    base = f"http://{ADDRESS}:{PORT}"
    vdisk, pdisk = blank(work / f"vaquero-{n}.raw"), blank(work / f"peer-{n}.raw")

    t0 = time.monotonic()
    proc = qemu(net, deploy.kernel, deploy.initrd, f"console=ttyS0 quiet vaquero.deploy={base}/deploy", vdisk, work / f"vaquero-{n}.log")
    if proc.wait(1800) is None:
        problems.append("vaquero: the ramdisk did not power off")
    ramdisk = time.monotonic() - t0
    started, written = recorder.at("/vaquero/progress", "disk"), recorder.at("/vaquero/progress", "written")
    report = recorder.body("/vaquero/callback") or {}
    if report.get("result") != "success" or report.get("sha256") != info["compressed"]["sha256"] or report.get("bytes") != size:
        problems.append(f"vaquero: callback {report}")
    if started is None or written is None:
        problems.append("vaquero: no disk/written progress reports")
    parts = {p["name"]: p for p in info["partitions"]}
    head = parts["bios"]["offset"]
    length = parts["root"]["offset"] - head
    if read_back(vdisk, head, length, work) != image_range_sha(built.raw, head, length):
        problems.append("vaquero: the BIOS boot and EFI partitions on the disk differ from the image's")
    root = work / "root.ext4"
    subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M", f"skip={parts['root']['offset'] // MIB}",
                    f"count={DISK_BYTES // MIB}", f"if={vdisk}", f"of={root}"], check=True, capture_output=True)  # fmt: skip
    fsck = subprocess.run(["e2fsck", "-fn", str(root)], capture_output=True, text=True)
    root.unlink()
    if fsck.returncode != 0:
        problems.append(f"vaquero: e2fsck of the grown root: {fsck.stdout[-300:]}")

    recorder.events.clear()
    proc = qemu(net, peer.kernel, peer.initrd, f"console=ttyS0 quiet peer.url={base}", pdisk, work / f"peer-{n}.log")
    if proc.wait(1800) is None:
        problems.append("peer: the ramdisk did not power off")
    p0, p1 = recorder.at("/peer/progress", "start"), recorder.at("/peer/progress", "done")
    done = next((b for _t, p, b in recorder.events if p == "/peer/progress" and b.get("phase") == "done"), {})
    if p0 is None or p1 is None or done.get("rc") != 0:
        problems.append(f"peer: reports {recorder.events}")
    if read_back(pdisk, 0, size, work) != info["sha256"]:
        problems.append("peer: the disk does not hold the image")
    nan = float("nan")
    ssh_deployed = ssh_direct = nan
    if ns is not None and not problems:
        ssh_deployed = boot_to_ssh(net, ns, vdisk, work / f"vaquero-os-{n}.log") or nan
        seed(pdisk, parts["root"]["offset"], work)
        ssh_direct = boot_to_ssh(net, ns, pdisk, work / f"direct-os-{n}.log") or nan
        if ssh_deployed != ssh_deployed or ssh_direct != ssh_direct:
            problems.append(f"ssh: no banner (deployed {ssh_deployed}, direct {ssh_direct})")
    for disk in (vdisk, pdisk):
        disk.unlink()
    v = (written - started) if started is not None and written is not None else nan
    p = (p1 - p0) if p0 is not None and p1 is not None else nan
    return [v, p, ramdisk, ssh_deployed, ssh_direct], problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-ssh", dest="ssh", action="store_false", help="measure the write only, not power-on to SSH")
    ap.add_argument("--smp", type=int, default=1, choices=[1, 2], help="vCPUs of both VMs (2: QEMU's multi-threaded TCG)")
    args = ap.parse_args()
    SMP[0] = str(args.smp)

    from vaquero.deploy.ramdisk import build_ramdisk
    from vaquero.image.build import build
    from vaquero.lab.netns import LabNetwork

    built = build("debian-12", progress=lambda m: print(f"image: {m}", file=sys.stderr))
    deploy, peer = build_ramdisk(), build_ramdisk(init=PEER_INIT)
    recorder = Recorder()
    problems: list[str] = []
    results: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="vq-bench-image-") as tmp, LabNetwork(prefix="vqbi", bridge="vqbi-br0") as net:
        work = Path(tmp)
        served = work / "srv"
        served.mkdir()
        for src, name in ((built.raw, "image.raw"), (built.compressed, "image.raw.gz")):
            shutil.copyfile(src, served / name)
            with open(served / name, "rb") as fh:  # warm the page cache
                while fh.read(4 * MIB):
                    pass
        ns = InNamespace(net.name)
        with ns:  # the HTTP server runs in this process; its socket is made inside the namespace
            server = serve(served, instructions_for(built.info["compressed"]["sha256"], f"http://{ADDRESS}:{PORT}"), recorder)
        dhcp = net.popen(["dnsmasq", "--no-daemon", "--port=0", "--bind-interfaces", f"--interface={net.bridge}",
                          "--dhcp-range=10.90.0.50,10.90.0.60,1h", f"--dhcp-host={MAC},{GUEST}", "--no-resolv", "--no-hosts", "--no-ping",
                          f"--dhcp-leasefile={work / 'leases'}"], log_file=work / "dnsmasq.log")  # fmt: skip
        try:
            for n in range(args.runs):
                found_times, found = run_once(net, ns if args.ssh else None, built, deploy, peer, recorder, work, n)
                problems += found
                results.append(found_times)
                print(f"run {n + 1}: {', '.join(f'{t:.1f}' for t in found_times)} s{'; ' + '; '.join(found) if found else ''}", file=sys.stderr)
        finally:
            server.shutdown()
            net.stop(dhcp)
    size = built.info["size"]
    v, p, ramdisk, deployed, direct = (statistics.median(r[i] for r in results) for i in range(5))
    vt, pt = size / MIB / v, size / MIB / p
    print(
        f"image_deploy_write_throughput ratio {vt / pt:.2f} (vaquero {vt:.1f} MiB/s: gzip image {built.info['compressed']['size'] / MIB:.0f} MiB"
        f" -> {size / MIB:.0f} MiB raw in {v:.1f} s incl. sha256 check and fsync; peer wget|dd of the raw image {pt:.1f} MiB/s in {p:.1f} s;"
        f" medians of {args.runs}; {args.smp} TCG vCPU(s) each, same kernel and QEMU options, the same HTTP server with a warm page cache; target >= 0.8)"
    )
    if args.ssh:
        print(
            f"image_deploy_power_on_to_ssh ratio {(ramdisk + deployed) / direct:.2f} (through vaquero {ramdisk + deployed:.1f} s: deploy ramdisk"
            f" {ramdisk:.1f} s from QEMU start to power-off + the written disk booted to sshd's banner {deployed:.1f} s; the image already on"
            f" the disk (same seed) booted to the banner {direct:.1f} s; SeaBIOS, 512 MiB; medians of {args.runs}; target <= 1.5)"
        )
    for problem in problems:
        print(f"NOT VERIFIED: {problem}")
    complete = all(t == t for r in results for t in (r if args.ssh else r[:3]))  # no NaN: every figure measured
    return 0 if not problems and complete else 1


if __name__ == "__main__":
    sys.exit(main())
