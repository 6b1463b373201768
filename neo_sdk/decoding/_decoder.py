"""What decoding a bundle needs, built once: the model, its encoder, the typed SID trie and tokens.

Training probes, ``neo eval`` and the runtime all decode through a :class:`Decoder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neo_sdk.decoding._constraint import SIDTokens
from neo_sdk.decoding._trie import SIDTrie
from neo_sdk.encoding import ExampleEncoder


@dataclass(frozen=True)
class Decoder:
    """A model ready for constrained decoding: model, encoder, trie and its tokens."""

    model: Any
    encoder: ExampleEncoder
    trie: SIDTrie
    tokens: SIDTokens


def build_decoder(model: Any, encoder: ExampleEncoder, active_only: bool = True) -> Decoder:
    """A trie over the encoder vocabulary's SID table (active items only by default)."""
    vocab = encoder.vocab
    table = vocab.table
    sequences, ids = {}, {}
    for etype in table.entity_types:
        t = table.by_type(etype)
        grid = vocab.code_token_ids(etype)
        keep = t.active if active_only else np.ones(len(t), dtype=bool)
        codes = t.codes[keep].astype(np.int64)
        sequences[etype] = grid[np.arange(codes.shape[1])[None, :], codes]
        ids[etype] = [str(i) for i in t.item_ids[keep]]
    trie = SIDTrie.build(sequences, ids)
    tokens = SIDTokens(vocab.opener_id, vocab.closer_id, vocab.sid_token_ids())
    return Decoder(model, encoder, trie, tokens)
