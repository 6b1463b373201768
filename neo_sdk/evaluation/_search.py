"""Search baselines: BM25 and dense MiniLM retrieval (:mod:`neo_sdk.retrieval`, where the runtime
uses them too), and their hybrid. Score them with :func:`neo_sdk.evaluation.evaluate_search`."""

from neo_sdk.retrieval import BM25Retriever, DenseRetriever, HybridRetriever

__all__ = ["BM25Retriever", "DenseRetriever", "HybridRetriever"]
