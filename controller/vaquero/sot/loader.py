"""Read a SoT folder into typed models, collecting every structural error with file and line."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import Path, SoTError, SoTInvalid, SourceError
from .lines import LineIndex
from .models import API_VERSION, KINDS, Cluster, Hook, Host, HostDocument, Model, Profile, Site

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

# The folders of a SoT whose YAML files are all Vaquero documents. Anything else in the
# repository (templates, hook task files, README) is data the documents point at.
DOC_FOLDERS = ("sites", "profiles", "clusters", "hooks", "hosts")
_PLURAL = {"Site": "sites", "Profile": "profiles", "Cluster": "clusters", "Hook": "hooks", "Host": "host_docs"}


@dataclass(frozen=True)
class Origin:
    file: str
    doc: int


@dataclass
class SoT:
    """One revision of the source of truth."""

    root: FsPath
    sha: str | None = None
    label: str = ""
    sites: dict[str, Site] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    hooks: dict[str, Hook] = field(default_factory=dict)
    # Host documents as read; the loader merges each into its cluster's hosts (after the inline ones).
    host_docs: dict[str, HostDocument] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    # (cluster, index in its hosts) of a host merged from a Host document: its errors point at that file.
    host_origins: dict[tuple[str, int], Origin] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    # (kind, name) of documents that failed structurally: references to them are not reported again.
    broken: set[tuple[str, str]] = field(default_factory=set)
    _lines: dict[str, LineIndex] = field(default_factory=dict, repr=False)

    # -- navigation --
    def hosts(self) -> Iterator[tuple[Cluster, int, Host]]:
        for cluster in self.clusters.values():
            for i, host in enumerate(cluster.hosts):
                yield cluster, i, host

    def host(self, name: str) -> tuple[Cluster, Host] | None:
        for cluster, _, host in self.hosts():
            if host.name == name:
                return cluster, host
        return None

    def profile_of(self, cluster: Cluster, host: Host) -> Profile | None:
        return self.profiles.get(host.profile or cluster.profile)

    # -- error reporting --
    def line(self, file: str, doc: int, path: Path) -> int:
        index = self._lines.get(file)
        if index is None:
            index = self._lines[file] = LineIndex(self.texts.get(file, ""))
        return index.line_of(doc, path)

    def error_at(self, file: str, doc: int, path: Path, message: str) -> SoTError:
        return SoTError(file, self.line(file, doc, path), path, message)

    def error(self, kind: str, name: str, path: Path, message: str) -> SoTError:
        if kind == "Cluster" and len(path) >= 2 and path[0] == "hosts" and isinstance(path[1], int):
            merged = self.host_origins.get((name, path[1]))
            if merged is not None:  # the host's own file, where its fields are top-level keys
                return self.error_at(merged.file, merged.doc, path[2:], message)
        origin = self.origins[(kind, name)]
        return self.error_at(origin.file, origin.doc, path, message)

    @property
    def empty(self) -> bool:
        return not (self.sites or self.profiles or self.clusters or self.hooks or self.host_docs)


def empty_sot(label: str = "(empty)") -> SoT:
    return SoT(root=FsPath("/nonexistent"), label=label)


def _yaml_files(root: FsPath) -> tuple[list[FsPath], list[SoTError]]:
    """The document files, and an error for each link among them: a link could point anywhere on the
    machine that validates the SoT (a folder of secrets, /dev/zero), so the SoT is refused, not followed."""
    files: list[FsPath] = []
    errors: list[SoTError] = []
    for folder in DOC_FOLDERS:
        base = root / folder
        if base.is_symlink():
            errors.append(SoTError(folder, 1, (), f"file {folder} is a symlink: a SoT must not contain links"))
            continue
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            here = FsPath(dirpath)
            for d in dirnames:
                if (here / d).is_symlink():
                    rel = (here / d).relative_to(root).as_posix()
                    errors.append(SoTError(rel, 1, (), f"file {rel} is a symlink: a SoT must not contain links"))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
            files.extend(here / f for f in sorted(filenames) if f.endswith((".yaml", ".yml")) and not f.startswith("."))
    return files, errors


# Bounds on what one SoT file may ask of the loader. A YAML alias is a pointer: a 1 KB file can
# describe 10^8 values that every later step (validation, templates, plan, JSON) would expand, so the
# expanded size is counted on the parser's events before anything is built.
MAX_FILE_BYTES = 8 << 20
MAX_TOTAL_BYTES = 64 << 20
MAX_EXPANDED_NODES = 2_000_000  # per file, aliases counted at their full size (10,000 hosts use ~300,000)
MAX_DEPTH = 64


class _Frame:
    __slots__ = ("anchor", "index", "is_map", "key", "size", "want_key")

    def __init__(self, is_map: bool, anchor: str | None) -> None:
        self.is_map = is_map
        self.anchor = anchor
        self.size = 1
        self.index = 0
        self.want_key = True
        self.key: str | int | None = None


def _event_path(stack: list[_Frame]) -> Path:
    path: list[str | int] = []
    for frame in stack[1:]:
        if frame.is_map:
            if frame.want_key or frame.key is None:
                break
            path.append(frame.key)
        else:
            path.append(frame.index)
    return tuple(path)


def _check_expansion(rel: str, text: str) -> SoTError | None:
    """Walk the parser's events (O(text), nothing built) and refuse a file whose documents, with every
    alias expanded, exceed the node budget, nest too deep, or refer to themselves."""
    sizes: dict[str, int] = {}
    expanded = 0
    stack: list[_Frame] = [_Frame(False, None)]

    def done(size: int) -> None:
        parent = stack[-1]
        parent.size += size
        if parent.is_map:
            parent.want_key = not parent.want_key
        else:
            parent.index += 1

    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.DocumentStartEvent):
            stack = [_Frame(False, None)]
            sizes.clear()  # anchors do not cross documents
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            frame = stack[-1]
            if frame.is_map and frame.want_key:
                frame.key = event.value
            if event.anchor:
                sizes[event.anchor] = 1
            done(1)
        elif isinstance(event, yaml.AliasEvent):
            anchor = event.anchor or ""
            if any(f.anchor == anchor for f in stack):
                return SoTError(rel, line, _event_path(stack), f"alias *{anchor} refers to a value that contains it")
            size = sizes.get(anchor, 1)
            expanded += size
            frame = stack[-1]
            if frame.is_map and frame.want_key:
                frame.key = None
            if expanded > MAX_EXPANDED_NODES:
                message = f"alias *{anchor} expands to {size} values: with it the file holds more than {MAX_EXPANDED_NODES} (a YAML alias bomb?)"
                return SoTError(rel, line, _event_path(stack), message)
            done(size)
        elif isinstance(event, yaml.CollectionStartEvent):
            expanded += 1
            frame = stack[-1]
            if frame.is_map and frame.want_key:
                frame.key = None
            if len(stack) > MAX_DEPTH:
                return SoTError(rel, line, _event_path(stack), f"nested more than {MAX_DEPTH} levels deep")
            stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor))
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            if frame.anchor:
                sizes[frame.anchor] = frame.size
            done(frame.size)
        if expanded > MAX_EXPANDED_NODES:
            return SoTError(rel, line, _event_path(stack), f"the file holds more than {MAX_EXPANDED_NODES} values")
    return None


def _pydantic_errors(sot: SoT, rel: str, doc_index: int, exc: ValidationError) -> list[SoTError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-after", "function-before"))))
        # Unions add their member names to the location (e.g. 'int', 'constrained-str'); drop them.
        loc = tuple(p for p in loc if not (isinstance(p, str) and (p in ("int", "str") or p.startswith(("constrained-", "tuple[")))))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        elif err["type"] == "string_type" and isinstance(err.get("input"), int | float | bool):
            msg = f"expected a string, YAML read {err['input']!r}: put the value in quotes"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(sot.error_at(rel, doc_index, loc, msg))
    return out


def load(root: str | os.PathLike[str], *, sha: str | None = None, label: str | None = None, semantic: bool = True) -> SoT:
    """Load and validate a SoT. Raises SoTInvalid with every error found.

    semantic=False checks structure only: for a revision that was validated when it was applied
    (the "old" side of a plan), where only its models are needed.
    """
    from .validate import check

    sot, errors = load_documents(root, sha=sha, label=label)
    if semantic:
        errors.extend(check(sot))
    if errors:
        raise SoTInvalid(errors)
    return sot


def load_documents(root: str | os.PathLike[str], *, sha: str | None = None, label: str | None = None) -> tuple[SoT, list[SoTError]]:
    """Parse every document into models; return the SoT and the structural errors found."""
    root = FsPath(root)
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder")
    sot = SoT(root=root, sha=sha, label=label or (sha or str(root)))
    files, errors = _yaml_files(root)
    if not files and not errors:
        raise SourceError(f"{root}: no SoT documents (expected YAML files under {', '.join(d + '/' for d in DOC_FOLDERS)})")
    total = 0
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = _read_bounded(path, rel, MAX_TOTAL_BYTES - total)
        except _Refused as exc:
            errors.append(exc.error)
            continue
        total += len(text)
        try:
            bomb = _check_expansion(rel, text)
            if bomb is not None:
                errors.append(bomb)
                continue
            sot.texts[rel] = text
            docs = list(yaml.load_all(text, Loader=_Loader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            errors.append(SoTError(rel, line, (), f"YAML syntax error: {problem}"))
            continue
        for doc_index, doc in enumerate(docs):
            if doc is None:
                continue
            errors.extend(_load_document(sot, rel, doc_index, doc))
    errors.extend(_merge_hosts(sot))
    return sot, errors


def _merge_hosts(sot: SoT) -> list[SoTError]:
    """Append each Host document to its cluster's hosts, in file order; a host defined both inline and
    in a file, or in a file naming no cluster of the SoT, is an error at the host's file."""
    errors = []
    inline = {host.name: cluster.name for cluster in sot.clusters.values() for host in cluster.hosts}
    for name, doc in sot.host_docs.items():
        origin = sot.origins[("Host", name)]
        cluster = sot.clusters.get(doc.cluster)
        if cluster is None:
            if ("Cluster", doc.cluster) not in sot.broken:
                known = ", ".join(sorted(sot.clusters)) or "none"
                errors.append(sot.error_at(origin.file, origin.doc, ("cluster",), f"unknown cluster {doc.cluster!r} (this SoT's: {known})"))
            continue
        if name in inline:
            where = sot.origins[("Cluster", inline[name])].file
            message = f"host {name!r} is also defined inline in cluster {inline[name]!r} ({where}): define it in one place"
            errors.append(sot.error_at(origin.file, origin.doc, ("name",), message))
            continue
        sot.host_origins[(cluster.name, len(cluster.hosts))] = origin
        sot.clusters[cluster.name] = cluster.model_copy(update={"hosts": [*cluster.hosts, doc.host()]})
    return errors


