"""The one YAML loader: YAML 1.2 booleans (only true/false, so a region named ``off`` stays a
string), duplicate keys refused, and every error placed at its line and column.

Machine descriptions, topology files (``mmiobus apply``) and ``--arg`` values all load here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import DescriptionError, Path_


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
    """SafeLoader that refuses duplicate keys (a silent overwrite hides mistakes)."""


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
    ``DescriptionError``) to (line, column). Errors raise ``DescriptionError``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None)
        context = getattr(e, "context", None)
        message = f"{context}: {problem}" if context and problem else (problem or str(e))
        where = (lambda _path: (mark.line, mark.column)) if mark is not None else None
        raise DescriptionError([((), f"not valid YAML: {message}")], source, where) from None
    finally:
        loader.dispose()
    locate = _yaml_locator(node)
    return data, locate
