"""Request and response bodies: the OpenAI chat-completions subset the server speaks, with
neo-sdk's steering as extra top-level fields, and the typed ``/v1/recommend`` and ``/v1/search``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from neo_sdk.session import ItemCard, ItemRef, Request


# The OpenAI API takes numbers and booleans as JSON numbers and booleans only ("5" is refused); a str
# field already refuses numbers and booleans.
def _whole_number(value: Any) -> Any:
    """A JSON number with no fraction (``5`` or ``5.0``, as JSON Schema's integer); never a string or boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a whole number (a JSON number, not a string)")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole_number), Field(strict=True)]
Float = Annotated[float, Field(strict=True)]
Bool = Annotated[bool, Field(strict=True)]
# Session ids travel in URL paths (GET/DELETE /v1/sessions/{id}): only ids that read back unchanged.
SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


def _check_text(value: Any, path: str) -> None:
    """Refuse a string that is not Unicode text (a lone surrogate such as ``"\\ud800"`` is valid
    JSON but can be neither tokenized nor stored)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "invalid_unicode", "the text has a lone surrogate (an unpaired \\uD800-\\uDFFF"
                " escape); send valid Unicode", {"path": path}) from None
    elif isinstance(value, dict):
        for key, inner in value.items():
            _check_text(key, path)
            _check_text(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            _check_text(inner, f"{path}.{n}" if path else str(n))


class _Body(BaseModel):
    """A request body: every string in it (extra fields included) must be Unicode text."""

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        _check_text(data, "")
        return data


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

    include_usage: Bool = False


class Filters(BaseModel):
    """Facts every returned item must have (what ``Session.ask(filters=...)`` takes)."""

    model_config = ConfigDict(extra="forbid")

    year_min: Int | None = Field(default=None, description="earliest year")
    year_max: Int | None = Field(default=None, description="latest year")
    exclude: list[str] | None = Field(default=None, description="item ids never to return")
    categories: list[str] | None = Field(default=None, description="category values every item has")
    related: list[str] | None = Field(default=None, description="item ids every item is linked to")


class Steering(_Body):
    """neo-sdk's steering of one request (what ``Session.ask`` takes), plus where the dialogue lives."""

    task: str | None = Field(default=None, description="next_item, search, explain, profile, like_this or about")
    entity_type: str | None = Field(default=None, description="the type of items to return")
    format: Literal["ids", "mixed", "text"] | None = Field(default=None, description="ids, mixed or text")
    k: Int | None = Field(default=None, ge=1, description="items in an ids answer")
    filters: Filters | None = Field(default=None, description="facts every item has (as Session.ask takes them)")
    history: list[str] | None = Field(default=None, description="item ids the user consumed, oldest first")
    session_id: str | None = Field(default=None, pattern=SESSION_ID,
                                   description="store the dialogue server side under this id (owned by the key):"
                                   " letters, digits and . _ : - (up to 128, starting with a letter or digit)")

    def steering(self) -> dict[str, Any]:
        """The arguments ``Session.ask`` takes."""
        chosen = {k: v for k, v in self.model_dump(include={"task", "entity_type", "format", "k"}).items()
                  if v is not None}
        if self.filters is not None:
            chosen["filters"] = self.filters.model_dump(exclude_none=True)
        return chosen


class ChatCompletionRequest(Steering):
    """``POST /v1/chat/completions``. Unknown fields are accepted and ignored unless they ask
    for something the server cannot do (then 400)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: Bool = False
    stream_options: StreamOptions | None = None
    n: Int | None = None
    max_tokens: Int | None = Field(default=None, ge=1)
    max_completion_tokens: Int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    user: str | None = None
    temperature: Float | None = Field(default=None, ge=0, le=2)
    top_p: Float | None = Field(default=None, ge=0, le=1)
    presence_penalty: Float | None = None
    frequency_penalty: Float | None = None
    seed: Int | None = None


class ItemsRequest(Steering):
    """What ``/v1/recommend`` and ``/v1/search`` share."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, description="a catalog user id (their history is used)")
    k: Int = Field(default=10, ge=1, description="items to return")


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


class EntityTypeInfo(BaseModel):
    name: str
    plural: str
    items: int
    categories: list[str]


class RelationInfo(BaseModel):
    name: str
    words: str


class CatalogResponse(BaseModel):
    """``GET /v1/catalog``: what a request can name on this bundle."""

    tasks: list[str]
    formats: list[str]
    types: list[EntityTypeInfo]
    default_type: str
    relations: list[RelationInfo]
    users: int
    new_items: int


class ItemsList(BaseModel):
    """``GET /v1/items``: item cards."""

    object: Literal["list"] = "list"
    data: list[ItemCard]


class UserSummary(BaseModel):
    id: str
    interactions: int


class UsersList(BaseModel):
    """``GET /v1/users``: catalog users, most interactions first."""

    object: Literal["list"] = "list"
    data: list[UserSummary]


class UserResponse(BaseModel):
    """``GET /v1/users/{id}``: a catalog user and their latest items."""

    id: str
    interactions: int
    recent: list[ItemRef]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorBody
