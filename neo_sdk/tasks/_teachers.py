"""Teachers write the text labels of stage 3: explanations, user profiles, similarity reasons.

* :class:`TemplateTeacher` (offline, the default) fills the ``teacher.*`` sentence patterns of the
  prompt files with facts from the catalog only: people, genres and decades the recommended item
  shares with the history. Deterministic given the random generator it is handed.
* :class:`LangChainTeacher` asks any LangChain chat model (given as an object or as
  ``"module:factory"``), giving it the grounded template label as its facts, and swaps item titles
  in the answer for item markers. Answers are cached in SQLite (:class:`~neo_sdk.tasks._chat.CachedChat`),
  so rebuilding the examples never calls the model twice for the same prompt.
  With a ``check`` (a :class:`LabelCheck`, e.g. ``neo_sdk.retrieval.GroundednessChecker``) a
  label is kept only when it makes at least one checkable claim, every claim is true and it has no
  form fault; any other label is replaced by the template's, which is true by construction.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from neo_sdk.tasks._chat import CachedChat
from neo_sdk.tasks._example import ITEM_MARKER, item_marker
from neo_sdk.tasks._facts import CatalogFacts
from neo_sdk.tasks._grounds import (
    ExplanationGrounds,
    ProfileGrounds,
    explanation_grounds,
    profile_grounds,
)
from neo_sdk.tasks._wording import capitalized, with_article

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class _Checked(Protocol):
    @property
    def checkable(self) -> int: ...

    @property
    def false(self) -> Sequence[Any]: ...

    @property
    def faults(self) -> Sequence[Any]: ...


class LabelCheck(Protocol):
    """Checks the claims of a label against the catalog (``GroundednessChecker`` is one)."""

    def check_explanation(
        self, text: str, item: str, *, focus: str | None = None, history: Sequence[str] = ()
    ) -> _Checked: ...

    def check_profile(self, text: str, history: Sequence[str]) -> _Checked: ...


@runtime_checkable
class Teacher(Protocol):
    """Writes text labels. ``history`` is oldest first; every method returns plain text in which
    items are mentioned only as markers ``[[item:ID]]``."""

    name: str

    def explain(
        self, facts: CatalogFacts, history: Sequence[str], target: str, rng: random.Random
    ) -> str: ...

    def profile(self, facts: CatalogFacts, history: Sequence[str], rng: random.Random) -> str: ...

    def similar(self, facts: CatalogFacts, anchor: str, item: str, rng: random.Random) -> str: ...


class TemplateTeacher:
    """Grounded labels from catalog facts and the ``teacher.*`` patterns in ``prompts/``.

    Example:
        >>> TemplateTeacher().explain(facts, ["movie:100"], "movie:50", random.Random(0))
        'Like [[item:100]], it is directed by ... .'
    """

    name = "template"

    def __init__(self, *, max_items: int = 2, max_genres: int = 2) -> None:
        self.max_items = max_items
        self.max_genres = max_genres

    def explain(
        self, facts: CatalogFacts, history: Sequence[str], target: str, rng: random.Random
    ) -> str:
        """One or two clauses about ``target``, each stating facts of its grounds only
        (:func:`explanation_grounds`): a person or genres shared with the history, the decade,
        the item's own people, genres and year. The most specific fact usually comes first."""
        return self.explain_grounds(facts, explanation_grounds(facts, history, target), rng)

    def explain_grounds(self, facts: CatalogFacts, grounds: ExplanationGrounds, rng: random.Random) -> str:
        """The sentence over ``grounds``: a fact shared with the basis first whenever there is one
        (what the answer has in common with the history or the focus item), then sometimes a
        second clause."""
        p, kind = facts.prompts, facts.type_of(grounds.target)
        options: list[tuple[str, str]] = []  # (what the clause states, the clause)
        for relation, person, items in grounds.shared_people[:1]:
            options.append(("person", p.render_teacher(
                "explain_person", rng, items=facts.markers(items), relation=facts.relation_words(relation),
                Relation=capitalized(facts.relation_words(relation)), name=facts.title(person),
                role=facts.role_word(relation))))
        for genres, items in grounds.shared_genres[:1]:
            if items:
                options.append(("genres", p.render_teacher(
                    "explain_genre", rng, items=facts.markers(items), type=kind, types=p.plural(kind),
                    **_genre_values(facts, genres[: self.max_genres]))))
        if grounds.decade and grounds.decade_items:
            options.append(("decade", p.render_teacher(
                "explain_decade", rng, items=facts.markers(grounds.decade_items), decade=grounds.decade)))
        shared = options[:]
        for relation, person in grounds.people[:1] if p.teacher.get("explain_own_person") else ():  # newer key
            options.append(("person", p.render_teacher(
                "explain_own_person", rng, relation=facts.relation_words(relation), name=facts.title(person),
                Relation=capitalized(facts.relation_words(relation)), role=facts.role_word(relation))))
        if grounds.genres and grounds.year:
            options.append(("genres", p.render_teacher(
                "explain_fallback", rng, year=grounds.year, type=kind, types=p.plural(kind),
                **_genre_values(facts, grounds.genres[:2]))))
        if not options:
            return p.render_teacher("explain_popular", rng, type=kind)
        # the most specific shared fact is the likeliest lead: a person, then category values, then a decade
        weights = [_LEAD_WEIGHT[what] for what, _ in shared]
        lead = rng.choices(shared, weights=weights)[0] if shared else rng.choice(options)
        chosen = [lead]
        others = [o for o in options if o[0] != lead[0]]  # a second clause states something else
        if others and rng.random() < 0.5:
            chosen.append(rng.choice(others))
        return _tidy(" ".join(text for _, text in chosen))

    def profile(self, facts: CatalogFacts, history: Sequence[str], rng: random.Random) -> str:
        """The history's recurring genres, decades and people (:func:`profile_grounds`)."""
        return self.profile_grounds(facts, profile_grounds(facts, history), rng)

    def profile_grounds(self, facts: CatalogFacts, grounds: ProfileGrounds, rng: random.Random) -> str:
        p = facts.prompts
        clauses: list[str] = []
        if grounds.genres:
            clauses.append(p.render_teacher("profile_genres", rng, types=p.plural(grounds.main_type),
                                            **_genre_values(facts, grounds.genres)))
        rest = []
        if grounds.decades:
            rest.append(p.render_teacher("profile_decades", rng, decades=facts.join(grounds.decades)))
        if grounds.names:
            rest.append(p.render_teacher("profile_people", rng,
                                         names=facts.join([facts.title(n) for n in grounds.names])))
        rng.shuffle(rest)
        clauses += [c for c in rest if not clauses or rng.random() < 0.8]
        if not clauses:
            clauses.append(p.render_teacher("profile_fallback", rng, types=p.plural(grounds.main_type)))
        return _tidy(" ".join(clauses))

    def similar(self, facts: CatalogFacts, anchor: str, item: str, rng: random.Random) -> str:
        p = facts.prompts
        shared = facts.shared(anchor, item)
        clauses: list[str] = []
        if shared["people"]:
            relation, person = shared["people"][0]
            clauses.append(p.render_teacher(
                "similar_person", rng, relation=facts.relation_words(relation),
                name=facts.title(person), role=facts.role_word(relation),
            ))
        if shared["genres"]:
            kind = facts.type_of(item)
            clauses.append(p.render_teacher("similar_genre", rng, type=kind, types=p.plural(kind),
                                            **_genre_values(facts, shared["genres"][: self.max_genres])))
        if shared["works"]:
            clauses.append(p.render_teacher(
                "similar_work", rng, items=facts.markers(shared["works"][: self.max_items])
            ))
        if not clauses and shared["decade"]:
            clauses.append(p.render_teacher("similar_decade", rng, decade=shared["decade"]))
        if not clauses:
            clauses.append(p.render_teacher("similar_cooccur", rng))
        return " ".join(clauses)


