"""vaquero.lab.installer.download_deb against the real apt of this machine: the lab's packages
from Debian (d-i, and systemd's EFI stub for the netboot benchmark) arrive checked against the
sha256 of the apt index, or not at all."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from requirements import need

from vaquero.lab.installer import download_deb
from vaquero.lab.kernel import LabError

PACKAGE = "systemd-boot-efi"  # about 110 KB, and what benchmarks/netboot_e2e.py fetches
STUB = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"


def test_downloaded_deb_matches_the_apt_index_and_holds_the_stub(tmp_path: Path) -> None:
    need("apt-get", "apt")
    need("dpkg-deb", "dpkg")
    version, deb = download_deb(PACKAGE, tmp_path)
    show = subprocess.run(["apt-cache", "show", f"{PACKAGE}={version}"], capture_output=True, text=True, check=True).stdout
    index_sha = next(line.split()[1] for line in show.splitlines() if line.startswith("SHA256:"))
    assert hashlib.sha256(deb.read_bytes()).hexdigest() == index_sha
    assert deb.parent == tmp_path and version in deb.name.replace("%3a", ":")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "root")], check=True)
    assert (tmp_path / "root" / STUB).read_bytes()[:2] == b"MZ"  # a PE image


def test_a_deb_whose_digest_is_not_the_index_one_is_refused(tmp_path: Path) -> None:
    need("apt-get", "apt")
    show = subprocess.run(["apt-cache", "policy", PACKAGE], capture_output=True, text=True, check=True).stdout
    version = next(line.split()[1] for line in show.splitlines() if line.strip().startswith("Candidate:"))
    with pytest.raises(LabError, match="but the apt index says " + "0" * 64):
        download_deb(PACKAGE, tmp_path, (version, "0" * 64))
