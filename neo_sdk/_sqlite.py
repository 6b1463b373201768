"""The SQLite set-up shared by the catalog and session stores.

A connection runs in autocommit mode (``isolation_level=None``): writes are grouped explicitly by
:func:`transaction` (``BEGIN IMMEDIATE ... COMMIT``, ``ROLLBACK`` on any exception). Files use WAL,
so readers go on while one writer writes; a busy database is waited on for 30 seconds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MEMORY = ":memory:"
BUSY_TIMEOUT_S = 30.0


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating its folder if needed) a database: WAL unless in memory, NORMAL sync, foreign keys on.

    Raises:
        sqlite3.DatabaseError: the file is not a usable SQLite database.
    """
    path = str(path)
    if path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    try:
        if path != MEMORY:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, lock: threading.RLock) -> Iterator[None]:
    """All-or-nothing write block (``BEGIN IMMEDIATE``: one writer at a time, readers go on).

    ``lock`` keeps other threads sharing ``conn`` out until the block ends. Re-entrant: a block
    opened inside another (same thread) joins it, and the outer block commits or rolls back.
    """
    with lock:
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


@contextmanager
def page_cache(conn: sqlite3.Connection, kib: int) -> Iterator[None]:
    """A page cache of ``kib`` KiB for the block (a big write stops spilling pages), then the old size."""
    before = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    conn.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {before}")


def read_only(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to a database file we do not own (rows as :class:`sqlite3.Row`)."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn
