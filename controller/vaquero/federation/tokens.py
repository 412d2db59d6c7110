"""Agent tokens: lines `name:agent:token` where name is the agent's name in the SoT.

The API tokens file format (`name:role:token`), parsed by the API's parser; lines with another role
are skipped here, so one file holds both kinds. Secrets are kept as sha256 digests and compared
in constant time; they never appear in a repr, a log line or an exception message.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..tokens import SettingsError, Tokens

AGENT_ROLE = "agent"
AGENT_TOKENS_ENV = "VAQUERO_AGENT_TOKENS"
TokenError = SettingsError  # a malformed tokens file; the message never quotes a secret


class AgentTokens:
    """The `agent` lines of a tokens file, parsed by the one token parser (vaquero.tokens.Tokens)."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens.with_role(AGENT_ROLE)

    def __repr__(self) -> str:
        return f"AgentTokens({self.agents})"

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def agents(self) -> list[str]:
        return self._tokens.names

    @classmethod
    def parse(cls, text: str, origin: str) -> AgentTokens:
        return cls(Tokens.parse(text, origin))

    @classmethod
    def load(cls, path: str | Path | None = None, env: str | None = None) -> AgentTokens:
        """From a tokens file and/or $VAQUERO_AGENT_TOKENS (entries separated by newlines or commas)."""
        return cls(Tokens.load(path, env=os.environ.get(AGENT_TOKENS_ENV, "") if env is None else env))

    def match(self, presented: str) -> str | None:
        """The agent name the token belongs to, or None. Constant time (see Tokens.match)."""
        token = self._tokens.match(presented)
        return token.name if token else None


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
