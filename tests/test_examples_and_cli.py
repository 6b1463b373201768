"""`neo ask`, `neo chat` and the three examples, run as a user would (subprocesses for examples)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neo_sdk.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_neo_ask_prints_and_json(trained_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sessions = str(tmp_path / "s.db")
    assert main(["ask", "--bundle", str(trained_bundle), "--user", "ben", "--sessions", sessions,
                 "find books, top 2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[search · book · ids]") and " 2. " in out
    assert main(["ask", "--bundle", str(trained_bundle), "--user", "ben", "--sessions", sessions, "--json",
                 "--type", "author", "-k", "1", "recommend"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["entity_type"] == "author" and len(answer["items"]) == 1
    assert answer["items"][0]["id"].startswith("author:")
    # --db points at the catalog explicitly; a wrong one is refused with a clear message
    assert main(["ask", "--bundle", str(trained_bundle), "--db", str(tmp_path / "none.db"), "hi"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_neo_chat_repl(trained_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("find books, top 2\n/record book:emma\nnot a task?\n"
                                                  "recommend 1 author\n/record book:nope\n/quit\n"))
    assert main(["chat", "--bundle", str(trained_bundle), "--user", "ben", "--sessions",
                 str(tmp_path / "s.db"), "--session", "repl"]) == 0
    out = capsys.readouterr().out
    assert "session repl" in out and "[search · book · ids]" in out
    assert "focus is now book:emma" in out and "[next_item · author · ids]" in out
    assert "error: no item with id 'book:nope'" in out


def test_quickstart(trained_bundle: Path, tmp_path: Path) -> None:
    out = run_example("quickstart.py", "--bundle", str(trained_bundle), "--user", "ben", cwd=tmp_path)
    assert "> top 10 for me" in out and "[profile · book · text]" in out and "[like_this · book · mixed]" in out


def test_langchain_chain(trained_bundle: Path, tmp_path: Path) -> None:
    out = run_example("langchain_chain.py", "--bundle", str(trained_bundle), "--user", "ben", cwd=tmp_path)
    assert out.count("  items: ") == 3 and "book:" in out


def test_custom_catalog(tmp_path: Path) -> None:
    out = run_example("custom_catalog.py", "--out", str(tmp_path / "pod"), "--layers", "2", "--max-steps", "2",
                      cwd=tmp_path)
    assert "[next_item · podcast · ids]" in out and "[like_this · host · ids]" in out
    assert "next podcast: HR@10" in out  # the default probes ran, on the type users listen to
    metrics = json.loads((tmp_path / "pod" / "bundle" / "manifest.json").read_text())["metrics"]
    assert metrics["target_types"] == ["podcast"] and metrics["probe_seconds"] > 0
    assert {"next_item_valid", "text_to_sid", "sid_to_type"} <= set(metrics["instruct"])
