"""vaquero-probe and its flat apt repository (vaquero.lab.probe) against the real dpkg and apt, no VM.

The in-place and rolling upgrade proofs install this package on QEMU hosts over SSH; here the
same repository goes through what those hosts will do with it, on this machine and without
touching its packages or its systemd: apt (private state, config and sources) reads the
repository over HTTP and downloads a version; dpkg installs, upgrades, downgrades and purges it in
a scratch root (`--root`, scripts run chrootless with DPKG_ROOT set); the maintainer scripts run
with stubs for the systemd tools, in a mount namespace whose /run says systemd is (or is not)
running; the unit's ExecStart runs as the responder on a loopback port.
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import http.server
import os
import pwd
import re
import shlex
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ports import free_port
from requirements import missing, need, need_root
from waiting import wait_until

from vaquero.lab import probe
from vaquero.lab.probe import BROKEN_VERSIONS, DOC_ROOT, PACKAGE, PORT, UNIT, UNIT_PATH, build_probe_repo, deb_name

VERSIONS = ("1", "2", "3")
BROKEN = {"3"}  # the rollback proof upgrades to 3 and expects nothing to answer
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SCRIPTS = ("postinst", "prerm", "postrm")
TIMEOUT = 60
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy from the environment


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("env", {"PATH": SYSTEM_PATH, "LC_ALL": "C"})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kw)


def ok(cmd: list[str], **kw) -> str:
    res = run(cmd, **kw)
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def extract(deb: Path, into: Path) -> Path:
    """The deb's files under `into`, its control part under `into`/DEBIAN."""
    ok(["dpkg-deb", "-x", str(deb), str(into)])
    ok(["dpkg-deb", "-e", str(deb), str(into / "DEBIAN")])
    return into


@pytest.fixture(scope="module")
def lab_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-cache")


@pytest.fixture(scope="module")
def repo(lab_cache: Path) -> Path:
    need("dpkg-deb", "dpkg")
    return build_probe_repo(VERSIONS, cache=lab_cache)


