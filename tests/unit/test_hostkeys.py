"""vaquero.hostkeys: the SSH host keys an installed OS reports at its phone home, checked before
they reach a known_hosts file. Keys made by the real ssh-keygen."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from requirements import need

from vaquero.hostkeys import MAX_KEYS, HostKeyError, host_keys, known_hosts


def keygen(tmp_path: Path, kind: str) -> str:
    need("ssh-keygen", "openssh-client")
    path = tmp_path / f"host_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@node1", "-f", str(path)], check=True, capture_output=True, timeout=60)
    return Path(f"{path}.pub").read_text().strip()


def test_real_keys_are_kept_without_their_comment_sorted_and_once(tmp_path: Path) -> None:
    ed, ec, rsa = keygen(tmp_path, "ed25519"), keygen(tmp_path, "ecdsa"), keygen(tmp_path, "rsa")
    got = host_keys([rsa, ed, ec, ed])
    assert got == sorted(" ".join(k.split()[:2]) for k in (ed, ec, rsa))
    assert all("root@node1" not in k for k in got)
    assert host_keys(None) == [] and host_keys([]) == []


def test_a_key_whose_data_is_another_type_or_not_a_key_is_refused(tmp_path: Path) -> None:
    ed = keygen(tmp_path, "ed25519").split()
    for bad, why in (
        (f"ecdsa-sha2-nistp256 {ed[1]}", "is not a ecdsa-sha2-nistp256 key"),  # an ed25519 blob under another type's name
        (f"ssh-ed25519 {base64.b64encode(b'x' * 40).decode()}", "is not a ssh-ed25519 key"),
        (f"ssh-dss {ed[1]}", "known key type"),
        (f"ssh-ed25519 {ed[1]}\nssh-ed25519 {ed[1]}", "known key type"),  # one line per key
        (f"ssh-ed25519 {ed[1][:-3]}!!!", "known key type"),
        ("", "known key type"),
    ):
        with pytest.raises(HostKeyError, match=why):
            host_keys([bad])
    for bad_list in ("ssh-ed25519 AAAA", {"k": 1}, [1], [" ".join(ed)] * (MAX_KEYS + 1)):
        with pytest.raises(HostKeyError):
            host_keys(bad_list)


def test_known_hosts_lines_name_the_address_and_a_non_default_port(tmp_path: Path) -> None:
    ed = " ".join(keygen(tmp_path, "ed25519").split()[:2])
    assert known_hosts("10.90.0.11", 22, [ed]) == f"10.90.0.11 {ed}\n"
    assert known_hosts("10.90.0.11", 2222, [ed]) == f"[10.90.0.11]:2222 {ed}\n"
    assert known_hosts("fd00::11", 22, [ed]) == f"fd00::11 {ed}\n"
    for address in ("node1", "*", "10.90.0.*", "10.90.0.11,10.90.0.12"):  # never a pattern or a name
        with pytest.raises(ValueError):
            known_hosts(address, 22, [ed])
    with pytest.raises(HostKeyError):
        known_hosts("10.90.0.11", 22, ["ssh-ed25519 bm90IGEga2V5"])
