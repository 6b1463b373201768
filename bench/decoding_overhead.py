"""Decoding overhead benchmark (issue 4). Every ratio is against a baseline measured in this run.

1. Constrained vs unconstrained greedy generation, same model, same prompts (target: <= 1%).
2. Per-step mask cost of the logits processor on synthetic tries of 1k .. 10M items (target:
   flat, within 1.2x from 1k to 10M).
3. Top-10 id-list latency: our shared-prefill beam search vs transformers' beam search (10 beams,
   the same constraint as a logits processor) on the same 72-token prompt (goal: >= 3x faster,
   p50 <= 0.3 s on the full SmolLM2).

Usage: python bench/decoding_overhead.py [--sizes 1000 100000 1000000 10000000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessorList

from neo_sdk.decoding import SIDConstraint, SIDTokens, SIDTrie, TrieFilter, beam_search_items
from neo_sdk.model import load_base_model

LEVELS, CODES = 2, 256  # codes per level; a disambiguation level follows
MAX_DISAMB = 1023  # enough for 10M items over 65,536 prefixes


def synthetic_sids(n: int, first_token: int, seed: int = 0) -> np.ndarray:
    """(n, 3) token ids: two random code levels + a disambiguation code, all unique."""
    rng = np.random.default_rng(seed)
    prefix = rng.integers(0, CODES, size=(n, LEVELS))
    order = np.lexsort(prefix.T[::-1])
    start = np.r_[True, np.any(prefix[order][1:] != prefix[order][:-1], 1)]
    idx = np.arange(n)
    disamb = np.empty(n, dtype=np.int64)
    disamb[order] = idx - np.maximum.accumulate(np.where(start, idx, 0))
    tokens = np.concatenate([prefix + first_token + CODES * np.arange(LEVELS), disamb[:, None]], 1)
    tokens[:, LEVELS] += first_token + CODES * LEVELS
    return tokens


def add_sid_tokens(model, tokenizer, max_disamb: int) -> SIDTokens:
    names = ["<|sid|>", "<|/sid|>"] + [f"<|x_{lvl}_{c}|>" for lvl in range(LEVELS) for c in range(CODES)]
    names += [f"<|x_d_{c}|>" for c in range(max_disamb + 1)]
    tokenizer.add_tokens(names, special_tokens=True)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = tokenizer.convert_tokens_to_ids(names)
    return SIDTokens(ids[0], ids[1], np.asarray(ids[2:]))


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def prompt_ids(tokenizer, words: int) -> list[int]:
    text = "Recommend movies for a user who watched " + ", ".join(f"film number {k}" for k in range(words))
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=False)
    return tokenizer(ids)["input_ids"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")

    model, tokenizer = load_base_model()
    base_first = len(tokenizer) + 2
    catalog_sids = synthetic_sids(1_682, base_first)
    tokens = add_sid_tokens(model, tokenizer, MAX_DISAMB)
    # the synthetic ids must match the token ids just added (first code token right after delimiters)
    assert tokens.code_tokens[0] == base_first
    trie = SIDTrie.build({"movie": catalog_sids}, {"movie": [f"movie:{k}" for k in range(1_682)]})
    eos = tokenizer.eos_token_id

    # 1. constrained vs unconstrained greedy generation ------------------------------------
    prompt = prompt_ids(tokenizer, 12)
    x = torch.tensor([prompt])
    config = GenerationConfig(max_new_tokens=32, min_new_tokens=32, do_sample=False, num_beams=1,
                              eos_token_id=eos, pad_token_id=eos)

    inside = []  # seconds spent inside the processor, per constrained generation

    class TimedConstraint(SIDConstraint):
        def __call__(self, input_ids, scores):  # type: ignore[override]
            start = time.perf_counter()
            out = super().__call__(input_ids, scores)
            inside[-1] += time.perf_counter() - start
            return out

    def generate(constrained: bool) -> None:
        processors = LogitsProcessorList()
        if constrained:
            inside.append(0.0)
            processors.append(TimedConstraint(trie, tokens, x.shape[1], format="mixed"))
        with torch.inference_mode():
            model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=config,
                           logits_processor=processors)

    generate(True)
    plain, constrained = [], []
    for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
        plain += timed(lambda: generate(False), 1)
        constrained += timed(lambda: generate(True), 1)
    p_plain, p_con = statistics.median(plain), statistics.median(constrained)
    print(f"\n[1] greedy 32 new tokens, {len(prompt)}-token prompt, median of {args.repeats}")
    print(f"    unconstrained {p_plain * 1000:.1f} ms, constrained {p_con * 1000:.1f} ms, "
          f"wall-clock difference {100 * (p_con / p_plain - 1):+.2f}% (noisy: interleaved runs)")
    share = statistics.median(inside[1:]) / p_con
    print(f"    time inside the constraint: {statistics.median(inside[1:]) * 1000:.2f} ms per generation"
          f" = {100 * share:.3f}% of generation time (target <= 1%)")

    # 2. per-step mask cost vs trie size -----------------------------------------------
    print(f"\n[2] per-step mask cost, batch of 10 rows inside spans, vocab {len(tokenizer)}")
    vocab = len(tokenizer)
    per_size = {}
    for n in args.sizes:
        sids = synthetic_sids(n, base_first, seed=1)
        assert sids[:, -1].max() <= tokens.code_tokens.max(), "raise MAX_DISAMB"
        t0 = time.perf_counter()
        big = SIDTrie.build({"x": sids}, {"x": np.arange(n)})
        build = time.perf_counter() - t0
        flt = TrieFilter.from_mask(np.ones(n, dtype=bool))
        constraint = SIDConstraint(big, tokens, 0, filter=flt)
        rng = np.random.default_rng(2)
        rows = []
        for k in rng.integers(0, n, 10):  # spans at depth 0..2 (root, level 1, disambiguation)
            depth = int(k % 3)
            rows.append([tokens.opener, *sids[k][:depth].tolist()])
        width = max(len(r) for r in rows)
        batch = torch.tensor([[5] * (width - len(r)) + r for r in rows])
        scores = torch.zeros((10, vocab))
        constraint(batch, scores)  # warm the state cache like a real decode loop would
        reps = timed(lambda c=constraint, b=batch, s=scores: c(b, s), 30)
        per_size[n] = statistics.median(reps)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"    {n:>10,} items: build {build:6.2f} s, {big.nbytes / n:5.1f} B/item, "
              f"mask {per_size[n] * 1e3:6.3f} ms/step, peak RSS {rss:,.0f} MB")
    sizes = sorted(per_size)
    print(f"    ratio largest/smallest: {per_size[sizes[-1]] / per_size[sizes[0]]:.2f}x (target <= 1.2x)")

    # 3. top-10 latency: ours vs transformers' beam search -----------------------------
    prompt = prompt_ids(tokenizer, 14)[:72]
    print(f"\n[3] top-10 items, {len(prompt)}-token prompt, 10 beams, median of {args.repeats}")

    def ours() -> list[str]:
        return [s.item_id for s in beam_search_items(model, [prompt], trie, tokens, k=10, num_beams=10)[0]]

    x = torch.tensor([prompt + [tokens.opener]])
    hf_config = GenerationConfig(max_new_tokens=LEVELS + 1, num_beams=10, num_return_sequences=10,
                                 do_sample=False, early_stopping=True, eos_token_id=tokens.closer,
                                 pad_token_id=eos, length_penalty=0.0)

    def theirs() -> None:
        constraint = SIDConstraint(trie, tokens, x.shape[1] - 1, format="mixed")
        with torch.inference_mode():
            model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=hf_config,
                           logits_processor=LogitsProcessorList([constraint]))

    ours(), theirs()
    mine, hf = [], []
    for _ in range(args.repeats):
        mine += timed(ours, 1)
        hf += timed(theirs, 1)
    p_mine, p_hf = statistics.median(mine), statistics.median(hf)
    print(f"    transformers beam search {p_hf * 1000:.0f} ms, neo beam search {p_mine * 1000:.0f} ms: "
          f"{p_hf / p_mine:.1f}x faster (goal >= 3x; p50 goal <= 300 ms)")
    batch = [prompt] * 8
    t0 = time.perf_counter()
    beam_search_items(model, batch, trie, tokens, k=10, num_beams=10)
    print(f"    batched 8 queries: {(time.perf_counter() - t0) / 8 * 1000:.0f} ms per query")


if __name__ == "__main__":
    main()
