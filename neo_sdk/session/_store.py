"""Sessions in SQLite: turns, recorded events and state, resumable by id after a restart.

Every change is one ``BEGIN IMMEDIATE`` transaction (WAL mode, busy timeout), so a killed process
leaves the last committed turn and never a half-written one, and several sessions (threads or
processes) can write to one file at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import Any, Protocol, runtime_checkable

from neo_sdk import _sqlite
from neo_sdk.errors import SessionError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id TEXT, bundle TEXT NOT NULL, options TEXT NOT NULL,
    focus TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, updated);
CREATE TABLE IF NOT EXISTS session_events (
    session_id TEXT NOT NULL REFERENCES sessions(id), seq INTEGER NOT NULL, item_id TEXT NOT NULL,
    event TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (session_id, seq));
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id), idx INTEGER NOT NULL, request TEXT NOT NULL,
    answer TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (session_id, idx));
"""


@dataclass(frozen=True)
class SessionRecord:
    """A stored session: who, which bundle, options, focus, recorded events and turns (JSON)."""

    id: str
    user: str | None
    bundle: str
    options: dict[str, Any]
    focus: str | None
    created: float
    updated: float
    events: list[tuple[str, str]]  # (item id, event), in order
    turns: list[str]  # answer JSON, in order


class SessionStore:
    """One SQLite file of sessions. ``":memory:"`` keeps them for the process only."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            self._conn = _sqlite.connect(self.path)
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SessionError(f"{self.path}: not a usable session database ({exc})") from exc
        if row is None:
            with self._write():
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        elif int(row[0]) != SCHEMA_VERSION:
            raise SessionError(f"{self.path}: session schema {row[0]}, this neo-sdk reads {SCHEMA_VERSION}")

    def _write(self) -> AbstractContextManager[None]:
        return _sqlite.transaction(self._conn, self._lock)

    def close(self) -> None:
        self._conn.close()

    # ---------------------------------------------------------------------------- writes
    def create(self, *, user: str | None, bundle: str, options: dict[str, Any], history: list[str],
               session_id: str | None = None) -> str:
        """A new session (with an explicit starting history, if any); returns its id."""
        sid = session_id or uuid.uuid4().hex[:16]
        now = time.time()
        with self._write():
            if self._conn.execute("SELECT 1 FROM sessions WHERE id=?", [sid]).fetchone():
                raise SessionError(f"session {sid!r} already exists; resume it instead")
            self._conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, NULL, ?, ?)",
                               [sid, user, bundle, json.dumps(options, sort_keys=True), now, now])
            self._conn.executemany("INSERT INTO session_events VALUES (?, ?, ?, 'history', ?)",
                                   [(sid, n, item, now) for n, item in enumerate(history)])
        return sid

    def add_event(self, session_id: str, item_id: str, event: str) -> None:
        with self._write():
            seq = self._conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM session_events WHERE session_id=?",
                                     [session_id]).fetchone()[0]
            now = time.time()
            self._conn.execute("INSERT INTO session_events VALUES (?, ?, ?, ?, ?)",
                               [session_id, seq, item_id, event, now])
            self._conn.execute("UPDATE sessions SET focus=?, updated=? WHERE id=?", [item_id, now, session_id])

    def add_turn(self, session_id: str, render: Callable[[int], tuple[str, str]], focus: str | None) -> int:
        """Append a turn and the new focus in one transaction; returns the turn index.

        ``render(index)`` returns the request and answer JSON for the turn index it is given.
        """
        with self._write():
            idx = self._conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM turns WHERE session_id=?",
                                     [session_id]).fetchone()[0]
            request_json, answer_json = render(int(idx))
            now = time.time()
            self._conn.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
                               [session_id, idx, request_json, answer_json, now])
            self._conn.execute("UPDATE sessions SET focus=?, updated=? WHERE id=?", [focus, now, session_id])
        return int(idx)

    def next_turn(self, session_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM turns WHERE session_id=?",
                                     [session_id]).fetchone()
        return int(row[0])

    def delete(self, session_id: str) -> None:
        with self._write():
            for table, key in (("turns", "session_id"), ("session_events", "session_id"), ("sessions", "id")):
                self._conn.execute(f"DELETE FROM {table} WHERE {key}=?", [session_id])

    # ----------------------------------------------------------------------------- reads
    def exists(self, session_id: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM sessions WHERE id=?", [session_id]).fetchone() is not None

    def load(self, session_id: str) -> SessionRecord:
        """A stored session. Raises :class:`SessionError` when there is none."""
        with self._lock:  # one consistent snapshot (a read transaction)
            self._conn.execute("BEGIN")
            try:
                row = self._conn.execute(
                    "SELECT id, user_id, bundle, options, focus, created, updated FROM sessions WHERE id=?",
                    [session_id]).fetchone()
                if row is None:
                    raise SessionError(f"no session {session_id!r} in {self.path}")
                events = [(r[0], r[1]) for r in self._conn.execute(
                    "SELECT item_id, event FROM session_events WHERE session_id=? ORDER BY seq", [session_id])]
                turns = [r[0] for r in self._conn.execute(
                    "SELECT answer FROM turns WHERE session_id=? ORDER BY idx", [session_id])]
            finally:
                self._conn.execute("COMMIT")
        return SessionRecord(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], events, turns)

    def list(self, user: str | None = None, *, owner: str | EllipsisType | None = ...,
             limit: int | None = None) -> list[dict[str, Any]]:
        """Sessions (most recently updated first): id, user, created, updated, turns. ``user``: of one
        user only; ``owner``: made by this owner only (``None``: those without one; ``...``: any);
        ``limit``: at most this many."""
        sql, args = list_query("sessions", "turns", "json_extract(s.options, '$.owner') IS ?", "?",
                               user=user, owner=owner, limit=limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [{"id": r[0], "user": r[1], "created": r[2], "updated": r[3], "turns": r[4]} for r in rows]


def list_query(sessions: str, turns: str, owner_is: str, mark: str, *, user: str | None,
               owner: str | EllipsisType | None, limit: int | None) -> tuple[str, list[Any]]:
    """The SQL of ``list()`` and its arguments, in either store's dialect: its table names, its test
    of the options' owner against a parameter (``owner_is``) and its parameter mark."""
    sql = (f"SELECT s.id, s.user_id, s.created, s.updated, (SELECT COUNT(*) FROM {turns} t WHERE t.session_id=s.id)"
           f" FROM {sessions} s WHERE 1=1")
    args: list[Any] = []
    if user is not None:
        sql += f" AND s.user_id={mark}"
        args.append(user)
    if owner is not ...:
        sql += f" AND {owner_is}"
        args.append(owner)
    sql += " ORDER BY s.updated DESC"
    if limit is not None:
        sql += f" LIMIT {mark}"
        args.append(limit)
    return sql, args


