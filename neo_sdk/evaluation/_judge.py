"""An LLM judge for the explanations and profiles of ``neo eval`` (``--judge module:factory``).

Any LangChain chat model rates each text 1-5 on three criteria (:data:`CRITERIA`): ``faithful``
(only facts true of the item and the history it is shown), ``useful`` (helps the user decide),
``fluent`` (reads like a person wrote it). The prompts are ``judge.system``, ``judge.explanation`` and
``judge.profile`` of the prompt files (``prompts/judge.yaml``); the judge sees the item's catalog facts
(:func:`item_facts`) and the user's recent history, one item per line.

Replies are read by :func:`parse_rating`: strict JSON (also inside a fenced block or with text
around it) or ``faithful: 4`` lines. A reply without three whole scores in 1..5 is *unparsed*: counted
and reported, never given a default score. Replies are cached in SQLite (the teacher's
:class:`~neo_sdk.tasks._chat.CachedChat`), keyed by the judge's name, the system prompt and the
prompt, so a rerun on the same answers calls the model zero times.

Example:
    >>> judge = Judge("my_judges:ollama", cache="eval/judge.sqlite")
    >>> result = judge_rows(judge, neo.facts, histories, answers, profile_answers)
    >>> result["explanations"]["mean"]["faithful"], result["explanations"]["unparsed"]
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tqdm.auto import tqdm

from neo_sdk.prompts import PromptSet, load_prompts
from neo_sdk.tasks import CachedChat

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from neo_sdk.tasks import CatalogFacts

#: The rubric, each scored 1..5.
CRITERIA = ("faithful", "useful", "fluent")
SCORES = (1, 2, 3, 4, 5)
Kind = Literal["explanation", "profile"]
#: Answer rows as ``measure_explanations`` returns them (``text``, ``user``, ``item``, ``task``...).
Row = Mapping[str, object]

_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_LINE = re.compile(r"^[\s>*#\-\"'{]*(faithful|useful|fluent|reason)[\"'*]*\s*[:=]\s*(.*?)\s*,?\s*$",
                   re.IGNORECASE | re.MULTILINE)
_SCORE = re.compile(r"^[\"']?\s*(\d+)(?:\s*/\s*5)?(?![\d.])")


# ------------------------------------------------------------------ parsing
@dataclass(frozen=True)
class Rating:
    """One reply read: ``scores`` (criterion -> 1..5) or ``None`` with the ``problem`` that stopped it."""

    scores: dict[str, int] | None
    reason: str = ""
    problem: str | None = None

    @property
    def parsed(self) -> bool:
        return self.scores is not None


def parse_rating(reply: str) -> Rating:
    """Read a judge's reply: the first JSON object naming a criterion (a fenced block first, then
    anywhere in the text), else ``criterion: n`` lines. Every criterion must be a whole number 1..5."""
    blocks = [*_FENCE.findall(reply), reply]
    for block in blocks:
        for found in _json_objects(block):
            lowered = {str(k).strip().lower(): v for k, v in found.items()}
            if any(c in lowered for c in CRITERIA):
                return _rating(lowered, "JSON")
    lines = {name.lower(): value for name, value in _LINE.findall(reply)}
    if any(c in lines for c in CRITERIA):
        return _rating(lines, "lines")
    return Rating(None, problem="no JSON object or 'criterion: n' lines naming faithful, useful, fluent")


def _json_objects(text: str) -> Iterator[dict[str, object]]:
    """Every top-level JSON object in ``text``, in order."""
    decoder, start = json.JSONDecoder(), text.find("{")
    while start != -1:
        try:
            found, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(found, dict):
            yield found
        start = text.find("{", end)


def _rating(values: Mapping[str, object], source: str) -> Rating:
    scores: dict[str, int] = {}
    for name in CRITERIA:
        if name not in values:
            return Rating(None, problem=f"{source}: no {name} score")
        score = _score(values[name])
        if score is None:
            return Rating(None, problem=f"{source}: {name} = {values[name]!r} is not a whole number")
        if score not in SCORES:
            return Rating(None, problem=f"{source}: {name} = {score} is outside 1..5")
        scores[name] = score
    reason = values.get("reason")
    return Rating(scores, reason=" ".join(str(reason).split()) if reason is not None else "")


def _score(value: object) -> int | None:
    """A whole number from an int, an integral float or a string such as ``4``, ``"4"`` or ``4/5``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        match = _SCORE.match(value.strip())
        return int(match.group(1)) if match else None
    return None


# ------------------------------------------------------------------ the judge
class Judge:
    """Rates explanations and profiles with a LangChain chat model; replies cached in SQLite.

    Args:
        model: a ``BaseChatModel``, or ``"module:factory"`` naming a zero-argument function returning one.
        cache: SQLite file of the replies (:class:`~neo_sdk.tasks._chat.CachedChat`); ``None``: in memory only.
        name: the judge's name in reports and in the cache key (default: the factory spec or the class
            name). Change it when you change the model behind the same factory.
        prompts: the prompt set with the ``judge.*`` prompts (default: the built-in one).

    Attributes:
        calls: replies asked of the model; ``hits``: replies read from the cache.
    """

    def __init__(self, model: BaseChatModel | str, *, cache: str | Path | None = None, name: str | None = None,
                 prompts: PromptSet | None = None) -> None:
        self.chat = CachedChat(model, role="judge", cache=cache, name=name)
        self.model, self.name, self.cache = self.chat.model, self.chat.name, self.chat.cache
        self.prompts = prompts or load_prompts()

    @property
    def calls(self) -> int:
        return self.chat.calls

    @property
    def hits(self) -> int:
        return self.chat.hits

    def close(self) -> None:
        self.chat.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rate(self, kind: Kind, text: str, history: Sequence[str], item: str = "") -> tuple[Rating, str]:
        """Rate one text: ``history`` lines oldest first, ``item`` the catalog facts of an explanation's
        item. Returns the rating and the raw reply."""
        listed = "\n".join(f"- {line}" for line in history) or "(none given)"
        values = {"history": listed, "text": text} | ({"item": item} if kind == "explanation" else {})
        reply = self.chat.ask(self.prompts.render_judge("system"), self.prompts.render_judge(kind, **values))
        return parse_rating(reply), reply


