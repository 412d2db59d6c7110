"""A site bundle: what one agent needs from one applied revision, as one JSON document.

    {
      "format": 1,
      "agent": "east-agent-1", "site": "dc-east",
      "sha": "<SoT commit>", "plan": "<plan id>", "version": "<sha>+<digest>",
      "files": {"sites/dc-east.yaml": {"text": "..."}, "templates/x.j2": {"text": "..."}, "bin/y": {"b64": "..."}},
      "hosts": {"h1": {"cluster": "etcd", "macs": [...], "state": "netbooting", "since": 1764.., "plan": "p1", "attempt": 1,
                       "intent": "install"}},
      "rendered": {"chain": "...", "dhcp": "...", "hosts": {"h1": {"install": "...", "localboot": "...", ...}}}
    }

`files` is a SoT folder the agent writes to disk and loads like any other (`vaquero agent
--sot <folder>`): the site's documents (the Site, its clusters, the clusters they depend on,
their profiles and hooks; a multi-document file holding other sites' documents is cut down
to the wanted ones) and every non-document file (templates, hook tasks). `hosts` carries the
boot intent of each host from the host state in the Store: `install` while the host is
netbooting or installing, `localboot` otherwise (state-driven netboot: an installed host is
never sent back to its installer). `rendered` is what the controller rendered for this agent,
for the agent to compare with its own rendering and for people to read.

`version` changes when anything in the bundle changes (a new revision, a host's intent
under the same revision, a new leader): it is the ETag, and what the agent sends back as `have`.

`fence` is the fencing token of the leader whose store state the bundle was built from (the
leader key's revision, read before the state, so it never claims more than the state holds;
null when no controller leads), and `store_id` the store's identity (a random id created once
in the store under STORE_ID_KEY: a rebuilt store is a new identity). The agent refuses a bundle
of the same store with a lower fence than one it accepted (docs/ha.md, section 4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from vaquero.sot import SoT
from vaquero.sot.loader import DOC_FOLDERS, load
from vaquero.sot.models import Site
from vaquero.state.leader import leader_key
from vaquero.state.machine import current
from vaquero.state.store import FencedStore, Store

log = logging.getLogger(__name__)

FORMAT = 1
CURRENT_KEY = "/sites-applied/current"
INSTALL_STATES = frozenset({"netbooting", "installing"})
MAX_FILE = 16 << 20  # a non-document file larger than this is left out (assets belong in the asset root)
MAX_TOTAL = 64 << 20
STORE_ID_KEY = "/store/id"
LEADER_KEY = leader_key("controller")  # the elector's default name, as `vaquero server` runs it


class BundleError(Exception):
    """No bundle can be built (no applied revision, unknown agent, unreadable SoT)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def site_of_agent(sot: SoT, agent: str) -> Site | None:
    for site in sot.sites.values():
        if any(a.name == agent for a in site.agents):
            return site
    return None


def wanted_documents(sot: SoT, site: Site) -> set[tuple[str, str]]:
    """(kind, name) of the documents an agent of `site` needs for its SoT to load and validate."""
    clusters = {c.name for c in sot.clusters.values() if c.site == site.name}
    todo = list(clusters)
    while todo:  # clusters this site's clusters depend on, wherever they run
        c = sot.clusters.get(todo.pop())
        for dep in c.depends_on if c else []:
            if dep not in clusters and dep in sot.clusters:
                clusters.add(dep)
                todo.append(dep)
    out: set[tuple[str, str]] = {("Site", site.name)}
    for name in clusters:
        c = sot.clusters[name]
        out.add(("Cluster", name))
        out.add(("Site", c.site))
        out.add(("Profile", c.profile))
        hooks = [h for names in c.hooks.values() for h in names]
        for host in c.hosts:
            if host.profile:
                out.add(("Profile", host.profile))
            hooks.extend(h for names in host.hooks.values() for h in names)
        out.update(("Hook", h) for h in hooks)
    return out