@runtime_checkable
class SessionStoreLike(Protocol):
    """What both session stores offer: :class:`SessionStore` (SQLite) and ``PostgresSessionStore``."""

    path: str

    def close(self) -> None: ...

    def create(self, *, user: str | None, bundle: str, options: dict[str, Any], history: list[str],
               session_id: str | None = None) -> str: ...

    def add_event(self, session_id: str, item_id: str, event: str) -> None: ...

    def add_turn(self, session_id: str, render: Callable[[int], tuple[str, str]], focus: str | None) -> int: ...

    def next_turn(self, session_id: str) -> int: ...

    def delete(self, session_id: str) -> None: ...

    def exists(self, session_id: str) -> bool: ...

    def load(self, session_id: str) -> SessionRecord: ...

    def list(self, user: str | None = None, *, owner: str | EllipsisType | None = ...,
             limit: int | None = None) -> list[dict[str, Any]]: ...


def open_session_store(spec: str | os.PathLike[str] | SessionStoreLike) -> SessionStoreLike:
    """A session store: ``spec`` itself if it is one, PostgreSQL for a ``postgresql://`` (or ``postgres://``)
    URL, else the SQLite file at that path (``":memory:"``: this process only).
    """
    if isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://")):
        from neo_sdk.session._pg_store import PostgresSessionStore

        return PostgresSessionStore(spec)
    if isinstance(spec, (str, os.PathLike)):
        return SessionStore(spec)
    if isinstance(spec, SessionStoreLike):
        return spec
    raise SessionError(f"sessions must be a path, ':memory:', a postgresql:// URL or a session store, "
                       f"not {type(spec).__name__}")
