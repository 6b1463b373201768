"""Groundedness of explanations and profiles: claims read with the catalog's vocabulary and checked
against its facts, on a tiny movie catalog, the books sample catalog and a podcast catalog."""

from __future__ import annotations

import random

import pytest

from neo_sdk import Catalog, Item, Relation
from neo_sdk.prompts import load_prompts
from neo_sdk.retrieval import Claim, GroundednessChecker, Grounding
from neo_sdk.tasks import CatalogFacts, TemplateTeacher

HANKS_FILMS = ["m1", "m3", "m5", "m6"]  # the history of the profile tests


def _movies() -> Catalog:
    catalog = Catalog(":memory:")
    catalog.declare_type("movie", ["title", "genres", "year"])
    catalog.declare_type("person", ["title"])
    films = [("m1", "Forrest Gump", ["Comedy", "Drama", "Romance"], 1994),
             ("m2", "Independence Day", ["Action", "Sci-Fi", "War"], 1996),
             ("m3", "Apollo 13", ["Drama", "Adventure"], 1995),
             ("m4", "Back to the Future", ["Comedy", "Sci-Fi"], 1985),
             ("m5", "Cast Away", ["Drama"], 2000),
             ("m6", "Splash", ["Comedy", "Romance"], 1984)]
    people = [("p1", "Tom Hanks"), ("p2", "Robert Zemeckis"), ("p3", "Ron Howard"), ("p4", "Roland Emmerich")]
    catalog.add_items([Item(i, "movie", t, {"genres": g, "year": y}) for i, t, g, y in films]
                      + [Item(i, "person", name) for i, name in people])
    links = {"m1": ("p2", ["p1"]), "m2": ("p4", []), "m3": ("p3", ["p1"]), "m4": ("p2", []),
             "m5": ("p2", ["p1"]), "m6": ("p3", ["p1"])}
    catalog.add_relations([Relation(m, "directed_by", d) for m, (d, _) in links.items()]
                          + [Relation(m, "stars", s) for m, (_, stars) in links.items() for s in stars])
    return catalog


def _podcasts() -> Catalog:
    catalog = Catalog(":memory:")
    catalog.declare_type("show", ["title", "topics", "published"])
    catalog.declare_type("host", ["title"])
    catalog.add_items([
        Item("s1", "show", "Night Jazz Hour", {"topics": ["Jazz", "Music History"], "published": "2019-05-01"}),
        Item("s2", "show", "Star Notes", {"topics": ["Astronomy", "Science"], "published": "2015-02-03"}),
        Item("s3", "show", "Deep Sky Club", {"topics": ["Astronomy"], "published": "2021-09-09"}),
        Item("s4", "show", "Bebop Talks", {"topics": ["Jazz"], "published": "2012-01-01"}),
        Item("h1", "host", "Ada Park"), Item("h2", "host", "Ben Ortiz"),
    ])
    catalog.add_relations([Relation("s1", "hosted_by", "h1"), Relation("s2", "hosted_by", "h2"),
                           Relation("s3", "hosted_by", "h1"), Relation("s4", "hosted_by", "h2")])
    return catalog


@pytest.fixture(scope="module")
def movies() -> GroundednessChecker:
    return GroundednessChecker(CatalogFacts(_movies(), load_prompts()))


@pytest.fixture
def books(sample_catalog: Catalog) -> GroundednessChecker:
    return GroundednessChecker(CatalogFacts(sample_catalog, load_prompts()))


def _kinds(grounding: Grounding) -> list[tuple[str, str | int, bool]]:
    return [(c.kind, c.value, c.holds) for c in grounding.claims]


# ------------------------------------------------------------------ explanations: categories
def test_a_category_holds_when_the_item_has_it_and_is_false_with_a_reason_otherwise(
        movies: GroundednessChecker) -> None:
    right = movies.check_explanation("Also Drama.", "m1")
    assert right.claims == [Claim("category", "Drama", "Drama", "item", True, "")]
    wrong = movies.check_explanation("Also Drama.", "m2")
    assert (wrong.checkable, len(wrong.true), len(wrong.false), wrong.all_true) == (1, 0, 1, False)
    assert wrong.false[0].reason == "'Independence Day (1996)' is not Drama (its genres: Action, Sci-Fi, War)"