def parse_texts(sot: SoT) -> dict[str, list[Any]]:
    """Every document file's documents, parsed once per revision and shared by all its agents' bundles."""
    return {rel: [d for d in yaml.safe_load_all(text) if d is not None] for rel, text in sorted(sot.texts.items())}


def _doc_files(sot: SoT, wanted: set[tuple[str, str]], parsed: dict[str, list[Any]]) -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = {}
    for rel, text in sorted(sot.texts.items()):
        docs = parsed[rel]
        keep = [d for d in docs if isinstance(d, dict) and (d.get("kind"), d.get("name")) in wanted]
        if not keep:
            continue
        if len(keep) == len(docs):
            files[rel] = {"text": text}  # verbatim: line numbers in errors stay right
        else:
            files[rel] = {"text": yaml.safe_dump_all(keep, sort_keys=False)}
    return files


def _data_files(root: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Every file outside the document folders (templates, hook tasks), text or base64."""
    files: dict[str, dict[str, str]] = {}
    skipped: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (rel_dir == Path(".") and d in DOC_FOLDERS))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            size = path.stat().st_size
            if size > MAX_FILE or total + size > MAX_TOTAL:
                skipped.append(rel)
                continue
            data = path.read_bytes()
            total += size
            try:
                files[rel] = {"text": data.decode("utf-8")}
            except UnicodeDecodeError:
                files[rel] = {"b64": base64.b64encode(data).decode("ascii")}
    return files, skipped


def _rendered(sot: SoT, site: Site, agent: str) -> dict[str, Any]:
    from vaquero.render.bundle import render_site

    b = render_site(sot, site.name, agent=agent)
    hosts = {
        name: {
            "install": hb.install,
            "localboot": hb.localboot,
            "config_format": hb.config_format,
            "config": hb.config.decode("utf-8", "replace") if hb.config is not None else None,
        }
        for name, hb in b.hosts.items()
    }
    return {"base_url": b.base_url, "chain": b.chain, "dhcp": b.dhcp, "hosts": hosts}


def store_identity(store: Store) -> str:
    """The store's identity, created on first use: cas(expect=0) lets one controller win the race."""
    for _ in range(3):
        rec = store.get(STORE_ID_KEY)
        if rec is not None:
            sid = rec.value.get("id")
            if not isinstance(sid, str) or not sid:
                raise BundleError(503, f"the store's identity record {STORE_ID_KEY} is malformed")
            return sid
        # Not run state: a follower may create it too, so a fenced store's inner store takes the write.
        raw = store.inner if isinstance(store, FencedStore) else store
        if raw.cas(STORE_ID_KEY, {"id": secrets.token_hex(16), "created": time.time()}, expect=0) is None:
            continue
    rec = store.get(STORE_ID_KEY)
    if rec is None or not isinstance(rec.value.get("id"), str):
        raise BundleError(503, "the store's identity cannot be read")
    return str(rec.value["id"])


def leader_fence(store: Store) -> int | None:
    """The current leader's fencing token (its key's revision), or None when no controller leads."""
    rec = store.get(LEADER_KEY)
    return rec.revision if rec is not None else None


def intent_of(state: str | None) -> str:
    return "install" if state in INSTALL_STATES else "localboot"


class BundleBuilder:
    """Builds bundles from the Store; the SoT part is cached per (revision, agent)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._sot: tuple[tuple[Any, ...], SoT] | None = None
        self._parsed: tuple[SoT, dict[str, list[Any]]] | None = None
        self._load_lock = threading.Lock()  # held while a revision is loaded or parsed (slow); taken before _lock, never while holding it
        self._static: dict[tuple[Any, ...], dict[str, Any]] = {}

    def applied(self) -> dict[str, Any]:
        rec = self.store.get(CURRENT_KEY)
        if rec is None or not rec.value.get("root"):
            raise BundleError(404, "no revision is applied yet")
        return rec.value

    def sot(self, applied: dict[str, Any]) -> SoT:
        key = (applied.get("sha"), applied["root"])
        with self._lock:
            if self._sot is not None and self._sot[0] == key:
                return self._sot[1]
        # One load per revision: 100 agents asking at once after an apply would otherwise each load it.
        with self._load_lock:
            with self._lock:
                if self._sot is not None and self._sot[0] == key:
                    return self._sot[1]
            try:
                sot = load(applied["root"], sha=applied.get("sha"), label=applied.get("sha") or applied["root"], semantic=False)
            except Exception as exc:
                log.error("cannot load the applied revision: %s", exc, extra={"sha": applied.get("sha")})
                raise BundleError(503, "the applied revision cannot be loaded on the controller") from None
            with self._lock:
                self._sot = (key, sot)
        return sot

    def _parsed_texts(self, sot: SoT) -> dict[str, list[Any]]:
        with self._lock:
            if self._parsed is not None and self._parsed[0] is sot:
                return self._parsed[1]
        with self._load_lock:
            with self._lock:
                if self._parsed is not None and self._parsed[0] is sot:
                    return self._parsed[1]
            # Once per revision, not per agent: 100 agents parsed the whole SoT 100 times.
            parsed = parse_texts(sot)
            with self._lock:
                self._parsed = (sot, parsed)
        return parsed

    def site_hosts(self, agent: str) -> tuple[SoT, Site, dict[str, str]]:
        """The applied SoT, the agent's site and its hosts (host -> cluster)."""
        sot = self.sot(self.applied())
        site = site_of_agent(sot, agent)
        if site is None:
            raise BundleError(404, f"agent {agent!r} is not named by any site in the applied revision")
        hosts = {h.name: c.name for c, _, h in sot.hosts() if c.site == site.name}
        return sot, site, hosts

    def _static_part(self, applied: dict[str, Any], sot: SoT, site: Site, agent: str) -> dict[str, Any]:
        key = (applied.get("sha"), applied["root"], applied.get("plan"), agent)
        with self._lock:
            hit = self._static.get(key)
        if hit is not None:
            return hit
        files = _doc_files(sot, wanted_documents(sot, site), self._parsed_texts(sot))
        data, skipped = _data_files(Path(applied["root"]))
        files.update(data)
        try:
            rendered: dict[str, Any] | None = _rendered(sot, site, agent)
            render_error = None
        except Exception as exc:  # the agent renders for itself; this copy is informative
            rendered, render_error = None, str(exc)
        part = {
            "format": FORMAT,
            "agent": agent,
            "site": site.name,
            "sha": applied.get("sha"),
            "plan": applied.get("plan"),
            "files": files,
            "skipped": skipped,
            "rendered": rendered,
            "render_error": render_error,
        }
        part["files_digest"] = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if len(self._static) > 64:
                self._static.clear()
            self._static[key] = part
        return part

    def build(self, agent: str) -> dict[str, Any]:
        # The fence is read before the state: if a new leader writes in between, the bundle carries the
        # older token (a lower bound), never a token newer than the state it was built from.
        store_id = store_identity(self.store)
        fence = leader_fence(self.store)
        applied = self.applied()
        sot, site, _ = self.site_hosts(agent)
        part = self._static_part(applied, sot, site, agent)
        hosts: dict[str, Any] = {}
        for c, _, h in sot.hosts():
            if c.site != site.name:
                continue
            rec = current(self.store, h.name)
            state = rec.get("state") if rec else None
            hosts[h.name] = {
                "cluster": c.name,
                "macs": list(h.macs),
                "state": state,
                "since": rec.get("since") if rec else None,
                "sha": rec.get("sha") if rec else None,
                "plan": rec.get("plan") if rec else None,
                "attempt": rec.get("attempt") if rec else None,
                "intent": intent_of(state),
            }
        digest = hashlib.sha256(json.dumps([part["files_digest"], part.get("plan"), hosts, fence, store_id], sort_keys=True).encode()).hexdigest()[:16]
        tree = part["sha"] or hashlib.sha256(str(applied["root"]).encode()).hexdigest()[:12]
        return {**part, "hosts": hosts, "fence": fence, "store_id": store_id, "version": f"{tree}+{digest}"}
