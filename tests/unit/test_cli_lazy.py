"""The `vaquero` command line loads a command's code only when that command runs, and a command
whose code cannot be loaded is an error that names the import, never a command that disappears."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vaquero.cli import COMMANDS, build_parser, load_command

REPO = Path(__file__).resolve().parents[2]
LAB = str(REPO / "inventories" / "lab")
# What validation does not need: the API, its HTTP client and server, Ansible's runner, the BMC libraries.
HEAVY = {"fastapi", "starlette", "httpx", "uvicorn", "ansible_runner", "ansible", "pyghmi", "redfish", "prometheus_client", "tftpy"}


def _importtime(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime ARGS`; the top-level packages the process imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    res = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in res.stderr.splitlines() if line.startswith("import time:") and "|" in line}
    names.discard("imported package")  # the header line
    return res, names


def _imported(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `vaquero ARGV` in a real process; the top-level packages it imported."""
    res, names = _importtime("-m", "vaquero.cli", *argv)
    assert "vaquero" in names, res.stderr[-2000:]  # the report was read: an empty set would prove nothing
    return res, names


def test_help_imports_nothing_but_the_standard_library() -> None:
    res, names = _imported("--help")
    assert res.returncode == 0, res.stderr[-2000:]
    for name, _text, _module in COMMANDS:
        assert name in res.stdout  # every command is listed...
    # Whatever this interpreter loads at start-up anyway (site hooks of the environment) is not the CLI's doing.
    _, startup = _importtime("-c", "pass")
    outside = names - set(sys.stdlib_module_names) - startup - {"vaquero"}
    assert outside == set()  # ...without importing any of them, nor pydantic, YAML or Jinja


def test_validate_imports_only_what_validation_needs() -> None:
    res, names = _imported("validate", LAB)
    assert res.returncode == 0, res.stderr[-2000:]
    assert ": valid: 1 site(s)" in res.stdout
    assert names & HEAVY == set()
    # The tree is checked in the bounded child; this process only finds it and prints the answer.
    assert names & {"pydantic", "yaml", "jinja2"} == set()


def test_plan_imports_no_api_runner_or_bmc_library() -> None:
    res, names = _imported("plan", "-", LAB)
    assert res.returncode == 2, res.stderr[-2000:]  # changes: four hosts to add
    assert names & HEAVY == set()


def test_the_chosen_command_still_gets_all_its_options() -> None:
    args = build_parser().parse_args(["power", "node1", "off", "--force", "--bmc-type", "ipmi", "--timeout", "5"])
    assert (args.command, args.host, args.action, args.force, args.timeout) == ("power", "node1", "off", True, 5.0)
    assert callable(args.func)
    args = build_parser().parse_args(["--log-format", "text", "run", "list", "--server", "http://127.0.0.1:1"])
    assert (args.log_format, args.verb, args.server) == ("text", "list", "http://127.0.0.1:1")
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["power", "node1", "sideways"])
    assert exc.value.code == 2  # the module's own choices are enforced


@pytest.mark.parametrize(("name", "text", "module"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_listed_command_is_defined_by_its_module_with_the_same_help(name: str, text: str, module: str) -> None:
    parser = argparse.ArgumentParser(prog=f"vaquero {name}")
    chosen = load_command(name, module, parser)
    assert chosen.helps[name] == text  # the table and the module describe the command alike
    # What runs: the command's own function, or one per sub-command (vaquero lab assets|netboot).
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    funcs = [p.get_default("func") for a in nested for p in a.choices.values()] if nested else [parser.get_default("func")]
    assert funcs and all(callable(f) for f in funcs)


BROKEN = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import vaquero.cli as cli
    cli.COMMANDS += (("broken", "a command whose module cannot import", "h9_broken_cmd"),)
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def _with_broken(tmp_path: Path, *argv: str, blocked: str = "") -> subprocess.CompletedProcess[str]:
    # A real module file whose import fails the way a missing dependency does.
    (tmp_path / "h9_broken_cmd.py").write_text("import h9_no_such_dependency  # noqa: F401\n\n\ndef add_parser(sub):\n    sub.add_parser('broken')\n")
    code = (f"import sys; sys.modules[{blocked!r}] = None\n" if blocked else "") + BROKEN
    return subprocess.run([sys.executable, "-c", code, str(tmp_path), *argv], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_a_command_whose_module_fails_to_import_is_an_error(tmp_path: Path) -> None:
    res = _with_broken(tmp_path, "broken")
    assert res.returncode == 1
    assert "command 'broken' is unavailable: importing h9_broken_cmd failed: ModuleNotFoundError: No module named 'h9_no_such_dependency'" in res.stderr
    # Still listed: the operator sees the command exists and, on use, why it cannot run.
    res = _with_broken(tmp_path, "--help")
    assert res.returncode == 0 and "broken" in res.stdout and "a command whose module cannot import" in res.stdout
    # And the other commands do not depend on it.
    res = _with_broken(tmp_path, "validate", LAB)
    assert res.returncode == 0, res.stderr
    assert ": valid:" in res.stdout


def test_a_missing_library_of_one_command_names_the_library(tmp_path: Path) -> None:
    """Without FastAPI, `vaquero server` says so; `vaquero validate` works as before."""
    res = _with_broken(tmp_path, "server", "--help", blocked="fastapi")
    assert res.returncode == 1
    assert "command 'server' is unavailable" in res.stderr and "fastapi" in res.stderr
    assert "usage" not in res.stdout
    res = _with_broken(tmp_path, "validate", LAB, blocked="fastapi")
    assert res.returncode == 0, res.stderr
