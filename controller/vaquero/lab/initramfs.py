"""A tiny initramfs for lab hosts: busybox, NIC modules, and an /init that acts as an installer.

/init brings the NIC up with DHCP, fetches the host's config URL, posts what it got (address,
router, DNS, NTP, domain, host name, config checksum) to the callback URL from the kernel
command line (`vaquero.callback=`, `vaquero.config=`, `vaquero.host=`), then powers off.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from .kernel import Kernel, LabError

NIC_MODULES = ("virtio_pci", "virtio_net", "e1000")

INIT = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /run /tmp
for m in $(cat /etc/modules); do insmod "/lib/modules/$m" || echo "vaquero-lab: insmod $m failed"; done
CB=""; CFG=""; HOST=""; SIP=""; SGW=""
# no globbing of the words: the URLs carry "?token=..."
set -f
for w in $(cat /proc/cmdline); do
  case "$w" in
    vaquero.callback=*) CB="${w#*=}" ;;
    vaquero.config=*) CFG="${w#*=}" ;;
    vaquero.host=*) HOST="${w#*=}" ;;
    vaquero.ip=*) SIP="${w#*=}" ;;
    vaquero.gw=*) SGW="${w#*=}" ;;
  esac
done
set +f
ip link set lo up
IF=""
for i in 1 2 3 4 5 6 7 8 9 10; do
  for n in /sys/class/net/*; do n="${n##*/}"; [ "$n" != lo ] && IF="$n" && break; done
  [ -n "$IF" ] && break
  sleep 0.2
done
echo "vaquero-lab: host=$HOST iface=$IF"
# What the kernel really got, for tests that check a cmdline survives iPXE verbatim (one-time
# tokens masked: the console log is kept).
echo "vaquero-lab: cmdline [$(sed 's/token=[^ &]*/token=REDACTED/g' /proc/cmdline)]"
if [ -n "$SIP" ]; then
  # A static address from the cmdline (vaquero.ip=A/P vaquero.gw=G): networks without DHCP.
  ip link set "$IF" up
  ip addr add "$SIP" dev "$IF"
  [ -n "$SGW" ] && ip route add default via "$SGW" dev "$IF"
  echo "ip='${SIP%/*}'" > /run/lease.env; echo "router='$SGW'" >> /run/lease.env
  echo "vaquero-lab: static address $SIP"
else
  udhcpc -i "$IF" -f -q -n -t 20 -T 1 -O ntpsrv -O domain -O hostname -s /etc/udhcpc.script
fi
[ -f /run/lease.env ] && . /run/lease.env
MAC="$(cat /sys/class/net/$IF/address)"
CSUM=""
if [ -n "$CFG" ] && wget -q -O /run/config "$CFG"; then CSUM="$(sha256sum /run/config | cut -d' ' -f1)"; fi
BODY="{\"host\":\"$HOST\",\"mac\":\"$MAC\",\"ip\":\"$ip\",\"router\":\"$router\",\"dns\":\"$dns\",\"ntp\":\"$ntpsrv\",\"domain\":\"$domain\",\"hostname\":\"$hostname\",\"config_sha256\":\"$CSUM\"}"
echo "vaquero-lab: callback $BODY"
if [ -n "$CB" ]; then
  wget -q -O - --header "Content-Type: application/json" --post-data "$BODY" "$CB" && echo "vaquero-lab: callback done"
fi
sync
poweroff -f
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    ip link set "$interface" up
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    {
      echo "ip='$ip'"; echo "router='$router'"; echo "dns='$dns'"; echo "ntpsrv='$ntpsrv'"
      echo "domain='$domain'"; echo "hostname='$hostname'"
    } > /run/lease.env
    ;;
  deconfig) ip link set "$interface" up; ip addr flush dev "$interface" ;;
esac
exit 0
"""


def _module_order(kernel: Kernel, names: tuple[str, ...]) -> list[str]:
    """Relative .ko paths for the named modules, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        base = Path(mod).name.split(".ko")[0].replace("-", "_")
        by_name[base] = mod
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for d in reversed(deps.get(mod, [])):
            visit(d)
        order.append(mod)

    for name in names:
        if name not in by_name:
            raise LabError(f"kernel {kernel.version} has no module {name} (built in?)")
        visit(by_name[name])
    return order


def build_initramfs(kernel: Kernel, out: Path, modules: tuple[str, ...] = NIC_MODULES, busybox: str = "/bin/busybox") -> Path:
    """Write a gzip'd newc cpio to `out` (atomically) and return it."""
    bb = shutil.which(busybox) or busybox
    if not Path(bb).is_file():
        raise LabError("busybox-static is not installed (/bin/busybox missing)")
    if shutil.which("cpio") is None:
        raise LabError("cpio is not installed")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vaquero-initramfs-") as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "dev", "etc", "proc", "sys", "run", "tmp", "lib/modules"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(bb, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        loaded = []
        for rel in _module_order(kernel, modules):
            src = kernel.modules / rel
            name = Path(rel).name
            if name.endswith(".xz"):
                data = subprocess.run(["xz", "-dc", str(src)], check=True, capture_output=True).stdout
                name = name[:-3]
                (root / "lib" / "modules" / name).write_bytes(data)
            else:
                shutil.copy2(src, root / "lib" / "modules" / name)
            loaded.append(name)
        (root / "etc" / "modules").write_text("\n".join(loaded) + "\n")
        for path, text in ((root / "init", INIT), (root / "etc" / "udhcpc.script", UDHCPC_SCRIPT)):
            path.write_text(text)
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        for p in root.rglob("*"):
            os.utime(p, (0, 0), follow_symlinks=False)
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        cpio = subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
            cwd=root,
            input="\n".join(names).encode(),
            check=True,
            capture_output=True,
        ).stdout
        tmp_out = out.with_name(f".{out.name}.tmp")
        with open(tmp_out, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            gz.write(cpio)
        tmp_out.replace(out)
    return out
