"""Request and response bodies: the OpenAI chat-completions subset the server speaks, with
neo-sdk's steering as extra top-level fields, and the typed ``/v1/recommend`` and ``/v1/search``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from neo_sdk.session import ItemRef, Request


class TextContent(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message. ``neo`` is the extension field this server puts on its assistant messages (the
    whole answer): sent back, it lets a follow-up refer to that answer."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextContent] | None = None
    name: str | None = None
    neo: dict[str, Any] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class Steering(BaseModel):
    """neo-sdk's steering of one request (what ``Session.ask`` takes), plus where the dialogue lives."""

    task: str | None = Field(default=None, description="next_item, search, explain, profile or like_this")
    entity_type: str | None = Field(default=None, description="the type of items to return")
    format: Literal["ids", "mixed", "text"] | None = Field(default=None, description="ids, mixed or text")
    k: int | None = Field(default=None, ge=1, description="items in an ids answer")
    filters: dict[str, Any] | None = Field(default=None, description="year_min, year_max, exclude, categories,"
                                           " related (as Session.ask takes them)")
    history: list[str] | None = Field(default=None, description="item ids the user consumed, oldest first")
    session_id: str | None = Field(default=None, min_length=1, max_length=128,
                                   description="store the dialogue server side under this id (owned by the key)")

    def steering(self) -> dict[str, Any]:
        """The arguments ``Session.ask`` takes."""
        return {k: v for k, v in self.model_dump(include={"task", "entity_type", "format", "k", "filters"}).items()
                if v is not None}


class ChatCompletionRequest(Steering):
    """``POST /v1/chat/completions``. Unknown fields are accepted and ignored unless they ask
    for something the server cannot do (then 400)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    user: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None


class ItemsRequest(Steering):
    """What ``/v1/recommend`` and ``/v1/search`` share."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, description="a catalog user id (their history is used)")
    k: int = Field(default=10, ge=1, description="items to return")


class RecommendRequest(ItemsRequest):
    """``POST /v1/recommend``: a ranked list for a user, a history, or a request in words."""

    text: str = Field(default="recommend", min_length=1, description="the request in words")


class SearchRequest(ItemsRequest):
    """``POST /v1/search``: items matching words (with the user's taste when there is one)."""

    query: str = Field(min_length=1, description="what to find, in words")


class ItemsResponse(BaseModel):
    """The items of an id-list answer, with how the request was read."""

    items: list[ItemRef]
    request: Request
    session_id: str
    turn: int
    timings: dict[str, float]
    usage: dict[str, int]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorBody
