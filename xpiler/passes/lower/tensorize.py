"""Tensorization entry points by target. BANG (mlu) lives in tensorize_mlu.py; the
platform-neutral matching of element expressions against intrinsics in cover.py."""
from __future__ import annotations

from .cover import pointwise_patterns  # noqa: F401
from .tensorize_mlu import Result, tensorize_phase  # noqa: F401
