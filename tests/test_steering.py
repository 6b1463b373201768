"""Steering resolution: words and explicit arguments -> task, type, format, k, focus, filters."""

from __future__ import annotations

import pytest

from neo_sdk.errors import ConfigError, UnknownItemError
from neo_sdk.session import (
    DialogueState,
    Request,
    SteeringVocabulary,
    normalize_title,
    resolve,
)

ITEMS = {
    "movie:1": ("movie", "Usual Suspects, The (1995)", 1995),
    "movie:2": ("movie", "Toy Story (1995)", 1995),
    "movie:3": ("movie", "Heat (1995)", 1995),
    "movie:4": ("movie", "Alien (1979)", 1979),
    "person:a": ("person", "Sigourney Weaver", None),
}


def type_of(item_id: str) -> str:
    if item_id not in ITEMS:
        raise UnknownItemError(item_id)
    return ITEMS[item_id][0]


VOCAB = SteeringVocabulary(
    types=["movie", "person"],
    default_type="movie",
    type_words={"movie": "movie", "movies": "movie", "films": "movie", "person": "person", "people": "person",
                "actor": "person", "actors": "person", "directors": "person"},
    titles={normalize_title(title): item for item, (_, title, _) in ITEMS.items()},
    genres={"comedy", "crime", "science fiction", "horror"},
    type_of=type_of,
    formats={"next_item": ["ids"], "search": ["ids"], "explain": ["mixed"], "profile": ["text"],
             "like_this": ["ids", "mixed"]},
)
HISTORY = ["movie:4", "movie:3"]


def ask(text: str, state: DialogueState | None = None, **kw) -> Request:
    return resolve(text, VOCAB, state or DialogueState(focus="movie:3", history=HISTORY), **kw)


def after(request: Request, items: list[str], turn: int = 0) -> DialogueState:
    return DialogueState(last=request, last_turn=turn, last_items=items, focus=items[0] if items else None,
                         history=HISTORY)


def test_titles_normalise_articles_years_and_accents() -> None:
    assert normalize_title("Usual Suspects, The (1995)") == "the usual suspects"
    assert normalize_title("Amélie (2001)") == "amelie"
    assert VOCAB.find_title("the usual suspects please") == "movie:1"
    assert VOCAB.find_title("usual suspects") == "movie:1"
    assert VOCAB.find_title("nothing of the sort") is None


@pytest.mark.parametrize(
    ("text", "task", "fmt"),
    [
        ("recommend me something", "next_item", "ids"),
        ("what should I watch next?", "next_item", "ids"),
        ("recommend a movie and explain why", "explain", "mixed"),
        ("movies like this", "like_this", "ids"),
        ("movies like this, explain why", "like_this", "mixed"),
        ("anything similar?", "like_this", "ids"),
        ("describe my taste", "profile", "text"),
        ("what do I like?", "profile", "text"),
        ("find 90s crime movies", "search", "ids"),
        ("comedy films", "search", "ids"),
        ("hello", "next_item", "ids"),
    ],
)
def test_task_and_format_from_words(text: str, task: str, fmt: str) -> None:
    request = ask(text)
    assert (request.task, request.format) == (task, fmt), request.reasons


def test_like_this_refers_to_the_focus_and_keeps_its_type() -> None:
    request = ask("more like this")
    assert request.focus == "movie:3" and request.entity_type == "movie"


def test_like_a_title_names_the_item() -> None:
    request = ask("something like The Usual Suspects")
    assert request.task == "like_this" and request.focus == "movie:1"


def test_type_words_and_role_words() -> None:
    assert ask("recommend some actors").entity_type == "person"
    assert ask("people like this").entity_type == "person"
    assert ask("recommend something").entity_type == "movie"  # the history's main type


def test_k_from_words_and_defaults() -> None:
    assert ask("top 5 movies for me").k == 5
    assert ask("recommend three movies").k == 3
    assert ask("recommend movies").k == 10
    assert ask("movies like this, explain why").k == 1
    assert ask("find 90s crime movies").k == 10  # "90s" is a decade, not a count


