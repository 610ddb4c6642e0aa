"""The one YAML loader: YAML 1.2 booleans (only true/false, so a region named ``off`` stays a
string), duplicate keys refused, and every error placed at its line and column.

Machine descriptions, topology files (``mmiobus apply``) and ``--arg`` values all load here, so
the loader bounds the work a document can ask for before anything is built from it: nesting
depth (``MAX_DEPTH``), the nodes aliases add by repeating anchored ones (``MAX_ALIAS_NODES``, the
"billion laughs"), aliases that contain themselves, and the length of integers
(``MAX_NUMBER_TEXT``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import DescriptionError, Path_

MAX_DEPTH = 64
"""Deepest nesting of collections (each level of subregions is two: a list and a mapping)."""
MAX_ALIAS_NODES = 100_000
"""Most nodes aliases may add to a document by repeating what their anchors hold."""
MAX_NUMBER_TEXT = 100
"""Longest integer, in characters (2**64-1 in binary, with separators, is 82)."""


class _LimitError(yaml.MarkedYAMLError):
    """The document asks for more work than the loader allows (well-formed, but refused)."""


def _yaml_locator(root: yaml.Node | None) -> Any:
    def locate(path: Path_) -> tuple[int, int] | None:
        node = root
        if node is None:
            return None
        mark = node.start_mark
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == part:
                        child = v
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                child = node.value[part]
            if child is None:
                break
            node = child
            mark = node.start_mark
        return (mark.line, mark.column)

    return locate


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent overwrite hides mistakes) and documents
    past the bounds above, while composing, before any Python object is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._expanded = 0  # nodes so far, counting what aliases repeat
        self._sizes: dict[int, int] = {}  # id(anchored node) -> its nodes, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """PyYAML's, refusing nesting past ``MAX_DEPTH`` and counting what aliases add."""
        if self.check_event(yaml.AliasEvent):
            self._count_alias(self.peek_event())
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        event = self.peek_event()
        if self._depth >= MAX_DEPTH:
            raise _LimitError(
                None, None, f"collections nest deeper than {MAX_DEPTH} levels", event.start_mark
            )
        start = self._expanded
        self._depth += 1
        try:
            node: yaml.Node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._expanded += 1
        if getattr(event, "anchor", None) is not None:
            self._sizes[id(node)] = self._expanded - start
        return node

    def _count_alias(self, event: Any) -> None:
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # PyYAML reports the undefined alias
        size = self._sizes.get(id(target))
        if size is None:  # its anchor is still open: the alias is inside what it repeats
            raise _LimitError(
                None,
                None,
                f"alias *{event.anchor} refers to a collection that contains it",
                event.start_mark,
            )
        self._alias_nodes += size
        self._expanded += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _LimitError(
                None,
                None,
                f"aliases expand the document by more than {MAX_ALIAS_NODES} nodes",
                event.start_mark,
            )

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with Python's errors for unbuildable scalars turned into YAML errors."""
        # PyYAML lets Python's own errors through for scalars it resolved but cannot build
        # (``2001-13-01`` as a timestamp): make them YAML errors at the scalar.
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as e:
            tag = node.tag.rsplit(":", 1)[-1]
            what = "this node"
            if isinstance(node, yaml.ScalarNode):
                what = repr(node.value) if len(node.value) <= 40 else f"{node.value[:40]!r}..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {tag}: {e}", node.start_mark
            ) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """PyYAML's, refusing integers longer than ``MAX_NUMBER_TEXT`` before ``int()``."""
        # Python's int() of a long decimal string is quadratic (and refused past 4300 digits
        # with a message about interpreter settings): check the length first.
        if len(node.value) > MAX_NUMBER_TEXT:
            raise _LimitError(
                None,
                None,
                f"an integer of {len(node.value)} characters (at most {MAX_NUMBER_TEXT})",
                node.start_mark,
            )
        return super().construct_yaml_int(node)  # type: ignore[no-any-return]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for k, _v in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", k.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)

# YAML 1.2 booleans: only true/false. Under YAML 1.1 a region named `off`, `no` or `on` would
# silently become a boolean.
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str, source: str = "") -> tuple[Any, Any]:
    """Parse one YAML document; returns the data and a locator from paths (as in
    ``DescriptionError``) to (line, column). Errors, and documents past the loader's bounds
    (nesting, alias expansion, integer length), raise ``DescriptionError``, one line each,
    naming ``source`` and the line and column."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None)
        context = getattr(e, "context", None)
        message = f"{context}: {problem}" if context and problem else (problem or str(e))
        if not isinstance(e, _LimitError):
            message = f"not valid YAML: {message}"
        where = (lambda _path: (mark.line, mark.column)) if mark is not None else None
        raise DescriptionError([((), message)], source, where) from None
    finally:
        loader.dispose()
    locate = _yaml_locator(node)
    return data, locate
