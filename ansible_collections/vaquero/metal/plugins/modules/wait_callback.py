#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the Vaquero project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_callback
short_description: Wait until a netbooting host's installer has called back, or its installed OS phoned home
version_added: 0.1.0
description:
  - Polls the site agent's boot status of a host until the agent has received the host's install
    callback (the agent then serves the host C(localboot), so it never loops into its installer).
  - Only a callback received at or after O(since) counts, so an older install is not mistaken
    for this one.
  - A failure the installer reported (a deploy ramdisk whose image did not match its sha256, a
    download cut short) fails the module at once, with the installer's reason.
  - Image profiles (a profile with C(image) in the SoT) - the deploy ramdisk's callback must say
    C(result=success) and report the sha256 of the bytes it wrote, which must be the SoT image's
    C(sha256); anything else fails the module, naming both digests.
  - O(wait_for=phone_home) waits instead for the installed OS's own report (C(vaquero-booted) posts
    to the agent's one-time phone-home URL once the OS booted from its disk), received at or after
    O(since).
  - Needs the C(vaquero) Python package on the node running the module.
author:
  - Vaquero developers (@vaquero)
options:
  host:
    description: The host, as named in the SoT (normally C(inventory_hostname)).
    type: str
    required: true
  sot:
    description: The SoT folder; the agent's URL is read from the host's site.
    type: path
    required: true
  url:
    description: The status URL to poll; defaults to C(<agent url>/v1/boot/status/<host>).
    type: str
  since:
    description: Epoch seconds; callbacks received before it are ignored. 0 accepts any callback. Not negative.
    type: float
    default: 0
  timeout:
    description: Seconds to wait before failing, from 1 to 86400.
    type: int
    default: 900
  interval:
    description: Seconds between polls, more than 0 and at most 60 (and at most O(timeout)).
    type: float
    default: 1
  wait_for:
    description:
      - V(install) waits for the installer's callback (and checks an image profile's digest).
      - V(phone_home) waits for the installed OS's phone home (image profiles, after the reboot into the disk).
    type: str
    choices: [install, phone_home]
    default: install
  ssh_address:
    description:
      - With O(wait_for=phone_home), the IP address SSH reaches the host at; RV(known_hosts) then binds the
        reported host keys to it (and O(ssh_port)). Must be an IP address.
    type: str
  ssh_port:
    description: The SSH port of O(ssh_address).
    type: int
    default: 22
requirements:
  - vaquero
attributes:
  check_mode:
    support: partial
    description: Reads the host's boot status once and reports it, without waiting.
    details:
      - Check mode does not wait - the tasks before it did not power cycle the host, so no callback
        would come. The boot status is read once (the agent must answer); RV(callback) is set when
        a callback (or, with O(wait_for=phone_home), a phone home) at or after O(since) is already
        there, RV(called_back) says which. The image digest is not compared in check mode.
      - The module only reads, so C(changed) is false in both modes.
  diff_mode:
    support: none
    description: Nothing changes; there is nothing to show.
"""

EXAMPLES = r"""
- name: Wait for the installer's callback
  vaquero.metal.wait_callback:
    host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"
    since: "{{ vaquero_install_started }}"
    timeout: 600

- name: Wait until the installed OS phoned home (image profiles)
  vaquero.metal.wait_callback:
    host: "{{ inventory_hostname }}"
    sot: "{{ vaquero_sot_root }}"
    since: "{{ vaquero_install_started }}"
    wait_for: phone_home
    timeout: 900
"""

RETURN = r"""
callback:
  description: What the agent reports about the host's boot, including the callback body.
  returned: when the host called back (in check mode, when it already had)
  type: dict
  sample: {"host": "node1", "state": "installed", "since": 1764712345.2, "attempt": 1, "report": {"ok": true}, "script": "localboot",
           "deploy": [{"phase": "written", "bytes": 925892608, "total": 2147483648, "disk": "vda", "time": 1764712400.1}],
           "phoned_home_at": null}
called_back:
  description: Whether a callback (with O(wait_for=phone_home), a phone home) at or after O(since) was seen (always true after a real run that succeeds).
  returned: success
  type: bool
  sample: true
image_sha256:
  description: The SoT image's sha256 the callback was checked against; null for an installer (kernel and initrd) profile.
  returned: always
  type: str
  sample: 0f4c6e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6
ssh_host_keys:
  description:
    - With O(wait_for=phone_home), the SSH host public keys (V(type base64)) the installed OS reported in its
      phone home, checked (known key types, the key data of its stated type); an empty list when it reported none.
      M(vaquero.metal.hook) holds later SSH logins to them.
  returned: success
  type: list
  elements: str
  sample: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFhP1ZV1pJSmM3xk2bGkC0dP8lYcZGn2qmC4ov5yVq2m"]
known_hosts:
  description:
    - With O(wait_for=phone_home) and O(ssh_address), known_hosts lines binding RV(ssh_host_keys) to that
      address and port (empty when the host reported no keys).
  returned: success
  type: str
  sample: "10.90.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFhP1ZV1pJSmM3xk2bGkC0dP8lYcZGn2qmC4ov5yVq2m\n"
phone_home:
  description:
    - Whether the installed OS of the host's profile reports itself once it booted from its disk (an image profile, or an
      installer profile with C(phone_home) true), so that a C(wait_for=phone_home) wait after the install has a report to wait for.
  returned: always
  type: bool
  sample: true
