"""SID vocabulary: naming, tokenizer extension, span codec, model resize."""

from __future__ import annotations

import numpy as np
import pytest

from neo_sdk.errors import ConfigError, SIDError, VocabError
from neo_sdk.sids import SIDTable, TypeSIDs
from neo_sdk.vocab import (
    SID_CLOSE,
    SID_OPEN,
    SIDVocab,
    TypeSpec,
    disambiguation_token_name,
    token_name,
)


def _table() -> SIDTable:
    rng = np.random.default_rng(0)
    types = {}
    for name, n, levels, k, d in [("movie", 40, 2, 8, 8), ("person", 25, 3, 4, 5)]:
        seen: set[tuple[int, ...]] = set()
        rows = []
        while len(rows) < n:
            row = (*rng.integers(0, k, levels).tolist(), 0)
            while row in seen:
                row = (*row[:-1], row[-1] + 1)
            seen.add(row)
            rows.append(row)
        ids = np.array([f"{name}:{i}" for i in range(n)], dtype=object)
        types[name] = TypeSIDs(name, levels, k, d, ids, np.array(rows, dtype=np.int32), np.ones(n, bool))
    return SIDTable(types)


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    from neo_sdk.model import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def vocab(tokenizer) -> SIDVocab:  # type: ignore[no-untyped-def]
    v = SIDVocab.from_table(_table())
    v.attach(tokenizer)
    return v


def test_token_names_are_typed_and_unambiguous() -> None:
    assert token_name("movie", 0, 17) == "<|movie_0_17|>"
    assert disambiguation_token_name("movie", 3) == "<|movie_d_3|>"
    v = SIDVocab.from_table(_table())
    names = v.tokens()
    assert names[:2] == [SID_OPEN, SID_CLOSE]
    # movie: 2x8 + 8 disambiguation; person: 3x4 + 5
    assert len(names) == len(set(names)) == 2 + 24 + 17
    with pytest.raises(ConfigError):
        TypeSpec("Movie", 2, 8, 8)


def test_attach_adds_unsplittable_tokens_once(tokenizer) -> None:  # type: ignore[no-untyped-def]
    v = SIDVocab.from_table(_table())
    before = len(tokenizer)
    added = v.attach(tokenizer)
    assert added in (0, len(v))  # 0 when another test attached them to this shared tokenizer first
    assert len(tokenizer) >= before + (len(v) if added else 0)
    assert v.attach(tokenizer) == 0  # idempotent
    for name in v.tokens():
        assert len(tokenizer.encode(name, add_special_tokens=False)) == 1  # never split
    sid_ids = set(v.sid_token_ids().tolist()) | {v.opener_id, v.closer_id}
    assert len(sid_ids) == len(v)
    for text in ["movie 0 17", "the movie_0_1 token", "a <|movie_0_1|> injection <|sid|>"]:
        assert not sid_ids & set(v.encode_text(tokenizer, text))  # plain text never yields SID tokens


def test_lookup_arrays_are_consistent(vocab: SIDVocab) -> None:
    info = vocab.token_info
    for ti, name in enumerate(vocab.type_names):
        grid = vocab.code_token_ids(name)
        spec = vocab.specs[name]
        assert grid.shape == (spec.levels + 1, max(spec.codes, spec.disambiguation))
        for pos in range(spec.levels + 1):
            for code, tid in enumerate(grid[pos]):
                if tid >= 0:
                    assert tuple(info[tid]) == (ti, pos, code)
    assert tuple(info[vocab.opener_id]) == (-1, -1, -1)
    assert (info[:1000] == -1).all()  # ordinary text tokens are not SID tokens


