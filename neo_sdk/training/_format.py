"""Batching encoded examples for training: right-padded tensors, length-grouped shuffles.

Examples are encoded by :class:`neo_sdk.encoding.ExampleEncoder` (shared with the runtime).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from neo_sdk.encoding import IGNORE, Encoded


@dataclass(frozen=True)
class Batch:
    """Right-padded tensors. Shapes: (B, T)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


def collate(examples: Sequence[Encoded], pad_id: int) -> Batch:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.as_tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.as_tensor(e.labels)
    return Batch(ids, mask, labels)


def length_grouped_batches(
    examples: Sequence[Encoded], batch_size: int, *, seed: int, pad_id: int, epoch: int = 0
) -> Iterator[Batch]:
    """Shuffled batches of similar-length examples (sorted within chunks of 50 batches)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda k: len(examples[k].input_ids))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    for batch in batches:
        yield collate([examples[k] for k in batch], pad_id)
