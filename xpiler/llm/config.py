"""LLM configuration: project config (``xpiler.toml`` ``[llm]``), then the environment.

Environment (wins over the project file):

==========================  =============================================================
XPILER_LLM_BASE_URL         endpoint of any OpenAI-compatible server (or OPENAI_BASE_URL)
XPILER_LLM_MODEL            model name (or OPENAI_MODEL); default ``gpt-4o``
XPILER_LLM_API_KEY          key (or OPENAI_API_KEY); local servers accept any
XPILER_LLM                  mode: ``on`` (record-through: replay a recorded answer, call
                            the model and record otherwise), ``replay`` (only the record
                            and the lockfile; a miss is an error), ``refresh`` (always
                            call, replace the record), ``off`` (symbolic passes only)
XPILER_LLM_TIMEOUT          seconds per request (default 120)
XPILER_LLM_RETRIES          retries after a timeout / connection error / HTTP 5xx or 429
                            (default 2), with exponential backoff from
XPILER_LLM_BACKOFF          seconds (default 1.0)
XPILER_LLM_TOKEN_BUDGET     tokens (prompt + answer) one build may spend (default 200000)
XPILER_LLM_MAX_TOKENS       answer length limit per request (default 4096)
XPILER_CACHE_DIR            where the record lives (``<dir>/llm``; default ``cache/``)
==========================  =============================================================

Temperature is 0 (the record is keyed by every parameter, so it is part of the key).
No endpoint configured (and not replaying) means symbolic passes only: ``notice`` says so
once per process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

MODES = ("on", "replay", "refresh", "off")
_noticed = False


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None = None
    model: str = "gpt-4o"
    api_key: str = ""
    mode: str = "on"
    temperature: float = 0.0
    timeout: float = 120.0
    retries: int = 2
    backoff: float = 1.0
    token_budget: int = 200_000
    max_tokens: int = 4096
    cache_dir: str | None = None
    source: str = "defaults"  # where the endpoint came from (for messages)

    @property
    def enabled(self) -> bool:
        """Whether LLM passes run at all (replay needs no endpoint)."""
        if self.mode == "off":
            return False
        return self.mode == "replay" or bool(self.base_url)

    @property
    def can_call(self) -> bool:
        return self.mode in ("on", "refresh") and bool(self.base_url)

    def params(self) -> dict:
        """The request parameters that are part of the record key."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def describe(self) -> str:
        if self.mode == "off":
            return "LLM passes are off (llm=off): only symbolic passes run"
        if self.mode == "replay":
            return f"LLM replay: answers come only from the record ({self.record_dir()}) and the lockfile"
        if not self.base_url:
            return ("no LLM endpoint configured (set XPILER_LLM_BASE_URL or OPENAI_BASE_URL, or [llm] base_url "
                    "in xpiler.toml): only symbolic passes run")
        return (f"LLM {self.model} at {self.base_url} (mode {self.mode}, timeout {self.timeout:g}s, "
                f"{self.retries} retries, budget {self.token_budget} tokens; from {self.source})")

    def record_dir(self) -> Path:
        from ..cache import default_dir

        return (Path(self.cache_dir) if self.cache_dir else default_dir()) / "llm"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["api_key"] = "***" if self.api_key else ""
        return d

    def with_(self, **kw) -> "LLMConfig":
        return replace(self, **kw)


def load_project_config(start: str | os.PathLike | None = None) -> dict:
    """The ``[llm]`` table of ``xpiler.toml`` in ``start`` (default: the working directory)."""
    path = Path(start or os.getcwd()) / "xpiler.toml"
    if not path.is_file():
        return {}
    import tomllib

    try:
        return dict(tomllib.loads(path.read_text()).get("llm", {}))
    except (tomllib.TOMLDecodeError, OSError) as e:
        from ..errors import XpilerError

        raise XpilerError(f"{path}: {e}") from None


def _num(env, names, cast, default):
    for n in names:
        v = env.get(n)
        if v not in (None, ""):
            try:
                return cast(v)
            except ValueError:
                from ..errors import XpilerError

                raise XpilerError(f"{n}={v!r} is not a number") from None
    return default


def load_config(project: dict | None = None, env: dict | None = None, **overrides) -> LLMConfig:
    """Project file values, overridden by the environment, overridden by ``overrides``."""
    env = os.environ if env is None else env
    project = load_project_config() if project is None else project
    base = project.get("base_url")
    source = "xpiler.toml" if base else "defaults"
    for name in ("XPILER_LLM_BASE_URL", "OPENAI_BASE_URL"):
        if env.get(name):
            base, source = env[name], name
            break
    model = env.get("XPILER_LLM_MODEL") or env.get("OPENAI_MODEL") or project.get("model") or LLMConfig.model
    key = env.get("XPILER_LLM_API_KEY") or env.get("OPENAI_API_KEY") or project.get("api_key") or ""
    mode = (env.get("XPILER_LLM") or project.get("mode") or "on").lower()
    if mode not in MODES:
        from ..errors import XpilerError

        raise XpilerError(f"LLM mode must be one of {', '.join(MODES)}, not {mode!r}")
    cfg = LLMConfig(
        base_url=base or None, model=model, api_key=key, mode=mode,
        temperature=float(project.get("temperature", 0.0)),
        timeout=_num(env, ["XPILER_LLM_TIMEOUT"], float, float(project.get("timeout", 120.0))),
        retries=_num(env, ["XPILER_LLM_RETRIES"], int, int(project.get("retries", 2))),
        backoff=_num(env, ["XPILER_LLM_BACKOFF"], float, float(project.get("backoff", 1.0))),
        token_budget=_num(env, ["XPILER_LLM_TOKEN_BUDGET"], int, int(project.get("token_budget", 200_000))),
        max_tokens=_num(env, ["XPILER_LLM_MAX_TOKENS"], int, int(project.get("max_tokens", 4096))),
        cache_dir=env.get("XPILER_CACHE_DIR") or project.get("cache_dir"),
        source=source,
    )
    return replace(cfg, **overrides) if overrides else cfg


def notice(config: LLMConfig, stream=None) -> bool:
    """Say once per process that LLM passes will not run (returns whether it spoke)."""
    global _noticed
    if config.enabled or _noticed:
        return False
    _noticed = True
    print(f"xpiler: {config.describe()}", file=stream or sys.stderr)
    return True


def _reset_notice():  # for tests
    global _noticed
    _noticed = False
