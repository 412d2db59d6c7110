#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virtual_media
short_description: Insert or eject an ISO in a host's virtual CD/DVD through its Redfish BMC
version_added: 0.1.0
description:
  - Finds the virtual media slot that takes a CD or DVD (the System's C(VirtualMedia) collection,
    else that of the Manager managing the System), reads what it holds and changes it only when it
    differs from O(state).
  - O(state=inserted) attaches O(image_url) read-only with C(VirtualMedia.InsertMedia); a slot holding
    another image is ejected first. The BMC fetches the image itself, from its own address.
  - Every change is read back. V(inserted) succeeds only when the slot reports C(Inserted=true) with
    exactly the image URL as C(Image); V(ejected) only when it reports C(Inserted=false). Otherwise the
    module fails with C(error_kind=virtual_media) naming what the BMC reads back.
  - An image the BMC cannot fetch (wrong URL, HTTP 404, a token the agent refuses) fails
    the module with C(error_kind=virtual_media) and the BMC's message.
  - The value of a C(token) query parameter in the image URL (the agent's boot ISO token) is shown as
    C(***) in every result and message.
  - Redfish only. The agent serves a C(virtual_media) host's boot ISO at
    C(/v1/boot/iso/<host>.iso?token=<ISO token>); see docs/netboot.md.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.bmc
options:
  state:
    description:
      - Whether the slot must hold O(image_url) (V(inserted)) or nothing (V(ejected)).
    type: str
    required: true
    choices: [inserted, ejected]
  image_url:
    description:
      - http:// or https:// URL of the ISO, as the BMC must fetch it.
      - Printable ASCII without spaces or quotes, at most 2048 characters.
      - With O(state=inserted), give this or O(iso_host), not both.
    type: str
  iso_host:
    description:
      - Insert the boot ISO the site agent serves for this SoT host (boot method C(virtual_media)),
        which must be armed for install (M(vaquero.metal.boot_mode) O(vaquero.metal.boot_mode#module:mode=install)).
      - The module asks the agent's admin API for the ISO's URL (C(GET /v1/boot/iso-url/<host>)) with the
        admin token read from E(VAQUERO_AGENT_TOKEN) on the node running the module; the URL carries a token
        valid for that ISO only, until the host calls back. It never passes through Ansible variables.
    type: str
  sot:
    description:
      - The SoT folder (normally C(vaquero_sot_root)), where the agent of O(iso_host) is found.
    type: path
  agent_url:
    description:
      - The agent's base URL; defaults to the first agent of the site of O(iso_host).
    type: str
  slot:
    description:
      - The C(@odata.id) of the virtual media slot to use, when the automatic choice (the first slot
        taking a CD or DVD) is not the right one.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads the slot and reports whether it would change, without changing it.
  diff_mode:
    support: full
    description: Shows whether media is inserted, and which image (token masked), before and after.
notes:
  - sushy-emulator downloads the image when it is inserted, as real BMCs do, so the URL must be
    reachable from the BMC.
"""

EXAMPLES = r"""
- name: Attach the host's boot ISO served by the agent
  vaquero.metal.virtual_media:
    bmc_type: redfish
    bmc_address: 10.0.0.11
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    ca_path: /etc/vaquero/bmc-ca.pem
    host_name: "{{ inventory_hostname }}"
    state: inserted
    image_url: "http://10.0.0.1:8080/v1/boot/iso/{{ inventory_hostname }}.iso?token={{ install_token }}"

- name: Attach the boot ISO the site agent serves for this host (armed for install)
  vaquero.metal.virtual_media:
    bmc_type: redfish
    bmc_address: 10.0.0.11
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    state: inserted
    iso_host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"

- name: Take the ISO out after the install
  vaquero.metal.virtual_media:
    bmc_type: redfish
    bmc_address: 10.0.0.11
    bmc_username: admin
    bmc_password: "{{ bmc_password }}"
    ca_path: /etc/vaquero/bmc-ca.pem
    state: ejected
"""

RETURN = r"""
media:
  description: The slot as read from the BMC after the module ran (as predicted, in check mode).
  returned: success
  type: dict
  contains:
    slot:
      description: The C(@odata.id) of the slot.
      type: str
      sample: /redfish/v1/Systems/1/VirtualMedia/Cd
    inserted:
      description: Whether the slot holds media.
      type: bool
      sample: true
    image:
      description: The image URL the slot holds, its token masked; null when empty.
      type: str
      sample: "http://10.0.0.1:8080/v1/boot/iso/node1.iso?token=***"
    media_types:
      description: The C(MediaTypes) the slot takes.
      type: list
      elements: str
      sample: [CD, DVD]
previous_media:
  description: The slot as read from the BMC before any change.
  returned: success
  type: dict
  sample: {"slot": "/redfish/v1/Systems/1/VirtualMedia/Cd", "inserted": false, "image": null, "media_types": ["CD", "DVD"]}
"""


from ansible_collections.vaquero.metal.plugins.module_utils.bmc import bmc_module, fail, open_module_bmc, run
from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    AGENT_TOKEN_ENV,
    HOST_NAME,
    BmcError,
    CallbackError,
    SecretMissing,
    VirtualMedia,
    agent_url,
    boot_iso_url,
    load,
    resolve_secret,
)


def _agent_iso(module):
    """The boot ISO URL of O(iso_host), from its agent's admin API."""
    p = module.params
    if not HOST_NAME.match(p["iso_host"]):
        module.fail_json(msg="iso_host must be a SoT host name (a-z, 0-9, -), not %r" % p["iso_host"][:64], error_kind="invalid_option")
    if not p["agent_url"] and not p["sot"]:
        module.fail_json(msg="iso_host needs sot (or agent_url)", error_kind="invalid_option")
    try:
        base = p["agent_url"] or agent_url(load(p["sot"], semantic=False), p["iso_host"])
    except Exception as exc:  # the SoT could not be read, or the host has no agent
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc), error_kind="invalid_option")
    try:
        token = resolve_secret(env=AGENT_TOKEN_ENV)
    except SecretMissing:
        token = None
    try:
        url = boot_iso_url(base, p["iso_host"], token)
    except CallbackError as exc:
        if module.check_mode:
            return None  # in a check run nothing armed the host: the agent has no ISO URL for it yet
        module.fail_json(msg=str(exc), error_kind="agent")
    module.no_log_values.add(url)
    return url


def _diff(state):
    return dict(inserted=state["inserted"], image=state["image"])


def main():
    module = bmc_module(
        dict(
            state=dict(type="str", required=True, choices=["inserted", "ejected"]),
            image_url=dict(type="str", no_log=True),
            iso_host=dict(type="str"),
            sot=dict(type="path"),
            agent_url=dict(type="str"),
            slot=dict(type="str"),
        )
    )
    p = module.params
    if p["image_url"] and p["iso_host"]:
        module.fail_json(msg="give image_url or iso_host, not both", error_kind="invalid_option")
    if p["state"] == "inserted" and not (p["image_url"] or p["iso_host"]):
        module.fail_json(msg="state=inserted needs image_url or iso_host", error_kind="invalid_option")
    if p["bmc_type"] != "redfish":
        module.fail_json(msg="virtual media is Redfish only (bmc_type=redfish)", error_kind="unsupported", host_name=p["host_name"] or p["bmc_address"])
    bmc = open_module_bmc(module)

    def act(bmc):
        try:
            vm = VirtualMedia(bmc, slot=p["slot"])
        except BmcError as exc:
            fail(module, exc)
        if p["state"] == "inserted":
            url = p["image_url"] or _agent_iso(module)
            if url is None:
                before = vm.status().as_dict()
                after = dict(before, inserted=True, image="(the agent's boot ISO of %s, once armed)" % p["iso_host"])
                return dict(changed=True, media=after, previous_media=before, diff=dict(before=_diff(before), after=_diff(after)))
            r = vm.insert(url, check=module.check_mode)
        else:
            r = vm.eject(check=module.check_mode)
        before, after = r.before.as_dict(), r.after.as_dict()
        return dict(changed=r.changed, media=after, previous_media=before, diff=dict(before=_diff(before), after=_diff(after)))

    module.exit_json(**run(module, bmc, act))


if __name__ == "__main__":
    main()
