"""Packaging facts users rely on: the core's distribution name and ranges, the exact pins CI installs, the
collection's declared dependencies, licence files, project URLs, the changelog and the README."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml
from bindep.depends import Depends
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vaquero" / "metal"
VENV_BIN = Path(sys.executable).parent
URL = "https://github.com/vaquero-metal/vaquero"
GPL3_HEAD = "GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _constraints() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for n, line in enumerate((REPO / "constraints.txt").read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^=\s;]+)", line)
        assert m, f"constraints.txt:{n}: not an exact pin: {line!r}"
        name = canonicalize_name(m[1])
        assert name not in pins, f"constraints.txt:{n}: {name} pinned twice"
        pins[name] = Version(m[2])
    return pins


def _all_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_core_distribution_name_and_ranges() -> None:
    project = _pyproject()["project"]
    assert project["name"] == "vaquero-metal-controller"
    # The venv has the renamed distribution (setup.sh drops the old "vaquero" one), with its licence.
    assert importlib.metadata.metadata("vaquero-metal-controller")["License-Expression"] == "GPL-3.0-or-later"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("vaquero")
    for req in _all_requirements():
        # A range, never one exact version: exact versions live in constraints.txt.
        assert req.specifier, f"{req}: no version range"
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req}: an exact pin in pyproject.toml"


def test_ansible_core_range_matches_requires_ansible() -> None:
    core = next(r for r in _all_requirements() if r.name == "ansible-core")
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    requires = SpecifierSet(runtime["requires_ansible"])
    lowest = next(Version(s.version) for s in requires if s.operator == ">=")
    assert lowest in core.specifier, f"the core refuses ansible-core {lowest}, the collection's oldest"
    assert Version("2.19.0") in core.specifier and Version("2.16.0") in core.specifier
    assert Version("2.15.99") not in core.specifier


def test_constraints_pin_every_requirement_within_its_range_and_are_installed() -> None:
    pins = _constraints()
    for req in _all_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt pins {name}=={pins[name]}, outside {req}"
    # setup.sh installed exactly these.
    for name, version in pins.items():
        assert Version(importlib.metadata.version(name)) == version, f"{name}: installed {importlib.metadata.version(name)}, pinned {version}"


def test_pip_check_is_clean() -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_collection_requirements_name_the_core_and_ee_points_at_them() -> None:
    version = Version(_pyproject()["project"]["version"])
    lines = [ln.split("#")[0].strip() for ln in (COLLECTION / "requirements.txt").read_text().splitlines()]
    reqs = {canonicalize_name(r.name): r for r in (Requirement(ln) for ln in lines if ln)}
    assert "vaquero" not in reqs, "'vaquero' on PyPI is an unrelated project"
    core = reqs["vaquero-metal-controller"]
    assert version in core.specifier and core.specifier != SpecifierSet(), core
    ee = yaml.safe_load((COLLECTION / "meta" / "execution-environment.yml").read_text())
    assert ee["version"] == 1
    assert (COLLECTION / ee["dependencies"]["python"]).resolve() == (COLLECTION / "requirements.txt").resolve()
    assert (COLLECTION / ee["dependencies"]["system"]).resolve() == (COLLECTION / "bindep.txt").resolve()


def test_bindep_names_the_dhcp_daemons_per_platform() -> None:
    deps = Depends((COLLECTION / "bindep.txt").read_text())
    # What ansible-builder installs on a Debian/Ubuntu image, and on a RHEL one (no profile given).
    debian = {r[0] for r in deps.active_rules(["default", "platform:dpkg", "platform:debian"])}
    rhel = {r[0] for r in deps.active_rules(["default", "platform:rpm", "platform:redhat"])}
    assert "dnsmasq-base" in debian and "kea-dhcp4-server" not in debian
    assert "dnsmasq" in rhel and "dnsmasq-base" not in rhel
    assert "kea-dhcp4-server" in {r[0] for r in deps.active_rules(["kea", "platform:dpkg"])}


def test_licence_files_and_declarations() -> None:
    for path in (REPO / "COPYING", COLLECTION / "COPYING"):
        text = path.read_text()
        assert GPL3_HEAD in text and "END OF TERMS AND CONDITIONS" in text, f"{path} is not the GPL-3.0 text"
    assert (REPO / "COPYING").read_bytes() == (COLLECTION / "COPYING").read_bytes()
    project = _pyproject()["project"]
    assert project["license"] == "GPL-3.0-or-later" and project["license-files"] == ["COPYING"]
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert galaxy["license_file"] == "COPYING" and "license" not in galaxy
    header = "# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)"
    missing = [str(p.relative_to(COLLECTION)) for p in (COLLECTION / "plugins").rglob("*.py") if header not in p.read_text()]
    assert not missing, f"without the GPLv3+ header: {missing}"


def test_project_urls_are_real() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    for key in ("repository", "documentation", "homepage", "issues"):
        assert galaxy[key].startswith(URL), f"galaxy.yml {key}: {galaxy[key]}"
    links = yaml.safe_load((COLLECTION / "docs" / "docsite" / "links.yml").read_text())
    assert links["edit_on_github"]["repository"] == URL.removeprefix("https://github.com/")
    assert (REPO / links["edit_on_github"]["path_prefix"] / "galaxy.yml").is_file()
    for link in links["extra_links"] + links["communication"]["forums"]:
        assert link["url"].startswith(URL + "/"), link
    for path in [COLLECTION / "galaxy.yml", COLLECTION / "README.md", REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        # Example hosts stay fine for a user's own repositories (a SoT), never for this project's.
        text = path.read_text()
        assert "example.invalid" not in text and not re.search(r"example\.[a-z]+/vaquero(\.git)?\b", text), path


def test_readme_carries_the_certified_sections_and_its_links_exist() -> None:
    text = (COLLECTION / "README.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", text, re.M)}
    for want in ("requirements", "installation", "use cases", "testing", "support", "release notes and roadmap", "licence"):
        assert want in headings, f"README.md has no '## {want}' section: {sorted(headings)}"
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("https://"):
            assert (COLLECTION / target).exists(), f"README.md links to missing {target}"
    assert "vaquero-metal-controller" in text
    assert not re.search(r"pip install vaquero(\s|$|`)", text + (REPO / "README.md").read_text() + (REPO / "docs" / "collection.md").read_text())


def _changelog_cmd() -> list[str]:
    exe = VENV_BIN / "antsibull-changelog"
    assert exe.is_file(), "antsibull-changelog missing: pip install the test extra"
    return [str(exe)]


def _copy_changelog_tree(tmp: Path) -> Path:
    dst = tmp / "metal"
    dst.mkdir()
    shutil.copy(COLLECTION / "galaxy.yml", dst / "galaxy.yml")
    shutil.copy(COLLECTION / "CHANGELOG.rst", dst / "CHANGELOG.rst")
    shutil.copytree(COLLECTION / "changelogs", dst / "changelogs", ignore=shutil.ignore_patterns(".plugin-cache.yaml"))
    return dst


def test_changelog_fragments_lint_and_the_rendered_changelog_is_current(tmp_path: Path) -> None:
    lint = subprocess.run([*_changelog_cmd(), "lint"], cwd=COLLECTION, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    fragments = sorted((COLLECTION / "changelogs" / "fragments").glob("*.yml"))
    assert fragments, "no changelog fragment for the changes since the last release"
    # CHANGELOG.rst is what `antsibull-changelog generate` makes of changelogs/changelog.yaml.
    copy = _copy_changelog_tree(tmp_path)
    (copy / "changelogs" / ".plugin-cache.yaml").write_text("objects: {}\nplugins: {}\nversion: 0.1.0\n")
    subprocess.run([*_changelog_cmd(), "generate"], cwd=copy, check=True, capture_output=True, text=True, timeout=300)
    assert (copy / "CHANGELOG.rst").read_text() == (COLLECTION / "CHANGELOG.rst").read_text(), "CHANGELOG.rst is stale: run antsibull-changelog generate"
    assert "vaquero.metal.power - Power a host on" in (COLLECTION / "CHANGELOG.rst").read_text()


def test_changelog_lint_refuses_a_bad_fragment(tmp_path: Path) -> None:
    copy = _copy_changelog_tree(tmp_path)
    (copy / "changelogs" / "fragments" / "bad.yml").write_text("improvements:\n  - not a section antsibull-changelog knows\n")
    lint = subprocess.run([*_changelog_cmd(), "lint"], cwd=copy, capture_output=True, text=True, timeout=300)
    assert "bad.yml" in lint.stdout + lint.stderr and "improvements" in lint.stdout + lint.stderr, lint.stdout + lint.stderr


def test_a_release_renders_every_fragment(tmp_path: Path) -> None:
    copy = _copy_changelog_tree(tmp_path)
    (copy / "changelogs" / ".plugin-cache.yaml").write_text("objects: {}\nplugins: {}\nversion: 0.2.0\n")
    notes = []
    for frag in sorted((copy / "changelogs" / "fragments").glob("*.yml")):
        for section, entries in yaml.safe_load(frag.read_text()).items():
            if section != "trivial":
                notes += entries
    res = subprocess.run([*_changelog_cmd(), "release", "--version", "0.2.0", "--date", "2026-12-03"], cwd=copy, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    rendered = " ".join((copy / "CHANGELOG.rst").read_text().split())
    assert "v0.2.0" in rendered
    for note in notes:
        assert " ".join(note.split()) in rendered, f"not in the released changelog: {note}"


@pytest.fixture(scope="module")
def tarball_members(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(out)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    (tarball,) = out.glob("vaquero-metal-*.tar.gz")
    with tarfile.open(tarball) as tar:
        return {m.name for m in tar.getmembers()}


@pytest.mark.parametrize("path", ["requirements.txt", "bindep.txt", "meta/execution-environment.yml", "COPYING", "CHANGELOG.rst", "docs/docsite/links.yml"])
def test_the_tarball_ships_the_packaging_files(path: str, tarball_members: set[str]) -> None:
    assert path in tarball_members


def _lock(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_ci_tool_venvs_pin_the_oldest_ansible_core_and_the_main_tools() -> None:
    oldest = _lock(REPO / "scripts" / "venvs" / "ansible-core-2.16.txt")["ansible-core"]
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    lowest = next(Version(s.version) for s in SpecifierSet(runtime["requires_ansible"]) if s.operator == ">=")
    assert (oldest.major, oldest.minor) == (lowest.major, lowest.minor), f"sanity runs on {oldest}, the collection supports {lowest}"
    # galaxy-importer checks with the ansible-core and ansible-lint the main venv has.
    importer, main = _lock(REPO / "scripts" / "venvs" / "galaxy-importer.txt"), _constraints()
    assert "galaxy-importer" in importer
    for name in ("ansible-core", "ansible-lint", "ansible-builder"):
        assert importer[name] == main[name], f"{name}: {importer[name]} for galaxy-importer, {main[name]} in constraints.txt"
