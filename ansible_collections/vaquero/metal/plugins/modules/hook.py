#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hook
short_description: Run one Vaquero hook for one host
version_added: 0.1.0
description:
  - Runs a hook declared in the SoT (a C(Hook) document) for a host, with the hook's timeout, retries
    and delay, and returns every attempt's output (the controller keeps it in the host's timeline).
  - Types are C(wait_for_ssh), C(ssh_check) (log in with the SoT's key as C(user) and check the hostname,
    the SoT address and that C(unit) is active), C(http_check) (url, status, body), C(command), C(kubernetes_drain) and
    C(kubernetes_uncordon) (through kubectl when it is installed), C(playbook) (a playbook file in
    the SoT repository, run with the SoT as inventory, limited to the host).
  - A C(tasks) hook is not run here. The module returns its task file as C(include) and the
    C(vaquero.metal.hooks) role includes it.
  - Needs the C(vaquero) Python package on the node running the module.
author:
  - Vaquero developers (@vaquero)
options:
  name:
    description: The hook's name in the SoT.
    type: str
    required: true
  host:
    description: The host, as named in the SoT (normally C(inventory_hostname)).
    type: str
    required: true
  phase:
    description: The phase the hook runs in; kept with its output.
    type: str
    required: true
    choices: [pre_shutdown, pre_reboot, post_reboot, validate]
  sot:
    description: The SoT folder (normally C(vaquero_sot_root) from the C(vaquero.metal.sot) inventory).
    type: path
    required: true
  ssh_host_keys:
    description:
      - The SSH host public keys (V(type base64) lines) the host's installed OS reported when it phoned home
        (the C(ssh_host_keys) that M(vaquero.metal.wait_callback) returns). An C(ssh_check) hook then
        accepts only a host that shows one of them, and fails at once when another key answers.
      - Omitted or empty, an C(ssh_check) trusts the first key the host shows.
    type: list
    elements: str
requirements:
  - vaquero
notes:
  - C(command), C(playbook), C(kubernetes_drain) and C(kubernetes_uncordon) hooks report a change;
    C(http_check), C(wait_for_ssh) and C(ssh_check) only look, and C(tasks) hooks leave the changes to the tasks
    the role includes, so those report none.
attributes:
  check_mode:
    support: partial
    description: The hook is not run; the result predicts what a real run reports.
    details:
      - In check mode the hook is not run. The hook and the host are looked up in the SoT as in a
        real run (an unknown hook or host fails the same way), and C(changed) is what a
        passing real run reports for that hook type.
      - A C(tasks) hook returns its task file in RV(include) in both modes, so the role includes
        it and its tasks run in check mode.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Drain the host
  vaquero.metal.hook:
    name: drain-node
    host: "{{ inventory_hostname }}"
    phase: pre_shutdown
    sot: "{{ vaquero_sot_root }}"
"""

RETURN = r"""
vaquero_hook:
  description: The hook's result, every attempt with its output.
  returned: always
  type: dict
  sample: {"name": "drain", "type": "command", "phase": "pre_shutdown", "host": "node1", "ok": true,
           "attempts": [{"number": 1, "ok": true, "output": "drained", "seconds": 0.1, "rc": 0}], "include": null}
include:
  description: For a C(tasks) hook, the task file to include; null for the other types.
  returned: always
  type: str
  sample: /srv/sot/tasks/flush-cache.yml
"""

from ansible_collections.vaquero.metal.plugins.module_utils.core import HookError, SoTError, load, run_hook, vaquero_module

# The hook types that only look; the others act on the host (a tasks hook's tasks report for it).
LOOKING = ("http_check", "wait_for_ssh", "ssh_check", "tasks")


def changes(hook_type):
    """What a passing run of a ``hook_type`` hook reports as changed: one answer for both modes."""
    return hook_type not in LOOKING


def main():
    module = vaquero_module(
        dict(
            name=dict(type="str", required=True),
            host=dict(type="str", required=True),
            phase=dict(type="str", required=True, choices=["pre_shutdown", "pre_reboot", "post_reboot", "validate"]),
            sot=dict(type="path", required=True),
            ssh_host_keys=dict(type="list", elements="str", no_log=False),  # public keys: nothing secret
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        sot = load(p["sot"], semantic=False)
    except (SoTError, Exception) as exc:  # SoTInvalid, SourceError: the SoT tree is unusable
        module.fail_json(msg="cannot load the SoT at %s: %s" % (p["sot"], exc))
    empty = dict(name=p["name"], host=p["host"], phase=p["phase"], ok=False, attempts=[])
    hook = sot.hooks.get(p["name"])
    if module.check_mode and (hook is None or hook.type != "tasks"):
        # Nothing runs; the same lookups as run_hook, so a real run's failures are predicted too.
        if hook is None:
            module.fail_json(msg="hook %r is not defined in the SoT" % p["name"], vaquero_hook=empty, include=None)
        if sot.host(p["host"]) is None:
            module.fail_json(msg="host %s is not in the SoT at %s" % (p["host"], sot.root), vaquero_hook=empty, include=None)
        predicted = dict(empty, type=hook.type, ok=True, include=None)
        module.exit_json(changed=changes(hook.type), msg="would run hook %s (%s)" % (p["name"], hook.type), vaquero_hook=predicted, include=None)
    # A tasks hook runs nothing here (run_hook only finds its file), so check mode takes this path too.
    try:
        result = run_hook(sot, p["name"], p["host"], p["phase"], host_keys=p["ssh_host_keys"] or None)
    except HookError as exc:
        module.fail_json(msg=str(exc), vaquero_hook=empty, include=None)
    data = result.to_dict()
    if not result.ok:
        module.fail_json(msg=result.message, vaquero_hook=data, include=None)
    module.exit_json(changed=changes(result.type), msg=result.message, vaquero_hook=data, include=result.include)


if __name__ == "__main__":
    main()
