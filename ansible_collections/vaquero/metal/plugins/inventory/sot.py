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
    C(cluster_<cluster>), C(profile_<profile>) (the profile the host installs) and C(role_<role>)
    for each of its roles (dashes become underscores).
  - Host variables carry the SoT view of the host under C(vaquero_host), its cluster, site, profile,
    boot method (C(vaquero_boot_method)), the cluster's policy (C(vaquero_policy)) and upgrade
    settings (C(vaquero_upgrade)), the packages its profile holds at a version (C(vaquero_packages)),
    how long an install of its profile may take (C(vaquero_install_timeout), null when the profile
    does not say), hook names per phase (C(vaquero_hooks)) and BMC (C(vaquero_bmc)).
    BMC credentials appear as references (environment variable or file name), never as the secret
    itself; modules resolve them when they run.
  - An invalid SoT raises a parse error carrying every error with its file and line. Ansible turns
    a failed inventory source into a warning unless C(unparsed_is_failed) is set (C([inventory])
    section of C(ansible.cfg), or C(ANSIBLE_INVENTORY_UNPARSED_FAILED)); set it, as the
    C(ansible.cfg) shipped with Vaquero does, so that a broken SoT stops the run instead of
    matching no hosts.
  - With O(cache=true) the hosts and groups read from the SoT are kept in the inventory cache
    plugin chosen (O(cache_plugin)); later runs use them without reading the SoT until the cache
    times out or is refreshed (C(--flush-cache)). The filters O(clusters) and O(sites) apply to
    the cached data, so changing them needs no refresh. The cache holds what the inventory
    shows (credential references, never a secret).
  - The inventory file name must end with C(vaquero.yml) or C(vaquero.yaml).
  - Needs the C(vaquero) Python package on the controller.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - constructed
  - inventory_cache
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
    description:
      - Only hosts of these clusters; all clusters when empty.
      - A name the SoT does not have gives a warning, or fails the inventory with O(strict=true).
    type: list
    elements: str
    default: []
  sites:
    description:
      - Only hosts of clusters at these sites; all sites when empty.
      - A name the SoT does not have gives a warning, or fails the inventory with O(strict=true).
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

# Another inventory file: only one cluster, strict about names, cached in JSON files for an hour.
# (Commented out: EXAMPLES is one YAML document, and a second config would repeat its keys.)
# plugin: vaquero.metal.sot
# path: /srv/sot
# clusters: [k8s-workers]
# strict: true
# cache: true
# cache_plugin: ansible.builtin.jsonfile
# cache_connection: /var/cache/vaquero/inventory
# cache_timeout: 3600
"""

import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.vaquero.metal.plugins.module_utils.core import HAS_VAQUERO, SoTInvalid, load, primary_network


def _group(prefix, name):
    return prefix + "_" + name.replace("-", "_")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "vaquero.metal.sot"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("vaquero.yml", "vaquero.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if not HAS_VAQUERO:
            raise AnsibleError(missing_required_lib("vaquero"))
        self._read_config_data(path)
        # cache=False is Ansible asking for a refresh (--flush-cache, or a meta: refresh_inventory).
        use_cache = self.get_option("cache")
        key = self.get_cache_key(path)
        data = None
        if use_cache and cache:
            try:
                data = self._cache[key]
            except KeyError:
                data = None
        if data is None:
            data = self._read(path)
            if use_cache:
                self._cache[key] = data
        self._populate(data)

    def _read(self, path):
        """Everything the inventory needs from the SoT, as plain JSON-able data (what the cache keeps)."""
        root = self.get_option("path")
        if not os.path.isabs(root):
            root = os.path.join(os.path.dirname(path), root)
        try:
            sot = load(root, semantic=self.get_option("validate"))
        except SoTInvalid as exc:
            raise AnsibleParserError("invalid Vaquero SoT %s:\n%s" % (root, "\n".join(str(e) for e in exc.errors)))
        hosts = []
        for cluster, _index, host in sot.hosts():
            site = sot.sites.get(cluster.site)
            hostvars = self._hostvars(sot, site, cluster, host)
            groups = [_group("site", cluster.site), _group("cluster", cluster.name), _group("profile", hostvars["vaquero_profile"])]
            groups += [_group("role", r) for r in host.roles]
            hosts.append({"name": host.name, "cluster": cluster.name, "site": cluster.site, "groups": groups, "vars": hostvars})
        return {"clusters": sorted(sot.clusters), "sites": sorted(sot.sites), "hosts": hosts}

    def _wanted(self, option, known):
        wanted = set(self.get_option(option) or [])
        unknown = sorted(wanted - set(known))
        if unknown:
            msg = "vaquero.metal.sot: %s %s not in the SoT (it has: %s)" % (option, ", ".join(unknown), ", ".join(known) or "none")
            if self.get_option("strict"):
                raise AnsibleParserError(msg)
            self.display.warning(msg)
        return wanted

    def _populate(self, data):
        clusters = self._wanted("clusters", data["clusters"])
        sites = self._wanted("sites", data["sites"])
        strict = self.get_option("strict")
        for entry in data["hosts"]:
            if (clusters and entry["cluster"] not in clusters) or (sites and entry["site"] not in sites):
                continue
            name = self.inventory.add_host(entry["name"])
            for group in entry["groups"]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            hostvars = entry["vars"]
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

    def _hostvars(self, sot, site, cluster, host):
        data = host.model_dump(mode="json")
        profile = host.profile or cluster.profile
        # The host's own boot method, else its site's, else pxe (read defensively: older cores have no boot field).
        boot = getattr(host, "boot", None) or getattr(site, "boot", None)
        out = {
            "vaquero_host": data,
            "vaquero_cluster": cluster.name,
            "vaquero_site": cluster.site,
            "vaquero_profile": profile,
            "vaquero_boot_method": boot.method if boot is not None else "pxe",
            "vaquero_sot_root": str(sot.root),
            "vaquero_sot_sha": sot.sha,
            "vaquero_policy": cluster.policy.model_dump(mode="json"),
            # upgrade.strategy (reinstall | reboot), rollback and ssh: read by the rolling_upgrade role.
            "vaquero_upgrade": cluster.upgrade.model_dump(mode="json"),
            # The OS packages the profile holds at a version: a reboot upgrade installs them over SSH.
            "vaquero_packages": [p.model_dump(mode="json") for p in getattr(sot.profiles.get(profile), "packages", [])],
            # How long an install of the profile may take (None: the netboot_install role's default).
            "vaquero_install_timeout": getattr(sot.profiles.get(profile), "install_timeout", None),
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
            # Named fields only: vaquero.metal.bmc_connection's argument spec refuses keys it does not know.
            b = host.bmc
            bmc = {"type": b.type, "address": b.address, "port": b.port, "credential": b.credential, "insecure": b.insecure, "system": b.system}
            bmc["identity"] = b.identity
            bmc["ca_file"] = str(b.ca_file) if b.ca_file is not None else None
            cred = site.credentials.get(b.credential)
            if cred is not None:
                # References only: the secret is read where the module runs, at the moment of use.
                bmc["username"] = cred.username
                bmc["password_env"] = cred.password.env
                bmc["password_file"] = cred.password.file
            out["vaquero_bmc"] = bmc
        return out
