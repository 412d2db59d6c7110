"""Per-host OS configuration: cloud-init NoCloud (user-data, meta-data), Ignition JSON or a debconf preseed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import yaml

from vaquero.sot.models import Profile, cloud_config_error, preseed_error
from vaquero.sot.templates import config_source, environment

from .site import RenderError, safe


def render_config(root: Path, profile: Profile, context: dict[str, Any]) -> tuple[str, bytes] | None:
    """(format, bytes) of the host's config, or None when the profile has none."""
    if profile.config is None:
        return None
    try:
        source = config_source(root, profile)
    except OSError as exc:
        raise RenderError(f"profile {profile.name}: config template: {exc}") from exc
    assert source is not None
    try:
        text = environment().from_string(source).render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"profile {profile.name}: config template: {exc}") from exc
    if profile.config.format == "ignition":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"profile {profile.name}: Ignition config is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("ignition"), dict) or "version" not in doc["ignition"]:
            raise RenderError(f"profile {profile.name}: Ignition config lacks ignition.version")
        return "ignition", (json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n").encode()
    if profile.config.format == "preseed":
        # Checked again whatever validation said: this text is what debian-installer will execute.
        if (why := preseed_error(text)) is not None:
            raise RenderError(f"profile {profile.name}: {why}")
        return "preseed", text.encode()
    why = cloud_config_error(text)
    if why is not None:
        raise RenderError(f"profile {profile.name}: {why}")
    return "cloud-init", text.encode()


def meta_data(host: str, instance: str) -> bytes:
    """NoCloud meta-data: a new instance-id makes cloud-init run again after a reinstall."""
    doc = {
        "instance-id": safe(instance, "file", f"host {host}: instance-id"),
        "local-hostname": safe(host, "name", f"host {host!r}: name"),
    }
    # safe_dump quotes whatever YAML would read as something else; the checks above make sure
    # there is nothing to quote, and safe_dump makes sure of it again.
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=False).encode()
