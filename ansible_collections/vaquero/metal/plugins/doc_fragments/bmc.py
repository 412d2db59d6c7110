# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options shared by every module that talks to a BMC (power, boot_device, bmc_info).
    DOCUMENTATION = r"""
options:
  bmc_type:
    description:
      - How to talk to the BMC.
    type: str
    required: true
    choices: [ipmi, redfish]
  bmc_address:
    description:
      - Address (IP or name) of the BMC. Letters, digits, C(.), C(:), C(-) and brackets only.
    type: str
    required: true
  bmc_port:
    description:
      - Port of the BMC (1 to 65535). Defaults to 623/udp for IPMI and 443/tcp (HTTPS) for Redfish.
    type: int
  bmc_username:
    description:
      - User name on the BMC.
    type: str
    required: true
  bmc_password:
    description:
      - Password of O(bmc_username). Never logged, never returned.
    type: str
    required: true
  bmc_scheme:
    description:
      - Redfish only (refused with O(bmc_type=ipmi)). V(http) is for lab emulators; real BMCs speak
        V(https), the scheme used when this is not set.
    type: str
    choices: [https, http]
  validate_certs:
    description:
      - Redfish only. Verify the BMC's TLS certificate (against O(ca_path), else the bundle
        C(requests) trusts). V(false) skips the check and logs a warning.
      - V(false) with O(bmc_type=ipmi) is refused (IPMI has no TLS to skip).
    type: bool
    default: true
  ca_path:
    description:
      - Redfish only (refused with O(bmc_type=ipmi)). A PEM file with the CA certificate(s) that
        signed the BMC's certificate.
    type: path
  system_id:
    description:
      - Redfish only (refused with O(bmc_type=ipmi)). The System to drive when the BMC manages several,
        by its C(Id) (letters, digits, C(.), C(_), C(-)) or its C(@odata.id) (C(/redfish/v1/Systems/<Id>)),
        as the SoT's C(bmc.system) gives it.
    type: str
  system_uuid:
    description:
      - The host's SMBIOS UUID, as the SoT's C(uuid) gives it. Redfish uses it to pick the System
        whose C(UUID) it is when the BMC manages several and O(system_id) is not set; no such
        System, or several, fails the module. IPMI has one system per BMC and ignores it.
    type: str
  bmc_kg:
    description:
      - IPMI only (refused with O(bmc_type=redfish)). The BMC key (Kg) of an IPMI 2.0 two-key login,
        1 to 20 bytes, for BMCs set to require one. Unset, the BMC uses the password as the key.
      - A secret like O(bmc_password), never logged, never returned. A wrong or missing key fails
        the login with C(error_kind=auth).
    type: str
  host_name:
    description:
      - The host this BMC belongs to, as named in the SoT, used in logs and error messages.
        Defaults to O(bmc_address).
    type: str
  timeout:
    description:
      - Deadline in seconds for one BMC operation, retries and waits included. Every fault (no
        answer, slow answers, HTTP 5xx) ends in an error within this time. From 1 to 3600; zero or
        a negative value is refused.
    type: int
    default: 60
requirements:
  - vaquero (the Vaquero Python package, with pyghmi and redfish)
notes:
  - Calls are retried with backoff (bounded), one operation at a time per BMC.
  - The options are checked before the BMC is contacted - an option of the other protocol, a
    timeout or port out of range, control characters in a name - and the module fails naming each
    fault.
"""
