"""Scale-out: two ``neo serve`` processes sharing one real PostgreSQL session store continue each
other's conversations, and keep each key's sessions to that key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests._serving import free_port

KEYS = "alice=sk-scale-aaaa-1111,bob=sk-scale-bbbb-2222"
ALICE = {"Authorization": "Bearer sk-scale-aaaa-1111"}
BOB = {"Authorization": "Bearer sk-scale-bbbb-2222"}


@contextmanager
def neo_serve(bundle: Path, sessions: str, log: Path) -> Iterator[str]:
    """``neo serve`` in its own process; yields its base URL once ``/health`` says ok."""
    port = free_port()
    env = {**os.environ, "NEO_API_KEYS": KEYS, "HF_HUB_OFFLINE": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "neo_sdk", "serve", "--bundle", str(bundle), "--sessions", sessions,
             "--port", str(port), "--threads", "1"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"neo serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"neo serve did not become ready: {log.read_text()[-2000:]}"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def chat(url: str, text: str, headers: dict[str, str], **extra: object) -> httpx.Response:
    body = {"model": "neo", "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=120)


def test_a_conversation_continues_across_two_servers_sharing_postgres(
        trained_bundle: Path, postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:  # a clean store
        conn.execute("DROP TABLE IF EXISTS neo_turns, neo_session_events, neo_sessions, neo_meta")
    from neo_sdk.catalog import Catalog

    with Catalog(Path(trained_bundle).parent / "sample.db") as catalog:
        user = sorted(u for u, history in catalog.histories().items() if history)[0]
    with neo_serve(trained_bundle, postgres_url, tmp_path / "a.log") as first, \
            neo_serve(trained_bundle, postgres_url, tmp_path / "b.log") as second:
        turn0 = chat(first, "top 2 for me", ALICE, user=user, session_id="shared-1", format="ids", k=2)
        assert turn0.status_code == 200, turn0.text
        answer0 = turn0.json()["choices"][0]["message"]["neo"]
        turn1 = chat(second, "more like the first one", ALICE, user=user, session_id="shared-1")
        assert turn1.status_code == 200, turn1.text
        answer1 = turn1.json()["choices"][0]["message"]["neo"]
        assert (answer0["turn"], answer1["turn"]) == (0, 1)
        assert answer1["request"]["focus"] == answer0["items"][0]["id"]  # the second server read turn 0
        assert not {i["id"] for i in answer1["items"]} & {i["id"] for i in answer0["items"]}
        for url in (first, second):
            stored = httpx.get(url + "/v1/sessions/shared-1", headers=ALICE, timeout=30)
            assert [t["turn"] for t in stored.json()["turns"]] == [0, 1]
            assert httpx.get(url + "/v1/sessions/shared-1", headers=BOB, timeout=30).status_code == 404
        assert chat(second, "recommend", BOB, session_id="shared-1").status_code == 404
