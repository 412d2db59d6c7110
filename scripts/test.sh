#!/usr/bin/env bash
# Run the whole test suite: set-up, ruff, import-linter, ansible-test sanity (ansible-core 2.19, then
# 2.16 in its own venv), the collection's ansible-test units and integration targets, antsibull-changelog
# lint, ansible-lint, a build + install of the collection checked with ansible-doc, galaxy-importer on
# that tarball, then pytest. Every stage runs even when an earlier one failed (setup excepted); the
# script exits non-zero if any stage failed. pytest runs last so its summary line is the last thing
# printed. Extra arguments are passed to pytest, e.g.
#   scripts/test.sh -m 'not e2e'      scripts/test.sh -x tests/unit
# Works offline (package registries only): see docs in scripts/setup.sh and .ansible-lint.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

COLLECTION_DIR="ansible_collections/vaquero/metal"
COLLECTION_FQ="vaquero.metal"

export PYTHONUNBUFFERED=1
# Never wait on a prompt (CI has no stdin).
exec </dev/null

# A CI clone owned by another user than the one running the tests makes git (and so
# ansible-test, which lists files with git) refuse the repository: trust this checkout only.
if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  if git -C "$ROOT" rev-parse --git-dir 2>&1 | grep -q "dubious ownership"; then
    n="${GIT_CONFIG_COUNT:-0}"
    export "GIT_CONFIG_KEY_${n}=safe.directory" "GIT_CONFIG_VALUE_${n}=$ROOT"
    export GIT_CONFIG_COUNT=$((n + 1))
  fi
fi

declare -a RESULTS=()
FAILED=0
SUITE_START=$SECONDS

header() {
  printf '\n==================== %s ====================\n' "$1"
}

# run_stage NAME COMMAND... : run one stage with a header, record its result and wall time.
run_stage() {
  local name="$1"; shift
  header "$name"
  local start=$SECONDS rc=0
  # A subshell with errexit, run outside any `||`/`if` context: bash ignores `set -e` inside
  # anything called from such a context, which would let a failing step pass unnoticed.
  ( set -e; "$@" )
  rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    RESULTS+=("ok      ${took}s  $name")
    printf -- '---- %s: ok (%ss)\n' "$name" "$took"
  else
    RESULTS+=("FAILED  ${took}s  $name (exit $rc)")
    printf -- '---- %s: FAILED, exit %s (%ss)\n' "$name" "$rc" "$took"
    FAILED=1
  fi
  return 0
}

stage_setup() {
  bash scripts/setup.sh
}

stage_ruff() {
  local paths=()
  for p in controller tests benchmarks ansible_collections; do
    if [ -e "$p" ]; then paths+=("$p"); fi
  done
  ruff --version
  ruff check "${paths[@]}"
}

stage_imports() {
  # The layer contracts of pyproject.toml ([tool.importlinter], map in docs/architecture.md).
  lint-imports --no-cache
}

stage_sanity() {
  # ansible-test lists the collection's files with git (tracked + untracked, not ignored) and
  # builds one venv per test under ~/.ansible/test/venv; pip comes from the offline get-pip
  # stand-in that setup.sh writes. --python 3.11 avoids a pyenv shim for another Python.
  (cd "$COLLECTION_DIR" && ansible-test sanity --python 3.11 --color no)
}

stage_sanity_oldest() {
  # The oldest ansible-core requires_ansible admits (2.16), from its own cached venv
  # (scripts/venvs/ansible-core-2.16.txt): its sanity rules differ (validate-modules, pylint).
  local venv
  venv="$(bash scripts/toolvenv.sh ansible-core-2.16)"
  "$venv/bin/ansible-test" --version
  (cd "$COLLECTION_DIR" && PATH="$venv/bin:$PATH" ansible-test sanity --python 3.11 --color no)
}

stage_units() {
  # The collection's own unit tests (tests/unit), run by ansible-test in this venv (pytest and
  # the vaquero core are here). No test file under tests/unit yet: nothing to run, said so.
  if [ -z "$(find "$COLLECTION_DIR/tests/unit" -name 'test_*.py' -print -quit 2>/dev/null)" ]; then
    echo "no test_*.py under $COLLECTION_DIR/tests/unit: skipped"
    return 0
  fi
  (cd "$COLLECTION_DIR" && ansible-test units --python 3.11 --color no)
}

