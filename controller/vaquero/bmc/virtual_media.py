"""Redfish VirtualMedia: attach an ISO the BMC fetches by URL, and take it out again.

The slot is found the way BMCs publish it: the System's ``VirtualMedia`` collection, else the
collection of the Manager that manages the System (``Links.ManagedBy``), and in it the first slot
whose ``MediaTypes`` include a CD or DVD. Every change is read back: ``insert`` succeeds only when
the slot reports ``Inserted: true`` with the very image asked for, ``eject`` only when it reports
``Inserted: false``. Each operation runs under the BMC's guard (lock, limit, breaker, fence).

Image URLs carry the host's one-time install token: it is masked (``token=***``) in every message,
log line and result, and scrubbed from whatever the BMC says back.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vaquero.bmc.errors import BmcError, BmcProtocolError, BmcUnsupported
from vaquero.bmc.redfish_driver import RedfishBmc, _json
from vaquero.logs import redact, register_secret

log = logging.getLogger("vaquero.bmc.virtual_media")

MAX_URL = 2048
# Printable ASCII with no space, quote, backslash or angle bracket: what a BMC takes as one URI.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")
_SECRET_KEYS = ("token",)
_CD_TYPES = ("CD", "DVD")
# A token in a URL quoted in text (an image a BMC already held, read back by a process that never saw it inserted).
_TOKEN_IN_TEXT = re.compile(r"([?&]token=)[^&\"'\s]+")
# Collections and members read while looking for a slot: a BMC that lists more is not believed.
MAX_SLOTS = 32


class VirtualMediaError(BmcError):
    """The BMC did not do what was asked with its virtual media (refused the image, or read back something else)."""

    kind = "virtual_media"


def check_image_url(url: str, host: str) -> str:
    """``url`` when it is an http(s) URL a BMC can fetch; a typed error otherwise (the token masked)."""
    if not isinstance(url, str) or not url:
        raise VirtualMediaError(host, "image URL is empty")
    if len(url) > MAX_URL:
        raise VirtualMediaError(host, f"image URL is {len(url)} characters, at most {MAX_URL}")
    if not _URL_CHARS.fullmatch(url):
        raise VirtualMediaError(host, f"image URL {mask_url(url)!r} holds characters a URL may not (space, quote, control...)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise VirtualMediaError(host, f"image URL {mask_url(url)!r} is not an http:// or https:// URL with a host")
    return url


def mask_url(url: str | None) -> str | None:
    """``url`` with the value of every secret query parameter replaced by ``***``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True, max_num_fields=32)
    except ValueError:
        return "<unparsable URL>"
    if not any(k in _SECRET_KEYS for k, _ in pairs):
        return url
    query = urlencode([(k, "***" if k in _SECRET_KEYS else v) for k, v in pairs], safe="*/:")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> list[str]:
    try:
        return [v for k, v in parse_qsl(urlsplit(url).query, max_num_fields=32) if k in _SECRET_KEYS and v]
    except ValueError:
        return []


