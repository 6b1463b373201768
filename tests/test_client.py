"""``neo_sdk.client`` against a real ``neo serve`` app on loopback (a tiny trained bundle), plus the
error and SSE handling on canned responses (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from neo_sdk.client import AsyncNeoClient, ItemsResponse, NeoClient
from neo_sdk.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
)
from neo_sdk.server import ApiKeys, Limits, ServerConfig, create_app
from neo_sdk.session import Answer, Neo
from tests._serving import free_port, serving

KEY_A, KEY_B = "sk-test-key-aaaa", "sk-test-key-bbbb"
MAX_K = 20


@pytest.fixture(scope="module")
def neo(trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Neo:
    return Neo.load(trained_bundle, sessions=tmp_path_factory.mktemp("client") / "sessions.db")


@pytest.fixture(scope="module")
def url(neo: Neo) -> Iterator[str]:
    config = ServerConfig(keys=ApiKeys({"a": KEY_A, "b": KEY_B}), limits=Limits(max_k=MAX_K))
    with serving(create_app(config, neo=neo)) as base:
        yield base


@pytest.fixture()
def client(url: str) -> Iterator[NeoClient]:
    with NeoClient(url, KEY_A) as c:
        yield c


def assert_real(neo: Neo, answer_items: list) -> None:
    """Every item is the catalog's item (same type, title, SID)."""
    for item in answer_items:
        known = neo.item(item.id)
        assert (item.type, item.title, item.sid) == (known.type, known.title, known.sid)


# ----------------------------------------------------------------------------- a real server
def test_health_and_models(client: NeoClient) -> None:
    health = client.health()
    assert health["status"] == "ok" and health["model"] == "neo"
    assert [m["id"] for m in client.models()] == ["neo"]


def test_ask_returns_the_runtimes_answer(client: NeoClient, neo: Neo) -> None:
    answer = client.ask("top 3 for me", user="ana", k=3, format="ids")
    assert isinstance(answer, Answer)
    assert answer.format == "ids" and answer.request.k == 3 and len(answer.items) == 3
    assert_real(neo, answer.items)
    local = neo.session(user="ana", persist=False).ask("top 3 for me", k=3, format="ids")
    assert [i.id for i in answer.items] == [i.id for i in local.items]
    assert answer.text == local.text


def test_stream_concatenates_to_the_answer(client: NeoClient, neo: Neo) -> None:
    events = list(client.stream("top 4 for me", user="ben", format="ids", k=4))
    assert [e.answer is not None for e in events] == [False] * (len(events) - 1) + [True]
    answer = events[-1].answer
    assert "".join(e.text for e in events) == answer.text
    assert [e.item for e in events if e.item] == answer.items and len(answer.items) == 4
    assert_real(neo, answer.items)


def test_stream_of_a_mixed_answer(client: NeoClient) -> None:
    events = list(client.stream("recommend one and explain why", user="ana", format="mixed"))
    answer = events[-1].answer
    assert answer is not None and answer.format == "mixed"
    assert "".join(e.text for e in events) == answer.text
    # scores are known once the answer is complete: compare what the stream says of each item
    assert [(e.item.id, e.item.role) for e in events if e.item] == [(i.id, i.role) for i in answer.items]
    assert answer.answer_items


def test_recommend_and_search(client: NeoClient, neo: Neo) -> None:
    recs = client.recommend("chloe", k=4)
    assert isinstance(recs, ItemsResponse) and len(recs.ids) == 4 and recs.request.format == "ids"
    assert_real(neo, recs.items)
    found = client.search(neo.item(recs.ids[0]).title, k=2)
    assert found.request.task == "search" and len(found.items) == 2
    assert_real(neo, found.items)


def test_a_remote_session_continues_and_is_its_keys_alone(client: NeoClient, url: str) -> None:
    session = client.session(user="ana")
    first = session.ask("top 3 for me", format="ids", k=3)
    second = session.ask("more like the second one")
    assert (first.turn, second.turn) == (0, 1)
    assert first.session_id == second.session_id == session.id
    assert second.request.focus == first.items[1].id
    turns = session.turns()
    assert [t.turn for t in turns] == [0, 1] and turns[0].items == first.items

    with NeoClient(url, KEY_B) as other:
        stranger = other.session(session_id=session.id)
        for attempt in (stranger.turns, stranger.delete, lambda: stranger.ask("top 3 for me")):
            with pytest.raises(NotFoundError) as caught:
                attempt()
            assert caught.value.status == 404 and caught.value.code == "session_not_found"
    assert len(session.turns()) == 2  # untouched by the other key

    session.delete()
    with pytest.raises(NotFoundError):
        session.turns()


