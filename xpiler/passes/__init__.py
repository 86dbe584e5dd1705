"""Passes over the IR: lift (platform -> canonical), loops (transformations), lower
(canonical -> platform). Each pass is a function from IR to IR that either succeeds or
raises ``Declined`` with a reason."""
from .base import Declined  # noqa: F401