class _Redact(logging.Filter):
    """The redfish client logs request and response bodies at debug level: an image URL is in both."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = _TOKEN_IN_TEXT.sub(r"\1***", redact(text))
        if clean != text:
            record.msg, record.args = clean, None
        return True


_REDACT = _Redact()


def _hide(url: str) -> None:
    """Make the URL's token a secret of this process: scrubbed from every log line, ours or the client's."""
    for value in _secrets_of(url):
        register_secret(value)
    _hide_client_log()


def _hide_client_log() -> None:
    client_log = logging.getLogger("redfish.rest.v1")
    if _REDACT not in client_log.filters:
        client_log.addFilter(_REDACT)


@dataclass(frozen=True)
class MediaState:
    """One virtual media slot as the BMC reports it."""

    slot: str  # the slot's @odata.id
    inserted: bool
    image: str | None
    media_types: tuple[str, ...] = ()

    def holds(self, url: str) -> bool:
        return self.inserted and self.image == url

    def as_dict(self) -> dict[str, Any]:
        """For results and logs: the image URL with its token masked."""
        return {"slot": self.slot, "inserted": self.inserted, "image": mask_url(self.image) or None, "media_types": list(self.media_types)}


@dataclass(frozen=True)
class MediaResult:
    before: MediaState
    after: MediaState
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before.as_dict(), "media": self.after.as_dict(), "changed": self.changed}


class VirtualMedia:
    """The virtual CD/DVD of one Redfish BMC. Nothing is sent until the first call."""

    def __init__(self, bmc: RedfishBmc, slot: str | None = None) -> None:
        if not isinstance(bmc, RedfishBmc):
            raise BmcUnsupported(getattr(bmc, "host", "?"), "virtual media needs a Redfish BMC")
        self.bmc = bmc
        self._slot = slot  # an explicit slot path, else found on first use

    @property
    def host(self) -> str:
        return self.bmc.host

    # public, guarded --------------------------------------------------------------------------
    def status(self) -> MediaState:
        _hide_client_log()
        return self.bmc._run("virtual_media_status", self._read)

    def insert(self, url: str, *, check: bool = False) -> MediaResult:
        """Attach ``url`` (read-only) unless the slot already holds it; another image is ejected first."""
        check_image_url(url, self.host)
        _hide(url)
        return self._scrubbed(url, lambda: self.bmc._run("virtual_media_insert", lambda: self._insert(url, check)))

    def eject(self, *, check: bool = False) -> MediaResult:
        _hide_client_log()
        return self.bmc._run("virtual_media_eject", lambda: self._eject(check))

    # inside the guard ------------------------------------------------------------------------
    def _scrubbed(self, url: str, fn: Any) -> MediaResult:
        """Run ``fn``; an error that quotes the URL's token (a BMC may echo the URL) has it replaced by ***."""
        try:
            result: MediaResult = fn()
            return result
        except BmcError as exc:
            secrets = _secrets_of(url)
            text = exc.message
            for s in secrets:
                text = text.replace(s, "***")
            if text == exc.message:
                raise
            try:
                clean = type(exc)(exc.host, text, maybe_applied=exc.maybe_applied)
            except TypeError:  # an error type with other fields: keep the text, lose the subtype
                clean = VirtualMediaError(exc.host, text, maybe_applied=exc.maybe_applied)
            raise clean from None

    def _insert(self, url: str, check: bool) -> MediaResult:
        before = self._read()
        if before.holds(url):
            return MediaResult(before, before, False)
        if check:
            return MediaResult(before, MediaState(before.slot, True, url, before.media_types), True)
        slot = self._get(before.slot)
        if before.inserted:
            log.info("virtual media: ejecting %s before inserting the new image", mask_url(before.image), extra={"host": self.host})
            self._post_action(slot, "#VirtualMedia.EjectMedia", {})
        self._post_action(slot, "#VirtualMedia.InsertMedia", {"Image": url, "Inserted": True, "WriteProtected": True}, url=url)
        after = self._read()
        if not after.holds(url):
            raise VirtualMediaError(
                self.host,
                f"insert of {mask_url(url)} into {after.slot} not applied: the BMC reads back Inserted={after.inserted}, Image={mask_url(after.image)!r}",
                maybe_applied=True,
            )
        log.info("virtual media inserted: %s", mask_url(url), extra={"host": self.host})
        return MediaResult(before, after, True)

    def _eject(self, check: bool) -> MediaResult:
        before = self._read()
        if not before.inserted:
            return MediaResult(before, before, False)
        if check:
            return MediaResult(before, MediaState(before.slot, False, None, before.media_types), True)
        self._post_action(self._get(before.slot), "#VirtualMedia.EjectMedia", {})
        after = self._read()
        if after.inserted:
            raise VirtualMediaError(self.host, f"eject from {after.slot} not applied: the BMC still reads back Inserted=true", maybe_applied=True)
        log.info("virtual media ejected", extra={"host": self.host})
        return MediaResult(before, after, True)

    def _post_action(self, slot: dict[str, Any], action: str, body: dict[str, Any], *, url: str | None = None) -> None:
        target = ((slot.get("Actions") or {}).get(action) or {}).get("target")
        if not isinstance(target, str) or not target.startswith("/"):
            raise BmcUnsupported(self.host, f"virtual media slot {slot.get('@odata.id')} has no {action} action")
        self.bmc.guard.check_fence(self.host, f"virtual_media {action}")
        try:
            self.bmc._request("POST", target, body)
        except BmcUnsupported:
            raise
        except BmcError as exc:
            if url is None:
                raise
            # The BMC fetches the image itself: a 4xx here mostly means it could not (wrong URL, 404, TLS).
            raise VirtualMediaError(exc.host, f"the BMC refused image {mask_url(url)}: {exc.message}", maybe_applied=exc.maybe_applied) from None

    def _get(self, path: str) -> dict[str, Any]:
        return _json(self.bmc._request("GET", path))

    def _read(self) -> MediaState:
        path = self._slot or self._find_slot()
        self._slot = path
        data = self._get(path)
        image = data.get("Image")
        inserted = data.get("Inserted")
        if not isinstance(inserted, bool):
            # Some BMCs leave Inserted out and only show an Image: an image means media.
            inserted = bool(image)
        types = tuple(str(t) for t in (data.get("MediaTypes") or []) if isinstance(t, str))[:16]
        return MediaState(path, inserted, str(image) if image else None, types)

    def _collection(self) -> str:
        system = self._get(self.bmc._system())
        own = (system.get("VirtualMedia") or {}).get("@odata.id")
        if isinstance(own, str):
            return own
        managers = ((system.get("Links") or {}).get("ManagedBy") or [])[:MAX_SLOTS]
        for m in managers:
            mpath = m.get("@odata.id") if isinstance(m, dict) else None
            if isinstance(mpath, str):
                vm = (self._get(mpath).get("VirtualMedia") or {}).get("@odata.id")
                if isinstance(vm, str):
                    return vm
        raise BmcUnsupported(self.host, "neither the System nor its Manager offers a VirtualMedia collection")

    def _find_slot(self) -> str:
        coll = self._get(self._collection())
        members = [m.get("@odata.id") for m in (coll.get("Members") or [])[:MAX_SLOTS] if isinstance(m, dict)]
        seen: list[str] = []
        for path in members:
            if not isinstance(path, str):
                continue
            data = self._get(path)
            types = [str(t).upper() for t in (data.get("MediaTypes") or [])]
            seen.append(f"{path} {types}")
            if any(t in _CD_TYPES for t in types):
                return path
        if not seen:
            raise BmcProtocolError(self.host, "the VirtualMedia collection lists no slots")
        raise BmcUnsupported(self.host, f"no virtual media slot takes a CD or DVD (slots: {'; '.join(seen)})")
