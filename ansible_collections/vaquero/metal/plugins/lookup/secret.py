# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: secret
short_description: Resolve a Vaquero credential reference (environment variable or file) at the moment of use
version_added: 0.1.0
description:
  - "The SoT names where a secret lives (C(password: {env: NAME}) or C({file: PATH})); the
    C(vaquero.metal.sot) inventory hands that reference on as C(vaquero_bmc.password_env) /
    C(vaquero_bmc.password_file). This lookup reads the secret on the node running the play, when
    the task that needs it runs."
  - An environment variable that is empty or unset is looked up in the folder named by
    C(VAQUERO_SECRETS_DIR), where the Vaquero controller puts the secrets of one run so that they
    are not in ansible-runner's artifacts (the runner's environment is allow-listed and does not hold them).
  - Pass the result only to module options marked C(no_log).
requirements:
  - vaquero (the Vaquero Python package) on the node running the play
author:
  - Vaquero developers (@vaquero)
options:
  env:
    description: Name of the environment variable holding the secret.
    type: str
  file:
    description: Path of a file whose first line is the secret.
    type: str
"""

EXAMPLES = r"""
- name: Power on through the BMC
  vaquero.metal.power:
    bmc_type: "{{ vaquero_bmc.type }}"
    bmc_address: "{{ vaquero_bmc.address }}"
    bmc_username: "{{ vaquero_bmc.username }}"
    bmc_password: "{{ lookup('vaquero.metal.secret', env=vaquero_bmc.password_env, file=vaquero_bmc.password_file) }}"
    state: "on"
"""

RETURN = r"""
_raw:
  description: The secret, as a one-element list.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.lookup import LookupBase

# The one resolver: the same rules (file, else environment, else the run's secrets folder) as the
# controller and the modules use.
from ansible_collections.vaquero.metal.plugins.module_utils.core import HAS_VAQUERO, SecretMissing, resolve_secret


def _resolve(env, path):
    if not HAS_VAQUERO:
        raise AnsibleLookupError(missing_required_lib("vaquero"))
    if not env and not path:
        raise AnsibleLookupError("no secret reference: give env or file")
    try:
        return resolve_secret(env=env, file=path)
    except SecretMissing as exc:
        raise AnsibleLookupError(str(exc))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [_resolve(self.get_option("env"), self.get_option("file"))]
