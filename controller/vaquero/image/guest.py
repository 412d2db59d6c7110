"""What the builder writes into the image's root file system: the files that make a Debian tree a
deployable, first-boot-configurable OS. docs/install.md ("Building images") is the contract.

Everything here is text decided by the recipe and the cache key only (no clock, no host name), so
two builds of one key write the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .recipes import Recipe

# The hook the installed OS carries: if the deployer (or cloud-init user-data) leaves a URL here,
# vaquero-booted.service POSTs a small JSON report to it once.
PHONE_HOME_URL = "/etc/vaquero/phone-home.url"
PHONE_HOME_DONE = "/var/lib/vaquero/phone-home.done"
IMAGE_INFO = "/etc/vaquero/image.json"
PHONE_HOME_SCRIPT = "/usr/lib/vaquero/phone-home"

CLOUD_CFG = """\
# Written by vaquero image build: NoCloud first (a seed in /var/lib/cloud/seed/nocloud/, a disk
# labelled cidata, or ds=nocloud;s=URL on the kernel command line), else no datasource.
# ds-identify reads datasource_list only when it is on one line.
datasource_list: [ NoCloud, None ]
growpart:
  mode: auto
  devices: ["/"]
  ignore_growroot_disabled: false
resize_rootfs: true
ssh_pwauth: false
# glibc's built-in locale: nothing to generate (the image carries no other)
locale: C.UTF-8
# Host keys: ed25519 and ECDSA only. Debian's default list adds RSA 3072 (about 20 s of a first
# boot under emulation) and DSA (which OpenSSH 9 no longer offers); sshd loads only these two
# (sshd_config.d/vaquero-host-keys.conf).
ssh_genkeytypes: [ed25519, ecdsa]
"""

# systemd mounts the root read-write from this; LABEL matches the kernel command line.
FSTAB = "LABEL={label} / ext4 errors=remount-ro 0 1\n"

HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"

# Debian's ssh.service refuses to start without host keys; cloud-init makes them at first boot,
# but an image booted without any datasource (cloud-init then stays off) must still get some:
# the same two types as cloud-init's ssh_genkeytypes (`ssh-keygen -A` would add RSA).
SSH_HOST_KEY_TYPES = ("ed25519", "ecdsa")
SSH_KEYGEN_DROPIN = (
    "[Service]\n"
    "ExecStartPre=\n"
    "ExecStartPre=/bin/sh -c 'for t in ed25519 ecdsa; do [ -s /etc/ssh/ssh_host_$${t}_key ] || "
    'ssh-keygen -q -t $$t -N "" -f /etc/ssh/ssh_host_$${t}_key || exit 1; done\'\n'
    "ExecStartPre=/usr/sbin/sshd -t\n"
)
SSHD_HOST_KEYS = "".join(f"HostKey /etc/ssh/ssh_host_{t}_key\n" for t in SSH_HOST_KEY_TYPES)

BOOTED_UNIT = f"""\
[Unit]
Description=Vaquero: report that this OS booted from its disk
Documentation=file://{PHONE_HOME_SCRIPT}
# After cloud-init's init and config stages, so a URL written by user-data (write_files) is seen.
After=network-online.target cloud-init.service cloud-config.service
Wants=network-online.target
ConditionPathExists={PHONE_HOME_URL}
ConditionPathExists=!{PHONE_HOME_DONE}

[Service]
Type=oneshot
ExecStart={PHONE_HOME_SCRIPT}
TimeoutStartSec=10min
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

