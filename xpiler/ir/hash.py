"""Structural hash: a digest of what a program *is*, stable across runs and machines.

The encoding is canonical JSON of (class name, structural fields), with source spans
excluded and floats written with repr (exact round-trip), so the same IR always gives the
same digest whatever file it came from or where it was printed.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .visitor import _is_ir, fields_of


def encode(node: Any) -> Any:
    """A JSON-able canonical form of an IR value."""
    if isinstance(node, tuple):
        return [encode(v) for v in node]
    if _is_ir(node):
        return [type(node).__name__] + [[k, encode(v)] for k, v in fields_of(node)]
    if isinstance(node, bool) or node is None or isinstance(node, (int, str)):
        return node
    if isinstance(node, float):
        return ["f", repr(node)]
    raise TypeError(f"cannot hash {type(node).__name__}")


def structural_hash(node: Any) -> str:
    """Hex SHA-256 of the canonical encoding."""
    data = json.dumps(encode(node), separators=(",", ":"), sort_keys=False)
    return hashlib.sha256(data.encode()).hexdigest()
