"""Bounded validation (issue 10, items 4, 5, 18): hostile SoT input ends in bounded time and memory
with `file:line: field: message`, never a hang, a MemoryError or an internal error.

`vaquero validate` runs as a real process under RLIMIT_AS = 500 MB and RLIMIT_CPU: the memory
bound is proven by the limit (a process that needed more would die with MemoryError and no JSON
answer), not by timing. The template sandbox is exercised directly as well.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import pytest

from vaquero.sot.templates import TemplateLimitError, environment

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
MEMORY = 500 << 20  # the bound the issue asks for, per revision
CPU_SECONDS = 60  # a runaway that escaped every other bound dies of SIGXCPU: the test then fails, it does not hang

# 1 KB: 10^8 leaves once every alias is expanded.
BOMB = """    vars:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""

NESTED_LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 5))


def validate_measured(sot: Path) -> tuple[int, dict, int]:
    """`vaquero validate --format json` as a real process under the memory and CPU bounds: its exit
    status, its answer, and its own peak RSS in bytes as the kernel measured it (os.wait4: that
    child's usage alone, not the high-water mark of every child this pytest worker ever had, which
    includes disk-image builds)."""
    cmd = [sys.executable, "-m", "vaquero.cli", "--log-level", "error", "validate", str(sot), "--format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limits)
    assert proc.stdout is not None and proc.stderr is not None
    with ThreadPoolExecutor(2) as pool:
        out, err = pool.submit(proc.stdout.read), pool.submit(proc.stderr.read)
        _, status, usage = os.wait4(proc.pid, 0)  # the CPU limit bounds the wait
        stdout, stderr = out.result().decode(), err.result().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode in (0, 1), f"validate died (status {proc.returncode}): {stderr[-2000:]}"
    return proc.returncode, json.loads(stdout), usage.ru_maxrss * 1024


def validate(sot: Path) -> tuple[int, dict]:
    rc, out, _ = validate_measured(sot)
    return rc, out


def lab_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "sot"
    shutil.copytree(LAB, dst)
    return dst


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def test_alias_bomb_in_host_vars_is_refused_with_file_and_line_in_bounded_memory(tmp_path):
    sot = lab_copy(tmp_path)
    cluster = sot / "clusters" / "lab.yaml"
    cluster.write_text(cluster.read_text().replace("    ips: {prov: 10.90.0.12}\n", "    ips: {prov: 10.90.0.12}\n" + BOMB, 1))
    assert len(BOMB) <= 1024
    rc, out, peak = validate_measured(sot)
    assert rc == 1 and out["valid"] is False
    [err] = out["errors"]
    # The alias whose expansion crosses the budget: *f inside g, in host node2's vars.
    assert err["file"] == "clusters/lab.yaml" and err["line"] == line_of(cluster, "g: &g"), err
    assert err["field"] == "hosts[1].vars.g[0]" and "alias *f" in err["message"] and "alias bomb" in err["message"], err
    # Under the limit by construction; also what the kernel measured for the child.
    assert 0 < peak < MEMORY


def test_recursive_and_deep_yaml_are_refused_with_file_and_line(tmp_path):
    sot = lab_copy(tmp_path)
    cluster = sot / "clusters" / "lab.yaml"
    deep = "    vars:\n      deep: " + "[" * 200 + "]" * 200 + "\n"
    cluster.write_text(cluster.read_text().replace("    ips: {prov: 10.90.0.13}\n", "    ips: {prov: 10.90.0.13}\n" + deep, 1))
    rc, out = validate(sot)
    assert rc == 1
    [err] = out["errors"]
    assert err["file"] == "clusters/lab.yaml" and err["line"] == line_of(cluster, "deep: [[[") and "nested more than" in err["message"], err


def test_nested_template_loops_are_refused_with_the_profile_line(tmp_path):
    sot = lab_copy(tmp_path)
    profile = sot / "profiles" / "lab-linux.yaml"
    text = profile.read_text()
    start = text.index("cmdline: >-")
    end = text.index("config:")
    profile.write_text(text[:start] + f"cmdline: '{NESTED_LOOPS}'\n" + text[end:])
    rc, out = validate(sot)
    assert rc == 1
    [err] = out["errors"]
    assert err["file"] == "profiles/lab-linux.yaml" and err["line"] == line_of(profile, "cmdline:") and err["field"] == "cmdline", err
    assert "loop budget" in err["message"], err


def test_include_of_a_file_on_the_controller_is_refused_at_the_template_line(tmp_path):
    sot = lab_copy(tmp_path)
    template = sot / "templates" / "user-data.j2"
    template.write_text(template.read_text() + '\n{% include "/etc/passwd" %}\n')
    rc, out = validate(sot)
    assert rc == 1
    [err] = out["errors"]
    assert err["file"] == "templates/user-data.j2" and err["line"] == line_of(template, "include"), err
    assert "cannot include" in err["message"] and "root:" not in json.dumps(out), err


def test_links_and_special_files_in_the_sot_are_refused_by_name(tmp_path):
    sot = lab_copy(tmp_path)
    (sot / "clusters" / "passwd.yaml").symlink_to("/etc/passwd")
    os.mkfifo(sot / "hooks" / "fifo.yaml")  # a reader that blocks forever if opened naively
    (sot / "sites" / "latin1.yaml").write_bytes(b"apiVersion: vaquero/v1\n# caf\xe9\n")
    template = sot / "templates" / "user-data.j2"
    template.unlink()
    template.symlink_to("/etc/shadow")
    rc, out = validate(sot)
    assert rc == 1
    by_file = {e["file"]: e for e in out["errors"]}
    assert "is a symlink" in by_file["clusters/passwd.yaml"]["message"]
    assert "not a regular file" in by_file["hooks/fifo.yaml"]["message"]
    assert by_file["sites/latin1.yaml"]["line"] == 2 and "not UTF-8" in by_file["sites/latin1.yaml"]["message"]
    config = by_file["profiles/lab-linux.yaml"]
    assert config["field"] == "config.template" and "templates/user-data.j2 is a symlink" in config["message"], out
    assert "root:" not in json.dumps(out)


def test_the_example_sots_validate_within_the_bounds():
    for sot in (LAB, ROOT / "inventories" / "federation"):
        if not any((sot / d).is_dir() for d in ("sites", "clusters")):
            continue
        rc, out, peak = validate_measured(sot)
        assert rc == 0 and out["valid"] is True, out
        assert 0 < peak < MEMORY


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (NESTED_LOOPS, "loop budget"),
        ("{% set r = range(1000) %}{% for a in r %}{% for b in r %}{% for c in r %}{% endfor %}{% endfor %}{% endfor %}", "loop budget"),
        ("{{ range(10 ** 9) | list | length }}", "range()"),
        ("{{ 'a' * 1000000000 }}", "repeating a sequence"),
        ("{{ ([1] * 100000000) | length }}", "repeating a sequence"),
        ("{{ 7 ** 100000000 }}", "exponent"),
        ("{% for i in range(1000) %}{{ 'x' * 99999 }}{% endfor %}", "output exceeded"),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "recursion"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursion"),
    ],
)
def test_sandbox_refuses_runaway_templates(source, expected):
    with pytest.raises(TemplateLimitError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        environment().from_string(source).render({})


@pytest.mark.parametrize("source", ['{% include "/etc/passwd" %}', '{% import "/etc/passwd" as p %}', '{% extends "/etc/passwd" %}', '{% from "x" import y %}'])
def test_sandbox_refuses_file_access_at_parse_time(source):
    with pytest.raises(jinja2.TemplateSyntaxError, match="cannot include, import or extend") as info:
        environment().from_string("line one\n" + source)
    assert info.value.lineno == 2


def test_sandbox_keeps_ordinary_templates_working():
    template = environment().from_string("{% for d in disks %}{{ loop.index }}:{{ d }} {% endfor %}{{ 'ab' * 2 }} {{ range(3) | list }}")
    assert template.render({"disks": ["sda", "sdb"]}) == "1:sda 2:sdb abab [0, 1, 2]"
    # The budget is per render: many renders of a template that uses most of it all succeed.
    busy = environment().from_string("{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}ok")
    assert [busy.render({}) for _ in range(3)] == ["ok"] * 3


def test_validate_of_a_sot_too_slow_for_the_deadline_is_stopped_with_the_reason(tmp_path):
    # Each render stays within the sandbox's budget; 4,000 hosts make the whole check far longer
    # than the deadline: the child that validates is stopped, and validate says why.
    sot = lab_copy(tmp_path)
    busy = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}"
    profile = sot / "profiles" / "lab-linux.yaml"
    text = profile.read_text()
    profile.write_text(text[: text.index("cmdline: >-")] + f"cmdline: '{busy}'\nconfig:\n  format: cloud-init\n  inline: '{busy}'\n")
    rows = "".join(f'  - name: busy{i}\n    macs: ["52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"]\n' for i in range(4000))
    cluster = sot / "clusters" / "lab.yaml"
    cluster.write_text(cluster.read_text() + rows)
    proc = subprocess.run(
        [sys.executable, "-m", "vaquero.cli", "--log-level", "error", "validate", str(sot), "--format", "json", "--timeout", "20"],
        capture_output=True,
        text=True,
        preexec_fn=_limits,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    [err] = json.loads(proc.stdout)["errors"]
    assert err["message"].startswith("validation exceeded 20 s"), err
