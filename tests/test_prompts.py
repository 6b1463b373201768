"""Prompt templates: every shipped phrasing renders; bad files fail with the file and key named."""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from neo_sdk.errors import ConfigError
from neo_sdk.prompts import (
    TASK_FORMATS,
    TASK_PLACEHOLDERS,
    TEACHER_PLACEHOLDERS,
    PromptSet,
    default_prompts_dir,
    load_prompts,
)

ROOT = Path(__file__).resolve().parents[1]
MIXED_TASKS = ("explain", "like_this", "profile")

VALUES = {
    "item": "[[item:movie:1]]", "history": "[[item:movie:1]] [[item:movie:2]]",
    "query": "1990s crime", "type": "movie", "k": 3, "user": "age 24, M",
}


@pytest.fixture(scope="module")
def prompts() -> PromptSet:
    return load_prompts()


def test_default_folder_is_the_repository_prompts() -> None:
    assert default_prompts_dir() == ROOT / "prompts"
    assert (ROOT / "prompts" / "README.md").is_file()


def test_a_foreign_prompts_folder_beside_the_package_is_never_used(tmp_path: Path, prompts: PromptSet) -> None:
    # an installed wheel: site-packages/neo_sdk (templates copied in) beside another package's prompts/
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "neo_sdk", site / "neo_sdk", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "prompts").mkdir()
    (site / "prompts" / "common.yaml").write_text("version: 1\nsystem: I am another package's prompt\n")
    code = ("import neo_sdk, neo_sdk.prompts as p; print(neo_sdk.__file__); print(p.default_prompts_dir());"
            " print(p.load_prompts().hash)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    package, folder, digest = run.stdout.split()
    assert Path(package).parent == site / "neo_sdk"  # the copy, not the checkout
    assert Path(folder) == site / "neo_sdk" / "prompt_templates"
    assert digest == prompts.hash


def test_every_task_and_teacher_pattern_is_shipped(prompts: PromptSet) -> None:
    assert sorted(prompts.tasks) == sorted(TASK_PLACEHOLDERS)
    assert sorted(prompts.teacher) == sorted(TEACHER_PLACEHOLDERS)
    assert prompts.system == ""  # every token costs CPU time


def test_every_phrasing_renders_and_states_type_and_format(prompts: PromptSet) -> None:
    for task in prompts.tasks:
        for fmt in prompts.formats(task):
            for ph in prompts.phrasings(task, None):
                text = prompts.fill(ph, format=fmt, **VALUES)
                assert "{" not in text and "}" not in text, (ph.id, text)
                if task != "sid_to_type" and "type" in TASK_PLACEHOLDERS[task]:
                    assert "movie" in text, (ph.id, text)  # the target type, in words
                if task not in ("sid_to_text", "sid_to_type", "text_to_sid"):
                    assert prompts.format_words(task, fmt) in text, (ph.id, text)


def test_every_teacher_pattern_renders(prompts: PromptSet) -> None:
    for key, patterns in prompts.teacher.items():
        values = {name: f"<{name}>" for name in TEACHER_PLACEHOLDERS[key]}
        for i in range(len(patterns)):
            text = patterns[i].format(**values)
            assert "{" not in text, (key, i)


def test_mixed_tasks_have_20_train_phrasings(prompts: PromptSet) -> None:
    for task in MIXED_TASKS:
        assert len(prompts.phrasings(task, "train")) >= 20, task


def test_eval_families_are_held_out(prompts: PromptSet) -> None:
    for task in prompts.tasks:
        train = {p.text for p in prompts.phrasings(task, "train")}
        held = {p.text for p in prompts.phrasings(task, "eval")}
        assert held and not train & held, task
    for task in ("search", "text_to_sid"):
        assert len(prompts.phrasings(task, "eval")) >= 5


def test_prompts_stay_short(prompts: PromptSet) -> None:
    # the instruction without its values: long boilerplate costs every example CPU time
    for task in prompts.tasks:
        for ph in prompts.phrasings(task, "train"):
            bare = "".join(lit for lit, *_ in string.Formatter().parse(ph.text))
            assert len(bare) <= 80, (ph.id, ph.text)


def test_formats_are_declared_per_task(prompts: PromptSet) -> None:
    for task, allowed in TASK_FORMATS.items():
        assert set(prompts.formats(task)) <= allowed
    assert prompts.formats("like_this") == ["ids", "mixed"]


def test_render_is_deterministic_with_a_seeded_rng(prompts: PromptSet) -> None:
    a = [prompts.render("search", "train", random.Random(7), **VALUES) for _ in range(3)]
    b = [prompts.render("search", "train", random.Random(7), **VALUES) for _ in range(3)]
    assert a == b
    many = {prompts.render("search", "train", random.Random(s), **VALUES) for s in range(50)}
    assert len(many) > 5


def test_render_fills_plural_k_types_and_format_words(prompts: PromptSet) -> None:
    assert prompts.plural("movie") == "movies" and prompts.plural("person") == "people"
    assert prompts.values("search", type="person", k=1)["k_types"] == "1 person"
    assert prompts.values("search", type="person", k=3)["k_types"] == "3 people"
    assert prompts.values("like_this", "mixed")["format_words"] == prompts.format_words(
        "like_this", "mixed")
    assert prompts.render("next_item", index=0, history="[[item:movie:1]]", type="movie") == (
        "Recommend a movie. Output: id. History: [[item:movie:1]]")


def test_render_errors_are_config_errors(prompts: PromptSet) -> None:
    with pytest.raises(ConfigError, match=r"no value given for \{history\}"):
        prompts.render("next_item", index=0, type="movie")
    with pytest.raises(ConfigError, match="unknown phrasing family 'tset'"):
        prompts.render("search", "tset", **VALUES)
    with pytest.raises(ConfigError, match="format 'text' not declared"):
        prompts.render("search", format="text", **VALUES)
    with pytest.raises(ConfigError, match="no templates for task 'nope'"):
        prompts.phrasings("nope")


def test_version_and_hash(prompts: PromptSet) -> None:
    assert "builtin/search.yaml@1" in prompts.version
    assert len(prompts.hash) == 64 and load_prompts().hash == prompts.hash
    manifest = prompts.manifest()
    assert manifest["hash"] == prompts.hash and manifest["phrasings"]["explain"]["train"] >= 20


# ----------------------------------------------------------------- user folders
GOOD = """\
version: 2
tasks:
  search:
    formats: {ids: ids}
    families:
      train:
        - "Find {k_types}: {query}. Output: {format_words}."
      eval:
        - "Look up {query} ({types}). {format_words}."
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_user_folder_overrides_one_task(tmp_path: Path, prompts: PromptSet) -> None:
    _write(tmp_path, "search.yaml", GOOD)
    mine = load_prompts(tmp_path)
    assert [p.text for p in mine.phrasings("search", "train")] == [
        "Find {k_types}: {query}. Output: {format_words}."]
    assert mine.phrasings("explain") == prompts.phrasings("explain")  # the rest: built in
    assert "user/search.yaml@2" in mine.version and mine.hash != prompts.hash
    assert mine.render("search", query="noir", type="movie", k=2) == "Find 2 movies: noir. Output: ids."
    alone = load_prompts(tmp_path, defaults=False)
    assert sorted(alone.tasks) == ["search"]


def test_a_copy_of_the_shipped_folder_loads_alone(tmp_path: Path, prompts: PromptSet) -> None:
    shutil.copytree(ROOT / "prompts", tmp_path / "p")
    assert load_prompts(tmp_path / "p", defaults=False).hash == prompts.hash


BAD = {
    "unknown placeholder": (
        GOOD.replace("Find {k_types}: {query}", "Find {k_types}: {qury}"),
        r"search\.yaml: tasks\.search\.families\.train\[0\]: unknown placeholder \{qury\}",
    ),
    "missing required placeholder": (
        GOOD.replace(": {query}. Output", ". Output"),
        r"search\.yaml: tasks\.search\.families\.train\[0\]: missing required placeholder \{query\}",
    ),
    "missing key": (
        GOOD.replace("version: 2\n", ""),
        r"search\.yaml: version: Field required",
    ),
    "wrong type": (
        GOOD.replace('- "Look up {query} ({types}). {format_words}."', "- 42"),
        r"search\.yaml: tasks\.search\.families\.eval\[0\]: Input should be a valid string",
    ),
    "wrong type of families": (
        GOOD.replace("    families:\n", "    families: 3\n    extra:\n"),
        r"search\.yaml: tasks\.search\.families: Input should be a valid dictionary",
    ),
    "bad yaml": (
        GOOD.replace("formats: {ids: ids}", "formats: {ids: ids"),
        r"search\.yaml: not valid YAML \(line \d+, column \d+\)",
    ),
    "unknown task": (
        GOOD.replace("  search:", "  serch:"),
        r"search\.yaml: tasks\.serch: unknown task",
    ),
    "unknown format": (
        GOOD.replace("{ids: ids}", "{idz: ids}"),
        r"search\.yaml: tasks\.search\.formats\.idz \(key\): Input should be 'ids', 'text' or 'mixed'",
    ),
    "format a task cannot answer in": (
        GOOD.replace("{ids: ids}", "{ids: ids, text: words}"),
        r"search\.yaml: tasks\.search\.formats\.text: search cannot answer in format 'text'",
    ),
    "unknown key": (
        GOOD + "sistem: hi\n",
        r"search\.yaml: sistem: Extra inputs are not permitted",
    ),
    "phrasing in two families": (
        GOOD.replace('- "Look up {query} ({types}). {format_words}."',
                     '- "Find {k_types}: {query}. Output: {format_words}."'),
        (r"search\.yaml: tasks\.search\.families\.eval\[0\]: same phrasing as "
         r"tasks\.search\.families\.train\[0\]"),
    ),
    "no train family": (
        GOOD.replace("      train:", "      warmup:"),
        r"search\.yaml: tasks\.search\.families: needs a 'train' family",
    ),
    "malformed braces": (
        GOOD.replace("Output: {format_words}.\"", "Output: {format_words.\""),
        r"search\.yaml: tasks\.search\.families\.train\[0\]: .*literal braces",
    ),
    "format spec": (
        GOOD.replace("{query}. Output", "{query!r}. Output"),
        r"tasks\.search\.families\.train\[0\]: placeholder \{query\} may not have a format spec",
    ),
    "the answer in the prompt": (
        ("version: 1\ntasks:\n  sid_to_type:\n    formats: {text: type}\n    families:\n"
         "      train: [\"Is {item} a {type}?\"]\n"),
        r"search\.yaml: tasks\.sid_to_type\.families\.train\[0\]: unknown placeholder \{type\}",
    ),
    "unknown teacher key": (
        "version: 1\nteacher:\n  explian_genre: [\"x\"]\n",
        r"search\.yaml: teacher\.explian_genre: unknown teacher key",
    ),
    "teacher placeholder": (
        "version: 1\nteacher:\n  explain_genre: [\"Like {items}: {genre}.\"]\n",
        r"search\.yaml: teacher\.explain_genre\[0\]: unknown placeholder \{genre\}",
    ),
    "not a mapping": ("- a\n- b\n", r"search\.yaml: \(top level\): expected a mapping"),
    "unknown word group": (
        "version: 1\nwords:\n  plural: {person: people}\n",
        r"search\.yaml: words\.plural: unknown word group",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, case: str) -> None:
    text, pattern = BAD[case]
    _write(tmp_path, "search.yaml", text)
    with pytest.raises(ConfigError, match=pattern):
        load_prompts(tmp_path)


def test_every_problem_of_a_file_is_listed(tmp_path: Path) -> None:
    text = GOOD.replace("{query}. Output", "{qury}. Output").replace("({types})", "({typs})")
    _write(tmp_path, "search.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_prompts(tmp_path)
    message = str(info.value)
    assert "train[0]: unknown placeholder {qury}" in message
    assert "eval[0]: unknown placeholder {typs}" in message


def test_a_key_defined_twice_in_one_folder_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", GOOD)
    _write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(ConfigError, match=r"b\.yaml: task search is also defined in .*a\.yaml"):
        load_prompts(tmp_path)


def test_missing_or_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_prompts(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no .yaml files"):
        load_prompts(tmp_path)
