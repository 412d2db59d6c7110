"""The lab's probe package: `vaquero-probe`, a tiny HTTP responder, and a flat apt repository of it.

Two lab proofs move a real package on real Debian hosts (the image profile's reference image) and
need something whose version can be seen from outside:

- the in-place upgrade (`upgrade.strategy: reboot`) installs the SoT profile's version of the
  package over SSH with apt, from this repository, and reads back what answers;
- `min_available` during a rolling upgrade is measured by probing each host's responder while
  the wave runs.

Each version `v` installs `/usr/lib/vaquero-probe/index.html` (`vaquero-probe <v>`) and a systemd
unit that serves that folder on port 8080 with Python's `http.server`; its maintainer scripts
enable and (re)start the unit the way Debian's debhelper snippets do (bookworm's dh_installsystemd,
with the `DPKG_ROOT` guard its stop has put on the start too, so an install into a scratch root,
`dpkg --root`, never talks to the running systemd). The versions in BROKEN_VERSIONS install fine but their
service exits at once: the rollback proof needs an upgrade that apt calls a success and the
probe calls a failure.

`build_probe_repo()` writes the .debs (dpkg-deb, root-owned, fixed times: byte-for-byte
reproducible), `Packages`, `Packages.gz` and a `Release` with the sums apt checks, into
`<lab cache>/probe-repo/<content hash>/`, built in a temporary folder and renamed into place, so a
second call (or a second process) finds a whole repository or none. Serve that folder over HTTP
and point apt at it with `deb [trusted=yes] http://<address>:<port>/ ./`.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from vaquero.childenv import child_env

from .kernel import DEFAULT_CACHE, LabError, run_tool

log = logging.getLogger(__name__)

PACKAGE = "vaquero-probe"
PORT = 8080
DOC_ROOT = "/usr/lib/vaquero-probe"
UNIT = "vaquero-probe.service"
UNIT_PATH = f"/lib/systemd/system/{UNIT}"
# Versions that install cleanly but whose service exits non-zero at once, so nothing answers on
# PORT: the upgrade proofs need a version apt reports as installed and the probe reports as down,
# to show that a failed upgrade is detected and rolled back rather than trusted.
BROKEN_VERSIONS = frozenset({"3"})
# Part of the cache key: bump it when the layout of the repository (index, Release) changes.
BUILD_FORMAT = "vaquero-probe-repo/1"
# Every time stamp in the .debs, the indexes and Release (SOURCE_DATE_EPOCH): 2025-01-01 UTC.
EPOCH = 1_735_689_600
# A native Debian version without an epoch: digits first, then what dpkg allows, no ':' or '-'.
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+~]{0,31}")
_TIMEOUT = 60.0

CONTROL = """\
Package: {package}
Version: {version}
Architecture: all
Maintainer: Vaquero lab <lab@vaquero.invalid>
Installed-Size: {installed_size}
Depends: python3, systemd
Section: misc
Priority: optional
Description: Vaquero lab probe: answers "{package} {version}" over HTTP on port {port}
 A tiny responder for Vaquero's lab: the in-place upgrade and rolling upgrade
 proofs install it on test hosts and probe it to see which version runs.{broken}
"""

SERVICE = """\
[Unit]
Description=Vaquero lab probe {version} (HTTP on port {port})
After=network.target

[Service]
ExecStart={exec_start}
Restart={restart}
DynamicUser=yes

[Install]
WantedBy=multi-user.target
"""

# bookworm's dh_installsystemd postinst (unmask, enable, start or restart), with the DPKG_ROOT
# guard its prerm has on the stop put on the start too: with `dpkg --root` the scripts run outside
# the target, next to the build host's systemd, which must not be asked to start anything.
POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
	deb-systemd-helper unmask '{unit}' >/dev/null || true
	# was-enabled is true on a first install, so the unit is enabled then; an upgrade keeps the admin's choice
	if deb-systemd-helper --quiet was-enabled '{unit}'; then
		deb-systemd-helper enable '{unit}' >/dev/null || true
	else
		deb-systemd-helper update-state '{unit}' >/dev/null || true
	fi
	if [ -z "${{DPKG_ROOT:-}}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			_action=restart
		else
			_action=start
		fi
		deb-systemd-invoke "$_action" '{unit}' >/dev/null || true
	fi
fi
exit 0
"""

PRERM = """\
#!/bin/sh
set -e
if [ -z "${{DPKG_ROOT:-}}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop '{unit}' >/dev/null || true
fi
exit 0
"""

POSTRM = """\
#!/bin/sh
set -e
if [ -z "${{DPKG_ROOT:-}}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ] && [ -x /usr/bin/deb-systemd-helper ]; then
	deb-systemd-helper purge '{unit}' >/dev/null || true
fi
exit 0
"""


def deb_name(version: str) -> str:
    return f"{PACKAGE}_{version}_all.deb"


def exec_start(version: str) -> str:
    """The unit's ExecStart for `version`: the responder, or for a broken version a command that fails."""
    if version in BROKEN_VERSIONS:
        return f"/bin/sh -c 'echo {PACKAGE} {version} is broken on purpose >&2; exit 1'"
    return f"/usr/bin/python3 -m http.server {PORT} --directory {DOC_ROOT}"


