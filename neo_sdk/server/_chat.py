"""Chat completions: the messages become a session turn; the answer becomes a completion (or its
chunks), cut by ``stop`` and ``max_tokens`` the way the OpenAI API defines them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from neo_sdk.errors import APIError
from neo_sdk.server._config import Limits
from neo_sdk.server._schemas import ChatCompletionRequest
from neo_sdk.session import Answer, ItemRef, Session
from neo_sdk.session._stops import StopCutter, cut_answer, cut_at_stop

if TYPE_CHECKING:
    from neo_sdk.session import Neo

# Fields that would change what the API returns in ways this server cannot honour: refused, not ignored.
_UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "logit_bias", "audio", "prediction",
                "top_logprobs")


def check_request(body: ChatCompletionRequest, limits: Limits) -> None:
    """Refuse (400) what the server cannot do or the limits do not allow."""
    extra = body.model_extra or {}
    for name in _UNSUPPORTED:
        if extra.get(name) not in (None, [], {}, "none", "auto"):
            raise APIError(f"{name} is not supported: this model answers with catalog items and text, it calls"
                           " no tools and returns no log-probabilities", param=name, code="unsupported_parameter")
    if extra.get("logprobs"):
        raise APIError("logprobs is not supported: answers are ranked by beam search; item scores are in"
                       " message.neo.items[].score", param="logprobs", code="unsupported_parameter")
    response_format = extra.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise APIError("response_format must be text: the structured answer is always in message.neo",
                       param="response_format", code="unsupported_parameter")
    if body.n not in (None, 1):
        raise APIError(f"n must be 1, got {body.n}: decoding is deterministic, every choice would be the same",
                       param="n", code="unsupported_parameter")
    if len(body.messages) > limits.max_messages:
        raise APIError(f"{len(body.messages)} messages; this server takes at most {limits.max_messages}",
                       param="messages", code="too_many_messages")
    for n, message in enumerate(body.messages):
        if len(message_text(message.content, n)) > limits.max_message_chars:
            raise APIError(f"messages[{n}] is longer than {limits.max_message_chars} characters",
                           param=f"messages[{n}].content", code="message_too_long")
    if body.k is not None and body.k > limits.max_k:
        raise APIError(f"k is {body.k}; this server returns at most {limits.max_k} items", param="k",
                       code="k_too_large")
    cap = max_tokens_of(body)
    if cap is not None and cap > limits.max_tokens:
        raise APIError(f"max_tokens is {cap}; this server generates at most {limits.max_tokens}",
                       param="max_tokens", code="max_tokens_too_large")
    if len(stops_of(body)) > 4:
        raise APIError("stop takes at most 4 strings", param="stop", code="too_many_stops")


def max_tokens_of(body: ChatCompletionRequest) -> int | None:
    return body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens


def stops_of(body: ChatCompletionRequest) -> tuple[str, ...]:
    stops = [body.stop] if isinstance(body.stop, str) else body.stop or []
    return tuple(s for s in stops if s)


def message_text(content: Any, index: int) -> str:
    """A message's text: a string, or the concatenated text parts (any other part → 400)."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise APIError(f"messages[{index}] has a {part.type!r} part; only text parts are supported",
                           param=f"messages[{index}].content", code="unsupported_content")
        texts.append(part.text)
    return "".join(texts)


def request_text(body: ChatCompletionRequest) -> str:
    """The request: the last message, which must be the user's and have text."""
    last = len(body.messages) - 1
    message = body.messages[last]
    if message.role != "user":
        raise APIError(f"the last message must be the user's request, got role {message.role!r}",
                       param=f"messages[{last}].role", code="last_message_not_user")
    text = message_text(message.content, last).strip()
    if not text:
        raise APIError("the last user message has no text", param=f"messages[{last}].content", code="empty_request")
    return text


def open_session(neo: Neo, body: ChatCompletionRequest, owner: str | None) -> Session:
    """The session a chat request continues: the stored one under ``session_id`` (owned by the
    caller), else one rebuilt from the messages (earlier answers carried in their ``neo`` field).
    A ``user`` the catalog does not know is answered as a visitor."""
    user = body.user if body.user and neo.catalog.has_user(body.user) else None
    if body.session_id:
        return neo.session(user=user, history=body.history, session_id=body.session_id, owner=owner)
    session = neo.session(user=user, history=body.history, persist=False)
    for n, message in enumerate(body.messages[:-1]):
        if message.role == "assistant" and message.neo is not None:
            try:
                answer = Answer.model_validate(message.neo)
            except ValidationError as exc:
                raise APIError(f"messages[{n}].neo is not an answer this server wrote: {exc.errors()[0]['msg']}",
                               param=f"messages[{n}].neo", code="invalid_answer") from None
            for item in answer.items:
                neo.item(item.id)  # an item this catalog does not have → 404
            session.remember(answer)
    return session


@dataclass(frozen=True)
class Piece:
    """Text to send, with the item when the text is an item's label."""

    text: str
    item: ItemRef | None = None


@dataclass(frozen=True)
class Reply:
    """The end of a reply: the answer as sent (cut), why it ended, the tokens used."""

    answer: Answer
    finish_reason: str
    usage: dict[str, int]


def reply(neo: Neo, session: Session, text: str, steering: dict[str, Any], *, stops: tuple[str, ...],
          max_tokens: int | None) -> Iterator[Piece | Reply]:
    """A turn's pieces as the model produces them, then its :class:`Reply`.

    ``max_tokens`` caps the tokens the model decodes: generation stops there (``length``); an id
    list keeps the items whose SID spans fit. ``stops`` cut the text before the first stop string.
    The session stores the whole answer; the reply is the cut one.
    """
    request = session.resolve(text, **steering)
    budget = max_tokens if request.format == "ids" else None
    if max_tokens is not None and budget is None:  # a mixed answer's item span counts too
        session.max_new_tokens = max(1, max_tokens - (neo.responder.longest_span if request.format == "mixed" else 0))
    cutter = StopCutter(stops)
    held, fed, spent, over_budget = "", 0, 0, False
    answer: Answer | None = None
    for event in session.stream(text, **steering):
        if event.answer is not None:
            answer = event.answer
            continue
        if over_budget:
            continue
        if budget is None:
            parts = cutter.feed(event.text, event.item)
        elif event.item is None:  # an id list's numbering waits for its item
            held += event.text
            continue
        else:
            cost = len(neo.encoder.span(event.item.id))
            if spent + cost > budget:
                over_budget = True
                continue
            spent += cost
            parts = cutter.feed(held) + cutter.feed(event.text, event.item)
            fed += len(held) + len(event.text)
            held = ""
        for part_text, item in parts:  # empty while a held explanation is written: a run checks for cancel
            yield Piece(part_text, item)
    if budget is not None and not over_budget and held:
        parts = cutter.feed(held)
        fed += len(held)
        for part_text, item in parts:
            yield Piece(part_text, item)
    for part_text, item in cutter.finish():
        yield Piece(part_text, item)
    assert answer is not None
    sent = cut_at_stop(cut_answer(answer, fed) if over_budget else answer, stops)
    completion = spent if budget is not None else answer.usage.get("completion_tokens", 0)
    prompt = answer.usage.get("prompt_tokens", 0)
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    finish = "length" if over_budget or answer.truncated else "stop"
    yield Reply(sent, finish, usage)