class LangChainTeacher:
    """Labels from a LangChain chat model, cached in SQLite.

    Args:
        model: a ``BaseChatModel``, or ``"module:factory"`` naming a function that returns one
            (what ``--teacher`` takes on the command line).
        cache: SQLite file of the model's replies (:class:`~neo_sdk.tasks._chat.CachedChat`);
            ``None``: in memory only.
        name: the model's name in the cache key (default: the factory spec or the class name).
            Change it when you change the model behind the same factory.
        check: keeps a label only when it has a checkable claim and every claim is true; the
            template's label replaces any other (``None``: every label is kept).

    Attributes:
        calls: how many times the model was actually called (cache misses).
        kept, replaced: labels the check kept, and labels it replaced by the template's.
    """

    def __init__(
        self, model: BaseChatModel | str, *, cache: str | Path | None = None, name: str | None = None,
        check: LabelCheck | None = None,
    ) -> None:
        self.chat = CachedChat(model, role="teacher", cache=cache, name=name)
        self.model, self.name = self.chat.model, self.chat.name
        self.check = check
        self.kept = self.replaced = 0
        self._grounding = TemplateTeacher()

    @property
    def calls(self) -> int:
        return self.chat.calls

    def close(self) -> None:
        self.chat.close()

    def explain(
        self, facts: CatalogFacts, history: Sequence[str], target: str, rng: random.Random
    ) -> str:
        grounded = _facts_of(explanation_grounds(facts, history, target).line(facts))  # deterministic: cacheable
        shown = list(history)[-10:]
        prompt = facts.prompts.render_teacher(
            "llm_explain", history="; ".join(facts.label(h) for h in shown),
            target=facts.label(target), facts=_titled(facts, grounded),
        )
        label = _markered(facts, self.ask(facts, prompt), [*shown, target])
        return self._checked(label, lambda c: c.check_explanation(label, target, history=list(history)),
                             lambda: self._grounding.explain(facts, history, target, rng))

    def profile(self, facts: CatalogFacts, history: Sequence[str], rng: random.Random) -> str:
        grounded = _titled(facts, _facts_of(profile_grounds(facts, history).line(facts)))
        shown = list(history)[-10:]
        prompt = facts.prompts.render_teacher(
            "llm_profile", history="; ".join(facts.label(h) for h in shown), facts=grounded
        )
        label = _markered(facts, self.ask(facts, prompt), shown)
        return self._checked(label, lambda c: c.check_profile(label, list(history)),
                             lambda: self._grounding.profile(facts, history, rng))

    def similar(self, facts: CatalogFacts, anchor: str, item: str, rng: random.Random) -> str:
        grounded = self._grounding.similar(facts, anchor, item, rng)
        prompt = facts.prompts.render_teacher(
            "llm_similar", item=facts.label(anchor), similar=facts.label(item), facts=grounded
        )
        label = _markered(facts, self.ask(facts, prompt), [anchor, item])
        return self._checked(label, lambda c: c.check_explanation(label, item, focus=anchor),
                             lambda: grounded)

    def _checked(self, label: str, claims: Callable[[LabelCheck], _Checked], template: Callable[[], str]) -> str:
        """``label`` when there is no check or it passes, else the template's label."""
        if self.check is None:
            return label
        found = claims(self.check)
        if found.checkable and not found.false and not found.faults:
            self.kept += 1
            return label
        self.replaced += 1
        return template()

    def ask(self, facts: CatalogFacts, prompt: str) -> str:
        """The model's one-line answer to ``prompt`` (from the cache when asked before)."""
        system = facts.prompts.render_teacher("llm_system") if facts.prompts.teacher.get("llm_system") else ""
        return " ".join(self.chat.ask(system, prompt).split())


