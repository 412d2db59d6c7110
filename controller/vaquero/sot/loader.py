"""Read a SoT folder into typed models, collecting every structural error with file and line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import Path, SoTError, SoTInvalid, SourceError
from .lines import LineIndex
from .models import API_VERSION, KINDS, Cluster, Hook, Host, Model, Profile, Site

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

# The folders of a SoT whose YAML files are all Vaquero documents. Anything else in the
# repository (templates, hook task files, README) is data the documents point at.
DOC_FOLDERS = ("sites", "profiles", "clusters", "hooks")
_PLURAL = {"Site": "sites", "Profile": "profiles", "Cluster": "clusters", "Hook": "hooks"}


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
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
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
        origin = self.origins[(kind, name)]
        return self.error_at(origin.file, origin.doc, path, message)

    @property
    def empty(self) -> bool:
        return not (self.sites or self.profiles or self.clusters or self.hooks)


def empty_sot(label: str = "(empty)") -> SoT:
    return SoT(root=FsPath("/nonexistent"), label=label)


def _yaml_files(root: FsPath) -> list[FsPath]:
    files: list[FsPath] = []
    for folder in DOC_FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(FsPath(dirpath) / f for f in sorted(filenames) if f.endswith((".yaml", ".yml")) and not f.startswith("."))
    return files


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
    errors: list[SoTError] = []
    files = _yaml_files(root)
    if not files:
        raise SourceError(f"{root}: no SoT documents (expected YAML files under {', '.join(d + '/' for d in DOC_FOLDERS)})")
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(SoTError(rel, 1, (), f"cannot read: {exc}"))
            continue
        sot.texts[rel] = text
        try:
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
    return sot, errors


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
