"""Task builders and teachers: coverage, determinism, no leakage, grounded labels, teacher cache."""

from __future__ import annotations

import dataclasses
import random
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from neo_sdk.catalog import Catalog, Split, leave_one_out, load_dataset
from neo_sdk.errors import ConfigError
from neo_sdk.prompts import PromptSet, load_prompts
from neo_sdk.tasks import (
    MAX_HISTORY,
    TASKS,
    CatalogFacts,
    Example,
    InstructionConfig,
    LangChainTeacher,
    TemplateTeacher,
    build_alignment_examples,
    build_instruction_examples,
    explanation_grounds,
    format_history,
    item_marker,
    mentioned_items,
    profile_grounds,
)


@pytest.fixture(scope="module")
def prompts() -> PromptSet:
    return load_prompts()


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory):
    catalog = Catalog(tmp_path_factory.mktemp("ml") / "ml100k.db")
    load_dataset(catalog, "movielens-100k", with_people=True, progress=False)
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def ml_built(ml100k: Catalog, prompts: PromptSet):
    split = leave_one_out(ml100k)
    facts = CatalogFacts(ml100k, prompts, split.train)
    examples = build_instruction_examples(ml100k, split, prompts, seed=0, facts=facts)
    return split, facts, examples


# ------------------------------------------------------------------ stage 2
def test_alignment_covers_every_item(sample_catalog: Catalog, prompts: PromptSet) -> None:
    examples = build_alignment_examples(sample_catalog, prompts, seed=0)
    items = {i.id: i for i in sample_catalog.items()}
    per_task = Counter(e.task for e in examples)
    assert per_task == {"sid_to_text": 14, "sid_to_type": 14, "text_to_sid": 28}
    for e in examples:
        item = items[e.meta["item"]]
        assert e.family == "train" and e.meta["phrasing"].startswith(f"{e.task}/train/")
        if e.task == "sid_to_text":
            assert mentioned_items(e.prompt) == [item.id] and e.completion.startswith(item.title)
            assert e.format == "text"
        elif e.task == "sid_to_type":
            assert mentioned_items(e.prompt) == [item.id] and e.completion == item.entity_type
        else:
            assert e.completion == f"[[item:{item.id}]]" and mentioned_items(e.prompt) == []
            assert item.title in e.prompt and item.entity_type in e.prompt
            assert e.format == "ids" and e.target_type == item.entity_type
    dune = next(e for e in examples if e.task == "sid_to_text" and e.meta["item"] == "book:dune")
    assert dune.completion == "Dune (1965); Science fiction; written by Frank Herbert"


def test_alignment_eval_family_and_options(sample_catalog: Catalog, prompts: PromptSet) -> None:
    train_texts = {p.text for t in prompts.tasks for p in prompts.phrasings(t, "train")}
    held = build_alignment_examples(
        sample_catalog, prompts, seed=0, families="eval", entity_types=["author"],
        queries_per_item=5,
    )
    assert {e.family for e in held} == {"eval"}
    assert {e.meta["item"].split(":")[0] for e in held} == {"author"}
    ids = {p.id: p.text for t in prompts.tasks for p in prompts.phrasings(t, None)}
    assert not {ids[e.meta["phrasing"]] for e in held} & train_texts
    kinds = {e.meta["query_kind"] for e in held if e.task == "text_to_sid"}
    assert kinds == {"title", "title_genres", "name_role", "title_description"}
    with pytest.raises(ConfigError, match="unknown option"):
        build_alignment_examples(sample_catalog, prompts, queries=3)
    with pytest.raises(ConfigError, match="unknown type"):
        build_alignment_examples(sample_catalog, prompts, entity_types=("movie",))


def test_alignment_is_deterministic(sample_catalog: Catalog, prompts: PromptSet) -> None:
    a = build_alignment_examples(sample_catalog, prompts, seed=1)
    assert a == build_alignment_examples(sample_catalog, prompts, seed=1)
    assert a != build_alignment_examples(sample_catalog, prompts, seed=2)


