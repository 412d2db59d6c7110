"""What changed between two SoT revisions, per site, cluster and host, and why."""

from __future__ import annotations

import difflib
import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..sot.loader import SoT
from ..sot.models import Cluster, Host, Model, Profile
from ..sot.templates import config_source

# The host actions, most disruptive first; a host gets the first one any of its changes needs.
ACTIONS = ("remove", "add", "reinstall", "upgrade", "power", "config")
# Host fields whose change means the machine must be installed again.
_REINSTALL_FIELDS = ("macs", "uuid", "firmware", "reinstall")


@dataclass
class HostChange:
    host: str
    cluster: str
    site: str
    action: str
    reasons: list[str] = field(default_factory=list)

    @property
    def disruptive(self) -> bool:
        """True when the host reboots or powers off (it then counts against the policy)."""
        return self.action in ("add", "reinstall", "upgrade", "power", "remove")


@dataclass
class ScopeChange:
    kind: str  # site | cluster | profile | hook
    name: str
    action: str  # add | change | remove
    reasons: list[str] = field(default_factory=list)


# What an approver reads must be what runs: values are never cut, and nothing in a value can
# start a line of its own. Control and format characters (newline, CR, NEL, U+2028, bidi
# overrides...) are shown as escapes; a value that is long or spans lines is shown as a
# unified diff, one indented line per line (or 64-character piece) of the value.
SHORT = 60
WRAP = 64
DIFF_INDENT = "    "
# Above this, difflib's work grows too fast for a gate that must end in bounded time: the
# change is named by size and sha256 instead.
DIFF_MAX = 200_000
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")


def _escape_char(ch: str, backslash: bool) -> str:
    if ch == "\\":
        return "\\\\" if backslash else ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if (ch.isascii() and ch.isprintable()) or unicodedata.category(ch) not in _HIDDEN:
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str, *, backslash: bool = True) -> str:
    """`text` on one line, readable: control and format characters as escapes (\\n, \\x00, \\u2028).

    With `backslash`, a backslash is doubled too, so a value holding the two characters
    backslash-n reads differently from one holding a newline.
    """
    if text.isascii() and text.isprintable() and (not backslash or "\\" not in text):
        return text
    return "".join(_escape_char(ch, backslash) for ch in text)


def show(value: Any) -> str:
    """One value on one line, in full."""
    if isinstance(value, str):
        text = escape(value)
        # Quoted where the bare text would be ambiguous in 'old -> new'.
        if text == "" or text != text.strip() or " -> " in text or text.startswith('"'):
            return '"' + text.replace('"', '\\"') + '"'
        return text
    # repr() of lists and mappings already escapes what is inside their strings.
    return escape(str(value), backslash=False)


def _pieces(value: Any) -> list[str]:
    """The lines a value is diffed as: its own lines, escaped, cut in WRAP-character pieces."""
    if value is None:
        return []
    lines = value.split("\n") if isinstance(value, str) else [show(value)]
    out: list[str] = []
    for line in lines:
        text = escape(line) if isinstance(value, str) else line
        out.extend(text[i : i + WRAP] for i in range(0, len(text), WRAP))
        if not text:
            out.append("")
    return out


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(show(value))


def value_diff(old: Any, new: Any) -> list[str]:
    """A unified diff of two values (None: absent), each line indented by DIFF_INDENT."""
    if _size(old) + _size(new) > DIFF_MAX:
        digest = [hashlib.sha256(show(v).encode()).hexdigest()[:16] if v is not None else "(none)" for v in (old, new)]
        return [f"{DIFF_INDENT}(too large to show: {_size(old)} -> {_size(new)} characters, sha256 {digest[0]} -> {digest[1]})"]
    lines = difflib.unified_diff(_pieces(old), _pieces(new), "old", "new", n=2, lineterm="")
    return [f"{DIFF_INDENT}{line}" for line in lines]


def _long(value: Any) -> bool:
    return (isinstance(value, str) and "\n" in value) or len(show(value)) > SHORT


def diff_values(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Readable field-level differences: ['ips.prov: 10.0.0.5 -> 10.0.0.6', ...].

    A long or multi-line value gives a header line followed by its diff lines (indented).
    """
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{escape(str(key))}" if prefix else escape(str(key))
            if key not in old:
                if _long(new[key]):
                    out += [f"{path}: added ({_size(new[key])} characters):", *value_diff(None, new[key])]
                else:
                    out.append(f"{path}: added {show(new[key])}")
            elif key not in new:
                if _long(old[key]):
                    out += [f"{path}: removed ({_size(old[key])} characters):", *value_diff(old[key], None)]
                else:
                    out.append(f"{path}: removed (was {show(old[key])})")
            else:
                out.extend(diff_values(old[key], new[key], path))
        return out
    path = prefix or "value"
    if _long(old) or _long(new):
        return [f"{path}: changed ({_size(old)} -> {_size(new)} characters):", *value_diff(old, new)]
    return [f"{path}: {show(old)} -> {show(new)}"]


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Top-level keys whose values differ."""
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _dump(obj: Model) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_defaults=False)


