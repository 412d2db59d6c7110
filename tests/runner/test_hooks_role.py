"""The hooks role with real Ansible: a `tasks` hook is included in the play, a `playbook` hook runs
its own ansible-playbook with the SoT as inventory; both report into the host's timeline."""

from __future__ import annotations

import textwrap
from pathlib import Path

from vaquero.plan import make_plan
from vaquero.runner import records as R
from vaquero.runner.worker import RunWorker
from vaquero.sot import empty_sot, load
from vaquero.state.machine import timeline
from vaquero.state.sqlite import SQLiteStore


def test_tasks_and_playbook_hooks(lab_sot: Path, content: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    (lab_sot / "tasks").mkdir()
    (lab_sot / "tasks" / "mark.yml").write_text(
        textwrap.dedent(
            f"""\
            - name: Mark from a tasks hook
              ansible.builtin.copy:
                dest: "{marks}/tasks-{{{{ inventory_hostname }}}}"
                content: "{{{{ vaquero_profile }}}}"
                mode: "0644"
            """
        )
    )
    (lab_sot / "tasks" / "check.yml").write_text(
        textwrap.dedent(
            f"""\
            - name: A playbook hook
              hosts: all
              gather_facts: false
              connection: local
              tasks:
                - name: Mark
                  ansible.builtin.copy:
                    dest: "{marks}/playbook-{{{{ inventory_hostname }}}}"
                    content: "{{{{ vaquero_cluster }}}}"
                    mode: "0644"
            """
        )
    )
    (lab_sot / "hooks" / "lab-hooks.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: vaquero/v1
            kind: Hook
            name: announce-drain
            type: command
            command: "true"
            ---
            apiVersion: vaquero/v1
            kind: Hook
            name: agent-saw-callback
            type: tasks
            file: tasks/mark.yml
            ---
            apiVersion: vaquero/v1
            kind: Hook
            name: play-check
            type: playbook
            file: tasks/check.yml
            timeout: 120
            """
        )
    )
    text = (lab_sot / "clusters" / "lab.yaml").read_text().replace("validate: [agent-saw-callback]", "validate: [agent-saw-callback, play-check]")
    (lab_sot / "clusters" / "lab.yaml").write_text(text)
    store = SQLiteStore(tmp_path / "state.db")
    sot = load(lab_sot, sha="d" * 40)
    plan = make_plan(empty_sot(), sot)
    store.put(R.plan_key("p1"), {"id": "p1", "sha": "d" * 40, "root": str(lab_sot), "state": "approved", "plan": plan.to_dict(), "cancel_requested": False})
    RunWorker(store, tmp_path / "data").tick()
    run = store.get(R.run_key("p1")).value
    assert run["state"] == "succeeded", run
    for h in ("node1", "node2", "node3", "node4"):
        assert (marks / f"tasks-{h}").read_text() == "lab-linux"
        assert (marks / f"playbook-{h}").read_text() == "lab"
        hooks = [e["detail"]["hook"] for e in timeline(store, h) if e["detail"].get("hook")]
        assert [x["name"] for x in hooks] == ["agent-saw-callback", "play-check"]
        assert hooks[0]["include"].endswith("tasks/mark.yml") and hooks[1]["attempts"][0]["rc"] == 0
    store.close()
