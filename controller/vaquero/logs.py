"""Structured logs: one JSON object per line, with host, plan, SoT SHA and run id when known.

Callers pass context through `extra={"host": ..., "plan": ..., "sha": ..., "run": ...}`; every such
field is kept, and so is the whole traceback of `log.exception` (`traceback`, with a one-line
`error`). The JSON comes from python-json-logger; `VAQUERO_LOG_FORMAT=text` (or
`vaquero --log-format text`) gives lines for people instead.

Last line of defence for secrets: every line is scrubbed of the values this process holds as
secrets (``***`` instead): the values of its environment variables whose names look secret
(see :func:`vaquero.childenv.secret_like`), read at :func:`setup_logging`, and any value passed
to :func:`register_secret` (a token read from a file, a generated one). Code should not log
secrets in the first place; this catches the message nobody thought about (an exception text,
a library's debug line).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from pythonjsonlogger import json as jsonlogger
from pythonjsonlogger.core import RESERVED_ATTRS

from vaquero.childenv import secret_like

CONTEXT_KEYS = ("host", "cluster", "site", "plan", "sha", "run", "bmc", "event")
# Shorter values would scrub ordinary words; no real secret is this short.
MIN_SECRET_LEN = 6
FORMAT_ENV = "VAQUERO_LOG_FORMAT"

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


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _summary(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
    return None


def _scrub(value: Any) -> Any:
    # Values first: once JSON-encoded, a secret holding a quote or a backslash no longer matches itself.
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per line: ts, level, logger, msg, then every `extra=` field, `error` and the full `traceback`."""

    def __init__(self) -> None:
        # uvicorn passes a coloured copy of its message as an extra field: terminal escapes, no information.
        reserved = [*RESERVED_ATTRS, "color_message"]
        super().__init__(rename_fields={"message": "msg", "exc_info": "traceback", "stack_info": "stack"}, reserved_attrs=reserved)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        head = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        log_data.update(head)
        super().add_fields(log_data, record, message_dict)
        # An extra= key must not pass for the record's own level or message.
        log_data.update(head)
        error = _summary(record)
        if error is not None:
            log_data["error"] = error

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        if not _secrets:
            return super().serialize_log_record(log_data)
        return redact(super().serialize_log_record(_scrub(log_data)))


class TextFormatter(logging.Formatter):
    """For people at a terminal: `ts level logger: msg key=value...`, the traceback below it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(f"{key}={record.__dict__[key]}" for key in CONTEXT_KEYS if record.__dict__.get(key) is not None)
        return f"{line} {context}" if context else line

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return redact(line) if _secrets else line


FORMATS = ("json", "text")


def setup_logging(level: str = "info", stream: Any = None, fmt: str | None = None) -> None:
    """Log to `stream` (stderr) as JSON lines, or as text when `fmt` (else $VAQUERO_LOG_FORMAT) is "text"."""
    register_env_secrets()
    fmt = (fmt or os.environ.get(FORMAT_ENV) or "json").lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