def _check_versions(versions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(versions, str) or not versions:
        raise ValueError(f"probe versions: expected a non-empty list of versions, got {versions!r}")
    for v in versions:
        if not isinstance(v, str) or not _VERSION.fullmatch(v):
            raise ValueError(f"probe version {v!r}: expected digits first, then at most 31 of A-Z a-z 0-9 . + ~")
    if len(set(versions)) != len(versions):
        raise ValueError(f"probe versions: {list(versions)} names a version twice")
    return tuple(versions)


def package_files(version: str) -> dict[str, tuple[int, bytes]]:
    """Path in the package (DEBIAN/ for the control part) -> (mode, content) for one version."""
    broken = version in BROKEN_VERSIONS
    fmt = {"package": PACKAGE, "version": version, "port": PORT, "unit": UNIT}
    index = f"{PACKAGE} {version}\n".encode()
    service = SERVICE.format(exec_start=exec_start(version), restart="no" if broken else "on-failure", **fmt).encode()
    data = {DOC_ROOT.lstrip("/") + "/index.html": index, UNIT_PATH.lstrip("/"): service}
    installed_kib = sum((len(b) + 1023) // 1024 for b in data.values())
    note = "\n .\n This version is broken on purpose: its service exits at once." if broken else ""
    files: dict[str, tuple[int, bytes]] = {path: (0o644, content) for path, content in data.items()}
    files["DEBIAN/control"] = (0o644, CONTROL.format(installed_size=installed_kib, broken=note, **fmt).encode())
    files["DEBIAN/md5sums"] = (0o644, "".join(f"{hashlib.md5(c).hexdigest()}  {p}\n" for p, c in sorted(data.items())).encode())
    for name, script in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
        files[f"DEBIAN/{name}"] = (0o755, script.format(**fmt).encode())
    return files


def _tool(cmd: list[str], extra_env: Mapping[str, str] | None = None) -> str:
    env = child_env(extra={"LC_ALL": "C", "SOURCE_DATE_EPOCH": str(EPOCH), **(extra_env or {})})
    return run_tool(cmd, env=env, timeout=_TIMEOUT)


def build_key(versions: Sequence[str]) -> str:
    """The content hash of everything that goes in: the files of each version, the format, dpkg-deb's version."""
    trees = {v: {p: [mode, hashlib.sha256(c).hexdigest()] for p, (mode, c) in package_files(v).items()} for v in versions}
    dpkg_deb = _tool(["dpkg-deb", "--version"]).splitlines()[0]
    doc = {"format": BUILD_FORMAT, "epoch": EPOCH, "dpkg-deb": dpkg_deb, "versions": list(versions), "trees": trees}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _build_deb(version: str, scratch: Path, out: Path) -> None:
    tree = scratch / version
    for rel, (mode, content) in package_files(version).items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        os.utime(path, (EPOCH, EPOCH))
    _tool(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(out)])


def _stanza(deb: Path) -> str:
    """The deb's index entry: its control fields as dpkg-deb reads them back, then where it is and its sums."""
    control = _tool(["dpkg-deb", "-f", str(deb)]).rstrip("\n")
    body = deb.read_bytes()
    sums = (
        f"Filename: ./{deb.name}\nSize: {len(body)}\nMD5sum: {hashlib.md5(body).hexdigest()}\n"
        f"SHA1: {hashlib.sha1(body).hexdigest()}\nSHA256: {hashlib.sha256(body).hexdigest()}\n"
    )
    return f"{control}\n{sums}"


def _write_indexes(repo: Path, versions: Sequence[str]) -> None:
    packages = "\n".join(_stanza(repo / deb_name(v)) for v in versions).encode()
    (repo / "Packages").write_bytes(packages)
    with open(repo / "Packages.gz", "wb") as fh, gzip.GzipFile(filename="", fileobj=fh, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(packages)
    indexes = {name: (repo / name).read_bytes() for name in ("Packages", "Packages.gz")}
    lines = [
        "Origin: vaquero-lab",
        "Label: vaquero-lab",
        "Suite: vaquero-lab",
        "Codename: vaquero-lab",
        f"Date: {email.utils.formatdate(EPOCH, usegmt=True)}",
        f"Description: Vaquero lab probe packages ({PACKAGE} {', '.join(versions)})",
    ]
    for field, algo in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        lines.append(f"{field}:")
        lines += [f" {hashlib.new(algo, body).hexdigest()} {len(body)} {name}" for name, body in indexes.items()]
    (repo / "Release").write_text("\n".join(lines) + "\n")
    for path in repo.iterdir():
        os.utime(path, (EPOCH, EPOCH))


def build_probe_repo(versions: Sequence[str] = ("1", "2", "3"), cache: Path = DEFAULT_CACHE) -> Path:
    """The folder of a flat apt repository holding `vaquero-probe` at each of `versions`, built once per content hash."""
    wanted = _check_versions(versions)
    key = build_key(wanted)
    parent = cache / "probe-repo"
    repo = parent / key[:16]
    if (repo / "Release").is_file():  # Release is written last and the folder appears whole (rename)
        return repo
    parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=parent))
    try:
        with tempfile.TemporaryDirectory(prefix="vaquero-probe-tree-") as scratch:
            for v in wanted:
                _build_deb(v, Path(scratch), tmp / deb_name(v))
        _write_indexes(tmp, wanted)
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the repository from an HTTP server running as another user
        try:
            tmp.rename(repo)
        except OSError as exc:
            # another process renamed its identical build into place first; theirs is as good as ours
            if not (repo / "Release").is_file():
                raise LabError(f"cannot move the probe repository into {repo} (a folder there has no Release file: remove it)") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built the probe repository %s (versions %s) in %.2f s", repo, ", ".join(wanted), time.monotonic() - started)
    return repo
