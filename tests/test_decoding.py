"""Decoding: compact trie, filters, the fail-closed mode machine, beam search, parsing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from neo_sdk import DecodingError
from neo_sdk.decoding import (
    ItemSegment,
    SIDConstraint,
    SIDTokens,
    SIDTrie,
    TextSegment,
    TrieFilter,
    beam_search_items,
    generate_constrained,
    parse_output,
    replay,
)

# A synthetic token space: 0..99 text, 100/101 delimiters, movie codes 200.. (3 levels x 8),
# person codes 300.. (2 levels x 4). The decoder only sees token ids, never names.
OPEN, CLOSE, EOS, VOCAB = 100, 101, 0, 400
MOVIE = [[200 + 8 * level + c for c in range(8)] for level in range(3)]
PERSON = [[300 + 4 * level + c for c in range(4)] for level in range(2)]
CODES = np.asarray(sorted(itertools.chain(*MOVIE, *PERSON)))
TOKENS = SIDTokens(OPEN, CLOSE, CODES)


def small_catalog(n_movies: int = 60, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    codes: set[tuple[int, ...]] = set()
    while len(codes) < n_movies:
        codes.add(tuple(int(x) for x in rng.integers(0, 8, 3)))
    movies = [[MOVIE[level][c] for level, c in enumerate(code)] for code in sorted(codes)]
    people = [[PERSON[0][a], PERSON[1][b]] for a in range(4) for b in range(4)]
    sequences = {"movie": movies, "person": people}
    ids = {"movie": [f"movie:{k}" for k in range(len(movies))], "person": [f"person:{k}" for k in range(16)]}
    return sequences, ids


@pytest.fixture(scope="module")
def trie() -> SIDTrie:
    return SIDTrie.build(*small_catalog())


def test_trie_round_trip_and_types(trie: SIDTrie) -> None:
    sequences, ids = small_catalog()
    for etype in ("movie", "person"):
        for seq, item in zip(sequences[etype], ids[etype]):
            assert trie.lookup(seq) == item
            assert trie.type_of_first_token(seq[0]) == etype
    assert trie.lookup(sequences["movie"][0][:2]) is None  # a prefix is not an item
    assert trie.lookup([999]) is None
    assert trie.num_items == 76
    assert sorted(trie.types) == ["movie", "person"]


@pytest.mark.parametrize(
    ("sequences", "message"),
    [
        ({"movie": [[200, 208], [200, 208]]}, "duplicate SID"),
        ({"movie": [[200, 208]], "person": [[200, 300]]}, "decidable from the first token"),
        ({"movie": [[200, 208], [201]]}, "same length"),
    ],
)
def test_trie_refuses_ambiguous_input(sequences: dict, message: str) -> None:
    ids = {t: [f"{t}{k}" for k in range(len(s))] for t, s in sequences.items()}
    with pytest.raises(DecodingError, match=message):
        SIDTrie.build(sequences, ids)


def test_trie_memory_is_compact() -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    prefix = np.stack([rng.integers(0, 256, n), rng.integers(0, 256, n)], 1)
    order = np.lexsort(prefix.T[::-1])
    run_start = np.r_[True, np.any(prefix[order][1:] != prefix[order][:-1], 1)]
    idx = np.arange(n)
    disamb = np.empty(n, dtype=np.int64)
    disamb[order] = idx - np.maximum.accumulate(np.where(run_start, idx, 0))
    seqs = np.concatenate([prefix + [1000, 2000], (disamb + 3000)[:, None]], 1)
    big = SIDTrie.build({"x": seqs}, {"x": np.arange(n)})
    assert big.nbytes / n <= 16
    for k in rng.integers(0, n, 50):
        assert big.lookup(seqs[k].tolist()) == str(k)


def test_filters(trie: SIDTrie) -> None:
    only_people = TrieFilter.create(trie, entity_types=["person"])
    assert only_people.num_allowed == 16
    tokens, targets, leaves = trie.children(0)
    alive = only_people.alive(trie, targets, leaves)
    assert set(tokens[alive].tolist()) == set(PERSON[0])
    some = TrieFilter.create(trie, allow=["movie:1", "movie:2", "person:3"], exclude=["movie:2"])
    assert some.num_allowed == 2
    with pytest.raises(DecodingError, match="unknown entity types"):
        TrieFilter.create(trie, entity_types=["podcast"])
    with pytest.raises(DecodingError, match="allowlist"):
        TrieFilter.create(trie, allow=["movie:nope"])


def _run_adversarial(trie: SIDTrie, flt: TrieFilter, fmt: str, rows: int, seed: int, max_items: int = 3):
    """Generate with random logits that push hard towards forbidden tokens; return token rows."""
    gen = torch.Generator().manual_seed(seed)
    constraint = SIDConstraint(trie, TOKENS, 0, filter=flt, format=fmt, max_items=max_items, eos_token_id=EOS)
    seqs = torch.zeros((rows, 0), dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    banned = [p for p in range(trie.num_items) if not flt.allowed[p]]
    lures = [trie_sequence(trie, pos) for pos in banned[:5]]
    for _ in range(30):
        scores = torch.randn((rows, VOCAB), generator=gen)
        scores[:, CODES] += 8.0  # SID codes look great everywhere, including in text
        scores[:, CLOSE] += 6.0
        scores[:, EOS] -= 4.0
        scores[:, OPEN] += 6.0  # open spans often, so spans get exercised
        for path in lures:
            scores[:, path] += 10.0  # and excluded items look best of all
        masked = constraint(seqs, scores)
        nxt = torch.multinomial(torch.softmax(masked, -1), 1, generator=gen)[:, 0]
        nxt[done] = EOS
        done |= nxt == EOS
        seqs = torch.cat([seqs, nxt[:, None]], 1)
    return seqs


SMALL = small_catalog()


def trie_sequence(trie: SIDTrie, position: int) -> list[int]:
    sequences, ids = SMALL
    item = str(trie.item_ids[position])
    etype = item.split(":")[0]
    return sequences[etype][ids[etype].index(item)]


@pytest.mark.parametrize("fmt", ["mixed", "ids"])
def test_adversarial_logits_never_escape(trie: SIDTrie, fmt: str) -> None:
    """10,000+ generations, each item valid, of the allowed type, not excluded, never repeated."""
    excluded = [f"movie:{k}" for k in range(0, 60, 3)]
    flt = TrieFilter.create(trie, entity_types=["movie"], exclude=excluded)
    total_items = 0
    generations = 0
    for seed in range(5):
        seqs = _run_adversarial(trie, flt, fmt, rows=1000, seed=seed)
        for row in seqs.tolist():
            tokens = row[: row.index(EOS)] if EOS in row else row
            state = replay(tokens, trie, TOKENS)  # raises on any invalid transition
            items = [str(trie.item_ids[p]) for p in state.items]
            assert all(i.startswith("movie:") and i not in excluded for i in items)
            assert len(items) == len(set(items))
            if fmt == "ids":
                assert all(t in (OPEN, CLOSE) or t in CODES for t in tokens)
                assert len(items) <= 3
            total_items += len(items)
            generations += 1
    # 5,000 generations per format, 10,000 over the two parametrised runs
    assert generations == 5000 and total_items >= 5000


def test_every_item_is_reachable(trie: SIDTrie) -> None:
    """Explore the mode machine's allowed tokens exhaustively: the leaves are exactly the catalog."""
    constraint = SIDConstraint(trie, TOKENS, 0)
    reached = set()
    frontier = [[OPEN]]
    while frontier:
        path = frontier.pop()
        state = replay(path, trie, TOKENS)
        if state.at_leaf:
            reached.add(str(trie.item_ids[state.leaf_position]))
            continue
        frontier.extend(path + [t] for t in constraint.allowed_in_span(state).tolist())
    assert reached == {str(i) for i in trie.item_ids}


