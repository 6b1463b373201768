"""A real PostgreSQL server for tests: ``NEO_TEST_POSTGRES_URL``, or a throwaway one started here.

The throwaway server lives in a temp folder (``initdb`` with trust auth, listening on 127.0.0.1 on
a free port, no fsync) and is stopped and removed at the end. As root it runs as the ``postgres``
user, since ``initdb`` refuses root. No server at all: a skip, or a failure when ``CI`` is set.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

URL_ENV = "NEO_TEST_POSTGRES_URL"
HOW = (f"install PostgreSQL (apt-get install postgresql: initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
       f" or set {URL_ENV}=postgresql://user:password@host:port/dbname")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it in CI (``CI`` set), where the PostgreSQL store must be tested."""
    message = f"no PostgreSQL server for the tests: {reason}; {HOW}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def find_bin() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/N/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent  # a symlink (/usr/local/bin/initdb) to the real folder
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), 
                   key=lambda p: [int(n) for n in Path(p).parts[-3].split(".") if n.isdigit()])
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """A connection URL to an empty database on a real server (the one in ``NEO_TEST_POSTGRES_URL`` if set)."""
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = find_bin()
    if bindir is None:
        unavailable("initdb was not found")
    as_postgres: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="neo-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user, in a folder it owns
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            unavailable("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, log, port = root / "data", root / "server.log", free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-locale", "--no-sync"], check=True, capture_output=True, text=True)
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                        "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off", "start"],
                       check=True, capture_output=True, text=True)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE neo_test")
    except (OSError, subprocess.CalledProcessError, psycopg.Error) as exc:
        detail = getattr(exc, "stderr", "") or (log.read_text() if log.exists() else "")
        _stop(as_postgres, bindir, data, root)
        unavailable(f"could not start a throwaway server with {bindir} ({exc}; {detail.strip()[-500:]})")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/neo_test"
    finally:
        _stop(as_postgres, bindir, data, root)


def _stop(as_postgres: list[str], bindir: Path, data: Path, root: Path) -> None:
    if (data / "postmaster.pid").exists():
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