def _profile_changes(old: SoT, new: SoT) -> dict[str, list[str]]:
    """Per profile name present in both: what changed, including the content of its config template."""
    out: dict[str, list[str]] = {}
    for name, prof in new.profiles.items():
        before = old.profiles.get(name)
        if before is None:
            continue
        reasons = [] if before == prof else diff_values(_dump(before), _dump(prof))
        old_text, new_text = _template_text(old, before), _template_text(new, prof)
        if old_text != new_text:
            reasons.append(f"config template {escape(prof.config.template or '') if prof.config else ''}: content changed:")
            reasons.extend(value_diff(old_text, new_text))
        if reasons:
            out[name] = reasons
    return out


def _template_text(sot: SoT, profile: Profile) -> str | None:
    if profile.config is None or profile.config.template is None:
        return None
    try:
        return config_source(sot.root, profile)
    except OSError:
        return None


def _host_change(old_c: Cluster, old_h: Host, new_c: Cluster, new_h: Host, old: SoT, new: SoT, profile_changes: dict[str, list[str]]) -> HostChange | None:
    reasons: list[str] = []
    action = "config"
    old_profile = old_h.profile or old_c.profile
    new_profile = new_h.profile or new_c.profile
    if old_h != new_h:
        before, after = _dump(old_h), _dump(new_h)
        reasons.extend(diff_values(before, after))
        fields = changed_fields(before, after)
        if fields & set(_REINSTALL_FIELDS):
            action = "reinstall"
        elif "power" in fields:
            action = "power"
    if old_c.site != new_c.site:
        reasons.append(f"site: {old_c.site} -> {new_c.site}")
        action = "reinstall"
    if old_c.name != new_c.name:
        reasons.append(f"cluster: {old_c.name} -> {new_c.name}")
    if old_profile != new_profile:
        reasons.append(f"profile: {old_profile} -> {new_profile}")
        if action != "reinstall":
            action = "upgrade"
    elif new_profile in profile_changes:
        # The diffs themselves are shown once, under the profile (scope_changes), not per host.
        for r in profile_changes[new_profile]:
            if r.startswith(DIFF_INDENT):
                continue
            reasons.append(f"profile {new_profile}: {r[:-1]} (diff shown under profile {new_profile})" if r.endswith(":") else f"profile {new_profile}: {r}")
        if action != "reinstall":
            action = "upgrade"
    if not reasons:
        return None
    if action in ("upgrade", "reinstall") and new_h.power == "off":
        action = "config"  # an installed-but-off host is reinstalled when it is next powered on
    return HostChange(new_h.name, new_c.name, new_c.site, action, reasons)


def host_changes(old: SoT, new: SoT) -> list[HostChange]:
    old_hosts = {h.name: (c, h) for c, _, h in old.hosts()}
    new_hosts = {h.name: (c, h) for c, _, h in new.hosts()}
    profile_changes = _profile_changes(old, new)
    changes: list[HostChange] = []
    for name, (cluster, host) in new_hosts.items():
        before = old_hosts.get(name)
        if before is None:
            if host.power == "off":
                changes.append(HostChange(name, cluster.name, cluster.site, "config", ["new host, kept powered off (power: off)"]))
            else:
                profile = host.profile or cluster.profile
                changes.append(HostChange(name, cluster.name, cluster.site, "add", [f"new host: install {profile} (MAC {', '.join(host.macs)})"]))
            continue
        change = _host_change(before[0], before[1], cluster, host, old, new, profile_changes)
        if change is not None:
            changes.append(change)
    for name, (cluster, _) in old_hosts.items():
        if name not in new_hosts:
            changes.append(HostChange(name, cluster.name, cluster.site, "remove", ["host removed from the SoT: power off, stop serving it"]))
    return changes


def scope_changes(old: SoT, new: SoT) -> list[ScopeChange]:
    """Sites, clusters (settings other than hosts), profiles and hooks that were added, changed or removed."""
    out: list[ScopeChange] = []
    profile_changes = _profile_changes(old, new)
    tables = (("site", "sites"), ("cluster", "clusters"), ("profile", "profiles"), ("hook", "hooks"))
    for kind, attr in tables:
        before: dict[str, Any] = getattr(old, attr)
        after: dict[str, Any] = getattr(new, attr)
        for name, obj in after.items():
            if name not in before:
                out.append(ScopeChange(kind, name, "add"))
                continue
            prev = before[name]
            if kind == "profile":
                # Includes the content of a template file, which the documents only name.
                reasons = profile_changes.get(name, [])
                if reasons:
                    out.append(ScopeChange(kind, name, "change", reasons))
                continue
            if prev == obj:
                continue
            a, b = _dump(prev), _dump(obj)
            if kind == "cluster":
                a.pop("hosts")
                b.pop("hosts")
            reasons = diff_values(a, b)
            if reasons:
                out.append(ScopeChange(kind, name, "change", reasons))
        for name in before:
            if name not in after:
                out.append(ScopeChange(kind, name, "remove"))
    return out