def test_word_forms_and_spelled_decades_are_read(movies: GroundednessChecker) -> None:
    found = movies.check_explanation("Sci-fi comedies from the '80s, like the eighties classics.", "m4")
    assert _kinds(found) == [("category", "Sci-Fi", True), ("category", "Comedy", True),
                             ("decade", "1980s", True), ("decade", "1980s", True)]
    assert [c.text for c in found.claims] == ["Sci-fi", "comedies", "80s", "eighties"]
    assert _kinds(movies.check_explanation("A 1990's war film, from 1996's summer.", "m2")) == [
        ("decade", "1990s", True), ("category", "War", True), ("year", 1996, True)]


def test_free_phrasing_states_nothing_checkable(movies: GroundednessChecker) -> None:
    found = movies.check_explanation("A warm, funny story you will love tonight.", "m2", history=["m1"])
    assert (found.claims, found.checkable, found.all_true) == ([], 0, True)
    assert movies.check_explanation("Like Splash, a story of love.", "m1", history=["m3"]).checkable == 0  # unknown title


def test_a_category_right_before_a_cited_item_is_about_that_item(movies: GroundednessChecker) -> None:
    found = movies.check_explanation("You liked the comedy [[item:m4]]; this one is a drama.", "m3", history=["m4"])
    assert [(c.kind, c.value, c.subject, c.holds) for c in found.claims] == [
        ("category", "Comedy", "history", True), ("title", "m4", "history", True), ("category", "Drama", "item", True)]
    wrong = movies.check_explanation("You liked the war [[item:m4]].", "m2", history=["m4"])
    assert [(c.value, c.subject, c.holds) for c in wrong.claims] == [("War", "history", False), ("m4", "history", True)]
    assert wrong.false[0].reason == "'Back to the Future (1985)' is not War (its genres: Comedy, Sci-Fi)"


# ------------------------------------------------------------------ explanations: near misses
def test_right_genre_wrong_decade(movies: GroundednessChecker) -> None:
    found = movies.check_explanation("A comedy from the 1980s.", "m1")
    assert _kinds(found) == [("category", "Comedy", True), ("decade", "1980s", False)]
    assert found.false[0].reason == "'Forrest Gump (1994)' is from the 1990s, not the 1980s"
    year = movies.check_explanation("A drama released in 1995.", "m1")
    assert _kinds(year) == [("category", "Drama", True), ("year", 1995, False)]
    assert year.false[0].reason == "'Forrest Gump (1994)' is from 1994, not 1995"


def test_right_person_wrong_film(movies: GroundednessChecker) -> None:
    found = movies.check_explanation("Like [[item:m3]], it is directed by Ron Howard.", "m1", history=["m3"])
    assert _kinds(found) == [("title", "m3", True), ("related", "p3", False)]
    assert found.false[0].text == "directed by Ron Howard"
    assert found.false[0].reason == ("'Forrest Gump (1994)' has no link to 'Ron Howard' "
                                     "(Ron Howard is linked to 'Apollo 13 (1995)', 'Splash (1984)')")


def test_right_name_wrong_relation(movies: GroundednessChecker) -> None:
    assert _kinds(movies.check_explanation("Starring Tom Hanks.", "m1")) == [("related", "p1", True)]
    wrong = movies.check_explanation("Directed by Tom Hanks.", "m1")
    assert _kinds(wrong) == [("related", "p1", False)]
    assert wrong.false[0].reason == "'Forrest Gump (1994)' is linked to 'Tom Hanks' as 'starring', not 'directed by'"
    # a role word earlier in the clause names the relation ("Same {role} as {items}: {name}.")
    role = movies.check_explanation("Same director as [[item:m4]]: Tom Hanks.", "m1", history=["m4"])
    assert _kinds(role) == [("title", "m4", True), ("related", "p1", False)]
    right = movies.check_explanation("Same director as [[item:m4]]: Robert Zemeckis.", "m1", history=["m4"])
    assert (right.checkable, right.all_true) == (2, True)
    # no relation word: any link holds ("It shares {name} with {items}.")
    assert _kinds(movies.check_explanation("It shares Tom Hanks with Apollo 13 (1995).", "m1", history=["m3"])) == [
        ("related", "p1", True), ("title", "m3", True)]


