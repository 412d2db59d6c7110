"""Image deploy: what a host whose profile has an `image` is told to do by the deploy ramdisk.

The profile's kernel and initrd are the deploy ramdisk (`vaquero image ramdisk`); its /init reads
`vaquero.deploy=<url>` from the kernel command line and fetches this text from the agent
(GET /v1/boot/deploy/<host>?token=T). One `key='value'` per line: every value is checked here
against a charset with no quote, space, '$', backquote, ';', '|', '<', '>' or line break, then
single-quoted. /init reads the lines with `read -r`, takes each known key with a `case` and checks
the value again; it never evaluates or sources the text.

Wipe mode (decommission, docs/install.md "Decommission"): the same ramdisk, the same URL and the
same /init; the instructions say `mode='wipe'` and `erase='signatures'|'full'` instead of an image,
and /init zeroes the disks, reads the zeroed areas back, reports the bytes zeroed and calls back.
The erase mode is chosen when the host is armed for the wipe: the agent puts it in for
ERASE_PLACEHOLDER, from ERASE_MODES only.

The image URL is the profile's own http(s) URL when it has one (the ramdisk fetches it directly,
so a large image is not copied to every agent), else the agent's asset URL (a `path` or `file://`
image the agent fetched and verified at start). The ramdisk checks the sha256 of the bytes it
receives either way.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from vaquero.sot.models import Asset, DiskImage, Profile
from vaquero.sot.templates import BootUrls

from .site import RenderError, asset_relpath, safe

FORMAT = "vaquero-deploy/1"
GIB = 1 << 30
# Stands for the erase mode of a wipe; the agent puts in one of ERASE_MODES when it serves the text.
ERASE_PLACEHOLDER = "VAQUERO_ERASE_PLACEHOLDER"
ERASE_MODES = ("signatures", "full")

# The shapes of the values, checked again whatever the models said: none lets through a quote, a
# space, a line break, '$', a backquote, ';', '|', '<' or '>' (a URL's '&' and '?' stay literal
# inside single quotes, and /init never hands a value to a shell parser anyway).
_VALUE = {
    "name": re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"),
    # the charset the ramdisk's url_ok() accepts (no brackets: no IPv6 literal)
    "url": re.compile(r"https?://[A-Za-z0-9._~:/?=&%@+!*-]{1,2040}"),
    "sha256": re.compile(r"[0-9a-f]{64}"),
    "compression": re.compile(r"none|gzip|xz"),
    "devpath": re.compile(r"/dev/[a-z0-9_-]+(/[a-z0-9_-]+)*"),
    "diskid": re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}"),
    "int": re.compile(r"0|[1-9][0-9]{0,18}"),
}


def is_image_profile(profile: Profile | None) -> bool:
    return profile is not None and profile.image is not None


def served_by_agent(image: Asset) -> bool:
    """A `path` or `file://` image is fetched into the agent's asset root; an http(s) one is not."""
    return image.url is None or urlsplit(image.url).scheme not in ("http", "https")


def image_url(profile: Profile, urls: BootUrls) -> str:
    image = profile.image
    if image is None:
        raise RenderError(f"profile {profile.name} has no image")
    if not served_by_agent(image):
        assert image.url is not None
        return image.url
    return f"{urls.assets()}/{asset_relpath(profile, image)}"


def deploy_url(urls: BootUrls, host: str) -> str:
    return f"{urls.base}/v1/boot/deploy/{host}?token={urls.token}"


def progress_url(urls: BootUrls, host: str) -> str:
    return f"{urls.base}/v1/boot/progress/{host}?token={urls.token}"


def callback_url(urls: BootUrls, host: str) -> str:
    return f"{urls.base}/v1/boot/callback/{host}?token={urls.token}"


def nocloud_url(urls: BootUrls, host: str) -> str:
    return f"{urls.base}/v1/boot/nocloud/{host}/{urls.token}/"


def _line(key: str, value: object, rule: str, where: str) -> str:
    text = str(value)
    if not _VALUE[rule].fullmatch(text):
        raise RenderError(f"{where}: {key} {text[:200]!r} is not a valid {rule}: refused")
    return f"{key}='{text}'"


def deploy_instructions(host: str, profile: Profile, urls: BootUrls) -> str:
    """The `key='value'` text the deploy ramdisk of `host` reads (tokens as placeholders)."""
    where = f"host {host}: profile {profile.name}: deploy"
    image: DiskImage | None = profile.image
    if image is None:
        raise RenderError(f"{where}: the profile has no image")
    name = safe(host, "name", f"{where}: host name")
    disk = profile.disk
    lines = [
        f"format='{FORMAT}'",
        _line("host", name, "name", where),
        _line("image_url", image_url(profile, urls), "url", where),
        _line("image_sha256", image.sha256, "sha256", where),
        _line("image_compression", image.compression, "compression", where),
        _line("progress_url", progress_url(urls, name), "url", where),
        _line("callback_url", callback_url(urls, name), "url", where),
        _line("nocloud_url", nocloud_url(urls, name), "url", where),
        _line("phone_home_url", urls.phone_home(name), "url", where),
    ]
    if disk is not None and disk.path is not None:
        lines.append(_line("disk_path", disk.path, "devpath", where))
    if disk is not None and disk.by_id is not None:
        lines.append(_line("disk_by_id", disk.by_id, "diskid", where))
    lines.append(_line("disk_min_bytes", (disk.min_size_gb if disk is not None else 0) * GIB, "int", where))
    lines.append("end='1'")  # a cut-short answer lacks it: the ramdisk refuses to start
    return "\n".join(lines) + "\n"


def wipe_instructions(host: str, urls: BootUrls) -> str:
    """The `key='value'` text the deploy ramdisk of `host` reads to wipe its disks (decommission):
    tokens and the erase mode as placeholders, put in by the agent from the armed wipe."""
    where = f"host {host}: wipe"
    name = safe(host, "name", f"{where}: host name")
    lines = [
        f"format='{FORMAT}'",
        "mode='wipe'",
        _line("host", name, "name", where),
        f"erase='{ERASE_PLACEHOLDER}'",
        _line("progress_url", progress_url(urls, name), "url", where),
        _line("callback_url", callback_url(urls, name), "url", where),
        "end='1'",
    ]
    return "\n".join(lines) + "\n"


def with_erase(text: bytes, erase: str) -> bytes:
    """Wipe instructions with the erase mode put in; anything but one of ERASE_MODES is refused."""
    if erase not in ERASE_MODES:
        raise RenderError(f"erase mode {erase[:40]!r} is not one of {', '.join(ERASE_MODES)}: refused")
    return text.replace(ERASE_PLACEHOLDER.encode(), erase.encode())


def wipe_profile(host_profile: Profile | None, profiles: dict[str, Profile]) -> Profile | None:
    """The profile whose kernel and initrd (the deploy ramdisk) boot a host's wipe: the host's own
    when it is an image profile, else the first image profile of the SoT by name (every image
    profile boots the same ramdisk, `vaquero image ramdisk`); None when the SoT has none."""
    if is_image_profile(host_profile):
        return host_profile
    return next((profiles[n] for n in sorted(profiles) if is_image_profile(profiles[n])), None)
