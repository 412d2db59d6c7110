"""End to end with the Debian installer (d-i) and a preseed, the ready profile of
inventories/installers (debian-12-installer): an empty lab -> a signed push that adds node1 on that
profile -> approve -> node1 (QEMU TCG, SeaBIOS, 1 vCPU, 1 GiB, a blank 4 GiB virtio disk, DMI UUID
the SoT's) netboots d-i's netboot kernel and initrd (debian-installer-12-netboot-amd64, cached by the
lab) through the agent, d-i reads the host's preseed from the agent (`urls.config`), installs Debian
12 from the lab's mirror onto the disk and calls back -> the lab BMC boots the disk -> the installed
system's vaquero-booted.service phones home -> the profile's own validate hook (debian-ssh-login)
logs in with the lab's key and checks hostname, address and the unit -> `ready`.

The lab's hosts cannot reach the outside: d-i fetches its components (udebs) and the base system
through `vaquero.lab.mirror`, a reverse proxy on the lab bridge to the build host's apt source.

Not part of CI: a d-i install under TCG takes tens of minutes. Run it with

    VAQUERO_INSTALLER_E2E=1 PYTHONPATH=controller .venv/bin/python -m pytest -p no:cacheprovider tests/installer/test_debian_installer.py

The first test needs an archive that serves d-i's udebs; it checks that first (every udeb d-i will
fetch, one HEAD each) and fails at once, naming what is missing, rather than leaving d-i at a question
no preseed answers. The second stops where d-i has read its preseed and checked the archive's
signed Release through the mirror: the part that needs no udeb from the archive.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from requirements import need

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # the standalone lab's helpers

from test_image_install import key_pair
from test_install_standalone import PASSWORD, StandaloneLab, assert_no_secret, collapse, edit_cluster, require_prerequisites
from test_webhook_to_ready import SECRET, deliver, push_body
from waiting import wait_until

from vaquero.lab.demo import MACS, git
from vaquero.lab.installer import InstallerAssets, check_archive, fetch_installer
from vaquero.lab.mirror import DebianMirror, apt_upstream
from vaquero.render.assets import sha256_file

pytestmark = [
    pytest.mark.installer,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("VAQUERO_INSTALLER_E2E") != "1",
        reason="a Debian installer (d-i) install under QEMU TCG takes tens of minutes: not part of CI; VAQUERO_INSTALLER_E2E=1 runs it",
    ),
]

REPO = Path(__file__).resolve().parents[2]
INSTALLERS = REPO / "inventories" / "installers"
PROFILE = "debian-12-installer"
HOST = "node1"
ADDRESS = "10.90.0.11"  # node1's address in the lab SoT
DISK_GB = 4
MEMORY = 1024  # MiB: d-i wants about 800 MiB without its low-memory mode
MIRROR_ADDRESS, MIRROR_PORT = "10.90.0.1", 8082  # the lab's Debian mirror, on the bridge
PLAN_TIMEOUT = 5400


class InstallerLab(StandaloneLab):
    """The standalone lab whose host has a blank virtio disk and the memory d-i needs."""

    def host_entries(self) -> list[dict[str, Any]]:
        return [{"name": h, "mac": MACS[h], "port": 6230 + int(h[-1]), "disk_gb": DISK_GB, "memory": MEMORY} for h in self.hosts]


@pytest.fixture(scope="module")
def installer() -> InstallerAssets:
    for tool, pkg in (("qemu-img", "qemu-utils"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"), ("apt-get", "apt")):
        need(tool, pkg)
    t0 = time.monotonic()
    assets = fetch_installer()
    print(f"\nd-i e2e: d-i {assets.version} {'cached' if assets.cached else 'downloaded'} in {time.monotonic() - t0:.1f} s")
    return assets


def use_installer_profile(sot: Path, assets: InstallerAssets, key: Path) -> None:
    """Put the ready profile, its preseed template and its validate hook into a lab SoT copy: the
    profile's kernel and initrd at the cached d-i files with their real sha256, the hook's key at the lab's."""
    profile = yaml.safe_load((INSTALLERS / "profiles" / f"{PROFILE}.yaml").read_text())
    profile["kernel"] = {"path": str(assets.kernel), "sha256": sha256_file(assets.kernel)}
    profile["initrd"] = [{"path": str(assets.initrd), "sha256": sha256_file(assets.initrd)}]
    (sot / "profiles" / f"{PROFILE}.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    template = profile["config"]["template"]
    (sot / template).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTALLERS / template, sot / template)
    hooks = (INSTALLERS / "hooks" / "ssh.yaml").read_text()
    assert "ssh_key: /etc/vaquero/ssh/id_ed25519" in hooks
    (sot / "hooks" / "installer-hooks.yaml").write_text(hooks.replace("ssh_key: /etc/vaquero/ssh/id_ed25519", f"ssh_key: {key}"))


