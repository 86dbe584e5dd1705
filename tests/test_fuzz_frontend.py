"""Fuzzing the front-ends with mutated benchmark files.

Property: for any input, parsing either raises SourceError (with a file:line:col
position) or yields a program that prints and re-parses to the same IR. Any other
exception is a crash a user would see as a traceback.
"""
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpiler.errors import SourceError
from xpiler.ir import structural_hash
from xpiler.lang import dialect_of, parse_source, print_program

from .conftest import bench_files

TOKENS = [b"{", b"}", b";", b"(", b")", b"*", b"&", b"[", b"]", b"<<<", b">>>", b"__shared__",
          b"__nram__", b"__global__", b"for (;;)", b"0x", b"1e", b"'", b'"', b"#define X", b"\n#",
          b"::", b"template <int N>", b"->", b"++", b"= =", b"int", b"wmma::fragment<", b",",
          b"\\", b"/*", b"\x00", b"\xff", b"float4", b"extern \"C\"", b"return", b"else", b"?"]


def _sample_sources():
    files = []
    for dialect in ("cuda", "hip", "mlu", "cpu"):
        fs = bench_files(dialect)
        rng = random.Random(dialect)
        files += rng.sample(fs, min(6, len(fs)))
    return [(str(f), f.read_bytes()) for f in files]


SOURCES = _sample_sources()


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, length, tok in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            del b[i:i + length]
        elif kind == 1:
            b[i:i] = TOKENS[tok % len(TOKENS)]
        elif kind == 2:
            b[i:i] = b[i:i + length]
        else:
            b[i] = (b[i] + length) % 256
    return bytes(b)


def check(name: str, data: bytes):
    dialect = dialect_of(name)
    try:
        program = parse_source(data, dialect, name)
    except SourceError as e:
        assert e.span is not None and e.span.file == name and e.span.line >= 1
        return
    text = print_program(program, format=False)
    again = parse_source(text, dialect, name)
    assert structural_hash(again) == structural_hash(program)


@pytest.mark.skipif(not SOURCES, reason="../shared/xpilerbench is not available")
@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(src=st.integers(0, 10_000),
       ops=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(1, 40),
                              st.integers(0, 100)), min_size=1, max_size=4))
def test_mutated_sources_never_crash(src, ops):
    name, data = SOURCES[src % len(SOURCES)]
    check(name, _mutate(data, ops))


@given(st.binary(max_size=300))
@settings(max_examples=150, deadline=None, derandomize=True)
def test_random_bytes_never_crash(data):
    for name in ("r.cu", "r.mlu", "r.cpp"):
        check(name, data)
