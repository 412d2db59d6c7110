#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: assets
short_description: Fetch or copy a site's OS assets into the agent's asset root, verified by sha256
version_added: 0.1.0
description:
  - For every asset (kernel, initrds, image) of the profiles the site's hosts use - or of
    O(profiles) - puts the file at C(<asset_root>/<profile>/<file name>), where the agent serves it
    as C(/assets/<profile>/<file name>).
  - Sources are C(http://), C(https://) or C(file://) URLs, absolute paths on the node running the
    module, or paths relative to the SoT folder.
  - A file whose sha256 already matches is left alone. A download or copy is hashed while it is
    written; on a mismatch the partial file is removed, the file in place is kept, and the module
    fails naming the asset.
author:
  - Vaquero developers (@vaquero)
extends_documentation_fragment:
  - vaquero.metal.netboot
options:
  asset_root:
    description:
      - The agent's asset folder.
    type: path
    required: true
  profiles:
    description:
      - The profiles whose assets are fetched. Defaults to the profiles used by the site's hosts.
    type: list
    elements: str
  timeout:
    description:
      - Seconds to wait for each download to make progress, from 1 to 3600.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Reports which assets would be fetched (local sources are hashed), fetches nothing.
  diff_mode:
    support: none
    description: Assets are binary files; the result lists what changed.
"""

EXAMPLES = r"""
- name: The lab's kernel and initramfs on the agent
  vaquero.metal.assets:
    sot: "{{ sot_path }}"
    site: lab
    asset_root: /var/lib/vaquero/assets
"""

RETURN = r"""
assets:
  description: One entry per asset.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Where the asset is on the node.
      type: str
      sample: /var/lib/vaquero/assets/lab-linux/vmlinuz
    source:
      description: Where it came from.
      type: str
      sample: https://mirror.example.invalid/debian/vmlinuz
    sha256:
      description: The verified sha256.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    changed:
      description: Whether the file was (or in check mode would be) written.
      type: bool
      sample: true
"""

import os
from pathlib import Path

from ansible_collections.vaquero.metal.plugins.module_utils.core import AssetError, asset_relpath, ensure_asset, profile_assets
from ansible_collections.vaquero.metal.plugins.module_utils.netboot import bundle, load_sot, netboot_module


def main():
    module = netboot_module(
        dict(
            asset_root=dict(type="path", required=True),
            profiles=dict(type="list", elements="str"),
            timeout=dict(type="int", default=60),
        )
    )
    p = module.params
    if not 0 < p["timeout"] <= 3600:
        module.fail_json(msg="timeout must be between 1 and 3600 seconds, not %s" % p["timeout"])
    sot = load_sot(module)
    b = bundle(module, sot)
    names = p["profiles"] if p["profiles"] is not None else sorted({h.profile for h in b.hosts.values() if h.profile})
    missing = [n for n in names if n not in sot.profiles]
    if missing:
        module.fail_json(msg="unknown profile(s): %s" % ", ".join(missing))
    done = []
    for name in names:
        profile = sot.profiles[name]
        for asset in profile_assets(profile):
            source = asset.url or asset.path
            dest = os.path.join(p["asset_root"], asset_relpath(profile, asset))
            try:
                r = ensure_asset(source, Path(dest), asset.sha256, base=sot.root, check=module.check_mode, timeout=float(p["timeout"]))
            except AssetError as exc:
                module.fail_json(msg="profile %s: %s" % (name, exc), assets=done, changed=any(a["changed"] for a in done))
            done.append(dict(path=dest, source=source, sha256=r.sha256, changed=r.changed))
    module.exit_json(changed=any(a["changed"] for a in done), assets=done)


if __name__ == "__main__":
    main()
