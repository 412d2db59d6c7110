"""Structured logs: one JSON object per line, with host, plan, SoT SHA and run id when known.

Callers pass context through `extra={"host": ..., "plan": ..., "sha": ..., "run": ...}`.

Last line of defence for secrets: every line is scrubbed of the values this process holds as
secrets (``***`` instead): the values of its environment variables whose names look secret
(see :func:`vaquero.childenv.secret_like`), read at :func:`setup_logging`, and any value passed
to :func:`register_secret` (a token read from a file, a generated one). Code should not log
secrets in the first place; this catches the message nobody thought about (an exception text,
a library's debug line).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from vaquero.childenv import secret_like

CONTEXT_KEYS = ("host", "cluster", "site", "plan", "sha", "run", "bmc", "event")
# Shorter values would scrub ordinary words; no real secret is this short.
MIN_SECRET_LEN = 6

_secrets: list[str] = []
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Scrub `value` from every log line this process writes from now on."""
    if not value or len(value) < MIN_SECRET_LEN:
        return
    with _secrets_lock:
        if value not in _secrets:
            # Longest first: a secret that contains another is replaced whole.
            _secrets.append(value)
            _secrets.sort(key=len, reverse=True)


def register_env_secrets(environ: dict[str, str] | None = None) -> None:
    for name, value in (os.environ if environ is None else environ).items():
        if secret_like(name):
            register_secret(value)


def redact(text: str) -> str:
    for value in _secrets:
        if value in text:
            text = text.replace(value, "***")
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        if _secrets:
            out = {k: redact(v) if isinstance(v, str) else v for k, v in out.items()}
            return redact(json.dumps(out, default=str))
        return json.dumps(out, default=str)


def setup_logging(level: str = "info", stream: Any = None) -> None:
    register_env_secrets()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