# ------------------------------------------------------------------ stage 3
def _check_no_leakage(examples: list[Example], split: Split, facts: CatalogFacts) -> None:
    """User examples see only that user's training items; held-out items never appear."""
    checked = 0
    for e in examples:
        user = e.meta.get("user")
        if user is None:
            continue
        checked += 1
        train = split.train[user]
        held_out = {split.valid.get(user), split.test.get(user)} - {None}
        prompt_items = mentioned_items(e.prompt)
        cut = e.meta["cut"]
        asked = [e.meta["target"]] if e.task == "about" else []  # the training item a question is about
        assert set(prompt_items) <= set(train[:cut] + asked), e
        mentioned = set(prompt_items) | set(mentioned_items(e.completion))
        assert not mentioned & held_out, e
        if "target" in e.meta and "derived_from" not in e.meta:
            assert e.meta["target"] == train[cut]
        if "derived_from" in e.meta:
            assert e.meta["derived_from"] == train[cut]
            assert facts.type_of(e.meta["target"]) not in facts.interacted_types
    assert checked


def test_instruction_tasks_on_the_sample(sample_catalog: Catalog, prompts: PromptSet) -> None:
    split = leave_one_out(sample_catalog)
    facts = CatalogFacts(sample_catalog, prompts, split.train)
    examples = build_instruction_examples(sample_catalog, split, prompts, seed=0, facts=facts)
    assert {e.task for e in examples} == set(TASKS)
    _check_no_leakage(examples, split, facts)
    # the sample's users follow authors: those are regular targets, never derived ones
    assert not any("derived_from" in e.meta for e in examples)
    for e in examples:
        assert e.family == "train"
        if e.task in ("next_item", "search", "like_this") and e.format == "ids":
            assert re.fullmatch(r"(\[\[item:[^\]]+\]\] ?)+", e.completion), e
        if e.target_type is not None:
            assert all(facts.type_of(i) == e.target_type
                       for i in mentioned_items(e.completion)[:1]), e


def test_instruction_output_depends_only_on_train(sample_catalog: Catalog, prompts: PromptSet) -> None:
    split = leave_one_out(sample_catalog)
    blind = Split(split.kind, split.train, valid={}, test={})
    assert build_instruction_examples(sample_catalog, split, prompts, seed=3) == (
        build_instruction_examples(sample_catalog, blind, prompts, seed=3))


def test_instruction_is_deterministic(sample_catalog: Catalog, prompts: PromptSet) -> None:
    split = leave_one_out(sample_catalog)
    a = build_instruction_examples(sample_catalog, split, prompts, seed=5)
    assert a == build_instruction_examples(sample_catalog, split, prompts, seed=5)
    assert a != build_instruction_examples(sample_catalog, split, prompts, seed=6)
    # each task has its own generator: building one task alone gives the same examples
    alone = build_instruction_examples(sample_catalog, split, prompts, seed=5, tasks=["search"])
    assert alone == [e for e in a if e.task == "search"]


def test_instruction_eval_family(sample_catalog: Catalog, prompts: PromptSet) -> None:
    split = leave_one_out(sample_catalog)
    held = build_instruction_examples(sample_catalog, split, prompts, seed=0, families=("eval",))
    assert held and {e.family for e in held} == {"eval"}
    with pytest.raises(ConfigError, match="tasks must be among"):
        build_instruction_examples(sample_catalog, split, prompts, tasks=("nope",))
    with pytest.raises(ConfigError, match="unknown option"):
        build_instruction_examples(sample_catalog, split, prompts, max_hist=3)


def test_ml100k_counts_and_history_window(ml_built) -> None:
    split, _facts, examples = ml_built
    per_task = Counter(e.task for e in examples)
    users = sum(1 for h in split.train.values() if len(h) >= 2)
    assert per_task["explain"] == per_task["profile"] == users
    assert per_task["search"] == 2000 and per_task["like_this"] == 1000
    derived = [e for e in examples if "derived_from" in e.meta]
    assert derived and all(e.target_type == "person" for e in derived)
    assert per_task["next_item"] == InstructionConfig().cuts_per_user * users + len(derived)
    for e in examples:
        if e.task == "next_item":
            train, cut = split.train[e.meta["user"]], e.meta["cut"]
            assert format_history(train[:cut], MAX_HISTORY) in e.prompt  # the last ones, most recent last
            assert len(mentioned_items(e.prompt)) == min(MAX_HISTORY, cut)


def test_ml100k_no_leakage(ml_built) -> None:
    split, facts, examples = ml_built
    _check_no_leakage(examples, split, facts)


