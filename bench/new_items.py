"""How do items added after training fare? A living-catalog measurement on the demo catalog.

1. Import the demo catalog (``movielens-100k --with-people``).
2. Hold out ``--share`` (5%) of the items of the type users interact with most (movies), drawn
   uniformly (seeded): remove them, their relations and their interactions -> ``train.db``.
3. ``neo sids build`` and ``neo train --max-minutes M`` on ``train.db``: the model never sees them.
4. Put them back (items, relations, interactions) -> ``serve.db``; ``neo sids assign`` gives them
   SIDs with the saved centroids (old SIDs unchanged); ``neo bundle refresh`` records it.
5. Serve ``serve.db`` with the bundle, no retraining, and measure against their share:

   * search: a request made of the item's title (year left out, so no year filter helps):
     hit@1 / hit@10 for held-out items and for as many old items;
   * next item (leave-one-out on ``serve.db``, test targets of that type, seen items excluded):
     HR@10 for users whose target is a held-out item and for a random sample of users, and the
     share of held-out items in those users' top-10 lists.

Every step is cached in ``--work`` (the bundle per budget and layer count); ``serve.db`` is
rebuilt on each run. Usage::

    python bench/new_items.py --minutes 15                          # the full measurement
    python bench/new_items.py --minutes 1 --layers 2 --users 10 --queries 10   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from neo_sdk import Catalog, Neo, leave_one_out


def neo(*args: str) -> None:
    """Run a ``neo`` command in a child process (its model memory goes with it)."""
    print("$ neo", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "neo_sdk", *args], check=True)


def copy_db(src: Path, dst: Path) -> Path:
    for stale in (dst, Path(f"{dst}-wal"), Path(f"{dst}-shm")):
        stale.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(src)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)
    return dst


def target_type(db: Path) -> str:
    with Catalog(db) as catalog:
        rows = catalog.db.execute("SELECT t.entity_type, COUNT(*) FROM interactions i JOIN items t"
                                  " ON t.id = i.item_id GROUP BY 1 ORDER BY 2 DESC").fetchall()
    return str(rows[0][0])


def hold_out(db: Path, etype: str, share: float, seed: int) -> list[str]:
    with Catalog(db) as catalog:
        ids = sorted(i.id for i in catalog.items(etype))
    return sorted(random.Random(seed).sample(ids, max(1, round(share * len(ids)))))


def _in(ids: list[str]) -> str:
    return f"({','.join('?' * len(ids))})"


def without(full: Path, out: Path, held: list[str]) -> None:
    """``full`` without the held-out items, their relations and their interactions."""
    copy_db(full, out)
    with Catalog(out) as catalog, catalog.transaction():
        catalog.db.execute(f"DELETE FROM interactions WHERE item_id IN {_in(held)}", held)
        catalog.db.execute(f"DELETE FROM relations WHERE src IN {_in(held)} OR dst IN {_in(held)}", held + held)
        catalog.db.execute(f"DELETE FROM items WHERE id IN {_in(held)}", held)
    with Catalog(out) as catalog:
        catalog.update_popularity()


def put_back(train: Path, full: Path, out: Path, held: list[str]) -> None:
    """``train`` (with its SIDs) plus the held-out items, relations and interactions of ``full``
    (interactions keep their ``seq``, so histories keep their order)."""
    copy_db(train, out)
    with contextlib.closing(sqlite3.connect(out)) as conn:
        conn.execute("ATTACH DATABASE ? AS full", [str(full)])
        with conn:  # one transaction
            conn.execute(f"INSERT INTO items SELECT * FROM full.items WHERE id IN {_in(held)}", held)
            conn.execute(f"INSERT INTO relations SELECT * FROM full.relations WHERE src IN {_in(held)}"
                         f" OR dst IN {_in(held)}", held + held)
            conn.execute(f"INSERT INTO interactions SELECT * FROM full.interactions WHERE item_id IN {_in(held)}",
                         held)
    with Catalog(out) as catalog:
        catalog.update_popularity()


def search_hits(runtime: Neo, items: list[str], etype: str) -> dict[str, float]:
    """hit@1 / hit@10 of a search made of each item's title."""
    session = runtime.session(persist=False)
    hit1 = hit10 = 0
    for item in items:
        title = runtime.catalog.get(item).title
        got = [i.id for i in session.ask(f"find {title}", task="search", entity_type=etype, format="ids", k=10).items]
        hit1 += got[:1] == [item]
        hit10 += item in got
    n = max(1, len(items))
    return {"n": len(items), "hit@1": hit1 / n, "hit@10": hit10 / n}


def next_item(runtime: Neo, users: list[str], history: dict[str, list[str]], target: dict[str, str],
              etype: str, new: set[str]) -> dict[str, float]:
    """HR@10 and the share of new items among the top-10 lists of ``users``."""
    hits = slots = new_slots = 0
    for user in users:
        session = runtime.session(user=user, persist=False)
        session.history = list(history[user])  # what precedes the target, not the stored history
        got = [i.id for i in session.ask("recommend", task="next_item", entity_type=etype, format="ids", k=10).items]
        hits += target[user] in got
        slots += len(got)
        new_slots += sum(i in new for i in got)
    return {"users": len(users), "hr@10": hits / max(1, len(users)), "new_share_top10": new_slots / max(1, slots)}