# ------------------------------------------------------------------ rows and summary
def item_facts(facts: CatalogFacts, item_id: str, *, max_values: int = 6) -> str:
    """The catalog facts of an item on one line: title (type, year), its type's text fields and the
    items it links to, e.g. ``Toy Story (movie, 1995); genres: Animation, Comedy; director: John Lasseter``."""
    item = facts.items[item_id]
    year = facts.year(item_id)
    parts = [f"{item.title} ({item.entity_type}, {year})" if year else f"{item.title} ({item.entity_type})"]
    declared = facts.types.get(item.entity_type)
    for name in declared.text_fields if declared else ():
        value = item.fields.get(name)
        if name == "title" or value in (None, "", []) or (name == facts.year_field.get(item.entity_type)):
            continue
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        parts.append(f"{name}: {', '.join(values[:max_values])}")
    shown = "; ".join(parts)
    linked: dict[str, list[str]] = {}
    for relation, dst in facts.forward.get(item_id, []):
        if facts.title(dst) not in shown:
            linked.setdefault(facts.relation_words(relation), []).append(facts.title(dst))
    parts += [f"{words} {', '.join(titles[:max_values])}" for words, titles in linked.items()]
    linking: dict[str, list[str]] = {}  # items that link to it (an author's books), the most popular first
    for relation, src in sorted(facts.reverse.get(item_id, []), key=lambda rs: -facts.popularity.get(rs[1], 0.0)):
        linking.setdefault(facts.relation_words(relation), []).append(facts.title(src))
    parts += [f"{', '.join(titles[:max_values])} ({words} {item.title})" for words, titles in linking.items()]
    return "; ".join(parts)


@dataclass
class _Part:
    rows: int = 0
    skipped: int = 0
    ratings: list[Rating] = field(default_factory=list)


def judge_rows(judge: Judge, facts: CatalogFacts, histories: Mapping[str, Sequence[str]], answers: Sequence[Row],
               profile_answers: Sequence[Row], *, history_items: int = 10, progress: bool = False) -> dict[str, object]:
    """Rate the rows of :func:`~neo_sdk.evaluation.measure_explanations` (``answers``: mixed answers,
    ``profile_answers``: profiles), each next to its user's last ``history_items`` items
    (``histories``: user -> item ids, oldest first). A row without text is skipped (counted).
    ``progress``: a progress bar on stderr.

    Returns:
        ``judge``, ``cache``, ``calls`` and ``cache_hits``, ``seconds``, ``explanations`` and
        ``profiles`` (:func:`judge_summary`), and every rating under ``ratings``.
    """
    started = time.perf_counter()
    parts: dict[Kind, _Part] = {"explanation": _Part(), "profile": _Part()}
    records: list[dict[str, object]] = []
    bar = tqdm(total=len(answers) + len(profile_answers), desc="judge", unit="text", disable=not progress)
    for kind, rows in (("explanation", answers), ("profile", profile_answers)):
        part = parts[kind]
        for row in rows:
            bar.update()
            part.rows += 1
            text, user, item = str(row.get("text") or "").strip(), str(row.get("user") or ""), row.get("item")
            if not text or (kind == "explanation" and not (isinstance(item, str) and item in facts.items)):
                part.skipped += 1
                continue
            recent = [facts.label(i) for i in list(histories.get(user, ()))[-history_items:] if i in facts.items]
            rating, reply = judge.rate(kind, text, recent, item_facts(facts, item) if isinstance(item, str) else "")
            part.ratings.append(rating)
            records.append({"kind": kind, "user": user, "item": item, "task": row.get("task"), "text": text,
                            "scores": rating.scores, "reason": rating.reason, "problem": rating.problem,
                            "reply": reply[:500]})
    bar.close()
    return {"judge": judge.name, "cache": judge.cache, "calls": judge.calls, "cache_hits": judge.hits,
            "seconds": round(time.perf_counter() - started, 1),
            "explanations": judge_summary(parts["explanation"].ratings, rows=parts["explanation"].rows,
                                          skipped=parts["explanation"].skipped),
            "profiles": judge_summary(parts["profile"].ratings, rows=parts["profile"].rows,
                                      skipped=parts["profile"].skipped),
            "ratings": records}


def judge_summary(ratings: Sequence[Rating], *, rows: int | None = None, skipped: int = 0) -> dict[str, object]:
    """Per criterion the mean (2 places; ``None`` when nothing was rated) and the counts of 1..5
    (keys ``"1"``..``"5"``); ``n`` rows, ``rated``, ``unparsed`` and ``skipped`` (no text)."""
    scored = [r.scores for r in ratings if r.scores is not None]
    return {
        "n": len(ratings) + skipped if rows is None else rows,
        "rated": len(scored),
        "unparsed": len(ratings) - len(scored),
        "skipped": skipped,
        "mean": {c: round(statistics.fmean(s[c] for s in scored), 2) if scored else None for c in CRITERIA},
        "distribution": {c: {str(v): sum(1 for s in scored if s[c] == v) for v in SCORES} for c in CRITERIA},
    }