def test_ml100k_teacher_labels_are_grounded(ml_built) -> None:
    """Explanations and profiles: the grounds line of the item (or history), then a sentence whose
    every checkable claim is true (the claim checker reads it against the catalog)."""
    from neo_sdk.retrieval import GroundednessChecker

    _split, facts, examples = ml_built
    checker = GroundednessChecker(facts)
    checked, claims = Counter(), Counter()
    for e in examples:
        grounds = e.meta.get("grounds")
        if e.task == "explain" or (e.task == "like_this" and e.format == "mixed"):
            target = e.meta["target"]
            basis = [e.meta["anchor"]] if e.task == "like_this" else mentioned_items(e.prompt)
            assert grounds == explanation_grounds(facts, basis, target).line(facts), e
            head, sentence = e.completion.split(grounds, 1)
            assert head == f"{item_marker(target)} " and sentence.startswith(" ")
            found = checker.check_explanation(sentence, target, focus=basis[0] if e.task == "like_this" else None,
                                              history=basis)
        elif e.task == "profile":
            history = mentioned_items(e.prompt)
            assert grounds == profile_grounds(facts, history).line(facts), e
            sentence = e.completion.split(grounds, 1)[1]
            found = checker.check_profile(sentence, history)
        else:
            continue
        assert found.all_true, (e.completion, [c.reason for c in found.false])
        checked[e.task] += 1
        claims[e.task] += found.checkable
    assert checked["explain"] > 900 and checked["profile"] > 900 and checked["like_this"] > 100
    assert claims["explain"] / checked["explain"] >= 1.5 and claims["profile"] / checked["profile"] >= 1.5


def test_ml100k_search_answers_match_the_query(ml_built) -> None:
    _split, facts, examples = ml_built
    for e in (e for e in examples if e.task == "search"):
        for item in mentioned_items(e.completion):
            assert facts.type_of(item) == e.target_type
            for fact in e.meta["facts"]:
                kind, _, value = fact.partition("|")
                if kind == "genre":
                    assert value in facts.genres(item)
                elif kind == "decade":
                    assert facts.decade(item) == value
                elif kind == "rel":
                    assert tuple(value.split("|")) in facts.forward[item]
        assert 1 <= len(mentioned_items(e.completion)) <= 3


def test_like_this_neighbours_come_from_train(ml_built) -> None:
    split, facts, examples = ml_built
    histories = [set(h) for h in split.train.values()]
    checked = 0
    for e in (e for e in examples if e.task == "like_this" and e.target_type == "movie"):
        anchor = e.meta["anchor"]
        for item in mentioned_items(e.completion):
            if e.meta["via"] == "cooccur":  # seen together in training histories
                assert any(anchor in h and item in h for h in histories), e
                checked += 1
            else:  # a cold item (no training interactions): neighbours share catalog facts
                assert not facts.counts.get(anchor)
                assert any(facts.shared(anchor, item).values()), e
    assert checked > 100


# ----------------------------------------------------------------- teachers
def test_template_teacher_on_the_sample(sample_catalog: Catalog, prompts: PromptSet) -> None:
    split = leave_one_out(sample_catalog)
    facts = CatalogFacts(sample_catalog, prompts, split.train)
    from neo_sdk.retrieval import GroundednessChecker

    teacher, checker = TemplateTeacher(), GroundednessChecker(facts)
    rng = random.Random(0)
    texts = {teacher.explain(facts, ["book:emma"], "book:persuasion", rng) for _ in range(30)}
    assert any("Jane Austen" in t and "[[item:book:emma]]" in t for t in texts)  # the shared author, cited
    assert len(texts) >= 5  # varied surface forms
    assert all(checker.check_explanation(t, "book:persuasion", history=["book:emma"]).all_true for t in texts)
    assert teacher.profile(facts, ["book:emma", "book:persuasion"], rng).count("Jane Austen") <= 1
    assert "Jane Austen" in teacher.similar(facts, "book:emma", "book:persuasion", rng)
    # nothing shared: the target's own facts only (its genre and year, or its author)
    own = {teacher.explain(facts, ["book:emma"], "book:neuromancer", rng) for _ in range(30)}
    assert "A cyberpunk book from 1984." in own and all("emma" not in t for t in own)
    assert all(checker.check_explanation(t, "book:neuromancer", history=["book:emma"]).all_true for t in own)


def _fake_model(responses: list[str]):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    return FakeListChatModel(responses=responses)


