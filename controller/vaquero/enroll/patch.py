"""The proposal when no GitHub token is set: one commit adding the host file, made with git in a
scratch clone of the applied revision and written as a patch (``git format-patch``) that ``git am``
and ``git apply`` take, under ``<data>/enrollments/``."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..childenv import git_env
from ..sot.source import resolve_rev

_IDENTITY = ("-c", "user.name=Vaquero", "-c", "user.email=vaquero@localhost", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null")


class PatchFailed(Exception):
    pass


def _git(cwd: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120, env=git_env())
    except subprocess.CalledProcessError as exc:
        raise PatchFailed(f"git {args[0]} failed: {(exc.stderr or exc.stdout).strip()[-500:]}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PatchFailed(f"git {args[0]} failed: {type(exc).__name__}") from None
    return out.stdout


def write_patch(dest: Path, *, repo_url: str | None, sha: str | None, root: Path, subdir: str, path: str, text: str, message: str, cache: Path | None) -> Path:
    """Commit ``text`` at ``subdir/path`` on top of the applied revision (``repo_url`` at ``sha``, else the
    applied folder ``root`` as one commit) and write the commit as a patch to ``dest``."""
    with tempfile.TemporaryDirectory(prefix="vaquero-enroll-") as tmp:
        work = Path(tmp) / "sot"
        if repo_url and sha:
            gitdir, sha = resolve_rev(repo_url, sha, cache)
            _git(Path(tmp), "clone", "--quiet", "--no-checkout", "--no-hardlinks", str(gitdir), str(work))
            _git(work, "checkout", "--quiet", "--detach", sha)
            target = work / subdir.strip("/") / path if subdir.strip("/") else work / path
        else:
            # Applied from a folder: the patch is relative to that folder.
            shutil.copytree(root, work, symlinks=True)
            _git(work, "init", "--quiet")
            _git(work, "add", "-A")
            _git(work, "commit", "--quiet", "--allow-empty", "-m", "the applied SoT")
            target = work / path
        if target.exists():
            raise PatchFailed(f"{target.relative_to(work)} already exists in the applied revision")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        _git(work, "add", "--", str(target.relative_to(work)))
        _git(work, "commit", "--quiet", "-m", message)
        patch = _git(work, "format-patch", "-1", "--stdout", "HEAD")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest = dest.with_name(dest.name + ".tmp")
    tmp_dest.write_text(patch)
    tmp_dest.replace(dest)
    return dest
