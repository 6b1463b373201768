"""``neo serve``: a trained bundle behind an OpenAI-compatible HTTP API (docs/serving.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

SPEC_ENV = "NEO_SERVE_SPEC"  # how the parent process tells each worker process what to serve


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser(
        "serve", help="serve a bundle over an OpenAI-compatible HTTP API",
        description="Serve a trained bundle: POST /v1/chat/completions (OpenAI protocol, streaming), /v1/recommend,"
                    " /v1/search, GET /v1/models, /health. API keys come from --keys FILE or $NEO_API_KEYS"
                    " (name=key,...). See docs/serving.md.",
    )
    serve.add_argument("--bundle", required=True, help="bundle folder (neo train --out)")
    serve.add_argument("--db", help="catalog SQLite file (default: the one the bundle was trained on)")
    serve.add_argument("--sessions", help="session store: a SQLite file (default $NEO_HOME/sessions.db, shared by"
                                          " the workers of one host) or postgresql://... (shared by many hosts)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes, each with its own model copy")
    serve.add_argument("--threads", type=int, help="torch CPU threads per worker (default: torch's choice)")
    serve.add_argument("--model-name", default="neo", help="the model id clients ask for (default neo)")
    serve.add_argument("--keys", help='JSON file of API keys {"name": "key"} (default: $NEO_API_KEYS)')
    serve.add_argument("--no-auth", action="store_true", help="serve without API keys (local experiments only)")
    serve.add_argument("--open", action="store_true", help="open the playground (/) in a browser once serving")
    from neo_sdk.server._config import Limits  # not the package: building the parser loads no torch

    for field in fields(Limits):
        flag = "--" + {"timeout_s": "timeout", "retry_after_s": "retry-after"}.get(field.name, field.name).replace("_", "-")
        serve.add_argument(flag, dest=field.name, type=type(field.default), default=field.default,
                           help=f"server limit (default {field.default})")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from neo_sdk.errors import ConfigError
    from neo_sdk.server._config import Limits

    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    spec = {
        "bundle": args.bundle, "db": args.db, "sessions": args.sessions, "threads": args.threads,
        "model_name": args.model_name, "keys": args.keys, "auth": not args.no_auth,
        "limits": {f.name: getattr(args, f.name) for f in fields(Limits)},
    }
    config_from_spec(spec)  # refuse bad keys or limits before any worker starts
    os.environ[SPEC_ENV] = json.dumps(spec)
    page = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    print(f"neo serve: {args.bundle} as model {args.model_name!r} on http://{args.host}:{args.port}/v1"
          f" ({args.workers} worker{'s' if args.workers > 1 else ''}; auth {'off' if args.no_auth else 'on'});"
          f" playground: {page}", file=sys.stderr)
    if args.open:
        _open_when_up(page)
    uvicorn.run("neo_sdk.cli._serve:app_from_environment", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", timeout_graceful_shutdown=5)
    return 0


def _open_when_up(page: str) -> None:
    """Open ``page`` in the default browser once ``/health`` answers (in the background)."""
    import threading
    import time
    import webbrowser

    import httpx

    def wait_then_open() -> None:
        for _ in range(600):
            try:
                httpx.get(page + "health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        if not webbrowser.open(page):
            print(f"neo serve: no browser could be opened here; open {page} yourself", file=sys.stderr)

    threading.Thread(target=wait_then_open, name="open-playground", daemon=True).start()


def config_from_spec(spec: dict):
    from neo_sdk.server._config import ApiKeys, Limits, ServerConfig

    keys = ApiKeys.load(spec["keys"]) if spec["auth"] else ApiKeys()
    return ServerConfig(model_name=spec["model_name"], keys=keys, auth=spec["auth"], limits=Limits(**spec["limits"]))


def app_from_environment():
    """The app of one worker process, from the spec ``neo serve`` put in the environment."""
    from neo_sdk.server import create_app
    from neo_sdk.session import Neo

    spec = json.loads(os.environ[SPEC_ENV])

    def load() -> Neo:
        return Neo.load(spec["bundle"], catalog=spec["db"], sessions=spec["sessions"], threads=spec["threads"])

    return create_app(config_from_spec(spec), loader=load)
