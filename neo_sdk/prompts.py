"""Prompt templates: one validated source of phrasing for training and inference.

Templates live in YAML files in a folder (the repository's ``prompts/`` by default; see
``prompts/README.md`` for the authoring guide). Each file has a ``version`` and any of:

* ``system``: the system prompt text (empty by default: every token costs CPU time);
* ``words``: small vocabularies used when building prompts and labels (``plurals``,
  ``relations``, ``roles``, ``misc``);
* ``tasks``: per task, the ``formats`` it can answer in (format -> the words that state it, filled
  into ``{format_words}``) and phrasing ``families`` (``train``, ``eval``, ...; a phrasing may sit
  in one family only, so evaluation can use phrasings never trained on);
* ``teacher``: sentence patterns of the offline template teacher and the LLM teacher;
* ``judge``: the LLM judge's prompts (``neo eval --judge``; :data:`JUDGE_PLACEHOLDERS`).

Every phrasing is a :meth:`str.format` pattern; its ``{placeholders}`` are checked against the
task's allowed set, so a typo is an error at load time that names the file and the key, e.g.
``prompts/search.yaml: tasks.search.families.train[3]: unknown placeholder {qury}``.

Example:
    >>> prompts = load_prompts()
    >>> prompts.render("next_item", family="train", index=0, history="[[item:1]]", type="movie")
    'Recommend a movie. Output: id. History: [[item:1]]'
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from neo_sdk._names import TASK_NAMES, OutputFormat
from neo_sdk.errors import ConfigError

#: Placeholders each task may use. ``types`` (plural of ``type``), ``k_types`` ("3 movies") and
#: ``format_words`` are filled in by :meth:`PromptSet.render` when not given.
TASK_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "sid_to_text": frozenset({"item", "type"}),
    "text_to_sid": frozenset({"query", "type", "types", "format_words"}),
    "sid_to_type": frozenset({"item"}),  # the type is the answer: it may not appear
    "next_item": frozenset({"history", "type", "types", "user", "format_words"}),
    "search": frozenset({"query", "type", "types", "k", "k_types", "format_words"}),
    "explain": frozenset({"history", "type", "types", "user", "format_words"}),
    "profile": frozenset({"history", "user", "format_words"}),
    "like_this": frozenset({"item", "type", "types", "k", "k_types", "format_words"}),
    "about": frozenset({"item", "history", "type", "types", "user", "format_words"}),
}

#: Each phrasing must use at least one placeholder of every group (task, target type and output
#: format must be stated, so the trained model is steerable by language).
TASK_REQUIRED: dict[str, tuple[frozenset[str], ...]] = {
    "sid_to_text": (frozenset({"item"}),),
    "text_to_sid": (frozenset({"query"}), frozenset({"type", "types"})),
    "sid_to_type": (frozenset({"item"}),),
    "next_item": (frozenset({"history"}), frozenset({"type", "types"}), frozenset({"format_words"})),
    "search": (frozenset({"query"}), frozenset({"type", "types", "k_types"}),
               frozenset({"format_words"})),
    "explain": (frozenset({"history"}), frozenset({"type", "types"}), frozenset({"format_words"})),
    "profile": (frozenset({"history"}), frozenset({"format_words"})),
    "like_this": (frozenset({"item"}), frozenset({"type", "types", "k_types"}),
                  frozenset({"format_words"})),
    "about": (frozenset({"item"}), frozenset({"history"}), frozenset({"format_words"})),
}

#: Output formats each task may declare.
TASK_FORMATS: dict[str, frozenset[str]] = {
    "sid_to_text": frozenset({"text"}),
    "text_to_sid": frozenset({"ids"}),
    "sid_to_type": frozenset({"text"}),
    "next_item": frozenset({"ids"}),
    "search": frozenset({"ids"}),
    "explain": frozenset({"mixed"}),
    "profile": frozenset({"text"}),
    "like_this": frozenset({"ids", "mixed"}),
    "about": frozenset({"mixed"}),
}

for _table in (TASK_PLACEHOLDERS, TASK_REQUIRED, TASK_FORMATS):  # the task names are neo_sdk._names's
    if set(_table) != set(TASK_NAMES):
        raise ImportError(f"prompt rules name {sorted(_table)}, the tasks are {sorted(TASK_NAMES)} (neo_sdk._names)")
del _table

#: Teacher sentence patterns and the placeholders each may use.
_GENRES = frozenset({"genres", "a_genres", "A_genres"})  # "action and drama", "an action and drama", "An ..."
TEACHER_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "explain_person": frozenset({"items", "relation", "Relation", "name", "role"}),
    "explain_genre": _GENRES | {"items", "type", "types"},
    "explain_decade": frozenset({"items", "decade"}),
    "explain_own_person": frozenset({"relation", "Relation", "name", "role"}),
    "explain_fallback": _GENRES | {"year", "type", "types"},
    "explain_popular": frozenset({"type"}),
    "profile_genres": _GENRES | {"types"},
    "profile_decades": frozenset({"decades"}),
    "profile_people": frozenset({"names"}),
    "profile_fallback": frozenset({"types"}),
    "similar_person": frozenset({"relation", "name", "role"}),
    "similar_genre": _GENRES | {"type", "types"},
    "similar_decade": frozenset({"decade"}),
    "similar_work": frozenset({"items"}),
    "similar_cooccur": frozenset(),
    "llm_system": frozenset(),
    "llm_explain": frozenset({"history", "target", "facts"}),
    "llm_profile": frozenset({"history", "facts"}),
    "llm_similar": frozenset({"item", "similar", "facts"}),
}

WORD_GROUPS = frozenset({"plurals", "relations", "roles", "synonyms", "grounds", "citation", "misc"})
_FAMILY_NAME = r"^[a-z][a-z0-9_]*$"

#: The LLM judge's prompts (``judge.yaml``, read by ``neo_sdk.evaluation.Judge``): allowed and required placeholders.
JUDGE_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "explanation": frozenset({"history", "item", "text"}),
    "profile": frozenset({"history", "text"}),
}
_JUDGE_REQUIRED: dict[str, tuple[frozenset[str], ...]] = {
    "system": (), "explanation": (frozenset({"item"}), frozenset({"text"})), "profile": (frozenset({"text"}),)}


# ------------------------------------------------------------------ file schema
class TaskSpec(BaseModel):
    """One task's templates in a prompt file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: StrictStr = ""
    formats: dict[OutputFormat, StrictStr] = Field(min_length=1)
    families: dict[str, list[StrictStr]] = Field(min_length=1)