def test_dead_end_raises_instead_of_decoding_freely(trie: SIDTrie) -> None:
    nothing = TrieFilter.create(trie, allow=[])
    constraint = SIDConstraint(trie, TOKENS, 0, filter=nothing)
    with pytest.raises(DecodingError, match="refusing to decode unconstrained"):
        constraint(torch.tensor([[5, OPEN]]), torch.zeros((1, VOCAB)))
    # A row that already produced the only allowed item cannot open another span of it.
    one = TrieFilter.create(trie, allow=["person:0"])
    constraint = SIDConstraint(trie, TOKENS, 0, filter=one)
    path = trie_sequence(trie, trie.position_of()["person:0"])
    with pytest.raises(DecodingError):
        constraint(torch.tensor([[OPEN, *path, CLOSE, OPEN]]), torch.zeros((1, VOCAB)))
    with pytest.raises(DecodingError, match="not a valid SID continuation"):
        replay([OPEN, PERSON[0][0], MOVIE[1][0]], trie, TOKENS)


def test_text_mode_forbids_codes_and_closer(trie: SIDTrie) -> None:
    constraint = SIDConstraint(trie, TOKENS, 0, format="mixed")
    masked = constraint(torch.tensor([[5, 6]]), torch.zeros((1, VOCAB)))
    assert torch.isinf(masked[0, CODES]).all() and torch.isinf(masked[0, CLOSE])
    assert torch.isfinite(masked[0, :100]).all() and torch.isfinite(masked[0, OPEN])
    text_only = SIDConstraint(trie, TOKENS, 0, format="text")
    assert torch.isinf(text_only(torch.tensor([[5]]), torch.zeros((1, VOCAB)))[0, OPEN])


