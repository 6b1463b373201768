"""Decoding room: compact typed SID trie, request filters, constrained generation, parsing.

Must not touch SQLite.
"""

from neo_sdk._names import OUTPUT_FORMATS as FORMATS
from neo_sdk._names import OutputFormat
from neo_sdk.decoding._batching import BatchedBeamSearch, FairLock
from neo_sdk.decoding._beam import ScoredItem, beam_search_items
from neo_sdk.decoding._constraint import (
    RowState,
    SIDConstraint,
    SIDTokens,
    advance,
    replay,
)
from neo_sdk.decoding._decoder import Decoder, build_decoder
from neo_sdk.decoding._generate import (
    ItemSegment,
    Segment,
    TextSegment,
    generate_constrained,
    parse_output,
)
from neo_sdk.decoding._trie import SIDTrie, TrieFilter

__all__ = [
    "FORMATS",
    "BatchedBeamSearch",
    "Decoder",
    "FairLock",
    "ItemSegment",
    "OutputFormat",
    "RowState",
    "SIDConstraint",
    "SIDTokens",
    "SIDTrie",
    "ScoredItem",
    "Segment",
    "TextSegment",
    "TrieFilter",
    "advance",
    "beam_search_items",
    "build_decoder",
    "generate_constrained",
    "parse_output",
    "replay",
]