def start(tmp_path: Path, assets: InstallerAssets) -> tuple[InstallerLab, DebianMirror, str, str]:
    """The lab running on an empty SoT revision, the mirror on its bridge; returns the lab, the
    mirror and the empty and with-node1 revisions (the second not pushed yet)."""
    key, public = key_pair(tmp_path / "ssh")
    lab = InstallerLab(tmp_path, [HOST], PASSWORD)
    lab.make_repo(
        profile=PROFILE,
        policy={"max_concurrent": 1, "min_available": 0, "on_failure": "halt"},
        hooks={"validate": ["debian-ssh-login"]},
        vars={"ssh_keys": [public], "debian_mirror": f"{MIRROR_ADDRESS}:{MIRROR_PORT}", "debian_mirror_directory": "/debian", "install_disk": "/dev/vda"},
    )
    use_installer_profile(lab.repo, assets, key)
    with_host = lab.commit("lab on the debian-installer profile")
    edit_cluster(lab.repo, hosts=[])
    empty = lab.commit("lab without hosts")
    lab.start()
    mirror = DebianMirror(netns=lab.net.name, address=MIRROR_ADDRESS, port=MIRROR_PORT, access_log=lab.workdir / "mirror.log").start()
    lab.standalone_start(f"{lab.repo}@main")  # --approve: the empty lab becomes the current revision
    assert lab.wait_plan(empty, ("succeeded", "failed"), timeout=120)["state"] == "succeeded", lab.log()
    return lab, mirror, empty, with_host


def push_node1(lab: InstallerLab, empty: str, with_host: str) -> tuple[str, dict[str, Any]]:
    git(lab.repo, "checkout", "-q", with_host, "--", "clusters/lab.yaml")
    added = lab.commit("add node1 on debian-12-installer")
    answer = deliver(lab, push_body(lab.repo, empty, added))
    assert answer["status"] == 202, answer
    plan = lab.wait_plan(added, ("pending_approval", "invalid", "approved", "succeeded"), timeout=120)
    assert plan["state"] == "pending_approval", plan
    assert [(h["host"], h["action"]) for h in plan["plan"]["hosts"]] == [(HOST, "add")]
    return added, plan


def mirror_log(lab: InstallerLab) -> list[tuple[str, str, int, int]]:
    """(client, path, status, bytes) of each request the mirror answered."""
    path = lab.workdir / "mirror.log"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split()
        if len(parts) == 7:
            rows.append((parts[1], parts[3], int(parts[4]), int(parts[5])))
    return rows


def by_state(events: list[dict[str, Any]], state: str) -> dict[str, Any]:
    return next(e for e in events if e["state"] == state and not e["detail"].get("hook"))


@contextlib.contextmanager
def approved_node1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: InstallerAssets) -> Iterator[tuple[InstallerLab, DebianMirror, str, float]]:
    """The lab and its mirror up, the push that adds node1 on the installer profile approved: (lab,
    mirror, the pushed SHA, when it was approved); both stopped afterwards, however the test ends."""
    monkeypatch.setenv("VAQUERO_WEBHOOK_SECRET", SECRET)
    lab, mirror = None, None
    try:
        lab, mirror, empty, with_host = start(tmp_path, installer)
        added, plan = push_node1(lab, empty, with_host)
        t0 = time.monotonic()
        approved = lab.api("POST", f"/v1/plans/{plan['id']}/approve", {"digest": plan["digest"]})
        assert approved["status"] == 200, approved
        yield lab, mirror, added, t0
    finally:
        if mirror is not None:
            mirror.stop()
        if lab is not None:
            lab.close()


