"""Shared fixtures: the self-authored sample catalog (``catalog/sample``) in a temp SQLite file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "catalog" / "sample"
MALFORMED = Path(__file__).parent / "data" / "malformed"


def build_sample_catalog(path: str | Path):
    """The sample catalog imported through the public importers, as a user would."""
    from neo_sdk import Catalog, import_file

    catalog = Catalog(path)
    catalog.declare_type("book", ["title", "genres", "year", "description"])
    catalog.declare_type("author", ["title", "genres", "description"])
    import_file(catalog, SAMPLE / "items.csv", "items")
    import_file(catalog, SAMPLE / "relations.csv", "relations")
    import_file(catalog, SAMPLE / "users.jsonl", "users")
    import_file(catalog, SAMPLE / "interactions.csv", "interactions")
    return catalog


@pytest.fixture
def sample_catalog(tmp_path: Path):
    catalog = build_sample_catalog(tmp_path / "sample.db")
    yield catalog
    catalog.close()


def snapshot(catalog) -> list[str]:
    """Every row of every table, as SQL: equal snapshots mean an unchanged database."""
    return list(catalog.db.conn.iterdump())


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained end to end on the sample catalog (2-layer slice, a few steps, all tasks).

    Quality is not the point (it is a few steps of a 2-layer slice): the runtime's guarantees
    (real items, resolved types, exclusions, persistence) must hold for any trained model.
    """
    import contextlib
    import io

    from neo_sdk.cli import main

    root = tmp_path_factory.mktemp("trained")
    db = str(root / "sample.db")
    build_sample_catalog(db).close()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
        assert main(["train", "--db", db, "--out", str(root / "bundle"), "--layers", "2", "--max-steps", "4",
                     "--max-minutes", "2", "--batch-size", "4", "--no-probes", "--seed", "0"]) == 0
    return root / "bundle"


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the run (``NEO_TEST_POSTGRES_URL``, or a throwaway one; see tests/_postgres.py)."""
    from tests._postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def pg_store(postgres_url: str):
    """A :class:`PostgresSessionStore` on an empty schema (the ``neo_`` tables dropped first)."""
    import psycopg

    from neo_sdk.session import PostgresSessionStore

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS neo_turns, neo_session_events, neo_sessions, neo_meta")
    store = PostgresSessionStore(postgres_url)
    yield store
    store.close()
