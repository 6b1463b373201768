"""``neo eval``: a trained bundle against the baselines it must beat, with intervals, in one harness.

A thin wrapper over :func:`neo_sdk.evaluation.evaluate_bundle` and
:func:`neo_sdk.evaluation.write_report`: leave-one-out per entity type, full ranking over every item
of the type, the model (constrained beam search, phrasings it was never trained on) next to
popularity (seen items excluded and included), item-kNN and SASRec-CE fitted on the training
histories only, all on the same users; ratios with paired bootstrap intervals, short histories,
validity and steerability with the constraints off. Then the runtime (``Neo.load``) is loaded once for
the search section (:func:`neo_sdk.evaluation.measure_search`, ``--search``) and the explanations
section (:func:`neo_sdk.evaluation.measure_explanations`, ``--explain``), the same measurements as
``bench/search.py`` and ``bench/explanations.py``. With ``--judge module:factory`` a LangChain chat
model rates the explanations and profiles 1-5 (:func:`neo_sdk.evaluation.judge_rows`). Progress and a
time estimate go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neo_sdk.evaluation import Judge


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ev = sub.add_parser(
        "eval", help="measure a bundle against popularity, item-kNN and SASRec-CE; write a report",
        description="Evaluate a trained bundle on leave-one-out next-item targets of each entity type users"
                    " interact with (or --type): the model next to popularity (seen items excluded and"
                    " included), item-kNN and SASRec-CE trained on the training histories only, the same users"
                    " for all, full ranking, HR/NDCG at 5, 10 and 30, the model's ratio to each baseline with a"
                    " paired bootstrap interval, short histories (0, 1, 3 items), invalid and wrong-type rates,"
                    " and steerability with the constraints off; then search (four query families through the"
                    " runtime, next to BM25, dense, hybrid, and popularity and EASE among the matching items) and"
                    " explanations and profiles (claims checked against the catalog)."
                    " --out writes report.md, report.json and plots.",
    )
    ev.add_argument("--bundle", required=True, help="bundle folder (neo train --out)")
    ev.add_argument("--db", help="catalog SQLite file (default: the one the bundle was trained on)")
    ev.add_argument("--split", choices=["valid", "test"], default="test",
                    help="which held-out item: the last (test, default) or the one before (valid)")
    ev.add_argument("--users", default="200", type=_users, metavar="N|all",
                    help="users per entity type, a fixed seeded sample (default 200; all: every user)")
    ev.add_argument("--seeds", default="0", type=_ints, metavar="S[,S...]",
                    help="one run per seed (user sample and phrasings); tables show mean ± std (default 0)")
    ev.add_argument("--type", action="append", dest="types", metavar="TYPE",
                    help="entity type to evaluate (repeatable; default: every type users interact with)")
    ev.add_argument("--family", choices=["eval", "train"], default="eval",
                    help="prompt phrasings asked of the model (eval: never trained on)")
    ev.add_argument("--sasrec-minutes", type=float, default=3.0, metavar="M",
                    help="SASRec-CE's training budget per entity type (default 3; epochs run are reported)")
    ev.add_argument("--sasrec-epochs", type=int, default=200, metavar="N",
                    help="SASRec-CE's epoch cap (default 200; the time budget usually stops it first)")
    ev.add_argument("--no-sasrec", action="store_true", help="leave SASRec-CE out (no ratio to it)")
    ev.add_argument("--cold-start", default="0,1,3", type=_levels, metavar="N[,N...]",
                    help="history lengths of the short-history comparison (default 0,1,3; 'none' skips it)")
    ev.add_argument("--steer-prompts", type=int, default=30, metavar="N",
                    help="unconstrained answers per (type, format) for steerability (default 30; 0 skips it)")
    ev.add_argument("--search", type=_count, default=50, metavar="N",
                    help="search queries per family, asked through the runtime (default 50; 0 skips it)")
    ev.add_argument("--explain", type=_count, default=20, metavar="N",
                    help="users asked two mixed answers and a profile each (default 20; 0 skips it)")
    ev.add_argument("--judge", metavar="MODULE:FACTORY",
                    help="rate the explanations and profiles (needs --explain N > 0) 1-5 on faithful, useful and"
                         " fluent with a LangChain chat model: a zero-argument function returning one, e.g."
                         " my_judges:ollama (modules in the current folder are found)")
    ev.add_argument("--judge-cache", metavar="PATH",
                    help="SQLite cache of the judge's replies (default: judge.sqlite in --out, else in memory);"
                         " a rerun on the same answers calls the model zero times")
    ev.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    ev.add_argument("--batch-size", type=int, default=8, help="prompts per beam search (default 8)")
    ev.add_argument("--device", default="auto", help="where the model runs: auto (cuda when available), cpu, cuda")
    ev.add_argument("--threads", type=_positive, metavar="N",
                    help="torch CPU threads (default: torch's; 1 is faster on a busy 2-core machine)")
    ev.add_argument("--out", metavar="DIR", help="write report.md, report.json and the PNG plots here")
    ev.add_argument("--json", action="store_true", help="print report.json's content instead of the table")
    ev.add_argument("--headline", action="store_true",
                    help="print only the headline rows (the model, popularity and SASRec-CE at HR@10, with ratios)")
    ev.set_defaults(handler=_eval)


def _users(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of users or 'all'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--users must be at least 1")
    return value


def _at_least(minimum: int, words: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, else an error saying ``words``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {words}")
        return value

    return parse


_positive = _at_least(1, "a positive integer")
_count = _at_least(0, "a whole number >= 0")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _levels(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    values = _ints(text)
    if min(values) < 0:
        raise argparse.ArgumentTypeError("history lengths must be >= 0")
    return values


def _eval(args: argparse.Namespace) -> int:
    from neo_sdk.bundle import read_manifest
    from neo_sdk.errors import BundleError
    from neo_sdk.evaluation import headline, render_table, report_data, write_report

    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[neo eval {time.perf_counter() - started:6.0f}s] {line}", file=sys.stderr, flush=True)

    db = Path(args.db) if args.db else Path(read_manifest(Path(args.bundle), verify=False)["catalog"])
    if not db.exists():
        raise BundleError(f"the catalog {db} does not exist; pass --db with the catalog the bundle was trained on")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with _judge(args, log) as judge:  # loaded first: a wrong --judge fails before the long measurements
        evaluation = _next_item(args, db, log)
        sections = _sections(args, db, evaluation.types[0].entity_type, log, judge)
    files = write_report(evaluation, args.out, sections=sections) if args.out else {}
    if args.json:
        plots = {k: p for k, p in files.items() if p.suffix == ".png"}
        print(json.dumps(report_data(evaluation, sections, plots), indent=1, sort_keys=True, default=str))
    else:
        print(headline(evaluation) if args.headline else render_table(evaluation, sections))
    if files:
        log(f"wrote {', '.join(str(p) for p in files.values())}")
    return 0


def _next_item(args: argparse.Namespace, db: Path, log: Callable[[str], None]) -> Any:
    """The next-item measurements (:func:`neo_sdk.evaluation.evaluate_bundle`); the model is freed after."""
    from neo_sdk.bundle import load_bundle
    from neo_sdk.catalog import Catalog
    from neo_sdk.evaluation import BASELINES, EvalSettings, evaluate_bundle, resolve_entity_types

    types = tuple(t.strip() for arg in args.types or () for t in arg.split(",") if t.strip())
    settings = EvalSettings(
        stage=args.split, sample_size=args.users, seeds=args.seeds, entity_types=types, family=args.family,
        baselines=tuple(b for b in BASELINES if not (args.no_sasrec and b == "sasrec-ce")),
        sasrec_minutes=args.sasrec_minutes, sasrec_epochs=args.sasrec_epochs, cold_start=args.cold_start, steer_prompts=args.steer_prompts,
        resamples=args.bootstrap, batch_size=args.batch_size,
    )
    with Catalog(db) as catalog:
        resolve_entity_types(catalog, list(types) or None)  # an unknown type fails before the model loads
        log(f"loading {args.bundle} against {db}")
        contents = load_bundle(args.bundle, catalog=catalog)
        contents.model.to(_device(args.device))
        return evaluate_bundle(contents, catalog, settings, log=log, progress=sys.stderr.isatty())


def _judge(args: argparse.Namespace, log: Callable[[str], None]) -> ContextManager[Judge | None]:
    """The ``--judge`` model with its reply cache (``--judge-cache``, else ``<out>/judge.sqlite``), or ``None``."""
    from neo_sdk.errors import ConfigError
    from neo_sdk.evaluation import Judge

    if not args.judge:
        if args.judge_cache:
            raise ConfigError("--judge-cache is the cache of --judge: pass --judge module:factory too")
        return nullcontext()
    if not args.explain:
        raise ConfigError("--judge rates the explanations section: pass --explain N with N > 0")
    cache = args.judge_cache or (str(Path(args.out) / "judge.sqlite") if args.out else None)
    log(f"judge: loading {args.judge} (replies cached in {cache or 'memory'})")
    return Judge(args.judge, cache=cache)


def _sections(args: argparse.Namespace, db: Path, entity_type: str, log: Callable[[str], None],
              judge: Judge | None = None) -> dict[str, Any]:
    """The search and explanations sections, measured through one loaded runtime (or marked skipped);
    with a ``judge``, its ratings of the explanations and profiles."""
    from neo_sdk.catalog import Catalog, leave_one_out
    from neo_sdk.evaluation import (
        explanations_section,
        judge_rows,
        judge_section,
        measure_explanations,
        measure_search,
        search_section,
        skipped_section,
        train_only_catalog,
    )
    from neo_sdk.evaluation._explain_bench import explain_users
    from neo_sdk.session import Neo

    sections = {name: skipped_section(name, flag) for name, flag, n in
                (("search", "--search", args.search), ("explanations", "--explain", args.explain)) if not n}
    if len(sections) == 2:
        return sections
    log("loading the runtime (Neo.load) for the search and explanations sections, on a copy of the catalog"
        " without the validation and test interactions")
    progress = sys.stderr.isatty()
    with ExitStack() as stack:
        catalog = stack.enter_context(Catalog(db))
        split = leave_one_out(catalog, entity_type=entity_type)
        served = stack.enter_context(train_only_catalog(catalog, split))
        neo = stack.enter_context(Neo.load(args.bundle, catalog=str(served), sessions=":memory:", threads=args.threads))
        if args.search:
            log(f"search: up to {args.search} queries per family on {entity_type}, the runtime next to BM25,"
                " dense, hybrid, and popularity and collaborative retrieval among the matching items")
            sections["search"] = search_section(measure_search(
                catalog, split, {"neo": neo}, n=args.search, seed=args.seeds[0], entity_type=entity_type,
                progress=progress, log=log))
        if args.explain:
            log(f"explanations: {args.explain} users x 2 mixed answers and a profile each")
            sections["explanations"] = explanations_section(measure_explanations(
                neo, users=args.explain, profiles=args.explain, seed=args.seeds[0], progress=progress))
            log(f"explanations: done in {sections['explanations']['seconds']} s")
        if judge is not None:
            explained = sections["explanations"]
            log(f"judge: {judge.name} rates {len(explained['answers'])} explanations and"
                f" {len(explained['profile_answers'])} profiles")
            histories = explain_users(neo, args.explain, args.seeds[0])  # the users measure_explanations asked
            sections["judge"] = judge_section(judge_rows(judge, neo.facts, histories, explained["answers"],
                                                         explained["profile_answers"], progress=progress))
            log(f"judge: done in {sections['judge']['seconds']} s ({sections['judge']['calls']} model calls)")
    return sections


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
