# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Glue shared by the BMC modules: the argument spec, the endpoint, errors into fail_json."""

from __future__ import annotations

from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    BmcError,
    BmcUnsupported,
    Endpoint,
    GuardPolicy,
    Secret,
    open_bmc,
    require_vaquero,
    vaquero_module,
)


def bmc_argument_spec():
    """The options of plugins/doc_fragments/bmc.py, as an argument spec."""
    return dict(
        bmc_type=dict(type="str", required=True, choices=["ipmi", "redfish"]),
        bmc_address=dict(type="str", required=True),
        bmc_port=dict(type="int"),
        bmc_username=dict(type="str", required=True),
        bmc_password=dict(type="str", required=True, no_log=True),
        bmc_scheme=dict(type="str", default="https", choices=["https", "http"]),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        system_id=dict(type="str"),
        host_name=dict(type="str"),
        timeout=dict(type="int", default=60),
    )


def bmc_module(extra_spec):
    """The prologue of a BMC module: the shared BMC options plus ``extra_spec``."""
    argument_spec = bmc_argument_spec()
    argument_spec.update(extra_spec)
    return vaquero_module(argument_spec, supports_check_mode=True)


def endpoint(module):
    p = module.params
    return Endpoint(
        kind=p["bmc_type"],
        address=p["bmc_address"],
        username=p["bmc_username"],
        password=Secret(p["bmc_password"]),
        host=p["host_name"] or p["bmc_address"],
        port=p["bmc_port"],
        verify=p["validate_certs"],
        ca_file=p["ca_path"],
        scheme=p["bmc_scheme"],
        system_id=p["system_id"],
    )


def open_module_bmc(module):
    """The BMC driver for the module's options; fails the module on a bad option."""
    require_vaquero(module)
    timeout = max(1, module.params["timeout"])
    policy = GuardPolicy(attempt_timeout=min(20.0, float(timeout)), deadline=float(timeout))
    try:
        return open_bmc(endpoint(module), policy=policy)
    except BmcError as exc:
        fail(module, exc)


def fail(module, exc, **result):
    """fail_json from a typed BMC error: its kind and host, never a password."""
    module.fail_json(msg=str(exc), error_kind=getattr(exc, "kind", "error"), host_name=getattr(exc, "host", None), **result)


def boot_or_none(bmc):
    """The boot override as a dict, or None when the BMC cannot report one."""
    try:
        return bmc.get_boot_device().as_dict()
    except BmcUnsupported:
        return None


def run(module, bmc, fn, **result):
    """Run ``fn(bmc)``; a BMC error fails the module. Always closes the BMC session."""
    try:
        return fn(bmc)
    except BmcError as exc:
        fail(module, exc, **result)
    finally:
        try:
            bmc.close()
        except Exception:  # best effort: the session times out on the BMC anyway
            pass
