"""Benchmark: import MovieLens-1M (with OMDb people) into a fresh temporary catalog.

Usage:
    python bench/catalog_import.py [--dataset movielens-1m] [--no-people] [--memory]

Prints the wall time of the whole import and of its phases, interactions per second, and the
result against the 60 s target for ML-1M on 2 CPU cores as a ratio (below 1.0 meets it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from neo_sdk.catalog import Catalog, load_dataset

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens-1m", help="built-in dataset name")
    parser.add_argument("--no-people", action="store_true", help="skip the OMDb join and people")
    parser.add_argument("--memory", action="store_true", help="use an in-memory catalog, not a file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = ":memory:" if args.memory else str(Path(tmp) / "bench.db")
        start = time.perf_counter()
        catalog = Catalog(path)
        report = load_dataset(catalog, args.dataset, with_people=not args.no_people)
        wall = time.perf_counter() - start
        counts = catalog.counts()
        catalog.close()
        size = 0 if args.memory else sum(p.stat().st_size for p in Path(tmp).iterdir())

    print(f"dataset       {args.dataset} (with people: {not args.no_people}), catalog {path if args.memory else 'temp file'}")
    print(f"machine       {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"wrote         {report['movies']:,} movies, {report['people']:,} people, {report['users']:,} users,"
          f" {report['interactions']:,} interactions, {sum(report['relations'].values()):,} relations")
    assert counts["interactions"] == report["interactions"]
    if report["join"]:
        j = report["join"]
        print(f"OMDb join     {j['matched']:,} / {j['total']:,} movies ({j['share_movies']:.1%}),"
              f" {j['share_interactions']:.1%} of interactions; by method {j['by_method']}")
    print("phases (s)    " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings"].items() if k != "total"))
    print(f"wall time     {wall:.2f} s (load_dataset {report['timings']['total']:.2f} s)")
    print(f"throughput    {report['interactions'] / wall:,.0f} interactions/s")
    if size:
        print(f"catalog size  {size / 2**20:.1f} MiB")
    note = "" if args.dataset == "movielens-1m" else " (the target is set for movielens-1m)"
    print(f"vs target     {wall:.2f} s / {TARGET_S:.0f} s = {wall / TARGET_S:.3f}"
          f" ({'meets' if wall < TARGET_S else 'MISSES'} the 60 s target){note}")


if __name__ == "__main__":
    main()
