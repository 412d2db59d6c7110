#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wipe
short_description: Arm a host for a wipe of its disks at the site agent, wait for the wipe, and disarm it
version_added: 0.2.0
description:
  - Decommission through the site agent. O(state=armed) arms the host for a wipe
    (C(POST /v1/boot/wipe/<host>)); its next netboot boots the deploy ramdisk, which zeroes every
    fixed disk (O(erase)), reads the zeroed ranges back, reports the bytes zeroed and calls back.
  - O(state=wiped) waits for that callback and fails at once when the ramdisk reports a failure.
  - A host whose wipe already called back (with O(erase) or V(full)) and which the agent therefore no longer serves
    cannot be armed again; O(state=armed) then reports it unchanged, with RV(wiped) and that wipe's RV(report), so a
    decommission that starts over (a retry, a controller restart before the host was C(removed)) can finish.
  - O(state=disarmed) leaves the host served nothing by the agent - a wiped host already is
    (the unknown-MAC script, no DHCP reservation); a host still armed is disarmed.
  - The agent's admin token is read on the node running the module, at the moment of use, from
    the environment variable C(VAQUERO_AGENT_TOKEN) (or the Vaquero controller's secrets folder);
    it is never a module argument.
  - Needs the C(vaquero) Python package on the node running the module.
author:
  - Vaquero developers (@vaquero)
options:
  host:
    description: The host, as named in the SoT (normally C(inventory_hostname)).
    type: str
    required: true
  sot:
    description: The SoT folder that has the host (for a host removed from the SoT, the revision applied before).
    type: path
    required: true
  state:
    description: V(armed), V(wiped) (wait for the wipe's callback) or V(disarmed).
    type: str
    required: true
    choices: [armed, wiped, disarmed]
  erase:
    description:
      - With O(state=armed), V(signatures) zeroes the first and last MiB of every fixed disk and of each
        of its partitions; V(full) zeroes every byte. Neither is a secure erase (see docs/install.md).
    type: str
    choices: [signatures, full]
    default: signatures
  since:
    description: With O(state=wiped), epoch seconds; a callback before it does not count. Not negative.
    type: float
    default: 0
  timeout:
    description: With O(state=wiped), seconds to wait, from 1 to 86400.
    type: int
    default: 900
  url:
    description: The agent's base URL (C(http://) or C(https://)); defaults to the first agent of the host's site.
    type: str
requirements:
  - vaquero
notes:
  - Every state is read back from the agent's boot status (C(GET /v1/boot/status/<host>)) before
    success is reported.
attributes:
  check_mode:
    support: full
    description: Reads the agent's boot status and reports what a real run would change; changes nothing and does not wait.
  diff_mode:
    support: full
    description: Shows the agent's boot state of the host before and after.
"""

EXAMPLES = r"""
- name: Arm the host for a wipe of its disks
  vaquero.metal.wipe:
    host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"
    state: armed
    erase: signatures

- name: Wait for the wipe's callback
  vaquero.metal.wipe:
    host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"
    state: wiped
    timeout: 900
  register: wiped
"""

RETURN = r"""
status:
  description: The agent's boot state of the host after the run (before it, in check mode).
  returned: success
  type: dict
  sample: {"host": "node1", "state": "wiped", "script": "none", "report": {"bytes_zeroed": 6291456, "disks": ["vda"]}}
report:
  description: The wipe's callback (O(state=wiped), or O(state=armed) when the host was already wiped); C(bytes_zeroed), C(disks), C(erase).
  returned: when the wipe called back
  type: dict
  sample: {"result": "success", "mode": "wipe", "erase": "signatures", "bytes_zeroed": 6291456, "disks": ["vda"]}
wiped:
  description:
    - With O(state=armed), V(true) when the host was not armed because its wipe already called back
      and the agent no longer serves it (a decommission started over); the caller skips the boot and the wait.
  returned: when the host was already wiped
  type: bool
  sample: true
"""

import time

from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    AGENT_BASE_URL,
    AGENT_TOKEN_ENV,
    HOST_NAME,
    AgentRefused,
    CallbackError,
    SecretMissing,
    agent_url,
    arm_wipe,
    boot_status,
    load,
    resolve_secret,
    set_boot_mode,
    vaquero_module,
)


def read(module, base, host):
    try:
        return boot_status(base, host)
    except CallbackError as exc:
        module.fail_json(msg=str(exc))


def agent_token():
    """The agent's admin token, read at the moment of use (it goes only into the request header)."""
    try:
        return resolve_secret(env=AGENT_TOKEN_ENV)
    except SecretMissing:
        return None


def failure_of(status, since):
    if status.get("state") != "failed":
        return None
    at = status.get("since")
    if since and isinstance(at, (int, float)) and at < since:
        return None
    report = status.get("report") if isinstance(status.get("report"), dict) else {}
    return "the wipe of %s reported a failure: %s" % (status.get("host"), str(report.get("reason") or "no reason given")[:500])


def main():
    module = vaquero_module(
        dict(
            host=dict(type="str", required=True),
            sot=dict(type="path", required=True),
            state=dict(type="str", required=True, choices=["armed", "wiped", "disarmed"]),
            erase=dict(type="str", choices=["signatures", "full"], default="signatures"),
            since=dict(type="float", default=0),
            timeout=dict(type="int", default=900),
            url=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    host = p["host"]
    if not HOST_NAME.match(host):
        module.fail_json(msg="host must be a SoT host name (a-z, 0-9, -), not %r" % host[:64])
    if p["url"] is not None and not AGENT_BASE_URL.match(p["url"]):
        module.fail_json(msg="url must be an http:// or https:// base URL without query or spaces")
    if p["since"] < 0 or not 1 <= p["timeout"] <= 86400:
        module.fail_json(msg="since must not be negative and timeout must be 1 to 86400 seconds")
    try:
        base = p["url"] or agent_url(load(p["sot"], semantic=False), host)
    except Exception as exc:  # the SoT could not be read, or the host is not in it
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc))

    before = read(module, base, host)
    out = dict(status=before)
    if module._diff:
        out["diff"] = dict(before=dict(state=before.get("state"), script=before.get("script"), erase=before.get("erase")), after={})

    if p["state"] == "armed":
        if before.get("state") == "wipe" and before.get("erase") == p["erase"]:
            module.exit_json(changed=False, msg="%s: already armed for a wipe (erase %s)" % (host, p["erase"]), **out)
        if module._diff:
            out["diff"]["after"] = dict(state="wipe", script="wipe", erase=p["erase"])
        if module.check_mode:
            module.exit_json(changed=True, msg="would arm %s for a wipe (erase %s) at %s" % (host, p["erase"], base), **out)
        # 409 from a host the agent reports wiped: that wipe called back and the agent forgot the
        # host (no script, no reservation), so it cannot be armed again. A decommission started over
        # after that (a retry, a controller restart before `removed`) takes that wipe's report.
        try:
            arm_wipe(base, host, p["erase"], agent_token())
            refused = False
        except AgentRefused as exc:
            if exc.code != 409 or before.get("state") != "wiped":
                module.fail_json(msg=str(exc), **out)
            refused = True
        except CallbackError as exc:
            module.fail_json(msg=str(exc), **out)
        after = read(module, base, host)
        out["status"] = after
        if refused:
            report = after.get("report") if isinstance(after.get("report"), dict) else {}
            done = after.get("erase") or report.get("erase")
            if after.get("state") != "wiped" or done not in (p["erase"], "full"):
                why = "it reports state %s, last wipe erase %s" % (after.get("state"), done)
                module.fail_json(msg="the agent refused to arm %s for a wipe (erase %s): %s" % (host, p["erase"], why), **out)
            out.update(report=report, wiped=True)
            msg = "%s: already wiped (erase %s, %s bytes zeroed) and no longer served: not armed again" % (host, done, report.get("bytes_zeroed"))
            module.exit_json(changed=False, msg=msg, **out)
        if after.get("state") != "wipe" or after.get("erase") != p["erase"] or after.get("script") != "wipe":
            module.fail_json(msg="the agent accepted the wipe of %s but reports state %s" % (host, after.get("state")), **out)
        module.exit_json(changed=True, msg="%s: armed for a wipe (erase %s)" % (host, p["erase"]), **out)

    if p["state"] == "wiped":
        deadline = time.monotonic() + p["timeout"]
        status = before
        while True:
            since_ok = not p["since"] or float(status.get("since") or 0) >= p["since"]
            if status.get("state") == "wiped" and since_ok:
                report = status.get("report") or {}
                out.update(status=status, report=report)
                module.exit_json(changed=False, msg="%s: wiped, %s bytes zeroed" % (host, report.get("bytes_zeroed")), **out)
            why = failure_of(status, p["since"])
            if why is not None:
                module.fail_json(msg=why, **out)
            if module.check_mode:
                module.exit_json(changed=False, msg="check mode: %s is %s; not waiting" % (host, status.get("state")), **out)
            if time.monotonic() >= deadline:
                module.fail_json(msg="no wipe callback from %s within %ss (agent state %s)" % (host, p["timeout"], status.get("state")), **out)
            time.sleep(1)
            status = read(module, base, host)
            out["status"] = status

    # disarmed: a wiped host is served nothing already; any other is disarmed (localboot, or dropped when retired and wiped)
    if before.get("state") == "wiped" or before.get("script") in ("localboot", "none") and before.get("state") not in ("wipe", "install"):
        module.exit_json(changed=False, msg="%s: not armed (%s)" % (host, before.get("state")), **out)
    if module._diff:
        out["diff"]["after"] = dict(state="none", script="localboot")
    if module.check_mode:
        module.exit_json(changed=True, msg="would disarm %s at %s" % (host, base), **out)
    try:
        set_boot_mode(base, host, "localboot", agent_token())
    except CallbackError as exc:
        module.fail_json(msg=str(exc), **out)
    after = read(module, base, host)
    out["status"] = after
    if after.get("state") in ("wipe", "install"):
        module.fail_json(msg="the agent accepted the disarm of %s but reports state %s" % (host, after.get("state")), **out)
    module.exit_json(changed=True, msg="%s: disarmed" % host, **out)


if __name__ == "__main__":
    main()
