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

The measurement is the library's (``neo_sdk.evaluation.measure_explanations``, plotted by
``plot_explanations``), the same code ``neo eval --explain N`` runs.

Usage: python bench/explanations.py --bundle DIR [--db CATALOG] [--users 100] [--profiles 50]
       [--seed 0] [--json OUT] [--png OUT] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from neo_sdk.evaluation import EXPLANATION_KEYS, measure_explanations, plot_explanations
from neo_sdk.session import Neo


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
    print(f"explanations: up to {args.users} users x 2 mixed answers, up to {args.profiles} profiles, "
          f"bundle {args.bundle} (grounded: {neo.responder.grounded})", file=sys.stderr)
    result = measure_explanations(neo, users=args.users, profiles=args.profiles, seed=args.seed, progress=True)
    answers, profile_answers = result.pop("answers"), result.pop("profile_answers")
    report = {"command": "python " + shlex.join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "bundle": str(args.bundle), **result}
    _print(report)
    if args.json:
        args.json.write_text(json.dumps({**report, "answers": answers, "profile_answers": profile_answers}, indent=1))
    if args.png:
        print(f"plot: {plot_explanations(report, args.png, 'Explanations and profiles (bench/explanations.py)')}")
    neo.close()
    return 0


def _print(report: dict[str, Any]) -> None:
    print(f"\n{report['command']}\nmachine: {report['machine']}; grounded bundle: {report['grounded']}")
    print(f"{'':26}{'mixed':>12}{'profiles':>12}")
    for key in EXPLANATION_KEYS:
        row = [report["mixed"].get(key), report["profiles"].get(key)]
        print(f"{key:26}" + "".join(f"{'-' if v is None else v!s:>12}" for v in row))
    print(f"profiles naming >= 2 of the history's top-3 categories: {report['profile_top3_named_2plus']}")
    print(f"next-item probe of the bundle (HR@10 valid, popularity): {report['probe']}")


if __name__ == "__main__":
    sys.exit(main())