# ------------------------------------------------------------------ explanations: cited titles
def test_cited_titles_must_be_in_the_history_or_the_focus(movies: GroundednessChecker) -> None:
    found = movies.check_explanation("Like [[item:m3]] and Splash (1984), it stars Tom Hanks.", "m1", history=["m3", "m5"])
    assert _kinds(found) == [("title", "m3", True), ("title", "m6", False), ("related", "p1", True)]
    assert (found.checkable, len(found.true), len(found.false)) == (3, 2, 1)
    assert found.false[0].text == "Splash (1984)"
    assert found.false[0].reason == "'Splash (1984)' is not in the history"
    focus = movies.check_explanation("More like Splash (1984), also a romance.", "m1", focus="m6")
    assert [(c.kind, c.subject, c.holds) for c in focus.claims] == [("title", "focus", True), ("category", "item", True)]
    outside = movies.check_explanation("Like [[item:m2]].", "m1", focus="m6", history=["m3"])
    assert outside.false[0].reason == "'Independence Day (1996)' is neither the focus item nor in the history"


def test_a_cited_year_must_match_and_plain_titles_of_the_history_are_read(movies: GroundednessChecker) -> None:
    wrong = movies.check_explanation("Like Apollo 13 (1994).", "m1", history=["m3"])
    assert _kinds(wrong) == [("title", "m3", False)]
    assert wrong.false[0].reason == "'Apollo 13' is from 1995, not 1994"
    plain = movies.check_explanation("Like Cast Away, it is a drama.", "m1", history=["m5"])
    assert [(c.kind, c.text, c.holds) for c in plain.claims] == [("title", "Cast Away", True),
                                                                 ("category", "drama", True)]
    unknown = movies.check_explanation("Like [[item:nope]].", "m1", history=["m5"])
    assert [(c.value, c.holds, c.reason) for c in unknown.claims] == [("nope", False, "'nope' is not a catalog item")]


def test_naming_the_item_itself_claims_only_a_wrong_year(movies: GroundednessChecker) -> None:
    assert _kinds(movies.check_explanation("Forrest Gump (1994) Also Drama.", "m1")) == [("category", "Drama", True)]
    assert _kinds(movies.check_explanation("[[item:m1]] Also Drama.", "m1")) == [("category", "Drama", True)]
    wrong = movies.check_explanation("Forrest Gump (1995) Also Drama.", "m1")
    assert _kinds(wrong) == [("year", 1995, False), ("category", "Drama", True)]
    assert wrong.false[0].reason == "'Forrest Gump (1994)' is from 1994, not 1995"


# ------------------------------------------------------------------ profiles
def test_profile_categories_and_mostly(movies: GroundednessChecker) -> None:
    # history genres: Drama 3, Comedy 2, Romance 2, Adventure 1
    right = movies.check_profile("Mostly Drama and Comedy movies. Likes adventure too.", HANKS_FILMS)
    assert _kinds(right) == [("category", "Drama", True), ("category", "Comedy", True), ("category", "Adventure", True)]
    assert {c.subject for c in right.claims} == {"user"}
    wrong = movies.check_profile("Mostly adventure movies. Likes sci-fi.", HANKS_FILMS)
    assert _kinds(wrong) == [("category", "Adventure", False), ("category", "Sci-Fi", False)]
    assert [c.reason for c in wrong.false] == [
        "Adventure is not among the top 3 genres of the history (Drama 3, Comedy 2, Romance 2, Adventure 1)",
        "no history item is Sci-Fi (history genres: Drama 3, Comedy 2, Romance 2, Adventure 1)"]


