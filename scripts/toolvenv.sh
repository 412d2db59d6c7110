#!/usr/bin/env bash
# toolvenv.sh NAME : print the path of a venv holding exactly scripts/venvs/NAME.txt, making it
# first when missing or when that file (or the Python) changed. The venvs live outside the checkout
# (VAQUERO_TOOL_VENVS, default ~/.cache/vaquero/venvs) so CI's fresh clones reuse them, and pip's
# own cache makes a rebuild cheap. A venv is used only once its stamp is written: an interrupted
# build is made again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:?usage: toolvenv.sh NAME (a file scripts/venvs/NAME.txt)}"
case "$name" in
  *[!A-Za-z0-9._-]* | .*) echo "toolvenv: bad name: $name" >&2; exit 2 ;;
esac
lock="$ROOT/scripts/venvs/$name.txt"
[ -f "$lock" ] || { echo "toolvenv: no $lock" >&2; exit 2; }
PY="${PYTHON:-python3}"
key="$({ cat "$lock"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)"
base="${VAQUERO_TOOL_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/vaquero/venvs}"
venv="$base/$name-$key"
if [ ! -f "$venv/.vaquero-ready" ]; then
  rm -rf "$venv"
  mkdir -p "$base"
  "$PY" -m venv "$venv" >&2
  # --no-deps: the file is the whole resolved set; pip check proves it holds together.
  "$venv/bin/pip" install -q --no-deps -r "$lock" >&2
  "$venv/bin/pip" check >&2
  touch "$venv/.vaquero-ready"
fi
echo "$venv"
