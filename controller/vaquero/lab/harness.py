"""One netboot lab, end to end: namespace + bridge, the agent (dnsmasq, TFTP, HTTP) inside it,
and QEMU hosts on taps. Used by tests/e2e, benchmarks/netboot_e2e.py and `vaquero lab netboot`.

    with Lab(workdir) as lab:
        lab.start_agent(install=["node1"])
        vm = lab.boot("52:54:00:00:10:01")
        vm.wait(120)
        lab.status("node1")["state"]  # "installed"
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from vaquero.content import ContentNotFound, content_path

from .initramfs import build_initramfs
from .kernel import DEFAULT_CACHE, LabError, fetch_kernel
from .netns import LabNetwork
from .qemu import Vm
from .sot import prepare_sot


def lab_sot() -> Path:
    """The lab's SoT (inventories/lab) in the content folder ($VAQUERO_CONTENT_DIR or the checkout)."""
    try:
        return content_path("inventories", "lab")
    except ContentNotFound as exc:
        raise LabError(str(exc)) from exc


def lab_assets(cache: Path = DEFAULT_CACHE) -> tuple[Path, Path]:
    """(vmlinuz, initramfs) for lab hosts, built once into the cache."""
    kernel = fetch_kernel(cache)
    initrd = cache / f"initramfs-{kernel.version}.img"
    init_src = Path(__file__).with_name("initramfs.py")
    if not initrd.is_file() or initrd.stat().st_mtime < init_src.stat().st_mtime:
        build_initramfs(kernel, initrd)
    return kernel.vmlinuz, initrd


class Lab:
    def __init__(
        self,
        workdir: Path,
        *,
        sot: Path | None = None,
        profile: str = "lab-linux",
        address: str = "10.90.0.1/24",
        http_port: int = 8080,
        cache: Path = DEFAULT_CACHE,
    ) -> None:
        self.workdir = workdir
        self.src_sot = sot or lab_sot()
        self.profile = profile
        self.http_port = http_port
        self.cache = cache
        self.net = LabNetwork(address=address)
        self.agent: subprocess.Popen[bytes] | None = None
        self.vms: list[Vm] = []
        self.kernel: Path | None = None
        self.initrd: Path | None = None
        self.sot: Path | None = None

    def __enter__(self) -> Lab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kernel, self.initrd = lab_assets(self.cache)
        self.sot = prepare_sot(self.src_sot, self.workdir / "sot", self.profile, self.kernel, self.initrd)
        self.net.create()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for vm in self.vms:
            vm.stop()
        self.net.close()

    @property
    def address(self) -> str:
        return str(self.net.address.ip)

    @property
    def agent_log(self) -> Path:
        return self.workdir / "agent.log"

    def start_agent(self, *, install: list[str] | None = None, extra: list[str] | None = None, dhcp: bool = True, wait: bool = True) -> subprocess.Popen[bytes]:
        assert self.sot is not None
        cmd = [
            sys.executable, "-m", "vaquero.agent", "--sot", str(self.sot), "--listen", self.address,
            "--http-port", str(self.http_port), "--tftp-port", "69",
            "--asset-root", str(self.workdir / "assets"), "--state-dir", str(self.workdir / "state"), "--log-dhcp", "--ipv6-ra",
        ]  # fmt: skip
        for h in install or []:
            cmd += ["--install", h]
        if not dhcp:
            cmd.append("--no-dhcp")
        cmd += extra or []
        self.agent = self.net.popen(cmd, log_file=self.agent_log)
        if wait:
            try:
                self.net.wait_port(self.address, self.http_port, timeout=30)
            except LabError:
                raise LabError(f"the agent did not start; its log:\n{self.agent_log.read_text()[-3000:]}") from None
        return self.agent

    def boot(self, mac: str, *, name: str | None = None, direct: bool = False, append: str = "", memory: int = 384, firmware: str = "bios") -> Vm:
        """Start a QEMU host with `mac`: netboot (default), or `direct` with -kernel/-initrd."""
        label = name or mac.replace(":", "")
        vm = Vm(self.net, mac, self.workdir / f"vm-{label}-{len(self.vms)}.log", memory=memory, firmware=firmware)
        if direct:
            vm.kernel, vm.initrd, vm.append = self.kernel, self.initrd, append
        self.vms.append(vm)
        return vm.start()

    def http(self, method: str, path: str, body: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
        """An HTTP request to the agent from inside the namespace (the agent is not reachable outside)."""
        code = (
            "import sys,urllib.request,urllib.error;"
            "r=urllib.request.Request(sys.argv[1],method=sys.argv[2],data=(sys.stdin.buffer.read() or None) if sys.argv[2]=='POST' else None);"
            "r.add_header('Content-Type','application/json')\n"
            "try:\n o=urllib.request.urlopen(r,timeout=10);c=o.status;b=o.read()\n"
            "except urllib.error.HTTPError as e:\n c=e.code;b=e.read()\n"
            "sys.stdout.write(str(c)+'\\n');sys.stdout.flush();sys.stdout.buffer.write(b)"
        )
        url = f"http://{self.address}:{self.http_port}{path}"
        res = subprocess.run(self.net.command([sys.executable, "-c", code, url, method]), input=body or b"", capture_output=True, timeout=timeout)
        if res.returncode != 0:
            raise LabError(f"{method} {url}: {res.stderr.decode()[-500:]}")
        head, _, rest = res.stdout.partition(b"\n")
        return int(head), rest

    def status(self, host: str) -> dict[str, Any]:
        code, body = self.http("GET", f"/v1/boot/status/{host}")
        if code != 200:
            raise LabError(f"status of {host}: HTTP {code} {body!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def wait_state(self, host: str, state: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st = self.status(host)
        while st["state"] != state and time.monotonic() < deadline:
            time.sleep(0.5)
            st = self.status(host)
        return st
