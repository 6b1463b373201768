"""The text/SID mode machine and the logits processor that enforces it.

Each row's state is derived from that row's own generated tokens (cached by their bytes), so
beam reordering can never desynchronise it:

* **text** mode: text tokens and the span opener are allowed, every SID code token and the closer
  are forbidden. With ``format="ids"`` only the opener is allowed (and EOS once ``max_items``
  items are out); with ``format="text"`` the opener is forbidden too.
* **span** mode: only children of the current trie node that still hold an allowed item (request
  filter minus the items this row already generated) are allowed.
* at a **leaf**: only the closer.
* **citations** (``cite_after``): in ``mixed`` text, when the text since the last span ends with a
  citation cue ("like", "as in"), only the tokens the rule names (the opener, or a space before
  it) are allowed while an allowed item is left, so a comparison names an item, never a year.

A row with no allowed token raises :class:`DecodingError`; nothing ever decodes unconstrained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neo_sdk._names import OUTPUT_FORMATS, OutputFormat
from neo_sdk.decoding._trie import SIDTrie, TrieFilter
from neo_sdk.errors import DecodingError


@dataclass(frozen=True)
class SIDTokens:
    """The token ids the mode machine needs: span delimiters and every SID code token."""

    opener: int
    closer: int
    code_tokens: np.ndarray  # (C,) int64, every SID code token of every type and level

    def __post_init__(self) -> None:
        if self.opener == self.closer:
            raise DecodingError("the span opener and closer must be different tokens")
        codes = set(np.asarray(self.code_tokens).tolist())
        if self.opener in codes or self.closer in codes:
            raise DecodingError("span delimiters must not also be SID code tokens")


@dataclass(frozen=True)
class RowState:
    """Where one sequence is: outside a span, or at a trie node inside one."""

    in_span: bool
    node: int  # internal trie node (0 = root) when in a span and not at a leaf
    at_leaf: bool
    leaf_position: int  # sorted item position when at a leaf, else -1
    items: tuple[int, ...]  # sorted positions of the completed items, in order


TEXT_START = RowState(False, 0, False, -1, ())


def advance(state: RowState, token: int, trie: SIDTrie, tokens: SIDTokens) -> RowState:
    """The state after ``token``. Raises :class:`DecodingError` for an impossible transition."""
    if not state.in_span:
        if token == tokens.opener:
            return RowState(True, 0, False, -1, state.items)
        if token == tokens.closer:
            raise DecodingError("span closer generated outside a SID span")
        return state
    if state.at_leaf:
        if token != tokens.closer:
            raise DecodingError(f"token {token} after a complete SID; only the closer may follow")
        return RowState(False, 0, False, -1, (*state.items, state.leaf_position))
    target, is_item = trie.step(state.node, token)
    if target < 0:
        raise DecodingError(f"token {token} is not a valid SID continuation at trie node {state.node}")
    if is_item:
        return RowState(True, -1, True, target, state.items)
    return RowState(True, target, False, -1, state.items)


def replay(generated: Sequence[int], trie: SIDTrie, tokens: SIDTokens) -> RowState:
    """The state after a whole sequence of generated tokens."""
    state = TEXT_START
    for token in generated:
        state = advance(state, int(token), trie, tokens)
    return state


class SIDConstraint:
    """A transformers ``LogitsProcessor`` enforcing the mode machine on every row.

    Args:
        trie: the typed SID trie.
        tokens: delimiter and code token ids.
        prompt_length: length of the (padded) prompt; tokens after it are the generation.
        filter: request-time restriction (types, exclusions, allowlist); default: all items.
        format: ``ids`` (only SID spans, then EOS after ``max_items``), ``text`` (no spans) or
            ``mixed``.
        max_items: most items per answer (``ids``: exactly this many before EOS).
        eos_token_id: ends an ``ids`` answer.
        distinct: never generate the same item twice within one row.
        filtered_items: apply ``filter`` to the first N spans only; later spans (e.g. the items an
            explanation cites from the user's history) may name any catalog item. ``None``: all.
        cite_after: called with a ``mixed`` row's text tokens since its last span (or its start);
            the tokens it returns (when the text ends with a citation cue: the opener, or a space
            before it) are the only ones allowed while an allowed item is left; ``None``: no rule.
    """

    def __init__(
        self,
        trie: SIDTrie,
        tokens: SIDTokens,
        prompt_length: int,
        *,
        filter: TrieFilter | None = None,
        format: OutputFormat = "mixed",
        max_items: int | None = None,
        eos_token_id: int | None = None,
        distinct: bool = True,
        filtered_items: int | None = None,
        cite_after: Callable[[Sequence[int]], Sequence[int] | None] | None = None,
    ) -> None:
        if format not in OUTPUT_FORMATS:
            raise DecodingError(f"unknown output format {format!r}; use one of {OUTPUT_FORMATS}")
        if format == "ids" and (max_items is None or eos_token_id is None):
            raise DecodingError("format='ids' needs max_items and eos_token_id")
        self.trie = trie
        self.tokens = tokens
        self.prompt_length = prompt_length
        self.filter = filter or TrieFilter.from_mask(np.ones(trie.num_items, dtype=bool))
        self.format = format
        self.max_items = max_items
        self.eos_token_id = eos_token_id
        self.distinct = distinct
        self.filtered_items = filtered_items
        self.cite_after = cite_after if format == "mixed" else None
        self._everything = TrieFilter.from_mask(np.ones(trie.num_items, dtype=bool))
        self._forbid_in_text = torch.as_tensor(
            np.append(tokens.code_tokens, tokens.closer), dtype=torch.long
        )
        self._cache: dict[bytes, RowState] = {}

    def state_of(self, generated: torch.Tensor) -> RowState:
        """State of one row from its generated tokens, reusing the state of its prefix."""
        key = generated.numpy().tobytes()
        state = self._cache.get(key)
        if state is None:
            if len(generated) == 0:
                state = TEXT_START
            else:
                state = advance(self.state_of(generated[:-1]), int(generated[-1]), self.trie, self.tokens)
            self._cache[key] = state
        return state

    def allowed_in_span(self, state: RowState) -> np.ndarray:
        """Token ids allowed at a span state (children with an allowed item left, or the closer)."""
        if state.at_leaf:
            return np.asarray([self.tokens.closer])
        child_tokens, targets, are_items = self.trie.children(state.node)
        excluded = state.items if self.distinct else ()
        unfiltered = self.filtered_items is not None and len(state.items) >= self.filtered_items
        live = (self._everything if unfiltered else self.filter).alive(self.trie, targets, are_items, excluded)
        return child_tokens[live]

    def items_left(self, state: RowState) -> bool:
        """Whether a span opened now could still name an allowed item (a small allowlist can be
        used up by the distinct items already named: then no span may open)."""
        unfiltered = self.filtered_items is not None and len(state.items) >= self.filtered_items
        flt = self._everything if unfiltered else self.filter
        used = sum(1 for pos in set(state.items) if flt.allowed[pos]) if self.distinct else 0
        return flt.num_allowed > used

    def _citation(self, generated: torch.Tensor, state: RowState) -> np.ndarray | None:
        """The tokens the citation rule allows a text row next (``None``: no rule applies)."""
        if self.cite_after is None or not self.items_left(state):
            return None
        tokens = generated.tolist()
        closed = max((n for n, t in enumerate(tokens) if t == self.tokens.closer), default=-1)
        run = tokens[closed + 1:]
        allowed = self.cite_after(run) if run else None
        if not allowed:
            return None
        out = np.asarray(sorted(set(allowed)), dtype=np.int64)
        if np.isin(out, self._forbid_in_text.numpy()).any():
            raise DecodingError("a citation rule may allow the opener and text tokens, never SID codes")
        return out

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :].cpu()
        masked = scores.clone()
        text_rows: list[int] = []
        no_opener: list[int] = []
        for row in range(scores.shape[0]):
            state = self.state_of(generated[row])
            if state.in_span:
                allowed = self.allowed_in_span(state)
                if len(allowed) == 0:
                    raise DecodingError(
                        f"row {row}: no SID continuation holds an allowed item (filter leaves"
                        f" {self.filter.num_allowed} items); refusing to decode unconstrained"
                    )
            elif self.format == "ids":
                done = len(state.items) >= (self.max_items or 0)
                allowed = np.asarray([self.eos_token_id if done else self.tokens.opener])
            elif (cited := self._citation(generated[row], state)) is not None:
                allowed = cited
            else:
                text_rows.append(row)
                if self.format == "text" or (
                    self.max_items is not None and len(state.items) >= self.max_items
                ) or not self.items_left(state):
                    no_opener.append(row)
                continue
            # Restricted row: rebuild it from -inf with only the allowed tokens' scores.
            index = torch.as_tensor(allowed, dtype=torch.long, device=scores.device)
            kept = scores[row, index]
            if not torch.isfinite(kept).any():
                raise DecodingError(f"row {row}: every allowed token has a -inf score")
            masked[row].fill_(float("-inf"))
            masked[row, index] = kept
        if text_rows:  # text rows: forbid SID codes and the closer, all rows in one operation
            rows = torch.as_tensor(text_rows, dtype=torch.long, device=scores.device)
            masked[rows[:, None], self._forbid_in_text.to(scores.device)[None, :]] = float("-inf")
            if no_opener:
                masked[no_opener, self.tokens.opener] = float("-inf")
        return masked
