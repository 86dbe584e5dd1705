"""Platforms: configs (compilers, flags, limits), real-compiler preludes, and the
per-platform thread/memory models and intrinsic registries."""
