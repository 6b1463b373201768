"""A Python client for ``neo serve`` (docs/serving.md) that answers with the runtime's own types.

:class:`NeoClient` mirrors :meth:`Session.ask <neo_sdk.session.Session.ask>` and
:meth:`Session.stream <neo_sdk.session.Session.stream>` over HTTP: ``ask`` returns an
:class:`~neo_sdk.session.Answer`, ``stream`` yields :class:`~neo_sdk.session.StreamEvent` (text,
each item when its span completes, then the final event carrying the answer). :class:`AsyncNeoClient`
is the same API for ``asyncio``. Every error the server sends is raised as the matching class of
:mod:`neo_sdk.errors` (:class:`~neo_sdk.errors.AuthenticationError`, ``NotFoundError``, ...);
a server that cannot be reached raises :class:`~neo_sdk.errors.APIConnectionError`.

Example:
    >>> from neo_sdk.client import NeoClient                           # doctest: +SKIP
    >>> with NeoClient("http://127.0.0.1:8000", api_key="sk-...") as neo:  # doctest: +SKIP
    ...     print(neo.ask("movies like this, explain why", user="196"))
    ...     chat = neo.session(user="196")          # a dialogue stored server side
    ...     chat.ask("top 5 for me"); chat.ask("more like the second one")

Request building, response parsing and the SSE decoder are plain functions shared by both clients;
only the I/O differs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import BaseModel

from neo_sdk.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
)
from neo_sdk.session import Answer, ItemRef, Request, StreamEvent

__all__ = ["API_KEY_ENV", "AsyncNeoClient", "AsyncRemoteSession", "ItemsResponse", "NeoClient", "RemoteSession"]

API_KEY_ENV = "NEO_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"

_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError, 404: NotFoundError, 429: RateLimitError, 503: ServiceUnavailableError,
    504: RequestTimeoutError,
}
# an error sent inside a stream has no HTTP status: its type says which it is
_BY_TYPE: dict[str, tuple[type[APIError], int]] = {
    "authentication_error": (AuthenticationError, 401), "not_found_error": (NotFoundError, 404),
    "rate_limit_error": (RateLimitError, 429), "timeout_error": (RequestTimeoutError, 504),
    "server_error": (APIError, 500), "invalid_request_error": (APIError, 400),
}


class ItemsResponse(BaseModel):
    """What ``/v1/recommend`` and ``/v1/search`` answer: ranked items and how the request was read."""

    items: list[ItemRef]
    request: Request
    session_id: str
    turn: int
    timings: dict[str, float] = {}
    usage: dict[str, int] = {}

    @property
    def ids(self) -> list[str]:
        """The items' ids, best first."""
        return [item.id for item in self.items]


# ----------------------------------------------------------------------------- shared: requests
def _drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _chat_body(model: str, text: str, *, stream: bool, user: str | None, history: list[str] | None,
               session_id: str | None, task: str | None, entity_type: str | None, format: str | None,
               k: int | None, filters: dict[str, Any] | None, max_tokens: int | None,
               stop: str | list[str] | None) -> dict[str, Any]:
    """A ``/v1/chat/completions`` body asking ``text`` with neo-sdk's steering as extra fields."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    return body | _drop_none({"user": user, "history": history, "session_id": session_id, "task": task,
                              "entity_type": entity_type, "format": format, "k": k, "filters": filters,
                              "max_tokens": max_tokens, "stop": stop})


def _new_session_id() -> str:
    return f"sess-{uuid.uuid4().hex}"


# ----------------------------------------------------------------------------- shared: responses
def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _error_of(status: int, body: Any, *, retry_after: float | None = None, url: str = "") -> APIError:
    """The typed error of an error response (``{"error": {...}}``, or any other body)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):  # not this server's error shape (a proxy, a crash page)
        text = body if isinstance(body, str) and body else f"HTTP {status}"
        error = {"message": f"{url}: {text[:500]}" if url else text[:500]}
    cls = _BY_STATUS.get(status, APIError)
    return cls(str(error.get("message") or f"HTTP {status}"), status=status, type=error.get("type") or None,
               param=error.get("param"), code=error.get("code"), retry_after=retry_after)


