"""Errors that point at the SoT: file, line and field path, so a person can fix them fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """('hosts', 2, 'macs', 0) -> 'hosts[2].macs[0]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


@dataclass(frozen=True)
class SoTError:
    file: str
    line: int
    path: Path
    message: str

    @property
    def field(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class SoTInvalid(Exception):
    """Raised when a SoT fails to load or validate; carries every error found, not just the first."""

    def __init__(self, errors: list[SoTError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.field, e.message))
        super().__init__(f"{len(self.errors)} error(s) in the SoT")


class SourceError(Exception):
    """The SoT could not be read at all (no such path, git revision unknown, ...)."""