def test_years_from_decades_and_bounds() -> None:
    assert (ask("find 90s crime movies").year_min, ask("find 90s crime movies").year_max) == (1990, 1999)
    r = ask("find comedy from the 1980s")
    assert (r.year_min, r.year_max) == (1980, 1989)
    r = ask("find horror movies before 1980")
    assert (r.year_min, r.year_max) == (None, 1979)
    r = ask("find horror movies after 2000")
    assert (r.year_min, r.year_max) == (2001, None)
    assert ask("find crime movies from the 00s").year_min == 2000


def test_search_query_keeps_the_description_and_writes_decades_out() -> None:
    assert ask("can you find me 90s crime movies please").query == "1990s crime"
    assert ask("search movies directed by Tim Burton").query == "directed by tim burton"


def test_explicit_arguments_win() -> None:
    request = ask("movies like this, explain why", task="next_item", entity_type="person", format="ids", k=3,
                  filters={"year_min": 1990, "exclude": ["movie:2"]})
    assert (request.task, request.entity_type, request.format, request.k) == ("next_item", "person", "ids", 3)
    assert request.year_min == 1990 and request.exclude == ("movie:2",)


def test_explicit_mistakes_are_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="unknown entity type 'song'"):
        ask("hi", entity_type="song")
    with pytest.raises(ConfigError, match="unknown task"):
        ask("hi", task="dance")
    with pytest.raises(ConfigError, match="task profile answers in text"):
        ask("describe my taste", format="ids")
    with pytest.raises(ConfigError, match="unknown filter"):
        ask("hi", filters={"genre": "crime"})
    with pytest.raises(ConfigError, match="year_min must be an integer"):
        ask("hi", filters={"year_min": "1990"})
    with pytest.raises(UnknownItemError):
        ask("hi", filters={"exclude": ["movie:404"]})
    with pytest.raises(ConfigError, match="k must be between"):
        ask("hi", k=0)


def test_follow_up_ordinal_reference() -> None:
    first = ask("movies like this")
    follow = ask("more like the second one", after(first, ["movie:1", "movie:2", "movie:4"]))
    assert follow.task == "like_this" and follow.focus == "movie:2"
    assert ask("like #3", after(first, ["movie:1", "movie:2", "movie:4"])).focus == "movie:4"
    assert ask("more like the last one", after(first, ["movie:1", "movie:2", "movie:4"])).focus == "movie:4"


def test_follow_up_filter_refines_the_previous_request() -> None:
    first = ask("find crime movies", k=5)
    follow = ask("only from the 90s", after(first, ["movie:1", "movie:3"], turn=4))
    assert follow.task == "search" and follow.query == f"1990s {first.query}" and follow.k == 5
    assert (follow.year_min, follow.year_max) == (1990, 1999) and follow.refines == 4


def test_follow_up_negation_excludes_the_focus_and_keeps_the_task() -> None:
    first = ask("movies like this")
    follow = ask("not that one", after(first, ["movie:1", "movie:2"]))
    assert follow.task == "like_this" and "movie:1" in follow.exclude and follow.focus == "movie:3"
    follow2 = ask("not the second one", after(first, ["movie:1", "movie:2"]))
    assert "movie:2" in follow2.exclude


def test_follow_up_type_switch() -> None:
    first = ask("movies like this")
    follow = ask("now people instead", after(first, ["movie:1"]))
    assert follow.task == "like_this" and follow.entity_type == "person" and follow.focus == "movie:3"


def test_new_request_does_not_inherit() -> None:
    first = ask("find crime movies", filters={"year_min": 1990})
    fresh = ask("describe my taste", after(first, ["movie:1"]))
    assert fresh.task == "profile" and fresh.refines is None and fresh.year_min is None


def test_like_this_without_any_item_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="needs an item"):
        resolve("movies like this", VOCAB, DialogueState())


# ------------------------------------------------------------------ questions about one item, follow-ups
LIST = ["movie:2", "movie:3", "movie:4", "movie:1"]


def listed(k: int = 4) -> DialogueState:
    request = ask(f"top {k} movies")
    state = after(request, LIST[:k])
    state.shown = LIST[:k]
    return state


