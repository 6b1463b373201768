"""What a server is allowed to do: its limits, its API keys, its model name."""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from neo_sdk.errors import ConfigError

KEYS_ENV = "NEO_API_KEYS"


@dataclass(frozen=True)
class Limits:
    """Per-request and per-worker limits (each a flag of ``neo serve``)."""

    max_body_bytes: int = 1 << 20
    max_messages: int = 64
    max_message_chars: int = 8000
    max_k: int = 100
    max_tokens: int = 512
    timeout_s: float = 60.0
    queue: int = 32  # requests admitted at once per worker; more get 429
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_message_chars", "max_k", "max_tokens", "queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"server limit {name} must be at least 1, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise ConfigError(f"server limit timeout_s must be positive, got {self.timeout_s}")


@dataclass(frozen=True)
class ApiKeys:
    """API keys by name. A request's key is looked up in constant time per key; sessions record the
    key's *name*, never the key."""

    by_name: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, key in self.by_name.items():
            if not name or not key:
                raise ConfigError("an API key and its name must both be non-empty")
            if len(key) < 8:
                raise ConfigError(f"API key {name!r} is shorter than 8 characters; use a long random key")

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def name_of(self, key: str) -> str | None:
        """The name of ``key``, or None when it is not a valid key."""
        found = None
        for name, known in self.by_name.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                found = name
        return found

    @classmethod
    def parse(cls, text: str, source: str) -> ApiKeys:
        """``name=key,name=key`` (a bare key is named ``key-N``)."""
        keys: dict[str, str] = {}
        for n, part in enumerate(p.strip() for p in text.split(",")):
            if not part:
                continue
            name, _, key = part.partition("=") if "=" in part else (f"key-{n + 1}", "", part)
            if name.strip() in keys:
                raise ConfigError(f"{source}: the key name {name.strip()!r} is used twice")
            keys[name.strip()] = key.strip()
        return cls(keys)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ApiKeys:
        """Keys from a JSON file (``{"name": "key", ...}``) when ``path`` is given, else from
        ``$NEO_API_KEYS`` (``name=key,...``); none when neither is set."""
        if path is not None:
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read API keys ({exc}); expected JSON {{\"name\": \"key\"}}") from exc
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise ConfigError(f"{path}: expected a JSON object of key names to key strings")
            return cls({str(k): v for k, v in data.items()})
        return cls.parse(os.environ.get(KEYS_ENV, ""), f"${KEYS_ENV}")


@dataclass(frozen=True)
class ServerConfig:
    """A server: the model name it answers to, its keys (or ``auth=False``), its limits."""

    model_name: str = "neo"
    keys: ApiKeys = field(default_factory=ApiKeys)
    auth: bool = True
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.auth and not self.keys:
            raise ConfigError(
                f"no API keys: set ${KEYS_ENV}=name=key,... or pass --keys FILE (JSON {{\"name\": \"key\"}});"
                " --no-auth serves without keys (local experiments only)"
            )
