"""Content-addressed caches and the lockfile.

Stores (one diskcache directory each, under the cache dir):

- ``translation``  key: everything that affects a translated kernel -> {"text", "report"}
- ``verification`` key: source text + translated text + verification options -> result
- ``tuning``       key: (kernel hash, target, toolchain, config hash) -> parameters
- ``llm``          key: model + messages + parameters -> answer

The cache dir is ``XPILER_CACHE_DIR`` or ``cache/`` beside the package (the same place
the execution engines keep their compiled harnesses, under ``builds/``).

Every value is stored as bytes: a 64-hex-digit SHA-256 of the payload, a newline, then
the payload (canonical JSON). A read recomputes the checksum; an entry that does not
match (a writer killed mid-write, a disk error, a hand edit) is deleted and reported as
a miss, so the caller rebuilds it. diskcache keeps entries in SQLite with its own
locking, so several processes (``scons -j N``) may read and write one store at once.

Modes: ``read-write`` (default), ``read-only`` (never writes), ``off`` (never reads or
writes), ``refresh`` (never reads, writes: recomputes everything and replaces entries).

The lockfile (``xpiler.lock``, JSON lines, committed by a repo) pins each kernel's
translation: one entry per (kernel, target) with the translation key it was made from,
the translated text and its report. ``scons offline=1`` builds only from it.

This module imports diskcache lazily; ``hash_json``/``Lockfile`` are cheap.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

STORES = ("translation", "verification", "tuning", "llm")
MODES = ("read-write", "read-only", "off", "refresh")
LOCKFILE_NAME = "xpiler.lock"


class CacheError(Exception):
    pass


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def hash_json(data) -> str:
    """SHA-256 of the canonical JSON of ``data``: the cache key of everything in it."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def sha256_text(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def default_dir() -> Path:
    env = os.environ.get("XPILER_CACHE_DIR")
    if env:
        return Path(env)
    from . import paths

    return paths.repo_root() / "cache"


