"""The LLM judge of ``neo eval --judge``: reading replies, the reply cache, the summary, the report,
and the command end to end on a tiny trained bundle with a scripted chat model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import SimpleChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from pydantic import PrivateAttr

from neo_sdk.errors import ConfigError
from neo_sdk.evaluation import Judge, Rating, item_facts, judge_rows, judge_section, judge_summary, parse_rating
from neo_sdk.prompts import load_prompts
from neo_sdk.tasks import CatalogFacts

EXPLANATION_REPLY = 'Here is my rating:\n```json\n{"faithful": 5, "useful": 4, "fluent": 3, "reason": "all true"}\n```'
PROFILE_REPLIES = ("Faithful: 2\n- useful: 3\nfluent: 4/5\nreason: vague", "I cannot rate this.")


class ScriptedJudge(SimpleChatModel):
    """Explanations: fenced JSON 5/4/3. Profiles: ``name: n`` lines 2/3/4 the first time, then a reply
    without scores (unparsed). Every prompt it was sent is kept in ``prompts``."""

    _prompts: list[str] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-judge"

    @property
    def prompts(self) -> list[str]:
        return self._prompts

    def _call(self, messages: list[BaseMessage], stop: list[str] | None = None,
              run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> str:
        prompt = messages[-1].text
        self._prompts.append(prompt)
        if "The explanation shown to the user" in prompt:
            return EXPLANATION_REPLY
        profiles = sum("The description shown to the user" in p for p in self._prompts)
        return PROFILE_REPLIES[min(profiles, 2) - 1]


def fake_judge() -> ScriptedJudge:
    """The factory ``neo eval --judge tests.test_judge:fake_judge`` loads."""
    return ScriptedJudge()


def not_a_chat_model() -> dict[str, str]:
    return {}


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("reply, scores, reason", [
    ('{"faithful": 4, "useful": 3, "fluent": 5, "reason": "fine"}', (4, 3, 5), "fine"),
    ('Sure!\n```json\n{"faithful": 1, "useful": 2, "fluent": 3, "reason": "made up"}\n```\nHope it helps.',
     (1, 2, 3), "made up"),
    ('My rating is {"Faithful": "5", "useful": 4.0, "fluent": 2} as asked.', (5, 4, 2), ""),
    ("faithful: 4\nuseful: 2/5\n- **fluent**: 5 (reads well)\nreason: it names the director", (4, 2, 5),
     "it names the director"),
    ('{"note": "not a rating"} then\nfaithful = 3\nuseful = 3\nfluent = 3', (3, 3, 3), ""),
])
def test_replies_are_read_as_json_fenced_json_or_lines(reply: str, scores: tuple[int, int, int], reason: str) -> None:
    rating = parse_rating(reply)
    assert rating.parsed and rating.problem is None
    assert rating.scores == dict(zip(("faithful", "useful", "fluent"), scores, strict=True))
    assert rating.reason == reason


@pytest.mark.parametrize("reply, problem", [
    ('{"faithful": 6, "useful": 3, "fluent": 5}', "faithful = 6 is outside 1..5"),
    ('{"faithful": 4, "useful": 0, "fluent": 5}', "useful = 0 is outside 1..5"),
    ("faithful: 4\nuseful: 3\nfluent: 9", "fluent = 9 is outside 1..5"),
    ('{"faithful": 4.5, "useful": 3, "fluent": 5}', "faithful = 4.5 is not a whole number"),
    ('{"faithful": true, "useful": 3, "fluent": 5}', "faithful = True is not a whole number"),
    ("faithful: 3.5\nuseful: 3\nfluent: 3", "is not a whole number"),
    ("faithful: high\nuseful: 3\nfluent: 3", "faithful = 'high' is not a whole number"),
    ('{"faithful": 4, "useful": 3}', "JSON: no fluent score"),
    ('{"faithful": n, "useful": n, "fluent": n}', "lines: faithful = 'n, "),  # the format echoed: not JSON
    ("The explanation is good and helpful. 5 stars!", "no JSON object or 'criterion: n' lines"),
    ("", "no JSON object"),
])
def test_anything_else_is_unparsed_never_a_default(reply: str, problem: str) -> None:
    rating = parse_rating(reply)
    assert not rating.parsed and rating.scores is None
    assert rating.problem is not None and problem in rating.problem


# ------------------------------------------------------------------ summary
def test_summary_counts_each_score_and_leaves_unparsed_out_of_the_means() -> None:
    ratings = [Rating({"faithful": 5, "useful": 4, "fluent": 3}), Rating({"faithful": 3, "useful": 4, "fluent": 3}),
               Rating({"faithful": 5, "useful": 1, "fluent": 2}), Rating(None, problem="no JSON")]
    got = judge_summary(ratings, skipped=1)
    assert got == {
        "n": 5, "rated": 3, "unparsed": 1, "skipped": 1,
        "mean": {"faithful": 4.33, "useful": 3.0, "fluent": 2.67},
        "distribution": {"faithful": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 2},
                         "useful": {"1": 1, "2": 0, "3": 0, "4": 2, "5": 0},
                         "fluent": {"1": 0, "2": 1, "3": 2, "4": 0, "5": 0}},
    }
    nothing = judge_summary([Rating(None, problem="x")])
    assert nothing["mean"] == {"faithful": None, "useful": None, "fluent": None} and nothing["unparsed"] == 1


# ------------------------------------------------------------------ the judge on rows
@pytest.fixture
def facts(sample_catalog: Any) -> CatalogFacts:
    return CatalogFacts(sample_catalog, load_prompts())


HISTORIES = {"ana": ["book:dune", "book:foundation", "book:neuromancer", "book:left-hand"]}
ANSWERS = [{"task": "explain", "item": "book:earthsea", "user": "ana", "text": "Also by Ursula K. Le Guin."},
           {"task": "like_this", "item": "book:hobbit", "user": "ana", "text": "A fantasy like Earthsea."},
           {"task": "explain", "item": "book:emma", "user": "ana", "text": "  "}]  # nothing to rate: skipped
PROFILES = [{"user": "ana", "text": "Reads science fiction."}]


def test_the_judge_sees_the_items_facts_and_the_history(facts: CatalogFacts) -> None:
    assert item_facts(facts, "book:earthsea") == ("A Wizard of Earthsea (book, 1968); genres: Fantasy;"
                                                 " description: A young wizard chases the shadow he released;"
                                                 " written by Ursula K. Le Guin")
    model = ScriptedJudge()
    with Judge(model, name="scripted") as judge:
        result = judge_rows(judge, facts, HISTORIES, ANSWERS, PROFILES, history_items=3)
    first = model.prompts[0]
    assert "A Wizard of Earthsea (book, 1968); genres: Fantasy" in first and '"Also by Ursula K. Le Guin."' in first
    assert "- Foundation (1951); Science fiction; written by Isaac Asimov" in first
    assert "Dune" not in first.split("catalog facts")[0]  # the last 3 history items only
    assert "The description shown to the user" in model.prompts[2] and "Reads science fiction." in model.prompts[2]
    assert result["explanations"] == {
        "n": 3, "rated": 2, "unparsed": 0, "skipped": 1, "mean": {"faithful": 5.0, "useful": 4.0, "fluent": 3.0},
        "distribution": {c: {str(v): 2 if v == s else 0 for v in range(1, 6)}
                         for c, s in (("faithful", 5), ("useful", 4), ("fluent", 3))}}
    assert result["profiles"]["rated"] == 1 and result["profiles"]["mean"] == {"faithful": 2.0, "useful": 3.0,
                                                                              "fluent": 4.0}
    assert result["judge"] == "scripted" and result["calls"] == 3 and result["cache_hits"] == 0
    assert result["ratings"][0]["scores"] == {"faithful": 5, "useful": 4, "fluent": 3}


def test_a_rerun_on_the_same_answers_calls_the_model_zero_times(facts: CatalogFacts, tmp_path: Path) -> None:
    cache = tmp_path / "out" / "judge.sqlite"
    replies = [EXPLANATION_REPLY, '{"faithful": 2, "useful": 2, "fluent": 2}', "no idea"]
    first_model = FakeListChatModel(responses=replies)
    with Judge(first_model, cache=cache, name="fake") as judge:
        first = judge_rows(judge, facts, HISTORIES, ANSWERS, PROFILES)
    assert first["calls"] == 3 and first_model.i == 0  # the fake cycled through its three replies once
    assert first["profiles"]["unparsed"] == 1 and first["ratings"][-1]["reply"] == "no idea"

    again_model = FakeListChatModel(responses=["never asked"])
    with Judge(again_model, cache=cache, name="fake") as judge:
        again = judge_rows(judge, facts, HISTORIES, ANSWERS, PROFILES)
    assert again["calls"] == 0 and again["cache_hits"] == 3 and again_model.i == 0
    assert again["explanations"] == first["explanations"] and again["profiles"] == first["profiles"]

    with Judge(FakeListChatModel(responses=replies), cache=cache, name="another judge") as judge:
        assert judge_rows(judge, facts, HISTORIES, ANSWERS, PROFILES)["calls"] == 3  # the name is in the key


def test_a_judge_must_be_a_chat_model_named_module_colon_factory() -> None:
    with pytest.raises(ConfigError, match="judge 'no_such_module:make': cannot import"):
        Judge("no_such_module:make")
    with pytest.raises(ConfigError, match="expected 'module:factory'"):
        Judge("no_colon")
    with pytest.raises(ConfigError, match="'HISTORIES' is not callable"):
        Judge("tests.test_judge:HISTORIES")
    with pytest.raises(ConfigError, match="must be a langchain-core BaseChatModel, got dict"):
        Judge("tests.test_judge:not_a_chat_model")
    judge = Judge("tests.test_judge:fake_judge")
    assert judge.name == "tests.test_judge:fake_judge" and isinstance(judge.model, ScriptedJudge)
    judge.close()


def test_judge_prompts_are_checked_like_every_prompt_file(tmp_path: Path) -> None:
    (tmp_path / "judge.yaml").write_text('version: 1\njudge:\n  profile: "Rate {txt} from {history}"\n')
    with pytest.raises(ConfigError, match=r"judge\.yaml: judge\.profile: unknown placeholder \{txt\}"):
        load_prompts(tmp_path)
    (tmp_path / "judge.yaml").write_text('version: 1\njudge:\n  explain: "Rate {text}"\n')
    with pytest.raises(ConfigError, match=r"judge\.explain: unknown judge key"):
        load_prompts(tmp_path)
    (tmp_path / "judge.yaml").unlink()
    (tmp_path / "common.yaml").write_text("version: 1\n")
    with pytest.raises(ConfigError, match="no judge prompt 'profile'"):
        load_prompts(tmp_path, defaults=False).render_judge("profile", history="", text="")


def test_the_report_section_shows_the_judge_the_means_and_the_counts(facts: CatalogFacts) -> None:
    with Judge(ScriptedJudge(), name="scripted") as judge:
        section = judge_section(judge_rows(judge, facts, HISTORIES, ANSWERS, PROFILES))
    assert section["status"] == "measured" and "judged by scripted" in section["summary"]
    assert "explanations: 2 rated of 3, unparsed 0, skipped 1; mean faithful 5.00, useful 4.00, fluent 3.00" \
        in section["summary"]
    md = section["markdown"]
    assert "Judge: `scripted`" in md and "| explanations | 3 | 2 | 0 | 1 | 5.00 | 4.00 | 3.00 |" in md
    assert "| profiles | 1 | 1 | 0 | 0 | 2.00 | 3.00 | 4.00 |" in md
    assert "| explanations | faithful | 0 | 0 | 0 | 0 | 2 |" in md and "| profiles | fluent | 0 | 0 | 0 | 1 | 0 |" in md
    json.dumps(section, allow_nan=False)


# ------------------------------------------------------------------ neo eval --judge
READERS = {  # two readers of every book (different orders): the only users with >= 5 served items
    "dan": ["dune", "foundation", "neuromancer", "left-hand", "earthsea", "hobbit", "emma", "persuasion"],
    "eve": ["emma", "persuasion", "hobbit", "earthsea", "left-hand", "dune", "foundation", "neuromancer"],
}


def _catalog_with_readers(trained_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the bundle's catalog with two long histories (same items: the bundle's SIDs still hold)."""
    from neo_sdk import Catalog, import_file

    manifest = json.loads((trained_bundle / "manifest.json").read_text())
    db = tmp_path / "catalog.db"
    shutil.copyfile(manifest["catalog"], db)
    log = tmp_path / "readers.csv"
    log.write_text("user_id,item_id,timestamp,value,event\n" + "".join(
        f"{user},book:{book},2024-0{1 + n // 4}-{10 + n:02d}T10:00:00Z,4,read\n"
        for user, books in READERS.items() for n, book in enumerate(books)))
    catalog = Catalog(db)
    import_file(catalog, log, "interactions", create_users=True)
    catalog.close()
    return db


