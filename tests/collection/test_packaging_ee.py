"""The collection as an execution environment gets it: ansible-builder's context, its introspection of the
installed collection, then those requirements installed into a clean venv where a module runs.

The core comes from a wheel built from this checkout (found with --find-links), everything else from the
registry or pip's cache, at the versions of constraints.txt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vaquero" / "metal"
VENV_BIN = Path(sys.executable).parent
CORE = "vaquero-metal-controller"

pytestmark = pytest.mark.slow


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd[:3]} exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _clean_env(tmp: Path) -> dict[str, str]:
    """No trace of this venv or the checkout: the installed copies are the only ones to find."""
    passed = ("HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_CACHE_DIR", "PIP_CERT", "PIP_FIND_LINKS", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL")
    keep = {k: v for k, v in os.environ.items() if k in passed}
    cfg = tmp / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    return {**keep, "PATH": "/usr/bin:/bin", "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false", "ANSIBLE_LOCALHOST_WARNING": "false"}


def test_ee_requirements_install_the_core_and_a_module_runs(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    # 1. The tarball users get, and an EE definition that installs it.
    dist = tmp_path / "dist"
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(dist)], cwd=tmp_path, env=env)
    (tarball,) = dist.glob("vaquero-metal-*.tar.gz")
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": tarball.name, "type": "file"}]},
        },
    }
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    ctx = tmp_path / "context"
    create = [str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(ctx), "--output-filename", "Containerfile"]
    _run(create, cwd=tmp_path, env=env)
    build = ctx / "_build"
    containerfile = (ctx / "Containerfile").read_text()
    assert "introspect.py introspect" in containerfile, containerfile

    # 2. What the context's galaxy stage does (install the collection), then its introspection step.
    shutil.copy(tarball, build / tarball.name)
    share = tmp_path / "share" / "collections"
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "-r", "requirements.yml", "-p", str(share)], cwd=build, env=env)
    pip_req, bindep_req = tmp_path / "ee-requirements.txt", tmp_path / "ee-bindep.txt"
    _run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect", str(share), f"--write-pip={pip_req}", f"--write-bindep={bindep_req}"],
         cwd=tmp_path, env=env)  # fmt: skip
    lines = [ln.split("#")[0].strip() for ln in pip_req.read_text().splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln]
    core = [r for r in reqs if r.name == CORE]
    assert core, f"the EE's introspected requirements lack {CORE}: {pip_req.read_text()}"
    assert "dnsmasq-base [platform:dpkg]" in bindep_req.read_text(), bindep_req.read_text()
    # The same answer from the command collection authors run.
    shown = _run([str(VENV_BIN / "ansible-builder"), "introspect", "--sanitize", str(share)], cwd=tmp_path, env=env).stdout
    assert CORE in shown and "dnsmasq-base" in shown, shown

    # 3. The core as a wheel of this checkout.
    wheels = _core_wheel(tmp_path, env)
    assert list(wheels.glob("vaquero_metal_controller-*.whl")), sorted(p.name for p in wheels.iterdir())

    # 4. A clean venv gets exactly the introspected requirements (pip's cache makes this quick).
    ee = tmp_path / "ee"
    _run([sys.executable, "-m", "venv", str(ee)], cwd=tmp_path, env=env)
    # --no-compile: byte-compiling all of ansible-core is most of an install's time; Python compiles what it imports.
    pip_install = [str(ee / "bin" / "pip"), "install", "-q", "--no-compile", "-c", str(REPO / "constraints.txt"), "--find-links", str(wheels)]
    pip_install += ["-r", str(pip_req)]
    _run(pip_install, cwd=tmp_path, env=env)
    _run([str(ee / "bin" / "pip"), "check"], cwd=tmp_path, env=env)
    where = _run([str(ee / "bin" / "python"), "-c", "import vaquero; print(vaquero.__file__)"], cwd=tmp_path, env=env).stdout.strip()
    assert where.startswith(str(ee)), where

    # 5. A module of the installed collection, run by that venv's ansible: check mode writes nothing, then a real run does.
    dest = tmp_path / "ipxe"
    args = json.dumps({"sot": str(REPO / "inventories" / "lab"), "dest": str(dest), "hosts": ["node1"], "state": "install"})
    run_env = {**env, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "share" / "collections")}
    ansible = [str(ee / "bin" / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={ee / 'bin' / 'python'}"]
    results = {}
    for label, extra in (("check", ["--check"]), ("run", [])):
        tree = tmp_path / f"tree-{label}"
        _run([*ansible, "-m", "vaquero.metal.ipxe_config", "-a", args, "-t", str(tree), *extra], cwd=tmp_path, env=run_env)
        results[label] = json.loads((tree / "localhost").read_text())
        if label == "check":
            assert not dest.exists(), "check mode wrote scripts"
    assert results["check"]["changed"] is True, results["check"]
    assert results["run"]["changed"] is True, results["run"]
    scripts = {p.name: p.read_text() for p in dest.iterdir()}
    assert "52-54-00-00-10-01" in scripts, sorted(scripts)
    assert scripts["52-54-00-00-10-01"].startswith("#!ipxe") and "kernel " in scripts["52-54-00-00-10-01"]


def _core_wheel(tmp: Path, env: dict[str, str]) -> Path:
    """A wheel of this checkout, built from a copy (a build writes egg-info and build/ beside the source)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "COPYING"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "controller", src / "controller", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)], cwd=tmp, env=env)
    return wheels


def test_the_core_installs_beside_the_oldest_ansible_core_without_replacing_it(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    # The venv CI runs ansible-core 2.16's sanity from (scripts/venvs/ansible-core-2.16.txt), cached.
    venv = Path(_run(["bash", str(REPO / "scripts" / "toolvenv.sh"), "ansible-core-2.16"], cwd=REPO, env={**env, "PATH": os.environ["PATH"]}).stdout.strip())
    have = {ln.split("==")[0].lower() for ln in (REPO / "scripts" / "venvs" / "ansible-core-2.16.txt").read_text().splitlines() if "==" in ln}
    # The usual pins, except for what that venv already has: pip must keep those.
    pins = [ln for ln in (REPO / "constraints.txt").read_text().splitlines() if "==" in ln and ln.split("==")[0].lower() not in have]
    (tmp_path / "pins.txt").write_text("\n".join(pins) + "\n")
    wheels = _core_wheel(tmp_path, env)
    report = tmp_path / "report.json"
    _run([str(venv / "bin" / "pip"), "install", "--dry-run", "--quiet", "--report", str(report), "-c", str(tmp_path / "pins.txt"),
          "--find-links", str(wheels), CORE], cwd=tmp_path, env=env)  # fmt: skip
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}
    assert CORE in planned, sorted(planned)
    assert "ansible-core" not in planned, f"installing the core would replace ansible-core 2.16 with {planned.get('ansible-core')}"
