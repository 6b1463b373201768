"""Evaluation room: metrics, the leave-one-out protocol harness, baselines and reports.

Follows ``shared/design/benchmarks.md``: full ranking over every item of the target type, HR@K and
NDCG@K for K in (5, 10, 30), the invalid-item rate next to them, baselines fitted in the same
harness on ``split.train`` only. Runtime code never imports this package.

No domain is assumed: without an explicit ``entity_type`` the catalog decides (the types users
interact with, most interacted first: :func:`resolve_entity_types`). A trained bundle is scored
in the same harness by :class:`BundleRanker` (constrained beam search), next to its baselines on the
same users by :func:`compare_next_item`; :func:`evaluate_bundle` (``neo eval``) adds SASRec-CE,
seeds, paired bootstrap intervals of every ratio (:func:`ratio_ci`), short histories, validity and
steerability with the constraints off, and :func:`write_report` writes ``report.md``,
``report.json`` and the plots. A LangChain chat model can rate the explanations and profiles 1-5
(:class:`Judge`, :func:`judge_rows`; ``neo eval --judge``). The training probes score through the same ranker and metrics.

SASRec (torch) loads lazily: ``import neo_sdk.evaluation`` does not import torch.

Example:
    >>> from neo_sdk.catalog import Catalog, load_dataset, leave_one_out
    >>> from neo_sdk.evaluation import ItemKNN, evaluate_ranker
    >>> catalog = Catalog(":memory:")
    >>> _ = load_dataset(catalog, "movielens-100k", progress=False)
    >>> split = leave_one_out(catalog, entity_type="movie")
    >>> knn = ItemKNN.fit(split.train, catalog, "movie")
    >>> report = evaluate_ranker(knn, split, catalog=catalog, stage="test", sample_size=None)
    >>> round(report.metrics["HR@10"], 4), report.n_users, report.invalid_rate
    (0.1082, 943, 0.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neo_sdk.evaluation._baselines import (
    ItemIndex,
    ItemKNN,
    Popularity,
    RandomRanker,
    resolve_entity_type,
    resolve_entity_types,
)
from neo_sdk.evaluation._bootstrap import Interval, mean_ci, ratio_ci
from neo_sdk.evaluation._bundle import (
    BASELINES,
    BundleRanker,
    EvalResult,
    Method,
    NextItemComparison,
    compare_next_item,
    fit_baselines,
)
from neo_sdk.evaluation._bundle_eval import BundleEvaluation, EvalSettings, TypeEvaluation, evaluate_bundle
from neo_sdk.evaluation._cold_start import cut_histories
from neo_sdk.evaluation._eval_plots import plot_explanations, plot_judge, plot_search
from neo_sdk.evaluation._eval_report import (
    DEFAULT_SECTIONS,
    explanations_section,
    headline,
    judge_section,
    render_table,
    report_data,
    search_section,
    skipped_section,
    write_report,
)
from neo_sdk.evaluation._explain_bench import EXPLANATION_KEYS, explanation_summary, measure_explanations
from neo_sdk.evaluation._judge import CRITERIA, Judge, Rating, item_facts, judge_rows, judge_summary, parse_rating
from neo_sdk.evaluation._metrics import (
    DEFAULT_KS,
    hit_rate,
    invalid_count,
    ndcg,
    per_user,
    seed_spread,
    summarize,
    target_ranks,
)
from neo_sdk.evaluation._protocol import (
    DEV_SAMPLE_SIZE,
    EvalReport,
    Ranker,
    Retriever,
    evaluate_ranker,
    evaluate_search,
    sample_users,
)
from neo_sdk.evaluation._report import results_header, results_row, results_table, save_metrics_png
from neo_sdk.evaluation._search import BM25Retriever, DenseRetriever
from neo_sdk.evaluation._search_bench import (
    SearchRow,
    SearchSetup,
    collaborative_row,
    collaborative_search,
    measure_search,
    neo_search,
    popularity_row,
    retriever_rows,
    runtime_row,
    search_setup,
    search_summary,
    train_only_catalog,
)
from neo_sdk.evaluation._search_queries import (
    SEARCH_FAMILIES,
    Fact,
    QueryBuilder,
    SearchQuery,
    build_search_queries,
    clean_title,
    hit_at_k,
    popularity_among_matching,
    precision_at_k,
    query_builder,
    query_score,
    unique_share,
)
from neo_sdk.evaluation._steer import SteerRow, measure_steerability, read_answer
from neo_sdk.retrieval import Claim, GroundednessChecker, Grounding

if TYPE_CHECKING:
    from neo_sdk.evaluation._sasrec import SASRec, SASRecConfig

_LAZY = {"SASRec": "neo_sdk.evaluation._sasrec", "SASRecConfig": "neo_sdk.evaluation._sasrec"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neo_sdk.evaluation' has no attribute {name!r}")


__all__ = [
    "BASELINES",
    "CRITERIA",
    "DEFAULT_KS",
    "DEFAULT_SECTIONS",
    "DEV_SAMPLE_SIZE",
    "EXPLANATION_KEYS",
    "SEARCH_FAMILIES",
    "BM25Retriever",
    "BundleEvaluation",
    "BundleRanker",
    "Claim",
    "DenseRetriever",
    "EvalReport",
    "EvalResult",
    "EvalSettings",
    "Fact",
    "GroundednessChecker",
    "Grounding",
    "Interval",
    "ItemIndex",
    "ItemKNN",
    "Judge",
    "Method",
    "NextItemComparison",
    "Popularity",
    "QueryBuilder",
    "RandomRanker",
    "Ranker",
    "Rating",
    "Retriever",
    "SASRec",
    "SASRecConfig",
    "SearchQuery",
    "SearchRow",
    "SearchSetup",
    "SteerRow",
    "TypeEvaluation",
    "build_search_queries",
    "clean_title",
    "collaborative_row",
    "collaborative_search",
    "compare_next_item",
    "cut_histories",
    "evaluate_bundle",
    "evaluate_ranker",
    "evaluate_search",
    "explanation_summary",
    "explanations_section",
    "fit_baselines",
    "headline",
    "hit_at_k",
    "hit_rate",
    "invalid_count",
    "item_facts",
    "judge_rows",
    "judge_section",
    "judge_summary",
    "mean_ci",
    "measure_explanations",
    "measure_search",
    "measure_steerability",
    "ndcg",
    "neo_search",
    "parse_rating",
    "per_user",
    "plot_explanations",
    "plot_judge",
    "plot_search",
    "popularity_among_matching",
    "popularity_row",
    "precision_at_k",
    "query_builder",
    "query_score",
    "ratio_ci",
    "read_answer",
    "render_table",
    "report_data",
    "resolve_entity_type",
    "resolve_entity_types",
    "results_header",
    "results_row",
    "results_table",
    "retriever_rows",
    "runtime_row",
    "sample_users",
    "save_metrics_png",
    "search_section",
    "search_setup",
    "search_summary",
    "seed_spread",
    "skipped_section",
    "summarize",
    "target_ranks",
    "train_only_catalog",
    "unique_share",
    "write_report",
]
