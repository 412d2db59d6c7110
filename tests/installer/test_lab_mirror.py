"""The lab's Debian mirror (vaquero.lab.mirror) against a real HTTP upstream on loopback, and the
installer archive check's pieces (vaquero.lab.installer): which udebs d-i will fetch, what its
initrd already holds. Fast; no QEMU, no network namespace, no outside access."""

from __future__ import annotations

import gzip
import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from requirements import need

from vaquero.lab import mirror as mirror_mod
from vaquero.lab.installer import initrd_packages, needed_udebs
from vaquero.lab.kernel import LabError
from vaquero.lab.mirror import DebianMirror, apt_upstream

POOL_UDEB = "pool/main/a/apt-setup/apt-mirror-setup_0.182_all.udeb"


class _Upstream(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A static archive tree (`/debian/dists`, `/debian/pool`) served on loopback; the list records the paths asked."""
    root = tmp_path / "archive"
    (root / "debian" / "dists" / "bookworm").mkdir(parents=True)
    (root / "debian" / "dists" / "bookworm" / "Release").write_text("Suite: bookworm\n")
    udeb = root / "debian" / POOL_UDEB
    udeb.parent.mkdir(parents=True)
    udeb.write_bytes(b"!<arch>\n" + bytes(range(256)) * 1000)
    (root / "secret.txt").write_text("not for guests\n")
    asked: list[str] = []

    class Handler(_Upstream):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def send_head(self):  # type: ignore[no-untyped-def]
            asked.append(self.path)
            return super().send_head()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/debian", root, asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(upstream: tuple[str, Path, list[str]], tmp_path: Path) -> Iterator[DebianMirror]:
    m = DebianMirror(netns=None, address="127.0.0.1", port=0, upstream=upstream[0], cache=tmp_path / "cache", access_log=tmp_path / "access.log")
    m.start()
    try:
        yield m
    finally:
        m.stop()


def test_get_and_head_pass_through_and_packages_are_kept_on_disk(mirror: DebianMirror, upstream: tuple[str, Path, list[str]]) -> None:
    _, root, asked = upstream
    body = (root / "debian" / POOL_UDEB).read_bytes()
    r = httpx.get(f"{mirror.url}/dists/bookworm/Release")
    assert r.status_code == 200 and r.text == "Suite: bookworm\n"
    head = httpx.head(f"{mirror.url}/{POOL_UDEB}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body)) and head.content == b""
    r = httpx.get(f"{mirror.url}/{POOL_UDEB}")
    assert r.status_code == 200 and r.content == body
    # The second GET comes from the cache: the upstream file is gone and was not asked again.
    (root / "debian" / POOL_UDEB).unlink()
    before = len(asked)
    r = httpx.get(f"{mirror.url}/{POOL_UDEB}")
    assert r.status_code == 200 and r.content == body and len(asked) == before
    # Indexes are never cached: a missing one is the upstream's 404.
    assert httpx.get(f"{mirror.url}/dists/bookworm/InRelease").status_code == 404
    stats = mirror.stats.as_dict()
    assert stats["cache_hits"] == 1 and stats["bytes_upstream"] == len("Suite: bookworm\n") + len(body)
    assert stats["bytes_sent"] == len("Suite: bookworm\n") + 2 * len(body)
    assert f"GET /debian/{POOL_UDEB} 200 {len(body)} cache" in Path(mirror.access_log or "").read_text()


@pytest.mark.parametrize(
    "path",
    [
        "/secret.txt",
        "/debian/../secret.txt",
        "/debian/dists/../../secret.txt",
        "/debian/dists/bookworm/Release?x=1",
        "/debian/",
        "/other/dists/x",
        "/debian/pool/a b",
    ],
)
def test_only_archive_paths_are_forwarded(mirror: DebianMirror, upstream: tuple[str, Path, list[str]], path: str) -> None:
    with socket.create_connection(("127.0.0.1", mirror.port), timeout=5) as s:
        # raw, so the client does not normalise the path before it is sent
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith((b"HTTP/1.1 403", b"HTTP/1.0 400", b"HTTP/1.1 400")), answer[:200]
    assert upstream[2] == [] and b"not for guests" not in answer


def test_other_methods_are_refused(mirror: DebianMirror, upstream: tuple[str, Path, list[str]]) -> None:
    for method in ("POST", "PUT", "DELETE"):
        assert httpx.request(method, f"{mirror.url}/dists/bookworm/Release").status_code == 405
    assert upstream[2] == [] and mirror.stats.as_dict()["refused"] == 3


def test_an_answer_past_the_bound_is_refused_and_not_cached(mirror: DebianMirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_mod, "MAX_BYTES", 1000)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{mirror.url}/{POOL_UDEB}").raise_for_status()
    assert mirror.cache_dir is not None and not (mirror.cache_dir / POOL_UDEB).exists()


def test_a_dead_upstream_is_a_502(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connections are refused
        m = DebianMirror(netns=None, address="127.0.0.1", port=0, upstream=f"http://127.0.0.1:{dead}/debian", cache=None).start()
        try:
            assert httpx.get(f"{m.url}/dists/bookworm/Release").status_code == 502
        finally:
            m.stop()


def test_apt_upstream_reads_deb822_then_one_line_sources(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://archive.example.test/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example.test/debian\nSuites: bookworm\n\n"
        "Types: deb\n# a comment\nURIs: http://archive.example.test/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert apt_upstream("bookworm", apt) == "http://archive.example.test/debian"
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text("# deb http://old.example.test/debian bookworm main\ndeb [arch=amd64] http://one.example.test/debian bookworm main\n")
    assert apt_upstream("bookworm", apt) == "http://one.example.test/debian"
    with pytest.raises(LabError, match="no http\\(s\\) apt source for suite 'trixie'"):
        apt_upstream("trixie", apt)


INDEX = """\
Package: anna
Priority: required
Filename: pool/main/a/anna/anna_1_amd64.udeb

Package: partman-ext3
Priority: standard
Depends: partman-basicfilesystems, e2fsprogs-udeb | ext3-tools
Filename: pool/main/p/partman-ext3/partman-ext3_1_all.udeb

Package: partman-basicfilesystems
Priority: standard
Depends: partman-base
Filename: pool/main/p/partman-basicfilesystems/pb_1_amd64.udeb

Package: partman-base
Priority: standard
Filename: pool/main/p/partman-base/partman-base_1_amd64.udeb

Package: e2fsprogs-udeb
Priority: optional
Depends: libc6-udeb
Filename: pool/main/e/e2fsprogs/e2fsprogs-udeb_1_amd64.udeb

Package: ext4-modules-6.1.0-50-amd64-di
Priority: standard
Kernel-Version: 6.1.0-50-amd64
Provides: ext4-modules
Filename: pool/main/l/linux/ext4-modules-6.1.0-50.udeb

Package: ext4-modules-6.1.0-47-amd64-di
Priority: standard
Kernel-Version: 6.1.0-47-amd64
Filename: pool/main/l/linux/ext4-modules-6.1.0-47.udeb

Package: apt-mirror-setup
Priority: optional
Filename: pool/main/a/apt-setup/apt-mirror-setup_1_all.udeb

Package: libc6-udeb
Priority: optional
Provides: libc6-udeb-virtual
Filename: pool/main/g/glibc/libc6-udeb_1_amd64.udeb

Package: fancy-extra
Priority: optional
Filename: pool/main/f/fancy/fancy_1_all.udeb
"""


def test_needed_udebs_follow_priorities_dependencies_and_the_kernel() -> None:
    got = needed_udebs(INDEX, installed={"anna", "libc6-udeb", "partman-base"}, kernel_abi="6.1.0-50-amd64")
    assert got == [
        "pool/main/a/apt-setup/apt-mirror-setup_1_all.udeb",  # queued by choose-mirror
        "pool/main/e/e2fsprogs/e2fsprogs-udeb_1_amd64.udeb",  # a dependency, optional itself
        "pool/main/l/linux/ext4-modules-6.1.0-50.udeb",  # the initrd's kernel only
        "pool/main/p/partman-basicfilesystems/pb_1_amd64.udeb",
        "pool/main/p/partman-ext3/partman-ext3_1_all.udeb",
    ]


def test_initrd_packages_reads_status_and_kernel_from_the_cpio(tmp_path: Path) -> None:
    need("cpio")
    tree = tmp_path / "tree"
    (tree / "var/lib/dpkg").mkdir(parents=True)
    (tree / "var/lib/dpkg/status").write_text("Package: anna\nStatus: install ok installed\n\nPackage: libc6-udeb\nStatus: install ok installed\n")
    (tree / "lib/modules/6.1.0-50-amd64/kernel").mkdir(parents=True)
    (tree / "init").write_text("#!/bin/sh\n" * 100)
    names = "\n".join(str(p.relative_to(tree)) for p in sorted(tree.rglob("*"))) + "\n"
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=names.encode(), capture_output=True, check=True).stdout
    initrd = tmp_path / "initrd.gz"
    initrd.write_bytes(gzip.compress(cpio))
    assert initrd_packages(initrd) == ({"anna", "libc6-udeb"}, "6.1.0-50-amd64")
    initrd.write_bytes(gzip.compress(b"not a cpio archive at all, but long enough for one header" * 3))
    with pytest.raises(LabError, match="not a gzip'd newc cpio"):
        initrd_packages(initrd)
