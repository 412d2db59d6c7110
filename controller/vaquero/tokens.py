"""Bearer tokens and their roles: the tokens file (lines ``name:role:token``) the API and the
federation both read. Below both, so neither imports the other for it. Secrets are kept out of
reprs, logs, responses and exceptions."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# `agent`: a site agent's own token (its name is the agent's name in its Site); it may use only the
# /v1/agents link for that agent, nothing of the operator API.
ROLES = {"agent": -1, "read": 0, "approve": 1, "admin": 2}
TOKENS_ENV = "VAQUERO_API_TOKENS"


class SettingsError(Exception):
    """A setting is missing or malformed; the message never quotes a secret."""


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    digest: bytes = field(repr=False)  # sha256 of the secret: equal length for every compare

    def may(self, role: str) -> bool:
        if role == "agent" or self.role == "agent":
            return self.role == role
        return ROLES[self.role] >= ROLES[role]


class Tokens:
    """Bearer tokens: lines `name:role:token` (roles agent | read | approve | admin), '#' comments allowed."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens

    def __repr__(self) -> str:
        return f"Tokens({[f'{t.name}:{t.role}' for t in self._tokens]})"

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._tokens]

    @classmethod
    def parse(cls, text: str, origin: str) -> Tokens:
        tokens: list[Token] = []
        seen: set[str] = set()
        for number, raw in enumerate(re.split(r"[\n,]", text), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":", 2)
            if len(parts) != 3 or not parts[0] or not parts[2]:
                raise SettingsError(f"{origin}: entry {number}: expected name:role:token")
            name, role, secret = parts
            if role not in ROLES:
                raise SettingsError(f"{origin}: entry {number}: role must be one of {', '.join(ROLES)}, not {role!r}")
            if len(secret) < 16:
                raise SettingsError(f"{origin}: entry {number} ({name}): a token needs at least 16 characters")
            if name in seen:
                raise SettingsError(f"{origin}: entry {number}: token name {name!r} used twice")
            seen.add(name)
            tokens.append(Token(name, role, hashlib.sha256(secret.encode()).digest()))
        return cls(tokens)

    @classmethod
    def load(cls, path: str | Path | None = None, env: str | None = None) -> Tokens:
        """From a file and/or the VAQUERO_API_TOKENS variable (entries separated by newlines or commas)."""
        tokens: list[Token] = []
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(f"tokens file {path}: {exc.strerror}") from None
            tokens.extend(cls.parse(text, str(path))._tokens)
        env_text = os.environ.get(TOKENS_ENV) if env is None else env
        if env_text:
            tokens.extend(cls.parse(env_text, TOKENS_ENV)._tokens)
        names = [t.name for t in tokens]
        if len(names) != len(set(names)):
            raise SettingsError("a token name is used twice across the tokens file and the environment")
        return cls(tokens)

    def with_role(self, role: str) -> Tokens:
        return Tokens([t for t in self._tokens if t.role == role])

    def match(self, presented: str) -> Token | None:
        """Constant time: every token is compared, digests of equal length, no early exit."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: Token | None = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found
