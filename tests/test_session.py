"""The session runtime on a really trained (tiny) bundle: real items, steering, memory, persistence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from neo_sdk import Catalog
from neo_sdk.errors import BundleError, ConfigError, SessionError, UnknownItemError
from neo_sdk.session import Answer, Neo, SessionStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def neo(trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Neo:
    runtime = Neo.load(trained_bundle, sessions=tmp_path_factory.mktemp("sessions") / "sessions.db")
    yield runtime
    runtime.close()


def check_items(neo: Neo, answer: Answer) -> None:
    """Every item exists in the catalog; the items that answer have the resolved type."""
    for item in answer.items:
        stored = neo.catalog.get(item.id)
        assert stored.title == item.title and stored.entity_type == item.type
        assert item.sid.startswith(f"<|{item.type}_0_")
    for item in answer.answer_items:
        assert item.type == answer.entity_type


@pytest.mark.parametrize(
    ("text", "task", "fmt"),
    [
        ("recommend books", "next_item", "ids"),
        ("find fantasy books", "search", "ids"),
        ("books like this, explain why", "like_this", "mixed"),
        ("recommend a book and explain why", "explain", "mixed"),
        ("recommend some authors", "next_item", "ids"),
        ("describe my taste", "profile", "text"),
    ],
)
def test_every_answer_names_real_items_of_the_resolved_type(neo: Neo, text: str, task: str, fmt: str) -> None:
    session = neo.session(user="ben", exclude_consumed=False)
    answer = session.ask(text)
    assert (answer.task, answer.format) == (task, fmt)
    check_items(neo, answer)
    assert answer.timings["total_ms"] > 0
    if fmt == "ids":
        assert 1 <= len(answer.items) <= answer.request.k
        assert all(item.score is not None and item.score <= 0 for item in answer.items)
        assert [i.score for i in answer.items] == sorted([i.score for i in answer.items], reverse=True)
    if fmt == "mixed":  # the answer starts with the item asked for
        assert answer.items and answer.items[0].role == "answer" and isinstance(answer.segments[0].item.id, str)
        assert answer.text.startswith(answer.items[0].label())
    if fmt == "text":
        assert answer.items == [] and answer.text.strip()
    assert str(answer).startswith(f"[{task} · {answer.entity_type} · {fmt}]")


def test_steering_overrides_the_words(neo: Neo) -> None:
    session = neo.session(user="ben", exclude_consumed=False)
    answer = session.ask("books like this, explain why", task="next_item", entity_type="author", format="ids", k=2)
    assert (answer.task, answer.entity_type, answer.format) == ("next_item", "author", "ids")
    assert 1 <= len(answer.items) <= 2 and all(i.type == "author" for i in answer.items)
    with pytest.raises(ConfigError, match="unknown entity type"):
        session.ask("recommend", entity_type="song")


def test_consumed_and_already_recommended_items_are_excluded(neo: Neo) -> None:
    consumed = {i.item_id for i in neo.catalog.history("ben")}
    session = neo.session(user="ben")
    first = session.ask("recommend 2 books")
    assert first.items and not {i.id for i in first.items} & consumed
    second = session.ask("recommend 2 books")
    assert not {i.id for i in second.items} & ({i.id for i in first.items} | consumed)
    # search is retrieval, not recommendation: consumed items may come back
    relaxed = neo.session(user="ben", exclude_consumed=False, exclude_recommended=False)
    ids = [i.id for i in relaxed.ask("recommend 8 books").items]
    assert len(ids) == 8 and consumed & set(ids)


def test_follow_ups_refer_to_the_right_items(neo: Neo) -> None:
    # the sample catalog has 8 books: keep earlier answers available so each turn has candidates
    session = neo.session(user="ben", exclude_consumed=False, exclude_recommended=False)
    listing = session.ask("find books", k=4)
    second = listing.items[1].id
    more = session.ask("more like the second one")
    assert more.task == "like_this" and more.request.focus == second
    assert second not in {i.id for i in more.items}  # never "like X" -> X
    focus = more.items[0].id
    without = session.ask("not that one")
    assert without.request.refines == more.turn and focus in without.request.exclude
    assert focus not in {i.id for i in without.items}
    sixties = session.ask("only from the 60s")
    assert (sixties.request.year_min, sixties.request.year_max) == (1960, 1969)
    assert sixties.items and all(1960 <= (i.year or 0) <= 1969 for i in sixties.items)
    people = session.ask("now authors instead")
    assert people.entity_type == "author" and people.task == "like_this"
    assert all(i.type == "author" for i in people.items)


def test_filters_that_leave_nothing_answer_plainly(neo: Neo) -> None:
    session = neo.session(user="ben")
    answer = session.ask("find books", filters={"year_min": 3000})
    assert answer.items == [] and "No books" in answer.text


def test_stream_events_add_up_to_the_answer(neo: Neo) -> None:
    session = neo.session(user="ana", exclude_consumed=False)
    for text in ("books like this, explain why", "find books"):
        events = list(session.stream(text))
        answer = events[-1].answer
        assert answer is not None and all(e.answer is None for e in events[:-1])
        assert "".join(e.text for e in events) == answer.text
        assert [e.item.id for e in events if e.item] == [i.id for i in answer.items]


def test_record_moves_the_focus_and_the_history(neo: Neo) -> None:
    session = neo.session(history=["book:dune"])
    assert session.focus == "book:dune"
    session.record("book:emma", "read")
    assert session.history[-1] == "book:emma" and session.focus == "book:emma"
    assert session.ask("books like this").request.focus == "book:emma"
    with pytest.raises(UnknownItemError):
        session.record("book:nope")


def test_bad_session_input_is_refused(neo: Neo) -> None:
    with pytest.raises(UnknownItemError, match="zed"):
        neo.session(user="zed")
    with pytest.raises(UnknownItemError):
        neo.session(history=["book:nope"])
    with pytest.raises(SessionError, match="no session"):
        neo.resume("missing")
    with pytest.raises(ConfigError, match="needs an item"):
        neo.session().ask("books like this")


def test_sessions_survive_a_restart(trained_bundle: Path, tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    with Neo.load(trained_bundle, sessions=db) as first:
        session = first.session(user="ben", exclude_consumed=False)
        listing = session.ask("find books", k=3)
        session.record("book:emma")
        sid = session.id
    with Neo.load(trained_bundle, sessions=db) as second:
        resumed = second.resume(sid)
        assert [a.model_dump() for a in resumed.turns] == [listing.model_dump()]
        assert resumed.focus == "book:emma" and resumed.history[-1] == "book:emma"
        follow = resumed.ask("more like the second one")
        assert follow.request.focus == listing.items[1].id and follow.turn == 1
        assert second.session(session_id=sid).turns[-1].turn == 1  # session_id= resumes too
        assert [s["id"] for s in second.store.list(user="ben")] == [sid]
        second.resume(sid).delete()
        with pytest.raises(SessionError, match="no session"):
            second.resume(sid)


def test_concurrent_sessions_share_one_store(neo: Neo) -> None:
    sessions = [neo.session(user=u, exclude_consumed=False) for u in ("ana", "ben", "chloe")]
    errors: list[BaseException] = []

    def talk(session) -> None:
        try:
            for _ in range(2):
                session.ask("find books", k=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in sessions:
        assert [a.turn for a in neo.resume(s.id).turns] == [0, 1]


def test_a_failed_turn_writes_nothing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db")
    sid = store.create(user=None, bundle="x", options={}, history=["a"])

    def broken(index: int) -> tuple[str, str]:
        raise RuntimeError("crash while rendering")

    with pytest.raises(RuntimeError):
        store.add_turn(sid, broken, focus="a")
    assert store.load(sid).turns == [] and store.next_turn(sid) == 0
    with pytest.raises(SessionError, match="already exists"):
        store.create(user=None, bundle="x", options={}, history=[], session_id=sid)
    store.close()


def test_a_killed_writer_leaves_a_readable_store(tmp_path: Path) -> None:
    """A process killed while writing turns in a loop: every committed turn reads back whole."""
    db = tmp_path / "s.db"
    code = (
        "import sys, json; from neo_sdk.session import SessionStore\n"
        f"s = SessionStore({str(db)!r}); sid = s.create(user=None, bundle='x', options={{}}, history=[])\n"
        "print(sid, flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    s.add_turn(sid, lambda i: ('{}', json.dumps({'turn': i, 'pad': 'x' * 20000})), focus=None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    sid = proc.stdout.readline().strip()
    threading.Event().wait(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = SessionStore(db)
    record = store.load(sid)
    store.close()
    assert record.turns, "the writer committed nothing in a second"
    assert [json.loads(t)["turn"] for t in record.turns] == list(range(len(record.turns)))


def test_bundle_without_its_catalog_is_refused(trained_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        Neo.load(trained_bundle, catalog=tmp_path / "nowhere.db", sessions=":memory:")
    other = Catalog(tmp_path / "other.db")
    other.close()
    with pytest.raises(BundleError):
        Neo.load(trained_bundle, catalog=tmp_path / "other.db", sessions=":memory:")


def test_a_users_prompt_folder_steers_inference(trained_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "recommend.yaml").write_text(
        "version: 7\ntasks:\n  next_item:\n    formats:\n      ids: SID list\n    families:\n"
        "      train:\n        - 'Next {type} please ({format_words}). History: {history}'\n")
    with Neo.load(trained_bundle, prompts=folder, sessions=":memory:") as custom:
        session = custom.session(user="ben")
        request = session.resolve("recommend 2 books")
        assert custom.prompt_text(request, session.history, "ben").startswith("Next book please (SID list).")
        assert all(i.type == "book" for i in session.ask("recommend 2 books").items)
    (folder / "recommend.yaml").write_text("version: 7\ntasks:\n  next_item:\n    formats: {}\n")
    with pytest.raises(ConfigError, match="recommend.yaml"):
        Neo.load(trained_bundle, prompts=folder, sessions=":memory:")
