"""Questions about a shown item and follow-ups on the list, through a real trained bundle: the
answers say what the catalog holds about that item, and a narrowing or "more" keeps its promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from neo_sdk import Neo
from neo_sdk.session import Answer


@pytest.fixture(scope="module")
def neo(trained_bundle: Path) -> Neo:
    runtime = Neo.load(trained_bundle)
    yield runtime
    runtime.close()


def _ids(answer: Answer) -> list[str]:
    return [i.id for i in answer.answer_items]


def test_questions_about_shown_items_answer_about_that_item(neo: Neo) -> None:
    session = neo.session(user="ben", persist=False)
    listed = _ids(session.ask("top 4 books for me"))
    assert len(listed) == 4
    why = session.ask("why would I like the second one?")
    assert (why.task, why.request.aspect, _ids(why)) == ("about", "why", [listed[1]])
    assert why.explained_by in ("model", "catalog facts") and len(why.text) > len(why.items[0].label())
    if why.explanation_check is not None:
        assert why.explanation_check["shown"] == why.explained_by and "faults" in why.explanation_check
    people = session.ask("who wrote the first one?")  # the list stays on screen: "first" is the list's
    assert (people.request.aspect, _ids(people)) == ("people", [listed[0]])
    authors = {dst for _, dst in neo.facts.forward[listed[0]]}
    cited = {i.id for i in people.items if i.role == "cited"}
    assert cited and cited <= authors and people.explained_by == "catalog facts"
    when = session.ask("is the third one from the 1960s?")
    year = neo.facts.year(listed[2])
    assert when.text.endswith(f"{'Yes' if 1960 <= year <= 1969 else 'No'}: it is from {year}.")
    facts = session.ask("what's #4 about?")
    assert _ids(facts) == [listed[3]] and str(neo.facts.year(listed[3])) in facts.text


def test_narrowing_and_more_keep_their_promise(neo: Neo) -> None:
    for user in ("ben", None):  # a catalog user and a visitor (the sample has 8 books)
        session = neo.session(user=user, persist=False, exclude_consumed=False)
        listed = _ids(session.ask("top 3 books"))
        assert len(listed) == 3
        assert _ids(session.ask("just the top two")) == listed[:2]
        assert _ids(session.ask("drop the second one")) == [listed[0]]
        more = session.ask("2 more")
        assert len(more.answer_items) == 2 and not set(_ids(more)) & set(listed), more.request.reasons
        again = session.ask("others")
        assert again.answer_items and not set(_ids(again)) & (set(listed) | set(_ids(more)))
        shown = _ids(again)
        old = [i for i in shown if (neo.facts.year(i) or 0) < 1970]
        narrowed = session.ask("only the ones from before 1970")
        assert _ids(narrowed) == old or (not old and not narrowed.answer_items), narrowed.request.reasons
