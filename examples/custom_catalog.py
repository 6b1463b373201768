"""Your own catalog, end to end: import CSV/JSONL files, build Semantic IDs, train, ask.

The catalog here is a small podcast/host catalog written to a folder first, as your exports would
be. Training takes a few minutes on 2 CPU cores (--max-minutes); --layers 2 --max-steps 4 is a
quick smoke run.

    python examples/custom_catalog.py --out /tmp/podcasts
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from neo_sdk import (
    Catalog,
    Neo,
    SIDConfig,
    TrainSettings,
    build_sids,
    import_file,
    train,
)

SHOWS = [
    ("show:deep-space", "podcast", "Deep Space Weekly", "Science; Astronomy", 2019, "News from telescopes and probes"),
    ("show:cosmos-chat", "podcast", "Cosmos Chat", "Science; Astronomy", 2021, "Astronomers explain the sky"),
    ("show:lab-notes", "podcast", "Lab Notes", "Science; Biology", 2018, "Stories from biology labs"),
    ("show:true-crime-daily", "podcast", "True Crime Daily", "Crime; News", 2016, "One case every day"),
    ("show:cold-cases", "podcast", "Cold Cases", "Crime; History", 2015, "Unsolved mysteries revisited"),
    ("show:history-hour", "podcast", "History Hour", "History", 2012, "An hour on one moment in history"),
    ("show:empire-tales", "podcast", "Empire Tales", "History", 2020, "Rise and fall of empires"),
    ("show:laugh-track", "podcast", "Laugh Track", "Comedy", 2017, "Stand-up comedians talk shop"),
    ("host:ada", "host", "Ada Park", "Science", "", "Astrophysicist and science host"),
    ("host:ben", "host", "Ben Ortiz", "Crime", "", "Former detective turned host"),
    ("host:cleo", "host", "Cleo Marsh", "History; Comedy", "", "Historian and comedian"),
]
HOSTS = [("show:deep-space", "hosted_by", "host:ada"), ("show:cosmos-chat", "hosted_by", "host:ada"),
         ("show:true-crime-daily", "hosted_by", "host:ben"), ("show:cold-cases", "hosted_by", "host:ben"),
         ("show:history-hour", "hosted_by", "host:cleo"), ("show:laugh-track", "hosted_by", "host:cleo")]
LISTENS = {
    "u1": ["show:deep-space", "show:cosmos-chat", "show:lab-notes", "show:history-hour"],
    "u2": ["show:true-crime-daily", "show:cold-cases", "show:history-hour"],
    "u3": ["show:laugh-track", "show:history-hour", "show:empire-tales", "show:cold-cases"],
    "u4": ["show:cosmos-chat", "show:lab-notes", "show:deep-space"],
}


def write_exports(folder: Path) -> None:
    """The files a catalog owner would export: items, relations, users, interactions."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "items.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "entity_type", "title", "genres", "year", "description"])
        out.writerows(SHOWS)
    with open(folder / "relations.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["src", "relation", "dst"])
        out.writerows(HOSTS)
    with open(folder / "users.jsonl", "w") as f:
        f.writelines(json.dumps({"id": u}) + "\n" for u in LISTENS)
    with open(folder / "interactions.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user_id", "item_id", "timestamp", "event"])
        for user, shows in LISTENS.items():
            out.writerows((user, show, 1_700_000_000 + 3600 * n, "listen") for n, show in enumerate(shows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="podcasts", help="working folder")
    parser.add_argument("--max-minutes", type=float, default=3.0)
    parser.add_argument("--layers", type=int, help="fast preset: first N layers of the base model")
    parser.add_argument("--max-steps", type=int)
    args = parser.parse_args()

    out = Path(args.out)
    write_exports(out / "exports")
    db = out / "podcasts.db"
    db.unlink(missing_ok=True)
    with Catalog(db) as catalog:  # 1. import: each file is validated whole, then written atomically
        catalog.declare_type("podcast", ["title", "genres", "description"])
        catalog.declare_type("host", ["title", "genres", "description"])
        for kind in ("items", "relations", "users", "interactions"):
            suffix = "jsonl" if kind == "users" else "csv"
            import_file(catalog, out / "exports" / f"{kind}.{suffix}", kind)
        build_sids(catalog, SIDConfig(levels=2, codes=2), progress=False)  # 2. Semantic IDs

    # 3. both training stages within the budget, then the quality probes. Nothing names the type to
    # recommend: it comes from the catalog (the types users interact with, here podcasts).
    settings = TrainSettings(
        max_minutes=args.max_minutes, num_hidden_layers=args.layers, max_steps=args.max_steps, batch_size=4,
        instruction_tasks=("next_item", "search", "like_this", "explain"),
    )
    metrics = train(db, out / "bundle", settings)
    probes = metrics["instruct"]
    print(f"trained in {metrics['train_seconds']:.0f} s, probed in {metrics['probe_seconds']:.0f} s;"
          f" next {'/'.join(metrics['target_types'])}: HR@10 {probes['next_item_valid']['hr@10']:.2f}"
          f" (popularity {probes['next_item_valid']['popularity_hr@10']:.2f}),"
          f" text -> SID hit@10 {probes['text_to_sid']['hit@10']:.2f}, SID -> type {probes['sid_to_type']:.2f}")

    with Neo.load(out / "bundle", sessions=":memory:") as neo:  # 4. ask
        session = neo.session(user="u1")
        for request in ("recommend 3 podcasts", "find astronomy podcasts", "hosts like this", "podcasts like this, explain why"):
            print(f"> {request}\n{session.ask(request)}\n")


if __name__ == "__main__":
    main()
