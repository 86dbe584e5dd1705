"""Generic traversal of the IR: children, walk, and a rebuilding Transformer.

Passes subclass ``Transformer`` and override ``visit_<NodeClass>`` for the nodes they
change; everything else is rebuilt only when a child changed (so untouched subtrees keep
their identity, which keeps passes cheap and hashing cached).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

from .nodes import Node
from .types import Type


def _is_ir(value: Any) -> bool:
    return isinstance(value, (Node, Type)) or dataclasses.is_dataclass(value) and not isinstance(value, type)


def fields_of(node: Any) -> Iterator[tuple[str, Any]]:
    """The structural fields of a node (metadata such as ``span`` excluded)."""
    for f in dataclasses.fields(node):
        if f.compare:
            yield f.name, getattr(node, f.name)


def children(node: Any) -> Iterator[Any]:
    """Direct IR children (nodes and types), flattening tuples."""
    for _, value in fields_of(node):
        if isinstance(value, tuple):
            for v in value:
                if _is_ir(v):
                    yield v
        elif _is_ir(value):
            yield value


def walk(node: Any) -> Iterator[Any]:
    """Pre-order traversal of every node and type below (and including) ``node``."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(children(n))))


def find_all(node: Any, cls: type | tuple[type, ...], pred: Callable[[Any], bool] | None = None) -> list:
    return [n for n in walk(node) if isinstance(n, cls) and (pred is None or pred(n))]


class Transformer:
    """Bottom-up rebuilding visitor. ``visit_X(node)`` receives the node with its children
    already transformed and returns a replacement (or the node itself)."""

    def __call__(self, node):
        return self.visit(node)

    def visit(self, node):
        if isinstance(node, tuple):
            return tuple(self.visit(n) for n in node)
        if not _is_ir(node):
            return node
        rebuilt = self.generic_visit(node)
        method = getattr(self, "visit_" + type(node).__name__, None)
        return method(rebuilt) if method else rebuilt

    def generic_visit(self, node):
        changes = {}
        for name, value in fields_of(node):
            new = self.visit(value) if isinstance(value, tuple) or _is_ir(value) else value
            if new is not value and new != value:
                changes[name] = new
        return dataclasses.replace(node, **changes) if changes else node
