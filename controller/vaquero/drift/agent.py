"""The site agent's boot state of a host, as the drift observer reads it (GET /v1/boot/status/<host>,
no token): what the host would be served at its next netboot, and when its installed OS last
reported (phone home). The agent's answer is parsed into a typed value; anything else is an error."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..callback import CallbackError, read_status, status_url
from ..sot.loader import SoT

# Agent states in which a ready host is not served `localboot` (or nothing at all, once wiped).
NOT_LOCALBOOT = {
    "install": "the agent is armed to install it at its next netboot",
    "wipe": "the agent is armed to wipe its disks at its next netboot",
    "wiped": "the agent serves it nothing (its disks were wiped)",
    "failed": "the agent's last install of it reported a failure",
}
AGENT_TIMEOUT = 5.0


class AgentStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: Literal["none", "install", "installed", "failed", "wipe", "wiped"]
    phoned_home_at: float | None = Field(None, ge=0)


class AgentUnread(Exception):
    """The agent's boot state could not be read; the message says why (it names no secret: no token is sent)."""


def read_agent(sot: SoT, host: str, timeout: float = AGENT_TIMEOUT) -> AgentStatus | None:
    """The boot state the site's agent keeps for ``host``; None when the site has no agent."""
    try:
        url = status_url(sot, host)
    except CallbackError:
        return None  # no agent at this site: nothing to compare
    try:
        return AgentStatus.model_validate(read_status(url, timeout))
    except CallbackError as exc:
        raise AgentUnread(str(exc)[:300]) from None
    except ValidationError as exc:
        raise AgentUnread(f"the agent's boot status of {host} is not one Vaquero knows ({exc.error_count()} error(s))") from None
