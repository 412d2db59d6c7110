"""Jinja2 templates of the SoT (kernel cmdline, cloud-init / Ignition) and the context they see.

One context builder for validation, rendering and the Ansible inventory, so a template that
validates is a template that renders on the agent.
"""

from __future__ import annotations

import base64
import contextvars
import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .models import Cluster, Host, Network, Profile, Site

# Stands for the host's one-time install token in rendered scripts and configs; the agent puts the
# real token in when it arms the host. URL-safe base64 characters only, like the token itself, so
# it needs no quoting in a URL, an iPXE line, a kernel cmdline or YAML.
TOKEN_PLACEHOLDER = "VAQUERO_INSTALL_TOKEN_PLACEHOLDER"
# Stands for the installed OS's one-time phone-home token; the agent derives the real one from the
# install token when it serves a config or deploy instructions (agent.http.phone_home_token).
PHONE_HOME_PLACEHOLDER = "VAQUERO_PHONE_HOME_TOKEN_PLACEHOLDER"


@dataclass(frozen=True)
class BootUrls:
    """Where the agent serves a host's files; validation uses placeholders."""

    base: str = "http://agent.invalid:8080"
    token: str = TOKEN_PLACEHOLDER

    def callback(self, host: Host) -> str:
        return f"{self.base}/v1/boot/callback/{host.name}?token={self.token}"

    def config(self, host: Host) -> str:
        return f"{self.base}/v1/boot/config/{host.name}?token={self.token}"

    def nocloud(self, host: Host) -> str:
        """A NoCloud seed (cloud-init appends the file name, so the token is a path segment)."""
        return f"{self.base}/v1/boot/nocloud/{host.name}/{self.token}/"

    def phone_home(self, host: Host | str) -> str:
        """Where the installed OS reports that it booted (once, with a token derived from this install's)."""
        name = host if isinstance(host, str) else host.name
        return f"{self.base}/v1/boot/phone-home/{name}?token={PHONE_HOME_PLACEHOLDER}"

    def assets(self) -> str:
        return f"{self.base}/assets"


# Work one render may do. Generous for real templates (a few loops over disks, NICs, users) and far
# below what pins a CPU: the process that validates a revision has the authoritative bounds (RLIMIT_AS,
# RLIMIT_CPU, a wall-clock deadline, see vaquero.gate.sandbox); these make a runaway template fail fast,
# with a message that names it, wherever it renders (validation, the agent, hooks).
MAX_LOOP_STEPS = 200_000  # loop iterations + sandboxed calls + range() lengths, per render
MAX_OUTPUT = 4 << 20  # characters of rendered text
MAX_SECONDS = 5.0  # per render
MAX_SEQUENCE = 100_000  # elements of a string or list built by * or **


class TemplateLimitError(jinja2.TemplateRuntimeError):
    """A template used more than its share of loop work, output or time."""


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = MAX_LOOP_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise TemplateLimitError(f"template exceeded its loop budget ({MAX_LOOP_STEPS} iterations, calls and range elements)")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"template rendering exceeded {MAX_SECONDS:g} s")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("vaquero_template_budget", default=None)


def _current_budget() -> _Budget:
    budget = _budget.get()
    if budget is None:  # rendered outside Template.render (generate, a stray macro): a budget of its own
        budget = _Budget()
        _budget.set(budget)
    return budget


def _loop_guard(iterable: Any) -> Iterator[Any]:
    budget = _current_budget()
    for item in iterable:
        budget.spend()
        yield item


def _range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_SEQUENCE:
        raise TemplateLimitError(f"range() of {len(rng)} elements (at most {MAX_SEQUENCE})")
    _current_budget().spend(len(rng))
    return rng


