"""Evaluation room: exact metric values, the harness's protocol guarantees, baselines, search, reports."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from neo_sdk.catalog import Catalog, Split, leave_one_out, load_dataset
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation import (
    BM25Retriever,
    DenseRetriever,
    EvalReport,
    ItemKNN,
    Popularity,
    RandomRanker,
    evaluate_ranker,
    evaluate_search,
    hit_rate,
    invalid_count,
    ndcg,
    resolve_entity_type,
    resolve_entity_types,
    results_header,
    results_row,
    results_table,
    sample_users,
    save_metrics_png,
    seed_spread,
    summarize,
    target_ranks,
)

BOOKS = [
    "book:dune", "book:earthsea", "book:emma", "book:foundation", "book:hobbit",
    "book:left-hand", "book:neuromancer", "book:persuasion",
]


# ------------------------------------------------------------------ metrics
def test_metrics_on_hand_computed_rankings() -> None:
    rankings = [
        ["t", "a", "b"],                             # hit at position 0
        ["a", "b", "t"],                             # hit at position 2
        ["a", "b", "c"],                             # miss
        [f"x{i}" for i in range(9)] + ["t"],         # hit at position 9: inside @10, outside @5
        [f"x{i}" for i in range(10)] + ["t"],        # hit at position 10: outside @10
    ]
    ranks = target_ranks(rankings, ["t"] * 5)
    assert ranks.tolist() == [0, 2, -1, 9, 10]
    assert hit_rate(ranks, 1).tolist() == [1, 0, 0, 0, 0]
    assert hit_rate(ranks, 10).tolist() == [1, 1, 0, 1, 0]
    assert ndcg(ranks, 5).tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]  # 1/log2(2), 1/log2(4)
    assert ndcg(ranks, 10)[3] == pytest.approx(1 / math.log2(11))
    got = summarize(ranks, ks=(5, 10, 30))
    assert got == pytest.approx({
        "HR@5": 2 / 5, "HR@10": 3 / 5, "HR@30": 4 / 5,
        "NDCG@5": 1.5 / 5,
        "NDCG@10": (1.5 + 1 / math.log2(11)) / 5,
        "NDCG@30": (1.5 + 1 / math.log2(11) + 1 / math.log2(12)) / 5,
    })


def test_metric_edge_cases() -> None:
    # a repeated target counts at its first position; no users gives zeros, not NaN
    assert target_ranks([["a", "t", "t"]], ["t"]).tolist() == [1]
    assert summarize(np.zeros(0, dtype=np.int64), ks=(10,)) == {"HR@10": 0.0, "NDCG@10": 0.0}
    assert invalid_count([["a", "zz"], ["b"]], {"a", "b"}) == (1, 3)
    with pytest.raises(ConfigError):
        hit_rate(np.array([0]), 0)
    with pytest.raises(ConfigError):
        target_ranks([["a"]], ["a", "b"])


def test_seed_spread() -> None:
    spread = seed_spread([{"HR@10": 0.1, "x": 1.0}, {"HR@10": 0.2}, {"HR@10": 0.3}])
    assert spread.keys() == {"HR@10"}  # only metrics present in every run
    mean, std = spread["HR@10"]
    assert mean == pytest.approx(0.2) and std == pytest.approx(0.1)
    assert seed_spread([{"HR@10": 0.5}]) == {"HR@10": (0.5, 0.0)}


# ------------------------------------------------------------- sample catalog
@pytest.fixture
def book_split(sample_catalog: Catalog) -> Split:
    return leave_one_out(sample_catalog, entity_type="book")


def test_sample_split_is_what_the_tests_assume(book_split: Split) -> None:
    assert book_split.valid == {"ana": "book:left-hand", "ben": "book:dune", "chloe": "book:persuasion"}
    assert book_split.test == {"ana": "book:earthsea", "ben": "book:foundation", "chloe": "book:hobbit"}
    assert book_split.train == {
        "ana": ["book:dune", "book:foundation", "book:neuromancer"],
        "ben": ["book:hobbit", "book:earthsea"],
        "chloe": ["book:emma"],
    }


def test_harness_scores_a_scripted_ranker_exactly(sample_catalog: Catalog, book_split: Split) -> None:
    script = {
        "ana": ["book:earthsea", "book:emma"],           # test target at 0
        "ben": ["book:emma", "book:hobbit", "author:asimov", "book:foundation"],  # at 3; 1 invalid
        "chloe": ["nope:1", "book:dune"],                # miss; 1 invalid
    }
    report = evaluate_ranker(
        lambda user, history, k, exclude: script[user], book_split, catalog=sample_catalog,
        stage="test", sample_size=None, k=5, ks=(1, 5), entity_type="book", progress=False,
    )
    assert report.users == ["ana", "ben", "chloe"]
    assert report.ranks.tolist() == [0, 3, -1]
    assert report.metrics == pytest.approx(
        {"HR@1": 1 / 3, "HR@5": 2 / 3, "NDCG@1": 1 / 3, "NDCG@5": (1 + 1 / math.log2(5)) / 3}
    )
    assert report.invalid_rate == pytest.approx(2 / 8)
    # ben's list returns book:hobbit, which is in his test history
    assert report.excluded_rate == pytest.approx(1 / 8)
    assert report.n_users == 3 and report.stage == "test" and report.method == "<lambda>"
    data = json.loads(report.to_json(include_per_user=True))
    assert data["ranks"] == [0, 3, -1] and data["n_users"] == 3
    assert data["config"]["entity_type"] == "book" and data["config"]["users"] == "all"


def test_harness_never_shows_a_target(sample_catalog: Catalog, book_split: Split) -> None:
    seen: dict[tuple[str, str], tuple[list[str], set[str]]] = {}

    def recorder(stage: str):
        def rank(user: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
            seen[(stage, user)] = (list(history), set(exclude))
            history.append("book:dune")  # a ranker mutating its input must not touch the split
            return []
        return rank

    for stage in ("valid", "test"):
        evaluate_ranker(recorder(stage), book_split, catalog=sample_catalog, stage=stage,
                        sample_size=None, entity_type="book", progress=False)
    for (stage, user), (history, exclude) in seen.items():
        target = getattr(book_split, stage)[user]
        expected = getattr(book_split, f"{stage}_history")[user]
        assert history == expected and exclude == set(expected)
        assert target not in history and target not in exclude
    assert book_split.train["chloe"] == ["book:emma"]


def test_exclude_seen(sample_catalog: Catalog, book_split: Split) -> None:
    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    on = evaluate_ranker(pop, book_split, catalog=sample_catalog, stage="test", sample_size=None,
                         k=8, ks=(1, 5), entity_type="book", progress=False)
    off = evaluate_ranker(pop, book_split, catalog=sample_catalog, stage="test", sample_size=None,
                          k=8, ks=(1, 5), entity_type="book", exclude_seen=False, progress=False)
    assert on.excluded_rate == 0.0 and on.invalid_rate == 0.0
    history = book_split.test_history["ana"]
    assert not set(pop.rank("ana", history, 8, set(history))) & set(history)
    assert len(pop.rank("ana", history, 8, set(history))) == 8 - len(set(history) & set(BOOKS))
    assert pop.rank("ana", history, 8, set()) == pop.rank("x", [], 8, set())  # same list for all
    assert off.excluded_rate == 0.0  # nothing was excluded, so nothing can be counted
    assert on.metrics["HR@1"] >= off.metrics["HR@1"]


def test_popularity_is_deterministic_with_documented_ties(
    sample_catalog: Catalog, book_split: Split
) -> None:
    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    # every trained book is seen once: ties go to catalog (id) order; never-seen books last
    assert pop.rank("u", [], 8, set()) == [
        "book:dune", "book:earthsea", "book:emma", "book:foundation", "book:hobbit",
        "book:neuromancer", "book:left-hand", "book:persuasion",
    ]
    again = Popularity.fit(book_split.train, sample_catalog, "book")
    assert again.rank("u", [], 8, set()) == pop.rank("u", [], 8, set())
    assert pop.counts.tolist() == [1, 1, 1, 1, 1, 0, 1, 0]


class _BooksOnly:
    """The SID table as the probe reads it (entity types and their item ids): the catalog's items."""

    def __init__(self, catalog: Catalog) -> None:
        self.ids = {"book": np.array([i.id for i in catalog.items("book")], dtype=object),
                    "author": np.array([i.id for i in catalog.items("author")], dtype=object)}
        self.entity_types = tuple(self.ids)

    def by_type(self, name: str):
        from types import SimpleNamespace

        return SimpleNamespace(item_ids=self.ids[name])


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_the_training_probe_scores_popularity_as_neo_eval_does(
    sample_catalog: Catalog, book_split: Split, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """One definition of popularity: the stage-3 probe's popularity HR/NDCG equal the harness's
    (never-trained items ranked last, ties by id), here where the sample's ties and never-trained
    targets (left-hand, persuasion) tell two definitions apart. The model is not run."""
    from types import SimpleNamespace

    from neo_sdk.evaluation import BundleRanker
    from neo_sdk.prompts import load_prompts
    from neo_sdk.training import _probe

    monkeypatch.setattr(BundleRanker, "rank_batch", lambda self, users, *a, **kw: [[] for _ in users])
    encoder = SimpleNamespace(vocab=SimpleNamespace(table=_BooksOnly(sample_catalog)), prompt_ids=lambda p: [0])
    decoder = SimpleNamespace(model=None, trie=SimpleNamespace(types=("author", "book")), tokens=None, encoder=encoder)
    probed = _probe.probe_next_item(decoder, book_split, load_prompts(), entity_types=["book"], n=None, k=k)

    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    report = evaluate_ranker(pop, book_split, catalog=sample_catalog, stage="valid", sample_size=None,
                             k=k, ks=(k,), entity_type="book", progress=False)
    assert probed["users"] == report.n_users == 3
    assert probed[f"popularity_hr@{k}"] == pytest.approx(report.metrics[f"HR@{k}"], abs=1e-12)
    assert probed[f"popularity_ndcg@{k}"] == pytest.approx(report.metrics[f"NDCG@{k}"], abs=1e-12)
    assert probed[f"hr@{k}"] == 0.0  # the stub model ranks nothing


def test_fit_refuses_the_whole_split(sample_catalog: Catalog, book_split: Split) -> None:
    # baselines take split.train, so validation and test targets cannot reach them
    for fit in (Popularity.fit, ItemKNN.fit):
        with pytest.raises(ConfigError, match="split.train"):
            fit(book_split, sample_catalog, "book")  # type: ignore[arg-type]


def test_item_knn_on_the_sample_catalog(sample_catalog: Catalog, book_split: Split) -> None:
    knn = ItemKNN.fit(book_split.train, sample_catalog, "book")
    n = len(BOOKS)
    block = knn.sim[:n]  # ranked items come first among the rows
    assert np.allclose(block, block.T) and np.all(np.diag(block) == 0)
    assert block.min() >= 0 and block.max() <= 1 + 1e-6
    assert knn.rank("u", ["book:dune"], 2, {"book:dune"}) == ["book:foundation", "book:neuromancer"]
    assert knn.rank("u", ["book:hobbit"], 1, {"book:hobbit"}) == ["book:earthsea"]
    recent = ItemKNN.fit(book_split.train, sample_catalog, "book", recency_decay=0.5)
    # the most recent history item (hobbit) outweighs the older one (dune)
    assert recent.rank("u", ["book:dune", "book:hobbit"], 1, {"book:dune", "book:hobbit"}) == [
        "book:earthsea"
    ]
    with pytest.raises(ConfigError):
        ItemKNN.fit(book_split.train, sample_catalog, "book", recency_decay=1.5)


def test_harness_errors(sample_catalog: Catalog, book_split: Split) -> None:
    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    kw = {"catalog": sample_catalog, "entity_type": "book", "progress": False}
    with pytest.raises(ConfigError, match="stage"):
        evaluate_ranker(pop, book_split, stage="train", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k="):
        evaluate_ranker(pop, book_split, k=10, **kw)
    with pytest.raises(ConfigError, match="without a valid target"):
        evaluate_ranker(pop, book_split, users=["nobody"], **kw)
    mixed = leave_one_out(sample_catalog)  # ana's validation target is an author
    with pytest.raises(ConfigError, match="entity_type='book'"):
        evaluate_ranker(pop, mixed, sample_size=None, **kw)


def test_the_ranked_type_comes_from_the_catalog(sample_catalog: Catalog, book_split: Split) -> None:
    # no type is assumed: books are what the sample's users interact with most, then authors
    assert resolve_entity_types(sample_catalog) == ["book", "author"]
    assert resolve_entity_type(sample_catalog) == "book"
    assert resolve_entity_types(sample_catalog, ["author"]) == ["author"]
    with pytest.raises(ConfigError, match="not an entity type of this catalog"):
        resolve_entity_types(sample_catalog, ["movie"])
    pop, knn, rnd = (Popularity.fit(book_split.train, sample_catalog), ItemKNN.fit(book_split.train, sample_catalog),
                     RandomRanker(sample_catalog))
    assert pop.entity_type == knn.entity_type == rnd.entity_type == "book"
    explicit = Popularity.fit(book_split.train, sample_catalog, "book")
    assert pop.rank("u", [], 8, set()) == explicit.rank("u", [], 8, set())
    # the harness ranks the ranker's own type when none is given
    report = evaluate_ranker(pop, book_split, catalog=sample_catalog, sample_size=None, k=5, ks=(5,), progress=False)
    assert report.config["entity_type"] == "book" and report.invalid_rate == 0.0
    authors = Popularity.fit(book_split.train, sample_catalog, "author")
    assert set(authors.index.ids) == {i.id for i in sample_catalog.items("author")}
    empty = Catalog(":memory:")
    empty.declare_type("podcast", ["title"])
    with pytest.raises(ConfigError, match="no interactions"):
        resolve_entity_types(empty)


def test_harness_asks_batch_rankers_in_batches(sample_catalog: Catalog, book_split: Split) -> None:
    pop = Popularity.fit(book_split.train, sample_catalog, "book")
    calls: list[list[str]] = []

    class Batched:
        entity_type = "book"
        batch_size = 2

        def rank(self, user: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
            raise AssertionError("a batch ranker is asked in batches")

        def rank_batch(self, users, histories, k, excludes):  # type: ignore[no-untyped-def]
            calls.append(list(users))
            return [pop.rank(u, h, k, e) for u, h, e in zip(users, histories, excludes, strict=True)]

    batched = evaluate_ranker(Batched(), book_split, catalog=sample_catalog, stage="test", sample_size=None, k=5,
                              ks=(1, 5), progress=False)
    single = evaluate_ranker(pop, book_split, catalog=sample_catalog, stage="test", sample_size=None, k=5,
                             ks=(1, 5), progress=False)
    assert calls == [["ana", "ben"], ["chloe"]]
    assert batched.ranks.tolist() == single.ranks.tolist() and batched.metrics == single.metrics


def test_sample_users_is_fixed_by_seed() -> None:
    split = Split("leave_one_out", {}, {f"u{i:03d}": "x" for i in range(500)}, {})
    a = sample_users(split, "valid", 200, seed=0)
    assert a == sample_users(split, "valid", 200, seed=0) == sorted(a) and len(set(a)) == 200
    assert a != sample_users(split, "valid", 200, seed=1)
    assert sample_users(split, "valid", None) == sorted(split.valid)
    assert sample_users(split, "valid", 10_000) == sorted(split.valid)


# ---------------------------------------------------------------- reports
def _report(method: str, hr: float, stage: str = "test") -> EvalReport:
    return EvalReport(method=method, stage=stage, metrics={"HR@5": hr / 2, "HR@10": hr, "HR@30": 2 * hr,
                      "NDCG@10": hr / 2}, n_users=943, seconds=1.25, invalid_rate=0.0)


def test_results_rows_and_png(tmp_path: Path) -> None:
    assert results_header().splitlines()[0] == (
        "| method | stage | users | HR@5 | HR@10 | HR@30 | NDCG@10 | invalid | rank s |"
    )
    assert results_row(_report("pop", 0.1)) == (
        "| pop | test | 943 | 0.0500 | 0.1000 | 0.2000 | 0.0500 | 0.0000 | 1.2 |"
    )
    seeds = [_report("sasrec", 0.1), _report("sasrec", 0.2), _report("sasrec", 0.3)]
    assert results_row(seeds) == (
        "| sasrec (3 seeds) | test | 943 | 0.1000 ± 0.0500 | 0.2000 ± 0.1000 | 0.4000 ± 0.2000"
        " | 0.1000 ± 0.0500 | 0.0000 | 1.2 |"
    )
    table = results_table({"pop": [_report("pop", 0.1)], "sasrec": seeds})
    assert len(table.splitlines()) == 4
    png = save_metrics_png({"pop": [_report("pop", 0.1)], "sasrec": seeds}, tmp_path / "a" / "b.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    flat = save_metrics_png([_report("pop", 0.1), _report("pop", 0.12, "valid")], tmp_path / "c.png")
    assert flat.exists()


# ------------------------------------------------------------------- search
@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: on a busy 2-core machine two intra-op threads run 4-30x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


QUERIES = [
    ("a desert planet where everyone fights over the spice", "book:dune"),
    ("a hacker hired for one last job", "book:neuromancer"),
    ("a young wizard chasing the shadow he let loose", "book:earthsea"),
    ("a matchmaker who misreads other people's hearts", "book:emma"),
    ("dwarves trying to win back their mountain", "book:hobbit"),
]


def test_bm25_search(sample_catalog: Catalog) -> None:
    bm25 = BM25Retriever.from_catalog(sample_catalog, "book")
    report = evaluate_search(bm25, QUERIES, k=8, ks=(1, 5), catalog=sample_catalog,
                             entity_type="book", progress=False)
    assert report.metrics["HR@1"] == 1.0 and report.invalid_rate == 0.0
    assert report.n_users == 5 and report.stage == "search" and report.method == "bm25"
    assert bm25.search("the of and", 3) == ["book:dune", "book:earthsea", "book:emma"]  # no match


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_dense_search(
    sample_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEO_HOME", str(tmp_path / "home"))
    dense = DenseRetriever.from_catalog(sample_catalog, "book")
    paraphrased = [
        ("sci-fi about spice on a sand world", "book:dune"),
        ("cyberpunk computer criminal", "book:neuromancer"),
        ("romance novel about second chances", "book:persuasion"),
    ]
    report = evaluate_search(dense, paraphrased, k=8, ks=(1, 3), catalog=sample_catalog,
                             entity_type="book", progress=False)
    assert report.metrics["HR@3"] == 1.0 and report.invalid_rate == 0.0
    assert len(dense.search("anything", 8)) == 8


# ------------------------------------------------------------------ ML-100k
@pytest.fixture(scope="module")
def ml100k() -> Iterator[tuple[Catalog, Split]]:
    catalog = Catalog(":memory:")
    load_dataset(catalog, "movielens-100k", with_people=False, progress=False)
    yield catalog, leave_one_out(catalog, entity_type="movie")
    catalog.close()


@pytest.mark.slow
def test_baselines_beat_random_on_ml100k(ml100k: tuple[Catalog, Split]) -> None:
    catalog, split = ml100k
    train_interactions = sum(len(items) for items in split.train.values())
    assert train_interactions == 100_000 - 2 * 943
    pop = Popularity.fit(split.train, catalog)
    assert pop.counts.sum() == train_interactions  # counted from train only
    knn = ItemKNN.fit(split.train, catalog)
    kw = {"catalog": catalog, "stage": "valid", "sample_size": 200, "seed": 0, "progress": False}
    random_ = evaluate_ranker(RandomRanker(catalog), split, **kw)
    pop_ex = evaluate_ranker(pop, split, **kw)
    knn_r = evaluate_ranker(knn, split, **kw)
    assert random_.n_users == pop_ex.n_users == knn_r.n_users == 200
    assert random_.users == knn_r.users  # the same fixed sample
    assert random_.metrics["HR@10"] < 0.03
    assert pop_ex.metrics["HR@10"] > random_.metrics["HR@10"] + 0.03
    assert knn_r.metrics["HR@10"] > random_.metrics["HR@10"] + 0.06
    assert knn_r.metrics["NDCG@10"] > 3 * random_.metrics["NDCG@10"]
    for report in (random_, pop_ex, knn_r):
        assert report.invalid_rate == 0.0 and report.excluded_rate == 0.0


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_sasrec_trains_and_beats_random_on_ml100k(ml100k: tuple[Catalog, Split]) -> None:
    from neo_sdk.evaluation import SASRec, SASRecConfig

    catalog, split = ml100k
    cfg = SASRecConfig(epochs=2, seed=0, max_seconds=20)  # about 8 s an epoch on one busy core
    sasrec = SASRec.fit(split.train, catalog, cfg, progress=False)
    assert sasrec.log["loss"][-1] < math.log(len(sasrec.index))  # learned more than uniform
    kw = {"catalog": catalog, "stage": "valid", "sample_size": 200, "progress": False}
    report = evaluate_ranker(sasrec, split, **kw)
    random_ = evaluate_ranker(RandomRanker(catalog), split, **kw)
    assert report.invalid_rate == 0.0 and report.excluded_rate == 0.0
    assert report.metrics["HR@10"] > random_.metrics["HR@10"] + 0.03


@pytest.mark.usefixtures("one_torch_thread")
def test_sasrec_is_deterministic_and_learns(sample_catalog: Catalog, book_split: Split) -> None:
    import torch

    from neo_sdk.evaluation import SASRec, SASRecConfig

    cfg = SASRecConfig(hidden=16, max_len=5, epochs=30, batch_size=2, seed=3)
    state = torch.random.get_rng_state()
    a = SASRec.fit(book_split.train, sample_catalog, cfg, entity_type="book", progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # caller's RNG untouched
    b = SASRec.fit(book_split.train, sample_catalog, cfg, entity_type="book", progress=False)
    for (name, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert a.log["loss"][-1] < a.log["loss"][0]
    assert a.log["epochs_run"] == 30 and not a.log["stopped_by_time"]
    # the only training transition after dune is foundation, then neuromancer
    assert a.rank("u", ["book:dune"], 1, {"book:dune"}) == ["book:foundation"]
    ranked = a.rank("u", [], 8, set())
    assert sorted(ranked) == BOOKS  # full ranking of the type, nothing else
    with pytest.raises(ConfigError):
        SASRecConfig(hidden=10, heads=3)


# --------------------------------------------------------------- a trained bundle
@pytest.mark.slow
def test_a_bundle_is_ranked_in_the_same_harness(trained_bundle: Path) -> None:
    from neo_sdk.bundle import read_manifest
    from neo_sdk.evaluation import BundleRanker, compare_next_item

    with Catalog(read_manifest(trained_bundle)["catalog"]) as catalog:
        result = compare_next_item(trained_bundle, catalog, stage="test", sample_size=None, ks=(1, 5))
        assert [c.entity_type for c in result.comparisons] == ["book"]  # the type users interact with most
        assert "author" in result.skipped  # nobody follows two authors: no author target
        reports = result.comparisons[0].reports
        assert [r.method for r in reports] == ["neo (beam search)", "popularity", "item-knn"]
        assert all(r.users == ["ana", "ben", "chloe"] for r in reports)  # the same users for every method
        model = reports[0]
        assert model.invalid_rate == 0.0 and model.excluded_rate == 0.0  # the trie: catalog books, unseen
        assert set(model.metrics) == {"HR@1", "HR@5", "NDCG@1", "NDCG@5"}
        assert "model vs popularity: HR@5" in result.table() and "next book (test, 3 users" in result.table()
        data = json.loads(json.dumps(result.to_dict()))
        assert data["next_item"][0]["model"] == "neo (beam search)"

        ranker = BundleRanker.from_bundle(trained_bundle, catalog)
        assert ranker.entity_type == "book" and ranker.for_type("author").entity_type == "author"
        history = ["book:dune", "book:foundation"]
        assert ranker.prompt_ids("ana", history) == ranker.prompt_ids("ana", history)  # fixed per user
        got = ranker.rank("ana", history, 4, set(history))
        assert len(got) == 4 and not set(got) & set(history) and all(i.startswith("book:") for i in got)
        authors = ranker.for_type("author").rank("ana", history, 2, set())
        assert len(authors) == 2 and all(i.startswith("author:") for i in authors)
        with pytest.raises(ConfigError, match="not an entity type of this catalog"):
            compare_next_item(trained_bundle, catalog, entity_types=["movie"])
        with pytest.raises(ConfigError, match="no test target"):
            compare_next_item(trained_bundle, catalog, entity_types=["author"])
