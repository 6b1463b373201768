"""Explanations and profiles written from grounds (issue 16): the grounds line, the teacher's
varied sentences (all true), the training examples, and the runtime's check before showing."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from neo_sdk import Catalog
from neo_sdk.decoding import FairLock
from neo_sdk.prompts import load_prompts
from neo_sdk.retrieval import GroundednessChecker
from neo_sdk.session import ItemPart, Neo, TextPart
from neo_sdk.tasks import (
    CatalogFacts,
    TemplateTeacher,
    build_instruction_examples,
    explanation_grounds,
    item_marker,
    profile_grounds,
)
from tests.test_claims import HANKS_FILMS, _movies, _podcasts


@pytest.fixture(scope="module")
def movie_facts() -> CatalogFacts:
    return CatalogFacts(_movies(), load_prompts())


def test_the_grounds_line_states_the_item_and_what_it_shares(movie_facts: CatalogFacts) -> None:
    grounds = explanation_grounds(movie_facts, ["m6", "m1"], "m3")  # Apollo 13 after Splash, Forrest Gump
    assert grounds.line(movie_facts) == (  # most shared person first; its own people after those it shares
        "Facts: drama, adventure; 1995; directed by Ron Howard; shares Tom Hanks with [[item:m1]];"
        " drama like [[item:m1]]; 1990s like [[item:m1]].")
    profile = profile_grounds(movie_facts, HANKS_FILMS)
    assert profile.line(movie_facts) == "Facts: drama, comedy, romance; 1990s; Tom Hanks, Robert Zemeckis."


@pytest.mark.parametrize("catalog", [_movies, _podcasts])
def test_teacher_sentences_are_varied_and_every_claim_is_true(catalog) -> None:
    facts = CatalogFacts(catalog(), load_prompts())
    checker, teacher, rng = GroundednessChecker(facts), TemplateTeacher(), random.Random(0)
    items = sorted(i for i in facts.items if not facts.reverse.get(i))  # the items people are linked from
    texts, claims = set(), 0
    for target in items:
        basis = [i for i in items if i != target]
        for _ in range(20):
            text = teacher.explain(facts, basis, target, rng)
            found = checker.check_explanation(text, target, history=basis)
            assert found.all_true, (text, [c.reason for c in found.false])
            texts.add(text)
            claims += found.checkable
        profile = teacher.profile(facts, basis, rng)
        assert checker.check_profile(profile, basis).all_true, profile
    assert len(texts) >= 3 * len(items)  # many surface forms, not one template per item
    assert claims / (20 * len(items)) >= 1.5


def test_training_examples_carry_the_grounds_between_item_and_sentence(sample_catalog: Catalog) -> None:
    from neo_sdk import leave_one_out

    split = leave_one_out(sample_catalog)
    examples = build_instruction_examples(sample_catalog, split, tasks=("explain", "profile", "like_this"),
                                          like_this_mixed=1.0, seed=0, progress=False)
    facts = CatalogFacts(sample_catalog, load_prompts(), split.train)
    explain = [e for e in examples if e.task == "explain"]
    profile = [e for e in examples if e.task == "profile"]
    mixed = [e for e in examples if e.task == "like_this"]
    assert explain and profile and mixed
    for example in explain + mixed:
        target = example.meta["target"] if example.task == "explain" else example.completion.split("]]")[0][7:]
        assert example.completion.startswith(f"{item_marker(target)} Facts: ")
    for example in profile:
        assert example.completion.startswith("Facts: ")
        line, sentence = example.completion.split(". ", 1)[0], example.completion.split(". ", 1)[1]
        assert line and sentence
    user = explain[0].meta["user"]
    seen = split.train[user][-11:-1]
    assert explanation_grounds(facts, seen, explain[0].meta["target"]).line(facts) in explain[0].completion


def test_a_beam_batch_goes_before_waiting_generations() -> None:
    lock, order = FairLock(), []
    lock.acquire()

    def take(name: str, priority: bool) -> None:
        lock.acquire(priority=priority)
        order.append(name)
        lock.release()

    threads = [threading.Thread(target=take, args=("generation 1", False)),
               threading.Thread(target=take, args=("generation 2", False)),
               threading.Thread(target=take, args=("beam batch", True))]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # arrival order: generation 1, generation 2, beam batch
    assert lock.waiting == 4
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == ["beam batch", "generation 1", "generation 2"]


def test_a_generation_lets_a_beam_batch_in_between_its_tokens() -> None:
    lock, order = FairLock(), []
    lock.acquire()  # a generation holds the model

    def take(name: str, priority: bool) -> None:
        lock.acquire(priority=priority)
        order.append(name)
        lock.release()

    waiting = [threading.Thread(target=take, args=("generation 2", False)),
               threading.Thread(target=take, args=("beam batch", True))]
    for thread in waiting:
        thread.start()
        time.sleep(0.05)
    lock.yield_to_priority()  # between two tokens: the batch runs, the generation goes on, then generation 2
    order.append("generation 1, next token")
    assert lock.waiting == 2  # generation 1 holds it again; generation 2 still waits
    lock.release()
    for thread in waiting:
        thread.join(5)
    assert order == ["beam batch", "generation 1, next token", "generation 2"]
    lock.acquire()
    lock.yield_to_priority()  # nobody with priority waits: nothing changes hands
    assert lock.waiting == 1
    lock.release()


@pytest.fixture(scope="module")
def neo(trained_bundle: Path) -> Neo:
    return Neo.load(trained_bundle, sessions=":memory:")


def test_a_bundle_trained_with_grounds_shows_only_checked_explanations(neo: Neo) -> None:
    assert neo.responder.grounded
    checker = GroundednessChecker(neo.facts)
    users = sorted(u for u, h in neo.catalog.histories().items() if len(h) >= 2)
    for user in users[:3]:
        session = neo.session(user=user, persist=False)
        for task in ("explain", "like_this"):
            answer = session.ask("recommend one and explain why", task=task, format="mixed")
            item = answer.answer_items[0]
            assert answer.segments[0] == ItemPart(item=item)
            check = answer.explanation_check
            assert check is not None and check["shown"] == answer.explained_by
            rest = "".join(s.text if isinstance(s, TextPart) else item_marker(s.item.id) for s in answer.segments[1:])
            assert rest.strip(), "an explanation is always shown"
            basis = [answer.request.focus] if task == "like_this" else session.history[-neo.max_history:]
            focus = answer.request.focus if task == "like_this" else None
            shown = checker.check_explanation(rest, item.id, focus=focus, history=basis)
            assert shown.all_true, [c.reason for c in shown.false]
            if answer.explained_by == "catalog facts":  # replaced: the model's text was empty or false
                assert check["false"] or not check["model_text"]
            else:
                assert not check["false"]
            assert "Facts:" not in answer.text  # the grounds are context, never shown
        profile = session.ask("describe my taste")
        assert profile.explained_by in ("model", "catalog facts") and profile.explanation_check is not None
        assert checker.check_profile(profile.text, session.history[-neo.max_history:]).all_true
        assert "Facts:" not in profile.text


def test_the_held_explanation_streams_its_item_first(neo: Neo) -> None:
    user = sorted(u for u, h in neo.catalog.histories().items() if len(h) >= 2)[0]
    events = list(neo.session(user=user, persist=False).stream("why would I like it", task="explain",
                                                               format="mixed"))
    assert events[0].item is not None  # the item at once, before the explanation is written
    answer = events[-1].answer
    assert answer is not None and "".join(e.text for e in events) == answer.text
    assert events[0].item.id == answer.answer_items[0].id
