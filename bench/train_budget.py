"""Does ``neo train --max-minutes M`` finish within M minutes plus its probe time, at 1x and 10x items?

1. Import the demo catalog (``movielens-100k --with-people``) and build its SIDs.
2. Scale it (``--scales 1,10``): scale ``s`` adds ``s - 1`` copies of every item, relation, user and
   interaction (``<id>~k``, titles suffixed ``[k]``), so items, users and the log all grow ``s``-fold;
   ``neo sids build`` on each.
3. ``neo train --max-minutes M`` in a child process, timed from process start to exit (Python
   start-up, model load, example building, both stages, saving and the probes).

It prints, per scale: wall seconds, the budget, the probe seconds the manifest reports, the slack
(``budget + probes - wall``: must be >= 0), and the plan the run stated before training next to
what it did (stage 2 feature examples, stage 3 steps). Every step is cached in ``--work``.

    python bench/train_budget.py --minutes 4 --scales 1,10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def neo(*args: str) -> float:
    """Run a ``neo`` command in a child process; returns its wall seconds."""
    print("$ neo", " ".join(args), flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "neo_sdk", *args], check=True)
    return time.perf_counter() - started


def scaled(base: Path, out: Path, scale: int) -> Path:
    """``base`` with ``scale - 1`` copies of every item, relation, user and interaction (module docs)."""
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(base)) as a, contextlib.closing(sqlite3.connect(tmp)) as b:
        a.backup(b)
    with contextlib.closing(sqlite3.connect(tmp)) as db:
        items = [c[1] for c in db.execute("PRAGMA table_info(items)")]
        users = [c[1] for c in db.execute("PRAGMA table_info(users)")]
        inter = [c[1] for c in db.execute("PRAGMA table_info(interactions)") if c[1] != "seq"]
        for k in range(1, scale):
            copy = {"id": f"id || '~{k}'", "title": f"title || ' [{k}]'"}
            db.execute(f"INSERT INTO items ({', '.join(items)}) SELECT "
                       + ", ".join(copy.get(c, c) for c in items) + " FROM items WHERE id NOT LIKE '%~%'")
            db.execute(f"INSERT INTO relations SELECT src || '~{k}', relation, dst || '~{k}' FROM relations"
                       " WHERE src NOT LIKE '%~%'")
            db.execute(f"INSERT INTO users ({', '.join(users)}) SELECT "
                       + ", ".join(f"id || '~{k}'" if c == "id" else c for c in users)
                       + " FROM users WHERE id NOT LIKE '%~%'")
            db.execute(f"INSERT INTO interactions ({', '.join(inter)}) SELECT "
                       + ", ".join(f"{c} || '~{k}'" if c in ("user_id", "item_id") else c for c in inter)
                       + " FROM interactions WHERE user_id NOT LIKE '%~%' ORDER BY seq")
        db.commit()
    os.replace(tmp, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="the training budget of each run")
    parser.add_argument("--scales", default="1,10", help="catalog sizes to run, as multiples of the demo")
    parser.add_argument("--probe-users", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("demo/budget"), help="cache folder (git-ignored)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = args.work / "demo.db"
    if not base.exists():
        (args.work / "import.db").unlink(missing_ok=True)
        neo("catalog", "import", "movielens-100k", "--with-people", "--db", str(args.work / "import.db"))
        os.replace(args.work / "import.db", base)
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        db = args.work / f"x{scale}.db"
        if not (args.work / f"x{scale}.sids").exists():
            scaled(base, db, scale)
            sids_seconds = neo("sids", "build", "--db", str(db), "--no-progress")
            (args.work / f"x{scale}.sids").write_text(f"{sids_seconds:.1f}")
        with contextlib.closing(sqlite3.connect(db)) as con:
            n_items, n_inter = (con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("items", "interactions"))
        bundle = args.work / f"bundle-x{scale}-{args.minutes:g}"
        for stale in (bundle, bundle.with_name(bundle.name + ".work")):
            shutil.rmtree(stale, ignore_errors=True)
        wall = neo("train", "--db", str(db), "--out", str(bundle), "--max-minutes", f"{args.minutes:g}",
                   "--probe-users", str(args.probe_users))
        metrics = json.loads((bundle / "manifest.json").read_text())["metrics"]
        plan = metrics["budget"]
        loop = metrics["instruct"]["loop"]
        rows.append({
            "scale": scale, "items": n_items, "interactions": n_inter, "wall_s": round(wall, 1),
            "budget_s": args.minutes * 60, "probe_s": metrics["probe_seconds"],
            "slack_s": round(args.minutes * 60 + metrics["probe_seconds"] - wall, 1),
            "setup_s": round(plan["setup"], 1), "stage2_planned_s": round(plan["align"], 1),
            "stage2_s": round(sum(metrics["align"]["seconds"].values()), 1),
            "feature_examples": f"{plan['align_examples']}/{plan['align_examples_wanted']}",
            "stage3_steps_planned": plan["steps"], "stage3_steps": loop["steps"],
            "stage3_s": round(loop["seconds"], 1),
            "next_item_hr@10": metrics["instruct"]["next_item_valid"]["hr@10"],
            "popularity_hr@10": metrics["instruct"]["next_item_valid"]["popularity_hr@10"],
        })
        print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:,}" if isinstance(row[k], int) else str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
