"""``neo serve``: a bundle behind an OpenAI-compatible HTTP API (docs/serving.md).

Example:
    >>> from neo_sdk.server import ServerConfig, create_app      # doctest: +SKIP
    >>> app = create_app(ServerConfig(auth=False), neo=Neo.load("demo/bundle"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from neo_sdk.server._config import KEYS_ENV, ApiKeys, Limits, ServerConfig

__all__ = ["KEYS_ENV", "ApiKeys", "Limits", "ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:  # the app (FastAPI, torch behind the runtime) loads on first use
    if name == "create_app":
        from neo_sdk.server._app import create_app

        return create_app
    raise AttributeError(f"module 'neo_sdk.server' has no attribute {name!r}")
