"""Turning :class:`~neo_sdk.tasks.Example` objects and prompts into token ids (training and serving).

* The base model's chat template frames every example (system, user turn, assistant turn); the
  system text comes from the prompt files and is empty by default: SmolLM2's default system
  prompt costs 16 tokens on every example (``cpu-economy.md``: dropping it was +18% throughput).
  A tokenizer without a chat template (a base model such as Gemma-3-270m) gets the plain frame
  :data:`neo_sdk.model.PLAIN_FRAME` instead (after ``<bos>``: a ``User:`` line, the request, an
  ``Assistant:`` line).
* Every completion ends with the end-of-turn token read from the tokenizer
  (:func:`neo_sdk.model.end_of_turn_id`: ``<|im_end|>`` for SmolLM2, ``eos`` without a template).
* ``[[item:ID]]`` markers become SID spans. In the **completion** a span is always
  ``<|sid|> codes... <|/sid|>`` (the form constrained decoding produces). In the **prompt** the
  delimiters are dropped by default (``compact_prompt``): the codes alone name the item (the type
  is decidable from the first code), saving 2 tokens per history item.
* Labels are ``-100`` on every prompt token: the loss is on the completion (and its end token)
  only. Exception, for the tasks in ``history_loss`` (``next_item`` in training): the SID codes of
  the history in the prompt are targets too, so one example teaches "which item comes next" at
  every history position (as SASRec-style models train), not only at the answer. On 2 CPU cores
  that is ~10x more next-item supervision per step for the same forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neo_sdk.errors import ConfigError
from neo_sdk.model import chat_frame, end_of_turn_id
from neo_sdk.tasks import ITEM_MARKER, Example
from neo_sdk.vocab import SIDVocab

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One tokenised example. ``labels`` is ``-100`` over the prompt."""

    input_ids: list[int]
    labels: list[int]
    task: str
    prompt_length: int = -1  # where the completion starts; -1: the first label

    def __post_init__(self) -> None:
        if self.prompt_length < 0:
            first = next((k for k, y in enumerate(self.labels) if y != IGNORE), len(self.labels))
            object.__setattr__(self, "prompt_length", first)


class ExampleEncoder:
    """Encodes examples with a tokenizer that has the SID vocabulary attached.

    Args:
        tokenizer: the base tokenizer, extended by ``vocab.attach``.
        vocab: the SID vocabulary built from the catalog's SID table.
        system: system prompt text ("" keeps the turn but drops the model's default text).
        compact_prompt: write prompt items as bare codes (no delimiters).
        max_length: examples longer than this raise (builders keep prompts short on purpose).
        history_loss: tasks whose prompt SID codes are also targets (module docs).
    """

    def __init__(
        self, tokenizer: Any, vocab: SIDVocab, *, system: str = "", compact_prompt: bool = True,
        max_length: int = 512, history_loss: Sequence[str] = (),
    ) -> None:
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.system = system
        self.compact_prompt = compact_prompt
        self.max_length = max_length
        self.end_id = end_of_turn_id(tokenizer)
        # padding is masked out; a tokenizer without a pad token (many base models) pads with the end id
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_id)
        """The token that ends every answer (``<|im_end|>`` for SmolLM2; see the module docs)."""
        self._frames: dict[str, tuple[list[int], list[int]]] = {}
        self._span_cache: dict[str, list[int]] = {}
        self.history_loss = frozenset(history_loss)
        self._codes = frozenset(vocab.sid_token_ids().tolist()) if self.history_loss else frozenset()

    def span(self, item_id: str) -> list[int]:
        """``[opener, codes..., closer]`` for an item (cached)."""
        span = self._span_cache.get(item_id)
        if span is None:
            span = self.vocab.encode_item(item_id)
            self._span_cache[item_id] = span
        return span

    def _render(self, text: str, *, compact: bool) -> list[int]:
        ids: list[int] = []
        last = 0
        for match in ITEM_MARKER.finditer(text):
            if match.start() > last:
                ids += self.vocab.encode_text(self.tokenizer, text[last : match.start()])
            span = self.span(match.group(1))
            ids += span[1:-1] if compact else span
            last = match.end()
        if last < len(text):
            ids += self.vocab.encode_text(self.tokenizer, text[last:])
        return ids

    def frame_ids(self) -> tuple[list[int], list[int]]:
        """Token ids before and after a user message (:func:`neo_sdk.model.chat_frame`), cached."""
        frame = self._frames.get(self.system)
        if frame is None:
            head, tail = chat_frame(self.tokenizer, self.system)
            frame = (list(self.tokenizer.encode(head, add_special_tokens=False)),
                     list(self.tokenizer.encode(tail, add_special_tokens=False)))
            self._frames[self.system] = frame
        return frame

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a user turn framed by the chat template (or the plain frame), ending where
        the answer starts."""
        head, tail = self.frame_ids()
        return head + self._render(prompt, compact=self.compact_prompt) + tail

    def completion_ids(self, text: str) -> list[int]:
        """Token ids of answer text, as a completion encodes it (markers become whole SID spans)."""
        return self._render(text, compact=False)

    def encode(self, example: Example) -> Encoded:
        prompt = self.prompt_ids(example.prompt)
        completion, completion_labels = self._completion(example)
        ids = prompt + completion
        if len(ids) > self.max_length:
            raise ConfigError(
                f"{example.task} example is {len(ids)} tokens, over max_length={self.max_length};"
                " shorten the history (max_history) or raise max_length"
            )
        if example.task in self.history_loss:
            prompt_labels = [t if t in self._codes else IGNORE for t in prompt]
        else:
            prompt_labels = [IGNORE] * len(prompt)
        return Encoded(ids, prompt_labels + completion_labels, example.task, len(prompt))

    def _completion(self, example: Example) -> tuple[list[int], list[int]]:
        """The completion's ids and labels. A grounds line (``meta["grounds"]``: facts the runtime
        writes into the answer itself, :mod:`neo_sdk.tasks._grounds`) is context, not a target:
        its tokens are ``-100``, encoded exactly as the runtime writes them (with what precedes)."""
        grounds = example.meta.get("grounds")
        head, found, tail = example.completion.partition(str(grounds)) if grounds else ("", "", "")
        if not found:
            ids = self.completion_ids(example.completion) + [self.end_id]
            return ids, list(ids)
        context = self.completion_ids(head + found)
        scored = len(self.completion_ids(head.rstrip())) if head.strip() else 0  # the item before the grounds
        rest = self.completion_ids(tail) + [self.end_id]
        return context + rest, context[:scored] + [IGNORE] * (len(context) - scored) + rest
