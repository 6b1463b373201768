"""What ``Session.ask`` returns: text with real catalog items, and how the request was read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from neo_sdk._names import TASKS, Task
from neo_sdk._names import OutputFormat as Format

__all__ = ["TASKS", "Answer", "Aspect", "Decoded", "Format", "ItemCard", "ItemPart", "ItemRef", "Link", "Request", "Segment",
           "Steering", "StreamEvent", "Task", "TextPart"]


class Steering(TypedDict, total=False):
    """Explicit steering of one request (each overrides what the words say).

    * ``task``: ``next_item``, ``search``, ``explain``, ``profile``, ``like_this`` or ``about``
      (a question about one item, e.g. "why would I like the second one?");
    * ``entity_type``: the type of items to return (e.g. ``movie``, ``person``);
    * ``format``: ``ids`` (a ranked list), ``mixed`` (item + explanation) or ``text``;
    * ``k``: number of items of an ``ids`` answer;
    * ``filters``: ``year_min``, ``year_max`` (ints), ``exclude`` (item ids), ``categories``
      (category values every answer has) and ``related`` (item ids every answer is linked to).
    """

    task: str | None
    entity_type: str | None
    format: str | None
    k: int | None
    filters: dict[str, Any] | None


class ItemRef(BaseModel):
    """A catalog item named in an answer (it exists: constrained decoding guarantees it)."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    title: str
    sid: str = Field(description="the item's Semantic ID as code tokens, e.g. <|movie_0_3|><|movie_1_7|>")
    score: float | None = Field(default=None, description="log-probability of the item's SID given the prompt")
    role: Literal["answer", "cited"] = Field(
        default="answer", description="answer: what was asked for; cited: named inside an explanation"
    )
    year: int | None = None
    new: bool = Field(
        default=False, description="added to the catalog after the bundle was trained (`neo sids assign`):"
        " served by its SID without retraining; the model never saw it in training")

    def label(self) -> str:
        return f"{self.title} ({self.year})" if self.year and str(self.year) not in self.title else self.title


class Link(BaseModel):
    """An item related to another through a catalog relation, as a card shows it."""

    model_config = ConfigDict(frozen=True)

    relation: str = Field(description="the catalog relation, e.g. directed_by")
    words: str = Field(description="the relation in words, read from the item it is shown on: 'directed by' for"
                       " a link out of it, the role ('director') for a link into it")
    direction: Literal["out", "in"]
    id: str
    type: str
    title: str


class ItemCard(ItemRef):
    """An item with what a person looks at: its category values and related items (``Neo.card``)."""

    categories: list[str] = Field(default_factory=list, description="values of the type's category field")
    related: list[Link] = Field(default_factory=list, description="linked items, links out of the item first")
    active: bool = Field(default=True, description="inactive items are never recommended")


class TextPart(BaseModel):
    """Free text between item references."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["text"] = "text"
    text: str


class ItemPart(BaseModel):
    """An item reference, in the order the model produced it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["item"] = "item"
    item: ItemRef


Segment = Annotated[TextPart | ItemPart, Field(discriminator="kind")]


Aspect = Literal["why", "people", "when", "facts"]
"""What a question about one item asks (task ``about``)."""


