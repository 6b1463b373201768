"""The PostgreSQL session store against a real server: the SQLite store's behaviour, shared by processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from neo_sdk.errors import SessionError
from neo_sdk.session import PostgresSessionStore, SessionStore, open_session_store
from neo_sdk.session._pg_store import mask_password
from neo_sdk.session._store import SessionRecord, SessionStoreLike
from tests._postgres import free_port

ROOT = Path(__file__).resolve().parents[1]


def turn(index: int) -> tuple[str, str]:
    return json.dumps({"ask": index}), json.dumps({"turn": index})


def without_times(record: SessionRecord) -> tuple:
    return (record.id, record.user, record.bundle, record.options, record.focus, record.events, record.turns)


def drop_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS neo_turns, neo_session_events, neo_sessions, neo_meta")


# ------------------------------------------------------------------ the SQLite store's behaviour
def test_create_and_load_round_trip(pg_store: PostgresSessionStore) -> None:
    options = {"owner": "key-1", "k": 5, "nested": {"z": [1, 2.5, None], "a": "é"}}
    before = time.time()
    sid = pg_store.create(user="ana", bundle="demo/bundle", options=options, history=["i1", "i2"])
    pg_store.add_event(sid, "i3", "liked")
    assert pg_store.add_turn(sid, turn, focus="i7") == 0
    assert pg_store.add_turn(sid, turn, focus="i8") == 1
    record = pg_store.load(sid)
    assert without_times(record) == (sid, "ana", "demo/bundle", options, "i8",
                                     [("i1", "history"), ("i2", "history"), ("i3", "liked")],
                                     ['{"turn": 0}', '{"turn": 1}'])
    assert len(sid) == 16
    assert before <= record.created <= record.updated <= time.time()
    anonymous = pg_store.create(user=None, bundle="b", options={}, history=[], session_id="anon")
    assert without_times(pg_store.load(anonymous)) == ("anon", None, "b", {}, None, [], [])


def test_same_records_as_the_sqlite_store(pg_store: PostgresSessionStore) -> None:
    sqlite = SessionStore(":memory:")
    for store in (sqlite, pg_store):
        store.create(user="ana", bundle="b", options={"owner": "k"}, history=["h"], session_id="s1")
        store.add_event("s1", "x", "disliked")
        store.add_turn("s1", turn, focus=None)
        store.create(user="ben", bundle="b", options={}, history=[], session_id="s2")
    assert without_times(pg_store.load("s1")) == without_times(sqlite.load("s1"))
    assert without_times(pg_store.load("s1")) == ("s1", "ana", "b", {"owner": "k"}, None,
                                                  [("h", "history"), ("x", "disliked")], ['{"turn": 0}'])
    drop = ("created", "updated")
    assert ([{k: v for k, v in s.items() if k not in drop} for s in pg_store.list()]
            == [{k: v for k, v in s.items() if k not in drop} for s in sqlite.list()]
            == [{"id": "s2", "user": "ben", "turns": 0}, {"id": "s1", "user": "ana", "turns": 1}])
    sqlite.close()


def test_add_event_appends_in_order_and_moves_the_focus(pg_store: PostgresSessionStore) -> None:
    sid = pg_store.create(user="u", bundle="b", options={}, history=["a"])
    pg_store.add_event(sid, "b", "liked")
    pg_store.add_event(sid, "c", "seen")
    record = pg_store.load(sid)
    assert record.events == [("a", "history"), ("b", "liked"), ("c", "seen")] and record.focus == "c"


def test_add_turn_indices_and_a_failed_turn_writes_nothing(pg_store: PostgresSessionStore) -> None:
    sid = pg_store.create(user=None, bundle="b", options={}, history=[])
    seen: list[int] = []

    def render(index: int) -> tuple[str, str]:
        seen.append(index)
        return turn(index)

    assert [pg_store.add_turn(sid, render, focus=f"f{n}") for n in range(3)] == [0, 1, 2]
    assert seen == [0, 1, 2] and pg_store.next_turn(sid) == 3

    def broken(index: int) -> tuple[str, str]:
        raise RuntimeError("crash while rendering")

    with pytest.raises(RuntimeError, match="crash while rendering"):
        pg_store.add_turn(sid, broken, focus="lost")
    record = pg_store.load(sid)
    assert record.turns == ['{"turn": 0}', '{"turn": 1}', '{"turn": 2}'] and record.focus == "f2"
    assert pg_store.next_turn(sid) == 3 and pg_store.add_turn(sid, turn, focus=None) == 3
    with psycopg.connect(pg_store.path) as conn:  # the request JSON is kept too
        rows = conn.execute("SELECT idx, request FROM neo_turns WHERE session_id=%s ORDER BY idx", [sid]).fetchall()
    assert rows == [(n, json.dumps({"ask": n})) for n in range(4)]


def test_delete_and_exists(pg_store: PostgresSessionStore) -> None:
    gone = pg_store.create(user="u", bundle="b", options={}, history=["a"], session_id="gone")
    kept = pg_store.create(user="u", bundle="b", options={}, history=["k"], session_id="kept")
    pg_store.add_turn(gone, turn, focus="a")
    pg_store.add_event(gone, "z", "liked")
    assert pg_store.exists(gone) and pg_store.exists(kept)
    pg_store.delete(gone)
    assert not pg_store.exists(gone) and pg_store.exists(kept)
    assert pg_store.next_turn(gone) == 0 and [s["id"] for s in pg_store.list()] == ["kept"]
    with pytest.raises(SessionError, match="no session 'gone'"):
        pg_store.load(gone)
    assert without_times(pg_store.load(kept)) == ("kept", "u", "b", {}, None, [("k", "history")], [])
    pg_store.delete("never-existed")  # a no-op, as in the SQLite store
    assert pg_store.create(user=None, bundle="b", options={}, history=[], session_id="gone") == "gone"
    assert without_times(pg_store.load("gone")) == ("gone", None, "b", {}, None, [], [])


def test_list_is_newest_first_and_filters_by_user(pg_store: PostgresSessionStore) -> None:
    for sid, user in (("s1", "ana"), ("s2", "ben"), ("s3", "ana")):
        pg_store.create(user=user, bundle="b", options={}, history=[], session_id=sid)
        time.sleep(0.01)
    pg_store.add_turn("s1", turn, focus=None)
    pg_store.add_turn("s1", turn, focus=None)
    listed = pg_store.list()
    assert [(s["id"], s["user"], s["turns"]) for s in listed] == [("s1", "ana", 2), ("s3", "ana", 0), ("s2", "ben", 0)]
    assert all(set(s) == {"id", "user", "created", "updated", "turns"} for s in listed)
    assert listed[0]["updated"] > listed[0]["created"] and listed[1]["updated"] == listed[1]["created"]
    assert [s["id"] for s in pg_store.list(user="ana")] == ["s1", "s3"]
    assert [s["id"] for s in pg_store.list(user="ben")] == ["s2"]
    assert pg_store.list(user="nobody") == []


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_list_filters_by_owner_and_limits(pg_store: PostgresSessionStore, tmp_path: Path, kind: str) -> None:
    store: SessionStoreLike = pg_store if kind == "postgres" else SessionStore(tmp_path / "s.db")
    for sid, owner in (("a1", "alice"), ("b1", "bob"), ("a2", "alice"), ("n1", None)):
        store.create(user=None, bundle="b", options={} if owner is None else {"owner": owner}, history=[],
                     session_id=sid)
        time.sleep(0.01)
    assert [s["id"] for s in store.list(owner="alice")] == ["a2", "a1"]
    assert [s["id"] for s in store.list(owner="bob")] == ["b1"]
    assert [s["id"] for s in store.list(owner=None)] == ["n1"]  # None: sessions no owner made
    assert [s["id"] for s in store.list()] == ["n1", "a2", "b1", "a1"]  # default: every owner
    assert [s["id"] for s in store.list(owner="alice", limit=1)] == ["a2"]
    assert store.list(owner="nobody") == []


def test_a_duplicate_id_is_refused(pg_store: PostgresSessionStore) -> None:
    pg_store.create(user="ana", bundle="first", options={}, history=["a"], session_id="fixed")
    with pytest.raises(SessionError, match=r"^session 'fixed' already exists; resume it instead$"):
        pg_store.create(user="ben", bundle="second", options={}, history=["b"], session_id="fixed")
    assert without_times(pg_store.load("fixed")) == ("fixed", "ana", "first", {}, None, [("a", "history")], [])


def test_an_unknown_id_is_refused(pg_store: PostgresSessionStore) -> None:
    where = pg_store.path
    with pytest.raises(SessionError) as err:
        pg_store.load("nope")
    assert str(err.value) == f"no session 'nope' in {where}"
    with pytest.raises(SessionError, match="no session 'nope'"):
        pg_store.add_turn("nope", turn, focus=None)
    with pytest.raises(SessionError, match="no session 'nope'"):
        pg_store.add_event("nope", "a", "liked")
    assert not pg_store.exists("nope") and pg_store.next_turn("nope") == 0 and pg_store.list() == []


def test_load_reads_one_snapshot(pg_store: PostgresSessionStore, postgres_url: str) -> None:
    """A turn committed while ``load`` runs shows in all of the record or in none of it."""
    sid = pg_store.create(user=None, bundle="b", options={}, history=[])
    pg_store.add_turn(sid, turn, focus="f0")
    loaded: list[SessionRecord] = []
    with psycopg.connect(postgres_url) as writer, psycopg.connect(postgres_url, autocommit=True) as watcher:
        writer.execute("LOCK TABLE neo_session_events IN ACCESS EXCLUSIVE MODE")  # load waits after its 1st read
        writer.execute("""INSERT INTO neo_turns VALUES (%s, 1, '{}', '{"turn": 1}', 0)""", [sid])
        writer.execute("UPDATE neo_sessions SET focus='f1' WHERE id=%s", [sid])
        reader = threading.Thread(target=lambda: loaded.append(pg_store.load(sid)))
        reader.start()
        deadline = time.monotonic() + 30
        while not watcher.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type='Lock'"
                                  " AND datname=current_database()").fetchone()[0]:
            assert time.monotonic() < deadline, "load never reached the locked table"
            time.sleep(0.01)
        writer.commit()
    reader.join()
    assert (loaded[0].focus, loaded[0].turns) == ("f0", ['{"turn": 0}'])
    after = pg_store.load(sid)
    assert (after.focus, after.turns) == ("f1", ['{"turn": 0}', '{"turn": 1}'])


# ------------------------------------------------------------------ concurrent writers
@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "a-store-per-thread"])
def test_concurrent_add_turn_from_threads(pg_store: PostgresSessionStore, postgres_url: str, shared: bool) -> None:
    sid = pg_store.create(user=None, bundle="b", options={}, history=[])
    stores = [pg_store if shared else PostgresSessionStore(postgres_url) for _ in range(8)]
    start = threading.Barrier(8)
    got: list[int] = []
    errors: list[BaseException] = []

    def write(store: PostgresSessionStore, name: int) -> None:
        def render(index: int) -> tuple[str, str]:
            time.sleep(0.002)  # hold the lock a while: the others must wait, not take the same index
            return "{}", json.dumps({"turn": index, "by": name})

        try:
            start.wait()
            for _ in range(5):
                got.append(store.add_turn(sid, render, focus=None))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(store, n)) for n, store in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        if store is not pg_store:
            store.close()
    assert errors == []
    assert sorted(got) == list(range(40))
    answers = [json.loads(a) for a in pg_store.load(sid).turns]
    assert [a["turn"] for a in answers] == list(range(40))
    assert sorted(a["by"] for a in answers) == sorted(list(range(8)) * 5)


WRITER = """
import json, os, sys, time
from neo_sdk.session import PostgresSessionStore