def _checked(response: httpx.Response) -> Any:
    """The JSON body of a 2xx response; the typed error of any other."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if response.is_success:
        return body
    raise _error_of(response.status_code, body, retry_after=_retry_after(response.headers), url=str(response.url))


def _health_of(response: httpx.Response) -> dict[str, Any]:
    """A health report: 200, or 503 with its report (loading, failed, shutting down) is an answer."""
    if response.status_code == 503:
        try:
            report = response.json()
        except ValueError:
            report = None
        if isinstance(report, dict) and "status" in report:
            return report
    return _checked(response)


def _answer_of(completion: dict[str, Any]) -> Answer:
    """The :class:`Answer` a chat completion carries in ``choices[0].message.neo``."""
    try:
        return Answer.model_validate(completion["choices"][0]["message"]["neo"])
    except (KeyError, IndexError, TypeError) as exc:
        raise APIError("the completion has no choices[0].message.neo: is this a neo serve server?",
                       status=502, type="server_error", code="not_neo") from exc


@contextmanager
def _transport(url: str, timeout: float) -> Iterator[None]:
    """httpx's connection and timeout errors as :class:`APIConnectionError`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APIConnectionError(f"no answer from {url} within {timeout} s ({type(exc).__name__})",
                                 code="timeout") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"cannot reach {url}: {exc or type(exc).__name__}", code="connection_error") from exc


