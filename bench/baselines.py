"""Recommendation baselines on MovieLens-100k under the benchmark protocol (shared/design/benchmarks.md).

Leave-one-out per user (last movie = test, second-to-last = validation; timestamp ties broken by
file/insertion order), full ranking over all 1,682 movies, seen movies excluded unless the row
says otherwise, all 943 users. Every baseline is fitted here, on ``split.train`` only:

* popularity (without and with excluding seen movies),
* item-kNN (co-occurrence cosine; plus a recency-weighted variant),
* SASRec with full-softmax cross-entropy (CPU budget; one row per seed, then mean ± std).

Prints Markdown tables (validation and test) ready for bench/RESULTS.md, writes a bar chart of
test HR@10 / NDCG@10 (``--out``) and every report as JSON next to it.

Usage: python bench/baselines.py [--out bench/baselines.png] [--seeds 0 1 2] [--epochs 30]
       [--max-seconds 600] [--threads 1] [--skip-sasrec]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from neo_sdk.catalog import Catalog, leave_one_out, load_dataset
from neo_sdk.evaluation import (
    EvalReport,
    ItemKNN,
    Popularity,
    RandomRanker,
    evaluate_ranker,
    results_table,
    save_metrics_png,
    seed_spread,
)

STAGES = ("valid", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/baselines.png"), help="PNG chart path")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="SASRec seeds")
    parser.add_argument("--epochs", type=int, default=30, help="SASRec epochs per seed")
    parser.add_argument("--max-seconds", type=float, default=None, help="SASRec time budget per seed")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--recency-decay", type=float, default=0.9, help="item-kNN recency variant")
    parser.add_argument("--skip-sasrec", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    catalog = Catalog(":memory:")
    load_dataset(catalog, "movielens-100k", with_people=True, progress=False)
    split = leave_one_out(catalog, entity_type="movie")
    print(f"ML-100k: {len(split.test)} users with targets, "
          f"{sum(len(h) for h in split.train.values())} training interactions, "
          f"{sum(1 for _ in catalog.items('movie'))} movies ranked")

    groups: dict[str, dict[str, list[EvalReport]]] = {s: {} for s in STAGES}
    fit_seconds: dict[str, float] = {}

    def run(label: str, ranker: object, fit_s: float, *, exclude_seen: bool = True) -> None:
        for stage in STAGES:
            report = evaluate_ranker(
                ranker, split, catalog=catalog, stage=stage, sample_size=None,
                exclude_seen=exclude_seen, method=label, progress=False,
            )
            report.config["fit_seconds"] = round(fit_s, 2)
            groups[stage].setdefault(label.split(" seed")[0], []).append(report)
            print(f"  {label:34s} {stage:5s} HR@10 {report.metrics['HR@10']:.4f} "
                  f"NDCG@10 {report.metrics['NDCG@10']:.4f} ({report.seconds:.1f}s)", flush=True)

    run("random", RandomRanker(catalog, "movie", seed=0), 0.0)
    clock = time.perf_counter()
    pop = Popularity.fit(split.train, catalog, "movie")
    fit_seconds["popularity"] = fit_seconds["popularity (excl. seen)"] = time.perf_counter() - clock
    run("popularity", pop, fit_seconds["popularity"], exclude_seen=False)
    run("popularity (excl. seen)", pop, fit_seconds["popularity"])
    clock = time.perf_counter()
    knn = ItemKNN.fit(split.train, catalog, "movie")
    fit_seconds["item-kNN"] = time.perf_counter() - clock
    run("item-kNN", knn, fit_seconds["item-kNN"])
    clock = time.perf_counter()
    knn_recent = ItemKNN.fit(split.train, catalog, "movie", recency_decay=args.recency_decay)
    label_recent = f"item-kNN (recency {args.recency_decay:g})"
    fit_seconds[label_recent] = time.perf_counter() - clock
    run(label_recent, knn_recent, fit_seconds[label_recent])

    sasrec_logs = []
    if not args.skip_sasrec:
        import torch

        from neo_sdk.evaluation import SASRec, SASRecConfig

        torch.set_num_threads(args.threads)
        label = "SASRec-CE"
        for seed in args.seeds:
            cfg = SASRecConfig(epochs=args.epochs, seed=seed, max_seconds=args.max_seconds)
            model = SASRec.fit(split.train, catalog, cfg, progress=False)
            fit_seconds[label] = fit_seconds.get(label, 0.0) + model.log["seconds"] / len(args.seeds)
            sasrec_logs.append({"seed": seed, **{k: v for k, v in model.log.items() if k != "config"}})
            print(f"SASRec seed {seed}: {model.log['epochs_run']} epochs, {model.log['steps']} steps, "
                  f"{model.log['seconds']:.0f}s, final loss {model.log['loss'][-1]:.3f}", flush=True)
            run(f"{label} seed {seed}", model, model.log["seconds"])

    total = time.perf_counter() - started
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {args.threads}"
    print(f"\ncommand: {command}\nmachine: {machine}\ntotal: {total:.0f}s")
    for stage in STAGES:
        print(f"\n{stage} ({len(getattr(split, stage))} users, full ranking over 1,682 movies):\n")
        print(results_table(groups[stage]))
    fits = ", ".join(f"{k} {v:.1f}" for k, v in fit_seconds.items())
    print(f"\nfit seconds (SASRec: mean per seed): {fits}")
    if "SASRec-CE" in groups["test"]:
        for stage in STAGES:
            spread = seed_spread([r.metrics for r in groups[stage]["SASRec-CE"]])
            print(f"SASRec-CE {stage} over seeds {args.seeds}: " + ", ".join(
                f"{k} {m:.4f} ± {s:.4f}" for k, (m, s) in spread.items() if k in ("HR@10", "NDCG@10")))

    png = save_metrics_png(
        groups["test"], args.out,
        title=f"ML-100k leave-one-out test, {len(split.test)} users, full ranking (CPU budget)",
    )
    out_json = args.out.with_suffix(".json")
    out_json.write_text(json.dumps({
        "command": command, "machine": machine, "seconds": round(total, 1),
        "sasrec_training": sasrec_logs,
        "reports": {stage: {m: [r.to_dict() for r in rs] for m, rs in g.items()}
                    for stage, g in groups.items()},
    }, indent=2, sort_keys=True))
    print(f"\nwrote {png} and {out_json}")


if __name__ == "__main__":
    main()
