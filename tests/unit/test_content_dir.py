"""Playbooks and inventories are found through one rule ($VAQUERO_CONTENT_DIR, else the checkout),
also when the package is installed away from any checkout, with an error that says what to set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import vaquero
    from vaquero.content import ContentNotFound, content_dir
    from vaquero.lab.harness import lab_sot
    from vaquero.lab.kernel import LabError
    from vaquero.runner import ansible

    print("package", vaquero.__file__)
    assert ansible.content_dir is content_dir  # the runner and the lab ask the same question
    for name, ask, error in (("content", content_dir, ContentNotFound), ("lab", lab_sot, LabError)):
        try:
            print(name, ask())
        except error as exc:
            print(name, "error", exc)
    """
)


def _installed(tmp_path: Path) -> Path:
    """The package as pip would leave it: under site-packages, no playbooks or inventories above it."""
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "controller" / "vaquero", site / "vaquero", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _probe(site: Path, **env: str) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("VAQUERO_CONTENT_DIR", "PYTHONPATH")}
    full |= {"PYTHONPATH": str(site), **env}
    # -P and a neutral cwd: the checkout must not leak in through sys.path.
    res = subprocess.run([sys.executable, "-P", "-c", PROBE], capture_output=True, text=True, env=full, cwd=site.parent, timeout=300)
    assert res.returncode == 0, res.stderr
    return dict(line.split(" ", 1) for line in res.stdout.splitlines())


def test_installed_package_without_setting_says_what_to_set(tmp_path: Path) -> None:
    site = _installed(tmp_path)
    out = _probe(site)
    assert out["package"].startswith(str(site))  # the copy ran, not the checkout
    assert out["content"].startswith("error cannot find playbooks/ and ansible_collections/: set VAQUERO_CONTENT_DIR")
    assert out["lab"].startswith("error cannot find playbooks/") and "VAQUERO_CONTENT_DIR" in out["lab"]


def test_installed_package_finds_content_through_the_setting(tmp_path: Path) -> None:
    site = _installed(tmp_path)
    content = tmp_path / "share" / "vaquero"
    (content / "inventories").mkdir(parents=True)
    shutil.copytree(REPO / "inventories" / "lab", content / "inventories" / "lab")
    out = _probe(site, VAQUERO_CONTENT_DIR=str(content))
    assert out["content"] == str(content)
    assert out["lab"] == str(content / "inventories" / "lab")


def test_a_setting_that_is_wrong_is_an_error_not_a_guess(tmp_path: Path) -> None:
    site = _installed(tmp_path)
    out = _probe(site, VAQUERO_CONTENT_DIR=str(tmp_path / "nowhere"))
    assert out["content"] == f"error VAQUERO_CONTENT_DIR={tmp_path / 'nowhere'} is not a folder"
    (tmp_path / "empty").mkdir()
    out = _probe(site, VAQUERO_CONTENT_DIR=str(tmp_path / "empty"))
    assert out["content"] == str(tmp_path / "empty")
    assert out["lab"] == f"error inventories/lab is missing under {tmp_path / 'empty'} ($VAQUERO_CONTENT_DIR)"


def test_a_checkout_finds_its_own_content() -> None:
    out = _probe(REPO / "controller")
    assert out["content"] == str(REPO)
    assert out["lab"] == str(REPO / "inventories" / "lab")
