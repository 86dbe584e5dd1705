"""The chat client: any OpenAI-compatible endpoint through the ``openai`` package, with
record/replay, retries with backoff and a per-build token budget.

Every answer is recorded in the ``llm`` store of the cache (xpiler/cache.py), keyed by
``hash_json({model, messages, params})``; with ``mode=on`` a recorded answer is replayed
instead of calling the model, ``replay`` uses only the record and the lockfile hook
(``lookup_locked``) and treats a miss as an error naming the kernel and pass, ``refresh``
always calls and replaces the record.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import XpilerError
from .config import LLMConfig


class LLMError(XpilerError):
    """A request did not produce an answer. ``kind``: timeout | http | connection |
    budget | replay-miss | disabled | bad-response."""

    def __init__(self, message: str, kind: str, attempts: int = 0):
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts


# --------------------------------------------------------------------------- lockfile hook
_lock_lookup = None


def set_lock_lookup(fn) -> None:
    """Install the lockfile's lookup (``fn(key) -> record dict or None``); the SCons/
    lockfile side calls this. ``None`` removes it."""
    global _lock_lookup
    _lock_lookup = fn


def lookup_locked(key: str) -> dict | None:
    """A recorded answer pinned by the lockfile, or None. The record dict has at least
    ``answer`` (the text); the hook is installed with ``set_lock_lookup``."""
    if _lock_lookup is None:
        return None
    return _lock_lookup(key)


# --------------------------------------------------------------------------- answers
@dataclass
class Answer:
    text: str
    key: str
    source: str  # model | record | lockfile
    model: str
    usage: dict = field(default_factory=dict)
    seconds: float = 0.0
    attempts: int = 1
    finish_reason: str = ""

    def as_dict(self) -> dict:
        return {"key": self.key, "source": self.source, "model": self.model, "usage": self.usage,
                "seconds": round(self.seconds, 3), "attempts": self.attempts,
                "finish_reason": self.finish_reason, "answer": self.text}


def estimate_tokens(text: str) -> int:
    """A rough token count (about 3.5 characters a token for code and English)."""
    return max(1, int(len(text) / 3.5) + 1)


def request_key(model: str, messages: list, params: dict) -> str:
    from ..cache import hash_json

    return hash_json({"model": model, "messages": messages, "params": params})


class LLMClient:
    """One client per build: it owns the token budget."""

    def __init__(self, config: LLMConfig, store=None):
        self.config = config
        self._store = store
        self._openai = None
        self.tokens_used = 0
        self.calls = 0  # requests actually sent to the model
        self.log: list[dict] = []  # every request and its outcome, in order

    @property
    def store(self):
        if self._store is None:
            from ..cache import Store

            mode = {"refresh": "refresh", "replay": "read-only"}.get(self.config.mode, "read-write")
            self._store = Store(self.config.record_dir().parent, "llm", mode)
        return self._store

    def _client(self):
        if self._openai is None:
            import openai

            self._openai = openai.OpenAI(base_url=self.config.base_url, api_key=self.config.api_key or "none",
                                         timeout=self.config.timeout, max_retries=0)
        return self._openai

    def key(self, messages: list) -> str:
        return request_key(self.config.model, messages, self.config.params())

    def complete(self, messages: list, *, kernel: str = "", pass_name: str = "") -> Answer:
        cfg = self.config
        key = self.key(messages)
        what = f"{kernel or '<kernel>'}: pass {pass_name or '<pass>'}"
        entry = {"key": key, "kernel": kernel, "pass": pass_name, "model": cfg.model}
        if cfg.mode == "off":
            raise LLMError(f"{what}: LLM passes are off", "disabled")
        if cfg.mode != "refresh":
            rec = self.store.get(key)
            source = "record"
            if rec is None:
                rec = lookup_locked(key)
                source = "lockfile"
            if rec is not None and isinstance(rec.get("answer"), str):
                entry.update(outcome="replayed", source=source)
                self.log.append(entry)
                return Answer(rec["answer"], key, source, rec.get("model", cfg.model), rec.get("usage", {}),
                              finish_reason=rec.get("finish_reason", ""))
        if cfg.mode == "replay":
            entry.update(outcome="replay-miss")
            self.log.append(entry)
            raise LLMError(f"{what}: no recorded answer for this request (key {key[:16]}…) and llm=replay "
                           f"does not call the model; record it once with llm=on against an endpoint", "replay-miss")
        if not cfg.base_url:
            raise LLMError(f"{what}: {cfg.describe()}", "disabled")
        prompt_tokens = sum(estimate_tokens(m.get("content", "")) for m in messages)
        if self.tokens_used + prompt_tokens + cfg.max_tokens > cfg.token_budget:
            entry.update(outcome="budget")
            self.log.append(entry)
            raise LLMError(f"{what}: the request (~{prompt_tokens} prompt + up to {cfg.max_tokens} answer tokens) "
                           f"would pass this build's token budget ({self.tokens_used} of {cfg.token_budget} "
                           "used; XPILER_LLM_TOKEN_BUDGET)", "budget")
        answer = self._call(messages, key, what, entry)
        rec = {"model": cfg.model, "messages": messages, "params": cfg.params(), "answer": answer.text,
               "usage": answer.usage, "finish_reason": answer.finish_reason, "kernel": kernel, "pass": pass_name}
        self.store.set(key, rec)
        return answer

    def _call(self, messages, key, what, entry) -> Answer:
        import openai

        cfg = self.config
        t0 = time.perf_counter()
        last = None
        tries = 0
        for attempt in range(cfg.retries + 1):
            tries = attempt + 1
            if attempt:
                time.sleep(cfg.backoff * (2 ** (attempt - 1)))
            self.calls += 1
            try:
                r = self._client().chat.completions.create(model=cfg.model, messages=messages,
                                                           temperature=cfg.temperature, max_tokens=cfg.max_tokens)
            except openai.APITimeoutError:
                last = LLMError(f"{what}: the model did not answer within {cfg.timeout:g}s", "timeout")
                continue
            except openai.APIConnectionError as e:
                last = LLMError(f"{what}: cannot reach {cfg.base_url}: {e}", "connection")
                continue
            except openai.APIStatusError as e:
                last = LLMError(f"{what}: {cfg.base_url} answered HTTP {e.status_code}: {_short(e)}", "http")
                if e.status_code >= 500 or e.status_code == 429:
                    continue
                break
            except (openai.OpenAIError, ValueError) as e:  # ValueError: a body that is not JSON
                last = LLMError(f"{what}: {cfg.base_url} sent a malformed response: {type(e).__name__}: {e}",
                                "bad-response")
                break
            try:
                choice = r.choices[0]
                text = choice.message.content or ""
                usage = {"prompt_tokens": getattr(r.usage, "prompt_tokens", 0) or 0,
                         "completion_tokens": getattr(r.usage, "completion_tokens", 0) or 0} if r.usage else {}
            except (AttributeError, IndexError, TypeError) as e:
                last = LLMError(f"{what}: malformed chat completion: {e}", "bad-response")
                break
            spent = sum(usage.values()) or (sum(estimate_tokens(m["content"]) for m in messages) + estimate_tokens(text))
            self.tokens_used += spent
            entry.update(outcome="answered", attempts=attempt + 1, tokens=spent)
            self.log.append(entry)
            return Answer(text, key, "model", cfg.model, usage, time.perf_counter() - t0, attempt + 1,
                          choice.finish_reason or "")
        entry.update(outcome=last.kind if last else "error", attempts=tries, error=str(last))
        self.log.append(entry)
        last.attempts = tries
        raise last


def _short(e) -> str:
    msg = str(getattr(e, "message", "") or e)
    return msg if len(msg) < 300 else msg[:300] + "…"