class Request(BaseModel):
    """A request after steering resolution: what the session actually runs (all fields explicit)."""

    model_config = ConfigDict(frozen=True)

    text: str
    task: Task
    entity_type: str
    format: Format
    k: int = Field(ge=1, le=100)
    focus: str | None = Field(default=None, description="the item 'this' refers to (like_this)")
    query: str | None = Field(default=None, description="search words (search)")
    year_min: int | None = None
    year_max: int | None = None
    categories: tuple[str, ...] = Field(default=(), description="category values every answer has (stated"
                                        " in the words, e.g. 'comedies', or given in filters)")
    related: tuple[tuple[str | None, str], ...] = Field(
        default=(), description="(relation, item id) links every answer has, e.g. ('stars', 'person:31');"
        " relation None: any relation ('with X', 'by Y')")
    exclude: tuple[str, ...] = Field(default=(), description="items excluded by the request itself")
    refines: int | None = Field(default=None, description="turn index this request refines, if any")
    aspect: Aspect | None = Field(
        default=None, description="about: what the question asks of the focus item: why (it fits this user),"
        " people (its related items, e.g. its cast), when (its year, or whether it is from the years stated),"
        " facts (what it is)")
    within: tuple[str, ...] = Field(
        default=(), description="a narrowing of the previous answer ('just the top two', 'only the comedies',"
        " 'drop the third one'): the answer is these items, in this order, kept by the request's filters")
    reasons: tuple[str, ...] = Field(default=(), description="which words decided what (for debugging)")

    @property
    def dated(self) -> bool:
        """Whether the request bounds the items' years."""
        return self.year_min is not None or self.year_max is not None

    @property
    def year_range(self) -> tuple[int, int]:
        """The years the request allows, an open end as a far bound."""
        return (self.year_min if self.year_min is not None else -(10**9),
                self.year_max if self.year_max is not None else 10**9)

    @property
    def states_facts(self) -> bool:
        """Whether the request states facts every answer has: years, category values or related items."""
        return self.dated or bool(self.categories or self.related)


class Answer(BaseModel):
    """A session's reply. ``str(answer)`` reads well in a terminal; ``answer.items`` are real items."""

    text: str
    segments: list[Segment]
    items: list[ItemRef]
    task: Task
    entity_type: str
    format: Format
    request: Request
    session_id: str
    turn: int
    explained_by: Literal["model", "catalog facts"] | None = Field(
        default=None, description="mixed answers and profiles: who wrote the text shown (the model, or a template"
        " filled with catalog facts when the model gave none or stated something false)")
    timings: dict[str, float] = Field(default_factory=dict, description="milliseconds per phase")
    usage: dict[str, int] = Field(
        default_factory=dict, description="tokens the model read (prompt_tokens: the prompt) and decoded"
        " (completion_tokens: SID spans and generated text; a catalog-facts explanation costs none)")
    truncated: bool = Field(default=False, description="the text stopped at the token cap (max_new_tokens)")
    explanation_check: dict[str, Any] | None = Field(
        default=None, description="explanations and profiles the model wrote: claims found, true, the reasons of"
        " false ones, which text was shown (model or catalog facts) and, when replaced, the model's text")

    @property
    def answer_items(self) -> list[ItemRef]:
        """The items that answer the request (not those cited inside an explanation)."""
        return [i for i in self.items if i.role == "answer"]

    def __str__(self) -> str:
        head = f"[{self.task} · {self.entity_type} · {self.format}]"
        if self.format == "ids":
            lines = [f"{n:>2}. {item.label()}  ({item.id}{', new' if item.new else ''})"
                     for n, item in enumerate(self.items, 1)]
            return "\n".join([head, *lines]) if lines else f"{head} no matching item"
        return f"{head} {self.text}"

    def summary(self) -> dict[str, Any]:
        """A compact, JSON-friendly view (used in chat message metadata)."""
        return {
            "task": self.task, "entity_type": self.entity_type, "format": self.format,
            "session_id": self.session_id, "turn": self.turn, "focus": self.request.focus,
        }


@dataclass
class Decoded:
    """What decoding one request produced: the answer's segments, timings (ms), explanation
    source, and the tokens the model read (prompt) and decoded (completion)."""

    segments: list[Segment]
    timings: dict[str, float]
    explained_by: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False  # generation stopped at its token cap, not at its end token
    check: dict[str, Any] | None = None  # what the claim checker found in the model's explanation or profile


class StreamEvent:
    """One piece of a streamed answer: ``text`` to append, and the ``item`` when a span completed.

    The final event has ``answer`` set (the complete :class:`Answer`) and empty ``text``.
    Concatenating every event's ``text`` gives ``answer.text``.
    """

    __slots__ = ("answer", "item", "text")

    def __init__(self, text: str = "", item: ItemRef | None = None, answer: Answer | None = None) -> None:
        self.text, self.item, self.answer = text, item, answer

    def __repr__(self) -> str:
        return f"StreamEvent(text={self.text!r}, item={self.item.id if self.item else None})"
