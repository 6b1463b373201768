"""Constrained free-form generation (text and mixed answers) and output parsing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList

from neo_sdk._names import OutputFormat
from neo_sdk.decoding._constraint import SIDConstraint, SIDTokens
from neo_sdk.decoding._trie import SIDTrie, TrieFilter
from neo_sdk.errors import DecodingError


@dataclass(frozen=True)
class TextSegment:
    """Free text between item references."""

    text: str


@dataclass(frozen=True)
class ItemSegment:
    """A complete SID span resolved to a catalog item."""

    item_id: str
    entity_type: str
    tokens: tuple[int, ...]
    score: float | None = None


Segment = TextSegment | ItemSegment


def generate_constrained(
    model: torch.nn.Module,
    prompt: Sequence[int],
    trie: SIDTrie,
    tokens: SIDTokens,
    *,
    eos_token_id: int,
    pad_token_id: int | None = None,
    format: OutputFormat = "mixed",
    filter: TrieFilter | None = None,
    max_items: int | None = None,
    max_new_tokens: int = 96,
    do_sample: bool = False,
    temperature: float = 0.7,
    top_p: float = 0.9,
    seed: int | None = None,
    filtered_items: int | None = None,
    streamer: Any = None,
    with_scores: bool = False,
    prompt_length: int | None = None,
    cite_after: Any = None,
    distinct: bool = True,
) -> Any:
    """Greedy (default) or sampled generation with SID spans constrained to the trie.

    Every generation setting is pinned explicitly, so a model's own ``generation_config`` can
    never switch on sampling, beams or penalties behind the caller's back.

    Args:
        filtered_items: ``filter`` binds the first N spans only (see :class:`SIDConstraint`).
        streamer: a transformers streamer that receives tokens as they are generated.
        with_scores: also return each generated token's log-probability among the tokens the
            constraint allowed at that step (a forced token scores 0).
        cite_after: the citation rule of a ``mixed`` answer (:class:`SIDConstraint`).
        distinct: never the same item twice in the answer, forced spans included (``False``: an
            explanation may cite an item its forced grounds line already names).
        prompt_length: where the answer starts, when the last tokens of ``prompt`` are a forced
            start of the answer (e.g. a span opener): the constraint reads them as generated, and
            they are returned (score 0).

    Returns:
        The generated token ids (without the prompt and the end token); with ``with_scores``,
        ``(ids, log_probs)``.
    """
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    input_ids = torch.as_tensor([list(prompt)], dtype=torch.long, device=device)
    start = input_ids.shape[1] if prompt_length is None else prompt_length
    constraint = SIDConstraint(
        trie, tokens, start, filter=filter, format=format, max_items=max_items,
        eos_token_id=eos_token_id, filtered_items=filtered_items, cite_after=cite_after, distinct=distinct,
    )
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=do_sample, num_beams=1,
        # neutral values when greedy: transformers 5 fills unset fields from the model's config
        temperature=temperature if do_sample else 1.0, top_p=top_p if do_sample else 1.0,
        top_k=0 if do_sample else None, repetition_penalty=1.0, eos_token_id=eos_token_id,
        pad_token_id=pad_token_id if pad_token_id is not None else eos_token_id,
        output_scores=with_scores, return_dict_in_generate=True,
    )
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
            generation_config=config, logits_processor=LogitsProcessorList([constraint]),
            streamer=streamer,
        )
    generated = out.sequences[0, start:].tolist()
    forced = input_ids.shape[1] - start
    log_probs: list[float] = []
    if with_scores:  # scores are the processed (masked) logits of each step
        log_probs = [0.0] * forced + [
            float(torch.log_softmax(step[0].float(), -1)[token])
            for step, token in zip(out.scores, generated[forced:])
        ]
    if generated and generated[-1] == eos_token_id:
        generated, log_probs = generated[:-1], log_probs[:-1]
    return (generated, log_probs) if with_scores else generated


def parse_output(
    generated: Sequence[int], trie: SIDTrie, tokens: SIDTokens, tokenizer: Any, *, strict: bool = True
) -> list[Segment]:
    """Generated token ids -> ordered text and item segments.

    With ``strict`` (the default) an invalid or unterminated span raises :class:`DecodingError`;
    otherwise such spans are dropped (useful to measure an unconstrained model's invalid rate).
    """
    segments: list[Segment] = []
    text: list[int] = []
    span: list[int] | None = None
    for token in list(generated):
        if span is None:
            if token == tokens.opener:
                span = []
            elif token == tokens.closer:
                if strict:
                    raise DecodingError("span closer outside a SID span")
            else:
                text.append(token)
            continue
        if token != tokens.closer:
            span.append(token)
            continue
        item = trie.lookup(span)
        if item is None:
            if strict:
                raise DecodingError(f"SID span {span} names no catalog item")
        else:
            if text:
                segments.append(TextSegment(tokenizer.decode(text, skip_special_tokens=True)))
                text = []
            etype = trie.type_of_first_token(span[0]) or ""
            segments.append(ItemSegment(item, etype, tuple(span)))
        span = None
    if span is not None and strict:
        raise DecodingError("generation ended inside an unterminated SID span")
    if text:
        segments.append(TextSegment(tokenizer.decode(text, skip_special_tokens=True)))
    return segments
