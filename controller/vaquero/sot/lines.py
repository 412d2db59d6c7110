"""Map a field path inside a YAML document back to its line.

Loading uses the fast C loader and keeps no positions; only when an error must be reported is
the file composed again into nodes (which carry marks) and walked along the error's path.
Valid SoTs never pay for line tracking.
"""

from __future__ import annotations

from functools import cached_property

import yaml

from .errors import Path

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


class LineIndex:
    def __init__(self, text: str) -> None:
        self._text = text

    @cached_property
    def _docs(self) -> list[yaml.Node]:
        try:
            return [n for n in yaml.compose_all(self._text, Loader=_Loader) if n is not None]
        except yaml.YAMLError:
            return []

    def line_of(self, doc_index: int, path: Path) -> int:
        """1-based line of the deepest node on `path` that exists in the document."""
        if doc_index >= len(self._docs):
            return 1
        node: yaml.Node = self._docs[doc_index]
        line = node.start_mark.line + 1
        for part in path:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        # Point at the key: that is where a person looks for "field: value".
                        line = key.start_mark.line + 1
                        child = value
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line