class _SSEDecoder:
    """Server-sent events of a streamed chat completion → :class:`StreamEvent`.

    ``feed`` takes one line at a time; an event is complete at a blank line. ``finish`` raises
    when the stream ended before its answer (a broken connection).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.data: list[str] = []
        self.answer: Answer | None = None
        self.done = False  # [DONE] seen

    def feed(self, line: str) -> list[StreamEvent]:
        if line:
            name, _, value = line.partition(":")
            if name == "data":
                self.data.append(value.removeprefix(" "))
            return []  # comments (":...") and other fields carry nothing here
        if not self.data:
            return []
        data, self.data = "\n".join(self.data), []
        return self._event(data)

    def _event(self, data: str) -> list[StreamEvent]:
        if data == "[DONE]":
            self.done = True
            return []
        chunk = json.loads(data)
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            cls, status = _BY_TYPE.get(str(error.get("type")), (APIError, 500))
            raise cls(str(error.get("message") or "the stream failed"), status=status, type=error.get("type"),
                      param=error.get("param"), code=error.get("code"))
        events = []
        for choice in chunk.get("choices") or []:  # the usage chunk has none
            delta = choice.get("delta") or {}
            if choice.get("finish_reason") is not None and delta.get("neo") is not None:
                self.answer = Answer.model_validate(delta["neo"])
                events.append(StreamEvent(answer=self.answer))
                continue
            items = [ItemRef.model_validate(i) for i in delta.get("neo_items") or []]
            if delta.get("content") or items:
                events.append(StreamEvent(delta.get("content") or "", items[0] if items else None))
                events += [StreamEvent("", item) for item in items[1:]]
        return events

    def finish(self) -> None:
        if self.answer is None:
            raise APIConnectionError(f"the stream from {self.url} ended before its answer", code="incomplete_stream")


# ----------------------------------------------------------------------------- the sync client
class NeoClient:
    """A client of one ``neo serve`` server.

    Args:
        base_url: the server's address (``http://HOST:PORT``; a trailing ``/v1`` is accepted too).
        api_key: sent as ``Authorization: Bearer``; default ``$NEO_API_KEY``.
        model: the served model id (``neo`` unless the server runs with ``--model-name``).
        timeout: seconds per request (for a stream: between two chunks).
        http_client: an ``httpx.Client`` to send with (proxies, transports); it stays open on
            :meth:`close`, which closes only a client this object made.
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, model: str = "neo",
                 timeout: float = 60.0, http_client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model, self.timeout = model, timeout
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._owned = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, model={self.model!r})"

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        with _transport(url, self.timeout):
            response = self._http.request(method, url, json=body, headers=self._headers, timeout=self.timeout)
        return _checked(response)

    # ------------------------------------------------------------------------- server
    def health(self) -> dict[str, Any]:
        """``/health``: ``{"status": "ok" | "loading" | "failed" | "shutting down", "in_flight", ...}``
        (a server that is not ready answers its report, not an error)."""
        url = self.base_url + "/health"
        with _transport(url, self.timeout):
            response = self._http.get(url, timeout=self.timeout)
        return _health_of(response)

    def models(self) -> list[dict[str, Any]]:
        """The served models (``[{"id": "neo", "object": "model", ...}]``)."""
        return self._send("GET", "/v1/models")["data"]

    # ------------------------------------------------------------------------- asking
    def ask(self, text: str, *, user: str | None = None, history: list[str] | None = None,
            session_id: str | None = None, task: str | None = None, entity_type: str | None = None,
            format: str | None = None, k: int | None = None, filters: dict[str, Any] | None = None,
            max_tokens: int | None = None, stop: str | list[str] | None = None) -> Answer:
        """Answer ``text`` as :meth:`Session.ask <neo_sdk.session.Session.ask>` does.

        Args:
            text: the request in words.
            user: a catalog user id (their history personalises the answer; an unknown id is a visitor).
            history: item ids the user consumed, oldest first.
            session_id: store the turn server side under this id (see :meth:`session`).
            task, entity_type, format, k, filters: steering, as ``Session.ask`` takes it.
            max_tokens: cap on completion tokens; stop: cut the text before this string (or these).

        Returns:
            The server's :class:`Answer` (``choices[0].message.neo``).
        """
        body = _chat_body(self.model, text, stream=False, user=user, history=history, session_id=session_id,
                          task=task, entity_type=entity_type, format=format, k=k, filters=filters,
                          max_tokens=max_tokens, stop=stop)
        return _answer_of(self._send("POST", "/v1/chat/completions", body))

    def stream(self, text: str, *, user: str | None = None, history: list[str] | None = None,
               session_id: str | None = None, task: str | None = None, entity_type: str | None = None,
               format: str | None = None, k: int | None = None, filters: dict[str, Any] | None = None,
               max_tokens: int | None = None, stop: str | list[str] | None = None) -> Iterator[StreamEvent]:
        """Like :meth:`ask`, as :meth:`Session.stream <neo_sdk.session.Session.stream>`'s events: text
        deltas, each item when its span completes, then the final event carrying the :class:`Answer`.
        Leaving the loop early closes the connection, which stops the server's generation."""
        body = _chat_body(self.model, text, stream=True, user=user, history=history, session_id=session_id,
                          task=task, entity_type=entity_type, format=format, k=k, filters=filters,
                          max_tokens=max_tokens, stop=stop)
        url = self.base_url + "/v1/chat/completions"
        decoder = _SSEDecoder(url)
        with _transport(url, self.timeout), self._http.stream("POST", url, json=body, headers=self._headers,
                                                               timeout=self.timeout) as response:
            if not response.is_success:
                response.read()
                _checked(response)
            for line in response.iter_lines():
                yield from decoder.feed(line)
                if decoder.done:
                    break
            yield from decoder.feed("")  # a last event without its blank line
        decoder.finish()

    def recommend(self, user: str | None = None, *, history: list[str] | None = None, text: str | None = None,
                  entity_type: str | None = None, k: int = 10, filters: dict[str, Any] | None = None,
                  session_id: str | None = None) -> ItemsResponse:
        """``/v1/recommend``: a ranked id list for a user or a history (or what ``text`` asks for)."""
        body = _drop_none({"user": user, "history": history, "text": text, "entity_type": entity_type, "k": k,
                           "filters": filters, "session_id": session_id})
        return ItemsResponse.model_validate(self._send("POST", "/v1/recommend", body))

    def search(self, query: str, *, user: str | None = None, history: list[str] | None = None,
               entity_type: str | None = None, k: int = 10, filters: dict[str, Any] | None = None,
               session_id: str | None = None) -> ItemsResponse:
        """``/v1/search``: items matching ``query`` (ranked with the user's taste when there is one)."""
        body = _drop_none({"query": query, "user": user, "history": history, "entity_type": entity_type, "k": k,
                           "filters": filters, "session_id": session_id})
        return ItemsResponse.model_validate(self._send("POST", "/v1/search", body))

    def session(self, user: str | None = None, session_id: str | None = None) -> RemoteSession:
        """A dialogue stored on the server under ``session_id`` (a new random id unless given),
        owned by this client's key: follow-ups ("more like the second one") see its earlier turns."""
        return RemoteSession(self, session_id or _new_session_id(), user)

    # ------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` given to the constructor)."""
        if self._owned:
            self._http.close()

    def __enter__(self) -> NeoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteSession:
    """A session stored on the server: every :meth:`ask` is one of its turns. It exists on the
    server from its first turn; only the key that made it can read, continue or delete it."""

    def __init__(self, client: NeoClient, session_id: str, user: str | None) -> None:
        self.client, self.id, self.user = client, session_id, user

    def __repr__(self) -> str:
        return f"RemoteSession(id={self.id!r}, user={self.user!r})"

    def ask(self, text: str, **steering: Any) -> Answer:
        """:meth:`NeoClient.ask` as this session's next turn (``steering``: its keyword arguments)."""
        return self.client.ask(text, user=self.user, session_id=self.id, **steering)

    def stream(self, text: str, **steering: Any) -> Iterator[StreamEvent]:
        """:meth:`NeoClient.stream` as this session's next turn."""
        return self.client.stream(text, user=self.user, session_id=self.id, **steering)

    def turns(self) -> list[Answer]:
        """Every answer of the session, oldest first (:class:`NotFoundError` before the first turn)."""
        record = self.client._send("GET", f"/v1/sessions/{self.id}")
        return [Answer.model_validate(turn) for turn in record["turns"]]

    def delete(self) -> None:
        """Remove the session from the server."""
        self.client._send("DELETE", f"/v1/sessions/{self.id}")


