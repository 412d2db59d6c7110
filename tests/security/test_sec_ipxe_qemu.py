"""Issue 10, item 3, against a real iPXE in QEMU: a profile cmdline that carries iPXE syntax is
refused before it reaches a script, and the most permissive cmdline the grammar allows reaches
the booted kernel verbatim (what iPXE executed is exactly the `kernel` line we wrote)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vaquero.lab.harness import Lab, lab_assets
from vaquero.render import render_site
from vaquero.sot import load

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NODE1 = "52:54:00:00:10:01"
PROFILE = "profiles/lab-linux.yaml"
# Every character class the grammar lets through, including what a token URL needs.
# `ds=nocloud-net;s=...` is cloud-init's own syntax: ';' inside a value must reach the kernel intact.
PERMISSIVE = "console=ttyS0,115200n8 a=b?c=d&e=f%41 x.y:z/w@v+u k=v~!*_-., ds=nocloud-net;s=http://10.90.0.1:8080/seed/"
ATTACKS = {
    "chain": "; chain http://10.90.0.1:8080/evil",
    "or": "|| shell",
    "and": "&& shell",
    "comment": "# vaquero.callback=http://10.90.0.66/",
    "expand": "x=${net0/mac}",
    "expand-bare": "${password}",
    "separator-token": "a=b ; chain http://10.90.0.1:8080/evil",
    "key-separator": "a;b=c",
}


TOOLS = ("ip", "dnsmasq", "qemu-system-x86_64", "busybox", "cpio", "depmod")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    # Same prerequisites as tests/e2e: missing ones fail the test, they never skip it.
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, taps, DHCP ports)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    missing += [p for p in ("/usr/lib/ipxe/undionly.kpxe", "/dev/net/tun") if not Path(p).exists()]
    if missing:
        pytest.fail(f"prerequisites missing: {', '.join(missing)} (run scripts/setup.sh)")
    lab_assets()
    with Lab(tmp_path / "lab") as running:
        yield running


def _set_cmdline(root: Path, extra: str) -> int:
    """Append `extra` to the lab profile's cmdline; return the line of `cmdline:`."""
    path = root / PROFILE
    doc = yaml.safe_load(path.read_text())
    doc["cmdline"] = f"{doc['cmdline']} {extra}"
    text = yaml.safe_dump(doc, sort_keys=False, width=10_000)
    path.write_text(text)
    return text.count("\n", 0, text.index("cmdline:")) + 1


def test_validate_refuses_each_injection_form(tmp_path: Path) -> None:
    for name, attack in ATTACKS.items():
        root = tmp_path / name
        shutil.copytree(REPO / "inventories" / "lab", root)
        line = _set_cmdline(root, attack)
        res = subprocess.run([sys.executable, "-m", "vaquero.cli", "validate", str(root)], capture_output=True, text=True, timeout=120)
        assert res.returncode != 0, f"{name}: accepted\n{res.stdout}"
        assert re.search(rf"^error: {re.escape(PROFILE)}:{line}: cmdline: for host node1 .*kernel command line", res.stderr, re.M), f"{name}: {res.stderr}"


def test_permissive_cmdline_reaches_the_kernel_verbatim(lab: Lab) -> None:
    assert lab.sot is not None
    _set_cmdline(lab.sot, PERMISSIVE)
    script = render_site(load(str(lab.sot))).hosts["node1"].install or ""
    assert PERMISSIVE in script  # what the renderer wrote, to compare with what the kernel got

    lab.start_agent(install=["node1"])
    vm = lab.boot(NODE1, name="node1")
    rc = vm.wait(300)
    console = vm.console()
    assert rc == 0, f"node1 did not power off; console:\n{console[-3000:]}\nagent log:\n{lab.agent_log.read_text(errors='replace')[-3000:]}"
    assert lab.status("node1")["state"] == "installed"

    found = re.search(r"vaquero-lab: cmdline \[(.*?)\]\r?$", console, re.M)
    assert found, f"the initramfs did not report /proc/cmdline; console:\n{console[-3000:]}"
    got = found.group(1).strip().split(" ")
    want = PERMISSIVE.split(" ")
    # Verbatim and in order: the tokens sit together at the end of the kernel's command line.
    assert got[-len(want) :] == want, got
    # Nothing of the script but its own kernel line reached the kernel (no token lost or added
    # by an iPXE expansion): every token iPXE passed is one the renderer wrote.
    kernel_line = next(line for line in script.splitlines() if line.startswith("kernel "))
    written = set(kernel_line.split(" ")[3:])
    assert all(tok in written or tok.startswith(("BOOT_IMAGE=", "vaquero.callback=", "vaquero.config=")) for tok in got), (got, kernel_line)
