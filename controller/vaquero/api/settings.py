"""Server settings and API tokens. Secrets are kept out of reprs, logs, responses and exceptions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# The tokens file is shared with the federation, so it lives below both; the names stay importable here.
from vaquero.tokens import ROLES as ROLES
from vaquero.tokens import TOKENS_ENV as TOKENS_ENV
from vaquero.tokens import SettingsError as SettingsError
from vaquero.tokens import Token as Token
from vaquero.tokens import Tokens as Tokens


def read_secret(path: str | Path, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{what} file {path}: {exc.strerror}") from None
    if not value:
        raise SettingsError(f"{what} file {path} is empty")
    return value


def repo_name_of(url: str) -> str | None:
    """'https://github.com/org/sot.git' or 'git@github.com:org/sot.git' -> 'org/sot'."""
    m = re.search(r"[:/]([^/:]+)/([^/]+?)(?:\.git)?/?$", url)
    return f"{m.group(1)}/{m.group(2)}" if m else None


@dataclass
class Settings:
    data_dir: Path
    tokens: Tokens = field(default_factory=lambda: Tokens([]))
    webhook_secret: str | None = field(default=None, repr=False)
    repo_url: str | None = None  # the git URL fetched on a push (never the URL in the payload)
    repo_name: str | None = None  # owner/name as GitHub spells it; derived from repo_url when not given
    branch: str = "main"
    subdir: str = ""
    github_token: str | None = field(default=None, repr=False)
    github_api: str = "https://api.github.com"
    public_url: str | None = None  # where people reach this API: links in commit statuses
    cache_dir: Path | None = None
    # What a manual trigger (POST /v1/revisions) may name besides repo_url: git URL prefixes and server folders.
    allowed_sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.cache_dir is None:
            self.cache_dir = self.data_dir / "cache"
        if self.repo_url and not self.repo_name:
            self.repo_name = repo_name_of(self.repo_url)

    @property
    def cache(self) -> Path:
        assert self.cache_dir is not None
        return Path(self.cache_dir)

    def source_allowed(self, source: str) -> bool:
        """A manual trigger may only name the configured repository, or a URL prefix / folder given with --allow-source."""
        allowed = [*self.allowed_sources, *([self.repo_url] if self.repo_url else [])]
        if source.startswith("/"):
            try:
                path = Path(source).resolve()
            except (OSError, RuntimeError, ValueError):
                return False
            return any(a.startswith("/") and path.is_relative_to(Path(a).resolve()) for a in allowed)
        norm = source.rstrip("/").removesuffix(".git")
        for a in allowed:
            if a.startswith("/"):
                continue
            if norm == a.rstrip("/").removesuffix(".git") or (a.endswith("/") and source.startswith(a) and ".." not in source[len(a) :]):
                return True
        return False

    def scrub(self, text: str) -> str:
        """Replace any configured secret in `text` (an error message from git, say) with ***."""
        for secret in (self.webhook_secret, self.github_token):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text
