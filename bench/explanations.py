"""Explanations and profiles benchmark (issue 16): who writes them, how varied, how true.

For ``--users`` users with a history (seeded sample), two mixed requests each, asked through the
runtime as a user would: a "like this, explain why" about the user's last item (``like_this``) and
"recommend one and tell me why I'd like it" (``explain``, from the history); then "describe my
taste" for ``--profiles`` of them. The entity type words come from the catalog (the type the user
interacts with most), so any catalog works.

Reported, from the answers:

* **explained by the model**: share of mixed answers whose shown explanation is the model's
  (``Answer.explained_by``), and the number of distinct explanation texts;
* **shown**: the claims of every shown explanation (model's or the catalog-facts fallback), read
  again by :class:`~neo_sdk.evaluation.GroundednessChecker`: share true, claims per explanation;
* **raw model**: the same for the model's own text before the check (``Answer.explanation_check``),
  so the model's faithfulness is visible apart from the guard;
* **profiles**: the same, plus how many of the user's top-3 history category values are named;
* latency (p50 / p95 of ``Answer.timings["total_ms"]``) and the bundle's next-item probe.

Usage: python bench/explanations.py --bundle DIR [--db CATALOG] [--users 100] [--profiles 50]
       [--seed 0] [--json OUT] [--png OUT] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tqdm.auto import tqdm

from neo_sdk.evaluation import GroundednessChecker
from neo_sdk.session import Answer, ItemPart, Neo, TextPart
from neo_sdk.tasks import item_marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--db", help="catalog (default: the bundle's)")
    parser.add_argument("--users", type=int, default=100, help="users; two mixed answers each (default 100)")
    parser.add_argument("--profiles", type=int, default=50, help="profiles asked (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--png", type=Path, help="write a bar chart here")
    args = parser.parse_args(argv)

    neo = Neo.load(args.bundle, catalog=args.db, sessions=":memory:", threads=args.threads)
    checker = GroundednessChecker(neo.facts)
    histories = {u: [i.item_id for i in h if i.item_id in neo.table] for u, h in neo.catalog.histories().items()}
    users = sorted(u for u, h in histories.items() if len(h) >= 5)
    users = random.Random(args.seed).sample(users, min(args.users, len(users)))
    print(f"explanations: {len(users)} users x 2 mixed answers, {min(args.profiles, len(users))} profiles, "
          f"bundle {args.bundle} (grounded: {neo.responder.grounded})", file=sys.stderr)

    mixed: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for n, user in enumerate(tqdm(users, desc="users", unit="user")):
        history = histories[user]
        kind = Counter(neo.type_of(i) for i in history).most_common(1)[0][0]
        session = neo.session(user=user, persist=False)
        plural = neo.prompts.plural(kind)
        for task, text in (("like_this", f"{plural} like this, explain why"),
                           ("explain", f"recommend one {kind} and tell me why I'd like it")):
            answer = session.ask(text, task=task, format="mixed", entity_type=kind)
            mixed.append(_mixed_row(answer, checker, history, neo.max_history))
        if n < args.profiles:
            answer = session.ask("describe my taste", task="profile")
            profiles.append(_profile_row(answer, checker, history, neo))

    report = {"command": "python " + shlex.join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "bundle": str(args.bundle), "grounded": neo.responder.grounded,
              "mixed": _summary(mixed), "profiles": _summary(profiles),
              "profile_top3_named_2plus": _share([p["top3_named"] >= 2 for p in profiles]),
              "probe": {k: neo.manifest.get("metrics", {}).get("instruct", {}).get(k)
                        for k in ("next_item_valid", "next_item_popularity_valid")}}
    _print(report)
    if args.json:
        args.json.write_text(json.dumps({**report, "answers": mixed, "profile_answers": profiles}, indent=1))
    if args.png:
        _plot(report, args.png)
    return 0


def _explanation(answer: Answer) -> tuple[str, str]:
    """The explanation after the answer's item: as marked text (for the checker) and as shown."""
    first = next((n for n, s in enumerate(answer.segments) if isinstance(s, ItemPart)), len(answer.segments))
    rest = answer.segments[first + 1:]
    marked = "".join(s.text if isinstance(s, TextPart) else item_marker(s.item.id) for s in rest)
    shown = "".join(s.text if isinstance(s, TextPart) else s.item.label() for s in rest)
    return marked, shown.strip()