def _seal(value) -> bytes:
    payload = canonical_json(value).encode()
    return hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def _unseal(raw) -> tuple[bool, object]:
    """(ok, value): ok is False when the checksum does not match the payload."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < 65 or raw[64:65] != b"\n":
        return False, None
    digest, payload = bytes(raw[:64]), bytes(raw[65:])
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return False, None
    try:
        return True, json.loads(payload)
    except ValueError:
        return False, None


class Store:
    """One named store. Values are JSON-able; keys are strings (use ``hash_json``)."""

    def __init__(self, directory: Path, name: str, mode: str = "read-write"):
        if mode not in MODES:
            raise CacheError(f"cache mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.name, self.mode, self.directory = name, mode, Path(directory) / name
        self._dc = None
        self.corrupt = 0  # corrupt entries found (and dropped) by this object

    @property
    def dc(self):
        if self._dc is None:
            import diskcache

            self.directory.mkdir(parents=True, exist_ok=True)
            # Large timeout: under `scons -j N` writers queue on SQLite's lock.
            self._dc = diskcache.Cache(str(self.directory), timeout=60, size_limit=2**34,
                                       eviction_policy="least-recently-stored")
        return self._dc

    def get(self, key: str):
        """The stored value, or None (a miss, a corrupt entry, or a mode that does not read)."""
        if self.mode in ("off", "refresh"):
            return None
        raw = self.dc.get(key)
        if raw is None:
            return None
        ok, value = _unseal(raw)
        if not ok:
            self.corrupt += 1
            with contextlib.suppress(Exception):
                self.dc.delete(key)
            return None
        return value

    def set(self, key: str, value) -> bool:
        if self.mode in ("off", "read-only"):
            return False
        self.dc.set(key, _seal(value))
        return True

    def set_raw(self, key: str, raw: bytes) -> None:  # for tests and import
        self.dc.set(key, raw)

    def items(self):
        """(key, value, ok) for every entry."""
        for key in list(self.dc.iterkeys()):
            raw = self.dc.get(key)
            if raw is None:
                continue
            ok, value = _unseal(raw)
            yield key, value, ok

    def stats(self) -> dict:
        n, size, bad = 0, 0, 0
        for key in list(self.dc.iterkeys()):
            raw = self.dc.get(key)
            if raw is None:
                continue
            n += 1
            size += len(raw)
            bad += not _unseal(raw)[0]
        return {"entries": n, "bytes": size, "corrupt": bad}

    def clear(self) -> int:
        return self.dc.clear()

    def close(self):
        if self._dc is not None:
            self._dc.close()
            self._dc = None


class Cache:
    """All stores of one cache directory, in one mode."""

    def __init__(self, directory: str | os.PathLike | None = None, mode: str = "read-write"):
        self.directory = Path(directory) if directory else default_dir()
        self.mode = mode
        self.stores = {name: Store(self.directory, name, mode) for name in STORES}

    def __getitem__(self, name: str) -> Store:
        return self.stores[name]

    def stats(self) -> dict:
        return {name: s.stats() for name, s in self.stores.items()}

    def clear(self, names=STORES) -> dict:
        return {name: self.stores[name].clear() for name in names}

    def export(self, path: str | os.PathLike, names=STORES) -> int:
        """Write every good entry as JSON lines {"store", "key", "value"}; returns the count."""
        from .fileio import atomic_write_text

        lines = []
        for name in names:
            for key, value, ok in sorted(self.stores[name].items(), key=lambda kv: kv[0]):
                if ok:
                    lines.append(canonical_json({"store": name, "key": key, "value": value}))
        atomic_write_text(path, "".join(line + "\n" for line in lines))
        return len(lines)

    def import_(self, path: str | os.PathLike) -> int:
        n = 0
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    name, key, value = rec["store"], rec["key"], rec["value"]
                except (ValueError, KeyError, TypeError):
                    raise CacheError(f"{path}:{lineno}: not a cache export line") from None
                if name not in self.stores:
                    raise CacheError(f"{path}:{lineno}: unknown store {name!r}")
                # import writes even in read-only mode: it is an explicit request
                self.stores[name].dc.set(key, _seal(value))
                n += 1
        return n

    def close(self):
        for s in self.stores.values():
            s.close()


# ---------------------------------------------------------------------------- lockfile

class Lockfile:
    """``xpiler.lock``: JSON lines, one entry per (kernel, target), sorted, deterministic.

    Entry: {"kernel": repo-relative source path, "target": platform, "key": translation
    key, "sha256": of "text", "text": translated kernel, "report": its report}.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._entries = None

    @staticmethod
    def _read(path: Path) -> dict:
        entries = {}
        if not path.is_file():
            return entries
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
                entries[(e["kernel"], e["target"])] = e
            except (ValueError, KeyError, TypeError):
                raise CacheError(f"{path}:{lineno}: not a valid xpiler.lock entry") from None
        return entries

    @property
    def entries(self) -> dict:
        if self._entries is None:
            self._entries = self._read(self.path)
        return self._entries

    def get(self, kernel: str, target: str) -> dict | None:
        e = self.entries.get((kernel, target))
        if e is not None and sha256_text(e.get("text", "")) != e.get("sha256"):
            raise CacheError(f"{self.path}: the entry for {kernel} -> {target} is corrupt "
                             "(its text does not match its checksum); re-create it with `scons lock=1`")
        return e

    @staticmethod
    def entry_digest(entry: dict | None) -> str:
        return "none" if entry is None else hash_json(entry)

    def update(self, kernel: str, target: str, key: str, text: str, report: dict) -> None:
        """Add or replace one entry; safe with concurrent writers (flock + atomic rename)."""
        import fcntl

        from .fileio import atomic_write_text

        entry = {"kernel": kernel, "target": target, "key": key, "sha256": sha256_text(text),
                 "text": text, "report": report}
        lock_path = self.path.with_name("." + self.path.name + ".flock")
        with open(lock_path, "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                entries = self._read(self.path)
                if entries.get((kernel, target)) == entry:
                    return
                entries[(kernel, target)] = entry
                atomic_write_text(self.path, "".join(canonical_json(entries[k]) + "\n" for k in sorted(entries)))
                self._entries = entries
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)