store = PostgresSessionStore(sys.argv[1])

def render(index):
    time.sleep(0.005)
    return "{}", json.dumps({"turn": index, "pid": os.getpid()})

print("ready", flush=True)
sys.stdin.readline()
got = [store.add_turn(sys.argv[2], render, focus=None) for _ in range(25)]
store.close()
print(json.dumps(got), flush=True)
"""


def test_concurrent_add_turn_from_two_processes(pg_store: PostgresSessionStore, postgres_url: str) -> None:
    sid = pg_store.create(user=None, bundle="b", options={}, history=[])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, sid], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    for proc in procs:  # both connected, then both start at once
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(json.loads(out))
    assert sorted(results[0] + results[1]) == list(range(50))
    answers = [json.loads(a) for a in pg_store.load(sid).turns]
    assert [a["turn"] for a in answers] == list(range(50))
    pids = [a["pid"] for a in answers]
    assert sorted(set(pids)) == sorted(p.pid for p in procs)
    assert sum(a != b for a, b in pairwise(pids)) >= 2, "the two writers never interleaved"


def test_stores_starting_at_once_create_the_tables_once(postgres_url: str) -> None:
    drop_tables(postgres_url)
    start = threading.Barrier(6)
    stores: list[PostgresSessionStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            start.wait()
            stores.append(PostgresSessionStore(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == [] and len(stores) == 6
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT key, value FROM neo_meta").fetchall() == [("schema_version", "1")]


# ------------------------------------------------------------------ connections and errors
def test_a_connection_closed_by_the_server_is_reopened(pg_store: PostgresSessionStore, postgres_url: str) -> None:
    sep = "&" if "?" in postgres_url else "?"
    store = PostgresSessionStore(f"{postgres_url}{sep}options=-c%20idle_session_timeout%3D200")  # idle 0.2 s: closed
    sid = store.create(user="ana", bundle="b", options={}, history=[])
    time.sleep(0.5)
    assert store.add_turn(sid, turn, focus="x") == 0
    time.sleep(0.5)
    assert without_times(store.load(sid)) == (sid, "ana", "b", {}, "x", [], ['{"turn": 0}'])
    store.close()
    with pytest.raises(SessionError, match="this session store is closed; open a new one"):
        store.exists(sid)  # closed here, not by the server: not reopened


def test_a_schema_version_mismatch_is_refused(pg_store: PostgresSessionStore, postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE neo_meta SET value='2' WHERE key='schema_version'")
    with pytest.raises(SessionError) as err:
        PostgresSessionStore(postgres_url)
    assert str(err.value) == (f"{mask_password(postgres_url)}: session schema 2, this neo-sdk reads 1; "
                              "use the neo-sdk version that wrote it, or another database")


def test_a_bad_url_names_the_masked_url() -> None:
    url = f"postgresql://neo:s3cret@127.0.0.1:{free_port()}/nodb"
    with pytest.raises(SessionError) as err:
        PostgresSessionStore(url)
    message = str(err.value)
    assert message.startswith(f"postgresql://neo:***@127.0.0.1:{url.rsplit(':', 1)[1]}: cannot connect to PostgreSQL (")
    assert message.endswith("; check the host, port, database name, user and password in the URL, "
                            "and that the server is running")
    assert "s3cret" not in message
    with pytest.raises(SessionError, match=r"^postgresql://neo:\*\*\*@localhost:port/db: cannot connect") as err:
        PostgresSessionStore("postgresql://neo:s3cret@localhost:port/db")
    assert "s3cret" not in str(err.value)


def test_mask_password() -> None:
    assert mask_password("postgresql://neo:s3cret@db.example:5432/app") == "postgresql://neo:***@db.example:5432/app"
    assert mask_password("postgres://neo@db:5432/app?password=s3cret&sslmode=require") == (
        "postgres://neo@db:5432/app?password=***&sslmode=require")
    assert mask_password("postgresql://db.example:5432/app") == "postgresql://db.example:5432/app"
    assert mask_password("postgresql://neo@db.example/app") == "postgresql://neo@db.example/app"


def test_the_path_is_the_masked_url(pg_store: PostgresSessionStore, postgres_url: str) -> None:
    url = postgres_url.replace("://postgres@", "://postgres:s3cret@")  # the test servers trust: any password
    if ":***@" not in mask_password(url):
        pytest.skip("NEO_TEST_POSTGRES_URL has no user:password@ to mask")
    store = PostgresSessionStore(url)
    assert store.path == mask_password(url) and "s3cret" not in store.path
    store.close()


# ------------------------------------------------------------------ open_session_store
def test_open_session_store_dispatch(pg_store: PostgresSessionStore, postgres_url: str, tmp_path: Path) -> None:
    for spec in (tmp_path / "a.db", str(tmp_path / "b.db"), ":memory:"):
        store = open_session_store(spec)
        assert type(store) is SessionStore and store.path == str(spec)
        store.close()
    sqlite = SessionStore(":memory:")
    assert open_session_store(sqlite) is sqlite and open_session_store(pg_store) is pg_store
    assert isinstance(sqlite, SessionStoreLike) and isinstance(pg_store, SessionStoreLike)
    sqlite.close()
    for scheme in ("postgresql", "postgres"):
        url = f"{scheme}://{postgres_url.split('://', 1)[1]}"
        store = open_session_store(url)
        assert type(store) is PostgresSessionStore and store.path == mask_password(url)
        store.create(user=None, bundle="b", options={}, history=[], session_id=f"via-{scheme}")
        store.close()
    assert sorted(s["id"] for s in pg_store.list()) == ["via-postgres", "via-postgresql"]
    with pytest.raises(SessionError, match="a path, ':memory:', a postgresql:// URL or a session store, not int"):
        open_session_store(42)  # type: ignore[arg-type]
