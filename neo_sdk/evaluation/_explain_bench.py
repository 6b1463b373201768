"""The explanations and profiles measurement (issue 16), shared by ``bench/explanations.py`` and ``neo eval``.

For a seeded sample of users with a history, two mixed requests each, asked through a loaded
runtime (a ``Neo``, duck-typed) as a user would: a "like this, explain why" about the user's last
item (``like_this``) and "recommend one and tell me why I'd like it" (``explain``); then "describe
my taste" for the first ``profiles`` of them. The entity type words come from the catalog (the type
the user interacts with most), so any catalog works.

Reported (:func:`explanation_summary`), from the answers: the share of texts the model wrote
(``Answer.explained_by``) and how many distinct ones; the claims of every shown text read again by
:class:`~neo_sdk.retrieval.GroundednessChecker` (share true, claims per answer); the same for the
model's own text before the check (``Answer.explanation_check``); for profiles, how many of the
history's top-3 category values are named; latency (``Answer.timings["total_ms"]``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from neo_sdk.retrieval import GroundednessChecker
from neo_sdk.tasks import item_marker

#: Users need at least this many history items to be asked.
MIN_HISTORY = 5
#: The measures of :func:`explanation_summary` shown in tables, in order.
EXPLANATION_KEYS = ("answers", "explained_by_model", "distinct_texts", "distinct_model_texts", "shown_claims_per_answer",
                "shown_claims_true", "comparisons_without_item", "ungrammatical_lists", "raw_claims_per_answer", "raw_claims_true", "raw_all_true", "p50_ms", "p95_ms")


def _marked(segments: Sequence[Any]) -> str:
    """Segments as text with item markers (what the checker reads): an item part has ``.item``."""
    return "".join(item_marker(s.item.id) if hasattr(s, "item") else s.text for s in segments)


def explanation_of(answer: Any) -> tuple[str, str]:
    """The explanation after the answer's item: as marked text (for the checker) and as shown."""
    segments = answer.segments
    first = next((n for n, s in enumerate(segments) if hasattr(s, "item")), len(segments))
    rest = segments[first + 1:]
    shown = "".join(s.item.label() if hasattr(s, "item") else s.text for s in rest)
    return _marked(rest), shown.strip()


def _raw(answer: Any, shown: str) -> dict[str, Any]:
    """What the checker found in the model's own text, before the guard (``explanation_check``)."""
    check = answer.explanation_check or {}
    return {"raw_claims": check.get("claims"), "raw_true": check.get("true"), "raw_false": check.get("false"),
            "model_text": check.get("model_text", shown if answer.explained_by == "model" else None),
            "ms": answer.timings.get("total_ms")}


def mixed_row(answer: Any, checker: GroundednessChecker, history: Sequence[str], max_history: int) -> dict[str, Any]:
    """One mixed answer: its item, who explained it, and the shown and raw claims checked."""
    marked, shown = explanation_of(answer)
    item = answer.answer_items[0].id if answer.answer_items else None
    focus = answer.request.focus if answer.task == "like_this" else None
    basis = [focus] if focus else list(history[-max_history:])
    found = checker.check_explanation(marked, item, focus=focus, history=basis) if item else None
    return {"task": answer.task, "item": item, "explained_by": answer.explained_by, "text": shown,
            "shown_claims": found.checkable if found else 0, "shown_true": len(found.true) if found else 0,
            "shown_false": [c.reason for c in found.false] if found else [],
            "shown_faults": [f.kind for f in found.faults] if found else [],
            "cites_focus": bool(focus) and item_marker(focus) in marked, **_raw(answer, shown)}


def profile_row(answer: Any, checker: GroundednessChecker, history: Sequence[str], facts: Any,
                max_history: int) -> dict[str, Any]:
    """One profile: who wrote it, its claims checked, and which of the history's top-3 category values it names."""
    text = answer.text.strip()
    recent = list(history[-max_history:])
    found = checker.check_profile(_marked(answer.segments), recent)
    top3 = [g for g, _ in Counter(g for i in recent for g in facts.genres(i)).most_common(3)]
    return {"explained_by": answer.explained_by, "text": text, "shown_claims": found.checkable,
            "shown_true": len(found.true), "shown_false": [c.reason for c in found.false],
            "shown_faults": [f.kind for f in found.faults], **_raw(answer, text),
            "top3": top3, "top3_named": sum(1 for g in top3 if g.lower() in text.lower())}


def share(flags: Sequence[bool]) -> float | None:
    """The share of true flags, rounded to 3 places (``None`` for none)."""
    return round(sum(flags) / len(flags), 3) if flags else None


