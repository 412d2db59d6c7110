"""Logs keep what an operator needs after the fact: the whole traceback of `log.exception` and the
host/plan/sha/run fields, in JSON (one object per line) and in text, written by a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# A failure two calls deep, logged with every context key the controller passes through extra=.
PROGRAM = textwrap.dedent(
    """
    import logging, os, sys
    from vaquero.logs import register_secret, setup_logging

    setup_logging("info", fmt=sys.argv[1] if len(sys.argv) > 1 else None)
    register_secret(os.environ["LOG_TEST_SECRET"])
    log = logging.getLogger("vaquero.runner")

    def power_on(host):
        raise ConnectionError(f"BMC of {host} refused the session (password " + os.environ["LOG_TEST_SECRET"] + ")")

    def step(host):
        power_on(host)

    try:
        step("node1")
    except ConnectionError:
        log.exception("power step failed", extra={"host": "node1", "plan": "p-42", "sha": "0123abcd", "run": "r-7", "bmc": "10.0.0.5"})
    """
)
SECRET = "s3cr3t-bmc-password"
FIELDS = {"host": "node1", "plan": "p-42", "sha": "0123abcd", "run": "r-7", "bmc": "10.0.0.5"}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "VAQUERO_LOG_FORMAT"}
    full_env = {**inherited, "LOG_TEST_SECRET": SECRET, **(env or {})}
    res = subprocess.run([sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, env=full_env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    return res


def test_json_line_keeps_the_traceback_and_the_context_fields() -> None:
    res = _run("json")
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr  # the traceback is inside the one JSON object, not on lines of its own
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and entry["logger"] == "vaquero.runner" and entry["msg"] == "power step failed"
    assert {k: entry.get(k) for k in FIELDS} == FIELDS
    assert entry["ts"].endswith("Z")
    trace = entry["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    # Every frame down to the one that raised: the stack is what the old formatter threw away.
    assert trace.index("in <module>") < trace.index("in step") < trace.index("in power_on")
    assert trace.rstrip().endswith("ConnectionError: BMC of node1 refused the session (password ***)")
    assert entry["error"] == "ConnectionError: BMC of node1 refused the session (password ***)"
    assert SECRET not in res.stderr


def test_json_is_the_default_and_extra_fields_cannot_forge_the_level() -> None:
    code = textwrap.dedent(
        """
        import logging
        from vaquero.logs import setup_logging
        setup_logging("info")
        logging.getLogger("vaquero.api").warning("odd %s", "push", extra={"level": "debug", "msg_count": 3, "site": "dc1"})
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "VAQUERO_LOG_FORMAT"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    entry = json.loads(res.stderr)
    assert entry["level"] == "warning" and entry["msg"] == "odd push"
    assert entry["msg_count"] == 3 and entry["site"] == "dc1"
    assert "traceback" not in entry and "error" not in entry


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_text_mode_keeps_the_traceback_and_the_context_fields(how: str) -> None:
    res = _run("text") if how == "argument" else _run(env={"VAQUERO_LOG_FORMAT": "text"})
    lines = res.stderr.splitlines()
    head = lines[0]
    assert " ERROR vaquero.runner: power step failed " in head
    for key, value in FIELDS.items():
        assert f"{key}={value}" in head
    assert lines[1] == "Traceback (most recent call last):"
    body = "\n".join(lines[1:])
    assert body.index("in step") < body.index("in power_on")
    assert lines[-1] == "ConnectionError: BMC of node1 refused the session (password ***)"
    assert SECRET not in res.stderr


def test_an_unknown_format_is_refused() -> None:
    code = "from vaquero.logs import setup_logging; setup_logging('info', fmt='xml')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "log format 'xml': use one of json, text" in res.stderr
