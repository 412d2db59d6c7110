# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sot
short_description: Vaquero source of truth (SoT) as an Ansible inventory
version_added: 0.1.0
description:
  - Reads a Vaquero SoT folder (sites, clusters, hosts, profiles) and turns it into an inventory.
  - Every host of every cluster becomes an inventory host, in the groups C(site_<site>),
    C(cluster_<cluster>) and C(role_<role>) for each of its roles (dashes become underscores).
  - Host variables carry the SoT view of the host under C(vaquero_host), its cluster, site, profile,
    the cluster's policy (C(vaquero_policy)) and upgrade settings (C(vaquero_upgrade)), and BMC.
    BMC credentials appear as references (environment variable or file name), never as the secret
    itself; modules resolve them when they run.
  - The inventory file name must end with C(vaquero.yml) or C(vaquero.yaml).
  - Needs the C(vaquero) Python package on the controller.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks this file as an inventory of this plugin.
    required: true
    type: str
    choices: [vaquero.metal.sot]
  path:
    description:
      - The SoT folder, relative to the inventory file or absolute.
    type: str
    default: .
  clusters:
    description: Only hosts of these clusters; all clusters when empty.
    type: list
    elements: str
    default: []
  validate:
    description:
      - Run Vaquero's semantic validation (references, addresses, templates) too, not only the
        structural one. Invalid SoTs fail the inventory with every error, file and line.
    type: bool
    default: true
"""

EXAMPLES = r"""
# inventories/lab/inventory.vaquero.yml
plugin: vaquero.metal.sot
path: .
keyed_groups:
  - key: vaquero_host.firmware
    prefix: firmware
compose:
  rack: vaquero_host.vars.rack | default('none')
"""

import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.vaquero.metal.plugins.module_utils.core import HAS_VAQUERO, SoTInvalid, load, primary_network


def _group(prefix, name):
    return prefix + "_" + name.replace("-", "_")


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "vaquero.metal.sot"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("vaquero.yml", "vaquero.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if not HAS_VAQUERO:
            raise AnsibleError(missing_required_lib("vaquero"))
        self._read_config_data(path)
        root = self.get_option("path")
        if not os.path.isabs(root):
            root = os.path.join(os.path.dirname(path), root)
        try:
            sot = load(root, semantic=self.get_option("validate"))
        except SoTInvalid as exc:
            raise AnsibleParserError("invalid Vaquero SoT %s:\n%s" % (root, "\n".join(str(e) for e in exc.errors)))
        wanted = set(self.get_option("clusters") or [])
        strict = self.get_option("strict")
        for cluster, _index, host in sot.hosts():
            if wanted and cluster.name not in wanted:
                continue
            site = sot.sites.get(cluster.site)
            name = self.inventory.add_host(host.name)
            for group in [_group("site", cluster.site), _group("cluster", cluster.name)] + [_group("role", r) for r in host.roles]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            hostvars = self._hostvars(sot, site, cluster, host)
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

    def _hostvars(self, sot, site, cluster, host):
        data = host.model_dump(mode="json")
        profile = host.profile or cluster.profile
        out = {
            "vaquero_host": data,
            "vaquero_cluster": cluster.name,
            "vaquero_site": cluster.site,
            "vaquero_profile": profile,
            "vaquero_sot_root": str(sot.root),
            "vaquero_sot_sha": sot.sha,
            "vaquero_policy": cluster.policy.model_dump(mode="json"),
            # upgrade.strategy (reinstall | reboot) and rollback: read by the rolling_upgrade role.
            "vaquero_upgrade": cluster.upgrade.model_dump(mode="json"),
            "vaquero_hooks": {
                phase: list(host.hooks.get(phase, cluster.hooks.get(phase, [])))
                for phase in ("pre_shutdown", "pre_reboot", "post_reboot", "validate")
            },
        }
        if site is not None:
            net = primary_network(site, host)
            if net.name in host.ips:
                out["ansible_host"] = str(host.ips[net.name])
        if host.bmc is not None and site is not None:
            bmc = host.bmc.model_dump(mode="json")
            cred = site.credentials.get(host.bmc.credential)
            if cred is not None:
                # References only: the secret is read where the module runs, at the moment of use.
                bmc["username"] = cred.username
                bmc["password_env"] = cred.password.env
                bmc["password_file"] = cred.password.file
            out["vaquero_bmc"] = bmc
        return out
