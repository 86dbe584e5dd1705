"""The typed, immutable kernel IR."""
from .types import *  # noqa: F401,F403
from .nodes import *  # noqa: F401,F403
from .visitor import Transformer, children, find_all, walk  # noqa: F401
from .hash import structural_hash  # noqa: F401
