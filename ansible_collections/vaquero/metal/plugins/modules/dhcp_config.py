#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dhcp_config
short_description: Render a site's DHCP server configuration (dnsmasq or ISC Kea) from the SoT
version_added: 0.1.0
description:
  - Writes the DHCP configuration of a site - static reservations by MAC with the host name
    (option 12), routers, DNS (6), NTP (42, always sent), domain (15) - and the netboot rules -
    legacy PXE firmware gets the iPXE binary over TFTP (BIOS C(undionly.kpxe), UEFI O(efi_file),
    picked by option 93), UEFI HTTP boot (arch 16) gets O(efi_file) over HTTP, and iPXE itself
    (user class C(iPXE), option 175) gets the agent's HTTP chain script.
  - A network in C(proxy) mode leaves addresses to an existing DHCP server and answers PXE only
    (dnsmasq only; Kea has no ProxyDHCP and the module fails).
  - The candidate is checked by the real daemon (C(dnsmasq --test) or C(kea-dhcp4 -t)) before it
    replaces O(dest); the file is only written when its bytes change, through a temporary file
    and a rename.
  - O(mode), O(owner), O(group) and the other file attributes are applied to O(dest) and
    O(hosts_file) the way M(ansible.builtin.copy) applies them (Ansible's own file-attribute code),
    so O(mode) written unquoted in YAML as 0644 (read as the integer 420) means C(0644). Without
    O(mode), a new file gets C(0644) and an existing file keeps its mode.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.netboot
  - ansible.builtin.files
options:
  dest:
    description:
      - The configuration file to write.
    type: path
    required: true
  flavor:
    description:
      - The DHCP server the configuration is for.
    type: str
    default: dnsmasq
    choices: [dnsmasq, kea]
  hosts_file:
    description:
      - dnsmasq only. Write the reservations to this file (a C(dhcp-hostsfile), re-read by dnsmasq on
        SIGHUP) instead of inline in O(dest).
    type: path
  interface:
    description:
      - The interface the server listens on, overriding the networks' C(interface) in the SoT.
    type: str
  efi_file:
    description:
      - The iPXE binary for UEFI firmware.
    type: str
    default: ipxe.efi
    choices: [ipxe.efi, snponly.efi]
  validate:
    description:
      - Check the candidate with the daemon before writing it. The daemon must be installed; Kea also
        needs the interfaces to exist on the node running the module.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Renders and validates, reports whether the files or their attributes would change, writes nothing.
  diff_mode:
    support: full
    description: Shows the configuration before and after, and each changed file attribute (mode, owner, group).
seealso:
  - module: vaquero.metal.ipxe_config
  - module: vaquero.metal.assets
"""

EXAMPLES = r"""
- name: dnsmasq configuration of the lab site
  vaquero.metal.dhcp_config:
    sot: "{{ sot_path }}"
    site: lab
    dest: /etc/vaquero/dnsmasq.conf
    hosts_file: /etc/vaquero/dnsmasq.hosts
  notify: Reload dnsmasq

- name: Kea configuration, UEFI hosts get snponly.efi
  vaquero.metal.dhcp_config:
    sot: "{{ sot_path }}"
    site: dc-west
    flavor: kea
    efi_file: snponly.efi
    dest: /etc/kea/kea-dhcp4.conf
    owner: root
    group: _kea
    mode: "0640"
"""

RETURN = r"""
dest:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/vaquero/dnsmasq.conf
flavor:
  description: The DHCP server the configuration is for.
  returned: always
  type: str
  sample: dnsmasq
hosts:
  description: The number of hosts with a reservation.
  returned: always
  type: int
  sample: 4
sha256:
  description: The sha256 of the rendered configuration.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
mode:
  description: Permissions of O(dest) after the run (added by Ansible for a result naming a file).
  returned: when O(dest) exists
  type: str
  sample: "0644"
"""

import hashlib
import os
import re
from dataclasses import replace

from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    DhcpConfigError,
    DhcpDaemonMissing,
    check_dhcp_config,
    render_dhcp,
    render_dnsmasq,
    render_dnsmasq_hosts,
    site_hosts,
    write_file,
)
from ansible_collections.vaquero.metal.plugins.module_utils.netboot import bundle, load_sot, netboot_module

NEW_FILE_MODE = 0o644
_OCTAL = re.compile(r"^0?[0-7]{3,4}$")
_SYMBOLIC = re.compile(r"^[ugoa]*[-+=][rwxXstugo]*(,[ugoa]*[-+=][rwxXstugo]*)*$")


def numeric_mode(module, mode):
    """The permission bits ``mode`` asks for, None for a symbolic mode (applied after the write).

    Checked before anything is written, so a bad mode loses nothing. An int is already the bits
    (YAML reads an unquoted 0644 as 420 == 0o644): re-reading its digits as octal was the bug."""
    if mode is None:
        return None
    if isinstance(mode, int) and not isinstance(mode, bool):
        if 0 <= mode <= 0o7777:
            return mode
    elif isinstance(mode, str):
        if _OCTAL.match(mode):
            return int(mode, 8)
        if _SYMBOLIC.match(mode):
            return None
    module.fail_json(msg="mode must be octal (0644, '0644') or symbolic (u=rw,g=r,o=r), not %r" % (mode,))


def check_with_daemon(module, flavor, text, hosts_text):
    """The daemon's own check (vaquero.render.dhcp_check, the one the agent runs too)."""
    try:
        check_dhcp_config(text, flavor, hosts_text=hosts_text, hosts_file=module.params["hosts_file"])
    except DhcpDaemonMissing as exc:
        module.fail_json(msg="%s; install it or set validate=false" % exc)
    except DhcpConfigError as exc:
        if exc.rc is None:  # the daemon hung: no verdict on the config itself
            module.fail_json(msg=str(exc))
        module.fail_json(msg="%s rejected the rendered configuration" % exc.binary, stderr=exc.output, rc=exc.rc)


def put(module, path, text, wanted):
    """Write ``text`` to ``path`` (content only when it differs), then its attributes the Ansible way.

    Returns (changed, diffs). A new file is created with the wanted mode already, so it never
    exists with looser permissions; an existing one keeps its mode until Ansible's attribute code
    changes it (and records the change in the diff)."""
    try:
        current = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        current = None
    first = current if current is not None else (wanted if wanted is not None else NEW_FILE_MODE)
    r = write_file(path, text, mode=first, check=module.check_mode)
    diffs = []
    if r.changed and r.diff:
        diffs.append(r.diff)
    attrs = dict(before=dict(path=path), after=dict(path=path))
    file_args = module.load_file_common_arguments(module.params, path=path)
    changed = module.set_fs_attributes_if_different(file_args, r.changed, diff=attrs, expand=False)
    if set(attrs["before"]) != {"path"} or set(attrs["after"]) != {"path"}:
        diffs.append(attrs)
    return changed, diffs


def main():
    module = netboot_module(
        dict(
            dest=dict(type="path", required=True),
            flavor=dict(type="str", default="dnsmasq", choices=["dnsmasq", "kea"]),
            hosts_file=dict(type="path"),
            interface=dict(type="str"),
            efi_file=dict(type="str", default="ipxe.efi", choices=["ipxe.efi", "snponly.efi"]),
            validate=dict(type="bool", default=True),
        ),
        add_file_common_args=True,
    )
    p = module.params
    if p["hosts_file"] and p["flavor"] != "dnsmasq":
        module.fail_json(msg="hosts_file is for flavor=dnsmasq only")
    wanted = numeric_mode(module, p["mode"])

    sot = load_sot(module)
    b = bundle(module, sot)
    server = replace(b.server, interface=p["interface"], efi_file=p["efi_file"])
    hosts = site_hosts(sot, b.site)
    hosts_text = None
    try:
        if p["flavor"] == "dnsmasq":
            text = render_dnsmasq(b.site, hosts, server, hosts_file=p["hosts_file"])
            if p["hosts_file"]:
                hosts_text = render_dnsmasq_hosts(hosts)
        else:
            text = render_dhcp("kea", b.site, hosts, server)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if p["validate"]:
        check_with_daemon(module, p["flavor"], text, hosts_text)

    changed, diffs = put(module, p["dest"], text, wanted)
    if hosts_text is not None:
        hosts_changed, hosts_diffs = put(module, p["hosts_file"], hosts_text, wanted)
        changed, diffs = changed or hosts_changed, diffs + hosts_diffs
    out = dict(changed=changed, dest=p["dest"], flavor=p["flavor"], hosts=len(hosts), sha256=hashlib.sha256(text.encode()).hexdigest())
    if module._diff:
        out["diff"] = diffs
    module.exit_json(**out)


if __name__ == "__main__":
    main()
