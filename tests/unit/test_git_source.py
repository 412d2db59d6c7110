"""Git SoTs: every read resolves to one commit SHA and reads only that commit, from a real repo."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vaquero.sot import SourceError, load_spec
from vaquero.sot.source import split_spec

REPO = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def sot_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("VAQUERO_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "sot"
    shutil.copytree(REPO / "inventories" / "lab", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "lab")
    first = git(repo, "rev-parse", "HEAD")
    path = repo / "profiles/lab-linux.yaml"
    path.write_text(path.read_text().replace('version: "1"', 'version: "2"'))
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "upgrade")
    second = git(repo, "rev-parse", "HEAD")
    return repo, first, second


def test_split_spec():
    assert split_spec("/srv/sot@main") == ("/srv/sot", "main")
    assert split_spec("git@example.com:org/sot.git") == ("git@example.com:org/sot.git", None)
    assert split_spec("git@example.com:org/sot.git@abc123") == ("git@example.com:org/sot.git", "abc123")


def test_revision_resolves_to_full_sha_and_reads_only_that_commit(sot_repo):
    repo, first, second = sot_repo
    # A dirty working tree must not leak into a git read.
    path = repo / "profiles/lab-linux.yaml"
    path.write_text(path.read_text().replace('version: "2"', 'version: "dirty"'))
    sot = load_spec(f"{repo}@main")
    assert sot.sha == second
    assert sot.profiles["lab-linux"].version == "2"
    old = load_spec(f"{repo}@{first[:10]}")
    assert old.sha == first and old.profiles["lab-linux"].version == "1"


def test_file_url_is_mirrored_and_pinned(sot_repo):
    repo, _, second = sot_repo
    sot = load_spec(f"file://{repo}@{second}")
    assert sot.sha == second
    # The branch moves on; the SHA still reads the same tree (content-addressed cache).
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "later")
    again = load_spec(f"file://{repo}@{second}")
    assert again.root == sot.root and again.profiles["lab-linux"].version == "2"
    latest = load_spec(f"file://{repo}@main")  # a branch name fetches, then resolves anew
    assert latest.sha == git(repo, "rev-parse", "HEAD") != second


def test_unknown_revision_is_a_clear_error(sot_repo):
    repo, _, _ = sot_repo
    with pytest.raises(SourceError, match="does not exist"):
        load_spec(f"{repo}@{'0' * 40}")
    with pytest.raises(SourceError, match="does not exist"):
        load_spec(f"file://{repo}@no-such-branch")


def test_cli_plan_between_two_shas(sot_repo):
    repo, first, second = sot_repo
    res = subprocess.run(
        [sys.executable, "-m", "vaquero.cli", "plan", "--repo", str(repo), first, second], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, res.stderr
    assert f"@{first[:12]} -> " in res.stdout and "profile lab-linux: version: 1 -> 2" in res.stdout
    res = subprocess.run([sys.executable, "-m", "vaquero.cli", "plan", "--repo", str(repo), "-", second], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Plan: 4 to add" in res.stdout
