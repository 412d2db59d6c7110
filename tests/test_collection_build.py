"""The vaquero.metal collection builds into a Galaxy tarball with the right metadata."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "ansible_collections" / "vaquero" / "metal"


def _ansible_galaxy() -> str:
    # Prefer the one next to the running interpreter (the project's venv).
    candidate = Path(sys.executable).parent / "ansible-galaxy"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ansible-galaxy")
    if not found:
        pytest.fail("ansible-galaxy not found: run scripts/setup.sh")
    return found


@pytest.fixture(scope="module")
def galaxy_meta() -> dict:
    return yaml.safe_load((COLLECTION / "galaxy.yml").read_text())


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # An empty config in a scratch cwd: neither the repo's ansible.cfg nor a user's one applies.
    cfg = out / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [_ansible_galaxy(), "collection", "build", str(COLLECTION), "--output-path", str(out / "dist")],
        cwd=out,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"ansible-galaxy collection build failed:\n{proc.stdout}\n{proc.stderr}"
    built = list((out / "dist").glob("vaquero-metal-*.tar.gz"))
    assert len(built) == 1, f"expected one tarball, got {built}"
    return built[0]


def _member_names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {m.name.removeprefix("./") for m in tar.getmembers()}


def _read_json(path: Path, member: str) -> dict:
    with tarfile.open(path) as tar:
        f = tar.extractfile(member)
        assert f is not None, f"{member} is not a regular file in {path.name}"
        return json.load(f)


def test_tarball_name_matches_galaxy_version(tarball: Path, galaxy_meta: dict) -> None:
    assert tarball.name == f"vaquero-metal-{galaxy_meta['version']}.tar.gz"


def test_manifest_has_namespace_name_and_version(tarball: Path, galaxy_meta: dict) -> None:
    names = _member_names(tarball)
    assert "MANIFEST.json" in names
    assert "FILES.json" in names
    info = _read_json(tarball, "MANIFEST.json")["collection_info"]
    assert info["namespace"] == "vaquero"
    assert info["name"] == "metal"
    assert info["version"] == galaxy_meta["version"]
    # galaxy.yml names the licence by its full text (license_file), which excludes SPDX ids.
    assert info["license_file"] == "COPYING" and info["license"] == []
    with tarfile.open(tarball) as tar:
        f = tar.extractfile("COPYING")
        assert f is not None and b"GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007" in f.read(4096)
    assert info["dependencies"] == {}
    assert info["repository"], "production ansible-lint profile needs a repository key"


def test_tarball_ships_runtime_metadata_and_changelog(tarball: Path) -> None:
    names = _member_names(tarball)
    for member in ("meta/runtime.yml", "README.md", "changelogs/changelog.yaml", "changelogs/config.yaml"):
        assert member in names, f"{member} missing from {tarball.name}"


def test_files_json_checksums_every_file(tarball: Path) -> None:
    files = _read_json(tarball, "FILES.json")["files"]
    listed = {f["name"] for f in files if f["ftype"] == "file"}
    with tarfile.open(tarball) as tar:
        regular = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
    assert regular - {"MANIFEST.json", "FILES.json"} == listed


def test_tarball_has_no_build_debris(tarball: Path) -> None:
    for name in _member_names(tarball):
        parts = name.split("/")
        assert "__pycache__" not in parts, name
        assert not name.endswith((".pyc", ".tar.gz")), name
        assert not name.startswith("tests/output"), name
