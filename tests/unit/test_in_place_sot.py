"""The in-place upgrade's SoT side, on a copy of the lab SoT: a profile's `packages` (typed, one
version each), the cluster's `upgrade.ssh` (required when a reboot upgrade has packages to
install), what the inventory hands the rolling_upgrade role, what the plan and the cloud-init
template see."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vaquero.plan import make_plan
from vaquero.sot import SoTInvalid, load
from vaquero.sot.models import Package

REPO = Path(__file__).resolve().parents[2]
PROFILE = "profiles/lab-debian-12.yaml"
SSH = {"user": "debian", "key": "/etc/vaquero/ssh/id_ed25519"}


def lab(tmp_path: Path, name: str = "sot") -> Path:
    dst = tmp_path / name
    shutil.copytree(REPO / "inventories" / "lab", dst)
    cluster = dst / "clusters" / "lab.yaml"
    cluster.write_text(cluster.read_text().replace("profile: lab-linux", "profile: lab-debian-12"))
    return dst


def set_yaml(path: Path, **fields: object) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(fields)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def errors(root: Path) -> list[str]:
    with pytest.raises(SoTInvalid) as exc:
        load(root)
    return [str(e) for e in exc.value.errors]


@pytest.mark.parametrize(
    ("name", "version"),
    [("Vaquero-probe", "1"), ("x", "1"), ("probe;reboot", "1"), ("probe", "1 2"), ("probe", "$(id)"), ("probe", ":1"), ("probe", "1=2"), ("-probe", "1")],
)
def test_package_names_and_versions_outside_debian_policy_are_refused(name: str, version: str) -> None:
    with pytest.raises(ValueError):
        Package(name=name, version=version)


def test_package_fields_of_debian_policy_are_taken() -> None:
    for name, version in (("vaquero-probe", "2"), ("libc6", "2.36-9+deb12u4"), ("g++", "4:12.2.0-3"), ("python3.11", "3.11.2-6~bpo1")):
        assert Package(name=name, version=version).version == version


def test_a_package_twice_and_a_reboot_upgrade_without_ssh_are_errors_with_file_and_field(tmp_path: Path) -> None:
    root = lab(tmp_path)
    set_yaml(root / PROFILE, packages=[{"name": "vaquero-probe", "version": "1"}, {"name": "vaquero-probe", "version": "2"}])
    found = errors(root)
    assert any(PROFILE in e and "packages" in e and "vaquero-probe is listed more than once" in e for e in found), found

    set_yaml(root / PROFILE, packages=[{"name": "vaquero-probe", "version": "1"}])
    set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reboot"})
    found = errors(root)
    assert any("clusters/lab.yaml" in e and "upgrade" in e and "give upgrade.ssh (user, key)" in e for e in found), found

    # reinstall needs no SSH; reboot with SSH is whole
    set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reinstall"})
    load(root)
    set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reboot", "ssh": {**SSH, "key": "relative/key"}})
    assert any("ssh" in e and "key" in e for e in errors(root))
    set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reboot", "ssh": SSH, "reboot_timeout": 5})
    assert any("reboot_timeout" in e for e in errors(root))
    set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reboot", "ssh": SSH})
    sot = load(root)
    assert sot.clusters["lab"].upgrade.ssh is not None and sot.clusters["lab"].upgrade.reboot_timeout == 600


def test_a_package_version_change_is_an_upgrade_the_plan_shows(tmp_path: Path) -> None:
    old_root, new_root = lab(tmp_path, "old"), lab(tmp_path, "new")
    for root, version in ((old_root, "1"), (new_root, "2")):
        set_yaml(root / PROFILE, packages=[{"name": "vaquero-probe", "version": version}])
        set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reboot", "ssh": SSH})
    plan = make_plan(load(old_root), load(new_root))
    assert {h.host: h.action for h in plan.hosts} == {f"node{i}": "upgrade" for i in range(1, 5)}
    reasons = " ".join(r for h in plan.hosts for r in h.reasons)
    assert "profile lab-debian-12: packages: [{'name': 'vaquero-probe', 'version': '1'}] -> [{'name': 'vaquero-probe', 'version': '2'}]" in reasons


def test_the_inventory_hands_the_role_the_packages_and_the_ssh_login(tmp_path: Path) -> None:
    root = lab(tmp_path)
    set_yaml(root / PROFILE, packages=[{"name": "vaquero-probe", "version": "2"}])
    set_yaml(root / "clusters" / "lab.yaml", upgrade={"strategy": "reboot", "ssh": SSH})
    inv = root / "inventory.vaquero.yml"
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-inventory"), "-i", str(inv), "--host", "node2"], capture_output=True, text=True, check=True, cwd=REPO
    )
    hv = json.loads(out.stdout)
    assert hv["vaquero_packages"] == [{"name": "vaquero-probe", "version": "2"}]
    assert hv["vaquero_upgrade"] == {"strategy": "reboot", "rollback": False, "ssh": {**SSH, "port": 22, "trust_first_key": False}, "reboot_timeout": 600}
    assert hv["ansible_host"] == "10.90.0.12"


def test_the_cloud_init_template_installs_the_profile_packages_from_the_site_repository(tmp_path: Path) -> None:
    from vaquero.render import render_site

    root = lab(tmp_path)
    set_yaml(root / PROFILE, packages=[{"name": "vaquero-probe", "version": "1"}])
    cluster = yaml.safe_load((root / "clusters" / "lab.yaml").read_text())
    cluster["vars"] = {"apt_repo": "http://10.90.0.1:8081/"}
    (root / "clusters" / "lab.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    bundle = render_site(load(root), "lab")
    user_data = yaml.safe_load(bundle.hosts["node1"].config.decode())
    assert user_data["packages"] == [["vaquero-probe", "1"]]
    assert user_data["apt"] == {
        "preserve_sources_list": False,
        "sources_list": "deb [trusted=yes] http://10.90.0.1:8081/ ./\n",
        "conf": 'Dir::Etc::SourceParts "/etc/apt/lab-sources.d";\n',
    }
    assert {"path": "/etc/apt/lab-sources.d/none.list", "content": ""} in user_data["write_files"]