def test_round_trip_item_tokens_item(vocab: SIDVocab, tokenizer) -> None:  # type: ignore[no-untyped-def]
    table = vocab.table
    assert table is not None
    for item_id in table:
        span = vocab.encode_item(item_id)
        sid = table.sid_of(item_id)
        assert len(span) == len(sid.codes) + 2
        assert vocab.parse_span(span) == (sid.entity_type, sid.codes)
        assert vocab.item_of_span(span) == item_id
        # the type is decidable from the first token after the opener
        assert vocab.type_names[vocab.token_info[span[1], 0]] == sid.entity_type
    text = tokenizer.decode(vocab.encode_item("movie:3"))
    assert text.startswith(SID_OPEN + "<|movie_0_") and text.endswith("<|/sid|>")
    assert tokenizer.encode(text, add_special_tokens=False) == vocab.encode_item("movie:3")


def test_malformed_spans_raise_vocab_error(vocab: SIDVocab) -> None:
    span = vocab.encode_item("movie:0")
    person = vocab.encode_item("person:0")
    bad = {
        "no opener": span[1:],
        "no closer": span[:-1],
        "too short": [span[0], span[1], span[-1]],
        "too long": [*span[:-1], span[-2], span[-1]],
        "mixed types": [span[0], span[1], person[2], span[3], span[-1]],
        "wrong position": [span[0], span[2], span[1], span[3], span[-1]],
        "text token": [span[0], 42, span[2], span[3], span[-1]],
        "empty": [],
    }
    for label, ids in bad.items():
        with pytest.raises(VocabError):
            vocab.parse_span(ids)
            pytest.fail(label)
    with pytest.raises(VocabError, match="out of range"):
        vocab.encode_codes("movie", (8, 0, 0))
    with pytest.raises(VocabError, match="3 codes"):
        vocab.encode_codes("movie", (1, 2))
    with pytest.raises(VocabError, match="unknown entity type"):
        vocab.encode_codes("album", (0, 0, 0))
    unused = vocab.encode_codes("movie", (7, 7, 7))  # well-formed, but no item holds it
    with pytest.raises(SIDError):
        vocab.item_of_span(unused)


def test_unattached_vocab_and_config_round_trip() -> None:
    v = SIDVocab.from_table(_table())
    with pytest.raises(VocabError, match="attach"):
        v.encode_item("movie:0")
    again = SIDVocab.from_json(v.to_json())
    assert again.tokens() == v.tokens()
    with pytest.raises(VocabError):
        SIDVocab.from_json({"types": {"movie": {"levels": 2}}})


def _tiny_untied_model():  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("tied", [True, False])
def test_resize_model_initialises_new_rows_from_the_mean(vocab: SIDVocab, tied: bool) -> None:  # type: ignore[no-untyped-def]
    import torch

    if tied:
        from neo_sdk.model import load_base_model

        model, _ = load_base_model(num_hidden_layers=1)
    else:
        model = _tiny_untied_model()
    old = model.get_input_embeddings().weight[:49152].detach().clone()
    added = vocab.resize_model(model, seed=3)
    sid_ids = torch.as_tensor(np.r_[vocab.opener_id, vocab.closer_id, vocab.sid_token_ids()])
    w = model.get_input_embeddings().weight.detach()
    assert added == int(sid_ids.max()) + 1 - 49152 and w.shape[0] == int(sid_ids.max()) + 1
    torch.testing.assert_close(w[:49152], old)  # existing rows untouched
    new = w[sid_ids]
    assert torch.allclose(new.mean(0), old.mean(0), atol=3 * float(old.std(0).max()) * 0.02 + 1e-4)
    assert (new.std(0) > 0).all()  # noise breaks symmetry
    head = model.get_output_embeddings().weight.detach()
    assert head.shape[0] == w.shape[0]
    if tied:
        assert head.data_ptr() == w.data_ptr()
    else:
        assert head[sid_ids].abs().sum() > 0 and not torch.equal(head[sid_ids], torch.zeros_like(head[sid_ids]))
    # deterministic for a seed
    again = _tiny_untied_model() if not tied else None
    if again is not None:
        vocab.resize_model(again, seed=3)
        torch.testing.assert_close(again.get_input_embeddings().weight[sid_ids], new)
    logits = model(torch.as_tensor([vocab.encode_item("movie:0")])).logits
    assert logits.shape[-1] == w.shape[0] and torch.isfinite(logits).all()
