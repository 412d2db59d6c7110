# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Glue shared by the netboot modules (dhcp_config, ipxe_config, assets): options, SoT loading,
errors into fail_json. The work lives in the vaquero core (vaquero.render)."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    from vaquero.render import RenderError
    from vaquero.render.bundle import render_site
    from vaquero.sot import SoTInvalid, load

    HAS_VAQUERO = True
    VAQUERO_IMPORT_ERROR = None
except ImportError:
    HAS_VAQUERO = False
    VAQUERO_IMPORT_ERROR = traceback.format_exc()

    class RenderError(Exception):  # stand-ins so the modules import without vaquero
        pass

    class SoTInvalid(Exception):
        pass


def netboot_argument_spec():
    """The options of plugins/doc_fragments/netboot.py, as an argument spec."""
    return dict(
        sot=dict(type="path", required=True),
        site=dict(type="str"),
        agent=dict(type="str"),
        base_url=dict(type="str"),
    )


def require_vaquero(module):
    if not HAS_VAQUERO:
        module.fail_json(msg=missing_required_lib("vaquero"), exception=VAQUERO_IMPORT_ERROR)


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
