"""What changed between two SoT revisions, per site, cluster and host, and why."""

from __future__ import annotations

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


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def diff_values(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Readable field-level differences: ['ips.prov: 10.0.0.5 -> 10.0.0.6', ...]."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: added {_short(new[key])}")
            elif key not in new:
                out.append(f"{path}: removed (was {_short(old[key])})")
            else:
                out.extend(diff_values(old[key], new[key], path))
        return out
    return [f"{prefix or 'value'}: {_short(old)} -> {_short(new)}"]


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
        if _template_text(old, before) != _template_text(new, prof):
            reasons.append(f"config template {prof.config.template if prof.config else ''}: content changed")
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
        changed = diff_values(_dump(old_h), _dump(new_h))
        reasons.extend(changed)
        fields = {c.split(":", 1)[0].split(".", 1)[0] for c in changed}
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
        reasons.extend(f"profile {new_profile}: {r}" for r in profile_changes[new_profile])
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
    tables = (("site", "sites"), ("cluster", "clusters"), ("profile", "profiles"), ("hook", "hooks"))
    for kind, attr in tables:
        before: dict[str, Any] = getattr(old, attr)
        after: dict[str, Any] = getattr(new, attr)
        for name, obj in after.items():
            if name not in before:
                out.append(ScopeChange(kind, name, "add"))
                continue
            prev = before[name]
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
