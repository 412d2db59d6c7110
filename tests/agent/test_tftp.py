"""The agent's TFTP server on loopback, with curl (a C client) as the client."""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from vaquero.agent.tftp import TftpServer


@pytest.fixture
def tftp(tmp_path: Path):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (run scripts/setup.sh)")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ipxe.efi").write_bytes(bytes(range(256)) * 3000 + b"tail")  # 768004 bytes: many blocks, short last one
    (root / "exact").write_bytes(b"x" * 1432 * 3)  # a multiple of the block size: empty final block
    (root / "sub" / "undionly.kpxe").write_bytes(b"undi")
    (tmp_path / "secret").write_text("secret")
    srv = TftpServer(root)
    _host, port = srv.start(("127.0.0.1", 0))
    yield srv, port, root, tmp_path
    srv.stop()


def fetch(port: int, name: str, out: Path, blksize: int = 1432) -> int:
    return subprocess.run(
        ["curl", "-s", "--max-time", "20", "--path-as-is", "--tftp-blksize", str(blksize), "-o", str(out), f"tftp://127.0.0.1:{port}/{name}"]
    ).returncode


@pytest.mark.parametrize("blksize", [512, 1432, 8192])
def test_serves_files_from_memory(tftp, blksize):
    _srv, port, root, tmp = tftp
    for name in ("ipxe.efi", "exact", "sub/undionly.kpxe"):
        out = tmp / f"out-{blksize}"
        assert fetch(port, name, out, blksize) == 0, name
        assert out.read_bytes() == (root / name).read_bytes(), name


def test_concurrent_fetches(tftp):
    _srv, port, root, tmp = tftp
    procs = [
        subprocess.Popen(["curl", "-s", "--max-time", "30", "--tftp-blksize", "1432", "-o", str(tmp / f"c{i}"), f"tftp://127.0.0.1:{port}/ipxe.efi"])
        for i in range(10)
    ]
    assert [p.wait() for p in procs] == [0] * 10
    assert all((tmp / f"c{i}").read_bytes() == (root / "ipxe.efi").read_bytes() for i in range(10))


def test_refuses_escapes_and_unknown(tftp, caplog):
    _srv, port, _root, tmp = tftp
    with caplog.at_level(logging.WARNING):
        for name in ("../secret", "sub/../../secret", "/etc/passwd", "//etc/passwd", "nope", "sub"):
            out = tmp / "x"
            assert fetch(port, name, out) != 0, name
            assert not out.exists() or b"secret" not in out.read_bytes()
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("path escape refused" in m for m in msgs) >= 3
    assert any("no such file" in m for m in msgs)
    assert all(getattr(r, "host", None) == "127.0.0.1" for r in caplog.records if r.name == "vaquero.agent.tftp")


def test_refuses_uploads(tftp):
    _srv, port, root, _tmp = tftp
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"\x00\x02evil\x00octet\x00", ("127.0.0.1", port))  # WRQ
    data, _ = s.recvfrom(1024)
    s.close()
    assert struct.unpack("!H", data[:2])[0] == 5  # ERROR
    assert not (root / "evil").exists()


def test_reload_picks_up_new_files(tftp):
    srv, port, root, tmp = tftp
    (root / "new.bin").write_bytes(b"new")
    assert fetch(port, "new.bin", tmp / "n") != 0
    srv.cache.reload()
    assert fetch(port, "new.bin", tmp / "n") == 0 and (tmp / "n").read_bytes() == b"new"


def test_block_numbers_wrap():
    from vaquero.agent.tftp import build_packets

    pkts = build_packets(b"x" * (512 * 65536 + 3), 512)
    assert len(pkts) == 65537
    assert pkts[0][:4] == b"\x00\x03\x00\x01" and pkts[65534][:4] == b"\x00\x03\xff\xff"
    assert pkts[65535][:4] == b"\x00\x03\x00\x00" and pkts[65536] == b"\x00\x03\x00\x01xxx"
    assert build_packets(b"y" * 1024, 512)[-1] == b"\x00\x03\x00\x03"  # exact multiple: empty final block


def test_resends_when_ack_is_lost(tftp):
    _srv, port, root, _tmp = tftp
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(b"\x00\x01ipxe.efi\x00octet\x00blksize\x001432\x00", ("127.0.0.1", port))
    oack, server = s.recvfrom(2048)
    assert oack[:2] == b"\x00\x06"
    s.sendto(b"\x00\x04\x00\x00", server)  # ACK 0
    first, _ = s.recvfrom(2048)
    assert first[:4] == b"\x00\x03\x00\x01" and len(first) == 4 + 1432
    again, _ = s.recvfrom(2048)  # no ACK sent: the same block comes again after the timeout
    assert again == first
    s.sendto(b"\x00\x05\x00\x00stop\x00", server)  # ERROR ends the transfer
    s.close()
    assert first[4:] == (root / "ipxe.efi").read_bytes()[:1432]
