"""The catalog-facts explanation: what a mixed answer says when the model wrote nothing after
its item (shared people, genres, decade with the history or the focus item)."""

from __future__ import annotations

import random
import re
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

from neo_sdk.session._answer import ItemPart, Request, Segment, StreamEvent, TextPart
from neo_sdk.tasks import ITEM_MARKER, TemplateTeacher

if TYPE_CHECKING:
    from neo_sdk.session._neo import Neo


def explain_from_facts(neo: Neo, request: Request, history: Sequence[str],
                       segments: list[Segment]) -> Generator[StreamEvent, None, str | None]:
    """A mixed answer whose model text after the item is empty gets an explanation built
    from catalog facts only (shared people, genres, decade with the history or the focus
    item; the template teacher of training), appended to ``segments``. Returns who explained."""
    first = next((n for n, seg in enumerate(segments) if isinstance(seg, ItemPart)), None)
    if first is None or has_words(segments[first + 1 :]):
        return "model" if first is not None else None
    target = segments[first].item.id  # type: ignore[union-attr]
    basis = [request.focus] if request.task == "like_this" and request.focus else list(history)[-neo.max_history :]
    text = TemplateTeacher().explain(neo.facts, basis, target, random.Random(target))
    segments[first + 1 :] = [TextPart(text=" "), *render_marked(neo, text)]
    for seg in segments[first + 1 :]:
        if isinstance(seg, ItemPart):
            yield StreamEvent(text=seg.item.label(), item=seg.item)
        else:
            yield StreamEvent(text=seg.text)
    return "catalog facts"


def has_words(segments: Sequence[Segment]) -> bool:
    """Whether segments say anything: an item, or text with a word character."""
    return any(isinstance(s, ItemPart) or re.search(r"\w", s.text) for s in segments)


def render_marked(neo: Neo, text: str) -> list[Segment]:
    """Text with item markers as segments (each marker a cited item; no empty text)."""
    out: list[Segment] = []
    last = 0
    for match in ITEM_MARKER.finditer(text):
        if match.start() > last:
            out.append(TextPart(text=text[last : match.start()]))
        out.append(ItemPart(item=neo.item(match.group(1), role="cited")))
        last = match.end()
    if last < len(text):
        out.append(TextPart(text=text[last:]))
    return out
