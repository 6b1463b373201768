"""Steerability with the constraints switched off: does the model answer in the type and format asked?

With the trie constraint every answer is a real item of the requested type by construction, so the
constrained numbers say nothing about whether the model *understood* the request. Here each request
is generated greedily by the plain model (``model.generate``, no logits processor), and the output
is read back against the trie (:func:`neo_sdk.decoding.parse_output`, lenient):

* **type**: the first SID span names a real catalog item of the requested type (NEO's own test:
  30 of 30 beams of the right type);
* **format**: ``ids`` = item spans only (whitespace between them), every span a real item;
  ``text`` = words and no span; ``mixed`` = a real item first, then words (every span real).

Requests come from the bundle's own prompt templates: for each output format, the first stage-3
task (in the order of ``neo_sdk._names.TASKS``) that declares the format and whose
phrasings take a user's ``{history}`` (``next_item`` for ids, ``explain`` for mixed, ``profile`` for
text with the built-in templates), in the held-out ``eval`` family by default, filled with real
users' histories. A task whose phrasings take no ``{type}`` is asked once, not per type, and its
type share is not reported.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neo_sdk._names import OUTPUT_FORMATS, TASKS
from neo_sdk.errors import ConfigError

DEFAULT_PROMPTS = 30
MAX_NEW_TOKENS = 40


@dataclass
class SteerRow:
    """One (entity type, format) cell: how many unconstrained answers were of the type and format asked.

    Attributes:
        entity_type: the type requested (``None`` when the task names no type).
        output_format: ``ids``, ``text`` or ``mixed``.
        task: the prompt template's task.
        prompts: requests generated.
        right_type: answers whose first span is a real item of ``entity_type`` (``None`` when no
            type was requested).
        right_format: answers of the requested format.
        examples: a few decoded answers, for the report.
    """

    entity_type: str | None
    output_format: str
    task: str
    prompts: int
    right_type: int | None
    right_format: int
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def share(n: int | None) -> float | None:
            return round(n / self.prompts, 4) if self.prompts and n is not None else None

        return {"entity_type": self.entity_type, "format": self.output_format, "task": self.task,
                "prompts": self.prompts, "right_type": self.right_type, "right_format": self.right_format,
                "type_share": share(self.right_type), "format_share": share(self.right_format),
                "examples": self.examples}


@dataclass
class Reading:
    """What one generated answer holds: span count, resolved items in order, text, first span's item."""

    spans: int
    items: list[tuple[str, str]]  # (item id, entity type) of every real span, in order
    first_item: tuple[str, str] | None
    first_is_item: bool  # the answer starts (after whitespace) with a real item
    text_after_first_item: bool
    has_text: bool

    def matches(self, output_format: str) -> bool:
        """The answer has ``output_format``'s shape (module docstring)."""
        all_real = len(self.items) == self.spans
        if output_format == "ids":
            return self.spans > 0 and all_real and not self.has_text
        if output_format == "text":
            return self.spans == 0 and self.has_text
        if output_format == "mixed":
            return self.first_is_item and self.text_after_first_item and all_real
        raise ConfigError(f"unknown output format {output_format!r}; known: {list(OUTPUT_FORMATS)}")


def read_answer(generated: Sequence[int], trie: Any, tokens: Any, tokenizer: Any, *,
                truncated: bool = False) -> Reading:
    """Read generated token ids (end token already cut) against the trie, leniently.

    ``truncated``: generation stopped at its token limit, so a span left open at the very end was
    cut by the limit, not written wrong; it is ignored (otherwise it counts as an invalid span).
    """
    from neo_sdk.decoding import ItemSegment, TextSegment, parse_output

    ids = [int(t) for t in generated]
    if truncated and tokens.opener in ids:
        last = len(ids) - 1 - ids[::-1].index(tokens.opener)
        if tokens.closer not in ids[last:]:
            ids = ids[:last]
    segments = parse_output(ids, trie, tokens, tokenizer, strict=False)
    items = [(s.item_id, s.entity_type) for s in segments if isinstance(s, ItemSegment)]
    first_item = None
    if tokens.opener in ids:
        start = ids.index(tokens.opener)
        end = ids.index(tokens.closer, start) + 1 if tokens.closer in ids[start:] else len(ids)
        first = [s for s in parse_output(ids[start:end], trie, tokens, tokenizer, strict=False)
                 if isinstance(s, ItemSegment)]
        first_item = (first[0].item_id, first[0].entity_type) if first else None
    words = [s for s in segments if isinstance(s, TextSegment) and s.text.strip()]
    lead = next((s for s in segments if not (isinstance(s, TextSegment) and not s.text.strip())), None)
    first_is_item = isinstance(lead, ItemSegment) and first_item is not None  # no invalid span before it
    after = False
    if first_is_item and lead is not None:
        rest = segments[segments.index(lead) + 1:]
        after = any(isinstance(s, TextSegment) and s.text.strip() for s in rest)
    return Reading(ids.count(tokens.opener), items, first_item, first_is_item, after, bool(words))


