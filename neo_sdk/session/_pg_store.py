"""Sessions in PostgreSQL: the :class:`SessionStore` API on a server that several processes share.

Same tables as the SQLite store, prefixed ``neo_`` so they can live in an application's database.
Every change is one transaction; ``add_turn`` and ``add_event`` lock the session row first
(``SELECT ... FOR UPDATE``), so concurrent writers to one session get consecutive indices, and
``load`` reads one ``REPEATABLE READ`` snapshot. psycopg 3 is imported only when a store opens.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from neo_sdk.errors import SessionError
from neo_sdk.session._store import SCHEMA_VERSION, SessionRecord, list_query

if TYPE_CHECKING:
    import psycopg

_SCHEMA_LOCK = 0x6E656F5F73657373  # pg_advisory_xact_lock key ("neo_sess"): one process creates the tables
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS neo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS neo_sessions (
        id TEXT PRIMARY KEY, user_id TEXT, bundle TEXT NOT NULL, options TEXT NOT NULL, focus TEXT,
        created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS neo_sessions_user ON neo_sessions(user_id, updated)",
    """CREATE TABLE IF NOT EXISTS neo_session_events (
        session_id TEXT NOT NULL REFERENCES neo_sessions(id), seq INTEGER NOT NULL, item_id TEXT NOT NULL,
        event TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, PRIMARY KEY (session_id, seq))""",
    """CREATE TABLE IF NOT EXISTS neo_turns (
        session_id TEXT NOT NULL REFERENCES neo_sessions(id), idx INTEGER NOT NULL, request TEXT NOT NULL,
        answer TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, PRIMARY KEY (session_id, idx))""",
]
_CHECK = "check the host, port, database name, user and password in the URL, and that the server is running"
_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@]*:)([^@/?#]*)@")
_PARAM_PASSWORD = re.compile(r"(password=)([^&\s]*)")


def mask_password(url: str) -> str:
    """``url`` with its password (``user:secret@`` or ``password=secret``) shown as ``***``."""
    return _PARAM_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise SessionError("a postgresql:// session store needs psycopg 3: pip install 'psycopg[binary]'") from exc
    return psycopg


class PostgresSessionStore:
    """Sessions in a PostgreSQL database (``postgresql://user:password@host:port/dbname``).

    Thread-safe (one connection, used by one thread at a time); a connection the server closed is
    reopened once, before a transaction starts, so no write is ever sent twice.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self.path = mask_password(url)
        self._lock = threading.RLock()
        self._closed = False
        self._pg = _psycopg()
        self._conn = self._connect()
        try:
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO neo_meta VALUES ('schema_version', %s) ON CONFLICT (key) DO NOTHING",
                             [str(SCHEMA_VERSION)])
                version = conn.execute("SELECT value FROM neo_meta WHERE key='schema_version'").fetchone()[0]
        except BaseException:
            self.close()
            raise
        if int(version) != SCHEMA_VERSION:
            self.close()
            raise SessionError(f"{self.path}: session schema {version}, this neo-sdk reads {SCHEMA_VERSION}; "
                               "use the neo-sdk version that wrote it, or another database")

    def _connect(self) -> psycopg.Connection:
        try:
            options = self._pg.conninfo.conninfo_to_dict(self._url)
            timeout = {} if "connect_timeout" in options else {"connect_timeout": 10}
            return self._pg.connect(self._url, autocommit=True, **timeout)
        except self._pg.Error as exc:
            raise SessionError(f"{self.path}: cannot connect to PostgreSQL ({self._reason(exc)}); {_CHECK}") from exc

    def _reason(self, exc: Exception) -> str:
        """The first line of a driver error, never showing the password."""
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(self._url, self.path)

    @contextmanager
    def _transaction(self, *, snapshot: bool = False) -> Iterator[psycopg.Connection]:
        """One transaction (a read-only ``REPEATABLE READ`` one if ``snapshot``), rolled back if the block raises."""
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if snapshot else "BEGIN"
        with self._lock:
            conn = self._begin(begin)
            try:
                yield conn
                conn.commit()
            except BaseException as exc:
                if not conn.closed:
                    with contextlib.suppress(self._pg.Error):
                        conn.rollback()
                if isinstance(exc, self._pg.OperationalError):
                    raise self._failed(exc) from exc
                raise

    def _begin(self, begin: str) -> psycopg.Connection:
        """The connection, inside a new transaction; reopened once if the server had closed it."""
        if self._closed:
            raise SessionError(f"{self.path}: this session store is closed; open a new one")
        for attempt in (0, 1):
            try:
                self._conn.execute(begin)
                return self._conn
            except self._pg.OperationalError as exc:
                if attempt or not self._conn.closed:
                    raise self._failed(exc) from exc
                self._conn = self._connect()  # closed by the server (restart, idle timeout)
        raise AssertionError("unreachable")

    def _failed(self, exc: Exception) -> SessionError:
        return SessionError(f"{self.path}: a PostgreSQL transaction failed ({self._reason(exc)}); "
                            "check that the server is running and reachable")

    def _locked_session(self, conn: psycopg.Connection, session_id: str) -> None:
        """Lock the session's row until the transaction ends; raises :class:`SessionError` when there is none."""
        if conn.execute("SELECT 1 FROM neo_sessions WHERE id=%s FOR UPDATE", [session_id]).fetchone() is None:
            raise SessionError(f"no session {session_id!r} in {self.path}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    # ---------------------------------------------------------------------------- writes
    def create(self, *, user: str | None, bundle: str, options: dict[str, Any], history: list[str],
               session_id: str | None = None) -> str:
        """A new session (with an explicit starting history, if any); returns its id."""
        sid = session_id or uuid.uuid4().hex[:16]
        now = time.time()
        with self._transaction() as conn:
            inserted = conn.execute(
                "INSERT INTO neo_sessions VALUES (%s, %s, %s, %s, NULL, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
                [sid, user, bundle, json.dumps(options, sort_keys=True), now, now]).fetchone()
            if inserted is None:
                raise SessionError(f"session {sid!r} already exists; resume it instead")
            if history:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO neo_session_events VALUES (%s, %s, %s, 'history', %s)",
                                    [(sid, n, item, now) for n, item in enumerate(history)])
        return sid

    def add_event(self, session_id: str, item_id: str, event: str) -> None:
        with self._transaction() as conn:
            self._locked_session(conn, session_id)
            seq = conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM neo_session_events WHERE session_id=%s",
                               [session_id]).fetchone()[0]
            now = time.time()
            conn.execute("INSERT INTO neo_session_events VALUES (%s, %s, %s, %s, %s)",
                         [session_id, seq, item_id, event, now])
            conn.execute("UPDATE neo_sessions SET focus=%s, updated=%s WHERE id=%s", [item_id, now, session_id])

    def add_turn(self, session_id: str, render: Callable[[int], tuple[str, str]], focus: str | None) -> int:
        """Append a turn and the new focus in one transaction; returns the turn index.

        ``render(index)`` returns the request and answer JSON for the turn index it is given; it runs
        while the session row is locked, so no other writer can take the same index.
        """
        with self._transaction() as conn:
            self._locked_session(conn, session_id)
            idx = int(conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM neo_turns WHERE session_id=%s",
                                   [session_id]).fetchone()[0])
            request_json, answer_json = render(idx)
            now = time.time()
            conn.execute("INSERT INTO neo_turns VALUES (%s, %s, %s, %s, %s)",
                         [session_id, idx, request_json, answer_json, now])
            conn.execute("UPDATE neo_sessions SET focus=%s, updated=%s WHERE id=%s", [focus, now, session_id])
        return idx

    def next_turn(self, session_id: str) -> int:
        with self._transaction() as conn:
            row = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM neo_turns WHERE session_id=%s",
                               [session_id]).fetchone()
        return int(row[0])

    def delete(self, session_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT 1 FROM neo_sessions WHERE id=%s FOR UPDATE", [session_id])
            for table, key in (("neo_turns", "session_id"), ("neo_session_events", "session_id"),
                               ("neo_sessions", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {key}=%s", [session_id])

    # ----------------------------------------------------------------------------- reads
    def exists(self, session_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("SELECT 1 FROM neo_sessions WHERE id=%s", [session_id]).fetchone() is not None

    def load(self, session_id: str) -> SessionRecord:
        """A stored session, read as one snapshot. Raises :class:`SessionError` when there is none."""
        with self._transaction(snapshot=True) as conn:
            row = conn.execute(
                "SELECT id, user_id, bundle, options, focus, created, updated FROM neo_sessions WHERE id=%s",
                [session_id]).fetchone()
            if row is None:
                raise SessionError(f"no session {session_id!r} in {self.path}")
            events = [(r[0], r[1]) for r in conn.execute(
                "SELECT item_id, event FROM neo_session_events WHERE session_id=%s ORDER BY seq", [session_id])]
            turns = [r[0] for r in conn.execute(
                "SELECT answer FROM neo_turns WHERE session_id=%s ORDER BY idx", [session_id])]
        return SessionRecord(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], events, turns)

    def list(self, user: str | None = None, *, owner: str | EllipsisType | None = ...,
             limit: int | None = None) -> list[dict[str, Any]]:
        """Sessions (most recently updated first): id, user, created, updated, turns; filtered as
        :meth:`SessionStore.list <neo_sdk.session._store.SessionStore.list>` describes."""
        sql, args = list_query("neo_sessions", "neo_turns", "(s.options::jsonb ->> 'owner') IS NOT DISTINCT FROM %s",
                               "%s", user=user, owner=owner, limit=limit)
        with self._transaction() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [{"id": r[0], "user": r[1], "created": r[2], "updated": r[3], "turns": int(r[4])} for r in rows]