def test_errors_are_typed(url: str) -> None:
    with NeoClient(url, "sk-not-a-key-0000") as bad, pytest.raises(AuthenticationError) as caught:
        bad.models()
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
    with NeoClient(url, "") as keyless, pytest.raises(AuthenticationError) as caught:
        keyless.ask("top 3 for me")
    assert caught.value.code == "missing_api_key"

    with NeoClient(url, KEY_A, model="gpt-4o") as wrong, pytest.raises(NotFoundError) as caught:
        wrong.ask("top 3 for me")
    assert (caught.value.status, caught.value.param, caught.value.code) == (404, "model", "model_not_found")

    with NeoClient(url, KEY_A) as client:
        for attempt in (lambda: client.ask("top for me", k=MAX_K + 1), lambda: client.recommend("ana", k=MAX_K + 1)):
            with pytest.raises(APIError) as caught:
                attempt()
            assert type(caught.value) is APIError
            assert (caught.value.status, caught.value.type, caught.value.param, caught.value.code) == (
                400, "invalid_request_error", "k", "k_too_large")
        with pytest.raises(APIError) as caught:  # a body the schema refuses
            client.recommend("ana", k=0)
        assert (caught.value.status, caught.value.param) == (422, "k")


def test_an_unreachable_server() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with NeoClient(base, KEY_A, timeout=5) as client, pytest.raises(APIConnectionError) as caught:
        client.ask("top 3 for me")
    assert caught.value.status == 0 and caught.value.code == "connection_error"
    assert f"{base}/v1/chat/completions" in caught.value.message


def test_the_async_client(url: str, neo: Neo) -> None:
    async def run() -> tuple[Answer, list, list[Answer]]:
        async with AsyncNeoClient(url, KEY_A) as client:
            assert [m["id"] for m in await client.models()] == ["neo"]
            answer = await client.ask("top 3 for me", user="ana", k=3, format="ids")
            events = [e async for e in client.stream("top 3 for me", user="ana", k=3, format="ids")]
            session = client.session(user="ben")
            await session.ask("top 2 for me", k=2, format="ids")
            await session.ask("top 2 for me", k=2, format="ids")
            turns = await session.turns()
            await session.delete()
            return answer, events, turns

    answer, events, turns = asyncio.run(run())
    assert len(answer.items) == 3
    assert_real(neo, answer.items)
    assert events[-1].answer is not None and events[-1].answer.items == answer.items
    assert "".join(e.text for e in events) == answer.text
    assert [e.item for e in events if e.item] == answer.items
    assert [t.turn for t in turns] == [0, 1]
    assert not {i.id for i in turns[0].items} & {i.id for i in turns[1].items}  # the second excludes the first


# ----------------------------------------------------------------------------- canned responses
def canned(status: int, body: bytes, headers: dict[str, str] | None = None) -> NeoClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers))
    return NeoClient("http://neo.test", KEY_A, http_client=httpx.Client(transport=transport))


def sse(*events: object) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def error_body(message: str, type: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


@pytest.mark.parametrize(("status", "cls"), [(401, AuthenticationError), (404, NotFoundError), (429, RateLimitError),
                                             (503, ServiceUnavailableError), (504, RequestTimeoutError),
                                             (413, APIError), (500, APIError)])
def test_each_status_raises_its_class(status: int, cls: type[APIError]) -> None:
    body = json.dumps(error_body("no", "some_error", "why")).encode()
    with pytest.raises(APIError) as caught:
        canned(status, body, {"Retry-After": "3"}).models()
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.message, error.type, error.code, error.retry_after) == (status, "no", "some_error",
                                                                                        "why", 3.0)


def test_a_body_that_is_not_an_error_object() -> None:
    with pytest.raises(APIError) as caught:
        canned(502, b"<html>bad gateway</html>").models()
    assert caught.value.status == 502 and caught.value.message == "http://neo.test/v1/models: <html>bad gateway</html>"


def test_health_of_a_loading_server_is_a_report() -> None:
    report = {"status": "loading", "model": "neo", "in_flight": 0, "queue_limit": 32}
    assert canned(503, json.dumps(report).encode()).health() == report


def test_an_error_inside_a_stream_raises_after_the_text_before_it() -> None:
    start = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    text = {"choices": [{"index": 0, "delta": {"content": "Because"}, "finish_reason": None}]}
    body = sse(start, text, error_body("too slow", "timeout_error", "timeout"), "[DONE]")
    events = []
    with pytest.raises(RequestTimeoutError) as caught:
        events.extend(canned(200, body, {"content-type": "text/event-stream"}).stream("why"))
    assert [e.text for e in events] == ["Because"]
    assert (caught.value.status, caught.value.code, caught.value.message) == (504, "timeout", "too slow")


def test_a_stream_cut_before_its_answer() -> None:
    text = {"choices": [{"index": 0, "delta": {"content": "Because"}, "finish_reason": None}]}
    with pytest.raises(APIConnectionError) as caught:
        list(canned(200, sse(text)[:-1], {"content-type": "text/event-stream"}).stream("why"))  # no blank line, no [DONE]
    assert caught.value.code == "incomplete_stream"


def test_a_stream_refused_before_it_starts() -> None:
    body = json.dumps(error_body("busy", "rate_limit_error", "queue_full")).encode()
    with pytest.raises(RateLimitError) as caught:
        list(canned(429, body, {"Retry-After": "1"}).stream("why"))
    assert (caught.value.code, caught.value.retry_after) == ("queue_full", 1.0)