def explanation_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Shares and counts over answer rows (:func:`mixed_row` or :func:`profile_row`); ``{}`` for none."""
    if not rows:
        return {}
    by_model = [r for r in rows if r["explained_by"] == "model"]
    shown_claims = sum(r["shown_claims"] for r in rows)
    raw = [r for r in rows if r["raw_claims"] is not None]
    raw_claims = sum(r["raw_claims"] for r in raw)
    ms = sorted(r["ms"] for r in rows if r["ms"] is not None)
    return {
        "answers": len(rows),
        "explained_by_model": share([r["explained_by"] == "model" for r in rows]),
        "distinct_texts": len({r["text"] for r in rows}),
        "distinct_model_texts": len({r["text"] for r in by_model}),
        "shown_claims_per_answer": round(shown_claims / len(rows), 2),
        "shown_claims_true": round(sum(r["shown_true"] for r in rows) / shown_claims, 3) if shown_claims else None,
        # form faults of the text shown (FormChecker): a comparison that names no item; a category
        # list that reads broken (a capital mid-sentence, no article, plural type, a/an, no "and")
        "comparisons_without_item": sum("comparison" in r.get("shown_faults", ()) for r in rows),
        "ungrammatical_lists": sum(any(k != "comparison" for k in r.get("shown_faults", ())) for r in rows),
        "like_this_cite_focus": share([r["cites_focus"] for r in rows if r.get("task") == "like_this"
                                       and "cites_focus" in r]),
        "raw_checked": len(raw),
        "raw_claims_per_answer": round(raw_claims / len(raw), 2) if raw else None,
        "raw_claims_true": round(sum(r["raw_true"] for r in raw) / raw_claims, 3) if raw_claims else None,
        "raw_all_true": share([not r["raw_false"] and r["raw_claims"] > 0 for r in raw]),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
        "false_reasons": Counter(reason.split(" (")[0] for r in rows for reason in r["shown_false"]).most_common(3),
    }


def explain_users(neo: Any, n: int, seed: int = 0) -> dict[str, list[str]]:
    """A seeded sample of ``n`` users with at least :data:`MIN_HISTORY` served items: user -> history."""
    histories = {u: [i.item_id for i in h if i.item_id in neo.table] for u, h in neo.catalog.histories().items()}
    users = sorted(u for u, h in histories.items() if len(h) >= MIN_HISTORY)
    return {u: histories[u] for u in random.Random(seed).sample(users, min(n, len(users)))}


def measure_explanations(neo: Any, *, users: int = 20, profiles: int = 20, seed: int = 0,
                         progress: bool = False) -> dict[str, Any]:
    """Ask ``users`` users two mixed requests each and ``profiles`` of them for a profile (module docstring).

    Returns:
        ``users``, ``grounded`` (the bundle was trained with grounds), ``mixed`` and ``profiles``
        (:func:`explanation_summary`), ``profile_top3_named_2plus``, the bundle's next-item
        ``probe``, ``seconds``, and every row (with its ``user``) under ``answers`` and ``profile_answers``.
    """
    started = time.perf_counter()
    checker = GroundednessChecker(neo.facts)
    sample = explain_users(neo, users, seed)
    mixed: list[dict[str, Any]] = []
    profiled: list[dict[str, Any]] = []
    for n, (user, history) in enumerate(tqdm(sample.items(), desc="users", unit="user", disable=not progress)):
        kind = Counter(neo.type_of(i) for i in history).most_common(1)[0][0]
        session = neo.session(user=user, persist=False)
        for task, text in (("like_this", f"{neo.prompts.plural(kind)} like this, explain why"),
                           ("explain", f"recommend one {kind} and tell me why I'd like it")):
            answer = session.ask(text, task=task, format="mixed", entity_type=kind)
            mixed.append(mixed_row(answer, checker, history, neo.max_history) | {"user": user})
        if n < profiles:
            answer = session.ask("describe my taste", task="profile")
            profiled.append(profile_row(answer, checker, history, neo.facts, neo.max_history) | {"user": user})
    instruct = neo.manifest.get("metrics", {}).get("instruct", {})
    return {"users": len(sample), "grounded": neo.responder.grounded,
            "mixed": explanation_summary(mixed), "profiles": explanation_summary(profiled),
            "profile_top3_named_2plus": share([p["top3_named"] >= 2 for p in profiled]),
            "probe": {k: instruct.get(k) for k in ("next_item_valid", "next_item_popularity_valid")},
            "seconds": round(time.perf_counter() - started, 1),
            "answers": mixed, "profile_answers": profiled}