class _Refused(Exception):
    def __init__(self, error: SoTError) -> None:
        self.error = error
        super().__init__(str(error))


def _read_bounded(path: FsPath, rel: str, room: int) -> str:
    """A document file's text; links, special files, oversized and undecodable files are refused."""
    if path.is_symlink():
        raise _Refused(SoTError(rel, 1, (), f"file {rel} is a symlink: a SoT must not contain links"))
    limit = min(MAX_FILE_BYTES, max(room, 0))
    try:
        # O_NOFOLLOW: the link test above and the open are two steps; a link swapped in between fails here.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise _Refused(SoTError(rel, 1, (), f"file {rel} is not a regular file"))
            data = fh.read(limit + 1)
    except OSError as exc:
        raise _Refused(SoTError(rel, 1, (), f"cannot read: {exc.strerror or exc}")) from None
    if len(data) > limit:
        what = f"{MAX_FILE_BYTES} bytes" if limit == MAX_FILE_BYTES else f"the SoT's total of {MAX_TOTAL_BYTES} bytes"
        raise _Refused(SoTError(rel, 1, (), f"file is larger than {what}"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _Refused(SoTError(rel, line, (), f"not UTF-8 text: {exc.reason} at byte {exc.start}")) from None


def _load_document(sot: SoT, rel: str, doc_index: int, doc: Any) -> list[SoTError]:
    if not isinstance(doc, dict):
        return [sot.error_at(rel, doc_index, (), "a SoT document must be a mapping with apiVersion, kind and name")]
    if doc.get("apiVersion") != API_VERSION:
        return [sot.error_at(rel, doc_index, ("apiVersion",), f"must be {API_VERSION!r}, got {doc.get('apiVersion')!r}")]
    kind = doc.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None or not isinstance(kind, str):
        return [sot.error_at(rel, doc_index, ("kind",), f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")]
    try:
        obj: Model = model.model_validate(doc)
    except ValidationError as exc:
        if isinstance(doc.get("name"), str):
            sot.broken.add((kind, doc["name"]))
        return _pydantic_errors(sot, rel, doc_index, exc)
    name: str = obj.name  # type: ignore[attr-defined]
    table: dict[str, Any] = getattr(sot, _PLURAL[kind])
    if name in table:
        first = sot.origins[(kind, name)]
        return [sot.error_at(rel, doc_index, ("name",), f"duplicate {kind} name {name!r} (first defined in {first.file})")]
    table[name] = obj
    sot.origins[(kind, name)] = Origin(rel, doc_index)
    return []


def load_spec(spec: str, *, subdir: str = "", semantic: bool = True) -> SoT:
    """Load a SoT from a folder or URL@REV (see source.resolve); git SoTs carry their commit SHA."""
    from .source import resolve

    src = resolve(spec, subdir=subdir)
    return load(src.root, sha=src.sha, label=src.label, semantic=semantic)
