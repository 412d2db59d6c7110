"""Helpers of the image tests: the tools a build needs, a NoCloud seed disk, a QEMU boot from the
image's disk, and a loopback listener for the image's phone-home hook."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from requirements import need, need_root
from waiting import wait_until

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
GROW = 512 * 1024 * 1024  # the overlay disk is this much larger than the image: growpart must use it
TIMINGS: dict[str, float] = {}  # printed at the end of the run (conftest), never asserted


def image_tools() -> None:
    need_root("mmdebstrap --mode=root builds the image's root file system")
    for tool, package in [("mmdebstrap", "mmdebstrap"), ("sgdisk", "gdisk"), ("mke2fs", "e2fsprogs"), ("debugfs", "e2fsprogs"),
                          ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"), ("mdir", "mtools"), ("grub-mkimage", "grub-common")]:  # fmt: skip
        need(tool, package)
    for folder, package in [("/usr/lib/grub/i386-pc", "grub-pc-bin"), ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")]:
        if not Path(folder, "moddep.lst").is_file():
            need(f"{folder}/moddep.lst", package)


@dataclass
class Listener:
    """A loopback HTTP server that records POSTed JSON; the guest reaches it as 10.0.2.2 (QEMU user networking)."""

    server: ThreadingHTTPServer
    posts: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def listening() -> Iterator[Listener]:
    posts: list[tuple[str, dict[str, object]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
            try:
                posts.append((self.path, json.loads(body)))
            except ValueError:
                posts.append((self.path, {"unparsed": body.decode(errors="replace")}))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(server, posts)
    finally:
        server.shutdown()
        server.server_close()


def nocloud_seed(path: Path, hostname: str, user_data: str) -> None:
    """A FAT disk labelled CIDATA holding meta-data and user-data, made without mounts."""
    work = path.parent / "seed-files"
    work.mkdir(exist_ok=True)
    (work / "meta-data").write_text(f"instance-id: {hostname}-1\nlocal-hostname: {hostname}\n")
    (work / "user-data").write_text(user_data)
    subprocess.run(["mkfs.vfat", "-n", "CIDATA", "-C", str(path), "2048"], check=True, capture_output=True)
    for name in ("meta-data", "user-data"):
        subprocess.run(["mcopy", "-i", str(path), str(work / name), f"::/{name}"], check=True, capture_output=True)


@dataclass
class Boot:
    console: Path
    process: subprocess.Popen[bytes]

    def text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_for(self, marker: str, timeout: float) -> str:
        def seen() -> str | None:
            text = self.text()
            if marker in text:
                return text
            if self.process.poll() is not None:
                raise RuntimeError(f"QEMU exited ({self.process.returncode})")
            return None

        try:
            return wait_until(seen, timeout=timeout, what=f"{marker!r} on the serial console", interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nconsole tail:\n{self.text()[-3000:]}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def boot(image: Path, firmware: str, seed: Path, workdir: Path) -> Boot:
    """QEMU (TCG) booting a qcow2 overlay of `image`, GROW bytes larger, from disk; the seed as a second disk."""
    qemu = need("qemu-system-x86_64", "qemu-system-x86")
    need("qemu-img", "qemu-utils")
    overlay = workdir / f"disk-{firmware}.qcow2"
    size = image.stat().st_size + GROW
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "raw", str(overlay), str(size)], check=True)
    console = workdir / f"console-{firmware}.log"
    cmd = [qemu, "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-monitor", "none", "-no-reboot",
           "-serial", f"file:{console}",
           "-drive", f"file={overlay},if=virtio,format=qcow2",
           "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
           "-nic", "user,model=virtio-net-pci"]  # fmt: skip
    if firmware == "uefi":
        if not OVMF_CODE.is_file():
            need(str(OVMF_CODE), "ovmf")
        vars_copy = workdir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}", "-drive", f"if=pflash,format=raw,file={vars_copy}"]
    with open(workdir / f"qemu-{firmware}.err", "wb") as err:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    return Boot(console, process)