def test_push_approve_node1_installed_by_debian_installer_phones_home_ssh_validated_ready(tmp_path, monkeypatch, installer) -> None:
    require_prerequisites()
    archive = check_archive(installer, apt_upstream())
    if archive.missing:
        pytest.fail(
            f"the Debian archive of this machine's apt sources does not serve {len(archive.missing)} of the {len(archive.needed)} "
            f"udebs d-i {installer.version} (kernel {archive.kernel_abi}) fetches, so d-i would stop at its first missing component: "
            + ", ".join(p.rsplit("/", 1)[-1] for p in archive.missing),
            pytrace=False,
        )
    with approved_node1(tmp_path, monkeypatch, installer) as (lab, mirror, added, t0):
        plan = lab.wait_plan(added, ("succeeded", "failed", "cancelled"), timeout=PLAN_TIMEOUT)
        took = time.monotonic() - t0
        consoles = sorted((lab.workdir / "vms").glob(f"{HOST}.console*.log"))
        tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in consoles)
        assert plan["state"] == "succeeded", f"{lab.store.get('/runs/' + plan['id'])}\n{lab.log()}\n{tails}"

        host = lab.store.get(f"/hosts/{HOST}")
        assert host is not None and host["state"] == "ready" and host["sha"] == added, host
        events = lab.timeline(HOST)
        seq = collapse([e["state"] for e in events])
        assert seq == ["pending", "powering_off", "netbooting", "installing", "rebooting", "validating", "ready"], seq
        # d-i's late_command called back success; the installed system phoned home before validate.
        installing = by_state(events, "installing")
        report = installing["detail"]["report"]
        assert report["result"] == "success" and report["installer"] == "debian-installer", report
        booted = by_state(events, "validating")["detail"]["phone_home"]
        assert booted["event"] == "booted" and booted["hostname"] == HOST and booted["installer"] == "debian-installer", booted
        assert re.fullmatch(r"6\.1\.0-\d+-amd64", booted["kernel"]), booted  # the kernel d-i installed from the archive
        # The profile's validate hook: hostname, address and ssh.service as the SoT says, held to the reported host keys.
        assert booted["ssh_host_keys"], booted
        ssh = next(e["detail"]["hook"] for e in events if e["detail"].get("hook", {}).get("name") == "debian-ssh-login")
        out = ssh["attempts"][-1]["output"]
        assert ssh["ok"] and f"ok: hostname {HOST}" in out and f"SoT address {ADDRESS}" in out and "ok: ssh.service is active" in out, ssh
        # The BMC: pxe once, then the disk for good; two boots (d-i, then the installed system).
        bmc = lab.bmcs()[HOST]
        assert bmc["boot"] == {"device": "disk", "persistent": True, "uefi": False} and bmc["power"] == "on" and bmc["boots"] == 2, bmc
        # Everything d-i and the target's apt fetched went through the lab's mirror: the udebs, the
        # base system (debootstrap), the kernel and GRUB.
        rows = mirror_log(lab)
        fetched = [p for _, p, status, _ in rows if status == 200]
        for needle in ("/debian/dists/bookworm/Release.gpg", "-udeb_", "/pool/main/l/linux-signed-amd64/linux-image-", "/pool/main/g/grub2/grub-pc_"):
            assert any(needle in p for p in fetched), f"the mirror never served {needle}"
        assert_no_secret(lab.data)
        stats = mirror.stats.as_dict()
        d_i = installing["time"] - by_state(events, "netbooting")["time"]
        phone = by_state(events, "validating")["time"] - by_state(events, "rebooting")["time"]
        print(
            f"\nd-i e2e: approve -> {HOST} ready in {took:.1f} s; netboot -> d-i's callback {d_i:.1f} s; "
            f"disk boot -> phone home {phone:.1f} s; mirror: {stats['requests']} requests, {stats['bytes_sent'] / 1e6:.1f} MB to the guest, "
            f"{stats['bytes_upstream'] / 1e6:.1f} MB from upstream, {stats['cache_hits']} from the lab cache"
        )


def test_d_i_netbooted_by_vaquero_reads_its_preseed_and_checks_the_signed_archive_through_the_mirror(tmp_path, monkeypatch, installer) -> None:
    """Push, approve, and node1 netboots d-i through the agent; d-i fetches the host's preseed from
    the agent and, with the mirror the preseed names (the command line does not), the archive's
    Release and its signature, then its udeb index: d-i asks for the index only once gpgv has
    accepted the signature with the keyring in its initrd."""
    require_prerequisites()
    with approved_node1(tmp_path, monkeypatch, installer) as (lab, mirror, added, t0):
        index = "/debian/dists/bookworm/main/debian-installer/binary-amd64/Packages.xz"

        def reached_index() -> bool:
            if (p := lab.plan_for(added)) is not None and p.get("state") in ("failed", "cancelled"):
                raise AssertionError(f"the plan ended {p['state']}: {lab.log()}")
            return any(path == index and status == 200 for _, path, status, _ in mirror_log(lab))

        console = lab.workdir / "vms" / f"{HOST}.console.log"
        wait_until(reached_index, timeout=900, interval=2, what=f"d-i asking the mirror for {index} (console: {console})")
        took = time.monotonic() - t0
        rows = mirror_log(lab)
        paths = [p for _, p, status, _ in rows if status == 200]
        assert "/debian/dists/bookworm/Release" in paths and "/debian/dists/bookworm/Release.gpg" in paths, paths
        assert paths.index("/debian/dists/bookworm/Release.gpg") < paths.index(index), paths
        # node1 asked, and only the preseed the agent served it names the mirror: d-i's command line does not.
        assert {client for client, *_ in rows} == {ADDRESS}, rows
        cmdline = yaml.safe_load((lab.repo / "profiles" / f"{PROFILE}.yaml").read_text())["cmdline"]
        assert str(MIRROR_PORT) not in cmdline and "mirror" not in cmdline, cmdline
        events = lab.timeline(HOST)
        assert collapse([e["state"] for e in events])[:3] == ["pending", "powering_off", "netbooting"], events
        stats = mirror.stats.as_dict()
        print(f"\nd-i e2e (preseed + signed archive): approve -> d-i reading the udeb index in {took:.1f} s; mirror {stats}")
