"""``neo serve``'s app on real loopback HTTP, driven by the unmodified ``openai`` package, LangChain's
``ChatOpenAI`` and httpx: the chat-completions protocol, streaming, steering, errors, auth,
isolation, limits, disconnects and batching (docs/serving.md)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from neo_sdk.server import ApiKeys, Limits, ServerConfig, create_app
from neo_sdk.session import Neo
from tests._serving import serving

KEY_A, KEY_B = "sk-test-aaaa-1111", "sk-test-bbbb-2222"
KEYS = ApiKeys({"alice": KEY_A, "bob": KEY_B})
LIMITS = Limits(max_messages=8, max_message_chars=500, max_k=20, max_tokens=64, max_body_bytes=20_000)


@pytest.fixture(scope="module")
def neo(trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo]:
    loaded = Neo.load(trained_bundle, sessions=tmp_path_factory.mktemp("sessions") / "sessions.db")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def base_url(neo: Neo) -> Iterator[str]:
    with serving(create_app(ServerConfig(keys=KEYS, limits=LIMITS), neo=neo)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY_A, max_retries=0)


@pytest.fixture(scope="module")
def user(neo: Neo) -> str:
    return users_with_history(neo)[0]


def users_with_history(neo: Neo) -> list[str]:
    return sorted(u for u, history in neo.catalog.histories().items() if history)


def ask(client: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="neo", messages=[{"role": "user", "content": text}], **kwargs)


def post(base_url: str, body: Any, key: str | None = KEY_A, path: str = "/v1/chat/completions") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(base_url + path, json=body, headers=headers, timeout=60)


# ------------------------------------------------------------------------------- the protocol
def test_a_plain_completion_has_the_text_real_items_and_token_usage(client: openai.OpenAI, neo: Neo,
                                                                      user: str) -> None:
    reply = ask(client, "top 3 for me", user=user, extra_body={"format": "ids", "k": 3})
    assert reply.object == "chat.completion" and reply.model == "neo" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    answer = choice.message.neo  # the extension field survives the openai client
    assert [i["id"] for i in answer["items"]] and len(answer["items"]) == 3
    for item in answer["items"]:
        assert neo.type_of(item["id"]) == item["type"] == answer["entity_type"]
        assert item["title"] in choice.message.content
    assert choice.message.content == answer["text"]
    span_tokens = sum(len(neo.encoder.span(i["id"])) for i in answer["items"])
    assert reply.usage.completion_tokens == span_tokens
    assert reply.usage.prompt_tokens > 10
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + span_tokens


def test_steering_in_extra_body_is_applied(client: openai.OpenAI, neo: Neo, user: str) -> None:
    other = next(t for t in neo.trie.types if t != neo.facts.type_of(neo.catalog.history(user)[0].item_id))
    reply = ask(client, "recommend", user=user, extra_body={"entity_type": other, "format": "ids", "k": 2})
    answer = reply.choices[0].message.neo
    assert answer["entity_type"] == other and answer["format"] == "ids"
    assert [neo.type_of(i["id"]) for i in answer["items"]] == [other, other]


def test_a_follow_up_reads_the_earlier_answer_carried_in_the_messages(client: openai.OpenAI, user: str) -> None:
    first = ask(client, "top 3 for me", user=user, extra_body={"format": "ids", "k": 3})
    earlier = first.choices[0].message.model_dump()
    follow = client.chat.completions.create(model="neo", user=user, messages=[
        {"role": "user", "content": "top 3 for me"}, earlier, {"role": "user", "content": "more like the second one"}])
    answer = follow.choices[0].message.neo
    second = earlier["neo"]["items"][1]["id"]
    assert answer["task"] == "like_this" and answer["request"]["focus"] == second
    assert answer["turn"] == 1
    assert not {i["id"] for i in answer["items"]} & {i["id"] for i in earlier["neo"]["items"]}


def test_streaming_follows_the_chunk_protocol(client: openai.OpenAI, user: str) -> None:
    stream = ask(client, "top 3 for me", user=user, stream=True, stream_options={"include_usage": True},
                 extra_body={"format": "ids", "k": 3})
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = finished[0].choices[0].delta.neo
    assert text == answer["text"]
    streamed_items = [i["id"] for c in chunks if c.choices for i in (c.choices[0].delta.model_extra or {})
                      .get("neo_items", [])]
    assert streamed_items == [i["id"] for i in answer["items"]] and len(streamed_items) == 3


def test_the_raw_stream_ends_with_done(base_url: str, user: str) -> None:
    body = {"model": "neo", "stream": True, "user": user, "format": "ids", "k": 2,
            "messages": [{"role": "user", "content": "recommend"}]}
    with httpx.stream("POST", base_url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert "usage" not in json.loads(lines[-2][6:])  # no include_usage: no usage field at all


def test_max_tokens_cuts_an_id_list_to_the_items_that_fit(client: openai.OpenAI, neo: Neo, user: str) -> None:
    full = ask(client, "recommend", user=user, extra_body={"format": "ids", "k": 5}).choices[0].message.neo
    per_item = len(neo.encoder.span(full["items"][0]["id"]))
    reply = ask(client, "recommend", user=user, max_tokens=2 * per_item, extra_body={"format": "ids", "k": 5})
    assert reply.choices[0].finish_reason == "length"
    assert [i["id"] for i in reply.choices[0].message.neo["items"]] == [i["id"] for i in full["items"][:2]]
    assert reply.usage.completion_tokens == 2 * per_item


def test_max_tokens_caps_generated_text(client: openai.OpenAI, user: str) -> None:
    reply = ask(client, "describe my taste", user=user, max_completion_tokens=3, extra_body={"format": "text"})
    assert reply.usage.completion_tokens <= 3
    if reply.usage.completion_tokens == 3:  # the model did not end by itself within 3 tokens
        assert reply.choices[0].finish_reason == "length"


def test_stop_cuts_the_text_before_the_stop_string(client: openai.OpenAI, user: str) -> None:
    full = ask(client, "recommend", user=user, extra_body={"format": "ids", "k": 3}).choices[0].message
    reply = ask(client, "recommend", user=user, stop=["\n2."], extra_body={"format": "ids", "k": 3})
    message = reply.choices[0].message
    assert message.content == full.content.split("\n2.")[0]
    assert [i["id"] for i in message.neo["items"]] == [full.neo["items"][0]["id"]]


def test_an_unknown_user_is_a_visitor_not_an_error(client: openai.OpenAI) -> None:
    reply = ask(client, "recommend 2", user="someone-the-catalog-does-not-know", extra_body={"format": "ids", "k": 2})
    assert len(reply.choices[0].message.neo["items"]) == 2


def test_models_and_health(client: openai.OpenAI, base_url: str) -> None:
    assert [m.id for m in client.models.list()] == ["neo"]
    assert client.models.retrieve("neo").owned_by == "neo-sdk"
    health = httpx.get(base_url + "/health").json()
    assert health["status"] == "ok" and health["in_flight"] == 0
    assert httpx.get(base_url + "/openapi.json").json()["paths"]["/v1/chat/completions"]


def test_typed_recommend_and_search(base_url: str, neo: Neo, user: str) -> None:
    got = post(base_url, {"user": user, "k": 3}, path="/v1/recommend")
    assert got.status_code == 200
    body = got.json()
    assert len(body["items"]) == 3 and body["request"]["format"] == "ids"
    title = neo.facts.title(body["items"][0]["id"])
    found = post(base_url, {"query": title, "k": 3}, path="/v1/search").json()
    assert found["request"]["task"] == "search" and len(found["items"]) == 3
    unknown = post(base_url, {"user": "nobody-here", "k": 2}, path="/v1/recommend")
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "no user 'nobody-here'"  # no paths
    assert post(base_url, {"k": 2, "surprise": 1}, path="/v1/search").status_code == 422


# ------------------------------------------------------------------------------- LangChain
def test_langchain_chat_openai_pointed_at_the_server(base_url: str, user: str) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=f"{base_url}/v1", api_key=KEY_A, model="neo", max_retries=0,
                      extra_body={"format": "ids", "k": 2}, model_kwargs={"user": user})
    message = chat.invoke("recommend")
    assert message.content.startswith("1. ") and "\n2. " in message.content
    streamed = "".join(chunk.content for chunk in chat.stream("recommend"))
    assert streamed == message.content


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(("kwargs", "error", "param"), [
    ({"n": 2}, openai.BadRequestError, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, openai.BadRequestError, "tools"),
    ({"logprobs": True}, openai.BadRequestError, "logprobs"),
    ({"extra_body": {"k": 500}}, openai.BadRequestError, "k"),
    ({"max_tokens": 5000}, openai.BadRequestError, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, openai.BadRequestError, "stop"),
    ({"extra_body": {"format": "poem"}}, openai.UnprocessableEntityError, "format"),
    ({"extra_body": {"history": ["no-such-item"]}}, openai.NotFoundError, None),
    ({"extra_body": {"task": "dance"}}, openai.BadRequestError, None),
])
def test_bad_requests_get_typed_errors(client: openai.OpenAI, kwargs: dict[str, Any], error: type,
                                       param: str | None) -> None:
    with pytest.raises(error) as raised:
        ask(client, "recommend", **kwargs)
    body = raised.value.body
    assert set(body) == {"message", "type", "param", "code"} and body["message"]
    assert body["param"] == param


def test_unknown_model_and_bad_keys(base_url: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["code"] == "model_not_found"
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-wrong-key-0000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        ask(bad, "recommend")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models"), ("GET", "/v1/models/neo"), ("POST", "/v1/chat/completions"), ("POST", "/v1/recommend"),
    ("POST", "/v1/search"), ("GET", "/v1/sessions/x"), ("DELETE", "/v1/sessions/x"),
])
@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", f"Bearer {KEY_A}x", KEY_A])
def test_every_v1_route_needs_a_valid_key(base_url: str, method: str, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.request(method, base_url + path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"{not json", 422, None),
    (b"[]", 422, None),
    ({"model": "neo"}, 422, "messages"),
    ({"model": "neo", "messages": []}, 422, "messages"),
    ({"model": "neo", "messages": [{"role": "wizard", "content": "x"}]}, 422, "messages.0.role"),
    ({"model": "neo", "messages": [{"role": "user", "content": 7}]}, 422, "messages.0.content.str"),
    ({"model": "neo", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages[0].role"),
    ({"model": "neo", "messages": [{"role": "user", "content": "   "}]}, 400, "messages[0].content"),
    ({"model": "neo", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, 400,
     "messages[0].content"),
    ({"model": "neo", "messages": [{"role": "user", "content": "x" * 501}]}, 400, "messages[0].content"),
    ({"model": "neo", "messages": [{"role": "user", "content": "x"}] * 9}, 400, "messages"),
    ({"model": "neo", "messages": [{"role": "assistant", "content": "x", "neo": {"text": 1}},
                                   {"role": "user", "content": "more"}]}, 400, "messages[0].neo"),
    ({"model": "neo", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, 422, "max_tokens"),
    ({"model": "neo", "temperature": 9, "messages": [{"role": "user", "content": "x"}]}, 422, "temperature"),
])
def test_malformed_bodies_never_get_a_500(base_url: str, body: Any, status: int, param: str | None) -> None:
    headers = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(base_url + "/v1/chat/completions", content=content, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_a_body_over_the_limit_is_413_declared_or_streamed(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"}
    big = b'{"model": "neo", "messages": [{"role": "user", "content": "' + b"x" * 30_000 + b'"}]}'
    declared = httpx.post(base_url + "/v1/chat/completions", content=big, headers=headers)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"
    chunked = httpx.post(base_url + "/v1/chat/completions", content=iter([big[:15_000], big[15_000:]]),
                         headers=headers)
    assert chunked.status_code == 413 and chunked.json()["error"]["type"] == "invalid_request_error"


def test_an_unknown_route_is_a_json_404(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/nothing-here", headers={"Authorization": f"Bearer {KEY_A}"})
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


# ------------------------------------------------------------------------- sessions and keys
def test_a_stored_session_belongs_to_the_key_that_made_it(base_url: str, client: openai.OpenAI, user: str) -> None:
    first = ask(client, "top 2 for me", user=user, extra_body={"session_id": "conv-1", "format": "ids", "k": 2})
    second = ask(client, "more like the first one", user=user, extra_body={"session_id": "conv-1"})
    assert first.choices[0].message.neo["turn"] == 0 and second.choices[0].message.neo["turn"] == 1
    assert second.choices[0].message.neo["request"]["focus"] == first.choices[0].message.neo["items"][0]["id"]
    mine = httpx.get(base_url + "/v1/sessions/conv-1", headers={"Authorization": f"Bearer {KEY_A}"})
    assert mine.status_code == 200 and [t["turn"] for t in mine.json()["turns"]] == [0, 1]

    bob = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY_B, max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:  # cannot continue it...
        ask(bob, "recommend", extra_body={"session_id": "conv-1"})
    assert raised.value.body["message"] == "no session 'conv-1'"  # neither the owner nor the server's files
    for method in ("GET", "DELETE"):  # ... read or delete it: 404, as for an id that does not exist
        theirs = httpx.request(method, base_url + "/v1/sessions/conv-1", headers={"Authorization": f"Bearer {KEY_B}"})
        nothing = httpx.request(method, base_url + "/v1/sessions/never-made", headers={"Authorization": f"Bearer {KEY_B}"})
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json()["error"]["code"] == nothing.json()["error"]["code"] == "session_not_found"
    assert httpx.delete(base_url + "/v1/sessions/conv-1", headers={"Authorization": f"Bearer {KEY_A}"}).json()["deleted"]
    assert httpx.get(base_url + "/v1/sessions/conv-1", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 404


# ------------------------------------------------------------------- load: queue, time, disconnects
def test_a_full_queue_answers_429_with_retry_after(neo: Neo, user: str) -> None:
    config = ServerConfig(keys=KEYS, limits=Limits(queue=1, retry_after_s=3))
    body = {"model": "neo", "user": user, "format": "ids", "k": 2, "messages": [{"role": "user", "content": "recommend"}]}
    with serving(create_app(config, neo=neo)) as url:
        neo.responder.lock.acquire()  # the model is busy: the first request waits in the queue
        try:
            first: dict[str, httpx.Response] = {}
            waiting = threading.Thread(target=lambda: first.setdefault("r", post(url, body)))
            waiting.start()
            _wait_until(lambda: httpx.get(url + "/health").json()["in_flight"] == 1)
            refused = post(url, body)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
            assert refused.json()["error"]["type"] == "rate_limit_error"
        finally:
            neo.responder.lock.release()
        waiting.join(60)
        assert first["r"].status_code == 200


def test_a_request_past_the_time_limit_is_504(neo: Neo, user: str) -> None:
    config = ServerConfig(keys=KEYS, limits=Limits(timeout_s=0.5))
    body = {"model": "neo", "user": user, "format": "ids", "messages": [{"role": "user", "content": "recommend"}]}
    with serving(create_app(config, neo=neo)) as url:
        neo.responder.lock.acquire()
        try:
            started = time.monotonic()
            response = post(url, body)
            assert time.monotonic() - started < 5
        finally:
            neo.responder.lock.release()
        assert response.status_code == 504 and response.json()["error"]["type"] == "timeout_error"
        _wait_until(lambda: httpx.get(url + "/health").json()["in_flight"] == 0)


def test_a_client_that_disconnects_mid_stream_stops_its_generation(neo: Neo, user: str) -> None:
    config = ServerConfig(keys=KEYS)
    body = {"model": "neo", "user": user, "stream": True, "format": "text", "max_tokens": 400,
            "messages": [{"role": "user", "content": "describe my taste"}]}
    stopped_before = neo.responder.stopped_generations
    with serving(create_app(config, neo=neo)) as url:
        neo.responder.lock.acquire()  # the generation cannot start before the client has gone
        try:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
                httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"},
                           timeout=1.0)
            _wait_until(lambda: httpx.get(url + "/health").json()["in_flight"] == 1)
        finally:
            neo.responder.lock.release()
        _wait_until(lambda: httpx.get(url + "/health").json()["in_flight"] == 0)
        assert httpx.get(url + "/health").json()["cancelled"] == 1
    assert neo.responder.stopped_generations == stopped_before + 1  # stopped at its next token, not finished


def test_concurrent_id_lists_share_one_batched_beam_search(neo: Neo, base_url: str, user: str) -> None:
    users = users_with_history(neo)[:6]
    batches, queries = neo.responder.beams.batches, neo.responder.beams.queries
    alone = {u: post(base_url, {"user": u, "k": 3}, path="/v1/recommend").json()["items"] for u in users}
    results: dict[str, Any] = {}
    neo.responder.lock.acquire()  # hold the model until all six wait, so they go in one batch
    try:
        threads = [threading.Thread(target=lambda u=u: results.setdefault(u, post(
            base_url, {"user": u, "k": 3}, path="/v1/recommend").json()["items"])) for u in users]
        for thread in threads:
            thread.start()
        _wait_until(lambda: httpx.get(base_url + "/health").json()["in_flight"] == len(users))
        time.sleep(0.3)
    finally:
        neo.responder.lock.release()
    for thread in threads:
        thread.join(60)
    assert neo.responder.beams.queries - queries == 2 * len(users)
    assert neo.responder.beams.batches - batches <= len(users) + 2  # six alone, then at most two batches
    for u in users:  # batching changes no answer
        assert [i["id"] for i in results[u]] == [i["id"] for i in alone[u]]


def test_health_answers_while_the_bundle_loads(neo: Neo) -> None:
    loaded = threading.Event()

    def load() -> Neo:
        loaded.wait(30)
        return neo

    with serving(create_app(ServerConfig(keys=KEYS), loader=load)) as url:
        health = httpx.get(url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        busy = httpx.get(url + "/v1/models/neo", headers={"Authorization": f"Bearer {KEY_A}"})
        assert busy.status_code == 200  # model cards need no model
        waiting = post(url, {"model": "neo", "messages": [{"role": "user", "content": "hi"}]})
        assert waiting.status_code == 503 and waiting.headers["retry-after"] == "5"
        loaded.set()
        _wait_until(lambda: httpx.get(url + "/health").status_code == 200)


def test_the_server_refuses_to_start_without_keys() -> None:
    from neo_sdk.errors import ConfigError

    with pytest.raises(ConfigError, match="NEO_API_KEYS"):
        ServerConfig()
    with pytest.raises(ConfigError, match="8 characters"):
        ApiKeys({"short": "abc"})
    assert ApiKeys.parse("app=sk-123456789,sk-abcdefghij", "test").by_name == {
        "app": "sk-123456789", "key-2": "sk-abcdefghij"}


def _wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