class PromptFile(BaseModel):
    """The schema of one YAML file in a prompts folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: StrictInt | StrictStr
    system: StrictStr | None = None
    words: dict[str, dict[str, StrictStr]] = Field(default_factory=dict)
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)
    teacher: dict[str, list[StrictStr]] = Field(default_factory=dict)
    judge: dict[str, StrictStr] = Field(default_factory=dict)


# --------------------------------------------------------------------- runtime
@dataclass(frozen=True)
class Phrasing:
    """One phrasing of a task: where it comes from and how to fill it."""

    task: str
    family: str
    index: int
    text: str
    source: str

    @property
    def id(self) -> str:
        """Stable name such as ``search/eval/2`` (recorded in example metadata)."""
        return f"{self.task}/{self.family}/{self.index}"


class _Values(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


class PromptSet:
    """Validated templates from one or two folders (built-in defaults, then a user folder).

    Use :func:`load_prompts` to make one. Rendering is the same for training (``family="train"``)
    and inference (``family="eval"`` or ``None`` for any family).
    """

    def __init__(
        self,
        *,
        system: str,
        words: dict[str, dict[str, str]],
        tasks: dict[str, TaskSpec],
        teacher: dict[str, list[str]],
        origins: dict[str, str],
        versions: dict[str, str],
        judge: dict[str, str] | None = None,
    ) -> None:
        self.system = system
        self.judge = dict(judge or {})  # evaluation only: not in the hash (it shapes no training)
        self.words = words
        self.tasks = tasks
        self.teacher = teacher
        self.origins = origins  # "task:<name>" / "teacher:<key>" -> source file label
        self.versions = versions  # source file label -> version
        canonical = {
            "system": system,
            "words": words,
            "tasks": {k: v.model_dump() for k, v in sorted(tasks.items())},
            "teacher": teacher,
        }
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
        self.hash = hashlib.sha256(blob).hexdigest()

    def __repr__(self) -> str:
        return f"PromptSet(tasks={sorted(self.tasks)}, hash={self.hash[:12]})"

    @property
    def version(self) -> str:
        """The source files and their declared versions, e.g. ``builtin/search.yaml@1,...``."""
        return ",".join(f"{name}@{v}" for name, v in sorted(self.versions.items()))

    def manifest(self) -> dict[str, Any]:
        """What a bundle records: content hash, file versions and phrasing counts."""
        counts = {
            task: {fam: len(items) for fam, items in spec.families.items()}
            for task, spec in sorted(self.tasks.items())
        }
        return {"hash": self.hash, "versions": dict(sorted(self.versions.items())),
                "phrasings": counts}

    # ------------------------------------------------------------------ lookup
    def spec(self, task: str) -> TaskSpec:
        if task not in self.tasks:
            raise ConfigError(
                f"no templates for task {task!r} (loaded: {', '.join(sorted(self.tasks))});"
                " add it to a file in your prompts folder"
            )
        return self.tasks[task]

    def families(self, task: str) -> list[str]:
        """Family names of a task, in file order."""
        return list(self.spec(task).families)

    def formats(self, task: str) -> list[str]:
        """Output formats a task declares; the first is its default."""
        return list(self.spec(task).formats)

    def phrasings(self, task: str, family: str | Sequence[str] | None = None) -> list[Phrasing]:
        """The phrasings of a task in the given family (or families; ``None``: all)."""
        spec = self.spec(task)
        names = _family_names(spec, family, task)
        source = self.origins.get(f"task:{task}", "?")
        return [
            Phrasing(task, name, i, text, source)
            for name in names
            for i, text in enumerate(spec.families[name])
        ]

    def choose(
        self,
        task: str,
        family: str | Sequence[str] | None = "train",
        rng: random.Random | None = None,
        *,
        index: int | None = None,
    ) -> Phrasing:
        """One phrasing: ``index`` within the (first) family, else a random one (``rng``), else the first."""
        options = self.phrasings(task, family)
        if index is not None:
            if not 0 <= index < len(options):
                raise ConfigError(f"{task}: phrasing index {index} out of range (0..{len(options) - 1})")
            return options[index]
        return rng.choice(options) if rng is not None else options[0]

    def format_words(self, task: str, format: str | None = None) -> str:
        spec = self.spec(task)
        fmt = format or next(iter(spec.formats))
        if fmt not in spec.formats:
            raise ConfigError(f"{task}: format {fmt!r} not declared (declared: {', '.join(spec.formats)})")
        return spec.formats[fmt]  # type: ignore[index]

    def plural(self, type_name: str) -> str:
        """``movie`` -> ``movies``; irregular forms come from ``words.plurals``."""
        plurals = self.words.get("plurals", {})
        if type_name in plurals:
            return plurals[type_name]
        if type_name.endswith(("s", "x", "ch", "sh")):
            return type_name + "es"
        if type_name.endswith("y") and type_name[-2:-1] not in "aeiou":
            return type_name[:-1] + "ies"
        return type_name + "s"

    def word(self, group: str, key: str, default: str | None = None) -> str:
        """A word from ``words.<group>.<key>``, else ``default`` (else the key itself)."""
        value = self.words.get(group, {}).get(key)
        if value is not None:
            return value
        return key if default is None else default

    # --------------------------------------------------------------- rendering
    def values(self, task: str, format: str | None = None, **values: Any) -> dict[str, Any]:
        """``values`` completed with ``types``, ``k_types`` and ``format_words``."""
        out = dict(values)
        if "type" in out:
            out.setdefault("types", self.plural(str(out["type"])))
            if "k" in out:
                k = int(out["k"])
                out.setdefault("k_types", f"{k} {out['type'] if k == 1 else out['types']}")
        out.setdefault("format_words", self.format_words(task, format))
        return out

    def render(
        self,
        task: str,
        family: str | Sequence[str] | None = "train",
        rng: random.Random | None = None,
        *,
        index: int | None = None,
        format: str | None = None,
        **values: Any,
    ) -> str:
        """Fill one phrasing of ``task`` (chosen as in :meth:`choose`) with ``values``.

        Raises:
            ConfigError: unknown task/family/format, or a placeholder without a value.
        """
        phrasing = self.choose(task, family, rng, index=index)
        return self.fill(phrasing, format=format, **values)

    def fill(self, phrasing: Phrasing, *, format: str | None = None, **values: Any) -> str:
        """Fill a phrasing returned by :meth:`choose` / :meth:`phrasings`."""
        full = self.values(phrasing.task, format, **values)
        try:
            return phrasing.text.format_map(_Values(full))
        except KeyError as exc:
            raise ConfigError(
                f"{phrasing.source}: {phrasing.id}: no value given for {{{exc.args[0]}}}"
            ) from exc

    def render_teacher(self, key: str, rng: random.Random | None = None, **values: Any) -> str:
        """Fill one of the ``teacher.<key>`` sentence patterns (random with ``rng``, else the first)."""
        options = self.teacher.get(key)
        if not options:
            raise ConfigError(f"no teacher patterns for {key!r}; add teacher.{key} to a prompts file")
        text = rng.choice(options) if rng is not None else options[0]
        try:
            return text.format_map(_Values(values))
        except KeyError as exc:
            raise ConfigError(
                f"{self.origins.get('teacher:' + key, '?')}: teacher.{key}: no value for"
                f" {{{exc.args[0]}}}"
            ) from exc

    def render_judge(self, key: str, **values: Any) -> str:
        """Fill the ``judge.<key>`` prompt (``system``, ``explanation``, ``profile``)."""
        text = self.judge.get(key)
        if text is None:
            raise ConfigError(f"no judge prompt {key!r}; add judge.{key} to a prompts file (see judge.yaml)")
        try:
            return text.format_map(_Values(values))
        except KeyError as exc:
            raise ConfigError(
                f"{self.origins.get('judge:' + key, '?')}: judge.{key}: no value for {{{exc.args[0]}}}"
            ) from exc


# --------------------------------------------------------------------- loading
def default_prompts_dir() -> Path:
    """The built-in templates: the package's ``prompt_templates/``.

    In a checkout that folder is a link to the repository's ``prompts/`` (the path returned, so
    messages name the file you edit); a wheel holds a copy. Nothing outside the package is read:
    in ``site-packages`` a ``prompts/`` folder beside ``neo_sdk`` belongs to another package. Only
    a checkout whose link did not survive (``git config core.symlinks false``) falls back to the
    ``prompts/`` beside a ``pyproject.toml`` naming neo-sdk.
    """
    packaged = Path(str(resources.files("neo_sdk") / "prompt_templates"))
    if packaged.is_dir():
        return packaged.resolve()
    root = Path(__file__).resolve().parents[1]
    if (root / "prompts").is_dir() and _is_neo_checkout(root):
        return root / "prompts"
    raise ConfigError(
        f"built-in prompt templates not found in {packaged};"
        " reinstall neo-sdk or pass load_prompts(directory=...)"
    )


def _is_neo_checkout(root: Path) -> bool:
    try:
        return re.search(r'^name\s*=\s*"neo-sdk"', (root / "pyproject.toml").read_text(), re.MULTILINE) is not None
    except OSError:
        return False


def load_prompts(directory: str | Path | None = None, *, defaults: bool = True) -> PromptSet:
    """Load and validate prompt templates.

    Args:
        directory: a folder of ``*.yaml`` files. ``None``: only the built-in templates.
        defaults: with a ``directory``, start from the built-in templates and let the folder's
            tasks, teacher patterns, words and system prompt replace theirs (one key at a time);
            ``False``: the folder alone.

    Returns:
        The merged, validated :class:`PromptSet`.

    Raises:
        ConfigError: a file is not valid YAML or breaks the schema; the message names the file and
            the key path of every problem found.
    """
    layers: list[tuple[str, Path]] = []
    if directory is None or defaults:
        layers.append(("builtin", default_prompts_dir()))
    if directory is not None:
        path = Path(directory)
        if not path.is_dir():
            raise ConfigError(f"prompts directory {path} does not exist (or is not a folder)")
        layers.append(("user", path))
    system = ""
    words: dict[str, dict[str, str]] = {}
    tasks: dict[str, TaskSpec] = {}
    teacher: dict[str, list[str]] = {}
    judge: dict[str, str] = {}
    origins: dict[str, str] = {}
    versions: dict[str, str] = {}
    for origin, folder in layers:
        files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        if not files:
            raise ConfigError(f"prompts directory {folder} holds no .yaml files")
        seen: dict[str, Path] = {}  # key -> file, to refuse duplicates inside one folder
        for file in files:
            parsed = _read_file(file)
            versions[f"{origin}/{file.name}"] = str(parsed.version)
            keys = (
                [f"task:{t}" for t in parsed.tasks]
                + [f"teacher:{t}" for t in parsed.teacher]
                + [f"judge:{t}" for t in parsed.judge]
                + [f"words:{g}.{w}" for g, ws in parsed.words.items() for w in ws]
                + (["system"] if parsed.system is not None else [])
            )
            for key in keys:
                if key in seen:
                    raise ConfigError(
                        f"{file}: {key.replace(':', ' ')} is also defined in {seen[key]};"
                        " define each key in one file of a folder"
                    )
                seen[key] = file
                origins[key] = str(file)
            if parsed.system is not None:
                system = parsed.system
            for group, entries in parsed.words.items():
                words.setdefault(group, {}).update(entries)
            tasks.update(parsed.tasks)
            teacher.update({k: list(v) for k, v in parsed.teacher.items()})
            judge.update(parsed.judge)
    return PromptSet(system=system, words=words, tasks=tasks, teacher=teacher,
                     origins=origins, versions=versions, judge=judge)


def _read_file(file: Path) -> PromptFile:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the file: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{file}: (top level): expected a mapping with 'version' and 'tasks'/'teacher'/'words',"
            f" got {type(raw).__name__}"
        )
    try:
        parsed = PromptFile.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_loc(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(_problems_message(file, problems)) from exc
    problems = _check(parsed)
    if problems:
        raise ConfigError(_problems_message(file, problems))
    return parsed


def _problems_message(file: Path, problems: list[str]) -> str:
    head = f"{file}: {problems[0]}"
    rest = "".join(f"\n  {file}: {p}" for p in problems[1:6])
    more = f"\n  ... and {len(problems) - 6} more" if len(problems) > 6 else ""
    return head + rest + more


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        elif part in ("str", "int") and out:  # union branch names add nothing for authors
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _placeholders(text: str) -> list[str]:
    """Field names of a format pattern; ValueError on a malformed one."""
    names = []
    for _, field, spec, conversion in string.Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"placeholder {{{field}}} must be a plain name like {{history}}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{field}}} may not have a format spec or conversion")
        names.append(field)
    return names


def _check(parsed: PromptFile) -> list[str]:
    """Semantic checks pydantic cannot express; each problem starts with its key path."""
    problems: list[str] = []
    for group in parsed.words:
        if group not in WORD_GROUPS:
            problems.append(f"words.{group}: unknown word group (known: {', '.join(sorted(WORD_GROUPS))})")
    for key, patterns in parsed.teacher.items():
        if key not in TEACHER_PLACEHOLDERS:
            problems.append(
                f"teacher.{key}: unknown teacher key (known: {', '.join(sorted(TEACHER_PLACEHOLDERS))})"
            )
            continue
        if not patterns:
            problems.append(f"teacher.{key}: needs at least one pattern")
        for i, text in enumerate(patterns):
            problems += _check_text(f"teacher.{key}[{i}]", text, TEACHER_PLACEHOLDERS[key], ())
    for key, text in parsed.judge.items():
        if key not in JUDGE_PLACEHOLDERS:
            problems.append(f"judge.{key}: unknown judge key (known: {', '.join(sorted(JUDGE_PLACEHOLDERS))})")
            continue
        problems += _check_text(f"judge.{key}", text, JUDGE_PLACEHOLDERS[key], _JUDGE_REQUIRED[key])
    for task, spec in parsed.tasks.items():
        path = f"tasks.{task}"
        if task not in TASK_PLACEHOLDERS:
            problems.append(f"{path}: unknown task (known: {', '.join(sorted(TASK_PLACEHOLDERS))})")
            continue
        for fmt in spec.formats:
            if fmt not in TASK_FORMATS[task]:
                problems.append(
                    f"{path}.formats.{fmt}: {task} cannot answer in format {fmt!r}"
                    f" (allowed: {', '.join(sorted(TASK_FORMATS[task]))})"
                )
        if "train" not in spec.families:
            problems.append(f"{path}.families: needs a 'train' family")
        owner: dict[str, str] = {}
        for family, texts in spec.families.items():
            fpath = f"{path}.families.{family}"
            if not re.match(_FAMILY_NAME, family):
                problems.append(f"{fpath}: family names are lowercase words like 'train' or 'eval'")
            if not texts:
                problems.append(f"{fpath}: needs at least one phrasing")
            for i, text in enumerate(texts):
                where = f"{fpath}[{i}]"
                norm = " ".join(text.split()).lower()
                if norm in owner:
                    problems.append(f"{where}: same phrasing as {owner[norm]} (families must be disjoint)")
                owner.setdefault(norm, where)
                problems += _check_text(where, text, TASK_PLACEHOLDERS[task], TASK_REQUIRED[task])
    return problems


def _check_text(
    where: str, text: str, allowed: frozenset[str], required: Sequence[frozenset[str]]
) -> list[str]:
    if not text.strip():
        return [f"{where}: empty phrasing"]
    try:
        names = _placeholders(text)
    except ValueError as exc:
        return [f"{where}: {exc} (write literal braces as {{{{ and }}}})"]
    problems = [
        f"{where}: unknown placeholder {{{name}}} (allowed: "
        f"{', '.join('{' + a + '}' for a in sorted(allowed)) or 'none'})"
        for name in dict.fromkeys(names)
        if name not in allowed
    ]
    for group in required:
        if not group & set(names):
            options = " or ".join("{" + g + "}" for g in sorted(group))
            problems.append(f"{where}: missing required placeholder {options}")
    return problems


def _family_names(spec: TaskSpec, family: str | Sequence[str] | None, task: str) -> list[str]:
    if family is None or family == "any":
        return list(spec.families)
    names = [family] if isinstance(family, str) else list(family)
    unknown = [n for n in names if n not in spec.families]
    if unknown:
        raise ConfigError(
            f"{task}: unknown phrasing family {unknown[0]!r} (families: {', '.join(spec.families)})"
        )
    return names