def test_profile_decades_people_and_titles(movies: GroundednessChecker) -> None:
    # history decades: 1990s 2, 1980s 1, 2000s 1
    found = movies.check_profile("Favors the 1990s. Some from the 1980s. Returns to Tom Hanks.", HANKS_FILMS)
    assert _kinds(found) == [("decade", "1990s", True), ("decade", "1980s", True), ("related", "p1", True)]
    wrong = movies.check_profile("Favors the 1980s. Often from the 1970s. Fan of Roland Emmerich.", HANKS_FILMS)
    assert _kinds(wrong) == [("decade", "1980s", False), ("decade", "1970s", False), ("related", "p4", False)]
    assert [c.reason for c in wrong.false] == [
        "only 1 of 4 history items is from the 1980s",
        "1970s is not among the top 2 decades of the history (1990s 2, 1980s 1, 2000s 1)",
        "no history item is linked to 'Roland Emmerich'"]
    relation = movies.check_profile("Loves films directed by Tom Hanks, like [[item:m3]] and [[item:m2]].", HANKS_FILMS)
    assert _kinds(relation) == [("related", "p1", False), ("title", "m3", True), ("title", "m2", False)]
    assert [c.reason for c in relation.false] == [
        "history items are linked to 'Tom Hanks' only as 'starring', not 'directed by'",
        "'Independence Day (1996)' is not in the history"]


# ------------------------------------------------------------------ other catalogs
def test_books_sample_catalog(books: GroundednessChecker) -> None:
    history = ["book:hobbit", "book:dune"]
    wrong = books.check_explanation("Written by Frank Herbert, a science fiction novel from the 1960s.",
                                    "book:earthsea", history=history)
    assert _kinds(wrong) == [("related", "author:herbert", False), ("category", "Science fiction", False),
                             ("decade", "1960s", True)]
    assert [c.reason for c in wrong.false] == [
        "'A Wizard of Earthsea (1968)' has no link to 'Frank Herbert' (Frank Herbert is linked to 'Dune (1965)')",
        "'A Wizard of Earthsea (1968)' is not Science fiction (its genres: Fantasy)"]
    right = books.check_explanation("By Ursula K. Le Guin, like The Hobbit (1937), another fantasy.",
                                    "book:earthsea", history=history)
    assert _kinds(right) == [("related", "author:le-guin", True), ("title", "book:hobbit", True),
                             ("category", "Fantasy", True)]
    profile = books.check_profile("Mostly romances. Favors the 1810s. Fan of Jane Austen. Mostly cyberpunk.",
                                  ["book:emma", "book:persuasion", "book:hobbit"])
    assert _kinds(profile) == [("category", "Romance", True), ("decade", "1810s", True),
                               ("related", "author:austen", True), ("category", "Cyberpunk", False)]
    assert profile.false[0].reason == "Cyberpunk is not among the top 3 genres of the history (Romance 2, Fantasy 1)"


def test_podcast_catalog_topics_hosts_and_years() -> None:
    checker = GroundednessChecker(CatalogFacts(_podcasts(), load_prompts()))
    found = checker.check_explanation("An astronomy show from the 2010s, hosted by Ben Ortiz, like Star Notes.",
                                      "s3", history=["s2"])
    assert _kinds(found) == [("category", "Astronomy", True), ("decade", "2010s", False),
                             ("related", "h2", False), ("title", "s2", True)]
    assert [c.reason for c in found.false] == [
        "'Deep Sky Club (2021)' is from the 2020s, not the 2010s",
        "'Deep Sky Club (2021)' has no link to 'Ben Ortiz' (Ben Ortiz is linked to 'Star Notes (2015)', "
        "'Bebop Talks (2012)')"]
    assert _kinds(checker.check_explanation("Music history, hosted by Ada Park.", "s1")) == [
        ("category", "Music History", True), ("related", "h1", True)]
    profile = checker.check_profile("Mostly astronomy and jazz. Fan of Ada Park.", ["s2", "s3"])
    assert _kinds(profile) == [("category", "Astronomy", True), ("category", "Jazz", False), ("related", "h1", True)]