def steer_tasks(prompts: Any) -> dict[str, tuple[str, bool]]:
    """Output format -> (task, whether its phrasings name a ``{type}``), from the prompt templates."""
    out: dict[str, tuple[str, bool]] = {}
    for fmt in OUTPUT_FORMATS:
        for task in TASKS:
            if task not in prompts.tasks or fmt not in prompts.formats(task):
                continue
            texts = [p.text for p in prompts.phrasings(task)]
            if all("{history}" in t for t in texts):
                out[fmt] = (task, all("{type}" in t or "{types}" in t for t in texts))
                break
    return out


def measure_steerability(
    ranker: Any,
    histories: Mapping[str, Mapping[str, Sequence[str]]],
    *,
    n: int = DEFAULT_PROMPTS,
    seed: int = 0,
    max_new_tokens: int = MAX_NEW_TOKENS,
    n_examples: int = 2,
) -> list[SteerRow]:
    """Generate ``n`` unconstrained answers per (entity type, format) and count the right ones.

    Args:
        ranker: a :class:`~neo_sdk.evaluation.BundleRanker` (its model, encoder, trie, prompts,
            phrasing family, ``max_history`` and user facts are used).
        histories: entity type -> {user: history}: the users asked for that type, cycled through
            when fewer than ``n`` (each request draws its own phrasing).
        seed: phrasing seed.
        max_new_tokens: generation length; enough for an item and a clause.
        n_examples: decoded answers kept per row.
    """
    if n < 1:
        raise ConfigError(f"steerability needs at least one prompt per row, got {n}")
    if not histories or not any(histories.values()):
        raise ConfigError("steerability needs at least one user with a history")
    tokenizer = ranker.encoder.tokenizer
    rows: list[SteerRow] = []
    for fmt, (task, typed) in steer_tasks(ranker.prompts).items():
        for etype in (list(histories) if typed else [None]):
            users = histories[etype or next(iter(histories))]
            order = sorted(users)
            if not order:
                continue
            row = SteerRow(etype, fmt, task, 0, 0 if typed else None, 0)
            for i in range(n):
                user = order[i % len(order)]
                rng = random.Random(f"steer|{seed}|{etype}|{fmt}|{i}")
                prompt = render_request(ranker, task, fmt, rng, etype or next(iter(histories)), users[user], user)
                generated, ended = generate_unconstrained(ranker, prompt, max_new_tokens)
                reading = read_answer(generated, ranker.trie, ranker.tokens, tokenizer, truncated=not ended)
                row.prompts += 1
                row.right_format += reading.matches(fmt)
                if typed and reading.first_item is not None and reading.first_item[1] == etype:
                    row.right_type = (row.right_type or 0) + 1
                if len(row.examples) < n_examples:
                    row.examples.append(_show(generated, ranker, tokenizer))
            rows.append(row)
    return rows


# ------------------------------------------------------------------ helpers
def render_request(ranker: Any, task: str, fmt: str, rng: random.Random, etype: str, history: Sequence[str],
                   user: str) -> list[int]:
    """The token ids of one request of ``task`` in ``fmt`` for ``user`` (``etype`` fills ``{type}`` where asked)."""
    from neo_sdk.tasks import format_history

    values: dict[str, Any] = {"history": format_history(list(history), ranker.max_history),
                              "user": ranker.user_text(user), "type": etype}
    text = ranker.prompts.render(task, ranker.family, rng, format=fmt, **values)
    return list(ranker.encoder.prompt_ids(text))


def generate_unconstrained(ranker: Any, prompt: list[int], max_new_tokens: int) -> tuple[list[int], bool]:
    """Greedy, unconstrained; every setting pinned (a model's generation config cannot switch on sampling).

    Returns:
        The generated ids without the end token, and whether the model ended (else it hit the limit).
    """
    import torch
    from transformers import GenerationConfig

    end = ranker.encoder.end_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, temperature=1.0,
                              top_p=1.0, top_k=None, repetition_penalty=1.0, eos_token_id=end, pad_token_id=end)
    device = next(ranker.model.parameters()).device
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    with torch.inference_mode():
        out = ranker.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    generated = out[0, ids.shape[1]:].tolist()
    return (generated[: generated.index(end)], True) if end in generated else (generated, False)


def _show(generated: Sequence[int], ranker: Any, tokenizer: Any) -> str:
    """The answer with each real span shown as ``[[item:ID]]`` and any other span as ``[[?]]``."""
    from neo_sdk.decoding import ItemSegment, parse_output

    parts, text, span = [], [], None
    for token in generated:
        if span is None and token == ranker.tokens.opener:
            parts.append(tokenizer.decode(text, skip_special_tokens=True))
            text, span = [], [token]
        elif span is not None:
            span.append(token)
            if token == ranker.tokens.closer:
                got = [s for s in parse_output(span, ranker.trie, ranker.tokens, tokenizer, strict=False)
                       if isinstance(s, ItemSegment)]
                parts.append(f"[[item:{got[0].item_id}]]" if got else "[[?]]")
                span = None
        else:
            text.append(token)
    if span is not None:
        parts.append("[[?")
    parts.append(tokenizer.decode(text, skip_special_tokens=True))
    return "".join(parts).strip()[:200]