def test_langchain_teacher_caches_labels(
    sample_catalog: Catalog, prompts: PromptSet, tmp_path: Path
) -> None:
    split = leave_one_out(sample_catalog)
    facts = CatalogFacts(sample_catalog, prompts, split.train)
    cache = tmp_path / "labels.db"
    model = _fake_model(["You liked Emma, so Persuasion, also by Jane Austen, fits.", "unused"])
    teacher = LangChainTeacher(model, cache=cache, name="fake")
    text = teacher.explain(facts, ["book:emma"], "book:persuasion", random.Random(0))
    assert text == "You liked [[item:book:emma]], so [[item:book:persuasion]], also by Jane Austen, fits."
    assert teacher.calls == 1
    again = teacher.explain(facts, ["book:emma"], "book:persuasion", random.Random(0))
    assert again == text and teacher.calls == 1 and model.i == 1
    teacher.close()
    # a rebuild with a fresh teacher reads the cache file: the model is not called again
    other = _fake_model(["something else"])
    rebuilt = LangChainTeacher(other, cache=cache, name="fake")
    examples = build_instruction_examples(
        sample_catalog, split, prompts, seed=0, teacher=rebuilt, tasks=("explain",), facts=facts,
    )
    first_calls = rebuilt.calls
    assert first_calls < len(examples)  # the emma -> persuasion label came from the cache
    repeat = build_instruction_examples(
        sample_catalog, split, prompts, seed=0, teacher=rebuilt, tasks=("explain",), facts=facts,
    )
    assert repeat == examples and rebuilt.calls == first_calls
    rebuilt.close()


def test_langchain_teacher_keeps_only_labels_the_checker_passes(
    sample_catalog: Catalog, prompts: PromptSet
) -> None:
    from neo_sdk.evaluation import GroundednessChecker

    facts = CatalogFacts(sample_catalog, prompts, leave_one_out(sample_catalog).train)
    model = _fake_model([
        "Like Emma, Persuasion is a romance by Jane Austen.",  # every claim true: kept
        "Persuasion is a science fiction novel by Frank Herbert.",  # wrong genre, wrong author: replaced
        "A lovely pick for a quiet evening.",  # no checkable claim: replaced
    ])
    teacher = LangChainTeacher(model, name="fake", check=GroundednessChecker(facts))
    rng = random.Random(0)
    kept = teacher.explain(facts, ["book:emma"], "book:persuasion", rng)
    assert kept == "Like [[item:book:emma]], [[item:book:persuasion]] is a romance by Jane Austen."
    template = TemplateTeacher().explain(facts, ["book:dune"], "book:persuasion", random.Random(1))
    replaced = teacher.explain(facts, ["book:dune"], "book:persuasion", random.Random(1))
    assert replaced == template and "Herbert" not in replaced
    vague = teacher.profile(facts, ["book:emma", "book:persuasion"], random.Random(2))
    assert vague == TemplateTeacher().profile(facts, ["book:emma", "book:persuasion"], random.Random(2))
    assert (teacher.calls, teacher.kept, teacher.replaced) == (3, 1, 2)
    checked = GroundednessChecker(facts).check_profile(vague, ["book:emma", "book:persuasion"])
    assert checked.checkable and not checked.false  # the template's label is true by construction
    teacher.close()


def test_langchain_teacher_from_a_factory_spec(
    sample_catalog: Catalog, prompts: PromptSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_teacher.py").write_text(textwrap.dedent("""
        from langchain_core.language_models.fake_chat_models import FakeListChatModel

        def make():
            return FakeListChatModel(responses=["Reads Dune and Foundation."])
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    teacher = LangChainTeacher("my_teacher:make")
    assert teacher.name == "my_teacher:make"
    facts = CatalogFacts(sample_catalog, prompts, leave_one_out(sample_catalog).train)
    text = teacher.profile(facts, ["book:dune", "book:foundation"], random.Random(0))
    assert text == "Reads [[item:book:dune]] and [[item:book:foundation]]."
    teacher.close()
    with pytest.raises(ConfigError, match="expected 'module:factory'"):
        LangChainTeacher("my_teacher")
    with pytest.raises(ConfigError, match="cannot import"):
        LangChainTeacher("my_teacher:nope")


def test_config_dataclasses_validate() -> None:
    from neo_sdk.tasks import AlignmentConfig, InstructionConfig

    with pytest.raises(ConfigError, match="max_history must be >= 1"):
        InstructionConfig(max_history=0)
    with pytest.raises(ConfigError, match="like_this_mixed"):
        InstructionConfig(like_this_mixed=2.0)
    with pytest.raises(ConfigError, match="queries_per_item"):
        AlignmentConfig(queries_per_item=0)
    helps = [f.metadata.get("help") for f in dataclasses.fields(InstructionConfig)]
    assert all(helps)
