#!/usr/bin/env bash
# The main job on embedded defaults: set up (venv, pip, Debian packages), then validate and plan
# the lab SoT. Safe to run twice.
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