# ----------------------------------------------------------------------------- the async client
class AsyncNeoClient:
    """:class:`NeoClient` for ``asyncio``: the same methods, awaited; :meth:`stream` is an async
    iterator (close it with ``contextlib.aclosing`` to stop a generation early)."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, model: str = "neo",
                 timeout: float = 60.0, http_client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model, self.timeout = model, timeout
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, model={self.model!r})"

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        with _transport(url, self.timeout):
            response = await self._http.request(method, url, json=body, headers=self._headers, timeout=self.timeout)
        return _checked(response)

    async def health(self) -> dict[str, Any]:
        """See :meth:`NeoClient.health`."""
        url = self.base_url + "/health"
        with _transport(url, self.timeout):
            response = await self._http.get(url, timeout=self.timeout)
        return _health_of(response)

    async def models(self) -> list[dict[str, Any]]:
        """See :meth:`NeoClient.models`."""
        return (await self._send("GET", "/v1/models"))["data"]

    async def ask(self, text: str, *, user: str | None = None, history: list[str] | None = None,
                  session_id: str | None = None, task: str | None = None, entity_type: str | None = None,
                  format: str | None = None, k: int | None = None, filters: dict[str, Any] | None = None,
                  max_tokens: int | None = None, stop: str | list[str] | None = None) -> Answer:
        """See :meth:`NeoClient.ask`."""
        body = _chat_body(self.model, text, stream=False, user=user, history=history, session_id=session_id,
                          task=task, entity_type=entity_type, format=format, k=k, filters=filters,
                          max_tokens=max_tokens, stop=stop)
        return _answer_of(await self._send("POST", "/v1/chat/completions", body))

    async def stream(self, text: str, *, user: str | None = None, history: list[str] | None = None,
                     session_id: str | None = None, task: str | None = None, entity_type: str | None = None,
                     format: str | None = None, k: int | None = None, filters: dict[str, Any] | None = None,
                     max_tokens: int | None = None, stop: str | list[str] | None = None) -> AsyncIterator[StreamEvent]:
        """See :meth:`NeoClient.stream`."""
        body = _chat_body(self.model, text, stream=True, user=user, history=history, session_id=session_id,
                          task=task, entity_type=entity_type, format=format, k=k, filters=filters,
                          max_tokens=max_tokens, stop=stop)
        url = self.base_url + "/v1/chat/completions"
        decoder = _SSEDecoder(url)
        with _transport(url, self.timeout):
            async with self._http.stream("POST", url, json=body, headers=self._headers,
                                         timeout=self.timeout) as response:
                if not response.is_success:
                    await response.aread()
                    _checked(response)
                async for line in response.aiter_lines():
                    for event in decoder.feed(line):
                        yield event
                    if decoder.done:
                        break
                for event in decoder.feed(""):  # a last event without its blank line
                    yield event
        decoder.finish()

    async def recommend(self, user: str | None = None, *, history: list[str] | None = None, text: str | None = None,
                        entity_type: str | None = None, k: int = 10, filters: dict[str, Any] | None = None,
                        session_id: str | None = None) -> ItemsResponse:
        """See :meth:`NeoClient.recommend`."""
        body = _drop_none({"user": user, "history": history, "text": text, "entity_type": entity_type, "k": k,
                           "filters": filters, "session_id": session_id})
        return ItemsResponse.model_validate(await self._send("POST", "/v1/recommend", body))

    async def search(self, query: str, *, user: str | None = None, history: list[str] | None = None,
                     entity_type: str | None = None, k: int = 10, filters: dict[str, Any] | None = None,
                     session_id: str | None = None) -> ItemsResponse:
        """See :meth:`NeoClient.search`."""
        body = _drop_none({"query": query, "user": user, "history": history, "entity_type": entity_type, "k": k,
                           "filters": filters, "session_id": session_id})
        return ItemsResponse.model_validate(await self._send("POST", "/v1/search", body))

    def session(self, user: str | None = None, session_id: str | None = None) -> AsyncRemoteSession:
        """See :meth:`NeoClient.session`."""
        return AsyncRemoteSession(self, session_id or _new_session_id(), user)

    async def close(self) -> None:
        """Close the connections (not those of an ``http_client`` given to the constructor)."""
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncNeoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncRemoteSession:
    """:class:`RemoteSession` of an :class:`AsyncNeoClient`."""

    def __init__(self, client: AsyncNeoClient, session_id: str, user: str | None) -> None:
        self.client, self.id, self.user = client, session_id, user

    def __repr__(self) -> str:
        return f"AsyncRemoteSession(id={self.id!r}, user={self.user!r})"

    async def ask(self, text: str, **steering: Any) -> Answer:
        """:meth:`AsyncNeoClient.ask` as this session's next turn."""
        return await self.client.ask(text, user=self.user, session_id=self.id, **steering)

    def stream(self, text: str, **steering: Any) -> AsyncIterator[StreamEvent]:
        """:meth:`AsyncNeoClient.stream` as this session's next turn."""
        return self.client.stream(text, user=self.user, session_id=self.id, **steering)

    async def turns(self) -> list[Answer]:
        """See :meth:`RemoteSession.turns`."""
        record = await self.client._send("GET", f"/v1/sessions/{self.id}")
        return [Answer.model_validate(turn) for turn in record["turns"]]

    async def delete(self) -> None:
        """Remove the session from the server."""
        await self.client._send("DELETE", f"/v1/sessions/{self.id}")
