"""``Session.ask`` latency on a trained bundle (issues 6 and 15). Goals on 2 CPU cores, default model:
top-10 id list p50 <= 0.3 s, mixed answer (item + explanation) p50 <= 3 s, search p50 <= 0.5 s.

The requests name the bundle's main entity type and, for the searches, its most common category
value and an item's title (read from the catalog, so any bundle works).

Each request runs in a fresh session of a different user (so exclusions do not pile up), after
two warm-up requests. The baseline, measured in the same run on the same prompts, is one bare
forward pass of the model over the prompt (the least any answer can cost): the ratios say what
decoding, steering and persistence add on top of reading the prompt.

Usage: python bench/ask_latency.py [--bundle demo/bundle] [--n 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from neo_sdk.session import Neo


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="demo/bundle")
    parser.add_argument("--n", type=int, default=30, help="requests per kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp, Neo.load(args.bundle, sessions=Path(tmp) / "s.db") as neo:
        users = [u for u in neo.catalog.user_ids() if len(neo.catalog.history(u)) >= 5][: args.n + 2]
        main = neo.steering.default_type
        plural = neo.prompts.plural(main)
        genres = [g for i in neo.facts.by_type[main] for g in neo.facts.genres(i)]
        genre = max(set(genres), key=genres.count).lower() if genres else ""
        popular = sorted(neo.facts.by_type[main], key=lambda i: -neo.facts.popularity.get(i, 0))
        kinds = {"ids (top-10)": f"top 10 {plural} for me", "mixed (like this, explain why)": f"{plural} like this, explain why",
                 "text (describe my taste)": "describe my taste",
                 "search (stated facts)": f"find {genre} {plural} from the 1990s",
                 "search (title words)": [f"find {neo.facts.title(i)}" for i in popular[: len(users)]]}
        results: dict[str, dict[str, float]] = {}
        for kind, texts in kinds.items():
            totals, decodes, forwards, tokens, by_model = [], [], [], [], []
            for n, user in enumerate(users):
                text = texts if isinstance(texts, str) else texts[n % len(texts)]
                session = neo.session(user=user)
                request = session.resolve(text)
                prompt = neo.encoder.prompt_ids(neo.prompt_text(request, session.history, user))
                ids = torch.tensor([prompt])
                start = time.perf_counter()
                with torch.inference_mode():
                    neo.model(input_ids=ids, attention_mask=torch.ones_like(ids))
                forward = time.perf_counter() - start
                start = time.perf_counter()
                answer = session.ask(text)
                total = time.perf_counter() - start
                if n < 2:  # warm-up
                    continue
                totals.append(total)
                decodes.append(answer.timings.get("decode_ms", 0.0) / 1000)
                forwards.append(forward)
                tokens.append(len(neo.tokenizer(answer.text)["input_ids"]))
                by_model.append(answer.explained_by == "model")
                assert all(item.type == answer.entity_type for item in answer.answer_items)
            results[kind] = {
                "p50_s": statistics.median(totals), "p95_s": percentile(totals, 0.95),
                "decode_p50_s": statistics.median(decodes), "prompt_forward_p50_s": statistics.median(forwards),
                "ratio_to_forward": statistics.median(totals) / statistics.median(forwards),
                "answer_tokens_mean": statistics.mean(tokens), "n": len(totals),
                "explained_by_model": sum(by_model) / len(by_model) if by_model else 0.0,
            }
    print(f"bundle {args.bundle} ({neo.manifest['base_model']['ref']}, kind {neo.manifest['kind']}),"
          f" {args.threads} threads, {torch.get_num_threads()} torch threads")
    print(f"{'request':<32} {'p50':>7} {'p95':>7} {'decode p50':>11} {'1 forward':>10} {'ratio':>6} {'tokens':>7}"
          f" {'model-explained':>16}")
    for kind, r in results.items():
        print(f"{kind:<32} {r['p50_s']:>6.3f}s {r['p95_s']:>6.3f}s {r['decode_p50_s']:>10.3f}s"
              f" {r['prompt_forward_p50_s']:>9.3f}s {r['ratio_to_forward']:>5.1f}x {r['answer_tokens_mean']:>7.1f}"
              f" {r['explained_by_model']:>16.0%}")
    goals = {"ids (top-10)": 0.3, "mixed (like this, explain why)": 3.0, "search (stated facts)": 0.5,
             "search (title words)": 0.5}
    for kind, goal in goals.items():
        verdict = "meets" if results[kind]["p50_s"] <= goal else "misses"
        print(f"goal {kind}: p50 <= {goal} s -> {verdict} ({results[kind]['p50_s']:.3f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