def test_template_teacher_labels_are_grounded(sample_catalog: Catalog) -> None:
    """The training labels of the template teacher, as markers and as shown (titles with years)."""
    facts = CatalogFacts(sample_catalog, load_prompts())
    checker, teacher = GroundednessChecker(facts), TemplateTeacher()
    histories = {u: [i.item_id for i in h] for u, h in sample_catalog.histories().items()}
    counts = {"markers": [0, 0], "shown": [0, 0], "profile": [0, 0]}  # claims, false claims
    faults = []
    for history in histories.values():
        for target in facts.by_type["book"]:
            text = teacher.explain(facts, history, target, random.Random(0))
            for form, shown in (("markers", text), ("shown", _shown(facts, text))):
                _add(counts[form], checker.check_explanation(shown, target, history=history))
            faults += checker.check_explanation(text, target, history=history).faults
        profile = teacher.profile(facts, history, random.Random(0))
        _add(counts["profile"], checker.check_profile(profile, history))
        faults += checker.check_profile(profile, history).faults
    assert counts == {"markers": [72, 0], "shown": [72, 0], "profile": [8, 0]}  # no false claim
    assert faults == []  # and every label reads right: comparisons cite items, category words are lower case


def _add(count: list[int], grounding: Grounding) -> None:
    count[0] += grounding.checkable
    count[1] += len(grounding.false)


def _shown(facts: CatalogFacts, text: str) -> str:
    from neo_sdk.tasks import ITEM_MARKER

    def label(item_id: str) -> str:
        year = facts.year(item_id)
        return f"{facts.title(item_id)} ({year})" if year else facts.title(item_id)

    return ITEM_MARKER.sub(lambda m: label(m.group(1)), text)


def test_evaluation_reexports_the_checker() -> None:
    import neo_sdk.evaluation as evaluation
    import neo_sdk.retrieval as retrieval

    assert (evaluation.GroundednessChecker, evaluation.Claim, evaluation.Grounding) == (
        retrieval.GroundednessChecker, retrieval.Claim, retrieval.Grounding)
    assert {"Claim", "Grounding", "GroundednessChecker"} <= set(evaluation.__all__) & set(retrieval.__all__)


# ------------------------------------------------------------------ form
@pytest.mark.parametrize("text, kinds", [
    # the sentences users were shown (issue 26): a year where an item belongs, capitals, no article
    ("It is Drama, like 1997.", {"comparison", "capital", "article"}),
    ("More Action and Sci-Fi, in the spirit of 1986.", {"comparison", "capital"}),
    ("A taste for Drama, as in 1996.", {"comparison", "capital"}),
    ("If you liked 1975, this drama movie fits.", {"comparison"}),
    ("It shares Tom Hanks with 1994.", {"comparison"}),
    ("It is Action, Drama and War movies.", {"capital", "article", "agreement"}),
    ("Mostly Comedy, Drama and Romance movies.", {"capital"}),
    ("It is drama.", {"article"}),
    ("It is a action movie.", {"a/an"}),
    ("Another comedy, drama movie.", {"list"}),
    ("Like nothing else.", {"comparison"}),
])
def test_form_faults_name_what_reads_broken(movies: GroundednessChecker, text: str, kinds: set[str]) -> None:
    found = movies.check_explanation(text, "m1", history=["m3"])
    assert {f.kind for f in found.faults} == kinds
    assert not found.passes and all(f.reason for f in found.faults)


@pytest.mark.parametrize("text", [
    "It is a drama movie, like [[item:m3]].",
    "An action and sci-fi movie from 1996.",
    "If you liked [[item:m3]], this comedy and drama movie fits. Directed by Robert Zemeckis.",
    "Tom Hanks again, as in [[item:m3]].",
    "It shares Tom Hanks with [[item:m3]].",
    "Likes comedy, drama and romance movies. Fan of Tom Hanks.",
    "Drama, from 1994.",  # a capital at a sentence start is no fault
])
def test_well_formed_texts_have_no_fault(movies: GroundednessChecker, text: str) -> None:
    assert movies.check_explanation(text, "m1", history=["m3"]).faults == []


def test_form_reads_the_catalogs_own_vocabulary() -> None:
    """Topics of a podcast catalog, and a multi-word value ("Music History"), are read the same way."""
    checker = GroundednessChecker(CatalogFacts(_podcasts(), load_prompts()))
    assert [f.kind for f in checker.check_explanation("A show about Music History, like 2019.", "s1").faults] == [
        "capital", "comparison"]
    assert checker.check_explanation("A jazz and music history show, like [[item:s4]].", "s1").faults == []
    assert [f.kind for f in checker.check_profile("Mostly Astronomy shows.", ["s2", "s3"]).faults] == ["capital"]
