"""Where a SoT comes from: a folder, or a git repository at a revision resolved to one commit SHA.

A git SoT is immutable by SHA: the revision (branch, tag, short SHA) is resolved once, then only
that commit's tree is read, extracted into a content-addressed cache (``<cache>/trees/<sha>``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vaquero.childenv import git_env

from .errors import SoTError, SoTInvalid, SourceError

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


def tree_size(gitdir: Path, sha: str) -> int:
    """Bytes of all files in commit `sha`, read from git's index of the tree before anything is extracted."""
    total = 0
    for line in _git("ls-tree", "-r", "-l", "--full-tree", sha, cwd=gitdir).splitlines():
        size = line.split("\t", 1)[0].split()[-1] if "\t" in line else "-"
        if size.isdigit():
            total += int(size)
    return total


def _links_file(tree: Path) -> Path:
    return tree.parent / f"{tree.name}.links.json"


def checkout(gitdir: Path, sha: str, cache: Path | None = None) -> Path:
    """Extract the tree of commit `sha` into the content-addressed cache (once) and return it.

    Links are never extracted (a link may point anywhere on the controller); their names are kept
    beside the tree so a SoT that contains one is refused with their names (see `refuse_links`).
    """
    cache = cache or cache_dir()
    tree = cache / "trees" / sha
    if tree.is_dir():
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=tree.parent, prefix=f".{sha[:12]}-"))
    links: list[str] = []

    def no_links(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if not (member.isfile() or member.isdir()):
            links.append(member.name)
            return None
        return tarfile.data_filter(member, dest)

    try:
        with tempfile.TemporaryFile() as fh:
            subprocess.run(["git", "archive", "--format=tar", sha], cwd=gitdir, check=True, stdout=fh, stderr=subprocess.PIPE, timeout=300, env=git_env())
            fh.seek(0)
            with tarfile.open(fileobj=fh) as tar:
                tar.extractall(tmp, filter=no_links)
        _links_file(tree).write_text(json.dumps(sorted(links)))
        os.replace(tmp, tree)
    except subprocess.CalledProcessError as exc:
        raise SourceError(f"git archive {sha} failed: {exc.stderr.decode(errors='replace').strip()}") from None
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"commit {sha[:12]} cannot be extracted: {type(exc).__name__}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def _links(tree: Path) -> list[str]:
    try:
        names = json.loads(_links_file(tree).read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def refuse_links(tree: Path, root: Path) -> None:
    """Raise SoTInvalid naming each link (or special file) of the git tree that lies in the SoT folder `root`."""
    names = _links(tree)
    base = PurePosixPath(root.relative_to(tree).as_posix())
    errors = []
    for name in names:
        rel = PurePosixPath(name)
        if str(base) == "." or rel.is_relative_to(base):
            shown = rel.as_posix() if str(base) == "." else rel.relative_to(base).as_posix()
            errors.append(SoTError(shown, 1, (), f"file {shown} is a symlink (or another special file): a SoT must not contain links"))
    if errors:
        raise SoTInvalid(errors)


def check_subdir(subdir: str) -> str:
    """A SoT folder inside a repository: relative, normalised, no '..', no control characters."""
    if subdir in ("", "."):
        return ""
    if len(subdir) > 512 or not subdir.isprintable() or "\\" in subdir:
        raise SourceError("subdir must be a short relative path of printable characters")
    path = PurePosixPath(subdir)
    if path.is_absolute() or any(part in ("..", ".") for part in subdir.split("/")) or subdir.startswith("-"):
        raise SourceError(f"subdir {subdir[:80]!r} must be a relative path inside the repository (no '..', not absolute)")
    return path.as_posix()


def contained(tree: Path, subdir: str) -> Path:
    """The SoT folder `subdir` of a fetched tree, checked again at use: inside the tree, through no link."""
    rel = check_subdir(subdir)
    root = tree / rel if rel else tree
    for link in _links(tree):
        if rel and PurePosixPath(rel).is_relative_to(link):
            raise SourceError(f"subdir {rel!r} goes through {link}, a symlink")
    here = tree
    for part in PurePosixPath(rel).parts:
        here = here / part
        if here.is_symlink():
            raise SourceError(f"subdir {rel!r}: {here.relative_to(tree).as_posix()} is a symlink")
    try:
        inside = root.resolve(strict=True).is_relative_to(tree.resolve(strict=True))
    except (OSError, RuntimeError):
        raise SourceError(f"folder {rel!r} does not exist in that revision") from None
    if not inside:
        raise SourceError(f"subdir {rel!r} leaves the repository")
    if not root.is_dir():
        raise SourceError(f"folder {rel!r} does not exist in that revision")
    return root


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
    try:
        root = contained(tree, subdir)
    except SourceError as exc:
        raise SourceError(f"{url}@{sha[:12]}: {exc}") from None
    refuse_links(tree, root)
    return Resolved(root, sha, f"{url}@{sha[:12]}")


def tree_digest(root: Path) -> str:
    """A content hash of a folder (paths and bytes, .git skipped): the id of a local SoT revision."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0")
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"\1unreadable")
            h.update(b"\0")
    return h.hexdigest()
