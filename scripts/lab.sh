#!/usr/bin/env bash
# The main job on embedded defaults: set up (venv, pip, Debian packages), validate and plan the lab
# SoT, then bring a QEMU lab host to `ready` with `vaquero standalone` (SQLite, an emulated IPMI BMC
# driving the VM, the agent's DHCP/TFTP/HTTP in a network namespace) and print its timeline.
# Needs root (namespaces, taps). Safe to run twice. LAB_HOSTS=node1,node2 brings up more hosts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
V=.venv/bin/vaquero
echo
echo "== vaquero validate inventories/lab"
$V validate inventories/lab
echo
echo "== vaquero plan - inventories/lab   (what bringing up the lab from nothing will do)"
rc=0
$V plan - inventories/lab || rc=$?
# plan exits 2 when there are changes (like terraform plan -detailed-exitcode): that is success here.
[ "$rc" = 0 ] || [ "$rc" = 2 ]
echo
echo "== vaquero standalone: netboot lab host(s) ${LAB_HOSTS:-node1} to ready"
.venv/bin/python -m vaquero.lab.demo --hosts "${LAB_HOSTS:-node1}"
