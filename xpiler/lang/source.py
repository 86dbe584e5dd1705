"""Making dialect source parseable by the tree-sitter CUDA grammar without moving bytes.

Every rewrite here replaces text by text of the *same length*, so byte offsets, lines
and columns in the syntax tree are those of the user's file and error positions stay
exact.

- BANG qualifiers ``__nram__`` become C++ attributes ``[[nram]]`` (same length).
- GCC vector attributes ``__attribute__((__vector_size__(E)))``, which the grammar
  cannot parse in ``using T = __attribute__(...) float;``, are blanked out and recorded
  as (start, end, E) so the front-end can attach them to the declaration they were in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# BANG qualifiers that the grammar does not know. __X__ and [[X]] have the same length.
BANG_QUALIFIERS = ("nram", "wram", "ldram", "mlu_shared", "mlu_global", "mlu_entry",
                   "mlu_func", "mlu_device")
_BANG_RE = re.compile(rb"\b__(" + b"|".join(q.encode() for q in BANG_QUALIFIERS) + rb")__\b")
_VECTOR_ATTR_RE = re.compile(rb"__attribute__\s*\(\(\s*(?:__vector_size__|vector_size)\s*\(")


@dataclass(frozen=True)
class MaskedAttribute:
    start: int  # byte offsets of the blanked text
    end: int
    size_expr: str  # the vector size expression, in bytes


def _matching_paren(data: bytes, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(data)):
        c = data[i]
        if c == ord("("):
            depth += 1
        elif c == ord(")"):
            depth -= 1
            if depth == 0:
                return i
    return -1


def mask_source(data: bytes, dialect: str) -> tuple[bytes, list[MaskedAttribute]]:
    out = bytearray(data)
    if dialect == "mlu":
        for m in _BANG_RE.finditer(data):
            out[m.start():m.end()] = b"[[" + m.group(1) + b"]]"
    attrs: list[MaskedAttribute] = []
    for m in _VECTOR_ATTR_RE.finditer(data):
        size_open = m.end() - 1
        size_close = _matching_paren(data, size_open)
        outer_open = data.index(b"(", m.start())
        outer_close = _matching_paren(data, outer_open)
        if size_close < 0 or outer_close < 0:
            continue  # leave it: the parser reports the syntax error where it is
        expr = data[size_open + 1:size_close].decode(errors="replace")
        attrs.append(MaskedAttribute(m.start(), outer_close + 1, expr))
        for i in range(m.start(), outer_close + 1):
            if out[i] not in (ord("\n"), ord("\r")):
                out[i] = ord(" ")
    return bytes(out), attrs
