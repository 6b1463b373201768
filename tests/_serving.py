"""A real HTTP server on loopback for tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields the base URL (``http://127.0.0.1:PORT``)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serving_bundle(bundle: Path, sessions: Path, config: Any, **load: Any) -> Iterator[tuple[Any, str]]:
    """``neo serve``'s app over ``bundle`` (sessions in the folder ``sessions``) on loopback until the block
    ends; yields the loaded ``Neo`` and the base URL."""
    from neo_sdk.server import create_app
    from neo_sdk.session import Neo

    neo = Neo.load(bundle, sessions=sessions / "sessions.db", **load)
    try:
        with serving(create_app(config, neo=neo)) as url:
            yield neo, url
    finally:
        neo.close()
