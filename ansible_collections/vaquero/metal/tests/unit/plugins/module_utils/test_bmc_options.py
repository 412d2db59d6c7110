# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The shared BMC option check (module_utils/bmc.py): what it refuses, and what it lets through."""

from __future__ import annotations

import pytest

from ansible_collections.vaquero.metal.plugins.module_utils.bmc import bmc_argument_spec, bmc_option_errors


def params(**kw):
    base = dict((k, v.get("default")) for k, v in bmc_argument_spec().items())
    base.update(bmc_type="ipmi", bmc_address="10.0.0.5", bmc_username="admin", bmc_password="pw")
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(validate_certs=True),  # the default: promises nothing with IPMI
        dict(bmc_port=623, timeout=3600, host_name="node1"),
        dict(bmc_type="redfish", ca_path="/etc/ca.pem", system_id="System.Embedded.1", bmc_scheme="http", validate_certs=False),
        dict(bmc_address="[fe80::1]"),
    ],
)
def test_accepted(kw):
    assert bmc_option_errors(params(**kw)) == []


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(ca_path="/etc/ca.pem"), "ca_path is a redfish option"),
        (dict(system_id="1"), "system_id is a redfish option"),
        (dict(bmc_scheme="https"), "bmc_scheme is a redfish option"),
        (dict(validate_certs=False), "validate_certs is a redfish option"),
        (dict(timeout=0), "timeout must be between 1 and 3600"),
        (dict(timeout=-30), "timeout must be between 1 and 3600"),
        (dict(timeout=3601), "timeout must be between 1 and 3600"),
        (dict(bmc_port=0), "bmc_port must be between 1 and 65535"),
        (dict(bmc_port=65536), "bmc_port must be between 1 and 65535"),
        (dict(bmc_address="10.0.0.5/redfish?x"), "bmc_address must be"),
        (dict(bmc_type="redfish", system_id="../Managers/1"), "system_id must be a Redfish System Id"),
        (dict(host_name="node1\nFAKE LOG LINE"), "host_name must be"),
        (dict(bmc_username=""), "bmc_username must be"),
    ],
)
def test_refused(kw, fragment):
    errors = bmc_option_errors(params(**kw))
    assert len(errors) == 1 and fragment in errors[0], errors


def test_every_fault_is_named_at_once():
    errors = bmc_option_errors(params(ca_path="/x", system_id="1", timeout=0))
    assert len(errors) == 3


def test_options_a_module_does_not_have_are_not_checked():
    p = params()
    del p["system_id"]
    assert bmc_option_errors(p) == []
