"""The ASGI app: OpenAI-compatible chat completions, typed recommend and search, models, health.

Model work runs on a thread pool (:mod:`neo_sdk.server._runs`); the event loop only parses,
authenticates and streams, so ``/health`` answers while the model is busy. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from neo_sdk import __version__
from neo_sdk.errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    NeoError,
    NotFoundError,
    ServiceUnavailableError,
    SessionError,
    UnknownItemError,
)
from neo_sdk.server._chat import (
    Piece,
    Reply,
    check_request,
    max_tokens_of,
    open_session,
    reply,
    request_text,
    stops_of,
)
from neo_sdk.server._config import Limits, ServerConfig
from neo_sdk.server._runs import Admission, Run
from neo_sdk.server._schemas import (
    CatalogResponse,
    ChatCompletionRequest,
    ErrorResponse,
    ItemsList,
    ItemsRequest,
    ItemsResponse,
    RecommendRequest,
    SearchRequest,
    UserResponse,
    UsersList,
)

if TYPE_CHECKING:
    from neo_sdk.session import Neo

log = logging.getLogger("neo_sdk.server")
_PATH = re.compile(r" (?:in|of) (?:catalog |the catalog )?(?:(?:/|[A-Za-z]:\\)\S*|:memory:)")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 429, 503, 504)
}
_BEARER = HTTPBearer(auto_error=False, description="an API key of this server (`neo serve --keys` or $NEO_API_KEYS)")
_PLAYGROUND = Path(__file__).parent / "playground"
_ASSETS = {"playground.js": "text/javascript", "playground.css": "text/css"}
# The page loads nothing from another origin and runs no inline code: the browser is told so.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}
_KEY_NAME = "neo_key_name"  # where _Auth leaves the caller's key name in the ASGI scope's state


class _State:
    """The served runtime (loaded in the background when given as a loader), limits, counters."""

    def __init__(self, config: ServerConfig, neo: Neo | None, loader: Callable[[], Neo] | None) -> None:
        self.config = config
        self.neo = neo
        self.loader = loader
        self.load_error: BaseException | None = None
        self.closing = False
        self.started = int(time.time())
        self.admission = Admission(config.limits.queue, config.limits.retry_after_s)
        self.executor = ThreadPoolExecutor(max_workers=config.limits.queue, thread_name_prefix="neo-request")

    def load(self) -> None:
        try:
            assert self.loader is not None
            self.neo = self.loader()
            log.info("bundle loaded; serving model %r", self.config.model_name)
        except BaseException as exc:
            self.load_error = exc
            log.error("the bundle could not be loaded: %s", exc)

    def runtime(self) -> Neo:
        if self.closing:
            raise ServiceUnavailableError("this server is shutting down", code="shutting_down", retry_after=1)
        if self.neo is None:
            if self.load_error is not None:
                raise ServiceUnavailableError(f"the bundle could not be loaded: {self.load_error}", code="load_failed")
            raise ServiceUnavailableError("the bundle is still loading", code="loading", retry_after=5)
        return self.neo


def create_app(config: ServerConfig, *, neo: Neo | None = None, loader: Callable[[], Neo] | None = None) -> FastAPI:
    """The server app over a loaded ``neo``, or one ``loader()`` loads in the background at
    startup (until then ``/v1`` answers 503 and ``/health`` says ``loading``)."""
    if (neo is None) == (loader is None):
        raise ConfigError("create_app needs exactly one of neo= (a loaded Neo) or loader= (a function loading one)")
    state = _State(config, neo, loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.neo is None:
            threading.Thread(target=state.load, name="neo-load", daemon=True).start()
        yield
        state.closing = True
        state.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="neo-sdk", version=__version__, lifespan=lifespan, responses=_ERRORS,
                  dependencies=[Depends(_known_query)],
                  description="A neo-sdk bundle behind the OpenAI chat-completions API (see docs/serving.md).")
    app.state.neo_state = state
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generated()
        _document_limits(schema, config.limits)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    _install_errors(app)
    app.add_middleware(_BodyLimit, limit=config.limits.max_body_bytes)
    app.add_middleware(_Auth, config=config)  # outermost: the caller is known before the body is read

    def owner(request: Request, _: Annotated[Any, Security(_BEARER)] = None) -> str | None:
        """The calling key's name (None without auth), as :class:`_Auth` found it before the body was read."""
        return request.scope.get("state", {}).get(_KEY_NAME)

    def check_model(model: str) -> None:
        if model != config.model_name:
            raise NotFoundError(f"the model {model!r} does not exist; this server serves {config.model_name!r}",
                                param="model", code="model_not_found")

    def model_card() -> dict[str, Any]:
        return {"id": config.model_name, "object": "model", "created": state.started, "owned_by": "neo-sdk"}

    def admit(produce: Callable[[], Iterator[Any]]) -> Run:
        state.runtime()
        state.admission.enter()
        return Run(produce, state.executor, state.admission)

    def deadline() -> float:
        return asyncio.get_running_loop().time() + config.limits.timeout_s

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        """The playground: a page on this same /v1 API (neo_sdk/server/playground)."""
        return FileResponse(_PLAYGROUND / "index.html", headers=_PAGE_HEADERS)

    @app.get("/playground/{name}", include_in_schema=False)
    async def playground_file(name: str) -> FileResponse:
        if name not in _ASSETS:
            raise NotFoundError(f"no playground file {name!r}", code="not_found")
        return FileResponse(_PLAYGROUND / name, media_type=_ASSETS[name], headers=_PAGE_HEADERS)

    @app.get("/health", tags=["server"])
    async def health() -> JSONResponse:
        status = "ok" if state.neo is not None and not state.closing else (
            "shutting down" if state.closing else "failed" if state.load_error else "loading")
        body = {"status": status, "model": config.model_name, "in_flight": state.admission.in_flight,
                "queue_limit": state.admission.limit, "cancelled": state.admission.cancelled}
        if state.neo is not None:
            beams = state.neo.responder.beams
            body.update(beam_batches=beams.batches, beam_queries=beams.queries)
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/v1/models", tags=["openai"])
    async def models(_: str | None = Depends(owner)) -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}", tags=["openai"])
    async def model(model_id: str, _: str | None = Depends(owner)) -> dict[str, Any]:
        check_model(model_id)
        return model_card()

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatCompletionRequest, request: Request,
                               key: str | None = Depends(owner)) -> Any:
        check_model(body.model)
        check_request(body, config.limits)
        text = request_text(body)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        stops, max_tokens = stops_of(body), max_tokens_of(body)

        def produce() -> Iterator[Piece | Reply]:
            neo = state.runtime()
            session = open_session(neo, body, key)
            return reply(neo, session, text, body.steering(), stops=stops, max_tokens=max_tokens)

        run = admit(produce)
        events = run.events(deadline())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            first = await _first(events)  # errors before the first piece keep their HTTP status
            return StreamingResponse(
                _chunks(first, events, cid, created, config.model_name, include_usage, run),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        end = None
        async for event in events:
            if isinstance(event, Reply):
                end = event
        assert end is not None
        message = {"role": "assistant", "content": end.answer.text, "refusal": None,
                   "neo": end.answer.model_dump(mode="json")}
        return {"id": cid, "object": "chat.completion", "created": created, "model": config.model_name,
                "system_fingerprint": None,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": end.finish_reason}],
                "usage": end.usage}

    async def items(body: ItemsRequest, request: Request, key: str | None, text: str, task: str | None) -> Any:
        if body.k > config.limits.max_k:
            raise APIError(f"k is {body.k}; this server returns at most {config.limits.max_k} items", param="k",
                           code="k_too_large")
        steering = {**body.steering(), "format": "ids", "k": body.k}
        if task:
            steering["task"] = task

        def produce() -> Iterator[Any]:
            neo = state.runtime()
            if body.session_id:
                session = neo.session(user=body.user, history=body.history, session_id=body.session_id, owner=key)
            else:
                session = neo.session(user=body.user, history=body.history, persist=False)
            yield session.ask(text, **steering)

        answer = None
        async for event in admit(produce).events(deadline()):
            answer = event
        return ItemsResponse(items=answer.answer_items, request=answer.request, session_id=answer.session_id,
                             turn=answer.turn, timings=answer.timings, usage=answer.usage)

    @app.post("/v1/recommend", tags=["neo"], response_model=ItemsResponse)
    async def recommend(body: RecommendRequest, request: Request, key: str | None = Depends(owner)) -> Any:
        """A ranked list of items for a user or a history (or what ``text`` asks for)."""
        return await items(body, request, key, body.text, None)

    @app.post("/v1/search", tags=["neo"], response_model=ItemsResponse)
    async def search(body: SearchRequest, request: Request, key: str | None = Depends(owner)) -> Any:
        """Items that match ``query`` (ranked with the user's taste when there is a user)."""
        return await items(body, request, key, body.query, "search")

    @app.get("/v1/catalog", tags=["neo"], response_model=CatalogResponse)
    async def catalog(_: str | None = Depends(owner)) -> Any:
        """What a request can name here: tasks, formats, entity types with their category values, relations."""
        return state.runtime().vocabulary()

    @app.get("/v1/items", tags=["neo"], response_model=ItemsList)
    async def item_cards(id: Annotated[list[str], Query(min_length=1, max_length=100, description="item ids")],
                         _: str | None = Depends(owner)) -> Any:
        """Item cards (title, type, year, category values, related items), in the order asked."""
        neo = state.runtime()
        return {"object": "list", "data": [neo.card(item_id) for item_id in id]}

    @app.get("/v1/users", tags=["neo"], response_model=UsersList)
    async def users(limit: int = Query(default=50, ge=1, le=500), _: str | None = Depends(owner)) -> Any:
        """Catalog users with the most interactions first (for a user picker)."""
        counts = state.runtime().facts.train
        ranked = sorted(counts, key=lambda u: (-len(counts[u]), u))[:limit]
        return {"object": "list", "data": [{"id": u, "interactions": len(counts[u])} for u in ranked]}

    @app.get("/v1/users/{user_id}", tags=["neo"], response_model=UserResponse)
    async def user(user_id: str, recent: int = Query(default=10, ge=0, le=100),
                   _: str | None = Depends(owner)) -> Any:
        """A catalog user: how many interactions, and the most recent items (newest first)."""
        neo = state.runtime()
        items = neo.recent(user_id, recent)  # an unknown user → 404
        return {"id": user_id, "interactions": len(neo.facts.train.get(user_id, [])), "recent": items}

    @app.get("/v1/sessions", tags=["neo"])
    async def list_sessions(user: str | None = None, limit: int = Query(default=50, ge=1, le=500),
                            key: str | None = Depends(owner)) -> dict[str, Any]:
        """The calling key's stored sessions, most recently updated first (of one catalog user with ``user``)."""
        neo = state.runtime()
        rows = neo.store.list(user, owner=key, limit=limit)
        return {"object": "list", "data": [{"object": "session", **row} for row in rows]}

    @app.get("/v1/sessions/{session_id}", tags=["neo"])
    async def get_session(session_id: str, key: str | None = Depends(owner)) -> dict[str, Any]:
        """A stored session's turns (only for the key that made it)."""
        neo = state.runtime()
        record = _owned(neo, session_id, key)
        return {"id": record.id, "user": record.user, "created": record.created, "updated": record.updated,
                "turns": [json.loads(turn) for turn in record.turns]}

    @app.delete("/v1/sessions/{session_id}", tags=["neo"])
    async def delete_session(session_id: str, key: str | None = Depends(owner)) -> dict[str, Any]:
        neo = state.runtime()
        _owned(neo, session_id, key)
        neo.store.delete(session_id)
        return {"id": session_id, "object": "session", "deleted": True}

    return app


def _known_query(request: Request) -> None:
    """422 for a query parameter the route does not take (a misspelt ``limit`` is not silently ignored)."""
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if isinstance(route, APIRoute) else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise APIError(f"unknown query parameter {unknown[0]!r}" + (f"; this route takes {', '.join(sorted(known))}"
                       if known else "; this route takes none"), status=422, param=unknown[0],
                       code="unknown_parameter")


def _document_limits(schema: dict[str, Any], limits: Limits) -> None:
    """Write this server's limits into its OpenAPI schema (bodies over them are refused with 400)."""
    bodies = schema.get("components", {}).get("schemas", {})

    def bound(model: str, field: str, **rule: int) -> None:
        spec = bodies.get(model, {}).get("properties", {}).get(field)
        if spec is not None:
            for option in spec.get("anyOf", [spec]):
                if option.get("type") in ("integer", "array", "string"):
                    option.update(rule)

    for model in ("ChatCompletionRequest", "RecommendRequest", "SearchRequest"):
        bound(model, "k", maximum=limits.max_k)
    bound("ChatCompletionRequest", "max_tokens", maximum=limits.max_tokens)
    bound("ChatCompletionRequest", "max_completion_tokens", maximum=limits.max_tokens)
    bound("ChatCompletionRequest", "messages", maxItems=limits.max_messages)
    bound("ChatCompletionRequest", "stop", maxItems=4)
    bound("ChatMessage", "content", maxLength=limits.max_message_chars)


def _owned(neo: Neo, session_id: str, key: str | None) -> Any:
    """The stored session when ``key`` made it; 404 otherwise (as if it did not exist)."""
    missing = NotFoundError(f"no session {session_id!r}", param="session_id", code="session_not_found")
    try:
        record = neo.store.load(session_id)
    except SessionError:
        raise missing from None
    if record.options.get("owner") != key:
        raise missing
    return record


async def _first(events: AsyncIterator[Any]) -> Any:
    async for event in events:
        return event
    return None


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _chunks(first: Any, events: AsyncIterator[Any], cid: str, created: int, model: str,
                  include_usage: bool, run: Run) -> AsyncIterator[bytes]:
    """The stream's ``data:`` events: role, text (an item's label with ``neo_items``), the one chunk
    with a ``finish_reason`` (its delta carries ``neo``), usage, ``[DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                "system_fingerprint": None,
                                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            body["usage"] = None
        body.update(extra)
        return _sse(body)

    try:
        yield chunk({"role": "assistant", "content": ""})
        event = first
        while True:
            if isinstance(event, Piece) and (event.text or event.item is not None):
                delta: dict[str, Any] = {"content": event.text}
                if event.item is not None:
                    delta["neo_items"] = [event.item.model_dump(mode="json")]
                yield chunk(delta)
            elif isinstance(event, Reply):
                yield chunk({"neo": event.answer.model_dump(mode="json")}, event.finish_reason)
                if include_usage:
                    yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                "system_fingerprint": None, "choices": [], "usage": event.usage})
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
    except APIError as exc:
        yield _sse(exc.to_dict())
    except NeoError as exc:
        yield _sse(_translate(exc).to_dict())
    except Exception as exc:
        log.exception("a stream failed")
        yield _sse(APIError(f"internal error: {type(exc).__name__}", status=500, type="server_error").to_dict())
    finally:
        run.cancel()
    yield _sse("[DONE]")


def _translate(exc: NeoError) -> APIError:
    """The HTTP error of an SDK error raised while answering."""
    if isinstance(exc, APIError):
        return exc
    message = _PATH.sub("", str(exc))  # the server's files are nobody's business
    if isinstance(exc, UnknownItemError):
        return NotFoundError(message, code="not_found")
    if isinstance(exc, SessionError):
        return NotFoundError(message, param="session_id", code="session_not_found")
    if isinstance(exc, ConfigError):
        return APIError(message, code="invalid_request")
    return APIError(f"{type(exc).__name__}: {exc}", status=500, type="server_error")


def _error_response(error: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if error.retry_after is not None:
        headers["Retry-After"] = str(int(error.retry_after))
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers or None)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(NeoError)
    async def neo_error(_: Request, exc: NeoError) -> JSONResponse:
        error = _translate(exc)
        if error.status >= 500:
            log.error("request failed: %s", exc)
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid body"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = f"{param + ': ' if param else ''}{first.get('msg', 'invalid value')}"
        if first.get("type") == "invalid_unicode":
            param = ".".join(p for p in (param, first.get("ctx", {}).get("path")) if p) or None
        if first.get("type") == "json_invalid":
            param = None
            message = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
        return _error_response(APIError(message, status=422, param=param, code=str(first.get("type", "invalid"))))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            methods = {m for route in app.routes if isinstance(route, BaseRoute)
                       and route.matches(request.scope)[0] == Match.PARTIAL for m in getattr(route, "methods", ())}
            headers["Allow"] = ", ".join(sorted(methods))
        return _error_response(APIError(str(exc.detail), status=exc.status_code, type=kind, code=code), headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error_response(APIError(f"internal error: {type(exc).__name__}", status=500, type="server_error"))


class _BodyLimit:
    """413 for a body over ``limit`` bytes, by its Content-Length or while it streams in."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is larger than this server's limit of {self.limit} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _error_response(APIError(too_large, status=413, code="body_too_large"))(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.limit:  # FastAPI passes an HTTPException through its body parsing
                    raise HTTPException(status_code=413, detail=too_large)
            return event

        await self.app(scope, limited, send)


class _Auth:
    """401 for a ``/v1`` request without a valid key, before anything reads its body; the key's
    name goes to the scope's state (``owner`` reads it)."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.config.auth or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            error = AuthenticationError("missing API key: send Authorization: Bearer <key>", code="missing_api_key")
        else:
            name = self.config.keys.name_of(key.strip())
            if name is not None:
                scope.setdefault("state", {})[_KEY_NAME] = name
                await self.app(scope, receive, send)
                return
            error = AuthenticationError("invalid API key", code="invalid_api_key")
        await _error_response(error)(scope, receive, send)