stage_integration() {
  # The collection's integration targets (tests/integration/targets), run locally by ansible-test
  # (connection local, this venv's Python, so the modules import the vaquero core).
  if ! compgen -G "$COLLECTION_DIR/tests/integration/targets/*/tasks/main.y*ml" >/dev/null; then
    echo "no $COLLECTION_DIR/tests/integration/targets: skipped"
    return 0
  fi
  (cd "$COLLECTION_DIR" && ansible-test integration --local --python 3.11 --color no)
}

stage_changelog() {
  # Fragments and changelogs/changelog.yaml must parse and use known sections.
  (cd "$COLLECTION_DIR" && antsibull-changelog lint)
}

stage_lint() {
  # Config (profile production, offline, excludes) in .ansible-lint; the collection's own
  # modules resolve via collections_path = ./ in ansible.cfg.
  ansible-lint --nocolor --version
  ansible-lint --nocolor
}

# Build the collection tarball, install it in a scratch collections path and check that
# ansible-doc lists and renders every plugin from that installed copy (not the checkout).
stage_galaxy() {
  # Runs in run_stage's errexit subshell: the trap cleans up however the stage ends.
  local tmp
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/vaquero-galaxy.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: $tmp is local and gone when the trap runs
  trap "rm -rf '$tmp'" EXIT
  (
    # Work in the scratch dir with an empty config so neither the repo's ansible.cfg
    # (collections_path = ./, which makes the checkout count as "already installed") nor a
    # user's one is read: the checks below see only the installed tarball.
    cd "$tmp"
    printf '[defaults]\n' >"$tmp/ansible.cfg"
    export ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$tmp/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
    ansible-galaxy collection build "$ROOT/$COLLECTION_DIR" --output-path "$tmp/dist"
    local tarball
    tarball="$(ls "$tmp"/dist/vaquero-metal-*.tar.gz)"
    ansible-galaxy collection install --offline --force -p "$tmp/collections" "$tarball"
    local installed="$tmp/collections/ansible_collections/vaquero/metal"
    test -f "$installed/MANIFEST.json"
    ansible-galaxy collection list "$COLLECTION_FQ"
    local checked=0
    # plugins/<dir> -> ansible-doc -t <type> (types that carry their own DOCUMENTATION), and
    # roles that declare argument specs (ansible-doc -t role lists only those).
    local dir type
    for pair in modules:module inventory:inventory lookup:lookup callback:callback connection:connection \
                become:become cache:cache vars:vars strategy:strategy filter:filter test:test roles:role; do
      dir="${pair%%:*}"; type="${pair##*:}"
      local want=() f name
      if [ "$type" = role ]; then
        for f in "$installed"/roles/*/meta/argument_specs.y*ml; do
          [ -e "$f" ] || continue
          want+=("$COLLECTION_FQ.$(basename "$(dirname "$(dirname "$f")")")")
        done
      elif [ "$type" = filter ] || [ "$type" = test ]; then
        # Jinja2 filters/tests are documented in <name>.yml files next to the Python code.
        for f in "$installed/plugins/$dir"/*.yml "$installed/plugins/$dir"/*.yaml; do
          [ -e "$f" ] || continue
          name="$(basename "$f")"
          want+=("$COLLECTION_FQ.${name%.*}")
        done
      else
        for f in "$installed/plugins/$dir"/*.py; do
          [ -e "$f" ] || continue
          name="$(basename "$f" .py)"
          if [ "$name" = "__init__" ]; then continue; fi
          want+=("$COLLECTION_FQ.$name")
        done
      fi
      ((${#want[@]})) || continue
      echo "ansible-doc -t $type -l $COLLECTION_FQ:"
      ansible-doc -t "$type" -l "$COLLECTION_FQ" --json | python -c '
import json, sys
kind, want = sys.argv[1], sys.argv[2:]
try:
    listed = json.load(sys.stdin)
except ValueError:
    listed = {}
for name, desc in sorted(listed.items()):
    if isinstance(desc, dict):  # roles: one short description per entry point
        desc = "; ".join(f"{k}: {v}" for k, v in desc.get("entry_points", {}).items())
    print(f"  {name}: {desc}")
missing = [n for n in want if n not in listed]
if missing:
    sys.exit(f"ansible-doc -t {kind} -l does not list: {missing}")
' "$type" "${want[@]}"
      for name in "${want[@]}"; do
        # Render each one's docs too: ansible-doc may print an error and still exit 0, so
        # check the JSON carries a real doc (short_description, or a role's entry points).
        ansible-doc -t "$type" --json "$name" | python -c '
import json, sys
name, kind = sys.argv[1], sys.argv[2]
try:
    entry = json.load(sys.stdin).get(name) or {}
except ValueError:
    entry = {}
ok = bool(entry.get("entry_points")) if kind == "role" else bool((entry.get("doc") or {}).get("short_description"))
if not ok:
    sys.exit(f"ansible-doc -t {kind} {name}: no usable documentation")
' "$name" "$type"
        checked=$((checked + 1))
      done
    done
    echo "ansible-doc: $checked plugin(s)/role(s) listed and rendered from $installed"
  )
}

# Galaxy's own importer on the tarball ansible-galaxy builds, from its cached venv
# (scripts/venvs/galaxy-importer.txt), configured by scripts/galaxy-importer.cfg.
stage_importer() {
  local tmp venv
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/vaquero-importer.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: $tmp is local and gone when the trap runs
  trap "rm -rf '$tmp'" EXIT
  venv="$(bash scripts/toolvenv.sh galaxy-importer)"
  "$ROOT/.venv/bin/ansible-galaxy" collection build "$ROOT/$COLLECTION_DIR" --output-path "$tmp"
  # The importer runs ansible-doc and ansible-lint by name: its venv's, first in PATH. It exits 1
  # when Galaxy would refuse the import; some findings (a module whose docs do not parse) are only
  # logged as ERROR while the import succeeds: those fail this stage too.
  (cd "$tmp" && PATH="$venv/bin:$PATH" GALAXY_IMPORTER_CONFIG="$ROOT/scripts/galaxy-importer.cfg" \
    TMPDIR="$tmp" "$venv/bin/python" -m galaxy_importer.main "$tmp"/vaquero-metal-*.tar.gz) 2>&1 | tee "$tmp/importer.log"
  if grep -E '^(ERROR|WARNING):' "$tmp/importer.log" >/dev/null; then
    echo "galaxy-importer: the import logged errors or warnings (above)" >&2
    return 1
  fi
}

header "setup"
setup_start=$SECONDS
if ! stage_setup; then
  echo "---- setup: FAILED; nothing else can run" >&2
  exit 1
fi
echo "---- setup: ok ($((SECONDS - setup_start))s)"
RESULTS+=("ok      $((SECONDS - setup_start))s  setup")
export PATH="$ROOT/.venv/bin:$PATH"
export VIRTUAL_ENV="$ROOT/.venv"

run_stage "ruff" stage_ruff
run_stage "import-linter" stage_imports
run_stage "ansible-test sanity" stage_sanity
run_stage "ansible-test sanity (ansible-core 2.16)" stage_sanity_oldest
run_stage "ansible-test units" stage_units
run_stage "ansible-test integration" stage_integration
run_stage "antsibull-changelog lint" stage_changelog
run_stage "ansible-lint (production)" stage_lint
run_stage "collection build + install + ansible-doc" stage_galaxy
run_stage "galaxy-importer" stage_importer

header "summary before pytest ($((SECONDS - SUITE_START))s so far)"
printf '  %s\n' "${RESULTS[@]}"
if [ "$FAILED" -ne 0 ]; then
  echo "  => an earlier stage FAILED: this run exits non-zero whatever pytest says"
fi

header "pytest"
rc=0
# With arguments, pytest falls back to testpaths (tests) unless a path is among them.
if (($#)); then
  .venv/bin/python -m pytest "$@" || rc=$?
else
  # Three workers (pytest-xdist) on two cores, a file at a time each: much of the suite waits on
  # QEMU guests, BMC power delays and child processes. With two workers the cores were not always
  # busy; with three they were 97% busy and the suite took 1,362 s instead of 1,477 s (2026-12-04).
  # VAQUERO_TEST_WORKERS=0 runs it in one process. Files are dealt in collection order
  # (tests/conftest.py puts the longest first), not re-sorted by xdist by their number of tests,
  # which sent the one-test Debian e2e (the longest, 12-20 min) last.
  .venv/bin/python -m pytest -n "${VAQUERO_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder tests || rc=$?
fi
# Nothing is printed after pytest's summary line. Exit code 5 (no tests collected) is a
# failure like any other non-zero code: the suite always has tests.
if [ "$rc" -ne 0 ]; then
  exit "$rc"
fi
exit "$FAILED"
