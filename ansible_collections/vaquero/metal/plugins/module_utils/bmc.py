# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Glue shared by the BMC modules: the argument spec, the endpoint, errors into fail_json."""

from __future__ import annotations

import re

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
        # No default: a scheme given with bmc_type=ipmi must be seen, to be refused.
        bmc_scheme=dict(type="str", choices=["https", "http"]),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        system_id=dict(type="str"),
        system_uuid=dict(type="str"),
        bmc_kg=dict(type="str", no_log=True),
        host_name=dict(type="str"),
        timeout=dict(type="int", default=60),
    )


# Options that only one protocol reads. Given with the other one, they would be silently ignored
# (a CA file for IPMI promises a TLS check that never happens), so they are refused instead.
# A value equal to the documented default (validate_certs=true) promises nothing and passes.
ONLY_FOR = {
    "bmc_scheme": ("redfish", None),
    "validate_certs": ("redfish", True),
    "ca_path": ("redfish", None),
    "system_id": ("redfish", None),
    "bmc_kg": ("ipmi", None),
}

# Bounds of the typed options: hostile input stops here, before a driver or a socket sees it.
MAX_TIMEOUT = 3600
_ADDRESS = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")  # a name, IPv4 or [IPv6]: the SoT's BMC address rule
# an Id, or the @odata.id the SoT may give (/redfish/v1/Systems/<id>): the SoT's `system` rule
_SYSTEM_ID = re.compile(r"^(/redfish/v1/Systems/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}/?$")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def bmc_option_errors(params):
    """Why ``params`` (the module's options) are refused, one sentence per fault; empty when they are fine."""
    errors = []
    kind = params.get("bmc_type")
    for name in sorted(ONLY_FOR):
        only, harmless = ONLY_FOR[name]
        if name in params and kind != only and params[name] is not None and params[name] != harmless:
            errors.append("%s is a %s option; it means nothing with bmc_type=%s (remove it)" % (name, only, kind))
    timeout = params.get("timeout")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        errors.append("timeout must be between 1 and %d seconds, not %s" % (MAX_TIMEOUT, timeout))
    port = params.get("bmc_port")
    if port is not None and not 0 < port < 65536:
        errors.append("bmc_port must be between 1 and 65535, not %s" % port)
    address = params.get("bmc_address")
    if address is not None and not _ADDRESS.match(address):
        errors.append("bmc_address must be a host name or an IP address (letters, digits, . : - [ ])")
    system_id = params.get("system_id")
    if system_id is not None and not _SYSTEM_ID.match(system_id):
        errors.append("system_id must be a Redfish System Id (letters, digits, . _ -, at most 128) or /redfish/v1/Systems/<Id>")
    system_uuid = params.get("system_uuid")
    if system_uuid is not None and not _UUID.match(system_uuid):
        errors.append("system_uuid must be a UUID (32 hex digits, dashes allowed)")
    for name in ("bmc_username", "host_name"):
        value = params.get(name)
        if value is not None and (not value or len(value) > 253 or _CONTROL.search(value)):
            errors.append("%s must be 1 to 253 characters without control characters" % name)
    return errors


def check_bmc_options(module):
    """Fail ``module`` on options that would be ignored or are out of bounds, before anything is opened."""
    errors = bmc_option_errors(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))


def bmc_module(extra_spec):
    """The prologue of a BMC module: the shared BMC options plus ``extra_spec``, checked by check_bmc_options."""
    argument_spec = bmc_argument_spec()
    argument_spec.update(extra_spec)
    module = vaquero_module(argument_spec, supports_check_mode=True)
    check_bmc_options(module)
    return module


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
        scheme=p["bmc_scheme"] or "https",
        system_id=p["system_id"],
        system_uuid=p.get("system_uuid"),
        kg=Secret(p["bmc_kg"]) if p.get("bmc_kg") is not None else None,
    )


def open_module_bmc(module):
    """The BMC driver for the module's options; fails the module on a bad option."""
    require_vaquero(module)
    check_bmc_options(module)  # again: a module may build its spec without bmc_module
    timeout = module.params["timeout"]
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
