"""Secrets for playbooks without putting them in runner artifacts.

ansible-runner writes the full environment of ansible-playbook (``os.environ`` plus ``envvars``),
its command line and its extravars into the run's artifacts folder. A BMC password held in an
environment variable of the controller would land there. So, for one run:

- every environment variable the SoT names as a secret is *blanked* in the runner's env
  (``envvars={NAME: ""}``), so its value is not in the artifacts;
- its value is written to a file ``<dir>/<NAME>`` (mode 0600, folder 0700, outside the
  private data dir, removed when the run ends) and the runner gets ``VAQUERO_SECRETS_DIR=<dir>``,
  a path, not a secret;
- modules resolve a reference at the moment of use with :func:`resolve_secret`: the environment
  variable when it is set and not empty (a person running ansible-playbook by hand), else the
  file of that name in ``VAQUERO_SECRETS_DIR``; a ``file`` reference is read directly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from vaquero.sot.loader import SoT

SECRETS_DIR_ENV = "VAQUERO_SECRETS_DIR"
# The controller's own secrets: playbooks never need them, so they are blanked, not handed over.
CONTROLLER_SECRET_ENVS = (
    "VAQUERO_WEBHOOK_SECRET",
    "VAQUERO_API_TOKENS",
    "VAQUERO_GITHUB_TOKEN",
    "VAQUERO_AGENT_TOKENS",
    "VAQUERO_CONTROLLER_TOKEN",
    "VAQUERO_TOKEN",
)


class SecretMissing(LookupError):
    pass


def resolve_secret(env: str | None = None, file: str | None = None) -> str:
    """The secret a SoT reference points at, read now. Raises SecretMissing (naming the reference, never a value)."""
    if file:
        try:
            with open(os.path.expanduser(file), encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise SecretMissing(f"secret file {file}: {exc.strerror}") from None
    if env:
        value = os.environ.get(env)
        if value:
            return value
        folder = os.environ.get(SECRETS_DIR_ENV)
        if folder and os.path.isfile(os.path.join(folder, env)):
            with open(os.path.join(folder, env), encoding="utf-8") as fh:
                return fh.read()
        raise SecretMissing(f"environment variable {env} is not set")
    raise SecretMissing("no secret reference (env or file) given")


def env_references(sot: SoT) -> set[str]:
    """Names of the environment variables the SoT uses as secrets."""
    return {c.password.env for s in sot.sites.values() for c in s.credentials.values() if c.password.env}


class SecretsDir:
    """A private folder with the env-referenced secrets of one run; a context manager."""

    def __init__(self, names: set[str], base: str | None = None) -> None:
        self.names = sorted(names)
        base = base or ("/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None)
        self.path = Path(tempfile.mkdtemp(prefix="vaquero-secrets-", dir=base))
        os.chmod(self.path, 0o700)
        for name in self.names:
            value = os.environ.get(name)
            if not value:
                continue
            fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(value)

    def envvars(self) -> dict[str, str]:
        """What the runner's environment gets: the folder, and every secret variable blanked."""
        blank = {name: "" for name in CONTROLLER_SECRET_ENVS if name in os.environ}
        return {SECRETS_DIR_ENV: str(self.path), **blank, **{name: "" for name in self.names}}

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> SecretsDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
