"""Issue 27's server defects, each pinned by a test that failed before its fix: no input gets a 5xx.

* ``filters`` of the wrong shape were a 500 (``TypeError``): now a 422 naming the field (and a
  :class:`ConfigError` from ``Session.ask``);
* a lone surrogate in a message was a 500 when the turn was saved: now a 422;
* a chunked body over the limit got a 413 whose message copied the body;
* broken JSON without a valid key got a 422: the caller is now checked before the body is read;
* a ``session_id`` with ``/`` was accepted but could never be read or deleted: refused, and every
  accepted id can be read and deleted;
* ``k: "5"`` and ``stream: "true"`` were taken as a number and a boolean (the OpenAI API refuses them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from neo_sdk.errors import ConfigError
from neo_sdk.server import ApiKeys, Limits, ServerConfig
from neo_sdk.session import Neo
from tests._serving import serving_bundle

KEY = "sk-input-aaaa-1111"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMITS = Limits(max_messages=8, max_message_chars=500, max_k=20, max_tokens=32, max_body_bytes=20_000)


@pytest.fixture(scope="module")
def served(trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Neo, str]]:
    config = ServerConfig(keys=ApiKeys({"app": KEY}), limits=LIMITS)
    with serving_bundle(trained_bundle, tmp_path_factory.mktemp("sessions"), config) as both:
        yield both


@pytest.fixture(scope="module")
def neo(served: tuple[Neo, str]) -> Neo:
    return served[0]


@pytest.fixture(scope="module")
def base_url(served: tuple[Neo, str]) -> str:
    return served[1]


@pytest.fixture(scope="module")
def item(neo: Neo) -> str:
    return next(iter(neo.table))


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "neo", "messages": [{"role": "user", "content": "recommend"}], "format": "ids", "k": 2, **fields}


def send(base_url: str, body: Any, *, path: str = "/v1/chat/completions", headers: dict[str, str] | None = None
         ) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(base_url + path, content=content, timeout=60,
                      headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)})


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


# ------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("filters", [
    {"exclude": 5}, {"categories": 5}, {"related": 7}, {"exclude": [["a"]]}, {"related": [{"id": "x"}]},
    {"categories": [["Drama"]]}, {"year_min": "1990"}, {"year_max": 1990.5}, {"colour": "red"}, [1, 2],
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/recommend", "/v1/search"])
def test_filters_of_the_wrong_shape_are_a_422_naming_the_field(base_url: str, filters: Any, path: str) -> None:
    body = chat(filters=filters) if path.endswith("completions") else {"query": "x", "filters": filters}
    error = assert_error(send(base_url, body, path=path), 422)
    assert error["param"].startswith("filters") and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("filters", "words"), [
    ({"exclude": 5}, "exclude"), ({"categories": 5}, "categories"), ({"related": 7}, "related"),
    ({"exclude": [["a"]]}, "exclude"), ({"related": [{"id": "x"}]}, "related"), ({"categories": [1]}, "categories"),
])
def test_session_ask_refuses_filters_of_the_wrong_shape(neo: Neo, filters: dict[str, Any], words: str) -> None:
    session = neo.session(history=[next(iter(neo.table))], persist=False)
    with pytest.raises(ConfigError, match=words):
        session.ask("recommend", format="ids", k=2, filters=filters)


def test_filters_of_the_right_shape_still_apply(base_url: str, item: str) -> None:
    response = send(base_url, chat(history=[item], filters={"exclude": [item], "year_min": 1000}))
    assert response.status_code == 200, response.text
    request = response.json()["choices"][0]["message"]["neo"]["request"]
    assert item in request["exclude"] and request["year_min"] == 1000


# ------------------------------------------------------------------------------- unicode
@pytest.mark.parametrize("field", ["content", "session_id", "user", "history"])
def test_a_lone_surrogate_is_a_422_not_a_500(base_url: str, field: str) -> None:
    body = chat(session_id="surrogate-1")
    if field == "content":
        body["messages"][0]["content"] = "recommend \ud800"
    elif field == "history":
        body["history"] = ["\udfff"]
    else:
        body[field] = "x\ud800"
    raw = json.dumps(body).encode()  # ASCII JSON with a \ud800 escape: valid JSON, not valid text
    assert b"\\ud800" in raw or b"\\udfff" in raw
    assert_error(send(base_url, raw), 422)


# ---------------------------------------------------------------------------- body limit
def test_a_chunked_body_over_the_limit_is_a_short_413(base_url: str) -> None:
    big = b'{"model": "neo", "messages": [{"role": "user", "content": "' + b"x" * 2_000_000 + b'"}]}'
    chunks = iter([big[i:i + 65_536] for i in range(0, len(big), 65_536)])
    response = httpx.post(base_url + "/v1/chat/completions", content=chunks,
                          headers={**AUTH, "Content-Type": "application/json"}, timeout=60)
    error = assert_error(response, 413)
    assert error["code"] == "body_too_large" and len(response.content) < 500 and "xxxx" not in response.text


# -------------------------------------------------------------------------- auth first
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-wrong-key-0000"}, {"Authorization": "Basic x"}])
@pytest.mark.parametrize("body", [b"{not json", b"", b'{"model": 5}', b"[]"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/recommend", "/v1/search"])
def test_the_caller_is_checked_before_the_body_is_read(base_url: str, headers: dict[str, str], body: bytes,
                                                       path: str) -> None:
    assert assert_error(send(base_url, body, path=path, headers=headers), 401)["type"] == "authentication_error"


def test_an_oversized_body_without_a_key_is_a_401(base_url: str) -> None:
    body = b'{"model": "neo", "messages": [{"role": "user", "content": "' + b"x" * 30_000 + b'"}]}'
    assert_error(send(base_url, body, headers={}), 401)


# --------------------------------------------------------------------------- session ids
@pytest.mark.parametrize("session_id", ["a/b", "/", "..", ".", "a b", "a?b", "a#b", "%2F", "x\\y", "é"])
def test_a_session_id_that_could_not_be_read_back_is_refused(base_url: str, session_id: str) -> None:
    assert_error(send(base_url, chat(session_id=session_id)), 422, "session_id")
    assert_error(send(base_url, {"query": "x", "session_id": session_id}, path="/v1/search"), 422, "session_id")


@pytest.mark.parametrize("session_id", ["conv-1", "A.b_c:d-9", "7", "x" * 128, "2026-12-05T19:00"])
def test_every_accepted_session_id_can_be_read_and_deleted(base_url: str, session_id: str) -> None:
    assert send(base_url, chat(session_id=session_id)).status_code == 200
    url = f"{base_url}/v1/sessions/{session_id}"
    assert httpx.get(url, headers=AUTH).json()["id"] == session_id
    listed = httpx.get(f"{base_url}/v1/sessions", headers=AUTH).json()["data"]
    assert session_id in [s["id"] for s in listed]
    assert httpx.delete(url, headers=AUTH).json()["deleted"] is True
    assert httpx.get(url, headers=AUTH).status_code == 404


# ------------------------------------------------------------------------ strict types
@pytest.mark.parametrize(("field", "value"), [
    ("k", "5"), ("k", 5.5), ("k", True), ("stream", "true"), ("stream", 1), ("max_tokens", "8"), ("n", "1"),
    ("temperature", "0.5"), ("top_p", "1"), ("seed", "3"), ("stream_options", {"include_usage": "yes"}),
])
def test_strings_are_not_taken_for_numbers_or_booleans(base_url: str, field: str, value: Any) -> None:
    error = assert_error(send(base_url, chat(**{field: value})), 422)
    assert error["param"].split(".")[0] == field


@pytest.mark.parametrize(("path", "body"), [("/v1/recommend", {"k": "5"}), ("/v1/search", {"query": "x", "k": "3"})])
def test_typed_routes_take_k_as_a_number_only(base_url: str, path: str, body: dict[str, Any]) -> None:
    assert_error(send(base_url, body, path=path), 422, "k")


def test_numbers_the_openai_api_takes_are_still_taken(base_url: str) -> None:
    response = send(base_url, chat(temperature=1, top_p=1, seed=3, n=1, max_tokens=32, stream=False, k=2.0))
    assert response.status_code == 200, response.text
