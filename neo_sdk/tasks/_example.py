"""The training/evaluation example contract shared by task builders, training and evaluation.

An :class:`Example` is plain text with item mentions written as markers ``[[item:ID]]``. Markers
keep task building independent of the tokenizer and the SID vocabulary: the formatter in
``neo_sdk.training`` turns each marker into the item's SID token span when it encodes the example
with the base model's chat template (loss on the completion only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from neo_sdk._names import OutputFormat, TaskName

ITEM_MARKER = re.compile(r"\[\[item:([^\]]+)\]\]")


def item_marker(item_id: str) -> str:
    """The marker for an item mention inside example text."""
    if "]]" in item_id:
        raise ValueError(f"item id {item_id!r} cannot contain ']]'")
    return f"[[item:{item_id}]]"


def mentioned_items(text: str) -> list[str]:
    """Item ids mentioned in a text, in order."""
    return ITEM_MARKER.findall(text)


@dataclass(frozen=True)
class Example:
    """One (prompt, completion) pair.

    Attributes:
        task: what the example teaches.
        prompt: the user turn; states task, target type and output format in words.
        completion: the assistant turn (loss is computed on it only).
        target_type: entity type the answer must be, if any.
        format: ``ids`` (only item spans), ``text`` or ``mixed``.
        family: phrasing family of the template used (train/eval families are disjoint).
        meta: anything else (user id, target item, cut point, template id).
    """

    task: TaskName
    prompt: str
    completion: str
    target_type: str | None = None
    format: OutputFormat = "mixed"
    family: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)