@pytest.fixture
def served(repo: Path) -> Iterator[str]:
    """The repository over HTTP on a loopback port, as the lab's hosts will fetch it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(repo)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="probe-repo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_each_deb_holds_its_version_unit_and_maintainer_scripts(repo: Path, tmp_path: Path) -> None:
    for v in VERSIONS:
        deb = repo / deb_name(v)
        fields = dict(line.split(": ", 1) for line in ok(["dpkg-deb", "-f", str(deb)]).splitlines() if ": " in line and not line.startswith(" "))
        assert (fields["Package"], fields["Version"], fields["Architecture"], fields["Depends"]) == (PACKAGE, v, "all", "python3, systemd")

        listing = ok(["dpkg-deb", "-c", str(deb)]).splitlines()
        files = {line.split()[-1] for line in listing if line.startswith("-")}
        assert files == {"." + DOC_ROOT + "/index.html", "." + UNIT_PATH}, listing
        assert all(line.split()[1] == "root/root" for line in listing), f"not root-owned: {listing}"
        assert all(" 2025-01-01 00:00 " in line for line in listing), f"time stamps not fixed: {listing}"

        info = ok(["dpkg-deb", "-I", str(deb)])
        for script in SCRIPTS:
            assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s+#!/bin/sh$", info, re.M), f"{deb.name}: no executable {script}:\n{info}"

        root = extract(deb, tmp_path / v)
        assert (root / DOC_ROOT.lstrip("/") / "index.html").read_bytes() == f"vaquero-probe {v}\n".encode()
        for script in SCRIPTS:
            text = (root / "DEBIAN" / script).read_text()
            assert text.splitlines()[:2] == ["#!/bin/sh", "set -e"], f"{script} of {v}"
            ok(["sh", "-n", str(root / "DEBIAN" / script)])
        ok(["md5sum", "--check", "--quiet", "DEBIAN/md5sums"], cwd=root)

        unit_file = root / UNIT_PATH.lstrip("/")
        unit = read_unit(unit_file)
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        argv = shlex.split(unit["Service"]["ExecStart"])
        if v in BROKEN:
            assert argv[0] == "/bin/sh" and unit["Service"]["Restart"] == "no", unit_file.read_text()
        else:
            assert argv == ["/usr/bin/python3", "-m", "http.server", str(PORT), "--directory", DOC_ROOT]
            assert unit["Service"]["Restart"] == "on-failure"
        # systemd's own parser: it exits 0 on a bad key too, but names the file in each complaint
        verify = run([need("systemd-analyze", "systemd"), "verify", str(unit_file)])
        complaints = [line for line in (verify.stdout + verify.stderr).splitlines() if str(unit_file) in line]
        assert verify.returncode == 0 and not complaints, f"systemd-analyze verify {v}: {verify.stdout}{verify.stderr}"


def test_a_second_build_is_the_cached_folder_and_builds_are_reproducible(repo: Path, lab_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real_build_deb = probe._build_deb

    def counting(version: str, scratch: Path, out: Path) -> None:
        built.append(version)
        real_build_deb(version, scratch, out)

    monkeypatch.setattr(probe, "_build_deb", counting)
    before = {p.name: p.stat().st_mtime_ns for p in repo.iterdir()}
    assert build_probe_repo(VERSIONS, cache=lab_cache) == repo
    assert built == [], "the cached repository was built again"
    assert {p.name: p.stat().st_mtime_ns for p in repo.iterdir()} == before

    # Four builders at once into an empty cache: each returns the same whole folder, no temp left.
    fresh = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(lambda _: build_probe_repo(VERSIONS, cache=fresh), range(4)))
    assert paths == {fresh / "probe-repo" / repo.name}, paths
    assert sorted(p.name for p in (fresh / "probe-repo").iterdir()) == [repo.name], "a temporary build folder was left behind"
    assert len(built) >= len(VERSIONS)
    again = paths.pop()
    assert {p.name: sha256(p) for p in again.iterdir()} == {p.name: sha256(p) for p in repo.iterdir()}, "two builds differ"

    other = build_probe_repo(("1", "2"), cache=lab_cache)
    assert other != repo and sorted(p.name for p in other.glob("*.deb")) == [deb_name("1"), deb_name("2")]


def test_apt_lists_every_version_and_downloads_the_repos_bytes(repo: Path, served: str, tmp_path: Path) -> None:
    need("apt-get", "apt")
    need("apt-cache", "apt")
    state, cache, parts = tmp_path / "state", tmp_path / "cache", tmp_path / "apt.conf.d"
    for d in (state / "lists" / "partial", cache / "archives" / "partial", parts):
        d.mkdir(parents=True)
    (state / "status").write_text("")
    sources = tmp_path / "sources.list"
    sources.write_text(f"deb [trusted=yes] {served} ./\n")
    # APT_CONFIG is read before apt.conf.d: with parts and main pointed away, none of this
    # machine's apt configuration (proxies, mirrors, pins) takes part.
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc::main "/dev/null";\nDir::Etc::parts "{parts}";\n')
    user = pwd.getpwuid(os.getuid()).pw_name  # as root, apt would hand downloads to _apt, which cannot write here
    apt_options = [
        *("-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-"),
        *("-o", "Dir::Etc::preferences=/dev/null", "-o", "Dir::Etc::preferencesparts=-"),
        *("-o", f"Dir::State={state}", "-o", f"Dir::State::status={state / 'status'}", "-o", f"Dir::Cache={cache}"),
        *("-o", "APT::Get::List-Cleanup=0", "-o", "Debug::NoLocking=1", "-o", f"APT::Sandbox::User={user}", "-o", "Acquire::Languages=none"),
    ]
    env = {"PATH": SYSTEM_PATH, "LC_ALL": "C", "APT_CONFIG": str(config)}

    update = run(["apt-get", *apt_options, "update"], env=env)
    assert update.returncode == 0 and not re.search(r"^(W|E|Err):", update.stdout + update.stderr, re.M), update.stdout + update.stderr

    policy = ok(["apt-cache", *apt_options, "policy", PACKAGE], env=env)
    table = re.findall(r"^ (?:\*\*\*| {3}) (\S+) -?\d+$", policy.partition("Version table:")[2], re.M)  # "     3 500"
    assert sorted(table) == sorted(VERSIONS), policy
    assert re.search(r"^\s+Candidate: 3$", policy, re.M), policy

    shown = ok(["apt-cache", *apt_options, "show", f"{PACKAGE}=3"], env=env)
    assert "Depends: python3, systemd" in shown and "broken on purpose" in shown, shown

    dl = tmp_path / "download"
    dl.mkdir()
    ok(["apt-get", *apt_options, "download", f"{PACKAGE}=2"], env=env, cwd=dl)
    got = sorted(dl.iterdir())
    assert [p.name for p in got] == [deb_name("2")], got
    assert sha256(got[0]) == sha256(repo / deb_name("2"))


def _stub_tools(folder: Path, names: tuple[str, ...], calls: Path) -> Path:
    """Scripts that only record how they were called (one line each in `calls`)."""
    folder.mkdir()
    for name in names:
        stub = folder / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(calls))}\n')
        stub.chmod(0o755)
    return folder


def test_dpkg_installs_upgrades_downgrades_and_purges_in_a_scratch_root(repo: Path, tmp_path: Path) -> None:
    need("dpkg", "dpkg")
    helper = need("deb-systemd-helper", "init-system-helpers")
    if "DPKG_ROOT" not in Path(helper).read_text():
        missing(f"{helper} ignores DPKG_ROOT and would enable the unit on this machine (init-system-helpers >= 1.61)")
    root = tmp_path / "root"
    admin = root / "var" / "lib" / "dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").write_text("")
    # Nothing may reach this machine's systemd: the scripts must skip these under DPKG_ROOT.
    calls = tmp_path / "calls"
    stubs = _stub_tools(tmp_path / "stubs", ("systemctl", "deb-systemd-invoke", "invoke-rc.d"), calls)
    env = {"PATH": f"{stubs}:{SYSTEM_PATH}", "LC_ALL": "C"}
    dpkg = ["dpkg", f"--root={root}", f"--log={tmp_path / 'dpkg.log'}", "--force-depends", "--force-script-chrootless", "--force-unsafe-io"]
    wants = root / "etc/systemd/system/multi-user.target.wants" / UNIT
    host_wants = Path("/etc/systemd/system/multi-user.target.wants") / UNIT
    host_had_it = host_wants.exists()

    def status() -> str:
        res = run(["dpkg-query", f"--admindir={admin}", "-W", "-f=${db:Status-Abbrev}${Version}", PACKAGE])
        return res.stdout.strip() if res.returncode == 0 else "absent"

    for v in ("1", "2", "1"):  # install, upgrade, downgrade (the rollback path)
        ok([*dpkg, "-i", str(repo / deb_name(v))], env=env)
        assert status() == f"ii {v}"
        assert (root / DOC_ROOT.lstrip("/") / "index.html").read_text() == f"vaquero-probe {v}\n"
        assert wants.is_symlink() and os.readlink(wants) == UNIT_PATH, "the unit is not enabled in the scratch root"

    ok([*dpkg, "--remove", PACKAGE], env=env)
    assert status() == "rc 1" and not (root / DOC_ROOT.lstrip("/")).exists() and not (root / UNIT_PATH.lstrip("/")).exists()
    ok([*dpkg, "--purge", PACKAGE], env=env)
    assert status() == "absent"
    assert not wants.is_symlink(), "purge left the unit enabled"
    assert not calls.exists(), f"the scripts called the host's systemd tools: {calls.read_text()}"
    assert host_wants.exists() == host_had_it


def _scripts_under(systemd_running: bool, control: Path, steps: list[tuple[str, ...]], tmp_path: Path, dpkg_root: str = "") -> list[str]:
    """Run maintainer script steps (script, args...) in a mount namespace whose /run is a fresh tmpfs,
    with /run/systemd/system in it when `systemd_running`; the systemd tools are stubs. Their calls."""
    calls = tmp_path / f"calls-{systemd_running}-{bool(dpkg_root)}"
    stubs = _stub_tools(tmp_path / f"stubs-{systemd_running}-{bool(dpkg_root)}", ("systemctl", "deb-systemd-invoke", "deb-systemd-helper"), calls)
    lines = ["set -e", "mount -t tmpfs vaquero-probe-run /run"]
    if systemd_running:
        lines.append("mkdir -p /run/systemd/system")
    lines += [shlex.join(["sh", str(control / script), *args]) for script, *args in steps]
    env = {"PATH": f"{stubs}:{SYSTEM_PATH}", "LC_ALL": "C", **({"DPKG_ROOT": dpkg_root} if dpkg_root else {})}
    ok(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)], env=env)
    return calls.read_text().splitlines() if calls.exists() else []


def test_maintainer_scripts_enable_and_restart_only_under_a_running_systemd(repo: Path, tmp_path: Path) -> None:
    need_root("unshare --mount, to give the scripts a /run of their own")
    need("unshare", "util-linux")
    control = extract(repo / deb_name("2"), tmp_path / "pkg") / "DEBIAN"
    enable = [f"deb-systemd-helper unmask {UNIT}", f"deb-systemd-helper --quiet was-enabled {UNIT}", f"deb-systemd-helper enable {UNIT}"]
    reload = "systemctl --system daemon-reload"
    steps = [
        ("postinst", "configure", ""), ("postinst", "configure", "1"), ("prerm", "upgrade", "3"),
        ("prerm", "remove"), ("postrm", "remove"), ("postrm", "purge"),
    ]  # fmt: skip

    assert _scripts_under(True, control, steps, tmp_path) == [
        *enable, reload, f"deb-systemd-invoke start {UNIT}",  # first install: enabled and started
        *enable, reload, f"deb-systemd-invoke restart {UNIT}",  # upgrade or downgrade: restarted
        f"deb-systemd-invoke stop {UNIT}",  # removal stops it; an upgrade's prerm leaves it running
        reload,
        f"deb-systemd-helper purge {UNIT}",
    ]  # fmt: skip
    no_systemd = [*enable, *enable, f"deb-systemd-helper purge {UNIT}"]
    assert _scripts_under(False, control, steps, tmp_path) == no_systemd  # e.g. an image being built
    assert _scripts_under(True, control, steps, tmp_path, dpkg_root="/target") == no_systemd  # dpkg --root


def serve_and_get(cmd: list[str], port: int) -> bytes:
    """Start the responder `cmd`, GET / from it on `port` once it answers, stop it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={"PATH": SYSTEM_PATH})
    try:

        def answer() -> bytes:
            assert proc.poll() is None, f"{cmd} exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            with DIRECT.open(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                return bytes(resp.read())

        return wait_until(answer, timeout=30, what=f"{shlex.join(cmd)} to answer on port {port}")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_the_unit_serves_its_version_and_the_broken_one_exits(repo: Path, tmp_path: Path) -> None:
    python = need("/usr/bin/python3", "python3")
    assert BROKEN_VERSIONS == BROKEN
    for v in VERSIONS:
        root = extract(repo / deb_name(v), tmp_path / v)
        argv = shlex.split(read_unit(root / UNIT_PATH.lstrip("/"))["Service"]["ExecStart"])
        if v in BROKEN:
            res = run(argv)
            assert res.returncode != 0 and "broken on purpose" in res.stderr, res
            continue
        port = free_port()
        local = {str(PORT): str(port), DOC_ROOT: str(root / DOC_ROOT.lstrip("/")), "/usr/bin/python3": python}
        cmd = [*(local.get(a, a) for a in argv), "--bind", "127.0.0.1"]  # loopback only, on a free port
        assert serve_and_get(cmd, port) == f"vaquero-probe {v}\n".encode()