PHONE_HOME = f'''\
#!/usr/bin/python3
"""vaquero-booted: POST one JSON report to the URL in {PHONE_HOME_URL}, then never again.

The URL may carry a token (?token=...): it is never printed. A 2xx answer writes
{PHONE_HOME_DONE}; a 4xx answer is final; anything else is retried for about five minutes.
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

URL_FILE = Path("{PHONE_HOME_URL}")
DONE = Path("{PHONE_HOME_DONE}")


def read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def main():
    url = read(URL_FILE)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        print(f"vaquero-booted: {{URL_FILE}} does not hold one http(s) URL; nothing sent", file=sys.stderr)
        return 2
    where = f"{{parts.scheme}}://{{parts.hostname}}{{':' + str(parts.port) if parts.port else ''}}{{parts.path}}"
    try:
        image = json.loads(read("{IMAGE_INFO}") or "{{}}")
    except ValueError:
        image = {{}}
    report = {{
        "event": "booted",
        "hostname": socket.gethostname(),
        "instance_id": read("/var/lib/cloud/data/instance-id"),
        "machine_id": read("/etc/machine-id"),
        "boot_id": read("/proc/sys/kernel/random/boot_id"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "image": image,
        # what later SSH logins are held to (vaquero.hostkeys): "type base64", the comment dropped
        "ssh_host_keys": sorted(" ".join(read(p).split()[:2]) for p in Path("/etc/ssh").glob("ssh_host_*_key.pub") if read(p)),
    }}
    body = json.dumps(report).encode()
    for attempt in range(1, 31):
        request = urllib.request.Request(url, data=body, method="POST", headers={{"Content-Type": "application/json"}})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            status = 0
            print(f"vaquero-booted: {{where}}: attempt {{attempt}}: {{type(exc).__name__}}", file=sys.stderr)
        if 200 <= status < 300:
            DONE.parent.mkdir(parents=True, exist_ok=True)
            DONE.write_text(json.dumps({{"status": status, "boot_id": report["boot_id"]}}) + "\\n")
            print(f"vaquero-booted: reported to {{where}} ({{status}})")
            return 0
        if 400 <= status < 500:
            print(f"vaquero-booted: {{where}} refused the report ({{status}})", file=sys.stderr)
            return 1
        time.sleep(min(2 * attempt, 10))
    print(f"vaquero-booted: {{where}} did not take the report", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''


def grub_cfg(recipe: Recipe) -> str:
    """/boot/grub/grub.cfg in the root file system; both firmware paths' GRUB images load it."""
    label = recipe.layout.root_label
    return f"""\
# Written by vaquero image build ({recipe.name}); the GRUB images on the disk load this file.
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "{recipe.name}" {{
    search --no-floppy --label --set=root {label}
    linux /vmlinuz root=LABEL={label} {recipe.kernel_cmdline}
    initrd /initrd.img
}}
"""


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def _empty_dir(path: Path, keep: tuple[str, ...] = ()) -> None:
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _empty_files(path: Path) -> None:
    """Delete the files under `path`, keep its folders (journald logs persistently only if /var/log/journal exists)."""
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            Path(dirpath, name).unlink()


def customize(root: Path, recipe: Recipe, image_info: dict[str, str]) -> None:
    """Turn the mmdebstrap tree at `root` into the image's root file system (in place)."""
    label = recipe.layout.root_label
    _write(root, "/etc/cloud/cloud.cfg.d/90_vaquero.cfg", CLOUD_CFG)
    _write(root, "/etc/fstab", FSTAB.format(label=label))
    _write(root, "/boot/grub/grub.cfg", grub_cfg(recipe))
    # mmdebstrap copies these from the build host: neither its name nor its resolver belongs here
    _write(root, "/etc/hostname", "localhost\n")
    _write(root, "/etc/hosts", HOSTS)
    _write(root, "/etc/default/locale", "LANG=C.UTF-8\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")
    _write(root, "/etc/systemd/system/ssh.service.d/vaquero-host-keys.conf", SSH_KEYGEN_DROPIN)
    _write(root, "/etc/ssh/sshd_config.d/vaquero-host-keys.conf", SSHD_HOST_KEYS)
    _write(root, "/etc/systemd/system/vaquero-booted.service", BOOTED_UNIT)
    _write(root, PHONE_HOME_SCRIPT, PHONE_HOME, mode=0o755)
    _write(root, IMAGE_INFO, json.dumps(image_info, sort_keys=True) + "\n")
    (root / PHONE_HOME_DONE).parent.mkdir(parents=True, exist_ok=True)
    # systemd writes a machine-id at first boot when the file is empty (not missing: read-only roots)
    _write(root, "/etc/machine-id", "", mode=0o444)
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # host keys are made at first boot (cloud-init's ssh module, or the drop-in above)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # apt's lists and caches are the build host's; the OS fetches its own with apt-get update
    _empty_dir(root / "var/lib/apt/lists", keep=("lock", "partial"))
    _empty_dir(root / "var/lib/apt/lists/partial")
    _empty_dir(root / "var/cache/apt", keep=("archives",))
    _empty_dir(root / "var/cache/apt/archives", keep=("lock", "partial"))
    _empty_dir(root / "var/cache/apt/archives/partial")
    _empty_files(root / "var/log")
    _empty_dir(root / "tmp")
    _empty_dir(root / "var/tmp")
    # the root account keeps no password: access is by the SSH key cloud-init puts in
    _lock_root(root / "etc/shadow")
    for unit in recipe.enable:
        _enable(root, unit)


def _lock_root(shadow: Path) -> None:
    lines = shadow.read_text().splitlines()
    for i, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root":
            fields[1] = "*"
            lines[i] = ":".join(fields)
    shadow.write_text("\n".join(lines) + "\n")


def _enable(root: Path, unit: str) -> None:
    """What `systemctl enable` does for a unit with WantedBy= lines, without running systemctl."""
    text = (root / "etc/systemd/system" / unit).read_text()
    for line in text.splitlines():
        if line.startswith("WantedBy="):
            for target in line.removeprefix("WantedBy=").split():
                wants = root / "etc/systemd/system" / f"{target}.wants"
                wants.mkdir(parents=True, exist_ok=True)
                link = wants / unit
                if not link.is_symlink():
                    os.symlink(f"/etc/systemd/system/{unit}", link)