def measure(bundle: Path, serve: Path, held: list[str], etype: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    runtime = Neo.load(bundle, catalog=serve, sessions=":memory:")
    new = set(runtime.new_items)
    assert set(held) <= new, "every held-out item is served as a new item"
    old = sorted(i for i in runtime.trie.position_of() if i not in new and runtime.type_of(i) == etype)
    catalog_items = len(old) + len(held)
    queries = min(args.queries, len(held))
    started = time.perf_counter()
    result: dict[str, Any] = {
        "type": etype, "held_out": len(held), "catalog_share": len(held) / catalog_items,
        "search_new": search_hits(runtime, rng.sample(held, queries), etype),
        "search_old": search_hits(runtime, rng.sample(old, queries), etype),
    }
    split = leave_one_out(runtime.catalog, entity_type=etype)
    users = sorted(split.test)
    new_target = [u for u in users if split.test[u] in new]
    result["target_share"] = len(new_target) / max(1, len(users))
    sample = rng.sample(users, min(args.users, len(users)))
    history, target = split.test_history, split.test
    result["next_new_targets"] = next_item(runtime, new_target[: args.users], history, target, etype, new)
    result["next_all_users"] = next_item(runtime, sample, history, target, etype, new)
    result["eval_seconds"] = round(time.perf_counter() - started, 1)
    runtime.close()
    return result


def table(r: dict[str, Any], minutes: float, layers: int | None) -> str:
    sn, so, nn, na = r["search_new"], r["search_old"], r["next_new_targets"], r["next_all_users"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    rows = [
        ("held-out items (new)", f"{r['held_out']} {r['type']} items, {pct(r['catalog_share'])} of the catalog",
         f"{pct(r['target_share'])} of test targets"),
        ("search by title, hit@1", f"new {sn['hit@1']:.3f}", f"old {so['hit@1']:.3f} (n={sn['n']} each)"),
        ("search by title, hit@10", f"new {sn['hit@10']:.3f}", f"old {so['hit@10']:.3f}"),
        ("next item HR@10", f"new targets {nn['hr@10']:.3f} ({nn['users']} users)",
         f"all users {na['hr@10']:.3f} ({na['users']} users)"),
        ("new items in top-10 lists", f"{pct(na['new_share_top10'])} of slots (all users)",
         f"vs {pct(r['catalog_share'])} of items"),
    ]
    head = f"new items after {minutes:g} training minutes ({'all' if layers is None else layers} layers)"
    lines = [head, "", "| measure | held-out (new) items | reference |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="training budget (neo train --max-minutes)")
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N layers (fast smoke runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on stage 3 steps (smoke runs)")
    parser.add_argument("--share", type=float, default=0.05, help="share of the target type's items held out")
    parser.add_argument("--users", type=int, default=200, help="users per next-item group")
    parser.add_argument("--queries", type=int, default=200, help="search requests per group (new, old)")
    parser.add_argument("--work", type=Path, default=Path("demo/new_items"), help="cache folder (git-ignored)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probes", action="store_true", help="run neo train's quality probes too")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    full = work / "full.db"
    if not full.exists():
        (work / "import.db").unlink(missing_ok=True)
        neo("catalog", "import", "movielens-100k", "--with-people", "--db", str(work / "import.db"))
        os.replace(work / "import.db", full)
    etype = target_type(full)
    held_path = work / f"held_out-{args.share:g}-{args.seed}.json"
    if not held_path.exists():
        held_path.write_text(json.dumps(hold_out(full, etype, args.share, args.seed)))
    held: list[str] = json.loads(held_path.read_text())
    train = work / f"train-{args.share:g}-{args.seed}.db"
    if not train.exists():
        without(full, work / "train.tmp.db", held)
        neo("sids", "build", "--db", str(work / "train.tmp.db"), "--no-progress")
        os.replace(work / "train.tmp.db", train)
    tag = f"{args.minutes:g}m" + (f"-L{args.layers}" if args.layers else "") + \
        (f"-s{args.max_steps}" if args.max_steps else "")
    bundle = work / f"bundle-{args.share:g}-{args.seed}-{tag}"
    if not (bundle / "manifest.json").exists():
        extra = [*(["--layers", str(args.layers)] if args.layers else []),
                 *(["--max-steps", str(args.max_steps)] if args.max_steps else []),
                 *([] if args.probes else ["--no-probes"])]
        neo("train", "--db", str(train), "--out", str(bundle), "--max-minutes", f"{args.minutes:g}",
            "--seed", str(args.seed), *extra)
        shutil.rmtree(bundle.with_name(bundle.name + ".work"), ignore_errors=True)
    serve = work / "serve.db"
    put_back(train, full, serve, held)
    neo("sids", "assign", "--db", str(serve), "--no-progress")
    neo("bundle", "refresh", str(bundle), "--db", str(serve))
    result = measure(bundle, serve, held, etype, args)
    result |= {"minutes": args.minutes, "layers": args.layers, "max_steps": args.max_steps, "share": args.share,
               "seed": args.seed, "bundle": str(bundle)}
    print(table(result, args.minutes, args.layers))
    print(json.dumps(result, indent=1, sort_keys=True))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