def test_parse_output(trie: SIDTrie) -> None:
    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(97 + i % 26) for i in ids)

    movie = trie_sequence(trie, 0)
    segments = parse_output([1, 2, OPEN, *movie, CLOSE, 3], trie, TOKENS, Tok())
    assert segments == [
        TextSegment("bc"),
        ItemSegment(str(trie.item_ids[0]), "movie", tuple(movie)),
        TextSegment("d"),
    ]
    with pytest.raises(DecodingError, match="names no catalog item"):
        parse_output([OPEN, MOVIE[0][0], CLOSE], trie, TOKENS, Tok())
    assert parse_output([OPEN, MOVIE[0][0], CLOSE, 4], trie, TOKENS, Tok(), strict=False) == [TextSegment("e")]
    with pytest.raises(DecodingError, match="unterminated"):
        parse_output([OPEN, *movie], trie, TOKENS, Tok())


# ------------------------------------------------------------- with a real model
@pytest.fixture(scope="module")
def tiny_model():
    """4 layers of the real SmolLM2 weights plus SID tokens: fast plumbing, meaningless outputs."""
    from neo_sdk.model import load_base_model

    torch.manual_seed(0)
    model, tokenizer = load_base_model(num_hidden_layers=4)
    names = ["<|sid|>", "<|/sid|>"] + [f"<|m{level}_{c}|>" for level in range(3) for c in range(8)]
    tokenizer.add_tokens(names, special_tokens=True)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():  # distinct rows so item scores differ
        model.get_input_embeddings().weight[-len(names):] = torch.randn(len(names), 576) * 0.05
    ids = tokenizer.convert_tokens_to_ids(names)
    tokens = SIDTokens(ids[0], ids[1], np.asarray(ids[2:]))
    rng = np.random.default_rng(0)
    codes = sorted({tuple(int(x) for x in rng.integers(0, 8, 3)) for _ in range(40)})
    seqs = [[ids[2 + 8 * level + c] for level, c in enumerate(code)] for code in codes]
    trie = SIDTrie.build({"movie": seqs}, {"movie": [f"movie:{k}" for k in range(len(seqs))]})
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Recommend three movies"}], add_generation_prompt=True, tokenize=False
    )
    return model, tokenizer, trie, tokens, tokenizer(prompt)["input_ids"], seqs


def _brute_force(model, prompt, trie, tokens, seqs):
    scores = {}
    for k, seq in enumerate(seqs):
        x = torch.tensor([list(prompt) + [tokens.opener] + seq])
        with torch.no_grad():
            logits = model(x).logits[0].float()
        node, total = 0, 0.0
        for depth, token in enumerate(seq):
            allowed = trie.children(node)[0]
            logp = torch.log_softmax(logits[len(prompt) + depth, torch.as_tensor(allowed)], -1)
            total += float(logp[allowed.tolist().index(token)])
            node, _ = trie.step(node, token)
        scores[f"movie:{k}"] = total
    return sorted(scores, key=lambda i: -scores[i])


def test_beam_search_is_exact_when_wide_and_batches_consistently(tiny_model) -> None:
    model, _, trie, tokens, prompt, seqs = tiny_model
    exact = _brute_force(model, prompt, trie, tokens, seqs)
    wide = beam_search_items(model, [prompt], trie, tokens, k=10, num_beams=len(seqs))[0]
    assert [s.item_id for s in wide] == exact[:10]
    narrow = beam_search_items(model, [prompt], trie, tokens, k=5, num_beams=10)[0]
    assert len({s.item_id for s in narrow}) == 5
    short = prompt[:7]
    batched = beam_search_items(model, [prompt, short], trie, tokens, k=5)
    alone = beam_search_items(model, [short], trie, tokens, k=5)[0]
    assert [s.item_id for s in batched[1]] == [s.item_id for s in alone]
    assert [s.score for s in batched[1]] == pytest.approx([s.score for s in alone], abs=1e-4)
    excluded = {s.item_id for s in wide[:3]}
    flt = TrieFilter.create(trie, exclude=excluded)
    filtered = beam_search_items(model, [prompt], trie, tokens, k=10, filters=flt)[0]
    assert excluded.isdisjoint(s.item_id for s in filtered) and len(filtered) == 10


def test_generate_respects_format_and_ignores_model_sampling_config(tiny_model) -> None:
    model, tokenizer, trie, tokens, prompt, _ = tiny_model
    model.generation_config.do_sample = True  # a model's own config must not switch sampling on
    model.generation_config.temperature = 5.0
    outputs = [
        generate_constrained(model, prompt, trie, tokens, eos_token_id=tokenizer.eos_token_id,
                             format="ids", max_items=3, max_new_tokens=20)
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1]
    segments = parse_output(outputs[0], trie, tokens, tokenizer)
    assert [type(s) for s in segments] == [ItemSegment] * 3
    assert len({s.item_id for s in segments}) == 3
    mixed = generate_constrained(model, prompt, trie, tokens, eos_token_id=tokenizer.eos_token_id,
                                 format="mixed", max_new_tokens=40, do_sample=True, seed=3)
    parse_output(mixed, trie, tokens, tokenizer)  # strict: raises on any invalid span


