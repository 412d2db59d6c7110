#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages (when missing), a venv in .venv with
# the Python dependencies at the versions of constraints.txt, and the offline stand-in
# ansible-test needs. Safe to run twice. The extra venvs some CI stages use (ansible-core 2.16,
# galaxy-importer) are made on demand by scripts/toolvenv.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages the lab and the tests use: real DHCP servers, QEMU + iPXE for netboot,
# an IPMI simulator and ipmitool, etcd, nginx/wrk for benchmarks; mmdebstrap, GRUB's images,
# GPT/FAT/ext4 tools and qemu-img to build and deploy real OS disk images (docs/install.md), and an
# SSH client for validating the installed OS.
APT_PACKAGES=(
  git ca-certificates iproute2 iptables procps
  dnsmasq-base kea-dhcp4-server
  qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static cpio kmod
  openipmi ipmitool
  etcd-server etcd-client
  nginx-light wrk curl
  mmdebstrap grub-pc-bin grub-efi-amd64-bin gdisk mtools dosfstools e2fsprogs qemu-utils
  xz-utils zstd openssh-client dropbear-bin
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=none; fi
  if [ "$SUDO" = none ]; then
    echo "setup: missing Debian packages (${missing[*]}) and no root/sudo to install them" >&2
  else
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Packages such as nginx and etcd start a service on install; the tests start their own.
    # Stop only the instances the packages started (their service, or the pid file nginx's init
    # script writes), never a process that merely has the same name.
    for svc in nginx etcd; do
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
    done
    if [ -s /run/nginx.pid ]; then $SUDO kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
  fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# Reinstall only when the dependency ranges or the exact pins changed. pyproject.toml declares
# ranges; constraints.txt holds the exact versions that install here and in CI.
stamp=".venv/.vaquero-deps"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The core was once distributed as "vaquero" (a name PyPI gives to another project): drop that
  # editable install so only vaquero-metal-controller owns the package and the `vaquero` script.
  if .venv/bin/pip show -q vaquero >/dev/null 2>&1; then
    .venv/bin/pip uninstall -q -y vaquero
  fi
  # Its build metadata left beside the sources would still answer to the old name.
  rm -rf controller/vaquero.egg-info
  .venv/bin/pip install -q -c constraints.txt -e ".[test]"
  .venv/bin/pip check
  echo "$want" > "$stamp"
fi

# ansible-test sanity downloads get-pip.py from a host that is unreachable here; a stand-in
# that uses ensurepip and then pip itself lets every sanity test run offline. One file per pip
# version ansible-test asks for: 24.2 (ansible-core 2.19) and 23.1.2 (2.16, the oldest supported).
for pipver in 24_2 23_1_2; do
  GETPIP="$HOME/.ansible/test/cache/get_pip_${pipver}.py"
  if [ -f "$GETPIP" ]; then continue; fi
  mkdir -p "$(dirname "$GETPIP")"
  cat > "$GETPIP" <<'PYEOF'
"""Offline stand-in for get-pip.py (written by Vaquero's scripts/setup.sh)."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PYEOF
done
echo "setup: ready (.venv/bin/vaquero)"
