# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options shared by the modules that render a site's netboot files from the SoT
    # (dhcp_config, ipxe_config, assets).
    DOCUMENTATION = r"""
options:
  sot:
    description:
      - The SoT folder (a checkout of the SoT repository at the commit being applied).
    type: path
    required: true
  site:
    description:
      - The site to render. May be omitted when the SoT has exactly one site.
    type: str
  agent:
    description:
      - The agent of the site whose URL hosts boot from. Defaults to the site's first agent.
    type: str
  base_url:
    description:
      - The URL hosts use to reach the agent's HTTP server, overriding the agent's URL in the SoT.
    type: str
requirements:
  - The C(vaquero) Python package on the node that runs the module.
"""