@pytest.mark.slow
def test_full_smollm2_decodes_only_valid_items() -> None:
    """The full 30-layer SmolLM2 (not a slice): every generated item is a catalog item."""
    from neo_sdk.model import load_base_model

    model, tokenizer = load_base_model()
    names = ["<|sid|>", "<|/sid|>"] + [f"<|f{level}_{c}|>" for level in range(2) for c in range(8)]
    tokenizer.add_tokens(names, special_tokens=True)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = tokenizer.convert_tokens_to_ids(names)
    tokens = SIDTokens(ids[0], ids[1], np.asarray(ids[2:]))
    seqs = [[ids[2 + a], ids[10 + b]] for a in range(8) for b in range(8)]
    trie = SIDTrie.build({"film": seqs}, {"film": [f"film:{k}" for k in range(64)]})
    prompt = tokenizer(tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name two films."}], add_generation_prompt=True, tokenize=False))["input_ids"]
    ranked = beam_search_items(model, [prompt], trie, tokens, k=10)[0]
    assert len({r.item_id for r in ranked}) == 10
    assert all(trie.lookup(list(r.tokens)) == r.item_id for r in ranked)
    out = generate_constrained(model, prompt, trie, tokens, eos_token_id=tokenizer.eos_token_id,
                               format="ids", max_items=2, max_new_tokens=12)
    segments = parse_output(out, trie, tokens, tokenizer)
    assert len(segments) == 2 and all(isinstance(s, ItemSegment) for s in segments)


def test_citation_rule_makes_a_comparison_name_an_item(trie: SIDTrie) -> None:
    """After a citation cue only the tokens the rule names may follow while an item is left (the
    opener, or a space before it); with no allowed item left the rule steps aside."""
    cue = 7  # the synthetic token of "like"

    def after(run: list[int]) -> list[int] | None:
        return [OPEN] if run[-1:] == [cue] else [3, OPEN] if run[-1:] == [6] else None

    constraint = SIDConstraint(trie, TOKENS, 0, format="mixed", cite_after=after)
    masked = constraint(torch.tensor([[5, cue], [5, 6], [5, 5]]), torch.zeros((3, VOCAB)))
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [OPEN]
    assert torch.isfinite(masked[1]).nonzero().flatten().tolist() == [3, OPEN]
    assert torch.isfinite(masked[2, :100]).all()  # no cue: free text
    path = trie_sequence(trie, trie.position_of()["person:0"])  # the text since the last span is read
    assert torch.isfinite(constraint(torch.tensor([[cue, OPEN, *path, CLOSE, 5]]), torch.zeros((1, VOCAB)))[0, 5])
    one = TrieFilter.create(trie, allow=["person:0"])  # the one allowed item is used up: no rule
    used = SIDConstraint(trie, TOKENS, 0, format="mixed", filter=one, filtered_items=None, cite_after=after)
    assert torch.isfinite(used(torch.tensor([[OPEN, *path, CLOSE, cue]]), torch.zeros((1, VOCAB)))[0, :100]).all()
    codes = SIDConstraint(trie, TOKENS, 0, format="mixed", cite_after=lambda run: [int(CODES[0])])
    with pytest.raises(DecodingError, match="never SID codes"):
        codes(torch.tensor([[5]]), torch.zeros((1, VOCAB)))
    assert SIDConstraint(trie, TOKENS, 0, format="text", cite_after=after).cite_after is None  # mixed only


def test_an_explanation_may_cite_an_item_its_forced_grounds_already_name(trie: SIDTrie) -> None:
    """The runtime forces the grounds line ("... drama like <span>") before the model writes; with
    distinct items, that span used up the only citable item and the opener was forbidden, so the
    model wrote "like 1997" where the item belonged (issue 26). ``distinct=False`` keeps it citable."""
    one = TrieFilter.create(trie, allow=["person:0"])
    path = trie_sequence(trie, trie.position_of()["person:0"])
    forced = torch.tensor([[OPEN, *path, CLOSE, 5, 7]])
    distinct = SIDConstraint(trie, TOKENS, 0, format="mixed", filter=one)
    assert torch.isinf(distinct(forced, torch.zeros((1, VOCAB)))[0, OPEN])
    citing = SIDConstraint(trie, TOKENS, 0, format="mixed", filter=one, distinct=False)
    assert torch.isfinite(citing(forced, torch.zeros((1, VOCAB)))[0, OPEN])
