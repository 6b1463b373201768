"""`neo catalog ...` end to end through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neo_sdk.cli import main
from tests.conftest import MALFORMED, SAMPLE


def neo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neo_sdk", *args], capture_output=True, text=True)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "cli.db")
    assert main(["catalog", "declare", "book", "--text-fields", "title,genres,description", "--db", path]) == 0
    assert main(["catalog", "declare", "author", "--db", path]) == 0
    for name, kind in [("items.csv", "items"), ("relations.csv", "relations"),
                       ("users.jsonl", "users"), ("interactions.csv", "interactions")]:
        assert main(["catalog", "import", str(SAMPLE / name), "--kind", kind, "--db", path]) == 0
    return path


def test_stats_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["catalog", "stats", "--db", db, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["entity_types"]["book"] == {"items": 8, "active": 8}
    assert (stats["users"], stats["interactions"], stats["relations"]["total"]) == (3, 14, 8)


def test_show(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["catalog", "show", "book:dune", "--db", db, "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["title"] == "Dune"
    assert item["relations"]["out"] == [["written_by", "author:herbert"]]
    assert main(["catalog", "show", "book:nope", "--db", db]) == 1
    assert "no item with id 'book:nope'" in capsys.readouterr().err


def test_malformed_import_exits_nonzero_and_changes_nothing(db: str) -> None:
    before = neo("catalog", "stats", "--db", db, "--json").stdout
    result = neo("catalog", "import", str(MALFORMED / "interactions_bad_timestamp.csv"),
                 "--kind", "interactions", "--db", db)
    assert result.returncode == 1
    assert "interactions_bad_timestamp.csv:3 (column 'timestamp'): unparsable timestamp" in result.stderr
    assert "Traceback" not in result.stderr
    assert neo("catalog", "stats", "--db", db, "--json").stdout == before


def test_column_mapping_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "m.db")
    src = tmp_path / "movies.csv"
    src.write_text("movieId,name\n1,Heat\n")
    main(["catalog", "declare", "movie", "--db", path])
    assert main(["catalog", "import", str(src), "--kind", "items", "--type", "movie",
                 "--column", "id=movieId", "--column", "title=name", "--db", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["inserted"] == 1
    assert main(["catalog", "import", str(src), "--column", "oops", "--kind", "items", "--db", path]) == 1


def test_unknown_source_and_missing_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "import", "nowhere.csv", "--db", str(tmp_path / "x.db")]) == 1
    assert "not a built-in dataset" in capsys.readouterr().err
    assert main(["catalog", "stats", "--db", str(tmp_path / "missing.db")]) == 1


def test_help_and_version() -> None:
    assert "catalog" in neo("--help").stdout
    assert "--upsert" in neo("catalog", "import", "--help").stdout
    assert neo("version").stdout.startswith("neo-sdk ")


@pytest.mark.slow
def test_demo_import_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's demo: import MovieLens-100k with people, then human and JSON stats."""
    db = str(tmp_path / "demo.db")
    assert main(["catalog", "import", "movielens-100k", "--with-people", "--db", db]) == 0
    capsys.readouterr()
    assert main(["catalog", "stats", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "movie            1,682 items" in text and "users              943" in text
    assert "OMDb join coverage: 1,397 / 1,682 movies" in text
    assert main(["catalog", "stats", "--db", db, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["entity_types"]["person"]["items"] > 0
    assert stats["interactions"] == 100_000