waited:
  description: Seconds waited.
  returned: always
  type: float
  sample: 42.5
"""

import time

from ansible_collections.vaquero.metal.plugins.module_utils.core import (
    AGENT_BASE_URL,
    HOST_NAME,
    CallbackError,
    HostKeyError,
    host_keys,
    installed,
    known_hosts,
    load,
    read_status,
    status_url,
    vaquero_module,
    wait_for_callback,
)

MAX_TIMEOUT = 86400
MAX_INTERVAL = 60.0


def option_errors(p):
    errors = []
    if not HOST_NAME.match(p["host"]):
        errors.append("host must be a SoT host name (a-z, 0-9, -), not %r" % p["host"][:64])
    if p["url"] is not None and not AGENT_BASE_URL.match(p["url"]):
        errors.append("url must be an http:// or https:// URL without query or spaces")
    if not 0 < p["timeout"] <= MAX_TIMEOUT:
        errors.append("timeout must be between 1 and %d seconds, not %s" % (MAX_TIMEOUT, p["timeout"]))
    if not 0 < p["interval"] <= min(MAX_INTERVAL, max(p["timeout"], 1)):
        errors.append("interval must be more than 0 and at most %g seconds (and the timeout), not %s" % (MAX_INTERVAL, p["interval"]))
    if not p["since"] >= 0:  # also refuses NaN
        errors.append("since must be epoch seconds (0 or more), not %s" % p["since"])
    return errors


def main():
    module = vaquero_module(
        dict(
            host=dict(type="str", required=True),
            sot=dict(type="path", required=True),
            url=dict(type="str"),
            since=dict(type="float", default=0),
            timeout=dict(type="int", default=900),
            interval=dict(type="float", default=1),
            wait_for=dict(type="str", default="install", choices=["install", "phone_home"]),
            ssh_address=dict(type="str"),
            ssh_port=dict(type="int", default=22),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors = option_errors(p)
    if errors:
        module.fail_json(msg="; ".join(errors), waited=0.0)
    start = time.monotonic()
    phone_home = p["wait_for"] == "phone_home"
    what = "phoned home" if phone_home else "called back"
    image_sha256 = None
    phone_home_expected = False
    try:
        sot = load(p["sot"], semantic=False)
        profile = host_profile(sot, p["host"])
        image_sha256 = image_digest(profile)
        phone_home_expected = profile is not None and profile.expects_phone_home
        url = p["url"] or status_url(sot, p["host"])
        if module.check_mode:
            # One look, no wait: the tasks before this one did not power cycle the host in check mode.
            status = read_status(url)
            if not (phoned_home(status, p["since"]) if phone_home else installed(status, p["since"])):
                waited = round(time.monotonic() - start, 1)
                module.exit_json(
                    changed=False,
                    called_back=False,
                    image_sha256=image_sha256,
                    phone_home=phone_home_expected,
                    waited=waited,
                    msg="%s has not %s yet" % (p["host"], what),
                )
        else:
            status = wait_for_callback(url, since=p["since"], timeout=p["timeout"], interval=p["interval"], wait_for=p["wait_for"], image_sha256=image_sha256)
    except CallbackError as exc:
        module.fail_json(msg=str(exc), called_back=False, image_sha256=image_sha256, waited=round(time.monotonic() - start, 1))
    except Exception as exc:  # the SoT could not be read
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc), image_sha256=image_sha256, waited=round(time.monotonic() - start, 1))
    keys = []
    lines = None
    if phone_home:
        try:
            keys = host_keys(((status.get("report") or {}).get("phone_home") or {}).get("ssh_host_keys"))
        except HostKeyError as exc:
            why = "%s phoned home with unusable SSH host keys: %s" % (p["host"], exc)
            module.fail_json(msg=why, called_back=True, waited=round(time.monotonic() - start, 1))
        if p["ssh_address"] is not None:
            try:
                lines = known_hosts(p["ssh_address"], p["ssh_port"], keys)
            except ValueError as exc:  # not an IP address, or a port out of range
                why = "%s: no known_hosts for SSH at %r: %s" % (p["host"], p["ssh_address"], exc)
                module.fail_json(msg=why, called_back=True, waited=round(time.monotonic() - start, 1))
    module.exit_json(
        changed=False,
        called_back=True,
        ssh_host_keys=keys,
        known_hosts=lines,
        callback=status,
        image_sha256=image_sha256,
        phone_home=phone_home_expected,
        waited=round(time.monotonic() - start, 1),
        msg="%s %s" % (p["host"], what),
    )


def host_profile(sot, host):
    """The host's profile, None for a host not in the SoT (status_url then names what is missing)."""
    found = sot.host(host)
    return sot.profile_of(*found) if found is not None else None


def image_digest(profile):
    """The sha256 of the profile's image, None for an installer profile."""
    return profile.image.sha256 if profile is not None and profile.image is not None else None


def phoned_home(status, since):
    """The installed OS phoned home at or after ``since`` (the agent's ``phoned_home_at``, epoch seconds)."""
    at = status.get("phoned_home_at")
    return isinstance(at, (int, float)) and not isinstance(at, bool) and float(at) >= since


if __name__ == "__main__":
    main()
