"""Training only the SID token rows of the embedding matrix and output head.

* :func:`neo_sdk.model.untie_output_head` gives the output head its own weight (a copy), so SID *output* rows
  can differ from SID *input* rows: the cached-feature fit of the output rows
  (``cpu-economy.md``) needs that, and it is what lets text->SID ground within minutes.
* :class:`RowMask` zeroes the gradient of every non-SID row with tensor hooks. With AdamW and
  ``weight_decay=0`` a zero gradient means a zero update, so the old vocabulary stays bitwise
  unchanged (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RowMask:
    """Let only ``rows`` of the given weights receive gradient (hooks; remove with :meth:`remove`).

    The mask follows the gradient's device: accelerate may move the model after the mask is made
    (``neo train --stage instruct`` loads the stage-2 bundle on the CPU, then trains on the GPU).
    """

    def __init__(self, weights: Sequence[torch.nn.Parameter], rows: Sequence[int]) -> None:
        self.handles = []
        for weight in weights:
            mask = torch.zeros((weight.shape[0], 1), dtype=weight.dtype, device=weight.device)
            mask[torch.as_tensor(list(rows), dtype=torch.long)] = 1
            weight.requires_grad_(True)
            # .to is a no-op on the same device; elsewhere it copies a (vocab, 1) column
            self.handles.append(weight.register_hook(lambda grad, m=mask: grad * m.to(grad.device)))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def row_weights(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The embedding weight and, when untied, the output head weight."""
    weights = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() != weights[0].data_ptr():
        weights.append(head.weight)
    return weights
