"""Answers to a question about one item (task ``about``): "why would I like the second one?",
"who is in the first one?", "is that one from the 90s?", "what's #3 about?".

The item is the answer (it is the focus the question named); what is said about it depends on
the question's aspect:

* ``why``: the model's explanation from the item's grounds and the user's history, written and
  checked as a mixed answer's is (:func:`~neo_sdk.session._grounded.explain_grounded`);
* ``facts``: the item's catalog facts (type, category values, year, people, the first sentence of
  its description field when it has one), then the same "why";
* ``people``: its related items from the catalog, each a cited item ("directed by X; starring Y"),
  only the relations the question names when it names one ("who directed it?");
* ``when``: its year, and "yes"/"no" when the question states years ("is that one from the 90s?").

Facts come from the catalog only, so an answer never states anything the catalog does not hold.
"""

from __future__ import annotations

import random
import re
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from neo_sdk.session._answer import ItemPart, ItemRef, Request, Segment, StreamEvent, TextPart
from neo_sdk.session._fallback import render_marked
from neo_sdk.session._grounded import events, explain_grounded
from neo_sdk.tasks import TemplateTeacher, capitalized, explanation_grounds, with_article

if TYPE_CHECKING:
    from neo_sdk.session._decode import Responder

MAX_NAMES = 4  # related items listed per relation
DESCRIPTION_FIELDS = ("description", "summary", "overview", "plot", "synopsis")  # what "what's it about?" quotes


def answer_about(responder: Responder, request: Request, history: Sequence[str], user: str | None,
                 max_new_tokens: int, usage: dict[str, int],
                 ) -> Generator[StreamEvent, None, tuple[list[Segment], str | None, dict[str, Any] | None]]:
    """The answer's segments, who wrote its text, and what the check found (module docs)."""
    neo = responder.neo
    assert request.focus is not None
    item = neo.item(request.focus)
    if request.aspect == "people":
        return (yield from _catalog_answer(item, people_segments(responder, item, request.text))), "catalog facts", None
    if request.aspect == "when":
        return (yield from _catalog_answer(item, [TextPart(text=" " + when_text(responder, item, request))])), \
            "catalog facts", None
    lead = [TextPart(text=" " + facts_text(responder, item) + ".")] if request.aspect == "facts" else []
    if not responder.grounded or not history:  # nothing the model could tie the item to: catalog facts
        grounds = explanation_grounds(neo.facts, list(history)[-neo.max_history:], item.id)
        text = TemplateTeacher().explain_grounds(neo.facts, grounds, random.Random(item.id))
        return (yield from _catalog_answer(item, [*lead, TextPart(text=" "), *render_marked(neo, text)])), \
            "catalog facts", None
    prompt = neo.encoder.prompt_ids(neo.prompt_text(request, history, user))
    usage["prompt"] = len(prompt)
    segments, by, check = yield from explain_grounded(responder, prompt, request, None, history, max_new_tokens,
                                                      usage, item=item, lead=lead)
    return segments, by, check


def _catalog_answer(item: ItemRef, said: list[Segment]) -> Generator[StreamEvent, None, list[Segment]]:
    yield StreamEvent(text=item.label(), item=item)
    yield from events(said)
    return [ItemPart(item=item), *said]


def people_segments(responder: Responder, item: ItemRef, question: str) -> list[Segment]:
    """``: directed by X; starring A, B and C.`` (cited items), the relations the question names
    when it names one (by a word of the relation or its role: "directed", "director", "stars")."""
    neo = responder.neo
    facts = neo.facts
    linked: dict[tuple[str, bool], list[str]] = {}  # (relation, the item is its source) -> the other items
    for relation, other in facts.forward.get(item.id, []):
        linked.setdefault((relation, True), []).append(other)
    for relation, source in facts.reverse.get(item.id, []):  # a person: the items linked to it
        linked.setdefault((relation, False), []).append(source)
    asked = [key for key in linked if _names_relation(question, facts.relation_words(key[0]), facts.role_word(key[0]))]
    chosen = asked or list(linked)
    if not chosen:
        return [TextPart(text=": the catalog links no other item to it.")]
    conjunction = neo.prompts.word("misc", "and", "and")
    out: list[Segment] = [TextPart(text=": ")]
    for n, (relation, outgoing) in enumerate(chosen):
        words = facts.relation_words(relation) if outgoing else f"{facts.role_word(relation)} of"
        out.append(TextPart(text=("; " if n else "") + words + " "))
        names = list(dict.fromkeys(linked[(relation, outgoing)]))[:MAX_NAMES]
        for m, other in enumerate(names):
            if m:
                out.append(TextPart(text=f" {conjunction} " if m == len(names) - 1 else ", "))
            out.append(ItemPart(item=neo.item(other, role="cited")))
    out.append(TextPart(text="."))
    return out


def when_text(responder: Responder, item: ItemRef, request: Request) -> str:
    """``It is from 1996.``, or ``Yes: it is from 1996.`` when the question states years."""
    year = responder.neo.facts.year(item.id)
    if year is None:
        return "The catalog gives no year for it."
    said = f"it is from {year}."
    if request.dated:
        low, high = request.year_range
        return f"{'Yes' if low <= year <= high else 'No'}: {said}"
    return capitalized(said)


def facts_text(responder: Responder, item: ItemRef) -> str:
    """``A drama and war movie from 1993, directed by Steven Spielberg`` (catalog facts only)."""
    facts = responder.neo.facts
    kind = facts.type_of(item.id)
    genres = facts.genres(item.id)[:3]
    phrase = with_article(f"{facts.category_words(genres)} {kind}" if genres else kind)
    year = facts.year(item.id)
    parts = [capitalized(phrase) + (f" from {year}" if year else "")]
    for relation, other in facts.forward.get(item.id, [])[:2]:
        parts.append(f"{facts.relation_words(relation)} {facts.title(other)}")
    text = ", ".join(parts)
    fields = facts.items[item.id].fields
    about = next((str(fields[f]) for f in DESCRIPTION_FIELDS if isinstance(fields.get(f), str) and fields[f].strip()), "")
    if about:  # the catalog's own words: its first sentence
        text += ". " + capitalized(re.split(r"(?<=[.!?])\s", about.strip(), maxsplit=1)[0].rstrip(".!?"))
    return text


def _names_relation(question: str, relation_words: str, role: str) -> bool:
    """Whether the question names a relation: a word sharing its first four letters with the
    relation's words or its role ("directed"/"director" ~ "directed by")."""
    stems = {w[:4] for w in re.findall(r"[a-z]+", f"{relation_words} {role}".lower()) if len(w) > 3}
    return any(w[:4] in stems for w in re.findall(r"[a-z]+", question.lower()) if len(w) > 3)
