"""Where a SoT comes from: a folder, or a git repository at a revision resolved to one commit SHA.

A git SoT is immutable by SHA: the revision (branch, tag, short SHA) is resolved once, then only
that commit's tree is read, extracted into a content-addressed cache (``<cache>/trees/<sha>``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vaquero.childenv import git_env

from .errors import SourceError

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Resolved:
    root: Path
    sha: str | None
    label: str


def cache_dir() -> Path:
    base = os.environ.get("VAQUERO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vaquero")
    return Path(base)


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=300, env=git_env())
    except FileNotFoundError:
        raise SourceError("git is not installed") from None
    except subprocess.CalledProcessError as exc:
        raise SourceError(f"git {args[0]} failed: {exc.stderr.strip() or exc.stdout.strip()}") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"git {args[0]} timed out") from None
    return out.stdout.strip()


def split_spec(spec: str) -> tuple[str, str | None]:
    """'URL@REV' -> (URL, REV); 'git@host:org/repo.git' (no revision) -> (spec, None)."""
    if "@" in spec:
        url, rev = spec.rsplit("@", 1)
        if rev and url and "/" not in rev and ":" not in rev:
            return url, rev
    return spec, None


def _mirror(url: str, cache: Path) -> Path:
    """A bare mirror of the repository in the cache, fetched when the revision is not yet in it."""
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    mirror = cache / "git" / key
    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=mirror.parent, prefix=".clone-"))
        try:
            _git("clone", "--quiet", "--mirror", url, str(tmp))
            os.replace(tmp, mirror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return mirror


def _rev_parse(gitdir: Path, rev: str) -> str:
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=gitdir)
    except SourceError:
        return ""


def resolve_rev(url: str, rev: str, cache: Path | None = None) -> tuple[Path, str]:
    """Resolve REV in the repository at URL to a full commit SHA; returns (git dir, sha)."""
    cache = cache or cache_dir()
    local = Path(url)
    if local.is_dir() and not url.startswith(("http://", "https://", "ssh://", "git://", "file://")):
        gitdir = Path(_git("rev-parse", "--absolute-git-dir", cwd=local))
    else:
        gitdir = _mirror(url, cache)
    mirrored = gitdir.is_relative_to(cache)
    # A full SHA already in the mirror is immutable; any other name (branch, tag) may have moved.
    sha = _rev_parse(gitdir, rev) if _SHA_RE.match(rev) or not mirrored else ""
    if not sha and mirrored:
        _git("fetch", "--quiet", "--prune", "origin", "+refs/*:refs/*", cwd=gitdir)
        if _SHA_RE.match(rev):
            # A pushed SHA may not be on any ref we fetched (e.g. a force-pushed branch): ask for it.
            subprocess.run(["git", "fetch", "--quiet", "origin", rev], cwd=gitdir, capture_output=True, timeout=300, env=git_env())
        sha = _rev_parse(gitdir, rev)
    if not sha:
        raise SourceError(f"{url}: revision {rev!r} does not exist")
    return gitdir, sha


def checkout(gitdir: Path, sha: str, cache: Path | None = None) -> Path:
    """Extract the tree of commit `sha` into the content-addressed cache (once) and return it."""
    cache = cache or cache_dir()
    tree = cache / "trees" / sha
    if tree.is_dir():
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=tree.parent, prefix=f".{sha[:12]}-"))
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=gitdir, check=True, capture_output=True, timeout=300, env=git_env()).stdout
        with tempfile.TemporaryFile() as fh:
            fh.write(archive)
            fh.seek(0)
            with tarfile.open(fileobj=fh) as tar:
                tar.extractall(tmp, filter="data")
        os.replace(tmp, tree)
    except subprocess.CalledProcessError as exc:
        raise SourceError(f"git archive {sha} failed: {exc.stderr.decode(errors='replace').strip()}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def resolve(spec: str, *, subdir: str = "", cache: Path | None = None) -> Resolved:
    """A folder path, or URL@REV (URL may be a local repository path). `subdir` is the SoT's folder in the repo."""
    url, rev = split_spec(spec)
    if rev is None:
        path = Path(spec)
        if not path.exists():
            raise SourceError(f"{spec}: no such folder (for a git SoT write URL@REVISION)")
        return Resolved(path, None, spec)
    gitdir, sha = resolve_rev(url, rev, cache)
    tree = checkout(gitdir, sha, cache)
    root = tree / subdir if subdir else tree
    if not root.is_dir():
        raise SourceError(f"{url}@{sha[:12]}: folder {subdir!r} does not exist in that commit")
    return Resolved(root, sha, f"{url}@{sha[:12]}")
