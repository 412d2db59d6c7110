"""Command hooks standing in for the lab SoT's hooks (its validate hook asks an agent, which these
tests do not run): write COMMAND_HOOKS over a copy's hooks/lab-hooks.yaml."""

from __future__ import annotations

import textwrap

COMMAND_HOOKS = textwrap.dedent(
    """\
    apiVersion: vaquero/v1
    kind: Hook
    name: announce-drain
    type: command
    command: "echo draining {{ host.name }}"
    timeout: 30
    ---
    apiVersion: vaquero/v1
    kind: Hook
    name: agent-saw-callback
    type: command
    command: "echo validated {{ host.name }}"
    timeout: 10
    """
)