@pytest.mark.parametrize(("text", "aspect", "focus"), [
    ("why would I like the second one?", "why", "movie:3"),
    ("Why would I like this one?", "why", "movie:2"),
    ("why?", "why", "movie:2"),
    ("explain #3", "why", "movie:4"),
    ("what makes the last one a good pick", "why", "movie:1"),
    ("what's #3 about?", "facts", "movie:4"),
    ("tell me more about the first one", "facts", "movie:2"),
    ("what kind of movie is number 2?", "facts", "movie:3"),
    ("who is in the first one?", "people", "movie:2"),
    ("who directed the third one", "people", "movie:4"),
    ("and who stars in it?", "people", "movie:2"),
    ("is that one from the 90s?", "when", "movie:2"),
    ("when was the fourth one made?", "when", "movie:1"),
    ("what year is #2 from", "when", "movie:3"),
    ("why would I like Alien?", "why", "movie:4"),
    ("tell me about heat", "facts", "movie:3"),
])
def test_a_question_about_a_shown_item(text: str, aspect: str, focus: str) -> None:
    request = ask(text, listed())
    assert (request.task, request.aspect, request.focus, request.format) == ("about", aspect, focus, "mixed"), \
        request.reasons
    assert request.entity_type == "movie" and any(r.startswith("question:") for r in request.reasons)


@pytest.mark.parametrize("text", ["more like the second one", "movies like this, explain why",
                                  "recommend a movie and explain why", "describe my taste", "find movies about space"])
def test_recommendations_with_reasons_are_not_questions_about_an_item(text: str) -> None:
    assert ask(text, listed()).task != "about"


def test_a_question_names_its_years_and_needs_an_item() -> None:
    request = ask("is the second one from the nineties?", listed())
    assert (request.aspect, request.year_min, request.year_max) == ("when", 1990, 1999)
    with pytest.raises(ConfigError, match="needs one"):
        resolve("why?", VOCAB, DialogueState(), task="about")
    assert ask("hello", listed(), task="about").focus == "movie:2"  # the argument: the list's first item


@pytest.mark.parametrize(("text", "years"), [
    ("from the nineties", (1990, 1999)), ("the 1990's", (1990, 1999)), ("'80s", (1980, 1989)),
    ("early 2000s", (2000, 2003)), ("mid 90s", (1993, 1996)), ("late 80s", (1986, 1989)),
    ("the seventies", (1970, 1979)), ("the noughties", (2000, 2009)), ("late-1960s", (1966, 1969)),
])
def test_decades_and_eras_in_words(text: str, years: tuple[int, int]) -> None:
    request = ask(f"comedy films {text}")
    assert (request.year_min, request.year_max) == years, request.reasons


@pytest.mark.parametrize(("text", "k"), [("5 more", 5), ("show me 3 more", 3), ("more", 4), ("others please", 4),
                                          ("two more movies", 2), ("give me something else", 4)])
def test_more_never_repeats_what_the_session_showed(text: str, k: int) -> None:
    state = listed()
    state.shown = [*LIST, "person:a"]
    request = ask(text, state)
    assert request.task == "next_item" and request.k == k and not request.within, request.reasons
    assert set(state.shown) <= set(request.exclude)
    assert any(r.startswith("more:") for r in request.reasons)


@pytest.mark.parametrize(("text", "within", "k"), [
    ("just the top two", LIST, 2), ("only the first 3", LIST, 3), ("keep the top 1", LIST, 1),
    ("drop the third one", ["movie:2", "movie:3", "movie:1"], 3), ("remove #1", LIST[1:], 3),
    ("only the ones from the 90s", LIST, 4), ("which of them are from the 1970s?", LIST, 4),
])
def test_narrowing_the_last_list(text: str, within: list[str], k: int) -> None:
    request = ask(text, listed())
    assert list(request.within) == within and request.k == k, request.reasons
    assert any(r.startswith("narrows turn") for r in request.reasons)


def test_a_new_list_is_not_a_narrowing() -> None:
    assert not ask("only from the 90s", listed()).within  # a refinement asks again
    assert not ask("top 20", listed()).within  # more than was shown
    assert not ask("top 3 movies for me", listed()).within  # a new request


def test_an_elliptic_question_about_a_listed_item() -> None:
    """ "what about #3?" right after a list asks about that item; after a question, it carries the aspect on."""
    assert (ask("what about #3?", listed()).task, ask("what about #3?", listed()).aspect) == ("about", "facts")
    state = listed()
    state.last_aspect = "people"
    request = ask("and the second one?", state)
    assert (request.task, request.aspect, request.focus) == ("about", "people", "movie:3")
