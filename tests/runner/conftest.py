"""Runner tests: a copy of the lab SoT, a Store, and a content folder whose playbooks stand in for
the BMC and netboot steps (the real roles' hook and host_state modules still run)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from lab_hooks import COMMAND_HOOKS

REPO = Path(__file__).resolve().parents[2]

FAKE_INSTALL = textwrap.dedent(
    """\
    - name: Fake install (no BMC, no netboot)
      hosts: all
      gather_facts: false
      connection: local
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
      tasks:
        - {name: Off, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: powering_off, reason: fake}}
        - {name: Netboot, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: netbooting, reason: fake}}
        - name: Work
          ansible.builtin.command: >-
            sh -c 'echo pw=[$VAQUERO_LAB_BMC_PASSWORD]; sleep $(cat sleep 2>/dev/null || echo 0);
            test ! -e {{ inventory_hostname }}.fail || { rm {{ inventory_hostname }}.fail; exit 1; }'
          args: {chdir: "{{ lookup('env', 'FAKE_DIR') }}"}
          changed_when: false
        - {name: Installing, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: installing, reason: fake}}
        - {name: Rebooting, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: rebooting, reason: fake}}
        - {name: Validating, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: validating, reason: fake}}
        - name: Validate hooks
          ansible.builtin.include_role: {name: vaquero.metal.hooks}
          vars: {hooks_phase: validate}
        - {name: Ready, vaquero.metal.host_state: {host: "{{ inventory_hostname }}", state: ready, reason: fake}}
    """
)


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "content"
    (root / "playbooks").mkdir(parents=True)
    (root / "ansible_collections").symlink_to(REPO / "ansible_collections")
    (root / "playbooks" / "install.yml").write_text(FAKE_INSTALL)
    (root / "playbooks" / "upgrade.yml").write_text(FAKE_INSTALL)
    fake = tmp_path / "fake"
    fake.mkdir()
    monkeypatch.setenv("VAQUERO_CONTENT_DIR", str(root))
    monkeypatch.setenv("FAKE_DIR", str(fake))
    monkeypatch.setenv("VAQUERO_CHILD_ENV", "FAKE_DIR")  # ansible-playbook's environment is allow-listed
    return fake


@pytest.fixture
def lab_sot(tmp_path: Path) -> Path:
    dst = tmp_path / "sot"
    shutil.copytree(REPO / "inventories" / "lab", dst)
    # The lab's validate hook asks the agent; here a command hook stands in.
    (dst / "hooks" / "lab-hooks.yaml").write_text(COMMAND_HOOKS)
    return dst
