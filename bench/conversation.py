"""Conversation quality on a trained bundle, read as a user reads it (issue 26).

1. Explanations and profiles: ``--users`` users asked "<types> like this, explain why" and
   "recommend one and tell me why" (two mixed answers each) and ``--profiles`` of them "describe my
   taste" (:func:`neo_sdk.evaluation.measure_explanations`): comparisons without an item and
   ungrammatical category lists in the text shown (the form checker), shown claims true, share the
   model wrote.
2. Questions about shown items: each of ``--question-users`` sessions (half catalog users, half
   visitors) gets a list, then questions about items of it in varied phrasings (why / people / facts
   / when, by ordinal, "#N", "number N", "the last one"); a question is answered about that item when
   the answer's first item is the one it pointed at.

    python bench/conversation.py --bundle demo/bundle --users 100 --profiles 100 --question-users 50

Writes ``conversation.json`` and ``conversation.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ORDINAL_WORDS = ["first", "second", "third", "fourth", "fifth"]
QUESTIONS = [  # (aspect, phrasing with {ref}: how people point at the N-th item of a list)
    ("why", "why would I like {ref}?"), ("why", "Why {ref}?"), ("why", "what makes {ref} a good pick for me"),
    ("why", "explain {ref}"), ("people", "who is in {ref}?"), ("people", "who directed {ref}?"),
    ("people", "who's behind {ref}"), ("facts", "what's {ref} about?"), ("facts", "tell me more about {ref}"),
    ("facts", "what kind of movie is {ref}?"), ("when", "is {ref} from the 90s?"), ("when", "when was {ref} made?"),
    ("when", "what year is {ref} from"),
]


def _reference(n: int, k: int, rng: random.Random) -> str:
    forms = [f"the {ORDINAL_WORDS[n]} one", f"#{n + 1}", f"number {n + 1}", f"the {ORDINAL_WORDS[n]}"]
    if n == k - 1:
        forms.append("the last one")
    return rng.choice(forms)


def ask_about_shown(neo, users: list[str | None], seed: int = 0) -> dict:
    """Questions about items of a shown list: answered about that item, per aspect."""
    rng = random.Random(seed)
    rows = []
    kind = neo.steering.default_type
    for user in users:
        session = neo.session(user=user, persist=False)
        listed = [i.id for i in session.ask(f"top 5 {neo.prompts.plural(kind)} for me").answer_items]
        for aspect, phrasing in rng.sample(QUESTIONS, 4):
            n = rng.randrange(len(listed))
            text = phrasing.format(ref=_reference(n, len(listed), rng))
            answer = session.ask(text)
            first = answer.answer_items[0].id if answer.answer_items else None
            rows.append({"user": user, "text": text, "aspect": aspect, "task": answer.task,
                         "read_aspect": answer.request.aspect, "target": listed[n], "answered": first,
                         "about_it": first == listed[n] and answer.task == "about",
                         "explained_by": answer.explained_by, "answer": answer.text})
    by_aspect = {a: [r["about_it"] for r in rows if r["aspect"] == a] for a in dict.fromkeys(a for a, _ in QUESTIONS)}
    return {"questions": len(rows), "about_that_item": round(sum(r["about_it"] for r in rows) / len(rows), 3),
            "by_aspect": {a: round(sum(v) / len(v), 3) for a, v in by_aspect.items() if v},
            "aspect_read": round(sum(r["read_aspect"] == r["aspect"] for r in rows) / len(rows), 3),
            "misses": [r for r in rows if not r["about_it"]][:10], "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--users", type=int, default=100, help="users asked two mixed answers (default 100)")
    parser.add_argument("--profiles", type=int, default=100, help="of them, asked for a profile (default 100)")
    parser.add_argument("--question-users", type=int, default=50, help="sessions asked about shown items")
    parser.add_argument("--out", default="bench")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    from neo_sdk import Neo
    from neo_sdk.evaluation import measure_explanations
    from neo_sdk.evaluation._explain_bench import explain_users

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"conversation bench on {args.bundle}: {args.users} users x 2 mixed answers, {args.profiles} profiles,"
          f" {args.question_users} sessions x 4 questions about shown items", file=sys.stderr)
    started = time.perf_counter()
    with Neo.load(args.bundle) as neo:
        explained = measure_explanations(neo, users=args.users, profiles=args.profiles, progress=True)
        catalog_users = list(explain_users(neo, args.question_users // 2, seed=1))
        questions = ask_about_shown(neo, [*catalog_users, *[None] * (args.question_users - len(catalog_users))])
    result = {"bundle": args.bundle, "seconds": round(time.perf_counter() - started, 1),
              "mixed": explained["mixed"], "profiles": explained["profiles"], "questions": questions}
    (out / "conversation.json").write_text(json.dumps(result, indent=2, default=str))
    for name in ("mixed", "profiles"):
        s = result[name]
        if not s:
            continue
        print(f"{name:9} answers {s['answers']}  comparisons without an item {s['comparisons_without_item']}"
              f"  ungrammatical category lists {s['ungrammatical_lists']}  shown claims true {s['shown_claims_true']}"
              f"  model-written {s['explained_by_model']}"
              + (f"  like-this citing the focus item {s['like_this_cite_focus']}" if name == "mixed" else ""))
    print(f"questions about shown items: {questions['questions']}, answered about that item"
          f" {questions['about_that_item']} {questions['by_aspect']}, aspect read {questions['aspect_read']}")
    _plot(result, out / "conversation.png")
    print(f"wrote {out}/conversation.json and conversation.png", file=sys.stderr)
    return 0


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for name in ("mixed", "profiles"):
        s = result[name]
        if not s:
            continue
        labels += [f"{name}\nmodel-written", f"{name}\nclaims true", f"{name}\nno form fault"]
        faulty = s["comparisons_without_item"] + s["ungrammatical_lists"]
        values += [s["explained_by_model"] or 0, s["shown_claims_true"] or 0, 1 - faulty / max(1, s["answers"])]
    labels += [f"about: {a}" for a in result["questions"]["by_aspect"]]
    values += list(result["questions"]["by_aspect"].values())
    fig, ax = plt.subplots(figsize=(11, 3.6))
    explained = len(values) - len(result["questions"]["by_aspect"])
    ax.bar(range(len(values)), values, color=["#4c72b0"] * explained + ["#55a868"] * (len(values) - explained))
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title(f"Conversation quality ({result['bundle']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
