#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipxe_config
short_description: Render per-host iPXE scripts, keyed by MAC, from the SoT and the hosts' boot state
version_added: 0.1.0
description:
  - Writes one iPXE script per MAC of the selected hosts into O(dest), named like iPXE's
    C(${mac:hexhyp}) (for example C(52-54-00-00-10-01)), so O(dest) can be served as the
    C(/v1/boot/ipxe/) folder of any HTTP server; plus C(boot.ipxe), the chain script DHCP hands to
    iPXE, and C(default), the script for unknown MACs, which never installs anything.
  - O(state=install) renders the host's profile - kernel, initrds and the kernel command line with
    the callback and config URLs. O(state=localboot) boots the local disk (BIOS C(sanboot) of the
    first disk, UEFI C(exit) to the next boot device), so an installed host never reinstalls.
  - Files are only written when their bytes change, through a temporary file and a rename.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.netboot
options:
  dest:
    description:
      - The folder of the scripts. Created when missing.
    type: path
    required: true
  hosts:
    description:
      - The hosts (SoT names) whose scripts are written. Defaults to every host of the site.
    type: list
    elements: str
  state:
    description:
      - What the selected hosts boot into next.
    type: str
    required: true
    choices: [install, localboot]
attributes:
  check_mode:
    support: full
    description: Renders the scripts and reports which would change, writes nothing.
  diff_mode:
    support: full
    description: Shows each changed script before and after.
seealso:
  - module: vaquero.metal.dhcp_config
  - module: vaquero.metal.wait_callback
"""

EXAMPLES = r"""
- name: Arm node1 for install
  vaquero.metal.ipxe_config:
    sot: "{{ sot_path }}"
    site: lab
    dest: /var/lib/vaquero/http/v1/boot/ipxe
    hosts: [node1]
    state: install

- name: Every host of the site boots from disk
  vaquero.metal.ipxe_config:
    sot: "{{ sot_path }}"
    dest: /var/lib/vaquero/http/v1/boot/ipxe
    state: localboot
"""

RETURN = r"""
scripts:
  description: The script written for each MAC (file name) and what it does.
  returned: always
  type: dict
  sample: {"52-54-00-00-10-01": {"host": "node1", "state": "install", "changed": true}}
dest:
  description: The folder of the scripts.
  returned: always
  type: str
  sample: /var/lib/vaquero/http/v1/boot/ipxe
"""

import os

from ansible_collections.vaquero.metal.plugins.module_utils.core import mac_key, unknown_script, write_file
from ansible_collections.vaquero.metal.plugins.module_utils.netboot import bundle, load_sot, merge_diffs, netboot_module


def main():
    module = netboot_module(
        dict(
            dest=dict(type="path", required=True),
            hosts=dict(type="list", elements="str"),
            state=dict(type="str", required=True, choices=["install", "localboot"]),
        )
    )
    p = module.params
    sot = load_sot(module)
    b = bundle(module, sot)
    names = p["hosts"] if p["hosts"] is not None else sorted(b.hosts)
    unknown = [n for n in names if n not in b.hosts]
    if unknown:
        module.fail_json(msg="unknown host(s) in site %s: %s" % (b.site.name, ", ".join(unknown)))
    if p["state"] == "install":
        bare = [n for n in names if b.hosts[n].install is None]
        if bare:
            module.fail_json(msg="host(s) without a profile cannot be installed: %s" % ", ".join(bare))

    dest = p["dest"]
    results = [
        write_file(os.path.join(dest, "boot.ipxe"), b.chain, check=module.check_mode),
        write_file(os.path.join(dest, "default"), unknown_script(), check=module.check_mode),
    ]
    scripts = {}
    for name in names:
        hb = b.hosts[name]
        text = hb.install if p["state"] == "install" else hb.localboot
        for mac in hb.macs:
            key = mac_key(mac)
            r = write_file(os.path.join(dest, key), text, check=module.check_mode)
            results.append(r)
            scripts[key] = dict(host=name, state=p["state"], changed=r.changed)
    out = dict(changed=any(r.changed for r in results), scripts=scripts, dest=dest)
    if module._diff:
        out["diff"] = merge_diffs(results)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