_LEAD_WEIGHT = {"person": 3, "genres": 2, "decade": 1}


def _tidy(text: str) -> str:
    """Sentences as written: each starts with a capital (a pattern may start with a category
    word), no doubled full stop after a name ending in one ("Jr..")."""
    text = re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def _genre_values(facts: CatalogFacts, genres: Sequence[str]) -> dict[str, str]:
    """A pattern's category words: ``genres`` (``action and drama``), ``a_genres`` (``an action and
    drama``) and ``A_genres`` (the same at a sentence start)."""
    words = facts.category_words(genres)
    return {"genres": words, "a_genres": with_article(words), "A_genres": capitalized(with_article(words))}


def _facts_of(line: str) -> str:
    """A grounds line without its label (``Facts: a; b.`` -> ``a; b.``)."""
    return line.split(": ", 1)[1] if ": " in line else line


def _titled(facts: CatalogFacts, text: str) -> str:
    """Markers replaced by titles (what a text-only model reads)."""
    return ITEM_MARKER.sub(lambda m: facts.title(m.group(1)) if m.group(1) in facts.items
                           else m.group(0), text)


def _markered(facts: CatalogFacts, text: str, item_ids: Sequence[str]) -> str:
    """Titles of ``item_ids`` in a model's answer replaced by their markers (longest title first)."""
    for item_id in sorted(set(item_ids), key=lambda i: -len(facts.title(i))):
        title = facts.title(item_id)
        if len(title) >= 3 and title in text:
            text = text.replace(title, item_marker(item_id))
    return text
