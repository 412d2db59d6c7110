"""The environment of every child process Vaquero starts: built from an allow-list, never inherited.

A controller or agent holds secrets in its own environment (API tokens, the webhook secret, the
agent token, BMC passwords named by the SoT, whatever else the operator exported). A child that
inherits ``os.environ`` carries them all: dnsmasq (and any ``dhcp-script`` it runs), git, hook
commands, ansible-playbook and every module it starts, and ansible-runner writes that
environment into its artifacts. So each spawn gets only:

- ``BASE`` names and ``LC_*`` (what any program needs to find binaries, its locale, home and
  temporary folder);
- the names and prefixes that one child truly needs (``allow=``, ``prefixes=``);
- names the operator lists in ``$VAQUERO_CHILD_ENV`` (comma-separated, e.g. a proxy for git);
- values the caller sets explicitly (``extra=``), which are references (paths), never secrets.

A name that looks like a secret (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*_KEY``...) is dropped
even when allowed, unless it names a file, folder or socket (``*_FILE``, ``*_PATH``, ``*_DIR``, ``*_SOCK``): a path
to a secret is a reference, not the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

BASE = ("PATH", "LANG", "LANGUAGE", "TZ", "HOME", "TMPDIR", "USER", "LOGNAME")
BASE_PREFIXES = ("LC_",)
OPERATOR_ALLOW_ENV = "VAQUERO_CHILD_ENV"
# Extra names an operator may pass on must still not look like secrets: an allow-list entry is a
# statement about what a child needs, not a way to hand it a password.
_SECRET_NAME = re.compile(r"PASS|TOKEN|SECRET|CREDENTIAL|PRIVATE|COOKIE|SESSION|AUTH(?!OR)|APIKEY|(^|_)KEYS?$", re.IGNORECASE)
_REFERENCE_SUFFIXES = ("_FILE", "_PATH", "_DIR", "_SOCK")

# What each kind of child needs beyond BASE.
ANSIBLE_PREFIXES = ("ANSIBLE_",)
ANSIBLE_ALLOW = ("PYTHONPATH",)
GIT_ALLOW = ("SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "XDG_CONFIG_HOME")
HOOK_ALLOW = ("KUBECONFIG",)


def secret_like(name: str) -> bool:
    """True when an environment variable's name says it holds a secret (not a path to one)."""
    return bool(_SECRET_NAME.search(name)) and not name.upper().endswith(_REFERENCE_SUFFIXES)


def operator_allowed(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    raw = (os.environ if environ is None else environ).get(OPERATOR_ALLOW_ENV, "")
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def child_env(
    *,
    allow: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    deny: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for one child: allow-listed names from this process's environment, then `extra`.

    `deny` names are never passed (e.g. the SoT's secret variables), whatever else allows them.
    """
    source = os.environ if environ is None else environ
    names = {*BASE, *allow, *operator_allowed(source)}
    starts = (*BASE_PREFIXES, *prefixes)
    denied = frozenset(deny)
    env: dict[str, str] = {}
    for name, value in source.items():
        if name in denied or secret_like(name):
            continue
        if name in names or name.startswith(starts):
            env[name] = value
    env.update(extra or {})
    return env


def ansible_env(extra: Mapping[str, str] | None = None, deny: Iterable[str] = ()) -> dict[str, str]:
    """For ansible-playbook (through ansible-runner, or a hook playbook): its config variables, not secrets."""
    return child_env(allow=ANSIBLE_ALLOW, prefixes=ANSIBLE_PREFIXES, extra=extra, deny=deny)


def git_env() -> dict[str, str]:
    """For git: SSH agent and config locations, and never an interactive prompt (it would hang a fetch)."""
    return child_env(allow=GIT_ALLOW, extra={"GIT_TERMINAL_PROMPT": "0"})
