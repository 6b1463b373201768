"""``neo eval``: hand-computed metrics (ties, empty histories, K beyond the catalog), bootstrap ratios,
reading unconstrained answers, one scorer for probes and eval, and the whole report on a non-movie catalog."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neo_sdk.catalog import Catalog, Split, leave_one_out
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation import (
    Popularity,
    cut_histories,
    evaluate_ranker,
    mean_ci,
    ratio_ci,
    read_answer,
    summarize,
    target_ranks,
)
from neo_sdk.retrieval import ItemIndex, top_k


@pytest.fixture
def book_split(sample_catalog: Catalog) -> Split:
    return leave_one_out(sample_catalog, entity_type="book")


# ------------------------------------------------------------------ metrics, by hand
def test_tied_scores_take_the_position_the_stated_tie_break_gives() -> None:
    # scores tie a, b, c at 1.0; the tie-break is training count (b, c: 2; a: 0), then index order
    index = ItemIndex(["a", "b", "c", "d"])
    ranking = top_k(np.array([1.0, 1.0, 1.0, 0.0]), 4, index, set(), np.array([0.0, 2.0, 2.0, 5.0]))
    assert ranking == ["b", "c", "a", "d"]
    ranks = target_ranks([ranking, ranking, ranking], ["c", "a", "z"])
    assert ranks.tolist() == [1, 2, -1]  # neither the best tied position (0) nor an average (1.5 or 1.0)
    got = summarize(ranks, ks=(1, 2, 3))
    assert got == pytest.approx({
        "HR@1": 0.0, "HR@2": 1 / 3, "HR@3": 2 / 3,
        "NDCG@1": 0.0, "NDCG@2": (1 / math.log2(3)) / 3, "NDCG@3": (1 / math.log2(3) + 1 / math.log2(4)) / 3,
    })


def test_k_larger_than_the_catalog(sample_catalog: Catalog, book_split: Split) -> None:
    # 8 books, K = 30: every unseen book is ranked, so HR@30 = 1 and NDCG reads the real position
    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    report = evaluate_ranker(pop, book_split, catalog=sample_catalog, stage="test", sample_size=None, k=30,
                             ks=(1, 5, 10, 30), entity_type="book", progress=False)
    # popularity order: dune, earthsea, emma, foundation, hobbit, neuromancer, left-hand, persuasion;
    # ana has seen dune -> earthsea at 0; ben has seen dune, hobbit, earthsea -> foundation at 1 (after emma);
    # chloe has seen emma, persuasion -> hobbit at 3 (after dune, earthsea, foundation)
    assert report.ranks.tolist() == [0, 1, 3]
    assert report.metrics["HR@30"] == report.metrics["HR@10"] == report.metrics["HR@5"] == 1.0
    assert report.metrics["HR@1"] == pytest.approx(1 / 3)
    assert report.metrics["NDCG@30"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5)) / 3)


def test_empty_and_cut_histories(sample_catalog: Catalog, book_split: Split) -> None:
    empty = cut_histories(book_split, "test", 0)
    assert all(h == [] for h in empty.test_history.values()) and empty.test == book_split.test
    assert book_split.test_history["ana"] == ["book:dune", "book:foundation", "book:neuromancer", "book:left-hand",
                                              "author:le-guin"]  # other types stay in histories
    one = cut_histories(book_split, "test", 1)
    assert one.test_history == {"ana": ["author:le-guin"], "ben": ["book:dune"], "chloe": ["author:austen"]}
    assert cut_histories(book_split, "test", 99).test_history == book_split.test_history
    assert one.valid_history == book_split.valid_history  # only the stage asked is cut
    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    kw = {"catalog": sample_catalog, "stage": "test", "sample_size": None, "k": 8, "ks": (1, 5),
          "entity_type": "book", "progress": False}
    # nothing seen: the popularity order for all; earthsea 1, foundation 3, hobbit 4
    assert evaluate_ranker(pop, empty, **kw).ranks.tolist() == [1, 3, 4]
    # one item seen: ana and chloe an author (no book excluded: 1, 4), ben dune (foundation 2)
    assert evaluate_ranker(pop, one, **kw).ranks.tolist() == [1, 2, 4]
    assert target_ranks([[]], ["book:dune"]).tolist() == [-1]  # an empty ranking scores 0
    with pytest.raises(ConfigError):
        cut_histories(book_split, "test", -1)


# ------------------------------------------------------------------ bootstrap
def test_ratio_of_means_and_its_interval() -> None:
    model, base = [1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 0, 0]
    ci = ratio_ci(model, base, n_resamples=500, seed=7)
    assert ci.ratio == pytest.approx(2.0) and ci.contains(2.0) and ci.low < 2.0 < (ci.high or 0)
    assert ci == ratio_ci(model, base, n_resamples=500, seed=7)  # seeded: the same interval
    # one user: every resample is that user, so the interval is the point
    single = ratio_ci([0.5], [0.25], n_resamples=50)
    assert (single.value, single.low, single.high) == (2.0, 2.0, 2.0)
    # paired: identical methods give exactly 1 in every resample
    same = ratio_ci(model, model, n_resamples=200)
    assert (same.low, same.value, same.high) == (1.0, 1.0, 1.0)
    wide, narrow = ratio_ci(model, base, level=0.99, seed=1), ratio_ci(model, base, level=0.5, seed=1)
    assert wide.low <= narrow.low <= narrow.high <= wide.high  # type: ignore[operator]


def test_ratio_to_a_zero_baseline_is_undefined_not_infinite() -> None:
    ci = ratio_ci([1, 0, 1], [0, 0, 0], n_resamples=100)
    assert ci.value is None and ci.low is None and ci.format("x") == "n/a"
    assert ci.to_dict()["value"] is None and not ci.contains(1.0)
    # a baseline that scores for one user only: resamples without that user count as +inf
    partial = ratio_ci([1, 1, 0, 0], [1, 0, 0, 0], n_resamples=400, seed=0)
    assert partial.value == 2.0 and partial.contains(2.0) and partial.high == math.inf
    assert partial.to_dict()["high"] is None and json.dumps(partial.to_dict())


def test_groups_resample_users_not_rows() -> None:
    # two seeds of the same two users: resampling users equals resampling their summed rows
    model, base, users = [1, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "a", "b"]
    grouped = ratio_ci(model, base, groups=users, n_resamples=300, seed=3)
    summed = ratio_ci([2, 1], [1, 2], n_resamples=300, seed=3)
    assert (grouped.value, grouped.low, grouped.high) == (summed.value, summed.low, summed.high)
    assert grouped.n_groups == 2
    m = mean_ci([0, 1, 1, 1], n_resamples=300, seed=0)
    assert m.value == 0.75 and 0 <= m.low <= 0.75 <= m.high <= 1  # type: ignore[operator]
    with pytest.raises(ConfigError):
        ratio_ci([1, 0], [1])
    with pytest.raises(ConfigError):
        ratio_ci([1], [1], groups=["a", "b"])
    with pytest.raises(ConfigError):
        ratio_ci([1], [1], level=1.0)


# ------------------------------------------------------------------ reading unconstrained answers
OPEN, CLOSE, SPACE = 100, 101, 0
ITEMS = {(1, 2): "book:dune", (3, 4): "author:le-guin"}


def _parts() -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]:
    trie = SimpleNamespace(lookup=lambda span: ITEMS.get(tuple(span)),
                           type_of_first_token=lambda t: {1: "book", 3: "author"}.get(t))
    tokens = SimpleNamespace(opener=OPEN, closer=CLOSE)
    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens=True: "".join(
        " " if i == SPACE else chr(ord("a") + i % 26) for i in ids))
    return trie, tokens, tokenizer


@pytest.mark.parametrize(("answer", "formats", "first"), [
    ([OPEN, 1, 2, CLOSE], {"ids"}, "book"),
    ([SPACE, OPEN, 1, 2, CLOSE, SPACE, OPEN, 3, 4, CLOSE], {"ids"}, "book"),  # whitespace between spans
    ([OPEN, 3, 4, CLOSE, SPACE, 7, 8], {"mixed"}, "author"),  # an item, then words
    ([7, 8, SPACE, 9], {"text"}, None),
    ([7, OPEN, 1, 2, CLOSE], set(), "book"),  # words first: neither ids nor mixed
    ([OPEN, 9, 9, CLOSE], set(), None),  # a span that names no item
    ([OPEN, 9, 9, CLOSE, OPEN, 1, 2, CLOSE, 7], set(), None),  # the first span is not an item
    ([OPEN, 1, 2], set(), None),  # unterminated: no item, no format
    ([], set(), None),
])
def test_read_answer(answer: list[int], formats: set[str], first: str | None) -> None:
    reading = read_answer(answer, *_parts())
    assert {f for f in ("ids", "text", "mixed") if reading.matches(f)} == formats
    assert (reading.first_item[1] if reading.first_item else None) == first


def test_a_span_cut_by_the_token_limit_is_not_an_error() -> None:
    answer = [OPEN, 3, 4, CLOSE, SPACE, 7, 8, SPACE, OPEN, 1]
    assert read_answer(answer, *_parts(), truncated=True).matches("mixed")
    assert not read_answer(answer, *_parts()).matches("mixed")  # the model ended inside a span


def test_steer_tasks_come_from_the_templates() -> None:
    from neo_sdk.evaluation._steer import steer_tasks
    from neo_sdk.prompts import load_prompts

    assert steer_tasks(load_prompts()) == {"ids": ("next_item", True), "text": ("profile", False),
                                           "mixed": ("explain", True)}


# ------------------------------------------------------------------ a trained bundle (non-movie catalog)
def _decoder(bundle: Path, catalog: Catalog):  # type: ignore[no-untyped-def]
    from neo_sdk.bundle import load_bundle
    from neo_sdk.decoding import build_decoder
    from neo_sdk.encoding import ExampleEncoder
    from neo_sdk.prompts import load_prompts

    contents = load_bundle(bundle, catalog=catalog)
    prompts = load_prompts(contents.prompts_dir, defaults=False)
    return contents, prompts, build_decoder(contents.model, ExampleEncoder(contents.tokenizer, contents.vocab,
                                                                           system=prompts.system))


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "k", "seed"), [("valid", 3, 0), ("test", 5, 1)])
def test_the_probe_and_neo_eval_agree_exactly(trained_bundle: Path, stage: str, k: int, seed: int) -> None:
    """One scorer: the training probe's next-item numbers equal compare_next_item's (what neo eval
    runs) on the same split, stage, users, cut-off, seed and phrasing family."""
    from neo_sdk.bundle import read_manifest
    from neo_sdk.evaluation import compare_next_item
    from neo_sdk.tasks import CatalogFacts
    from neo_sdk.training._probe import probe_next_item

    with Catalog(read_manifest(trained_bundle)["catalog"]) as catalog:
        contents, prompts, decoder = _decoder(trained_bundle, catalog)
        split = leave_one_out(catalog, entity_type="book")
        probed = probe_next_item(decoder, split, prompts, entity_types=["book"], n=None, seed=seed, k=k,
                                 stage=stage, family="eval", facts=CatalogFacts(catalog, prompts),  # type: ignore[arg-type]
                                 max_history=contents.manifest["training"]["max_history"])
        result = compare_next_item(contents, catalog, entity_types=["book"], stage=stage,  # type: ignore[arg-type]
                                   sample_size=None, seed=seed, ks=(k,), family="eval")
    model, pop = (r.metrics for r in result.comparisons[0].reports[:2])
    assert probed["users"] == result.comparisons[0].reports[0].n_users == 3
    assert (probed[f"hr@{k}"], probed[f"ndcg@{k}"]) == (model[f"HR@{k}"], model[f"NDCG@{k}"])
    assert (probed[f"popularity_hr@{k}"], probed[f"popularity_ndcg@{k}"]) == (pop[f"HR@{k}"], pop[f"NDCG@{k}"])
    assert probed["per_type"]["book"]["users"] == 3


@pytest.mark.slow
def test_neo_eval_end_to_end_on_a_books_catalog(trained_bundle: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from neo_sdk.cli import main

    out = tmp_path / "eval"
    args = ["eval", "--bundle", str(trained_bundle), "--split", "test", "--users", "all", "--seeds", "0,1",
            "--sasrec-minutes", "0.05", "--steer-prompts", "3", "--bootstrap", "200", "--search", "0", "--explain", "0",
            "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "plan:" in captured.err and "estimate" in captured.err  # said up front, on stderr
    text = captured.out
    assert text.startswith("neo eval: ") and "next book: test split, 3 users, 2 seeds" in text
    for label in ("neo (beam search)", "popularity (seen incl.)", "item-knn", "sasrec-ce", "/ sasrec-ce",
                  "short histories", "model validity", "steerability, constraints off", "search: not measured"):
        assert label in text, label
    assert "next author: skipped" in text  # nobody follows two authors: no author target

    for name in ("report.md", "report.json", "metrics.png", "cold_start.png", "loss.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "report.json").read_text())
    book = data["next_item"]["book"]
    assert book["n_users"] == 3 and book["n_items"] == 8 and book["seeds"] == [0, 1] and len(book["per_seed"]) == 2
    assert book["model"] == "neo (beam search)" and set(book["methods"]) == {
        "neo (beam search)", "popularity", "popularity (seen incl.)", "item-knn", "sasrec-ce"}
    for base in ("popularity", "sasrec-ce"):
        for metric in ("HR@10", "NDCG@10"):
            ci = book["ratios"][base][metric]
            assert ci["n_resamples"] == 200 and ci["n_groups"] == 3, (base, metric)
            if ci["value"] is not None:
                assert ci["low"] <= ci["value"] and (ci["high"] is None or ci["value"] <= ci["high"])
    model = book["methods"]["neo (beam search)"]
    assert model["metrics"]["HR@30"] == 1.0  # K beyond the catalog: every unseen book is ranked
    assert book["validity"]["invalid_rate"] == 0.0 and book["validity"]["wrong_type_rate"] == 0.0
    assert book["validity"]["ranked"] > 0
    assert set(book["cold_start"]) == {"0", "1", "3", "all"}  # an empty history did not crash
    assert set(book["cold_start"]["0"]) == {"neo (beam search)", "popularity"}
    assert book["methods"]["sasrec-ce"]["fit"]["epochs_run"] >= 1
    assert data["search"]["status"] == data["explanations"]["status"] == "not measured"
    assert data["headline"]["book"]["metric"] == "HR@10" and "ratio_to_sasrec-ce" in data["headline"]["book"]
    steer = {(r["entity_type"], r["format"]): r for r in data["steerability"]}
    assert set(steer) == {("book", "ids"), ("book", "mixed"), (None, "text")}
    assert all(r["prompts"] == 3 and 0 <= r["right_format"] <= 3 for r in steer.values())
    assert steer[(None, "text")]["right_type"] is None and steer[("book", "ids")]["right_type"] is not None
    assert data["plots"] == {"metrics": "metrics.png", "cold_start": "cold_start.png", "loss": "loss.png"}
    md = (out / "report.md").read_text()
    assert "## Next book" in md and "![metrics and ratios](metrics.png)" in md and "## Search" in md

    assert main([*args[:-2], "--headline", "--no-sasrec", "--cold-start", "none", "--steer-prompts", "0"]) == 0
    head = capsys.readouterr().out.splitlines()
    assert head[0].startswith("next book: HR@10") and "model / popularity:" in head[2] and len(head) == 3


@pytest.mark.slow
def test_report_sections_hook_and_per_type_plot(trained_bundle: Path, tmp_path: Path) -> None:
    from neo_sdk.bundle import read_manifest
    from neo_sdk.evaluation import EvalSettings, evaluate_bundle, write_report

    settings = EvalSettings(sample_size=None, baselines=("popularity",), cold_start=(0,), steer_prompts=0,
                            resamples=50)
    with Catalog(read_manifest(trained_bundle)["catalog"]) as catalog:
        evaluation = evaluate_bundle(trained_bundle, catalog, settings)
        with pytest.raises(ConfigError, match="no test target"):
            evaluate_bundle(trained_bundle, catalog, replace(settings, entity_types=("author",)))
    assert [t.entity_type for t in evaluation.types] == ["book"] and list(evaluation.types[0].ratios) == ["popularity"]
    evaluation.types.append(replace(evaluation.types[0], entity_type="author"))  # a second type, for the plot
    files = write_report(evaluation, tmp_path, sections={"search": {"summary": "hit@10 0.42", "markdown": "| q | hit |"}})
    assert {"per_type", "metrics", "cold_start"} <= set(files)
    data = json.loads(files["report.json"].read_text())
    assert data["search"] == {"summary": "hit@10 0.42", "markdown": "| q | hit |"}
    assert data["explanations"]["status"] == "not measured"
    assert "| q | hit |" in files["report.md"].read_text()
