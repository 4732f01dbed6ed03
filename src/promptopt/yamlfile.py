"""The one YAML loader for what users write (templates, config, question files).

Safe YAML (no Python tags) that also refuses two things plain `yaml.safe_load` accepts:
a key written twice in one mapping (the last one silently won), and aliases that expand a small
file into a huge document (a "billion laughs" bomb costs nothing to parse but gigabytes once
something walks it, like a cache key or a validator).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_EXPANDED", "StrictLoader", "load"]

# Characters plus nodes a document with aliases may expand to (a template is at most 1 MB).
MAX_EXPANDED = 2_000_000
_MERGE = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without duplicate keys or alias bombs; errors are `yaml.YAMLError`s with a line."""

    _aliases = False

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self._aliases = True
        return super().compose_node(parent, index)

    def construct_document(self, node: Node) -> Any:
        if self._aliases:
            _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue  # '<<' merges are meant to be overridden
                key = self.construct_object(key_node)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    name = str(key) if str(key).isprintable() else str(key).encode("unicode_escape").decode()
                    raise ConstructorError(None, None, f"duplicate key '{name}'", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)  # type: ignore[arg-type]


def _check_expansion(root: Node, limit: int = MAX_EXPANDED) -> None:
    """Refuse a document whose aliases expand past `limit` characters and nodes, or refer to themselves."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ComposerError(None, None, "an alias refers to the node that contains it", node.start_mark)
        active.add(key)
        total = 1
        if isinstance(node, ScalarNode):
            total += len(node.value)
        elif isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        if total > limit:
            raise ComposerError(None, None, f"aliases expand this document past {limit:,} characters", root.start_mark)
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def load(text: str, loader: type[StrictLoader] = StrictLoader) -> Any:
    """Parse one YAML document with `loader`."""
    return yaml.load(text, Loader=loader)  # a SafeLoader subclass: no Python tags