def _mixed_row(answer: Answer, checker: GroundednessChecker, history: list[str], max_history: int) -> dict[str, Any]:
    marked, shown = _explanation(answer)
    item = answer.answer_items[0].id if answer.answer_items else None
    focus = answer.request.focus if answer.task == "like_this" else None
    basis = [focus] if focus else history[-max_history:]
    found = checker.check_explanation(marked, item, focus=focus, history=basis) if item else None
    check = answer.explanation_check or {}
    return {"task": answer.task, "item": item, "explained_by": answer.explained_by, "text": shown,
            "shown_claims": found.checkable if found else 0, "shown_true": len(found.true) if found else 0,
            "shown_false": [c.reason for c in found.false] if found else [],
            "raw_claims": check.get("claims"), "raw_true": check.get("true"), "raw_false": check.get("false"),
            "model_text": check.get("model_text", shown if answer.explained_by == "model" else None),
            "ms": answer.timings.get("total_ms")}


def _profile_row(answer: Answer, checker: GroundednessChecker, history: list[str], neo: Neo) -> dict[str, Any]:
    text = answer.text.strip()
    marked = "".join(s.text if isinstance(s, TextPart) else item_marker(s.item.id) for s in answer.segments)
    recent = history[-neo.max_history:]
    found = checker.check_profile(marked, recent)
    genres = Counter(g for i in recent for g in neo.facts.genres(i))
    top3 = [g for g, _ in genres.most_common(3)]
    named = sum(1 for g in top3 if g.lower() in text.lower())
    check = answer.explanation_check or {}
    return {"explained_by": answer.explained_by, "text": text, "shown_claims": found.checkable,
            "shown_true": len(found.true), "shown_false": [c.reason for c in found.false],
            "raw_claims": check.get("claims"), "raw_true": check.get("true"), "raw_false": check.get("false"),
            "model_text": check.get("model_text", text if answer.explained_by == "model" else None),
            "top3": top3, "top3_named": named, "ms": answer.timings.get("total_ms")}


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {}
    by_model = [r for r in rows if r["explained_by"] == "model"]
    shown_claims = sum(r["shown_claims"] for r in rows)
    raw = [r for r in rows if r["raw_claims"] is not None]
    raw_claims = sum(r["raw_claims"] for r in raw)
    ms = sorted(r["ms"] for r in rows if r["ms"] is not None)
    return {
        "answers": len(rows),
        "explained_by_model": _share([r["explained_by"] == "model" for r in rows]),
        "distinct_texts": len({r["text"] for r in rows}),
        "distinct_model_texts": len({r["text"] for r in by_model}),
        "shown_claims_per_answer": round(shown_claims / len(rows), 2),
        "shown_claims_true": round(sum(r["shown_true"] for r in rows) / shown_claims, 3) if shown_claims else None,
        "raw_checked": len(raw),
        "raw_claims_per_answer": round(raw_claims / len(raw), 2) if raw else None,
        "raw_claims_true": round(sum(r["raw_true"] for r in raw) / raw_claims, 3) if raw_claims else None,
        "raw_all_true": _share([not r["raw_false"] and r["raw_claims"] > 0 for r in raw]),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
        "false_reasons": Counter(reason.split(" (")[0] for r in rows for reason in r["shown_false"]).most_common(3),
    }


def _print(report: dict[str, Any]) -> None:
    print(f"\n{report['command']}\nmachine: {report['machine']}; grounded bundle: {report['grounded']}")
    keys = ("answers", "explained_by_model", "distinct_texts", "distinct_model_texts", "shown_claims_per_answer",
            "shown_claims_true", "raw_claims_per_answer", "raw_claims_true", "raw_all_true", "p50_ms", "p95_ms")
    print(f"{'':26}{'mixed':>12}{'profiles':>12}")
    for key in keys:
        row = [report["mixed"].get(key), report["profiles"].get(key)]
        print(f"{key:26}" + "".join(f"{'-' if v is None else v!s:>12}" for v in row))
    print(f"profiles naming >= 2 of the history's top-3 categories: {report['profile_top3_named_2plus']}")
    print(f"next-item probe of the bundle (HR@10 valid, popularity): {report['probe']}")


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["explained by\nthe model", "shown claims\ntrue", "raw model\nclaims true"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for n, (name, part) in enumerate((("mixed answers", report["mixed"]), ("profiles", report["profiles"]))):
        values = [part.get("explained_by_model") or 0, part.get("shown_claims_true") or 0,
                  part.get("raw_claims_true") or 0]
        bars = ax.bar([x + n * width for x in range(3)], values, width, label=name)
        ax.bar_label(bars, fmt="%.2f")
    ax.axhline(0.95, color="grey", linestyle=":", label="0.95 (claims goal)")
    ax.set_xticks([x + width / 2 for x in range(3)], labels)
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.1)
    ax.set_title("Explanations and profiles (bench/explanations.py)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
