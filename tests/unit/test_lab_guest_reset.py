"""The lab BMC tells a guest's own reboot (restart the VM, as a server would) from its power off
(stay off) by the kernel's last words on the console: real lines from Debian 12 and the lab's
busybox installers."""

from __future__ import annotations

from pathlib import Path

from vaquero.lab.bmc import _guest_restarted

REBOOT = """[  OK  ] Reached target reboot.target - System Reboot.
[  168.864419] systemd-shutdown[1]: Rebooting.
[  168.866927] kvm: exiting hardware virtualization
[  168.870936] ACPI: PM: Preparing to enter system sleep state S5
[  168.873548] reboot: Restarting system
[  168.873946] reboot: machine restart
"""
POWEROFF = """[   12.301112] vaquero-deploy: powering off
[   12.402230] ACPI: PM: Preparing to enter system sleep state S5
[   12.403301] reboot: Power down
"""


def test_a_restart_is_told_from_a_power_off(tmp_path: Path) -> None:
    log = tmp_path / "node1.console.log"
    log.write_text("x" * 10000 + "\n" + REBOOT)
    assert _guest_restarted(log)
    log.write_text(REBOOT + "booting again...\n" + POWEROFF)  # the last word counts
    assert not _guest_restarted(log)
    log.write_text("Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    assert not _guest_restarted(log)
    log.write_text("")
    assert not _guest_restarted(log)
    assert not _guest_restarted(tmp_path / "missing.log")