@pytest.mark.slow
def test_neo_eval_judge_end_to_end(trained_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from neo_sdk.cli import main

    db, out = _catalog_with_readers(trained_bundle, tmp_path), tmp_path / "eval"
    args = ["eval", "--bundle", str(trained_bundle), "--db", str(db), "--users", "5", "--split", "valid",
            "--no-sasrec", "--search", "0", "--steer-prompts", "0", "--cold-start", "none", "--bootstrap", "50",
            "--explain", "2", "--judge", "tests.test_judge:fake_judge", "--out", str(out)]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "judge: judged by tests.test_judge:fake_judge" in printed

    data = json.loads((out / "report.json").read_text())
    judged = data["judge"]
    assert judged["status"] == "measured" and judged["judge"] == "tests.test_judge:fake_judge"
    assert judged["cache"] == str(out / "judge.sqlite") and (out / "judge.sqlite").stat().st_size > 0
    explained, profiles = judged["explanations"], judged["profiles"]
    assert explained["n"] == 4 and profiles["n"] == 2  # 2 users x 2 mixed answers, a profile each
    assert explained["rated"] >= 1 and explained["unparsed"] == 0
    assert explained["rated"] + explained["skipped"] == 4
    assert explained["mean"] == {"faithful": 5.0, "useful": 4.0, "fluent": 3.0}
    assert explained["distribution"]["faithful"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": explained["rated"]}
    assert (profiles["rated"], profiles["unparsed"], profiles["skipped"]) == (1, 1, 0)
    assert profiles["mean"] == {"faithful": 2.0, "useful": 3.0, "fluent": 4.0}
    assert judged["calls"] == explained["rated"] + 2 and judged["cache_hits"] == 0
    assert {r["problem"] for r in judged["ratings"] if r["scores"] is None} == {
        "no JSON object or 'criterion: n' lines naming faithful, useful, fluent"}
    assert all(r["user"] in READERS for r in judged["ratings"])

    md = (out / "report.md").read_text()
    rated = explained["rated"]
    assert "## Judge" in md and "Judge: `tests.test_judge:fake_judge`" in md
    assert f"| explanations | 4 | {rated} | 0 | {4 - rated} | 5.00 | 4.00 | 3.00 |" in md
    assert "| profiles | 2 | 1 | 1 | 0 | 2.00 | 3.00 | 4.00 |" in md
    assert f"| explanations | faithful | 0 | 0 | 0 | 0 | {rated} |" in md and "![judge](judge.png)" in md
    assert data["plots"]["judge"] == "judge.png"
    assert (out / "judge.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(args) == 0  # the same answers again: every reply comes from <out>/judge.sqlite
    again = json.loads((out / "report.json").read_text())["judge"]
    assert again["calls"] == 0 and again["cache_hits"] == judged["calls"]
    assert (again["explanations"], again["profiles"]) == (explained, profiles)


def test_neo_eval_judge_needs_the_explanations_section(trained_bundle: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from neo_sdk.cli import main

    base = ["eval", "--bundle", str(trained_bundle), "--users", "2", "--search", "0"]
    capsys.readouterr()
    assert main([*base, "--explain", "0", "--judge", "tests.test_judge:fake_judge"]) == 1
    assert "--judge rates the explanations section: pass --explain N with N > 0" in capsys.readouterr().err
    assert main([*base, "--explain", "1", "--judge", "tests.no_such_judges:make"]) == 1
    assert "judge 'tests.no_such_judges:make': cannot import" in capsys.readouterr().err
    assert main([*base, "--judge-cache", "x.sqlite"]) == 1
    assert "pass --judge module:factory too" in capsys.readouterr().err


class _Broken(SimpleChatModel):
    @property
    def _llm_type(self) -> str:
        return "broken"

    def _call(self, messages: list[BaseMessage], stop: list[str] | None = None,
              run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> str:
        raise TimeoutError("provider timed out")


def test_a_failing_model_is_one_clear_error(facts: CatalogFacts) -> None:
    from neo_sdk.errors import NeoError

    with Judge(_Broken(), name="broken") as judge, pytest.raises(NeoError, match="judge model 'broken' failed: provider"):
        judge_rows(judge, facts, HISTORIES, ANSWERS, PROFILES)
