# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Glue shared by the netboot modules (dhcp_config, ipxe_config, assets): options, SoT loading,
errors into fail_json. The work lives in the vaquero core (vaquero.render)."""

from __future__ import annotations

from ansible_collections.vaquero.metal.plugins.module_utils.core import RenderError, SoTInvalid, load, render_site, require_vaquero, vaquero_module


def netboot_argument_spec():
    """The options of plugins/doc_fragments/netboot.py, as an argument spec."""
    return dict(
        sot=dict(type="path", required=True),
        site=dict(type="str"),
        agent=dict(type="str"),
        base_url=dict(type="str"),
    )


def netboot_module(extra_spec, **kwargs):
    """The prologue of a netboot module: the shared SoT options plus ``extra_spec``; ``kwargs`` go
    to AnsibleModule (``add_file_common_args=True`` for modules that take file attributes)."""
    argument_spec = netboot_argument_spec()
    argument_spec.update(extra_spec)
    return vaquero_module(argument_spec, supports_check_mode=True, **kwargs)


def load_sot(module):
    require_vaquero(module)
    try:
        return load(module.params["sot"])
    except SoTInvalid as exc:
        module.fail_json(msg="the SoT is invalid: %s" % "; ".join(str(e) for e in exc.errors))
    except (OSError, ValueError) as exc:
        module.fail_json(msg="cannot load the SoT from %s: %s" % (module.params["sot"], exc))


def bundle(module, sot, **kwargs):
    p = module.params
    try:
        return render_site(sot, p["site"], agent=p["agent"], base_url=p["base_url"], **kwargs)
    except RenderError as exc:
        module.fail_json(msg=str(exc))


def merge_diffs(results):
    """One Ansible diff from several write results (one before/after pair per changed file)."""
    before = []
    after = []
    for r in results:
        if r.changed and r.diff:
            before.append("# %s\n%s" % (r.path, r.diff["before"]))
            after.append("# %s\n%s" % (r.path, r.diff["after"]))
    return dict(before="".join(before), after="".join(after))