def _sized(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return 1


class _LimitedTemplate(jinja2.Template):
    def render(self, *args: Any, **kwargs: Any) -> str:
        token = _budget.set(_Budget())
        try:
            ctx = self.new_context(dict(*args, **kwargs))
            try:
                parts: list[str] = []
                size = 0
                for chunk in self.root_render_func(ctx):
                    size += len(chunk)
                    if size > MAX_OUTPUT:
                        raise TemplateLimitError(f"template output exceeded {MAX_OUTPUT} characters")
                    parts.append(chunk)
                return "".join(parts)
            except RecursionError:
                # A recursive macro or loop(): say so in the template's terms, not Python's.
                error = TemplateLimitError("template recursion too deep")
            except Exception:
                self.environment.handle_exception()
            raise error
        finally:
            _budget.reset(token)


# Characters that JSON leaves raw but YAML reads as a line break (NEL, LS, PS) or refuses (BOM),
# and every other control, format or surrogate code point of the BMP.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb]")


def _undefined_is_an_error(obj: Any) -> Any:
    """json.dumps's fallback: an undefined variable inside a value raises Jinja's own error (which
    validation reports with file and line), not a TypeError about serialising StrictUndefined."""
    if isinstance(obj, jinja2.Undefined):
        obj._fail_with_undefined_error()
    raise TypeError(f"{type(obj).__name__} cannot be written as JSON")


def _json_for_yaml(obj: Any, **kwargs: Any) -> str:
    """`tojson`, valid as JSON (Ignition) and as a YAML flow scalar (cloud-init) with the same value.

    json.dumps's ASCII escapes write a character beyond U+FFFF as a surrogate pair, which YAML reads
    back as two lone surrogates; so non-ASCII text stays itself, except what YAML would read as a
    line break or refuse, which is escaped as \\uXXXX (the same in both languages).
    """
    text = json.dumps(obj, **{**kwargs, "ensure_ascii": False, "default": _undefined_is_an_error})
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _text(value: Any) -> str:
    """A filter's input as text; an undefined variable raises Jinja's own error (named, with its line)."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return str(value)


def _shquote(value: Any) -> str:
    """One POSIX shell word (for preseed late_command, Ignition units, runcmd strings); a value
    holding a line break is refused rather than quoted across lines."""
    text = _text(value)
    if "\n" in text or "\r" in text or "\x00" in text:
        raise jinja2.TemplateRuntimeError("shquote: the value holds a line break or NUL")
    return shlex.quote(text)


def _b64encode(value: Any) -> str:
    """Base64 of the value's UTF-8 text: a multi-line file (a unit, a script) as one shell-safe word, for
    formats that take one line per entry (a preseed's late_command)."""
    return base64.b64encode(_text(value).encode()).decode()


class SoTEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox for SoT templates: no file access, bounded loops, calls, sizes, output and time."""

    template_class = _LimitedTemplate
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        # A loader that refuses everything: include/import/extend are refused at parse time already,
        # this is the second lock (and the message if a template reaches get_template another way).
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True, loader=jinja2.DictLoader({}))
        self.globals["range"] = _range
        self.filters["vaquero_loop_guard"] = _loop_guard
        self.policies["json.dumps_function"] = _json_for_yaml
        self.filters["shquote"] = _shquote
        self.filters["b64encode"] = _b64encode

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            raise jinja2.TemplateSyntaxError("a SoT template cannot include, import or extend other templates", node.lineno, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "vaquero_loop_guard", [], [], None, None, lineno=loop.lineno)
        return tree

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _current_budget().spend()
        result = super().call(__context, __obj, *args, **kwargs)
        if _sized(result) > MAX_OUTPUT:
            raise TemplateLimitError(f"a call in the template built a value of {_sized(result)} elements")
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_SEQUENCE:
                    raise TemplateLimitError(f"repeating a sequence {n} times builds more than {MAX_SEQUENCE} elements")
        elif operator == "**" and isinstance(right, int) and isinstance(left, int) and abs(left) > 1 and right > 64:
            raise TemplateLimitError("exponent too large")
        return super().call_binop(context, operator, left, right)


_env = SoTEnvironment()


def environment() -> ImmutableSandboxedEnvironment:
    # Sandboxed and immutable: templates come from a git repository; they must not reach Python
    # internals nor change the context shared between hosts, nor run without bounds.
    return _env


def primary_network(site: Site, host: Host) -> Network:
    for net in site.networks:
        if net.name in host.ips:
            return net
    return site.networks[0]


def network_context(net: Network) -> dict[str, Any]:
    return {
        "name": net.name,
        "subnet": str(net.subnet),
        "netmask": str(net.subnet.netmask),
        "prefix": net.subnet.prefixlen,
        "gateway": str(net.gateway) if net.gateway else None,
        "dns": [str(d) for d in net.dns],
        "ntp": [str(n) for n in net.ntp],
        "domain": net.domain,
    }


def host_context(
    site: Site,
    cluster: Cluster,
    host: Host,
    profile: Profile,
    *,
    urls: BootUrls | None = None,
    sha: str | None = None,
    networks: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a template sees. `networks` memoises network_context per network for callers that loop over hosts."""
    urls = urls or BootUrls()
    net = primary_network(site, host)
    ip = host.ips.get(net.name)
    if networks is None:
        net_ctx = network_context(net)
    else:
        net_ctx = networks.get(id(net)) or networks.setdefault(id(net), network_context(net))
    return {
        "host": {
            "name": host.name,
            "macs": list(host.macs),
            "mac": host.macs[0],
            "uuid": host.uuid,
            "serial": host.serial,
            "asset_tag": host.asset_tag,
            "roles": list(host.roles),
            "ips": {k: str(v) for k, v in host.ips.items()},
            "ip": str(ip) if ip else None,
            "firmware": host.firmware,
            "fqdn": f"{host.name}.{net.domain}" if net.domain else host.name,
        },
        "cluster": {"name": cluster.name},
        "site": {"name": site.name},
        "profile": {"name": profile.name, "version": profile.version, "packages": [p.model_dump() for p in profile.packages]},
        "network": net_ctx,
        "vars": {**cluster.vars, **host.vars},
        "urls": {"callback": urls.callback(host), "config": urls.config(host), "phone_home": urls.phone_home(host), "assets": urls.assets()},
        "sot": {"sha": sha},
    }


def config_source(root: FsPath, profile: Profile) -> str | None:
    """The text of the profile's config template (inline or a file in the SoT)."""
    if profile.config is None:
        return None
    if profile.config.inline is not None:
        return profile.config.inline
    assert profile.config.template is not None
    path = root / profile.config.template
    if path.is_symlink():
        raise OSError(f"{profile.config.template} is a symlink")
    return path.read_text(encoding="utf-8")
