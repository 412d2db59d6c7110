"""Agent tokens: lines `name:agent:token` where name is the agent's name in the SoT.

The same format as the API tokens file (`name:role:token`); lines with another role are
skipped here, so one file can hold both kinds. Secrets are kept as sha256 digests and compared
in constant time; they never appear in a repr, a log line or an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

AGENT_ROLE = "agent"
AGENT_TOKENS_ENV = "VAQUERO_AGENT_TOKENS"
MIN_LENGTH = 16


class TokenError(Exception):
    """A malformed tokens file; the message never quotes a secret."""


@dataclass(frozen=True)
class AgentToken:
    agent: str
    digest: bytes = field(repr=False)


class AgentTokens:
    def __init__(self, tokens: list[AgentToken]) -> None:
        self._tokens = tokens

    def __repr__(self) -> str:
        return f"AgentTokens({[t.agent for t in self._tokens]})"

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def agents(self) -> list[str]:
        return [t.agent for t in self._tokens]

    @classmethod
    def parse(cls, text: str, origin: str) -> AgentTokens:
        tokens: list[AgentToken] = []
        for number, raw in enumerate(re.split(r"[\n,]", text), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":", 2)
            if len(parts) != 3 or not parts[0] or not parts[2]:
                raise TokenError(f"{origin}: entry {number}: expected name:role:token")
            name, role, secret = parts
            if role != AGENT_ROLE:
                continue
            if len(secret) < MIN_LENGTH:
                raise TokenError(f"{origin}: entry {number} ({name}): a token needs at least {MIN_LENGTH} characters")
            if name in (t.agent for t in tokens):
                raise TokenError(f"{origin}: entry {number}: agent {name!r} has two tokens")
            tokens.append(AgentToken(name, hashlib.sha256(secret.encode()).digest()))
        return cls(tokens)

    @classmethod
    def load(cls, path: str | Path | None = None, env: str | None = None) -> AgentTokens:
        """From a tokens file and/or $VAQUERO_AGENT_TOKENS (entries separated by newlines or commas)."""
        tokens: list[AgentToken] = []
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise TokenError(f"tokens file {path}: {exc.strerror}") from None
            tokens.extend(cls.parse(text, str(path))._tokens)
        env_text = os.environ.get(AGENT_TOKENS_ENV) if env is None else env
        if env_text:
            tokens.extend(cls.parse(env_text, AGENT_TOKENS_ENV)._tokens)
        names = [t.agent for t in tokens]
        if len(names) != len(set(names)):
            raise TokenError("an agent has a token in both the tokens file and the environment")
        return cls(tokens)

    def match(self, presented: str) -> str | None:
        """The agent name the token belongs to, or None. Every token is compared, no early exit."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token.agent
        return found


def read_token(path: str | Path | None, env: str) -> str | None:
    """The agent's own token: first line of a file, else an environment variable."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise TokenError(f"token file {path}: {exc.strerror}") from None
        if not value or not value[0].strip():
            raise TokenError(f"token file {path} is empty")
        return value[0].strip()
    return os.environ.get(env) or None
