"""The SSH host keys an installed OS reported when it phoned home.

Every later SSH login to that host (the ssh_check hook, the in-place upgrade) is held to them: the
report reached the agent over the install's one-time token, before anyone else could answer for the
host's address, so the keys in it are the host's. Without them a login can only trust the first key
it is shown, which anyone on the provisioning network can show.

The report comes from the provisioning network: every entry is checked here before it reaches a
known_hosts file (one line each, a known key type, base64 whose embedded type is that type).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
MAX_KEYS = 8
# "type base64 [comment]", as in an ssh_host_*_key.pub file; the comment is dropped.
_TYPES = "|".join(re.escape(t) for t in KEY_TYPES)
_LINE = re.compile(rf"^({_TYPES}) ([A-Za-z0-9+/]{{16,4096}}={{0,2}})(?: [\x20-\x7e]{{0,256}})?$")


class HostKeyError(ValueError):
    """A reported host key list that cannot be trusted as one (malformed, too long, mismatched type)."""


def host_keys(value: object) -> list[str]:
    """The keys of a phone-home report's ``ssh_host_keys`` as sorted ``type base64`` lines; [] when it has none."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_KEYS:
        raise HostKeyError(f"ssh_host_keys must be a list of at most {MAX_KEYS} public keys")
    out: set[str] = set()
    for i, item in enumerate(value):
        m = _LINE.match(item.strip()) if isinstance(item, str) else None
        if m is None:
            raise HostKeyError(f"ssh_host_keys[{i}] is not 'type base64' of a known key type ({', '.join(KEY_TYPES)})")
        try:
            blob = base64.b64decode(m.group(2), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HostKeyError(f"ssh_host_keys[{i}]: the key is not base64: {exc}") from exc
        # The blob opens with its own type as an SSH string (uint32 length, then the name).
        size = int.from_bytes(blob[:4], "big")
        if blob[4 : 4 + size] != m.group(1).encode():
            raise HostKeyError(f"ssh_host_keys[{i}]: the key's data is not a {m.group(1)} key")
        out.add(f"{m.group(1)} {m.group(2)}")
    return sorted(out)


def known_hosts(address: str, port: int, keys: list[str]) -> str:
    """known_hosts lines binding ``keys`` (from :func:`host_keys`) to the host's address and port."""
    ip = ipaddress.ip_address(address)  # an address from the SoT: never a pattern or a name
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    name = str(ip) if port == 22 else f"[{ip}]:{port}"
    return "".join(f"{name} {key}\n" for key in host_keys(list(keys)))
