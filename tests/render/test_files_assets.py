from __future__ import annotations

import hashlib
import http.server
import logging
import os
import threading
from pathlib import Path

import pytest

from vaquero.render import AssetError, ensure_asset, write_file


def test_write_file_idempotent_check_and_atomic(tmp_path: Path):
    p = tmp_path / "sub" / "f.conf"
    r = write_file(p, "a\n", check=True)
    assert r.changed and not p.exists() and r.diff["after"] == "a\n" and r.diff["before"] == ""
    assert write_file(p, "a\n").changed and p.read_text() == "a\n"
    assert not write_file(p, "a\n").changed  # same bytes: no change
    assert not write_file(p, b"a\n", check=True).changed
    r = write_file(p, "b\n")
    assert r.changed and r.diff["before"] == "a\n" and r.diff["after"] == "b\n"
    assert write_file(p, "b\n", mode=0o600).changed and (p.stat().st_mode & 0o777) == 0o600
    assert sorted(os.listdir(p.parent)) == ["f.conf"]  # no temp files left


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_asset_copy_skip_and_mismatch(tmp_path: Path, caplog):
    src = tmp_path / "vmlinuz"
    src.write_bytes(b"kernel" * 1000)
    dest = tmp_path / "assets" / "p" / "vmlinuz"
    r = ensure_asset(str(src), dest, _sha(src.read_bytes()), check=True)
    assert r.changed and not dest.exists()
    r = ensure_asset(str(src), dest, _sha(src.read_bytes()))
    assert r.changed and dest.read_bytes() == src.read_bytes()
    assert not ensure_asset(str(src), dest, _sha(src.read_bytes())).changed  # hash matches: skipped
    # relative path against the SoT root, and file:// URLs
    assert not ensure_asset("vmlinuz", dest, _sha(src.read_bytes()), base=tmp_path).changed
    assert not ensure_asset(f"file://{src}", dest, _sha(src.read_bytes())).changed

    # A different file with the wrong hash: refused, dest keeps the old bytes, no partial file.
    other = tmp_path / "evil"
    other.write_bytes(b"evil")
    with caplog.at_level(logging.ERROR), pytest.raises(AssetError, match=r"does not match|expected"):
        ensure_asset(str(other), dest, "0" * 64, host="node1")
    assert dest.read_bytes() == src.read_bytes()
    assert [f.name for f in dest.parent.iterdir()] == ["vmlinuz"]
    assert any(getattr(r, "host", None) == "node1" for r in caplog.records)


def test_asset_missing(tmp_path: Path):
    with pytest.raises(AssetError, match="does not exist"):
        ensure_asset(str(tmp_path / "nope"), tmp_path / "d", "0" * 64)
    assert not (tmp_path / "d").exists()
    with pytest.raises(AssetError, match="unsupported"):
        ensure_asset("ftp://x/y", tmp_path / "d", "0" * 64)


@pytest.fixture
def http_server(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()

    class H(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_asset_download(http_server, tmp_path: Path):
    root, base = http_server
    data = os.urandom(3 << 20)
    (root / "initrd.img").write_bytes(data)
    dest = tmp_path / "a" / "initrd.img"
    assert ensure_asset(f"{base}/initrd.img", dest, _sha(data)).changed
    assert dest.read_bytes() == data
    with pytest.raises(AssetError, match="expected"):
        ensure_asset(f"{base}/initrd.img", tmp_path / "b" / "x", "f" * 64)
    assert list((tmp_path / "b").iterdir()) == []  # the partial download is gone
    with pytest.raises(AssetError, match="404"):
        ensure_asset(f"{base}/missing", tmp_path / "c", "f" * 64)
