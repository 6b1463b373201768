"""Retrieval room: BM25 and dense retrieval over item texts, their fusion, and the facts a request
states (category values, related items) read with the catalog's own vocabulary, collaborative
retrieval of the items a history predicts (EASE over every user's interactions), and the
groundedness of explanations and profiles (:class:`GroundednessChecker`: their claims checked
against catalog facts).

The runtime's search ranks the retrieved candidates with the model (constrained decoding over an
allowlist), and ``neo_sdk.evaluation`` scores the retrievers as baselines.
"""

from neo_sdk.retrieval._claims import Claim, GroundednessChecker, Grounding
from neo_sdk.retrieval._collaborative import EASE_L2, EASE_MAX_ITEMS, CollaborativeRetriever
from neo_sdk.retrieval._form import Fault, FormChecker
from neo_sdk.retrieval._hybrid import RRF_K, HybridRetriever, reciprocal_rank_fusion
from neo_sdk.retrieval._index import ItemIndex, top_k
from neo_sdk.retrieval._stated import FactReader, StatedFacts, content_words, normalize_title, words
from neo_sdk.retrieval._text import BM25Retriever, DenseRetriever

__all__ = [
    "EASE_L2",
    "EASE_MAX_ITEMS",
    "RRF_K",
    "BM25Retriever",
    "Claim",
    "CollaborativeRetriever",
    "DenseRetriever",
    "FactReader",
    "Fault",
    "FormChecker",
    "GroundednessChecker",
    "Grounding",
    "HybridRetriever",
    "ItemIndex",
    "StatedFacts",
    "content_words",
    "normalize_title",
    "reciprocal_rank_fusion",
    "top_k",
    "words",
]
